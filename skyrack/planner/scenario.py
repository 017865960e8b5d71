"""Scenarios: TOML files of assumptions, every number with its source or marked an assumption.

A scenario is a built-in name (`skyrack`, `starcloud-wp`, `suncatcher`, `mccalip`) or a path.
It may `extends = "skyrack"` and then lists only what it changes. Each entry of a section is a
figure table `{ value = ..., source = "..." }` or `{ value = ..., assumption = "why" }` (the
same rule, and the same function, as spacecraft profiles' bus figures); values may carry units
(`"40MW"`, `"$200/kg"`). `[[published]]` lists the authors' headline figures and the metric of
the planner's result each one is compared with; `[[corrections]]` lists assumptions to correct,
applied one after another, each with the reason.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from skyrack.errors import UserError
from skyrack.planner import units
from skyrack.profile import Figure, parse_figure

ORBIT_COST_ITEMS = (
    "arrays",
    "radiators",
    "batteries",
    "compute",
    "structure",
    "shielding",
    "satellites",
    "integration",
    "launch",
    "development",
    "operations",
    "ground_segment",
    "replacements",
)
ORBIT_MASS_ITEMS = ("arrays", "radiators", "batteries", "compute", "structure", "shielding", "satellites")
GROUND_COST_ITEMS = (
    "electricity",
    "water",
    "generation",
    "backup_power",
    "cooling",
    "building_land",
    "fitout",
    "grid_connection",
    "compute",
    "replacements",
    "operations",
)


@dataclass(frozen=True)
class Param:
    kind: str  # a units kind, or "choice", "items", "orbit", "flag", "launch_count"
    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # the lower bound itself is refused
    help: str = ""
    choices: tuple[str, ...] = ()


def _p(kind, lo=None, hi=None, lo_open=False, help="", choices=()):
    return Param(kind, lo, hi, lo_open, help, choices)


POS = dict(lo=0.0, lo_open=True)
NONNEG = dict(lo=0.0)
FRAC = dict(lo=0.0, hi=1.0)
PFRAC = dict(lo=0.0, hi=1.0, lo_open=True)

PARAMS: dict[str, Param] = {
    # what is built, for how long
    "target.it_power": _p("power", **POS, help="IT (compute) power delivered"),
    "target.years": _p("years", **POS, hi=100, help="horizon of the comparison"),
    "target.utilization": _p("fraction", **PFRAC, help="share of the time the compute does useful work"),
    # orbit and sunlight
    "orbit.spec": _p("orbit", help="orbit: profile name, sso:ALT[:LTAN], incl:DEG:ALT"),
    "orbit.sunlit_fraction": _p("fraction_or_twin", **PFRAC, help="'twin' = computed by the orbit twin"),
    "orbit.max_eclipse_s": _p("seconds_or_twin", **NONNEG, help="'twin' = computed by the orbit twin"),
    "orbit.satellite_life_years": _p("years", **POS, hi=100, help="a satellite generation's life"),
    "orbit.satellite_it_power": _p("power", **POS, help="IT power of one satellite"),
    # solar power
    "power.solar_constant": _p("w_per_m2", **POS, hi=2000),
    "power.cell_efficiency": _p("fraction", **PFRAC, help="beginning-of-life cell efficiency"),
    "power.fill_factor": _p("fraction", **PFRAC, help="cell area / array area"),
    "power.pointing_factor": _p("fraction", **PFRAC, help="orbit-averaged cosine loss of sun tracking"),
    "power.degradation_per_year": _p("fraction", lo=0.0, hi=0.99, help="radiation and UV power loss"),
    "power.array_specific_power": _p("w_per_kg", **POS, hi=10000, help="array BOL watts per kg"),
    "power.array_cost_per_w": _p("usd_per_w", **NONNEG),
    "power.bus_fraction": _p("fraction", lo=0.0, hi=1.0, help="bus, links and conversion load per IT watt"),
    "battery.specific_energy": _p("wh_per_kg", **POS, hi=2000),
    "battery.depth_of_discharge": _p("fraction", **PFRAC),
    "battery.round_trip_efficiency": _p("fraction", **PFRAC),
    "battery.cost_per_kwh": _p("usd_per_kwh", **NONNEG),
    # heat
    "thermal.radiator_temperature": _p("temperature", lo=150.0, hi=500.0),
    "thermal.emissivity": _p("fraction", **PFRAC),
    "thermal.absorptivity": _p("fraction", **FRAC),
    "thermal.sides": _p("count", lo=1, hi=2),
    "thermal.earth_view_factor": _p("fraction", lo=0.0, hi=2.0, help="summed over the radiating faces"),
    "thermal.albedo_illumination": _p("fraction", **FRAC),
    "thermal.solar_incidence": _p("fraction", **FRAC),
    "thermal.areal_density": _p("kg_per_m2", **POS, hi=100),
    "thermal.cost_per_m2": _p("usd_per_m2", **NONNEG),
    # compute
    "compute.it_power_per_gpu": _p("power", **POS, help="server power per accelerator"),
    "compute.cost_per_w": _p("usd_per_w", **NONNEG, help="servers and accelerators per IT watt"),
    "compute.mass_per_kw": _p("kg_per_kw", **NONNEG, hi=1000),
    "compute.life_years": _p("years", **POS, hi=100),
    "compute.failure_rate_per_year": _p("fraction", lo=0.0, hi=0.99),
    # spacecraft
    "structure.fraction": _p("fraction", lo=0.0, hi=5.0, help="structure and bus mass per kg of the rest"),
    "structure.cost_per_kg": _p("usd_per_kg", **NONNEG),
    "shielding.mass_per_kw": _p("kg_per_kw", **NONNEG, hi=1000),
    "shielding.cost_per_w": _p("usd_per_w", **NONNEG),
    "satellite.specific_power": _p("w_per_kg", **POS, hi=10000, help="whole-satellite W/kg (lumped model)"),
    "satellite.cost_per_w": _p("usd_per_w", **NONNEG, help="whole-satellite $/W (lumped model)"),
    "integration.fraction": _p("fraction", lo=0.0, hi=5.0),
    "development.cost": _p("usd", **NONNEG),
    "operations.fraction_per_year": _p("fraction", lo=0.0, hi=1.0),
    "operations.ground_segment_per_year": _p("usd_per_year", **NONNEG),
    # launch
    "launch.price_per_kg": _p("usd_per_kg", **NONNEG),
    "launch.price_per_launch": _p("usd", **NONNEG),
    "launch.payload": _p("mass", **POS),
    # the ground
    "ground.electricity_price": _p("usd_per_kwh", **NONNEG),
    "ground.pue": _p("ratio", lo=1.0, hi=5.0),
    "ground.capacity_factor": _p("fraction", **PFRAC),
    "ground.water_per_mwh": _p("usd_per_mwh", **NONNEG),
    "ground.generation_per_w": _p("usd_per_w", **NONNEG),
    "ground.backup_power_per_w": _p("usd_per_w", **NONNEG),
    "ground.cooling_per_w": _p("usd_per_w", **NONNEG),
    "ground.building_land_per_w": _p("usd_per_w", **NONNEG),
    "ground.fitout_per_w": _p("usd_per_w", **NONNEG),
    "ground.grid_connection_per_w": _p("usd_per_w", **NONNEG),
    "ground.operations_fraction_per_year": _p("fraction", lo=0.0, hi=1.0),
    # how the model is put together (the switches that reproduce each author's arithmetic)
    "model.sizing": _p(
        "choice",
        choices=("continuous", "nameplate"),
        help="continuous: array and battery carry the IT load through eclipses and "
        "degradation; nameplate: array watts = load watts, compute runs only when lit",
    ),
    "model.gpu_attrition": _p("flag", help="failed GPUs in orbit stay failed and deliver nothing"),
    "model.launch_count": _p("launch_count", help="'from_mass' or a fixed number of launches"),
    "model.launch_pricing": _p("choice", choices=("per_kg", "per_launch")),
    "model.orbit_mass": _p("items", choices=ORBIT_MASS_ITEMS),
    "model.orbit_costs": _p("items", choices=ORBIT_COST_ITEMS),
    "model.ground_costs": _p("items", choices=GROUND_COST_ITEMS),
}


@dataclass
class Scenario:
    name: str
    description: str
    path: str
    figures: dict[str, Figure]
    published: list[dict] = field(default_factory=list)
    corrections: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def values(self) -> dict[str, Any]:
        return {key: check(key, fig.value) for key, fig in self.figures.items()}

    def with_overrides(self, overrides: dict[str, Any], why: str) -> Scenario:
        figures = dict(self.figures)
        for key, value in overrides.items():
            key = resolve_key(key)
            check(key, value)
            figures[key] = Figure(value, assumption=why)
        return Scenario(
            self.name, self.description, self.path, figures, self.published, self.corrections, self.notes
        )

    def source_of(self, key: str) -> str:
        fig = self.figures[key]
        return fig.source or f"assumption: {fig.assumption}"


def builtin_scenarios() -> list[str]:
    folder = resources.files("skyrack.planner") / "scenarios"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_scenario(name_or_path: str | None = None, _seen: tuple[str, ...] = ()) -> Scenario:
    name_or_path = name_or_path or "skyrack"
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.is_file():
        if not path.is_file():
            raise UserError(f"assumptions file not found: {path}")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read assumptions file {path}: {exc}") from None
        where = str(path)
    else:
        key = name_or_path.lower()
        if key not in builtin_scenarios():
            raise UserError(f"unknown scenario {name_or_path!r}; built in: {', '.join(builtin_scenarios())}")
        text = (resources.files("skyrack.planner") / "scenarios" / f"{key}.toml").read_text(encoding="utf-8")
        where = f"scenario {key}"
    if where in _seen:
        raise UserError(f"{where}: 'extends' loops back on itself")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{where}: not valid TOML ({exc})") from None
    figures: dict[str, Figure] = {}
    if data.get("extends"):
        figures.update(load_scenario(str(data["extends"]), _seen + (where,)).figures)
    for section, table in data.items():
        if section in ("name", "description", "extends", "published", "corrections", "notes"):
            continue
        if not isinstance(table, dict):
            raise UserError(f"{where}: top-level {section!r} must be a [section] of figures")
        for item, raw in table.items():
            key = f"{section}.{item}"
            if key not in PARAMS:
                raise UserError(f"{where}: unknown assumption {key!r}{_did_you_mean(key)}")
            fig = parse_figure(key, raw, where)
            _checked(key, fig.value, where)
            figures[key] = fig
    missing = [k for k in PARAMS if k not in figures]
    if missing:
        raise UserError(f'{where}: missing assumptions {", ".join(missing)} (or write extends = "skyrack")')
    published = list(data.get("published") or [])
    for entry in published:
        if not {"metric", "value", "source"} <= set(entry):
            raise UserError(f"{where}: each [[published]] needs metric, value and source")
    corrections = list(data.get("corrections") or [])
    for entry in corrections:
        if not {"title", "why", "set"} <= set(entry) or not isinstance(entry["set"], dict):
            raise UserError(f"{where}: each [[corrections]] needs title, why and a set = {{...}} table")
        for key, value in entry["set"].items():
            _checked(resolve_key(key), value, f"{where} correction {entry['title']!r}")
    return Scenario(
        name=str(data.get("name") or path.stem),
        description=str(data.get("description", "")),
        path=where,
        figures=figures,
        published=published,
        corrections=corrections,
        notes=[str(n) for n in data.get("notes", [])],
    )


def resolve_key(key: str) -> str:
    """A parameter's full key from itself or its unique last part (`launch_price` style aliases)."""
    key = key.strip()
    if key in PARAMS:
        return key
    matches = [k for k in PARAMS if k.split(".", 1)[1] == key]
    if len(matches) == 1:
        return matches[0]
    raise UserError(f"unknown assumption {key!r}{_did_you_mean(key)}")


