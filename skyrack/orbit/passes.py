"""Ground-station passes: rise, culmination and set above an elevation mask."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skyrack.orbit import frames
from skyrack.orbit.stations import Station
from skyrack.orbit.twin import OrbitTwin, find_crossings

SEARCH_STEP_S = 10.0  # passes above a 10 deg mask at LEO last minutes; 10 s sampling sees them


@dataclass(frozen=True)
class Pass:
    rise_s: float
    culmination_s: float
    set_s: float
    max_elevation_deg: float
    rise_azimuth_deg: float
    set_azimuth_deg: float

    @property
    def duration_s(self) -> float:
        return self.set_s - self.rise_s


def look_angles(twin: OrbitTwin, station: Station, seconds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Elevation (deg), azimuth (deg, from north through east) and range (km) from the station."""
    site = frames.geodetic_to_ecef(station.lat_deg, station.lon_deg, station.height_km)
    enu = frames.enu_basis(station.lat_deg, station.lon_deg) @ (twin.ecef(seconds) - site[:, None])
    rng = np.linalg.norm(enu, axis=0)
    elevation = np.rad2deg(np.arcsin(enu[2] / rng))
    azimuth = np.rad2deg(np.arctan2(enu[0], enu[1])) % 360.0
    return elevation, azimuth, rng


def find_passes(
    twin: OrbitTwin, station: Station, start: float, end: float, min_elevation_deg: float = 10.0
) -> list[Pass]:
    def above(t):
        return look_angles(twin, station, t)[0] - min_elevation_deg

    crossings = find_crossings(above, start, end, SEARCH_STEP_S)
    passes = []
    # A pass already under way at `start` or unfinished at `end` is cut at the window's edge.
    rise = start if above(np.array([start]))[0] > 0 else None
    for crossing in crossings:
        if crossing.rising:
            rise = crossing.seconds
        elif rise is not None:
            passes.append(_describe(twin, station, rise, crossing.seconds))
            rise = None
    if rise is not None:
        passes.append(_describe(twin, station, rise, end))
    return passes


def _describe(twin: OrbitTwin, station: Station, rise: float, set_: float) -> Pass:
    grid = np.linspace(rise, set_, max(3, int((set_ - rise) / 1.0) + 1))
    elevation, azimuth, _ = look_angles(twin, station, grid)
    k = int(np.argmax(elevation))
    culmination = float(grid[k])
    if 0 < k < grid.size - 1:  # a parabola through the top three samples finds the peak between them
        y0, y1, y2 = elevation[k - 1 : k + 2]
        denom = y0 - 2 * y1 + y2
        if denom < 0:
            culmination += 0.5 * (y0 - y2) / denom * (grid[1] - grid[0])
    peak = float(look_angles(twin, station, np.array([culmination]))[0][0])
    return Pass(
        rise, culmination, set_, max(peak, float(elevation[k])), float(azimuth[0]), float(azimuth[-1])
    )
