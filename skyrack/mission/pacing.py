"""Pacing: fit the preset's whole training schedule into the mission, on whatever machine flies it.

With a fixed warp the number of steps a mission trains is its compute budget over (warp x the
wall time of a step here): a machine twice as slow trains half the steps and hands over a model
stopped mid-schedule. By default (no `--warp`) a mission is paced instead:

- the bus and the governor are flown dry over the mission's ticks first (the same physics, a
  copy of the spacecraft, no training): the simulated seconds of full-power compute the bus
  allows, tick by tick (the governor decides from the battery and the heat alone, so the real
  flight sees the same budget while training runs);
- each step is charged the compute left before `MARGIN` of that budget over the steps left,
  recomputed every tick: training ends at that share of the mission whatever a step costs in
  wall time, and steps lost to restarts or replayed after faults are absorbed;
- a new mission first measures a step here (a few real steps, then the trainer is restored bit
  for bit); if the schedule would take well over the wall-time budget (`--minutes`, default 5;
  `SLACK`), it says so and trains a shorter schedule of the same recipe that fits, never a
  cut-off one.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable

import numpy as np

MARGIN = 0.85  # training is paced to end here: the rest of the compute absorbs lost steps
OVERHEAD = 1.3  # a mission step over a bare one: protection, evaluations, checkpoints, recoveries
MIN_STEPS = 200  # below this a character model has not yet learnt words: not worth a shorter run
SLACK = 1.2  # the budget is "about" M minutes: a schedule up to this much longer is still trained whole


def compute_budget(craft, operator, first_tick: int, n_ticks: int, track: dict | None = None) -> np.ndarray:
    """Cumulative simulated seconds of full-power compute the bus allows from tick `first_tick`
    on: element j is the total before tick first_tick + j (length n_ticks - first_tick + 1),
    from a dry run of a copy of `craft` (its read-only orbit parts shared). `track`, if given,
    gets each tick's `in_saa` and `sunlit` (lists) for the job scheduler's forecast."""
    shared = (craft.twin, craft.index, craft.radiation, craft.schedule)
    dry = copy.deepcopy(craft, memo={id(x): x for x in shared})
    out = np.zeros(max(0, n_ticks - first_tick) + 1)
    for j, k in enumerate(range(first_tick, n_ticks)):
        now = dry.at(k)
        decision = dry.decide(now)
        cap = operator.cap(decision.cap_w, dry.spec.gpu_min_power_w)
        warm_w = dry.ready_w(cap, decision)  # the heaters, as the mission loop runs them
        cap = dry.runnable_cap(cap)
        out[j + 1] = out[j] + dry.tick_s * dry.throughput(cap)
        if track is not None:
            track.setdefault("in_saa", []).append(bool(now.in_saa))
            track.setdefault("sunlit", []).append(float(now.sunlit))
        gpu_w = dry.gpu_draw_w(cap)
        dry.advance(now, gpu_w, dry.heater_w(now, gpu_w, warm_w))
    return out


class Pace:
    """The simulated seconds each step is charged, so that training ends at `MARGIN` of the
    compute budget (or soon after, once behind)."""

    def __init__(self, budget: np.ndarray, first_tick: int, margin: float = MARGIN):
        self.budget, self.first_tick, self.margin = budget, first_tick, margin

    @property
    def total_s(self) -> float:
        return float(self.budget[-1])

    def step_cost_s(self, k: int, steps_left: int) -> float:
        j = min(max(0, k - self.first_tick), len(self.budget) - 1)
        used, total = float(self.budget[j]), self.total_s
        # behind schedule (steps lost late): catch up within a twentieth of what is left
        left = max(self.margin * total - used, 0.05 * (total - used))
        return max(left, 1e-9) / max(1, steps_left)


def measure_step_s(trainer, warmup: int = 1, steps: int = 8) -> float:
    """Median wall seconds of a bare training step here, over `steps` of them (four read 13 %
    high one minute after a benchmark and cut the default mission to 1,143 of its 1,500 steps;
    the fastest of them reads low, since this machine's speed drifts by a third within a
    minute). The trainer is then restored to exactly where it was (the run stays bitwise the
    same)."""
    snap = trainer.snapshot()
    times = []
    try:
        for i in range(warmup + steps):
            t0 = time.perf_counter()
            float(trainer.step())  # the float waits for an asynchronous device
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    finally:
        trainer.restore(snap)
    return statistics.median(times)


def fit_schedule(trainer, wall_budget_s: float, say: Callable[[str], None], preset_name: str) -> float:
    """Measure a step, shorten the trainer's schedule if it cannot fit `wall_budget_s`, say what
    was decided; returns the expected wall seconds of a mission step."""
    import dataclasses

    step_s = measure_step_s(trainer) * OVERHEAD
    steps = trainer.cfg.steps
    need_s = steps * step_s
    if need_s <= SLACK * wall_budget_s:
        say(
            f"pacing: all {steps} steps of the {preset_name} preset fit the mission: a step takes "
            f"~{step_s:.2f} s here with protection (measured), ~{need_s / 60:.1f} min of training"
        )
        return step_s
    fit = max(MIN_STEPS, int(wall_budget_s / step_s))  # the shorter schedule fits the budget itself
    if fit >= steps:
        return step_s
    trainer.cfg = dataclasses.replace(
        trainer.cfg, steps=fit, warmup_steps=min(trainer.cfg.warmup_steps, fit // 10)
    )
    say(
        f"this machine is too slow to train the {preset_name} preset in ~{wall_budget_s / 60:.0f} min: a step "
        f"takes ~{step_s:.2f} s here with protection (measured), all {steps} steps would take "
        f"~{need_s / 60:.0f} min. Training {fit} steps instead, the same recipe on a shorter schedule "
        f"(~{fit * step_s / 60:.1f} min): expect a higher final loss and a sample less like Shakespeare. "
        f"To train all {steps}, give --minutes {math.ceil(need_s / 60) + 1}"
    )
    return step_s
