"""CLI: `skyrack where`, `skyrack orbit`, `skyrack passes`."""

from __future__ import annotations

import csv
import sys

import numpy as np

from skyrack.cliargs import add_flight_args, positive, print_json, start_time, twin_from_args, warn
from skyrack.errors import UserError
from skyrack.orbit.passes import find_passes
from skyrack.orbit.stations import resolve_station
from skyrack.orbit.timebase import iso
from skyrack.orbit.where import where_report


def register(sub) -> None:
    p = sub.add_parser("where", help="where the satellite is, what is beneath, what comes next")
    add_flight_args(p)
    p.add_argument("--at", metavar="ISO8601", help="time (default: now, UTC)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_where)

    p = sub.add_parser("orbit", help="dump the ground track with sunlight and region columns")
    add_flight_args(p)
    p.add_argument("--at", metavar="ISO8601", help="start time (default: now, UTC)")
    p.add_argument("--hours", type=float, default=1.5)
    p.add_argument("--step", type=float, default=60.0, metavar="S", help="seconds between rows")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--csv", action="store_true", help="CSV (the default)")
    fmt.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_orbit)

    p = sub.add_parser("passes", help="ground-station passes")
    add_flight_args(p)
    p.add_argument(
        "--station",
        required=True,
        metavar="NAME|LAT,LON",
        help="built-in station or LAT,LON in degrees (negative: --station=-33.9,18.4)",
    )
    p.add_argument("--at", metavar="ISO8601", help="start time (default: now, UTC)")
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--min-elevation", type=float, default=10.0, metavar="DEG")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_passes)


def render_where(report: dict) -> str:
    lat, lon = report["lat_deg"], report["lon_deg"]
    fraction = report["sunlit_fraction"]
    light = (
        "sunlit"
        if fraction >= 0.999
        else "in eclipse"
        if fraction <= 0.001
        else f"in penumbra ({fraction:.0%} of the Sun)"
    )
    line = (
        f"Over {report['region']['spoken']} - {abs(lat):.1f}°{'N' if lat >= 0 else 'S'} "
        f"{abs(lon):.1f}°{'E' if lon >= 0 else 'W'}, {report['alt_km']:.0f} km, {light}."
    )
    if report["next"]:
        line += (
            " Next: " + ", ".join(f"{n['region']} in {_minutes(n['eta_s'])}" for n in report["next"]) + "."
        )
    return line


def _minutes(seconds: float) -> str:
    return f"{round(seconds)} s" if seconds < 90 else f"{round(seconds / 60)} min"


def cmd_where(args) -> int:
    from skyrack.geo.regions import RegionIndex

    twin = twin_from_args(args)
    seconds = start_time(args)
    stale = twin.staleness_warning(seconds)
    report = where_report(twin, seconds, RegionIndex.load())
    if args.json:
        print_json({**report, "warnings": [stale] if stale else []})
    else:
        warn(stale)
        print(render_where(report))
    return 0


def cmd_orbit(args) -> int:
    hours = positive("--hours", args.hours, 24 * 31)
    step = positive("--step", args.step)
    twin = twin_from_args(args)
    start = start_time(args)
    seconds = start + np.arange(0.0, hours * 3600.0 + step / 2, step)
    if seconds.size > 5_000_000:
        raise UserError(f"{seconds.size} rows is too many; use a larger --step")
    stale = twin.staleness_warning(seconds)
    state = twin.state(seconds)
    from skyrack.geo.regions import RegionIndex

    index = RegionIndex.load()
    codes = index.lookup(state.lat_deg, state.lon_deg)
    names = {int(c): index.region(int(c)) for c in np.unique(codes)}
    columns = [
        "time",
        "lat_deg",
        "lon_deg",
        "alt_km",
        "speed_km_s",
        "sunlit_fraction",
        "in_saa",
        "region",
        "area",
    ]
    rows = (
        [
            iso(t),
            round(float(la), 4),
            round(float(lo), 4),
            round(float(al), 3),
            round(float(sp), 4),
            round(float(sl), 4),
            bool(sa),
            names[int(c)].name,
            names[int(c)].area,
        ]
        for t, la, lo, al, sp, sl, sa, c in zip(
            seconds,
            state.lat_deg,
            state.lon_deg,
            state.alt_km,
            state.speed_km_s,
            state.sunlit,
            state.in_saa,
            codes,
        )
    )
    if args.json:
        print_json(
            {
                "satellite": twin.satellite.name,
                "warnings": [stale] if stale else [],
                "columns": columns,
                "rows": list(rows),
            }
        )
        return 0
    warn(stale)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return 0


def cmd_passes(args) -> int:
    station = resolve_station(args.station)
    hours = positive("--hours", args.hours, 24 * 31)
    if not -90 < args.min_elevation < 90:
        raise UserError(f"--min-elevation must be between -90 and 90 degrees, got {args.min_elevation}")
    twin = twin_from_args(args)
    start = start_time(args)
    end = start + hours * 3600.0
    stale = twin.staleness_warning(np.array([start, end]))
    passes = find_passes(twin, station, start, end, args.min_elevation)
    if args.json:
        print_json(
            {
                "satellite": twin.satellite.name,
                "station": station.__dict__,
                "min_elevation_deg": args.min_elevation,
                "warnings": [stale] if stale else [],
                "passes": [
                    {
                        "rise": iso(p.rise_s),
                        "culmination": iso(p.culmination_s),
                        "set": iso(p.set_s),
                        "duration_s": round(p.duration_s, 1),
                        "max_elevation_deg": round(p.max_elevation_deg, 2),
                        "rise_azimuth_deg": round(p.rise_azimuth_deg, 1),
                        "set_azimuth_deg": round(p.set_azimuth_deg, 1),
                    }
                    for p in passes
                ],
            }
        )
        return 0
    warn(stale)
    print(
        f"{twin.satellite.name} over {station.name} ({station.lat_deg:.2f}, {station.lon_deg:.2f}), "
        f"next {hours:g} h, above {args.min_elevation:g} deg: {len(passes)} passes"
    )
    if passes:
        print(f"{'rise (UTC)':<21}{'culmination':<21}{'set':<21}{'max el':>7}{'min':>6}")
    for p in passes:
        print(
            f"{iso(p.rise_s):<21}{iso(p.culmination_s):<21}{iso(p.set_s):<21}"
            f"{p.max_elevation_deg:6.1f}°{p.duration_s / 60:6.1f}"
        )
    return 0
