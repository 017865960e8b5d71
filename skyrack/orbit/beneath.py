"""What lies beneath the satellite now, and which regions the ground track reaches next."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skyrack.geo.areas import repeats
from skyrack.orbit import frames
from skyrack.orbit.twin import OrbitTwin

TRACK_STEP_S = 10.0
MIN_DWELL_S = 60.0  # a region crossed in under a minute (a cape, a strait) is not announced


@dataclass(frozen=True)
class Arrival:
    area: str  # what is announced: a broad region ("the Middle East") or an ocean
    detail: str | None  # the first country or sea inside it ("Saudi Arabia"), if it adds anything
    seconds: float
    eta_s: float

    def spoken(self) -> str:
        return f"{self.area} ({self.detail})" if self.detail else self.area


def spoken_region(region) -> str:
    """'Chad, Africa' on land; 'the Indian Ocean' at sea."""
    if region.country and region.continent and region.continent != region.name:
        return f"{region.spoken}, {region.continent}"
    return region.spoken


def _is_ocean(region) -> bool:
    return region.is_water and region.name.endswith("Ocean")


def announcement_keys(index) -> tuple[np.ndarray, list[str]]:
    """Per region code, what a person would announce on arrival: the broad area on land and
    on seas, the ocean's own name on open ocean (crossing the equator in the Pacific is not
    news). Returns (key per code, label per key)."""
    cached = getattr(index, "_announcement_keys", None)
    if cached is None:
        labels = [region.spoken if _is_ocean(region) else region.area for region in index.regions]
        unique = sorted(set(labels))
        cached = (np.array([unique.index(label) for label in labels], dtype=np.int32), unique)
        index._announcement_keys = cached
    return cached


def upcoming_areas(
    twin: OrbitTwin, index, start: float, horizon_s: float = 3600.0, count: int = 3
) -> list[Arrival]:
    """The next `count` announced regions along the ground track within `horizon_s`."""
    seconds = start + np.arange(0.0, horizon_s + TRACK_STEP_S, TRACK_STEP_S)
    lat, lon, _ = frames.ecef_to_geodetic(twin.ecef(seconds))
    codes = index.lookup(lat, lon)
    key_of_code, labels = announcement_keys(index)
    keys = key_of_code[codes]
    change = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    ends = np.concatenate([change[1:], [keys.size]])
    current = keys[0]
    arrivals: list[Arrival] = []
    for first, last in zip(change, ends):
        key = keys[first]
        # Skip brief crossings (unless cut by the horizon) and returns to where we already are.
        if (last - first) * TRACK_STEP_S < MIN_DWELL_S and last < keys.size:
            continue
        if key == current:
            continue
        region = index.region(int(codes[first]))
        # no detail that says the area again ("the Mediterranean (the Mediterranean Sea)")
        detail = None if _is_ocean(region) or repeats(region.name, labels[key]) else region.spoken
        arrivals.append(Arrival(labels[key], detail, float(seconds[first]), float(seconds[first] - start)))
        current = key
        if len(arrivals) == count:
            break
    return arrivals
