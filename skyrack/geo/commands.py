"""`skyrack region LAT LON [--json]`: name what lies beneath a point."""

from __future__ import annotations

from skyrack.cliargs import print_json
from skyrack.geo.point import parse_point


def run_region(args) -> int:
    from skyrack.geo.regions import RegionIndex

    lat, lon = parse_point(args.lat, args.lon)
    region = RegionIndex.load().describe(lat, lon)
    if args.json:
        print_json({"lat_deg": lat, "lon_deg": lon, **region.as_dict()})
    else:
        print(region.line)
    return 0


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "region",
        help="name the country, sea or ocean beneath a point, offline",
        description="Name what lies beneath LAT LON: country and continent on land, sea or "
        "ocean at sea, and the broad area people say aloud. Data: Natural Earth "
        "1:110m countries and the project's table of seas.",
    )
    # Strings, so that "-33.9" is not taken for an option and bad numbers get our message.
    parser.add_argument("lat", metavar="LAT", help="latitude in degrees, north positive")
    parser.add_argument("lon", metavar="LON", help="longitude in degrees, east positive")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(func=run_region)
