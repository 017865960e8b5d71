"""CLI: `skyrack plan` sizes an orbital data centre against the ground; `skyrack plan compare`
puts the built-in scenarios side by side."""

from __future__ import annotations

import math
import sys
import textwrap
from pathlib import Path
from typing import Any

from skyrack.cliargs import print_json
from skyrack.errors import UserError
from skyrack.planner import scenario as sc
from skyrack.planner import units
from skyrack.planner.study import Study, study
from skyrack.planner.units import format_area, format_mass, format_money, format_power

COMPARE_ORDER = ("starcloud-wp", "suncatcher", "mccalip", "skyrack")


def register(sub) -> None:
    p = sub.add_parser(
        "plan",
        help="size an orbital data centre and cost it against the ground",
        description="Size an orbital data centre from the orbit twin's sunlight and cost it "
        "against the same compute on the ground. 'compare' puts the built-in "
        "scenarios side by side.",
    )
    p.add_argument("action", nargs="?", choices=["compare"], help="compare: scenarios side by side")
    p.add_argument(
        "--scenario",
        default=None,
        metavar="NAME",
        help=f"built-in scenario ({', '.join(sc.builtin_scenarios())}; default skyrack)",
    )
    p.add_argument("--assumptions", default=None, metavar="FILE", help="scenario TOML file of your own")
    p.add_argument("--it-power", default=None, metavar="POWER", help="IT power, e.g. 40MW or 5GW")
    p.add_argument(
        "--orbit",
        default=None,
        metavar="ORBIT",
        help="starcloud-1 | suncatcher | sso:ALT_KM[:LTAN_H] | incl:DEG:ALT_KM | profile name or TOML",
    )
    p.add_argument("--years", default=None, metavar="N", help="horizon, e.g. 10 or 10y")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override any assumption, e.g. --set launch.price_per_kg='$200/kg' (repeatable)",
    )
    p.add_argument(
        "--out", default=None, metavar="FILE", help="HTML report path (default runs/plan-S-P.html)"
    )
    p.add_argument("--no-report", action="store_true", help="do not write the HTML report")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_plan)


def overrides_from_args(args) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.it_power is not None:
        out["target.it_power"] = args.it_power
    if args.years is not None:
        out["target.years"] = args.years
    if args.orbit is not None:
        out.update(sc.orbit_overrides(args.orbit))
    for key, value in out.items():
        sc.check(key, value)
    out.update(sc.parse_set(args.set))
    return out


def cmd_plan(args) -> int:
    if args.scenario and args.assumptions:
        raise UserError("give --scenario or --assumptions, not both")
    overrides = overrides_from_args(args)
    if args.action == "compare":
        return _compare(args, overrides)
    scenario = sc.load_scenario(args.assumptions or args.scenario or "skyrack")
    s = study(scenario, overrides)  # a bad --orbit is refused here, when the twin builds it
    claim = _claim_walk(s, overrides) if scenario.name != "starcloud-wp" else None
    report_path = None
    if not args.no_report:
        from skyrack.planner.report import write_report

        tag = units.format_power(s.values["target.it_power"]).replace(" ", "")
        report_path = Path(args.out) if args.out else Path("runs") / f"plan-{_slug(scenario.name)}-{tag}.html"
        write_report(report_path, s, claim)
    if args.json:
        print_json(_as_json(s, claim, report_path))
        return 0
    _print_plan(s, claim)
    if report_path:
        print(f"\nreport: {report_path}")
    return 0


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name.lower())


def _claim_walk(s: Study, overrides: dict[str, Any]) -> list[dict]:
    """The white paper's 10x claim at this plan's IT power and horizon, corrected step by step."""
    wp = sc.load_scenario("starcloud-wp")
    keep = {k: v for k, v in overrides.items() if k in ("target.it_power", "target.years")}
    keep.setdefault("target.it_power", s.values["target.it_power"])
    return study(wp, keep, detail=False).corrections


