"""Physics of an orbital data centre's power and heat, as pure functions (SI units).

Solar array: electrical output per m2 = irradiance x cell efficiency x fill factor x pointing
x degradation. Radiator: a flat panel radiating from `sides` faces, each emitting
eps*sigma*(T^4 - T_sink^4) and absorbing Earth infrared (eps x q_IR x F), Earth albedo
(alpha x S x albedo x F x illumination) and direct sunlight (alpha x S x incidence).
"""

from __future__ import annotations

from skyrack.bus.constants import EARTH_ALBEDO, EARTH_IR_W_M2, SOLAR_CONSTANT_W_M2, STEFAN_BOLTZMANN

DEEP_SPACE_K = 3.0


def array_flux_w_m2(
    irradiance_w_m2: float,
    efficiency: float,
    fill_factor: float,
    pointing: float = 1.0,
    retention: float = 1.0,
) -> float:
    """Electrical watts per m2 of array in full sunlight."""
    return irradiance_w_m2 * efficiency * fill_factor * pointing * retention


def retention_after(years: float, degradation_per_year: float) -> float:
    """Fraction of beginning-of-life power left after `years` of compound degradation."""
    return (1.0 - degradation_per_year) ** years


def average_retention(years: float, loss_per_year: float) -> float:
    """Mean of (1 - loss)^k over the whole years k = 0..n-1 (at least one year)."""
    n = max(1, int(round(years)))
    return sum((1.0 - loss_per_year) ** k for k in range(n)) / n


def array_power_for_load(load_w: float, sunlit_fraction: float, round_trip_efficiency: float) -> float:
    """Array output (in sunlight) that runs `load_w` without a break: it carries the load while
    lit and recharges the battery for the dark share, paying the battery's round-trip loss."""
    if sunlit_fraction <= 0:
        raise ValueError("an orbit with no sunlight cannot be solar powered")
    dark = 1.0 - sunlit_fraction
    return load_w * (1.0 + dark / (sunlit_fraction * round_trip_efficiency))


def battery_energy_wh(
    load_w: float, eclipse_s: float, depth_of_discharge: float, discharge_efficiency: float
) -> float:
    """Nameplate battery energy that carries `load_w` through one eclipse of `eclipse_s`."""
    return load_w * eclipse_s / 3600.0 / (depth_of_discharge * discharge_efficiency)


def radiator_emitted_w_m2(
    temperature_k: float, emissivity: float, sides: int = 2, sink_k: float = 0.0
) -> float:
    """Thermal emission per m2 of panel from all its radiating faces."""
    return sides * emissivity * STEFAN_BOLTZMANN * (temperature_k**4 - sink_k**4)


def radiator_absorbed_w_m2(
    emissivity: float,
    absorptivity: float,
    earth_view_factor: float,
    albedo_illumination: float = 0.0,
    solar_incidence: float = 0.0,
    earth_ir_w_m2: float = EARTH_IR_W_M2,
    albedo: float = EARTH_ALBEDO,
    solar_w_m2: float = SOLAR_CONSTANT_W_M2,
) -> float:
    """Environmental heat absorbed per m2 of panel (all faces together).

    earth_view_factor: view factor to the Earth summed over the faces; albedo_illumination: the
    orbit-averaged share of that Earth which is sunlit; solar_incidence: the orbit-averaged
    cosine of the Sun on the panel (0 for a radiator kept edge-on to the Sun).
    """
    earth_ir = emissivity * earth_ir_w_m2 * earth_view_factor
    reflected = absorptivity * solar_w_m2 * albedo * earth_view_factor * albedo_illumination
    direct = absorptivity * solar_w_m2 * solar_incidence
    return earth_ir + reflected + direct


def radiator_net_w_m2(
    temperature_k: float,
    emissivity: float,
    absorptivity: float,
    sides: int = 2,
    earth_view_factor: float = 0.0,
    albedo_illumination: float = 0.0,
    solar_incidence: float = 0.0,
    sink_k: float = DEEP_SPACE_K,
) -> float:
    """Heat a panel at `temperature_k` rejects per m2 after the environment's loads."""
    return radiator_emitted_w_m2(temperature_k, emissivity, sides, sink_k) - radiator_absorbed_w_m2(
        emissivity, absorptivity, earth_view_factor, albedo_illumination, solar_incidence
    )
