"""The spacecraft on the mission clock: the orbit twin and the bus models stepped one control
tick at a time, with the same functions `skyrack.bus.simulate` uses (bus_inputs, the governor,
PowerSystem.step, ThermalModel.step), so a mission and `skyrack power` fly the same physics.

The twin is vectorized: the orbit, the bus inputs and the region beneath are computed for a
batch of ticks at once and handed out one tick at a time. Each tick's inputs are held over the
tick that follows it, as in `simulate`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skyrack.bus.governor import BusNow, Decision, EclipseSchedule, Governor, OrbitNow, throughput_fraction
from skyrack.bus.power import PowerStep, PowerSystem
from skyrack.bus.radiation import RadiationModel
from skyrack.bus.simulate import bus_inputs
from skyrack.bus.spec import BusSpec
from skyrack.bus.thermal import KELVIN, ThermalModel

BATCH = 128  # ticks per vectorized call of the twin


@dataclass(frozen=True)
class Now:
    """The orbit and the bus's inputs at one tick (SI, angles in degrees)."""

    t: float
    lat_deg: float
    lon_deg: float
    alt_km: float
    speed_km_s: float
    sunlit: float
    beta_deg: float
    in_saa: bool
    region: str
    area: str
    array_w: float  # array output over the tick (the tick's share of sunlight)
    array_full_w: float
    env_w: float
    env_bound_w: float
    upsets_per_s: float  # expected upsets a second in the whole GPU memory
    dose_rate_rad_s: float


