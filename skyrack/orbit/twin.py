"""The orbit twin: where the satellite is, whether it is sunlit, what lies beneath, and when.

Everything here is a pure function of time over numpy arrays. SGP4 propagates in TEME
(`sgp4`'s vectorized `sgp4_array`, the reference implementation Skyfield wraps), positions
are rotated to the Earth-fixed frame with UT1 from Skyfield's built-in tables, and the Sun
comes from DE421.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from skyrack.errors import UserError
from skyrack.orbit import frames, saa, sun
from skyrack.orbit.elements import Satellite
from skyrack.orbit.timebase import iso, julian_split, skyfield_time
from skyrack.sources.ephemeris import check_covered

STALE_AFTER_DAYS = 14.0
SGP4_ERRORS = {
    1: "mean eccentricity out of range",
    2: "mean motion below zero",
    3: "perturbed eccentricity out of range",
    4: "semi-latus rectum below zero",
    6: "the satellite has decayed",
}


@dataclass(frozen=True)
class OrbitState:
    """The orbit at n instants; arrays of shape (n,) or (3, n). Units: km, km/s, degrees."""

    seconds: np.ndarray
    r_teme: np.ndarray
    v_teme: np.ndarray
    r_ecef: np.ndarray
    lat_deg: np.ndarray
    lon_deg: np.ndarray
    alt_km: np.ndarray
    speed_km_s: np.ndarray
    sun_teme: np.ndarray
    sunlit: np.ndarray  # visible fraction of the solar disk, 0..1
    beta_deg: np.ndarray
    in_saa: np.ndarray


@dataclass(frozen=True)
class Crossing:
    seconds: float
    rising: bool  # the function went from negative to positive


class OrbitTwin:
    def __init__(self, satellite: Satellite):
        self.satellite = satellite
        self.period_s = satellite.period_s

    # -- propagation -------------------------------------------------------------------------
    def propagate(self, seconds) -> tuple[np.ndarray, np.ndarray]:
        """TEME position (km) and velocity (km/s), shape (3, n)."""
        seconds = np.atleast_1d(np.asarray(seconds, dtype=float))
        check_covered(seconds)  # the twin's Sun, frames and timescale exist only there
        jd, fr = julian_split(seconds)
        error, r, v = self.satellite.satrec.sgp4_array(jd, fr)
        if np.any(error):
            first = int(np.flatnonzero(error)[0])
            reason = SGP4_ERRORS.get(int(error[first]), f"error {int(error[first])}")
            raise UserError(f"SGP4 cannot propagate {self.satellite.name} to {iso(seconds[first])}: {reason}")
        return r.T.copy(), v.T.copy()

    def state(self, seconds) -> OrbitState:
        seconds = np.atleast_1d(np.asarray(seconds, dtype=float))
        r, v = self.propagate(seconds)
        jd, fr = julian_split(seconds)
        gmst = frames.gmst82(jd, fr + _dut1_s(seconds) / 86400.0)
        r_ecef, _ = frames.teme_to_ecef(r, v, gmst)
        lat, lon, alt = frames.ecef_to_geodetic(r_ecef)
        s = sun.sun_teme_km(seconds)
        return OrbitState(
            seconds=seconds,
            r_teme=r,
            v_teme=v,
            r_ecef=r_ecef,
            lat_deg=lat,
            lon_deg=lon,
            alt_km=alt,
            speed_km_s=np.linalg.norm(v, axis=0),
            sun_teme=s,
            sunlit=sun.sunlit_fraction(r, s),
            beta_deg=sun.beta_angle_deg(r, v, s),
            in_saa=saa.in_saa(lat, lon),
        )

    def ecef(self, seconds) -> np.ndarray:
        """Earth-fixed positions only (the cheap path for pass searches)."""
        seconds = np.atleast_1d(np.asarray(seconds, dtype=float))
        r, v = self.propagate(seconds)
        jd, fr = julian_split(seconds)
        return frames.teme_to_ecef(r, v, frames.gmst82(jd, fr + _dut1_s(seconds) / 86400.0))[0]

    def sunlit(self, seconds) -> np.ndarray:
        r, _ = self.propagate(seconds)
        return sun.sunlit_fraction(r, sun.sun_teme_km(seconds))

    # -- time and trust ----------------------------------------------------------------------
    def epoch_offset_days(self, seconds) -> float:
        epoch = self.satellite.epoch.timestamp()
        return float(np.max(np.abs(np.atleast_1d(seconds) - epoch)) / 86400.0)

    def staleness_warning(self, seconds) -> str | None:
        days = self.epoch_offset_days(seconds)
        if days <= STALE_AFTER_DAYS:
            return None
        return (
            f"{self.satellite.name}'s elements are {days:.0f} days from their epoch "
            f"({self.satellite.epoch:%Y-%m-%d}); SGP4 drifts by km to thousands of km that far out: "
            f"give fresh elements with --tle FILE"
        )

    # -- events ------------------------------------------------------------------------------
    def eclipses(self, start: float, end: float, step_s: float = 10.0) -> list[Crossing]:
        """Eclipse entries (rising=False) and exits (rising=True): half the solar disk hidden."""
        return find_crossings(lambda t: self.sunlit(t) - 0.5, start, end, step_s)

    def saa_crossings(self, start: float, end: float, step_s: float = 10.0) -> list[Crossing]:
        """South Atlantic Anomaly entries (rising=True) and exits (rising=False)."""

        def inside(t):
            lat, lon, _ = frames.ecef_to_geodetic(self.ecef(t))
            return 1.0 - saa.saa_depth(lat, lon)

        return find_crossings(inside, start, end, step_s)


def find_crossings(
    func: Callable[[np.ndarray], np.ndarray],
    start: float,
    end: float,
    step_s: float,
    tolerance_s: float = 0.01,
) -> list[Crossing]:
    """Zero crossings of `func` in [start, end]: sampled every `step_s`, then refined by
    bisection of all brackets at once (one vectorized call per halving)."""
    grid = np.arange(start, end + step_s, step_s)
    grid[-1] = min(grid[-1], end)
    values = func(grid)
    sign = values > 0
    idx = np.flatnonzero(sign[1:] != sign[:-1])
    if idx.size == 0:
        return []
    lo, hi = grid[idx].copy(), grid[idx + 1].copy()
    lo_positive = sign[idx]
    while np.max(hi - lo) > tolerance_s:
        mid = 0.5 * (lo + hi)
        mid_positive = func(mid) > 0
        same = mid_positive == lo_positive
        lo = np.where(same, mid, lo)
        hi = np.where(same, hi, mid)
    return [Crossing(float(0.5 * (a + b)), not bool(p)) for a, b, p in zip(lo, hi, lo_positive)]


def _dut1_s(seconds: np.ndarray) -> np.ndarray:
    """UT1 - UTC (s). It changes by ~1 ms a day, so one value per day-long batch is exact enough."""
    return _dut1_at_day(float(np.floor(np.median(seconds) / 86400.0)))


@functools.lru_cache(maxsize=64)
def _dut1_at_day(day: float) -> float:
    return float(skyfield_time(day * 86400.0 + 43200.0).dut1)
