"""Electrical power: the solar array, the loads, and the battery between them.

After Basilisk's power modules: each node says what it puts on the bus (the array, positive)
or takes from it (the loads), and the storage integrates what is left. All powers are bus-side
watts; energies in the battery are watt-hours (the one non-SI unit, named so).

Model and its assumptions:
- Irradiance is the solar constant, 1361 W/m2 (Kopp & Lean 2011), scaled by the inverse square
  of the satellite-Sun distance (+-3.4% over a year) and by the visible fraction of the solar
  disk from the twin (0 in umbra, partial in penumbra).
- The array tracks the Sun: output = irradiance x area x cell efficiency x pointing factor x
  (1 - degradation per year)^(years since launch). No temperature coefficient, no
  maximum-power-point losses beyond what the pointing factor absorbs.
- Loads = the bus baseline + the GPU's draw + the GPU's heaters (`skyrack.bus.thermal.Heaters`).
  A running GPU is assumed to draw its full power cap (training saturates it); a paused one draws
  its idle power.
- The battery charges with efficiency eta_c and discharges with eta_d, each limited in bus-side
  power. When it is full the surplus is shed (the array is pulled off its maximum power point)
  and recorded; when it is empty, or its discharge limit is reached, the load it cannot carry is
  recorded as unmet. A constant net power over any interval gives the same end state in one
  step as in many, which is what lets the governor predict with the same function.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skyrack.bus.constants import AU_KM, SOLAR_CONSTANT_W_M2
from skyrack.bus.spec import BusSpec

SECONDS_PER_YEAR = 365.25 * 86400.0


def irradiance_w_m2(r_teme_km: np.ndarray, sun_teme_km: np.ndarray) -> np.ndarray:
    """Full-Sun irradiance at the satellite (W/m2), before any shadowing."""
    distance = np.linalg.norm(np.asarray(sun_teme_km) - np.asarray(r_teme_km), axis=0)
    return SOLAR_CONSTANT_W_M2 * (AU_KM / distance) ** 2


class SolarArray:
    """The power source node."""

    def __init__(self, spec: BusSpec):
        self.spec = spec

    def degradation(self, seconds) -> np.ndarray:
        years = np.maximum(0.0, (np.asarray(seconds, dtype=float) - self.spec.launch_s) / SECONDS_PER_YEAR)
        return (1.0 - self.spec.array_degradation_per_year) ** years

    def full_sun_w(self, seconds, irradiance) -> np.ndarray:
        """What the array gives in full sunlight at these times (W)."""
        s = self.spec
        return (
            np.asarray(irradiance)
            * s.array_area_m2
            * s.cell_efficiency
            * s.array_pointing_factor
            * self.degradation(seconds)
        )

    def power_w(self, seconds, irradiance, sunlit) -> np.ndarray:
        """Array output (W): zero in umbra, a fraction in penumbra."""
        return self.full_sun_w(seconds, irradiance) * np.asarray(sunlit)


def load_w(spec: BusSpec, gpu_w: float, heater_w: float = 0.0) -> float:
    """The loads node: bus baseline plus the GPU's draw and its heaters' (W)."""
    return spec.bus_baseline_power_w + gpu_w + heater_w


def gpu_draw_w(spec: BusSpec, cap_w: float, running: bool) -> float:
    return cap_w if running else spec.gpu_idle_power_w


@dataclass(frozen=True)
class PowerStep:
    """What one interval did on the bus; powers are averages over it (W)."""

    net_w: float  # array - loads
    charge_w: float  # bus-side power the battery took
    discharge_w: float  # bus-side power the battery gave
    shed_w: float  # surplus the full (or rate-limited) battery could not take
    unmet_w: float  # load the battery could not carry
    battery_wh: float  # stored energy at the end


def battery_flows(spec: BusSpec, energy_wh: float, net_w: float, dt_s: float) -> tuple[float, float, float]:
    """(charge_w, discharge_w, energy_wh after) for `dt_s` seconds of a constant net bus power
    (positive charges). Exact for any dt: the limits are rates, and the end state saturates at
    full or empty. Plain floats: the governor calls this thousands of times a simulated hour."""
    if dt_s <= 0:
        return 0.0, 0.0, energy_wh
    hours = dt_s / 3600.0
    if net_w >= 0:
        eta = spec.battery_charge_efficiency
        room_w = max(0.0, spec.battery_capacity_wh - energy_wh) / (hours * eta)
        charge = min(net_w, spec.battery_max_charge_w, room_w)
        return charge, 0.0, min(spec.battery_capacity_wh, energy_wh + charge * eta * hours)
    eta = spec.battery_discharge_efficiency
    give = min(-net_w, spec.battery_max_discharge_w, max(0.0, energy_wh) * eta / hours)
    return 0.0, give, max(0.0, energy_wh - give / eta * hours)


def battery_after(spec: BusSpec, energy_wh: float, net_w: float, dt_s: float) -> PowerStep:
    """The battery after `dt_s` seconds of a constant net bus power, with the flows on the bus."""
    charge, give, energy = battery_flows(spec, energy_wh, net_w, dt_s)
    shed = net_w - charge if net_w > 0 else 0.0
    unmet = -net_w - give if net_w < 0 else 0.0
    return PowerStep(net_w, charge, give, shed, unmet, energy)


class Battery:
    """The storage node: integrates its state of charge."""

    def __init__(self, spec: BusSpec, soc: float = 1.0):
        self.spec = spec
        self.energy_wh = float(np.clip(soc, 0.0, 1.0)) * spec.battery_capacity_wh

    @property
    def soc(self) -> float:
        return self.energy_wh / self.spec.battery_capacity_wh

    def step(self, dt_s: float, net_w: float) -> PowerStep:
        result = battery_after(self.spec, self.energy_wh, net_w, dt_s)
        self.energy_wh = result.battery_wh
        return result


class PowerSystem:
    """Array, loads and battery on one bus; `step` advances it by one interval."""

    def __init__(self, spec: BusSpec, soc: float = 1.0):
        self.spec = spec
        self.array = SolarArray(spec)
        self.battery = Battery(spec, soc)

    def step(self, dt_s: float, array_w: float, gpu_w: float, heater_w: float = 0.0) -> PowerStep:
        """Advance `dt_s` with the array giving `array_w`, the GPU drawing `gpu_w` and its
        heaters `heater_w`."""
        return self.battery.step(dt_s, array_w - load_w(self.spec, gpu_w, heater_w))