class Spacecraft:
    def __init__(
        self, profile, twin, index, *, start_s: float, end_s: float, tick_s: float, initial_soc: float
    ):
        self.spec = spec = BusSpec.from_profile(profile)
        self.twin, self.index, self.tick_s, self.start_s = twin, index, tick_s, start_s
        self.power = PowerSystem(spec, initial_soc)
        self.thermal = ThermalModel(spec)
        # measured over a day from the mission's start: the same on every resume
        self.radiation = RadiationModel.for_orbit(spec, twin, start_s)
        self.schedule = EclipseSchedule.from_twin(twin, start_s, end_s)
        self.dose_rad = 0.0
        self._ahead: dict[int, Now] = {}
        self._look_ahead(0)
        first = self._ahead[0]
        self.governor = Governor(spec, env_floor_w=self.thermal.infrared_w(first.alt_km))
        self.heaters = self.governor.heaters
        self.thermal.radiator_k = self.heaters.initial_node_k(self.thermal, first.env_w)

    # -- the orbit, a batch at a time ----------------------------------------------------------
    def time_of(self, k: int) -> float:
        return self.start_s + k * self.tick_s

    def at(self, k: int) -> Now:
        """The orbit at tick `k` (time start + k x tick)."""
        now = self._ahead.pop(k, None)
        if now is None:
            self._look_ahead(k)
            now = self._ahead.pop(k)
        return now

    def _look_ahead(self, k0: int) -> None:
        seconds = self.start_s + (k0 + np.arange(BATCH)) * self.tick_s
        state = self.twin.state(seconds)
        lit = self.schedule.lit_fraction(seconds, self.tick_s)
        lit = np.where((lit > 0.0) & (lit < 1.0), lit, state.sunlit)
        inputs = bus_inputs(state, self.power, self.thermal, lit)
        codes = self.index.lookup(state.lat_deg, state.lon_deg)
        upsets = self.radiation.gpu_upsets_per_s(state.lat_deg, state.lon_deg)
        dose = self.radiation.dose_rate_rad_per_s(state.lat_deg, state.lon_deg)
        regions = {int(c): self.index.region(int(c)) for c in np.unique(codes)}
        columns = zip(
            seconds.tolist(),
            state.lat_deg.tolist(),
            state.lon_deg.tolist(),
            state.alt_km.tolist(),
            state.speed_km_s.tolist(),
            state.sunlit.tolist(),
            state.beta_deg.tolist(),
            state.in_saa.tolist(),
            codes.tolist(),
            inputs.array_w.tolist(),
            inputs.array_full_w.tolist(),
            inputs.env_w.tolist(),
            inputs.env_bound_w.tolist(),
            upsets.tolist(),
            dose.tolist(),
        )
        self._ahead = {}
        for i, (
            t,
            lat,
            lon,
            alt,
            speed,
            sunlit,
            beta,
            saa,
            code,
            array,
            full,
            env,
            bound,
            up,
            dr,
        ) in enumerate(columns):
            region = regions[code]
            self._ahead[k0 + i] = Now(
                t,
                lat,
                lon,
                alt,
                speed,
                sunlit,
                beta,
                bool(saa),
                region.name,
                region.area,
                array,
                full,
                env,
                bound,
                up,
                dr,
            )

    # -- the bus ---------------------------------------------------------------------------------
    def decide(self, now: Now) -> Decision:
        light = self.schedule.window(now.t, now.sunlit < 0.5)
        return self.governor.decide(
            OrbitNow(now.t, now.sunlit),
            BusNow(self.power.battery.energy_wh, self.thermal.radiator_k, now.array_full_w, now.env_bound_w),
            light,
        )

    def throughput(self, cap_w: float) -> float:
        return throughput_fraction(cap_w, self.spec.gpu_max_power_w, self.spec.gpu_power_speed_exponent)

    def gpu_draw_w(self, cap_w: float) -> float:
        return cap_w if cap_w > 0 else self.spec.gpu_idle_power_w

    def gpu_temp_c(self, gpu_w: float) -> float:
        return self.thermal.gpu_temperature_k(gpu_w) - KELVIN

    @staticmethod
    def ready_w(cap_w: float, decision: Decision) -> float | None:
        """The GPU draw the operational heaters keep the die warm enough for: the cap in force,
        or, while the GPU waits, the cap the governor waits to run at (None: survival only)."""
        return cap_w if cap_w > 0 else decision.warm_w

    def runnable_cap(self, cap_w: float) -> float:
        """`cap_w`, or 0 where running at it would hold the die below its minimum operating
        temperature (an operator's cap under the governor's: the GPU waits for the heaters)."""
        if cap_w > 0 and self.gpu_temp_c(cap_w) < self.spec.gpu_min_operating_temp_c:
            return 0.0
        return cap_w

    def heater_w(self, now: Now, gpu_w: float, warm_w: float | None) -> float:
        """What the GPU's heaters draw over this tick (survival, and operational while the die
        is kept warm enough to run at `warm_w`)."""
        return sum(self.heaters.power_w(self.thermal, self.tick_s, gpu_w, now.env_w, warm_w))

    def bus_values(
        self, now: Now, cap_w: float, gpu_w: float, heater_w: float, fraction: float, stress: float = 1.0
    ) -> dict:
        """The orbit, power, GPU and radiation channels of one tick, before it is advanced
        (`stress` scales the upset rate as the faults are drawn)."""
        battery = self.power.battery.energy_wh
        return {
            "orbit.lat_deg": now.lat_deg,
            "orbit.lon_deg": now.lon_deg,
            "orbit.alt_km": now.alt_km,
            "orbit.speed_km_s": now.speed_km_s,
            "orbit.sunlit": now.sunlit,
            "orbit.beta_deg": now.beta_deg,
            "orbit.in_saa": now.in_saa,
            "orbit.region": now.region,
            "orbit.area": now.area,
            "power.array_w": now.array_w,
            "power.load_w": self.spec.bus_baseline_power_w + gpu_w + heater_w,
            "power.battery_soc": battery / self.spec.battery_capacity_wh,
            "power.battery_wh": battery,
            "gpu.cap_w": cap_w,
            "gpu.temp_c": self.gpu_temp_c(gpu_w),
            "gpu.heater_w": heater_w,
            "gpu.throughput": fraction,
            "radiation.upset_rate": now.upsets_per_s * stress,
            "radiation.dose_rad": self.dose_rad,
        }

    def advance(self, now: Now, gpu_w: float, heater_w: float = 0.0) -> PowerStep:
        """Hold this tick's inputs and draw over the tick."""
        step = self.power.step(self.tick_s, now.array_w, gpu_w, heater_w)
        self.thermal.step(self.tick_s, gpu_w, now.env_w, heater_w)
        self.dose_rad += now.dose_rate_rad_s * self.tick_s
        return step

    def restore(self, battery_wh: float, gpu_temp_c: float, gpu_w: float, dose_rad: float) -> None:
        """The bus as a frame recorded it (die temperature back to the radiator node)."""
        self.power.battery.energy_wh = float(battery_wh)
        self.thermal.radiator_k = (
            float(gpu_temp_c) + KELVIN - gpu_w * self.spec.gpu_thermal_resistance_k_per_w
        )
        self.dose_rad = float(dose_rad)

    def next_light_change(self, t: float, sunlit: float) -> tuple[str, float] | None:
        """('eclipse' | 'sunlight', seconds until it) from the eclipse schedule."""
        window = self.schedule.window(t, sunlit < 0.5)
        if sunlit < 0.5:
            return ("sunlight", window.exit_s - t) if window.exit_s is not None else None
        return ("eclipse", window.entry_s - t) if window.entry_s is not None else None
