"""What the dashboard's map draws, computed by the twin's own functions: country outlines from
the same Natural Earth source the region index uses, the ground track, the subsolar point (for
the day/night terminator), ground stations and their passes."""

from __future__ import annotations

import functools
import json

import numpy as np

from skyrack.geo.outlines import country_outlines
from skyrack.orbit import frames, sun
from skyrack.orbit.passes import find_passes
from skyrack.orbit.stations import BUILTIN, Station
from skyrack.orbit.timebase import iso, julian_split
from skyrack.orbit.twin import OrbitTwin

OUTLINE_TOLERANCE_DEG = 0.2  # a world map 1000 px wide shows 0.36 deg per pixel


@functools.lru_cache(maxsize=1)
def countries_geojson() -> bytes:
    """Simplified country outlines as GeoJSON (computed once per process, ~150 kB)."""
    import shapely

    features = []
    for record, geom in country_outlines(OUTLINE_TOLERANCE_DEG):
        if geom.is_empty:
            continue
        geom = shapely.set_precision(geom, 0.01)
        features.append(
            {
                "type": "Feature",
                "properties": {"name": record.name, "iso_a2": record.iso_a2},
                "geometry": shapely.geometry.mapping(geom),
            }
        )
    return json.dumps({"type": "FeatureCollection", "features": features}, separators=(",", ":")).encode()


def subsolar_point(seconds: float) -> tuple[float, float]:
    """Latitude and longitude (deg) where the Sun is overhead (UT1 - UTC neglected: < 0.01 deg)."""
    t = np.array([seconds], dtype=float)
    s = sun.sun_teme_km(t)
    jd, fr = julian_split(t)
    ecef, _ = frames.teme_to_ecef(s, np.zeros_like(s), frames.gmst82(jd, fr))
    x, y, z = ecef[:, 0]
    return float(np.degrees(np.arctan2(z, np.hypot(x, y)))), float(np.degrees(np.arctan2(y, x)))


def ground_track(twin: OrbitTwin, start: float, end: float, step_s: float) -> list[list[float]]:
    """[t, lat, lon, sunlit fraction] from start to end."""
    seconds = np.arange(start, end + step_s / 2, step_s)
    state = twin.state(seconds)
    return [
        [float(t), round(float(la), 3), round(float(lo), 3), round(float(sl), 3)]
        for t, la, lo, sl in zip(seconds, state.lat_deg, state.lon_deg, state.sunlit)
    ]


def stations() -> list[dict]:
    return [{"id": key, **station_dict(s)} for key, s in sorted(BUILTIN.items())]


def station_dict(s: Station) -> dict:
    return {"name": s.name, "lat_deg": s.lat_deg, "lon_deg": s.lon_deg, "height_km": s.height_km}


def passes(
    twin: OrbitTwin, station: Station, start: float, hours: float, min_elevation_deg: float
) -> list[dict]:
    return [
        {
            "rise": iso(p.rise_s),
            "rise_t": p.rise_s,
            "culmination": iso(p.culmination_s),
            "set": iso(p.set_s),
            "set_t": p.set_s,
            "duration_s": round(p.duration_s, 1),
            "max_elevation_deg": round(p.max_elevation_deg, 2),
        }
        for p in find_passes(twin, station, start, start + hours * 3600.0, min_elevation_deg)
    ]
