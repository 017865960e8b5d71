"""Size an orbital data centre and cost it against the same compute on the ground.

`evaluate(values)` takes a scenario's values (base units, see scenario.PARAMS) and returns a
`Plan`: the physics (array, battery, radiator, masses, satellites, launches), every cost item
over the horizon on both sides (counted or not: a scenario's `model.*_costs` lists say which
its author counts), and the results ($/kWh of delivered compute energy, $/GPU-hour, $/W,
$/kW/yr, ratio, break-even launch price).

Conventions. Costs are totals over `target.years`, undiscounted, like every published model
reproduced here. Satellites last `orbit.satellite_life_years`; the fleet is rebuilt and
relaunched as often as the horizon needs (whole generations). Delivered compute energy is IT
power x hours x utilization, less eclipse downtime in `nameplate` sizing and failed GPUs when
`model.gpu_attrition` is on; on the ground, x capacity factor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from skyrack.errors import UserError
from skyrack.planner import physics
from skyrack.planner.scenario import ORBIT_COST_ITEMS
from skyrack.planner.sunlight import annual_sunlight

HOURS_PER_YEAR = 8760.0


@dataclass
class Plan:
    values: dict[str, Any]
    sunlight: dict[str, Any]
    size: dict[str, float]
    mass_kg: dict[str, float]
    orbit_costs: dict[str, float]
    ground_costs: dict[str, float]
    orbit: dict[str, float] = field(default_factory=dict)
    ground: dict[str, float] = field(default_factory=dict)
    ratio: float = math.nan
    ratio_excluding_compute: float = math.nan
    break_even_launch_per_kg: float | None = None

    def metric(self, path: str) -> float:
        """A result by dotted path: `orbit.total_usd`, `ratio`, `size.launches`..."""
        node: Any = self.as_dict()
        for part in path.split("."):
            if not isinstance(node, dict) or part not in node:
                raise UserError(f"no result called {path!r}")
            node = node[part]
        return float(node)

    def as_dict(self) -> dict[str, Any]:
        return {
            "sunlight": self.sunlight,
            "size": self.size,
            "mass_kg": self.mass_kg,
            "orbit_costs": self.orbit_costs,
            "ground_costs": self.ground_costs,
            "orbit": self.orbit,
            "ground": self.ground,
            "ratio": self.ratio,
            "ratio_excluding_compute": self.ratio_excluding_compute,
            "break_even_launch_per_kg": self.break_even_launch_per_kg,
        }


def sunlight_for(v: dict[str, Any]) -> dict[str, Any]:
    twin_needed = v["orbit.sunlit_fraction"] == "twin" or v["orbit.max_eclipse_s"] == "twin"
    sun = annual_sunlight(v["orbit.spec"]).as_dict() if twin_needed else {"orbit": v["orbit.spec"]}
    out = dict(sun)
    out["from_twin"] = twin_needed
    if v["orbit.sunlit_fraction"] != "twin":
        out["sunlit_fraction"] = float(v["orbit.sunlit_fraction"])
    if v["orbit.max_eclipse_s"] != "twin":
        out["max_eclipse_s"] = float(v["orbit.max_eclipse_s"])
    return out


def evaluate(v: dict[str, Any], sunlight: dict[str, Any] | None = None, breakeven: bool = True) -> Plan:
    sun = sunlight or sunlight_for(v)
    f = sun["sunlit_fraction"]
    years = v["target.years"]
    hours = years * HOURS_PER_YEAR
    p_it = v["target.it_power"]
    p_load = p_it * (1.0 + v["power.bus_fraction"])
    life = v["orbit.satellite_life_years"]
    generations = max(1, math.ceil(years / life - 1e-9))
    served = min(years, life)  # years one generation flies within the horizon

    # -- power ------------------------------------------------------------------------------
    if v["model.sizing"] == "continuous":
        eol = physics.retention_after(served, v["power.degradation_per_year"])
        p_sunlit_eol = physics.array_power_for_load(p_load, f, v["battery.round_trip_efficiency"])
        p_array_bol = p_sunlit_eol / eol
        eclipse_load = p_load
    else:  # the authors' nameplate convention: array watts = load watts, dark = idle
        eol = 1.0
        p_array_bol = p_load
        eclipse_load = p_load * v["power.bus_fraction"] / (1.0 + v["power.bus_fraction"])
    flux = physics.array_flux_w_m2(
        v["power.solar_constant"],
        v["power.cell_efficiency"],
        v["power.fill_factor"],
        v["power.pointing_factor"],
    )
    array_area = p_array_bol / flux
    battery_wh = physics.battery_energy_wh(
        eclipse_load,
        sun["max_eclipse_s"],
        v["battery.depth_of_discharge"],
        math.sqrt(v["battery.round_trip_efficiency"]),
    )
    # -- heat: every electrical watt used on board ends as heat at the radiator -------------
    net = physics.radiator_net_w_m2(
        v["thermal.radiator_temperature"],
        v["thermal.emissivity"],
        v["thermal.absorptivity"],
        int(v["thermal.sides"]),
        v["thermal.earth_view_factor"],
        v["thermal.albedo_illumination"],
        v["thermal.solar_incidence"],
    )
    if net <= 0:
        raise UserError(
            f"a radiator at {v['thermal.radiator_temperature']:.0f} K absorbs more than it emits "
            f"({net:.0f} W/m2): raise its temperature or lower its loads"
        )
    radiator_area = p_load / net
    satellites = math.ceil(p_it / v["orbit.satellite_it_power"] - 1e-9)

    # -- mass (one generation) ---------------------------------------------------------------
    kw_it = p_it / 1000.0
    parts = {
        "arrays": p_array_bol / v["power.array_specific_power"],
        "radiators": radiator_area * v["thermal.areal_density"],
        "batteries": battery_wh / v["battery.specific_energy"],
        "compute": kw_it * v["compute.mass_per_kw"],
        "shielding": kw_it * v["shielding.mass_per_kw"],
    }
    parts["structure"] = v["structure.fraction"] * sum(parts.values())
    parts["satellites"] = p_array_bol / v["satellite.specific_power"]
    counted_mass = [m for m in v["model.orbit_mass"]]
    if "satellites" in counted_mass and len(counted_mass) > 1:
        raise UserError(
            "model.orbit_mass: 'satellites' (the lumped W/kg model) replaces the other items; list it alone"
        )
    mass = sum(parts[m] for m in counted_mass)
    if v["model.launch_count"] == "from_mass":
        launches = math.ceil(mass / v["launch.payload"] - 1e-9) if mass > 0 else 0
    else:
        launches = int(v["model.launch_count"])

    # -- orbit costs over the horizon ----------------------------------------------------------
    hardware = {
        "arrays": p_array_bol * v["power.array_cost_per_w"],
        "radiators": radiator_area * v["thermal.cost_per_m2"],
        "batteries": battery_wh / 1000.0 * v["battery.cost_per_kwh"],
        "compute": p_it * v["compute.cost_per_w"],
        "structure": parts["structure"] * v["structure.cost_per_kg"],
        "shielding": p_it * v["shielding.cost_per_w"],
        "satellites": p_array_bol * v["satellite.cost_per_w"],
    }
    counted = set(v["model.orbit_costs"])
    bus_items = ("arrays", "radiators", "batteries", "structure", "shielding")
    hardware["integration"] = v["integration.fraction"] * sum(hardware[k] for k in bus_items if k in counted)
    launch_per_gen = (
        mass * v["launch.price_per_kg"]
        if v["model.launch_pricing"] == "per_kg"
        else launches * v["launch.price_per_launch"]
    )
    per_gen = dict(hardware)
    per_gen["launch"] = launch_per_gen
    hw_counted = sum(hardware[k] for k in hardware if k in counted and k != "compute")
    costs = {k: per_gen[k] for k in per_gen}
    costs["replacements"] = (generations - 1) * sum(per_gen[k] for k in per_gen if k in counted)
    costs["development"] = v["development.cost"]
    costs["operations"] = v["operations.fraction_per_year"] * hw_counted * years
    costs["ground_segment"] = v["operations.ground_segment_per_year"] * years
    orbit_costs = {k: costs[k] for k in ORBIT_COST_ITEMS}

    # -- delivered compute energy ---------------------------------------------------------------
    availability = v["target.utilization"]
    if v["model.sizing"] == "nameplate":
        availability *= f
    if v["model.gpu_attrition"]:
        availability *= physics.average_retention(served, v["compute.failure_rate_per_year"])
    orbit_kwh = kw_it * hours * availability

    # -- the ground -----------------------------------------------------------------------------
    ground_kwh = kw_it * hours * v["target.utilization"] * v["ground.capacity_factor"]
    compute_gens = max(1, math.ceil(years / v["compute.life_years"] - 1e-9))
    ground_costs = {
        "electricity": ground_kwh * v["ground.pue"] * v["ground.electricity_price"],
        "water": ground_kwh / 1000.0 * v["ground.water_per_mwh"],
        "generation": p_it * v["ground.generation_per_w"],
        "backup_power": p_it * v["ground.backup_power_per_w"],
        "cooling": p_it * v["ground.cooling_per_w"],
        "building_land": p_it * v["ground.building_land_per_w"],
        "fitout": p_it * v["ground.fitout_per_w"],
        "grid_connection": p_it * v["ground.grid_connection_per_w"],
        "compute": compute_gens * p_it * v["compute.cost_per_w"],
        "replacements": v["compute.failure_rate_per_year"] * years * p_it * v["compute.cost_per_w"],
    }
    facility = sum(
        ground_costs[k]
        for k in ("generation", "backup_power", "cooling", "building_land", "fitout", "grid_connection")
        if k in v["model.ground_costs"]
    )
    ground_costs["operations"] = v["ground.operations_fraction_per_year"] * facility * years

    plan = Plan(
        values=v,
        sunlight=sun,
        size={
            "it_power_w": p_it,
            "load_w": p_load,
            "array_power_bol_w": p_array_bol,
            "array_eol_retention": eol,
            "array_flux_w_m2": flux,
            "array_area_m2": array_area,
            "battery_wh": battery_wh,
            "radiator_net_w_m2": net,
            "radiator_area_m2": radiator_area,
            "heat_w": p_load,
            "satellites": satellites,
            "generations": generations,
            "gpus": p_it / v["compute.it_power_per_gpu"],
            "mass_kg": mass,
            "launches": launches,
            "launches_total": launches * generations,
            "availability": availability,
        },
        mass_kg=parts,
        orbit_costs=orbit_costs,
        ground_costs=ground_costs,
    )
    plan.orbit = _results(orbit_costs, v["model.orbit_costs"], orbit_kwh, v, kw_it, years)
    plan.ground = _results(ground_costs, v["model.ground_costs"], ground_kwh, v, kw_it, years)
    plan.ratio = (
        plan.orbit["usd_per_kwh"] / plan.ground["usd_per_kwh"] if plan.ground["total_usd"] > 0 else math.inf
    )
    o_nc = plan.orbit["total_usd"] - _counted(orbit_costs, v["model.orbit_costs"], "compute")
    g_nc = plan.ground["total_usd"] - _counted(ground_costs, v["model.ground_costs"], "compute")
    plan.ratio_excluding_compute = ((o_nc / orbit_kwh) / (g_nc / ground_kwh)) if g_nc > 0 else math.inf
    if breakeven:
        plan.break_even_launch_per_kg = break_even_launch_price(v, sun, plan)
    return plan


def _counted(costs: dict[str, float], items: list[str], name: str) -> float:
    """The part of the counted total that is compute hardware (with its replacements on the ground)."""
    if name not in items:
        return 0.0
    return costs[name]


def _results(
    costs: dict[str, float], counted: list[str], kwh: float, v: dict, kw_it: float, years: float
) -> dict:
    total = sum(costs[k] for k in counted)
    gpu_hours = kwh / (v["compute.it_power_per_gpu"] / 1000.0)
    return {
        "total_usd": total,
        "delivered_kwh": kwh,
        "usd_per_kwh": total / kwh if kwh else math.inf,
        "usd_per_mwh": total / kwh * 1000.0 if kwh else math.inf,
        "usd_per_gpu_hour": total / gpu_hours if gpu_hours else math.inf,
        "usd_per_w": total / (kw_it * 1000.0),
        "usd_per_kw_year": total / (kw_it * years),
    }


def with_launch_price(v: dict[str, Any], price_per_kg: float) -> dict[str, Any]:
    """The same assumptions at another launch price ($/kg; a per-launch price scales with payload)."""
    out = dict(v)
    if v["model.launch_pricing"] == "per_kg":
        out["launch.price_per_kg"] = price_per_kg
    else:
        out["launch.price_per_launch"] = price_per_kg * v["launch.payload"]
    return out


def launch_price_per_kg(v: dict[str, Any]) -> float:
    if v["model.launch_pricing"] == "per_kg":
        return v["launch.price_per_kg"]
    return v["launch.price_per_launch"] / v["launch.payload"]


def break_even_launch_price(v: dict[str, Any], sun: dict[str, Any], plan: Plan | None = None) -> float | None:
    """Launch price ($/kg) at which the cost ratio is 1. The cost is affine in the launch price,
    so two evaluations give it exactly. None when orbit costs more even with free launches, or
    when the launch price does not enter the counted costs."""
    if "launch" not in v["model.orbit_costs"]:
        return None
    r0 = evaluate(with_launch_price(v, 0.0), sun, breakeven=False).ratio
    r1 = evaluate(with_launch_price(v, 1000.0), sun, breakeven=False).ratio
    slope = (r1 - r0) / 1000.0
    if slope <= 0 or r0 >= 1.0:
        return None
    return (1.0 - r0) / slope
