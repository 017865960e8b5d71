"""The simulated clock: how much simulated time one real training step stands for.

The satellite's clock advances in fixed control ticks of `tick_s` simulated seconds (one
telemetry frame each). Within a tick the governor's power cap gives the GPU a throughput
fraction f = (cap / max) ^ exponent (`skyrack.bus.governor.throughput_fraction`, the profile's
power-to-speed model), so the tick holds `tick_s x f` simulated seconds of full-power compute.

Time warp ties that to the machine that really trains: at full power one real training step
stands for `warp x w` simulated seconds, w being the wall time a step takes here (a running
average, measured, checkpoints and fault recoveries included). A tick therefore runs
`tick_s x f / (warp x w)` real steps (the fraction carried over as credit), which costs
`tick_s x f / warp` wall seconds: at full power simulated time runs `warp` times faster than
the wall clock, throttled it runs `warp / f` times faster (fewer steps per orbit, as a
throttled GPU would do), and paused (f = 0) or with training complete a tick costs only the
machinery's own microseconds - simulated time runs ahead without burning wall time.
"""

from __future__ import annotations

import time


class StepClock:
    """Step credit and the measured wall time of a step: the mean of the last `window` steps
    (checkpoints, recovery replays and a busy machine included, so that warp stays simulated
    seconds per wall second). Until `window` steps are measured (calibration) a tick with any
    credit runs one step: an estimate from a few early steps (slow while warming up) could
    stall the clock."""

    def __init__(self, warp: float, window: int = 21):
        self.warp = warp
        self.window = window
        self.recent: list[float] = []
        self.wall_per_step: float | None = None  # seconds, mean of the recent steps
        self.credit_s = 0.0  # simulated seconds of full-power compute not yet spent
        # a paced mission (skyrack.mission.pacing) sets what a step costs; no calibration then
        self.step_cost_s: float | None = None

    @property
    def step_sim_s(self) -> float | None:
        """Simulated seconds one real step stands for at full power."""
        if self.step_cost_s is not None:
            return self.step_cost_s
        return None if self.wall_per_step is None else self.warp * self.wall_per_step

    def grant(self, tick_s: float, fraction: float) -> None:
        """A tick at throughput `fraction`: a paused GPU keeps no credit."""
        self.credit_s = self.credit_s + tick_s * fraction if fraction > 0 else 0.0

    def due(self) -> bool:
        """Whether the credit pays for another step."""
        if self.step_cost_s is None and len(self.recent) < self.window:
            return self.credit_s > 0
        return self.credit_s >= self.step_sim_s

    def spent(self, wall_s: float) -> None:
        """A step took `wall_s` of wall time: update w and pay for the step."""
        calibrating = self.step_cost_s is None and len(self.recent) < self.window
        self.recent.append(wall_s)
        if len(self.recent) > self.window:
            self.recent.pop(0)
        self.wall_per_step = sum(self.recent) / len(self.recent)
        self.credit_s = 0.0 if calibrating else max(0.0, self.credit_s - self.step_sim_s)


class Stopwatch:
    """Wall seconds spent inside `with watch:` blocks (the training share of a mission)."""

    def __init__(self):
        self.total = 0.0
        self._t0 = 0.0

    def __enter__(self):
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.last = time.perf_counter() - self._t0
        self.total += self.last
