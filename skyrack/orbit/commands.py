"""CLI: `skyrack where`, `skyrack orbit`, `skyrack passes`."""

from __future__ import annotations

import csv
import sys
from datetime import UTC, datetime

import numpy as np

from skyrack.errors import UserError
from skyrack.orbit.beneath import spoken_region, upcoming_areas
from skyrack.orbit.passes import find_passes
from skyrack.orbit.stations import resolve_station
from skyrack.orbit.timebase import iso, parse_time
from skyrack.orbit.twin import OrbitTwin
from skyrack.profile import load_profile


def add_flight_args(parser) -> None:
    """The options every command that flies a satellite takes."""
    parser.add_argument(
        "--profile",
        default=None,
        metavar="NAME|PATH",
        help="spacecraft profile: built-in name or TOML file (default: starcloud-1)",
    )
    parser.add_argument(
        "--tle",
        default=None,
        metavar="FILE",
        help="two/three-line elements or OMM JSON overriding the profile's orbit",
    )


def twin_from_args(args) -> OrbitTwin:
    return OrbitTwin(load_profile(args.profile, args.tle).satellite)


def warn(message: str | None) -> None:
    if message:
        sys.stderr.write(f"skyrack: warning: {message}\n")


def start_time(args) -> float:
    at = getattr(args, "at", None)
    return (parse_time(at) if at else datetime.now(UTC)).timestamp()


def positive(name: str, value: float, limit: float | None = None) -> float:
    if not value > 0:
        raise UserError(f"{name} must be positive, got {value}")
    if limit is not None and value > limit:
        raise UserError(f"{name} must be at most {limit}, got {value}")
    return value


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


def where_report(twin: OrbitTwin, seconds: float, index) -> dict:
    """Everything `where` says, as data; the human line is rendered from it."""
    state = twin.state(np.array([seconds]))
    region = index.describe(float(state.lat_deg[0]), float(state.lon_deg[0]))
    arrivals = upcoming_areas(twin, index, seconds)
    changes = twin.eclipses(seconds, seconds + 1.05 * twin.period_s)
    fraction = float(state.sunlit[0])
    return {
        "satellite": twin.satellite.name,
        "time": iso(seconds),
        "lat_deg": round(float(state.lat_deg[0]), 4),
        "lon_deg": round(float(state.lon_deg[0]), 4),
        "alt_km": round(float(state.alt_km[0]), 2),
        "speed_km_s": round(float(state.speed_km_s[0]), 3),
        "sunlit": fraction >= 0.5,
        "sunlit_fraction": round(fraction, 4),
        "beta_deg": round(float(state.beta_deg[0]), 2),
        "in_saa": bool(state.in_saa[0]),
        "region": {**region.as_dict(), "spoken": spoken_region(region)},
        "next": [
            {
                "region": a.spoken(),
                "area": a.area,
                "detail": a.detail,
                "eta_s": round(a.eta_s),
                "time": iso(a.seconds),
            }
            for a in arrivals
        ],
        "next_light_change": (
            {
                "event": "eclipse exit" if changes[0].rising else "eclipse entry",
                "eta_s": round(changes[0].seconds - seconds),
                "time": iso(changes[0].seconds),
            }
            if changes
            else None
        ),
    }


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
        from skyrack.cli import print_json

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
        from skyrack.cli import print_json

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
        from skyrack.cli import print_json

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
