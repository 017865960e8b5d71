"""Heat: a lumped GPU + radiator node and its environment.

Model and its assumptions (each a choice of this project, stated as such):
- One thermal node: the radiator panel and everything bolted to it (cold plate, heat pipes,
  structure), with heat capacity C (J/K). It takes the GPU's whole electrical draw as heat; the
  bus's own baseline dissipation leaves through the bus's other surfaces and is not modelled.
- The GPU die sits above the node by a fixed thermal resistance: T_gpu = T_node + P_gpu x R.
  The die's own heat capacity is small next to C, so it follows its power within seconds.
- The radiator is a flat two-sided plate of area A (each side A) whose faces point along
  +- the orbit normal: it stays edge-on to the Earth and, for a sun-tracking spacecraft, sees the
  Sun only at the beta angle. It emits eps x sigma x T^4 from both faces.
- Loads it absorbs (absorptivity alpha for sunlight and albedo, emissivity eps for infrared):
  * Sun on one face: alpha x E x A x |sin beta| x sunlit fraction.
  * Earth IR on both faces: eps x 237 W/m2 x F x 2A.
  * Albedo on both faces: alpha x 0.30 x E x F x 2A x max(0, cos theta), theta the angle
    between the satellite's position and the Sun (zero over the subsolar point), a common
    first approximation that ignores the sunlit crescent seen near the terminator.
  F is the view factor from a plate whose normal is horizontal to a sphere seen from
  H = (R_E + h) / R_E: F = (arctan(1/X) - X / H^2) / pi with X = sqrt(H^2 - 1) (Gilmore,
  Spacecraft Thermal Control Handbook; checked here by Monte Carlo): 0.267 at 500 km.
- The node integrates C dT/dt = P_gpu + P_heaters + Q_env - eps sigma 2A T^4 with a
  backward-Euler step linearized in T^4: unconditionally stable for any step and exact at
  equilibrium.
- Heaters (`Heaters`) sit on the same node and draw their power from the bus, as on any
  spacecraft whose radiator is sized for the payload's full dissipation: a survival heater holds
  the node at the profile's survival temperature at all times, and an operational heater holds
  the die at its minimum operating temperature (plus a margin) while the GPU runs or is about to.
  Each is a thermostat with an ideal proportional band: over a tick it gives the power that
  brings the node to its setpoint at the tick's end, up to its rated power.
"""

from __future__ import annotations

import math

import numpy as np

from skyrack.bus.constants import EARTH_ALBEDO, EARTH_IR_W_M2, KELVIN
from skyrack.bus.constants import STEFAN_BOLTZMANN as SIGMA
from skyrack.bus.power import irradiance_w_m2
from skyrack.bus.spec import BusSpec

EARTH_RADIUS_KM = 6371.0


def equilibrium_temperature(
    load_w: float, area_m2: float, emissivity: float, absorbed_w: float = 0.0, sides: int = 2
) -> float:
    """Radiator temperature (K) at which `sides` faces of `area_m2` each emit, by
    Stefan-Boltzmann, exactly the internal load plus the absorbed environmental heat."""
    total = max(0.0, load_w + absorbed_w)
    return (total / (emissivity * SIGMA * sides * area_m2)) ** 0.25


def view_factor_vertical_plate(alt_km) -> np.ndarray:
    """View factor from one face of a plate with a horizontal normal to the Earth."""
    h = (EARTH_RADIUS_KM + np.asarray(alt_km, dtype=float)) / EARTH_RADIUS_KM
    x = np.sqrt(h * h - 1.0)
    return (np.arctan(1.0 / x) - x / (h * h)) / np.pi


