"""Fly the bus along the orbit: the twin's state for all ticks at once, then one tight loop of
governor decision -> power step -> thermal step per tick (each tick's inputs held over the
interval that follows it)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from skyrack.bus.governor import BusNow, Decision, EclipseSchedule, Governor, OrbitNow
from skyrack.bus.power import PowerSystem, irradiance_w_m2
from skyrack.bus.radiation import RadiationModel
from skyrack.bus.spec import BusSpec
from skyrack.bus.thermal import KELVIN, ThermalModel, celsius
from skyrack.errors import UserError

MAX_TICKS = 2_000_000


@dataclass
class BusTimeline:
    """The bus at every tick; powers in W, energies in Wh, temperatures in deg C.
    Row i holds the state at time[i] and the decision/powers held over [time[i], time[i] + tick_s)."""

    spec: BusSpec
    tick_s: float
    time: np.ndarray
    sunlit: np.ndarray
    array_w: np.ndarray
    load_w: np.ndarray
    gpu_w: np.ndarray  # what the GPU draws (cap, or idle when paused)
    gpu_cap_w: np.ndarray  # 0 while paused
    heater_w: np.ndarray  # the GPU's survival + operational heaters
    shed_w: np.ndarray
    unmet_w: np.ndarray
    battery_wh: np.ndarray  # at the start of the tick; `final_battery_wh` after the last
    soc: np.ndarray
    temp_c: np.ndarray  # GPU die
    radiator_c: np.ndarray
    upset_rate: np.ndarray  # upsets/bit/day
    gpu_upsets_per_s: np.ndarray
    dose: np.ndarray  # rad(Si) accumulated since the start
    in_saa: np.ndarray
    throughput: np.ndarray  # fraction of uncapped training speed
    final_battery_wh: float = 0.0
    events: list[Decision] = field(default_factory=list)

    def summary(self, eclipse_entries: int | None = None) -> dict:
        dt_h = self.tick_s / 3600.0
        running = self.gpu_cap_w > 0
        pauses = sum(1 for e in self.events if e.kind == "pause" and e.time_s > self.time[0])
        return {
            "hours": round(len(self.time) * self.tick_s / 3600.0, 3),
            "energy_in_wh": round(float(self.array_w.sum() * dt_h), 1),
            "energy_used_wh": round(float(self.load_w.sum() * dt_h), 1),
            "energy_shed_wh": round(float(self.shed_w.sum() * dt_h), 1),
            "energy_unmet_wh": round(float(self.unmet_w.sum() * dt_h), 3),
            "battery_start_wh": round(float(self.battery_wh[0]), 1),
            "battery_end_wh": round(float(self.final_battery_wh), 1),
            "min_soc": round(float(self.soc.min()), 4),
            "reserve_soc": self.spec.battery_reserve_fraction,
            "max_temp_c": round(float(self.temp_c.max()), 2),
            "temp_limit_c": self.spec.gpu_temp_limit_c,
            "min_running_temp_c": round(float(self.temp_c[running].min()), 2) if running.any() else None,
            "min_operating_temp_c": self.spec.gpu_min_operating_temp_c,
            "heater_energy_wh": round(float(self.heater_w.sum() * dt_h), 1),
            "heater_max_w": round(float(self.heater_w.max()), 1),
            "gpu_duty": round(float(running.mean()), 4),
            "gpu_average_cap_w": round(float(self.gpu_cap_w[running].mean()) if running.any() else 0.0, 1),
            "throughput": round(float(self.throughput.mean()), 4),
            "pauses": pauses,
            "eclipses": int(
                eclipse_entries
                if eclipse_entries is not None
                else np.count_nonzero((self.sunlit[1:] < 0.5) & (self.sunlit[:-1] >= 0.5))
            ),
            "sunlit_fraction": round(float(self.sunlit.mean()), 4),
            "expected_gpu_upsets": round(float(self.gpu_upsets_per_s.sum() * self.tick_s), 1),
            "dose_rad": round(float(self.dose[-1]), 5),
        }


@dataclass(frozen=True)
class BusInputs:
    """What the orbit gives the bus at each instant (arrays over an OrbitState)."""

    array_full_w: np.ndarray  # array output in full sunlight
    array_w: np.ndarray  # array output with the twin's sunlit fraction
    env_w: np.ndarray  # environmental heat the radiator absorbs
    env_bound_w: np.ndarray  # the most it could absorb on this orbit plane (for the governor)


def bus_inputs(state, power: PowerSystem, thermal: ThermalModel, lit=None) -> BusInputs:
    """The orbit's inputs to the bus models; vectorized, and fine for one instant too. `lit`
    (default: the twin's sunlit fraction at each instant) is the share of sunlight the array
    gets; `simulate` passes each tick's average so that coarse ticks keep the energy right."""
    full = power.array.full_sun_w(state.seconds, irradiance_w_m2(state.r_teme, state.sun_teme))
    lit = state.sunlit if lit is None else lit
    return BusInputs(full, full * lit, thermal.environment_w(state), thermal.environment_bound_w(state))


def simulate(
    profile,
    twin,
    start: float,
    hours: float,
    tick_s: float = 10.0,
    *,
    initial_soc: float = 1.0,
    initial_temp_c: float | None = None,
    governor: Governor | None = None,
    graded_saa: bool = False,
) -> BusTimeline:
    """The bus over `hours` from `start` (POSIX s) at `tick_s` steps, governed."""
    if not hours > 0 or not tick_s > 0:
        raise UserError(f"hours and tick must be positive, got {hours} and {tick_s}")
    n = int(round(hours * 3600.0 / tick_s))
    if n > MAX_TICKS:
        raise UserError(f"{n} ticks is too many; use a larger tick")
    n = max(n, 1)
    spec = BusSpec.from_profile(profile)
    seconds = start + np.arange(n) * tick_s
    state = twin.state(seconds)

    power = PowerSystem(spec, initial_soc)
    thermal = ThermalModel(spec)
    radiation = RadiationModel.for_orbit(spec, twin, start, graded_saa)
    governor = governor or Governor(spec, env_floor_w=thermal.infrared_w(float(state.alt_km.min())))
    heaters = governor.heaters
    schedule = EclipseSchedule.from_twin(twin, float(seconds[0]), float(seconds[-1]) + tick_s)

    # Ticks that hold an eclipse edge get the share of the tick spent in sunlight; the others the
    # twin's own fraction (which keeps penumbra where ticks are short enough to see it)
    lit = schedule.lit_fraction(seconds, tick_s)
    lit = np.where((lit > 0.0) & (lit < 1.0), lit, state.sunlit)
    inputs = bus_inputs(state, power, thermal, lit)
    if initial_temp_c is None:  # at equilibrium with an idle GPU, the heaters holding it ready
        thermal.radiator_k = heaters.initial_node_k(thermal, float(inputs.env_w[0]))
    else:
        thermal.radiator_k = initial_temp_c + KELVIN

    gpu = np.empty(n)
    cap = np.empty(n)
    heat = np.empty(n)
    shed = np.empty(n)
    unmet = np.empty(n)
    battery = np.empty(n)
    radiator = np.empty(n)
    events_before = len(governor.events)
    r_thermal = spec.gpu_thermal_resistance_k_per_w
    times, sunlit = seconds.tolist(), state.sunlit.tolist()
    full_l, array_l = inputs.array_full_w.tolist(), inputs.array_w.tolist()
    env_l, bound_l = inputs.env_w.tolist(), inputs.env_bound_w.tolist()
    for i in range(n):
        t, lit = times[i], sunlit[i]
        light = schedule.window(t, lit < 0.5)
        decision = governor.decide(
            OrbitNow(t, lit),
            BusNow(power.battery.energy_wh, thermal.radiator_k, full_l[i], bound_l[i]),
            light,
        )
        battery[i] = power.battery.energy_wh
        radiator[i] = thermal.radiator_k
        heater_w = sum(heaters.power_w(thermal, tick_s, decision.gpu_w, env_l[i], decision.warm_w))
        step = power.step(tick_s, array_l[i], decision.gpu_w, heater_w)
        thermal.step(tick_s, decision.gpu_w, env_l[i], heater_w)
        gpu[i], cap[i], heat[i] = decision.gpu_w, decision.cap_w, heater_w
        shed[i], unmet[i] = step.shed_w, step.unmet_w

    loads = spec.bus_baseline_power_w + gpu + heat
    rate = radiation.upset_rate_per_bit_day(state.lat_deg, state.lon_deg)
    throughput = np.where(
        cap > 0,
        (np.minimum(cap, spec.gpu_max_power_w) / spec.gpu_max_power_w) ** spec.gpu_power_speed_exponent,
        0.0,
    )
    return BusTimeline(
        spec=spec,
        tick_s=tick_s,
        time=seconds,
        sunlit=state.sunlit,
        array_w=inputs.array_w,
        load_w=loads,
        gpu_w=gpu,
        gpu_cap_w=cap,
        heater_w=heat,
        shed_w=shed,
        unmet_w=unmet,
        battery_wh=battery,
        soc=battery / spec.battery_capacity_wh,
        temp_c=celsius(radiator) + gpu * r_thermal,
        radiator_c=celsius(radiator),
        upset_rate=rate,
        gpu_upsets_per_s=rate * spec.gpu_bits / 86400.0,
        dose=radiation.accumulated_dose_rad(seconds, state.lat_deg, state.lon_deg),
        in_saa=state.in_saa,
        throughput=throughput,
        final_battery_wh=power.battery.energy_wh,
        events=governor.events[events_before:],
    )
