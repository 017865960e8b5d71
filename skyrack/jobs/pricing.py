"""What a job costs, in one place: its energy, its GPU time and its price.

The price of a GPU-hour is the planner's: `skyrack.planner.economics.evaluate` on a scenario
(skyrack's own best-sourced defaults unless told another) put on the run's profile orbit the way
`skyrack plan --orbit PROFILE` puts it there, its sunlight measured by the twin. That figure is
the all-in cost of a GPU-hour of an orbital data centre at the scenario's scale (its launches,
arrays, radiators, batteries and GPUs over their life) on that orbit; a job is charged it at
cost, without a margin.

Energy is the GPU's draw at the cap in force times the job's simulated GPU seconds (the bus
model's figure for the GPU: the caller passes the cap the governor held).
"""

from __future__ import annotations

import math
from functools import lru_cache

from skyrack.profile import DEFAULT_PROFILE

DEFAULT_SCENARIO = "skyrack"


@lru_cache(maxsize=8)
def usd_per_gpu_hour(profile: str = DEFAULT_PROFILE, scenario: str = DEFAULT_SCENARIO) -> float:
    """The planner's $/GPU-hour in orbit for a profile (a built-in name or a TOML path); about a
    second the first time (the twin's year of sunlight), cached for the process after."""
    from skyrack.planner import scenario as sc
    from skyrack.planner.economics import evaluate

    scen = sc.load_scenario(scenario).with_overrides(sc.orbit_overrides(profile), "the run's profile orbit")
    return float(evaluate(scen.values()).orbit["usd_per_gpu_hour"])


def _measure(name: str, value: float) -> float:
    if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
        raise ValueError(f"{name} must be a finite figure of zero or more, got {value!r}")
    return float(value)


def account(gpu_s: float, gpu_w: float, usd_per_gpu_hour: float, tokens: int | None = None) -> dict:
    """A job's bill: energy_wh, gpu_s, gpu_hours, price_usd, and joules_per_token when it
    produced tokens (None for no tokens: there is nothing to divide by)."""
    gpu_s = _measure("gpu_s", gpu_s)
    gpu_w = _measure("gpu_w", gpu_w)
    rate = _measure("usd_per_gpu_hour", usd_per_gpu_hour)
    joules = gpu_w * gpu_s
    bill = {
        "energy_wh": joules / 3600.0,
        "gpu_s": gpu_s,
        "gpu_hours": gpu_s / 3600.0,
        "price_usd": gpu_s / 3600.0 * rate,
    }
    if tokens is not None:
        if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 0:
            raise ValueError(f"tokens must be a whole number of zero or more, got {tokens!r}")
        bill["joules_per_token"] = joules / tokens if tokens else None
    return bill
