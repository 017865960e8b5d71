"""Ground stations: a few well-known sites built in, or any `LAT,LON` a person types.

Coordinates are the publicly listed sites rounded to 0.01 deg (about 1 km), plenty for pass
prediction at 10 deg elevation masks.
"""

from __future__ import annotations

from dataclasses import dataclass

from skyrack.errors import UserError
from skyrack.geo.point import parse_point


@dataclass(frozen=True)
class Station:
    name: str
    lat_deg: float
    lon_deg: float
    height_km: float = 0.0


BUILTIN = {
    "svalbard": Station("Svalbard (SvalSat)", 78.23, 15.41, 0.5),
    "kiruna": Station("Kiruna (Esrange)", 67.89, 21.07, 0.33),
    "fairbanks": Station("Fairbanks (Alaska)", 64.86, -147.85, 0.2),
    "wallops": Station("Wallops Island", 37.94, -75.46, 0.0),
    "hartebeesthoek": Station("Hartebeesthoek", -25.89, 27.69, 1.5),
    "santiago": Station("Santiago (Chile)", -33.15, -70.67, 0.7),
    "singapore": Station("Singapore", 1.35, 103.82, 0.0),
    "awarua": Station("Awarua (New Zealand)", -46.53, 168.38, 0.0),
    "hawaii": Station("South Point (Hawaii)", 19.01, -155.66, 0.4),
    "dubai": Station("Dubai", 25.20, 55.27, 0.0),
}


def resolve_station(text: str) -> Station:
    """A built-in name (case-insensitive) or 'LAT,LON[,HEIGHT_KM]' in degrees."""
    key = text.strip().lower()
    if key in BUILTIN:
        return BUILTIN[key]
    if "," in text:
        parts = [p.strip() for p in text.split(",")]
        if len(parts) not in (2, 3):
            raise UserError(f"station {text!r}: expected LAT,LON or LAT,LON,HEIGHT_KM")
        lat, lon = parse_point(parts[0], parts[1])
        try:
            height = float(parts[2]) if len(parts) == 3 else 0.0
        except ValueError:
            raise UserError(f"station {text!r}: height must be a number of km") from None
        return Station(f"{lat:.3f},{lon:.3f}", lat, lon, height)
    raise UserError(f"unknown station {text!r}; built in: {', '.join(sorted(BUILTIN))}, or give LAT,LON")