class ThermalModel:
    """The GPU/radiator node; `step` advances its temperature by one interval."""

    def __init__(self, spec: BusSpec, radiator_k: float | None = None):
        self.spec = spec
        self.radiator_k = float(radiator_k) if radiator_k is not None else KELVIN
        self._emit = spec.radiator_emissivity * SIGMA * 2.0 * spec.radiator_area_m2  # W/K^4

    # -- environment (vectorized over an OrbitState) ----------------------------------------
    def environment_w(self, state) -> np.ndarray:
        """Heat the radiator absorbs from Sun, albedo and Earth IR at each instant (W)."""
        return self._environment(state.r_teme, state.sun_teme, state.alt_km, state.beta_deg, state.sunlit)

    def environment_bound_w(self, state) -> np.ndarray:
        """The same with the Sun full on and albedo as over the subsolar point: the most the
        radiator can absorb on this orbit plane (beta changes by a few degrees a day)."""
        return self._environment(state.r_teme, state.sun_teme, state.alt_km, state.beta_deg, 1.0, worst=True)

    def _environment(self, r, sun, alt_km, beta_deg, sunlit, worst: bool = False) -> np.ndarray:
        s = self.spec
        area = s.radiator_area_m2
        irradiance = irradiance_w_m2(r, sun)
        f = view_factor_vertical_plate(alt_km)
        solar = s.radiator_absorptivity * irradiance * area * np.abs(np.sin(np.radians(beta_deg))) * sunlit
        if worst:
            cos_theta = 1.0
        else:
            rhat = r / np.linalg.norm(r, axis=0)
            shat = sun / np.linalg.norm(sun, axis=0)
            cos_theta = np.maximum(0.0, np.sum(rhat * shat, axis=0))
        albedo = s.radiator_absorptivity * EARTH_ALBEDO * irradiance * f * 2.0 * area * cos_theta
        infrared = s.radiator_emissivity * EARTH_IR_W_M2 * f * 2.0 * area
        return solar + albedo + infrared

    # -- the node --------------------------------------------------------------------------
    def equilibrium_k(self, gpu_w: float, env_w: float) -> float:
        return equilibrium_temperature(
            gpu_w, self.spec.radiator_area_m2, self.spec.radiator_emissivity, env_w
        )

    def gpu_temperature_k(self, gpu_w: float, radiator_k: float | None = None) -> float:
        node = self.radiator_k if radiator_k is None else radiator_k
        return node + gpu_w * self.spec.gpu_thermal_resistance_k_per_w

    def node_after(self, dt_s: float, heat_w: float) -> float:
        """The node's temperature (K) after `dt_s` with `heat_w` in from the GPU, the heaters and
        the environment; the state is not changed."""
        t = self.radiator_k
        emit = self._emit
        t3 = t * t * t
        return t + dt_s * (heat_w - emit * t3 * t) / (self.spec.thermal_mass_j_per_k + dt_s * 4.0 * emit * t3)

    def heat_to_reach_w(self, target_k: float, dt_s: float) -> float:
        """The heat input (W) that brings the node to `target_k` in `dt_s` (the inverse of
        `node_after`); negative where the node gets there unheated."""
        t = self.radiator_k
        emit = self._emit
        t3 = t * t * t
        return (target_k - t) * (
            self.spec.thermal_mass_j_per_k + dt_s * 4.0 * emit * t3
        ) / dt_s + emit * t3 * t

    def step(self, dt_s: float, gpu_w: float, env_w: float, heater_w: float = 0.0) -> float:
        """Advance `dt_s` with the GPU dissipating `gpu_w`, the heaters `heater_w` and the
        environment giving `env_w`; returns the node's new temperature (K)."""
        self.radiator_k = self.node_after(dt_s, gpu_w + heater_w + env_w)
        return self.radiator_k

    def infrared_w(self, alt_km: float) -> float:
        """Earth infrared on both faces at `alt_km`: all the environment gives in eclipse."""
        s = self.spec
        return float(
            s.radiator_emissivity
            * EARTH_IR_W_M2
            * view_factor_vertical_plate(alt_km)
            * 2.0
            * s.radiator_area_m2
        )

    def time_constant_s(self, at_k: float) -> float:
        """How fast the node relaxes near `at_k` (s): C / (4 eps sigma 2A T^3)."""
        return self.spec.thermal_mass_j_per_k / (4.0 * self._emit * at_k**3)


