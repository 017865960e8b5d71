"""A point on the Earth as a person types it: validated once, for every command that takes one."""

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
