"""The South Atlantic Anomaly: where the inner radiation belt dips closest to the Earth.

Boundary (an assumption of this project, stated as such): an ellipse on the map centred at
26 S 50 W with half-widths of 20 deg in latitude and 45 deg in longitude, i.e. roughly 46 S-6 S,
95 W-5 W. It is a coarse outline of the region where trapped-proton flux above 10 MeV at
400-600 km stands well above its background in AP-8/AP-9 style maps, and where flight data
show most memory upsets of LEO satellites. The anomaly drifts westward by ~0.3 deg a year
and grows with altitude; neither is modelled.
"""

from __future__ import annotations

import numpy as np

CENTER_LAT_DEG = -26.0
CENTER_LON_DEG = -50.0
HALF_LAT_DEG = 20.0
HALF_LON_DEG = 45.0


def saa_depth(lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    """0 at the centre, 1 on the boundary, >1 outside (the ellipse's normalized radius)."""
    dlon = (np.asarray(lon_deg) - CENTER_LON_DEG + 180.0) % 360.0 - 180.0
    dlat = np.asarray(lat_deg) - CENTER_LAT_DEG
    return np.sqrt((dlat / HALF_LAT_DEG) ** 2 + (dlon / HALF_LON_DEG) ** 2)


def in_saa(lat_deg: np.ndarray, lon_deg: np.ndarray) -> np.ndarray:
    return saa_depth(lat_deg, lon_deg) <= 1.0