def _as_json(s: Study, claim, report_path) -> dict:
    return {
        "scenario": s.scenario.name,
        "description": s.scenario.description,
        "assumptions": {k: {"value": s.values[k], "source": s.scenario.source_of(k)} for k in s.values},
        **s.plan.as_dict(),
        "reproduction": s.reproduction,
        "corrections": s.corrections,
        "tornado": s.tornado,
        "launch_curve": s.launch_curve,
        "ten_x_claim": claim,
        "report": str(report_path) if report_path else None,
    }


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def _usd(x: float, per: str = "") -> str:
    if x is None or not math.isfinite(x):
        return "-"
    if abs(x) >= 1e3:
        return format_money(x) + per
    if abs(x) >= 1:
        return f"${x:,.2f}{per}"
    return f"${x:.4f}{per}"


def _ratio(x: float) -> str:
    return f"{x:.3g}x" if math.isfinite(x) else "-"


def _be(x) -> str:
    return f"${x:,.0f}/kg" if x is not None else "none (orbit costs more even with free launches)"


def _print_plan(s: Study, claim) -> None:
    v, p = s.values, s.plan
    sun, size = p.sunlight, p.size
    out = sys.stdout.write
    out(f"skyrack plan: {s.scenario.name} - {s.scenario.description}\n")
    out(
        f"{format_power(v['target.it_power'])} of IT for {v['target.years']:g} years; orbit {v['orbit.spec']}"
        f"{' (' + sun['description'] + ')' if 'description' in sun else ''}\n"
    )
    src = "orbit twin, one orbit every 5 days for a year" if sun.get("from_twin") else "the scenario's figure"
    out(
        f"sunlit {_pct(sun['sunlit_fraction'])} of the year, longest eclipse {sun['max_eclipse_s'] / 60:.1f} min ({src})\n"
    )
    for note in s.scenario.notes:
        out(f"note: {note}\n")
    out("\nSIZE\n")
    side = math.sqrt(size["array_area_m2"])
    rows = [
        (
            "solar array",
            f"{format_area(size['array_area_m2'])} ({side / 1000:.2f} km square), "
            f"{format_power(size['array_power_bol_w'])} at beginning of life, "
            f"{size['array_flux_w_m2']:.0f} W/m2",
        ),
        (
            "radiators",
            f"{format_area(size['radiator_area_m2'])} at {v['thermal.radiator_temperature']:.0f} K, "
            f"{size['radiator_net_w_m2']:.0f} W/m2 net, {format_power(size['heat_w'])} of heat",
        ),
        ("battery", f"{size['battery_wh'] / 1e6:,.1f} MWh for the longest eclipse"),
        (
            "mass",
            f"{format_mass(size['mass_kg'])} counted ("
            + ", ".join(f"{k} {format_mass(m)}" for k, m in p.mass_kg.items() if k in v["model.orbit_mass"])
            + ")",
        ),
        (
            "satellites",
            f"{size['satellites']:,} of {format_power(v['orbit.satellite_it_power'])} IT, "
            f"{size['gpus']:,.0f} GPUs",
        ),
        ("launches", f"{size['launches']:,} per generation x {size['generations']} generation(s)"),
    ]
    not_counted = [
        k
        for k in ("arrays", "radiators", "batteries", "compute", "structure", "shielding")
        if k not in v["model.orbit_mass"] and "satellites" not in v["model.orbit_mass"]
    ]
    if not_counted:
        rows.append(
            ("not counted", "mass of " + ", ".join(f"{k} {format_mass(p.mass_kg[k])}" for k in not_counted))
        )
    for label, text in rows:
        out(f"  {label:<12} {text}\n")
    out(f"\nCOST over {v['target.years']:g} years\n")
    out(f"  {'orbit':<16}{'':>12}   {'ground':<16}\n")
    o_items = [(k, c) for k, c in p.orbit_costs.items() if k in v["model.orbit_costs"] and c]
    g_items = [(k, c) for k, c in p.ground_costs.items() if k in v["model.ground_costs"] and c]
    for i in range(max(len(o_items), len(g_items))):
        left = f"{o_items[i][0]:<16}{format_money(o_items[i][1]):>12}" if i < len(o_items) else " " * 28
        right = f"{g_items[i][0]:<16}{format_money(g_items[i][1]):>12}" if i < len(g_items) else ""
        out(f"  {left}   {right}\n")
    out(
        f"  {'total':<16}{format_money(p.orbit['total_usd']):>12}   {'total':<16}{format_money(p.ground['total_usd']):>12}\n"
    )
    left_out = [k for k, c in p.orbit_costs.items() if k not in v["model.orbit_costs"] and c > 0]
    if left_out:
        out(
            "  not counted in orbit: "
            + ", ".join(f"{k} {format_money(p.orbit_costs[k])}" for k in left_out)
            + "\n"
        )
    out("\nRESULTS                          orbit        ground\n")
    for label, key, fmt in (
        ("$/kWh of compute energy", "usd_per_kwh", lambda x: _usd(x)),
        ("$/GPU-hour", "usd_per_gpu_hour", lambda x: _usd(x)),
        ("$/W of IT power", "usd_per_w", lambda x: _usd(x)),
        ("$/kW/yr", "usd_per_kw_year", lambda x: _usd(x)),
    ):
        out(f"  {label:<28}{fmt(p.orbit[key]):>10}   {fmt(p.ground[key]):>10}\n")
    out(
        f"  cost ratio orbit/ground     {_ratio(p.ratio):>10}   (excluding GPU/server hardware: {_ratio(p.ratio_excluding_compute)})\n"
    )
    out(f"  break-even launch price     {_be(p.break_even_launch_per_kg)} (assumed ${_launch(v):,.0f}/kg)\n")
    if s.reproduction:
        out("\nPUBLISHED FIGURES, REPRODUCED FROM THE AUTHORS' OWN ASSUMPTIONS\n")
        for r in s.reproduction:
            at = f" at {', '.join(f'{k}={x}' for k, x in r['at'].items())}" if r["at"] else ""
            mark = (
                "ok " if r["checked"] and abs(r["error"]) <= 0.02 else ("-- " if not r["checked"] else "!! ")
            )
            out(
                f"  {mark}{r['metric']}{at}: published {_num(r['published'])}, planner {_num(r['planner'])} "
                f"({r['error']:+.1%})  [{r['source']}]\n"
            )
            if r["note"]:
                out(f"      {r['note']}\n")
    if s.corrections:
        out("\nCORRECTIONS, ONE ON TOP OF ANOTHER\n")
        _print_walk(s.corrections, out)
    if claim:
        out(
            f"\nTHE '10x CHEAPER ENERGY' CLAIM at {format_power(v['target.it_power'])} (Starcloud white paper, corrected step by step)\n"
        )
        _print_walk(claim, out)
    if s.tornado:
        out("\nSENSITIVITY (cost ratio at low / high value)\n")
        for t in s.tornado[:8]:
            out(
                f"  {t['label']:<26} {_num(t['low']):>10} -> {t['ratio_low']:.3g}x   {_num(t['high']):>10} -> {t['ratio_high']:.3g}x\n"
            )


