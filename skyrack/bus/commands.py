"""CLI: `skyrack power`, the power and thermal budget along the orbit, governed."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from skyrack.bus.simulate import BusTimeline, simulate
from skyrack.cliargs import add_flight_args, positive, print_json, start_time, warn
from skyrack.errors import UserError
from skyrack.orbit.timebase import iso
from skyrack.orbit.twin import OrbitTwin
from skyrack.profile import load_profile

MAX_EVENTS_SHOWN = 40


def register(sub) -> None:
    p = sub.add_parser(
        "power", help="power and thermal budget along the orbit, with the governor's decisions"
    )
    add_flight_args(p)
    p.add_argument("--at", metavar="ISO8601", help="start time (default: now, UTC)")
    p.add_argument("--hours", type=float, default=6.0, help="how long to fly (default: 6)")
    p.add_argument(
        "--step", type=float, default=10.0, metavar="S", help="control tick in seconds (default: 10)"
    )
    p.add_argument(
        "--every", type=float, default=10.0, metavar="MIN", help="minutes between table rows (default: 10)"
    )
    p.add_argument(
        "--soc", type=float, default=1.0, metavar="FRACTION", help="battery charge at the start (default: 1)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--plot", metavar="FILE.svg", help="also draw the timeline as a self-contained SVG")
    p.set_defaults(func=cmd_power)


def _rows(timeline: BusTimeline, every_s: float) -> list[dict]:
    stride = max(1, int(round(every_s / timeline.tick_s)))
    rows = []
    for i in list(range(0, len(timeline.time), stride)):
        lit = float(timeline.sunlit[i])
        rows.append(
            {
                "time": iso(timeline.time[i]),
                "light": "sun" if lit >= 0.999 else "eclipse" if lit <= 0.001 else "penumbra",
                "soc": round(float(timeline.soc[i]), 4),
                "array_w": round(float(timeline.array_w[i]), 1),
                "load_w": round(float(timeline.load_w[i]), 1),
                "gpu_cap_w": round(float(timeline.gpu_cap_w[i]), 1),
                "gpu_temp_c": round(float(timeline.temp_c[i]), 2),
                "radiator_c": round(float(timeline.radiator_c[i]), 2),
                "in_saa": bool(timeline.in_saa[i]),
                "upsets_per_bit_day": float(f"{timeline.upset_rate[i]:.4g}"),
            }
        )
    return rows


def cmd_power(args) -> int:
    hours = positive("--hours", args.hours, 24 * 31)
    step = positive("--step", args.step, 3600)
    every = positive("--every", args.every)
    if not 0 <= args.soc <= 1:
        raise UserError(f"--soc must lie between 0 and 1, got {args.soc}")
    if args.plot and Path(args.plot).suffix.lower() != ".svg":
        raise UserError(
            f"--plot writes SVG only (no plotting library needed): give a .svg file, got {args.plot}"
        )
    profile = load_profile(args.profile, args.tle)
    twin = OrbitTwin(profile.satellite)
    start = start_time(args)
    stale = twin.staleness_warning(np.array([start, start + hours * 3600.0]))
    timeline = simulate(profile, twin, start, hours, step, initial_soc=args.soc)
    summary = timeline.summary()
    events = [e.as_dict() for e in timeline.events]
    if args.plot:
        from skyrack.bus.plot import timeline_svg

        title = f"{profile.name}: {iso(start)} + {hours:g} h"
        try:
            Path(args.plot).write_text(timeline_svg(timeline, title), encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot write {args.plot}: {exc.strerror or exc}") from None
    rows = _rows(timeline, every * 60.0)
    if args.json:
        print_json(
            {
                "satellite": profile.name,
                "start": iso(start),
                "hours": hours,
                "tick_s": step,
                "warnings": [stale] if stale else [],
                "summary": summary,
                "rows": rows,
                "events": events,
                "plot": args.plot,
            }
        )
        return 0
    warn(stale)
    print(f"{profile.name}: power and thermal budget from {iso(start)}, {hours:g} h at {step:g} s ticks")
    print(
        f"{'time (UTC)':<21}{'light':<9}{'SoC':>6}{'array W':>9}{'load W':>8}{'GPU cap':>9}{'GPU C':>7}  SAA"
    )
    for r in rows:
        cap = f"{r['gpu_cap_w']:.0f}" if r["gpu_cap_w"] > 0 else "paused"
        print(
            f"{r['time']:<21}{r['light']:<9}{r['soc']:>6.0%}{r['array_w']:>9.0f}{r['load_w']:>8.0f}"
            f"{cap:>9}{r['gpu_temp_c']:>7.1f}  {'yes' if r['in_saa'] else ''}"
        )
    s = summary
    print()
    print(
        f"energy: in {s['energy_in_wh']:.0f} Wh, used {s['energy_used_wh']:.0f} Wh, shed {s['energy_shed_wh']:.0f} Wh"
        f"{'' if not s['energy_unmet_wh'] else ', UNMET ' + format(s['energy_unmet_wh'], '.1f') + ' Wh'}; "
        f"battery {s['battery_start_wh']:.0f} -> {s['battery_end_wh']:.0f} Wh"
    )
    print(
        f"battery: lowest {s['min_soc']:.1%} (reserve {s['reserve_soc']:.0%}); "
        f"GPU hottest {s['max_temp_c']:.1f} C (limit {s['temp_limit_c']:.0f} C)"
    )
    print(
        f"GPU: running {s['gpu_duty']:.1%} of the time at {s['gpu_average_cap_w']:.0f} W on average, "
        f"{s['throughput']:.1%} of uncapped training speed; {s['pauses']} pauses"
    )
    print(
        f"orbit: {s['eclipses']} eclipses, sunlit {s['sunlit_fraction']:.1%}; "
        f"expected GPU memory upsets {s['expected_gpu_upsets']:.0f}; dose {s['dose_rad']:.3f} rad(Si)"
    )
    print(f"governor decisions ({len(events)}):")
    for e in events[:MAX_EVENTS_SHOWN]:
        cap = f"{e['cap_w']:.0f} W" if e["running"] else "paused"
        print(f"  {e['time']}  {e['kind']:<24}{cap:>7}  {e['reason']}")
    if len(events) > MAX_EVENTS_SHOWN:
        print(f"  ... {len(events) - MAX_EVENTS_SHOWN} more (--json lists all)")
    if args.plot:
        print(f"plot: {args.plot}")
    return 0
