"""What lies beneath the satellite now, and which regions the ground track reaches next."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skyrack.orbit import frames
from skyrack.orbit.twin import OrbitTwin

TRACK_STEP_S = 10.0
MIN_DWELL_S = 60.0  # a region crossed in under a minute (a cape, a strait) is not announced


@dataclass(frozen=True)
class Arrival:
    area: str          # the broad region people say aloud, e.g. "the Middle East"
    detail: str | None  # the first country or sea inside it, e.g. "Saudi Arabia"
    seconds: float
    eta_s: float

    def spoken(self) -> str:
        if self.detail and self.detail.lower() not in self.area.lower():
            return f"{self.area} ({self.detail})"
        return self.area


def spoken_region(region) -> str:
    """'Chad, Africa' on land; 'the Indian Ocean' at sea."""
    if region.country:
        return f"{region.country}, {region.continent}" if region.continent else region.country
    name = region.ocean or region.name
    return name if name.lower().startswith("the ") else f"the {name}"


def upcoming_areas(twin: OrbitTwin, index, start: float, horizon_s: float = 3600.0,
                   count: int = 3) -> list[Arrival]:
    """The next `count` broad regions along the ground track within `horizon_s`."""
    seconds = start + np.arange(0.0, horizon_s + TRACK_STEP_S, TRACK_STEP_S)
    lat, lon, _ = frames.ecef_to_geodetic(twin.ecef(seconds))
    codes = index.lookup(lat, lon)
    areas = index.area_code(codes)
    change = np.flatnonzero(areas[1:] != areas[:-1]) + 1
    starts = np.concatenate([[0], change])
    ends = np.concatenate([change, [areas.size]])
    current = areas[0]
    arrivals: list[Arrival] = []
    for first, last in zip(starts[1:], ends[1:]):
        area = areas[first]
        dwell = (last - first) * TRACK_STEP_S
        # Skip brief crossings and returns to the area we are already in or just announced.
        if dwell < MIN_DWELL_S and last < areas.size:
            continue
        if area == current or (arrivals and arrivals[-1].area == index.area_name(area)):
            continue
        region = index.region(int(codes[first]))
        arrivals.append(Arrival(index.area_name(area), region.country or region.ocean,
                                float(seconds[first]), float(seconds[first] - start)))
        current = area
        if len(arrivals) == count:
            break
    return arrivals
