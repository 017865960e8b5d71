"""`skyrack region LAT LON [--json]`: name what lies beneath a point."""

from __future__ import annotations

import math

from skyrack.errors import UserError


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise UserError(f"{what} must be a number of degrees, not {text!r}") from None
    if not math.isfinite(value):
        raise UserError(f"{what} must be a finite number of degrees, not {text!r}")
    return value


def parse_point(lat_text: str, lon_text: str) -> tuple[float, float]:
    """Latitude in [-90, 90], longitude in [-180, 360) (east positive), else UserError."""
    lat = _number(lat_text, "latitude")
    lon = _number(lon_text, "longitude")
    if not -90.0 <= lat <= 90.0:
        raise UserError(f"latitude must be between -90 and 90 degrees, not {lat_text}")
    if not -180.0 <= lon < 360.0:
        raise UserError(f"longitude must be in [-180, 360) degrees, not {lon_text}")
    return lat, lon


def run_region(args) -> int:
    from skyrack.cli import print_json
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
        "region", help="name the country, sea or ocean beneath a point, offline",
        description="Name what lies beneath LAT LON: country and continent on land, sea or "
                    "ocean at sea, and the broad area people say aloud. Data: Natural Earth "
                    "1:110m countries and the project's table of seas.")
    # Strings, so that "-33.9" is not taken for an option and bad numbers get our message.
    parser.add_argument("lat", metavar="LAT", help="latitude in degrees, north positive")
    parser.add_argument("lon", metavar="LON", help="longitude in degrees, east positive")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(func=run_region)