class Heaters:
    """The survival and operational heaters of the GPU's node (see the module's notes)."""

    def __init__(self, spec: BusSpec, margin_k: float = 2.0):
        self.spec = spec
        self.survival_k = spec.survival_temp_c + KELVIN
        self.min_operating_k = spec.gpu_min_operating_temp_c + KELVIN
        self.setpoint_k = self.min_operating_k + margin_k  # the die's, while it is to operate
        self._emit = spec.radiator_emissivity * SIGMA * 2.0 * spec.radiator_area_m2

    def node_setpoint_k(self, gpu_w: float, operating: bool) -> float:
        """The node temperature the heaters hold: the survival one, or (operating) the one that
        puts the die drawing `gpu_w` at its operating setpoint, whichever is warmer."""
        if not operating:
            return self.survival_k
        return max(self.survival_k, self.setpoint_k - gpu_w * self.spec.gpu_thermal_resistance_k_per_w)

    def power_w(
        self, thermal: ThermalModel, dt_s: float, gpu_w: float, env_w: float, warm_w: float | None
    ) -> tuple[float, float]:
        """(survival W, operational W) over the next `dt_s` with the GPU drawing `gpu_w`; the
        operational heater keeps the die warm enough to run at `warm_w` (None: it is off)."""
        s = self.spec
        survival = min(
            s.heater_survival_w, max(0.0, thermal.heat_to_reach_w(self.survival_k, dt_s) - gpu_w - env_w)
        )
        if warm_w is None:
            return survival, 0.0
        need = thermal.heat_to_reach_w(self.node_setpoint_k(warm_w, True), dt_s) - gpu_w - env_w - survival
        return survival, min(s.heater_operational_w, max(0.0, need))

    def steady_w(self, gpu_w: float, env_w: float, operating: bool) -> float:
        """What the heaters draw once the node has settled with the GPU at `gpu_w` and `env_w`
        from the environment (the governor's estimate for its energy plan; an upper bound, as
        the node's heat capacity delays the cooling)."""
        s = self.spec
        t = self.node_setpoint_k(gpu_w, operating)
        cap = s.heater_survival_w + (s.heater_operational_w if operating else 0.0)
        return min(cap, max(0.0, self._emit * t**4 - gpu_w - env_w))

    def initial_node_k(self, thermal: ThermalModel, env_w: float) -> float:
        """Where a run starts: the node at equilibrium with an idle GPU, or, if that is colder, at
        the heaters' operating setpoint (the heaters have held the payload ready)."""
        idle = self.spec.gpu_idle_power_w
        return max(thermal.equilibrium_k(idle, env_w), self.node_setpoint_k(idle, True))


def celsius(kelvin):
    return kelvin - KELVIN


def max_power_for_temperature(spec: BusSpec, limit_k: float, env_w: float, radiator_k: float) -> float:
    """The highest GPU power (W) whose die temperature stays at or below `limit_k` both now
    (over a node at `radiator_k`) and at equilibrium with `env_w` of environmental heat.

    Once the node is at or below its equilibrium for a power P, it can only approach it, so a
    P meeting both conditions keeps the die under the limit for as long as the environment
    stays below `env_w`."""
    r = spec.gpu_thermal_resistance_k_per_w
    now = (limit_k - radiator_k) / r if r > 0 else math.inf

    def die_at_equilibrium(p: float) -> float:
        return equilibrium_temperature(p, spec.radiator_area_m2, spec.radiator_emissivity, env_w) + p * r

    lo, hi = 0.0, spec.gpu_max_power_w
    if die_at_equilibrium(hi) <= limit_k:
        return min(hi, now)
    if die_at_equilibrium(lo) > limit_k:
        return min(0.0, now)
    for _ in range(14):  # 700 W / 2^14: well under a watt
        mid = 0.5 * (lo + hi)
        if die_at_equilibrium(mid) <= limit_k:
            lo = mid
        else:
            hi = mid
    return min(lo, now)