def _launch(v) -> float:
    from skyrack.planner.economics import launch_price_per_kg

    return launch_price_per_kg(v)


def _num(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    if abs(x) >= 1e5:
        return f"{x:.4g}"
    if abs(x) >= 100:
        return f"{x:,.0f}"
    return f"{x:.4g}"


def _print_walk(steps: list[dict], out) -> None:
    out(
        f"  {'step':<52}{'orbit $/kWh':>12}{'ground $/kWh':>13}{'ratio':>9}{'launches':>10}{'break-even':>12}\n"
    )
    for st in steps:
        be = st["break_even_launch_per_kg"]
        first, *rest = textwrap.wrap(st["title"], 50)  # whole labels, wrapped under themselves
        out(
            f"  {first:<52}{_usd(st['orbit_usd_per_kwh']):>12}{_usd(st['ground_usd_per_kwh']):>13}"
            f"{_ratio(st['ratio']):>9}{st['launches']:>10,}{(f'${be:,.0f}/kg' if be is not None else 'none'):>12}\n"
        )
        for line in rest:
            out(f"    {line}\n")
    first, last = steps[0], steps[-1]
    out(
        f"  as published: orbit {1 / first['ratio']:.3g}x cheaper than ground"
        if first["ratio"] < 1
        else f"  as published: orbit {first['ratio']:.3g}x dearer than ground"
    )
    out(
        f"; corrected: orbit {1 / last['ratio']:.3g}x cheaper\n"
        if last["ratio"] < 1
        else f"; corrected: orbit {last['ratio']:.3g}x dearer\n"
    )
    crossing = next((st for st in steps if st["ratio"] >= 1.0), None)
    if first["ratio"] < 1 and crossing:
        out(f"  orbit stops being cheaper at: {crossing['title']}\n")


def _compare(args, overrides) -> int:
    names = [args.scenario] if args.scenario else list(COMPARE_ORDER)
    if args.assumptions:
        names.append(args.assumptions)
    studies = [study(sc.load_scenario(n), overrides, detail=False) for n in names]
    rows = [
        ("IT power", lambda s: format_power(s.values["target.it_power"])),
        ("years", lambda s: f"{s.values['target.years']:g}"),
        ("sunlit fraction", lambda s: _pct(s.plan.sunlight["sunlit_fraction"])),
        ("array area", lambda s: format_area(s.plan.size["array_area_m2"])),
        ("radiator area", lambda s: format_area(s.plan.size["radiator_area_m2"])),
        ("mass counted", lambda s: format_mass(s.plan.size["mass_kg"])),
        ("launches", lambda s: f"{s.plan.size['launches_total']:,}"),
        ("launch $/kg", lambda s: f"${_launch(s.values):,.0f}"),
        ("orbit total", lambda s: format_money(s.plan.orbit["total_usd"])),
        ("ground total", lambda s: format_money(s.plan.ground["total_usd"])),
        ("orbit $/kWh", lambda s: _usd(s.plan.orbit["usd_per_kwh"])),
        ("ground $/kWh", lambda s: _usd(s.plan.ground["usd_per_kwh"])),
        ("orbit $/W", lambda s: _usd(s.plan.orbit["usd_per_w"])),
        ("ground $/W", lambda s: _usd(s.plan.ground["usd_per_w"])),
        ("ratio orbit/ground", lambda s: _ratio(s.plan.ratio)),
        (
            "break-even $/kg",
            lambda s: (
                f"${s.plan.break_even_launch_per_kg:,.0f}"
                if s.plan.break_even_launch_per_kg is not None
                else "none"
            ),
        ),
        ("ratio, corrected", lambda s: _ratio(s.corrections[-1]["ratio"]) if s.corrections else "-"),
    ]
    if args.json:
        print_json(
            [
                {
                    "scenario": s.scenario.name,
                    "description": s.scenario.description,
                    **s.plan.as_dict(),
                    "reproduction": s.reproduction,
                    "corrections": s.corrections,
                }
                for s in studies
            ]
        )
        return 0
    width = 16
    sys.stdout.write(f"{'':<22}" + "".join(f"{s.scenario.name[:width]:>{width}}" for s in studies) + "\n")
    for label, fn in rows:
        sys.stdout.write(f"{label:<22}" + "".join(f"{fn(s):>{width}}" for s in studies) + "\n")
    for s in studies:
        bad = [r for r in s.reproduction if r["checked"] and abs(r["error"]) > 0.02]
        checked = [r for r in s.reproduction if r["checked"]]
        if checked:
            sys.stdout.write(
                f"{s.scenario.name}: {len(checked) - len(bad)} of {len(checked)} published "
                f"headline figures reproduced within 2%\n"
            )
    return 0
