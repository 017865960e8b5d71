"""Physical constants shared by the bus models and the planner, each declared once."""

SOLAR_CONSTANT_W_M2 = 1361.0  # Kopp & Lean 2011 (1360.8 +- 0.5)
STEFAN_BOLTZMANN = 5.670374419e-8  # W m-2 K-4 (CODATA 2018, exact in SI)
EARTH_IR_W_M2 = (
    237.0  # global-mean outgoing longwave (McCalip's calculator, andrewmccalip.com/space-datacenters)
)
EARTH_ALBEDO = 0.30  # global-mean Bond albedo (the same calculator)
AU_KM = 149_597_870.7
KELVIN = 273.15
