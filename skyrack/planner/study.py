"""What a scenario says: its headline against the published one, the corrections walked one at
a time, a sensitivity tornado and the cost ratio across launch prices."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from skyrack.planner import scenario as sc
from skyrack.planner.economics import Plan, evaluate, launch_price_per_kg, sunlight_for, with_launch_price


@dataclass
class Study:
    scenario: sc.Scenario
    values: dict[str, Any]
    plan: Plan
    reproduction: list[dict]
    corrections: list[dict]
    tornado: list[dict]
    launch_curve: list[dict]


def study(scenario: sc.Scenario, overrides: dict[str, Any] | None = None, detail: bool = True) -> Study:
    scen = scenario.with_overrides(overrides, "set on the command line") if overrides else scenario
    values = scen.values()
    plan = evaluate(values)
    return Study(
        scen,
        values,
        plan,
        reproduce(scenario) if scenario.published else [],
        walk_corrections(values, scenario.corrections),
        tornado(values, plan) if detail else [],
        launch_curve(values) if detail else [],
    )


def reproduce(scenario: sc.Scenario) -> list[dict]:
    """Each published headline against the planner's figure from the authors' own assumptions."""
    base = scenario.values()
    rows = []
    for pub in scenario.published:
        values = dict(base)
        for key, raw in (pub.get("at") or {}).items():
            key = sc.resolve_key(key)
            values[key] = sc.check(key, raw)
        got = evaluate(values).metric(pub["metric"])
        want = float(pub["value"])
        rows.append(
            {
                "metric": pub["metric"],
                "published": want,
                "planner": got,
                "error": (got - want) / want if want else math.nan,
                "source": pub["source"],
                "checked": bool(pub.get("check", True)),
                "note": pub.get("note", ""),
                "at": {k: str(v) for k, v in (pub.get("at") or {}).items()},
            }
        )
    return rows


def headline(plan: Plan) -> dict[str, Any]:
    return {
        "orbit_usd": plan.orbit["total_usd"],
        "ground_usd": plan.ground["total_usd"],
        "orbit_usd_per_kwh": plan.orbit["usd_per_kwh"],
        "ground_usd_per_kwh": plan.ground["usd_per_kwh"],
        "ratio": plan.ratio,
        "mass_kg": plan.size["mass_kg"],
        "launches": plan.size["launches_total"],
        "break_even_launch_per_kg": plan.break_even_launch_per_kg,
    }


def walk_corrections(values: dict[str, Any], corrections: list[dict]) -> list[dict]:
    """The scenario as published, then each correction added on top of the previous ones."""
    if not corrections:
        return []
    current = dict(values)
    steps = [{"title": "as published", "why": "", "set": {}, **headline(evaluate(current))}]
    for corr in corrections:
        changed = {}
        for key, raw in corr["set"].items():
            key = sc.resolve_key(key)
            current[key] = sc.check(key, raw)
            changed[key] = raw
        steps.append(
            {"title": corr["title"], "why": corr["why"], "set": changed, **headline(evaluate(current))}
        )
    return steps


# parameter -> (label, low, high) as functions of the current value
TORNADO = {
    "launch.price_per_kg": ("launch price $/kg", lambda x: 100.0, lambda x: 3600.0),
    "power.array_specific_power": ("array W/kg", lambda x: x / 2, lambda x: x * 2),
    "power.cell_efficiency": ("cell efficiency", lambda x: x * 0.75, lambda x: min(0.6, x * 1.2)),
    "power.array_cost_per_w": ("array $/W", lambda x: x / 2.5, lambda x: x * 4),
    "thermal.radiator_temperature": ("radiator temperature K", lambda x: x - 30, lambda x: x + 30),
    "thermal.areal_density": ("radiator kg/m2", lambda x: x / 2, lambda x: x * 2),
    "structure.fraction": ("structure mass fraction", lambda x: x / 2, lambda x: x * 2),
    "compute.cost_per_w": ("GPU+server $/W", lambda x: x / 2, lambda x: x * 1.5),
    "compute.failure_rate_per_year": ("GPU failures /yr", lambda x: 0.0, lambda x: min(0.5, x * 2)),
    "orbit.satellite_life_years": ("satellite life years", lambda x: max(1.0, x - 2), lambda x: x + 3),
    "development.cost": ("development $", lambda x: 0.0, lambda x: x * 5),
    "ground.electricity_price": ("ground electricity $/kWh", lambda x: x / 2, lambda x: x * 3),
    "ground.pue": ("ground PUE", lambda x: 1.1, lambda x: 1.5),
}


def tornado(values: dict[str, Any], plan: Plan) -> list[dict]:
    """Cost ratio with each main assumption at a low and a high value, widest swing first."""
    sun = plan.sunlight
    rows = []
    for key, (label, lo_fn, hi_fn) in TORNADO.items():
        x = launch_price_per_kg(values) if key == "launch.price_per_kg" else values[key]
        lo, hi = lo_fn(x), hi_fn(x)
        out = []
        for test in (lo, hi):
            v = with_launch_price(values, test) if key == "launch.price_per_kg" else {**values, key: test}
            out.append(evaluate(v, sun, breakeven=False).ratio)
        if abs(out[1] - out[0]) < 1e-9 * max(1.0, abs(plan.ratio)):
            continue
        rows.append(
            {
                "key": key,
                "label": label,
                "base": x,
                "low": lo,
                "high": hi,
                "ratio_low": out[0],
                "ratio_high": out[1],
            }
        )
    rows.sort(key=lambda r: -abs(r["ratio_high"] - r["ratio_low"]))
    return rows


def launch_curve(values: dict[str, Any], points: int = 25) -> list[dict]:
    """Cost ratio at launch prices from $10/kg to $10,000/kg (log spaced)."""
    sun = sunlight_for(values)
    out = []
    for k in range(points):
        price = 10 ** (1 + 3 * k / (points - 1))
        out.append(
            {
                "launch_per_kg": price,
                "ratio": evaluate(with_launch_price(values, price), sun, breakeven=False).ratio,
            }
        )
    return out
