"""The Sun as seen from orbit: its direction, how much of its disk the Earth hides, beta angle.

The Sun's geocentric position comes from DE421 (geometric; aberration moves it by ~20 arcsec,
a few tenths of a second of eclipse timing) evaluated on a 10-minute grid and interpolated:
the Sun moves ~0.04 deg in that time, so linear interpolation errs by micro-degrees, and a day
at 1 s steps costs 145 ephemeris evaluations instead of 86,400.
"""

from __future__ import annotations

import numpy as np
from skyfield.sgp4lib import TEME

from skyrack.orbit.timebase import skyfield_time
from skyrack.sources.ephemeris import check_covered, planets

R_SUN_KM = 695_700.0
R_EARTH_SHADOW_KM = 6371.0  # mean radius; oblateness moves eclipse edges by a few seconds
SUN_GRID_S = 600.0


def sun_teme_km(seconds: np.ndarray) -> np.ndarray:
    """Geocentric Sun position (3, n) in TEME, km, at POSIX seconds."""
    seconds = np.atleast_1d(np.asarray(seconds, dtype=float))
    check_covered(seconds)
    start = np.floor(seconds.min() / SUN_GRID_S) * SUN_GRID_S
    stop = np.ceil(seconds.max() / SUN_GRID_S) * SUN_GRID_S + SUN_GRID_S
    grid = np.arange(start, stop + 1.0, SUN_GRID_S)
    eph = planets()
    t = skyfield_time(grid)
    gcrs = (eph["sun"] - eph["earth"]).at(t).position.km
    rotation = TEME.rotation_at(t)
    teme = np.einsum("ij...,j...->i...", rotation, gcrs)
    return np.stack([np.interp(seconds, grid, axis) for axis in teme])


def sunlit_fraction(r_sat_km: np.ndarray, r_sun_km: np.ndarray) -> np.ndarray:
    """Fraction of the solar disk visible from the satellite (1 sunlit, 0 umbra, between: penumbra).

    The Earth and Sun are disks on the sky; the visible share is one minus their overlap,
    with a spherical Earth of mean radius.
    """
    to_sun = r_sun_km - r_sat_km
    d_sun = np.linalg.norm(to_sun, axis=0)
    d_earth = np.linalg.norm(r_sat_km, axis=0)
    a = np.arcsin(np.clip(R_SUN_KM / d_sun, -1, 1))  # Sun's angular radius
    b = np.arcsin(np.clip(R_EARTH_SHADOW_KM / d_earth, -1, 1))  # Earth's angular radius
    cos_c = np.einsum("i...,i...->...", to_sun, -r_sat_km) / (d_sun * d_earth)
    c = np.arccos(np.clip(cos_c, -1.0, 1.0))  # separation of the centres
    overlap = _disk_overlap(a, b, c)
    return np.clip(1.0 - overlap / (np.pi * a**2), 0.0, 1.0)


def _disk_overlap(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Area shared by disks of radii a, b whose centres are c apart (small-angle, planar)."""
    full_apart = c >= a + b
    inside = c <= np.abs(b - a)
    cs = np.where(full_apart | inside, 1.0, c)  # keep the partial formula finite everywhere
    arg1 = np.clip((cs**2 + a**2 - b**2) / (2 * cs * a), -1, 1)
    arg2 = np.clip((cs**2 + b**2 - a**2) / (2 * cs * b), -1, 1)
    k = (-cs + a + b) * (cs + a - b) * (cs - a + b) * (cs + a + b)
    partial = a**2 * np.arccos(arg1) + b**2 * np.arccos(arg2) - 0.5 * np.sqrt(np.clip(k, 0, None))
    contained = np.pi * np.minimum(a, b) ** 2
    return np.where(full_apart, 0.0, np.where(inside, contained, partial))


def beta_angle_deg(r_km: np.ndarray, v_km_s: np.ndarray, r_sun_km: np.ndarray) -> np.ndarray:
    """Angle between the orbit plane and the Sun direction, degrees (positive: Sun north of plane)."""
    h = np.cross(r_km, v_km_s, axis=0)
    h /= np.linalg.norm(h, axis=0)
    s = r_sun_km / np.linalg.norm(r_sun_km, axis=0)
    return np.rad2deg(np.arcsin(np.clip(np.einsum("i...,i...->...", h, s), -1, 1)))
