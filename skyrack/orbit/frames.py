"""Earth frames, vectorized: TEME (SGP4's output) to Earth-fixed, and WGS84 geodetic coordinates.

TEME to Earth-fixed uses the IAU-82 sidereal time that SGP4's frame is defined with (Vallado
et al. 2006, "Revisiting Spacetrack Report #3"). Polar motion (< 15 m) is ignored.
"""

from __future__ import annotations

import numpy as np

WGS84_A_KM = 6378.137
WGS84_F = 1.0 / 298.257223563
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)
EARTH_ROTATION_RAD_S = 7.292115146706979e-5


def gmst82(jd_ut1_whole: np.ndarray, jd_ut1_fraction: np.ndarray) -> np.ndarray:
    """Greenwich mean sidereal time (radians), IAU-82, from a two-part UT1 Julian date."""
    tut1 = ((jd_ut1_whole - 2451545.0) + jd_ut1_fraction) / 36525.0
    seconds = (
        67310.54841 + (876600.0 * 3600.0 + 8640184.812866) * tut1 + 0.093104 * tut1**2 - 6.2e-6 * tut1**3
    )
    return np.mod(np.deg2rad(seconds / 240.0), 2.0 * np.pi)


def teme_to_ecef(r_teme: np.ndarray, v_teme: np.ndarray, gmst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rotate (3, n) TEME position/velocity by GMST into the Earth-fixed frame (km, km/s)."""
    c, s = np.cos(gmst), np.sin(gmst)
    x, y, z = r_teme
    r = np.stack([c * x + s * y, -s * x + c * y, z])
    vx, vy, vz = v_teme
    v = np.stack([c * vx + s * vy, -s * vx + c * vy, vz])
    # The frame turns under the satellite: subtract omega x r.
    v[0] += EARTH_ROTATION_RAD_S * r[1]
    v[1] -= EARTH_ROTATION_RAD_S * r[0]
    return r, v


def ecef_to_geodetic(r_ecef: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """WGS84 geodetic latitude (deg), longitude (deg, -180..180) and height (km)."""
    x, y, z = r_ecef
    lon = np.arctan2(y, x)
    p = np.hypot(x, y)
    lat = np.arctan2(z, p * (1.0 - WGS84_E2))
    for _ in range(4):  # converges to < 1 mm in three iterations at LEO heights
        sin_lat = np.sin(lat)
        n = WGS84_A_KM / np.sqrt(1.0 - WGS84_E2 * sin_lat**2)
        lat = np.arctan2(z + WGS84_E2 * n * sin_lat, p)
    sin_lat, cos_lat = np.sin(lat), np.cos(lat)
    n = WGS84_A_KM / np.sqrt(1.0 - WGS84_E2 * sin_lat**2)
    # Height from the component that is well conditioned at this latitude.
    height = np.where(
        np.abs(cos_lat) > 1e-3, p / np.where(cos_lat == 0, 1, cos_lat) - n, np.abs(z) - n * (1.0 - WGS84_E2)
    )
    return np.rad2deg(lat), np.rad2deg(lon), height


def geodetic_to_ecef(lat_deg: float, lon_deg: float, height_km: float = 0.0) -> np.ndarray:
    lat, lon = np.deg2rad(lat_deg), np.deg2rad(lon_deg)
    n = WGS84_A_KM / np.sqrt(1.0 - WGS84_E2 * np.sin(lat) ** 2)
    return np.array(
        [
            (n + height_km) * np.cos(lat) * np.cos(lon),
            (n + height_km) * np.cos(lat) * np.sin(lon),
            (n * (1.0 - WGS84_E2) + height_km) * np.sin(lat),
        ]
    )


def enu_basis(lat_deg: float, lon_deg: float) -> np.ndarray:
    """Rows: east, north, up unit vectors (Earth-fixed) at a geodetic point."""
    lat, lon = np.deg2rad(lat_deg), np.deg2rad(lon_deg)
    return np.array(
        [
            [-np.sin(lon), np.cos(lon), 0.0],
            [-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)],
            [np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)],
        ]
    )