def _did_you_mean(key: str) -> str:
    import difflib

    close = difflib.get_close_matches(key, list(PARAMS), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _checked(key: str, value: Any, where: str) -> Any:
    try:
        return check(key, value)
    except UserError as exc:
        raise UserError(f"{where}: {exc}") from None


def check(key: str, value: Any) -> Any:
    """The value of parameter `key` in base units, refused with a clear line when impossible."""
    param = PARAMS[key]
    kind = param.kind
    if kind == "choice":
        if value not in param.choices:
            raise UserError(f"{key} must be one of {', '.join(param.choices)}, got {value!r}")
        return value
    if kind == "flag":
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        if not isinstance(value, bool):
            raise UserError(f"{key} must be true or false, got {value!r}")
        return value
    if kind == "items":
        items = [v.strip() for v in value.split(",") if v.strip()] if isinstance(value, str) else value
        if not isinstance(items, list) or any(i not in param.choices for i in items):
            raise UserError(f"{key} must list items among {', '.join(param.choices)}, got {value!r}")
        return list(items)
    if kind == "orbit":
        if not isinstance(value, str) or not value.strip():
            raise UserError(f"{key} must name an orbit (profile name, sso:ALT, incl:DEG:ALT)")
        return value.strip()
    if kind == "launch_count":
        if value == "from_mass":
            return value
        number = units.parse(value, "count", key)
        if number < 1 or number != int(number):
            raise UserError(f"{key} must be 'from_mass' or a whole number of launches >= 1, got {value!r}")
        return int(number)
    if kind in ("fraction_or_twin", "seconds_or_twin"):
        if value == "twin":
            return value
        kind = "fraction" if kind == "fraction_or_twin" else "seconds"
    number = units.parse(value, kind, key)
    if param.lo is not None and (number < param.lo or (param.lo_open and number == param.lo)):
        relation = "above" if param.lo_open else "at least"
        raise UserError(f"{key} must be {relation} {param.lo:g}{_unit(kind)}, got {value!r}")
    if param.hi is not None and number > param.hi:
        raise UserError(f"{key} must be at most {param.hi:g}{_unit(kind)}, got {value!r}")
    return number


def _unit(kind: str) -> str:
    base = units.KINDS.get(kind, ("",))[0]
    return f" {base}" if base and not base.startswith("$") else ""


def orbit_overrides(orbit: str) -> dict[str, Any]:
    """The assumptions that put a scenario on another orbit (a profile name or TOML, `sso:...`):
    the twin measures a named orbit's sunlight, whatever the scenario's authors assumed."""
    return {"orbit.spec": orbit, "orbit.sunlit_fraction": "twin", "orbit.max_eclipse_s": "twin"}


def parse_set(items: list[str]) -> dict[str, Any]:
    """`--set key=value` pairs; lists are comma-separated (`model.orbit_mass=arrays,radiators`)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise UserError(f"--set expects key=value, got {item!r}")
        key, value = item.split("=", 1)
        key = resolve_key(key)
        value = value.strip()
        if PARAMS[key].kind == "items":
            value = [v.strip() for v in value.split(",") if v.strip()]
        check(key, value)
        out[key] = value
    return out
