"""The governor: at each control tick, how much power the GPU may draw, or whether it pauses.

It plans rather than clamps. Each tick it looks ahead to the end of the next eclipse (the low
point of the battery on any orbit; inside an eclipse, to the end of this one and of the next) and
picks the highest power cap whose predicted battery
energy there stays above the reserve plus a margin, with the same battery function the power
model integrates. Throughput is concave in the cap, so one cap held through sunlight and
eclipse beats running fast and pausing; only when no cap of at least `min_cap_w` (below) can be
held through the eclipse does it plan to run in sunlight and pause for the eclipse, and then it
says so `checkpoint_lead_s` ahead ("checkpoint-before-pause") so the trainer can save first.

Heat is held the same way: a cap is allowed only if the die stays under the limit minus a
margin both now and at the radiator's equilibrium for that cap under the most environmental heat
this orbit plane can bring (`max_power_for_temperature`). The node can only approach that
equilibrium, so the limit holds between ticks without a forecast of the node's path.

Cold is held too. The GPU never runs below its minimum operating temperature: while the die at
the chosen cap would be colder, the GPU waits and the operational heaters warm it (`warm_w` of
the decision: the power they prepare the die for). Below the cap at which its own heat keeps the
die warm through an eclipse (`min_cap_w`, over Earth infrared alone) the heaters would have to make
up the difference, so no lower cap is ever chosen: it would draw as much from the bus for less
training. The energy plan counts the survival heater wherever it plans a paused GPU in eclipse.

Power-to-speed (an assumption, per profile): throughput fraction = (cap / max) ^ exponent, with
exponent `gpu_power_speed_exponent` (0.7 for the H100 profiles: power-capping notes report
10-15% slower transformer training at 600 W of 700, i.e. exponents of 0.7-1.0).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np

from skyrack.bus.power import battery_flows
from skyrack.bus.spec import BusSpec
from skyrack.bus.thermal import KELVIN, Heaters, max_power_for_temperature


def throughput_fraction(cap_w: float, max_w: float, exponent: float) -> float:
    """Training speed at power cap `cap_w` relative to the uncapped GPU; 0 when paused."""
    if cap_w <= 0:
        return 0.0
    return min(1.0, cap_w / max_w) ** exponent


@dataclass(frozen=True)
class OrbitNow:
    """What the governor needs of the orbit at this tick."""

    time_s: float
    sunlit: float  # visible fraction of the solar disk, 0..1


@dataclass(frozen=True)
class BusNow:
    """What the governor needs of the bus at this tick."""

    battery_wh: float
    radiator_k: float
    array_full_w: float  # what the array gives in full sunlight now
    env_bound_w: float  # the most environmental heat the radiator can absorb on this orbit plane


@dataclass(frozen=True)
class LightWindow:
    """The coming changes of light. In sunlight: the next eclipse's entry and exit. In eclipse:
    entry is None, exit ends this eclipse, and then_entry/then_exit bound the one after it.
    None where no eclipse lies ahead in the schedule."""

    entry_s: float | None
    exit_s: float | None
    then_entry_s: float | None = None
    then_exit_s: float | None = None


@dataclass(frozen=True)
class Decision:
    """One tick's decision. Kinds: hold (nothing changes), set-cap, pause, resume,
    checkpoint-before-pause. `checkpoint` asks the trainer to save now (set on the
    checkpoint-before-pause decision, and on a pause that could not be foreseen)."""

    time_s: float
    kind: str
    cap_w: float  # the power cap in force; 0 while paused
    reason: str
    running: bool
    gpu_w: float  # what the GPU draws: its cap, or its idle power when paused
    checkpoint: bool = False
    warm_w: float | None = None  # the draw the heaters keep the die warm enough for; None: survival only

    def as_dict(self) -> dict:
        from skyrack.orbit.timebase import iso

        return {
            "time": iso(self.time_s),
            "kind": self.kind,
            "cap_w": round(self.cap_w, 1),
            "reason": self.reason,
            "running": self.running,
            "checkpoint": self.checkpoint,
        }


class EclipseSchedule:
    """Eclipse entries and exits from the twin, answering `window(t)` by binary search."""

    def __init__(self, crossings, start_s: float | None = None):
        self.start_s = start_s  # where the search for crossings began
        self.entries = sorted(c.seconds for c in crossings if not c.rising)
        self.exits = sorted(c.seconds for c in crossings if c.rising)

    @classmethod
    def from_twin(cls, twin, start_s: float, end_s: float) -> EclipseSchedule:
        begin = start_s - twin.period_s
        return cls(twin.eclipses(begin, end_s + 2.0 * twin.period_s), begin)

    def lit_fraction(self, seconds, dt_s: float) -> np.ndarray:
        """Share of each interval [t, t + dt_s) spent outside eclipse, counting the half-disk
        crossing as the edge (penumbra lasts seconds and is nearly symmetric about it)."""
        begin = self.start_s if self.start_s is not None else -np.inf
        edges, dark = [], 0.0
        entries = list(self.entries)
        if self.exits and (not entries or self.exits[0] < entries[0]):
            entries.insert(0, min(begin, self.exits[0]))  # in eclipse where the search began
        for entry in entries:
            exit_s = _after(self.exits, entry)
            exit_s = exit_s if exit_s is not None else entry + 1e9
            edges += [(entry, dark), (exit_s, dark + exit_s - entry)]
            dark += exit_s - entry
        seconds = np.asarray(seconds, dtype=float)
        if not edges:
            return np.ones_like(seconds)
        when, cumulative = (np.array(x, dtype=float) for x in zip(*edges))
        dark_in = np.interp(seconds + dt_s, when, cumulative) - np.interp(seconds, when, cumulative)
        return np.clip(1.0 - dark_in / dt_s, 0.0, 1.0)

    def window(self, t: float, in_eclipse: bool) -> LightWindow:
        if in_eclipse:
            exit_s = _after(self.exits, t)
            entry2 = _after(self.entries, exit_s) if exit_s is not None else None
            return LightWindow(
                None, exit_s, entry2, _after(self.exits, entry2) if entry2 is not None else None
            )
        entry = _after(self.entries, t - 1.0)  # an entry a moment ago (still sunlit here) is still ahead
        return LightWindow(entry, _after(self.exits, entry) if entry is not None else None)


def _after(times: list[float], t: float) -> float | None:
    i = bisect.bisect_right(times, t)
    return times[i] if i < len(times) else None


class Governor:
    """Call `decide` once per control tick with the state at the tick's start; hold the returned
    decision (`gpu_w`, `cap_w`, `running`, `checkpoint`) until the next tick. Margins: the battery
    is planned to stay `energy_margin_wh` above the reserve (default the larger of 3% of capacity
    and a minute of full load) and the die `temp_margin_k` below its limit; a paused GPU resumes
    only at `resume_hysteresis_w` above its minimum cap; `events` keeps every decision that changed
    something (a cap move of `event_step_w` or more counts)."""

    def __init__(
        self,
        spec: BusSpec,
        *,
        energy_margin_wh: float | None = None,
        temp_margin_k: float = 3.0,
        checkpoint_lead_s: float = 120.0,
        horizon_s: float = 5700.0,
        resume_hysteresis_w: float = 20.0,
        event_step_w: float = 25.0,
        env_floor_w: float = 0.0,
    ):
        self.spec = spec
        # the least environmental heat on this orbit (Earth infrared, in eclipse); 0 if unknown
        self.heaters = Heaters(spec)
        self.min_cap_w = max(spec.gpu_min_power_w, self._self_heating_w(env_floor_w))
        self.survival_w = self.heaters.steady_w(spec.gpu_idle_power_w, env_floor_w, False)
        full_load_w = spec.bus_baseline_power_w + spec.gpu_max_power_w
        self.energy_margin_wh = (
            energy_margin_wh
            if energy_margin_wh is not None
            else max(0.03 * spec.battery_capacity_wh, full_load_w * 60.0 / 3600.0)
        )
        self.target_wh = spec.reserve_wh + self.energy_margin_wh
        self.temp_margin_k = temp_margin_k
        self.limit_k = spec.gpu_temp_limit_c + KELVIN - temp_margin_k
        self.checkpoint_lead_s = checkpoint_lead_s
        self.horizon_s = horizon_s
        self.resume_hysteresis_w = resume_hysteresis_w
        self.event_step_w = event_step_w
        # the discharge limit must never cut the loads: cap the GPU below it
        self.cap_hi = min(spec.gpu_max_power_w, spec.battery_max_discharge_w - spec.bus_baseline_power_w)
        self.running = False
        self.cap_w = 0.0
        self._event_cap_w = None
        self._checkpoint_at: float | None = None
        self._steady_cap: float | None = None
        self.events: list[Decision] = []

    def _self_heating_w(self, env_w: float) -> float:
        """The lowest GPU power whose own heat keeps the die at its operating setpoint, with
        `env_w` of environmental heat, once the node has settled (no heater needed above it)."""
        heaters, lo, hi = self.heaters, 0.0, self.spec.gpu_max_power_w
        if heaters.steady_w(hi, env_w, True) > 0:
            return hi
        for _ in range(14):
            mid = 0.5 * (lo + hi)
            lo, hi = (mid, hi) if heaters.steady_w(mid, env_w, True) > 0 else (lo, mid)
        return float(math.ceil(hi))

    def throughput_fraction(self, cap_w: float) -> float:
        return throughput_fraction(cap_w, self.spec.gpu_max_power_w, self.spec.gpu_power_speed_exponent)

    # -- planning ---------------------------------------------------------------------------
    def _low_point(self, energy_wh, array_w, segments, sun_w, dark_w) -> float:
        """Lowest predicted battery energy at the checked segment ends. `segments` holds
        (duration s, sunlit, checked); the GPU draws `sun_w` in sunlight and `dark_w` in eclipse."""
        base, spec, low = self.spec.bus_baseline_power_w, self.spec, math.inf
        for duration, lit, checked in segments:
            net = (array_w - base - sun_w) if lit else -(base + dark_w)
            energy_wh = battery_flows(spec, energy_wh, net, duration)[2]
            if checked and energy_wh < low:
                low = energy_wh
        return low

    def _max_cap(self, low_point, near: float | None = None) -> float | None:
        """Highest cap in [min, cap_hi] whose predicted low point meets the target, or None.
        `near` (last tick's answer) narrows the bisection when the answer has not moved far."""
        lo, hi = self.min_cap_w, self.cap_hi
        if hi < lo or low_point(lo) < self.target_wh:
            return None
        if low_point(hi) >= self.target_wh:
            return hi
        if near is not None and lo < near - 16.0 and near + 16.0 < hi:
            if low_point(near - 16.0) >= self.target_wh and low_point(near + 16.0) < self.target_wh:
                lo, hi = near - 16.0, near + 16.0
        while hi - lo > 0.5:
            mid = 0.5 * (lo + hi)
            if low_point(mid) >= self.target_wh:
                lo = mid
            else:
                hi = mid
        return float(math.floor(lo))

    def segments(self, orbit: OrbitNow, light: LightWindow) -> list[tuple[float, bool, bool]]:
        """The light ahead as (duration, sunlit, checked) up to the end of the next full eclipse:
        the battery's low points are the ends of eclipses."""
        now = orbit.time_s
        if orbit.sunlit < 0.5:
            if light.exit_s is None:
                return [(self.horizon_s, False, True)]
            plan = [(max(0.0, light.exit_s - now), False, True)]
            if light.then_entry_s is not None and light.then_exit_s is not None:
                plan += [
                    (light.then_entry_s - light.exit_s, True, False),
                    (light.then_exit_s - light.then_entry_s, False, True),
                ]
            return plan
        if light.entry_s is None:
            return [(self.horizon_s, True, True)]
        eclipse = (light.exit_s - light.entry_s) if light.exit_s is not None else self.horizon_s
        return [(max(0.0, light.entry_s - now), True, False), (eclipse, False, True)]

    def plan(self, orbit: OrbitNow, bus: BusNow, light: LightWindow) -> tuple[float | None, str, str]:
        """(energy cap or None, mode, reason). Modes: steady (one cap through the next eclipse),
        sun-only (run now, pause at the next eclipse entry), none (pause now)."""
        energy, array_w = bus.battery_wh, bus.array_full_w
        segments = self.segments(orbit, light)
        low = f"{self.target_wh / self.spec.battery_capacity_wh:.0%}"
        where = "over the next orbit" if len(segments) == 1 and segments[0][1] else "at the next eclipse exit"
        cap = self._max_cap(lambda p: self._low_point(energy, array_w, segments, p, p), self._steady_cap)
        self._steady_cap = cap
        if cap is not None:
            if cap >= self.cap_hi:
                return cap, "steady", "energy allows full power"
            return cap, "steady", f"energy: {cap:.0f} W keeps the battery above {low} {where}"
        if orbit.sunlit >= 0.5 and len(segments) == 2:
            paused = self.spec.gpu_idle_power_w + self.survival_w
            cap = self._max_cap(lambda p: self._low_point(energy, array_w, segments, p, paused))
            if cap is not None:
                return (
                    cap,
                    "sun-only",
                    (
                        f"energy: no cap can be held through the {segments[1][0] / 60:.0f} min "
                        f"eclipse; run at {cap:.0f} W in sunlight, pause in eclipse"
                    ),
                )
        return (
            None,
            "none",
            f"energy: even {self.min_cap_w:.0f} W would take the battery below {low} {where}",
        )

    # -- the tick ---------------------------------------------------------------------------
    def decide(self, orbit: OrbitNow, bus: BusNow, light: LightWindow) -> Decision:
        now = orbit.time_s
        energy_cap, mode, reason = self.plan(orbit, bus, light)
        thermal_cap = max_power_for_temperature(self.spec, self.limit_k, bus.env_bound_w, bus.radiator_k)
        cap = energy_cap
        min_w = self.min_cap_w
        if cap is not None and thermal_cap < cap:
            cap = float(math.floor(thermal_cap))
            reason = (
                f"thermal: {cap:.0f} W keeps the GPU below {self.limit_k - KELVIN:.0f} C"
                if cap >= min_w
                else f"thermal: even {min_w:.0f} W would take the GPU above {self.limit_k - KELVIN:.0f} C"
            )
        resume_w = min_w if self.running else min(min_w + self.resume_hysteresis_w, self.cap_hi)
        can_run = cap is not None and cap >= resume_w
        warm_w = None
        if can_run:
            die_k = bus.radiator_k + cap * self.spec.gpu_thermal_resistance_k_per_w
            if die_k < self.heaters.min_operating_k:
                can_run, warm_w = False, cap
                reason = (
                    f"thermal: the GPU would run at {die_k - KELVIN:.0f} C, below its minimum operating "
                    f"{self.heaters.min_operating_k - KELVIN:.0f} C; heaters warming it"
                )

        if not can_run:
            if self.running or self._event_cap_w is None:
                unforeseen = not self._checkpointed_recently(now)
                self.running, self.cap_w = False, 0.0
                return self._record(
                    Decision(
                        now,
                        "pause",
                        0.0,
                        reason,
                        False,
                        self.spec.gpu_idle_power_w,
                        checkpoint=unforeseen and self._event_cap_w is not None,
                        warm_w=warm_w,
                    )
                )
            return Decision(now, "hold", 0.0, reason, False, self.spec.gpu_idle_power_w, warm_w=warm_w)

        if not self.running:
            self.running, self.cap_w, self._checkpoint_at = True, cap, None
            kind = "resume" if self._event_cap_w is not None else "set-cap"
            return self._record(Decision(now, kind, cap, reason, True, cap, warm_w=cap))

        self.cap_w = cap
        if (
            mode == "sun-only"
            and light.entry_s is not None
            and light.entry_s - now <= self.checkpoint_lead_s
            and not self._checkpointed_recently(now)
        ):
            self._checkpoint_at = now
            return self._record(
                Decision(
                    now,
                    "checkpoint-before-pause",
                    cap,
                    f"pause foreseen at eclipse entry in {max(0.0, light.entry_s - now):.0f} s: {reason}",
                    True,
                    cap,
                    checkpoint=True,
                    warm_w=cap,
                )
            )
        if abs(cap - self._event_cap_w) >= self.event_step_w:
            return self._record(Decision(now, "set-cap", cap, reason, True, cap, warm_w=cap))
        return Decision(now, "hold", cap, reason, True, cap, warm_w=cap)

    def _checkpointed_recently(self, now: float) -> bool:
        return self._checkpoint_at is not None and now - self._checkpoint_at <= 3 * self.checkpoint_lead_s

    def _record(self, decision: Decision) -> Decision:
        self.events.append(decision)
        self._event_cap_w = decision.cap_w
        return decision
