"""The ephemeris and timescale: the one place astronomical data enters.

Skyfield's built-in leap-second and UT1 tables give the timescale; the JPL DE421 ephemeris
(1900-2050) comes from the `skyfield-data` package, so nothing is downloaded at run time.
"""

from __future__ import annotations

import functools
import os
import warnings
from datetime import UTC, datetime, timedelta

import numpy as np
from skyfield.api import Loader

from skyrack.errors import UserError


@functools.lru_cache(maxsize=1)
def timescale():
    return Loader(_data_dir(), expire=False).timescale(builtin=True)


@functools.lru_cache(maxsize=1)
def planets():
    """DE421 planets, loaded once per process (memory-mapped, cheap)."""
    path = os.path.join(_data_dir(), "de421.bsp")
    if not os.path.exists(path):
        raise UserError("the DE421 ephemeris is missing: reinstall the skyfield-data package")
    return Loader(_data_dir(), expire=False)("de421.bsp")


@functools.lru_cache(maxsize=1)
def covered_seconds() -> tuple[float, float]:
    """The POSIX seconds the ephemeris covers: every segment's common span (DE421: 1899-2053)."""
    segments = [segment.spk_segment for segment in planets().segments]
    start = max(s.start_jd for s in segments)
    end = min(s.end_jd for s in segments)
    return (start - 2440587.5) * 86400.0, (end - 2440587.5) * 86400.0


def check_covered(seconds) -> None:
    """A clear error for instants the ephemeris does not cover (or that are not finite)."""
    seconds = np.asarray(seconds, dtype=float)
    start, end = covered_seconds()
    if seconds.size and not (
        np.all(np.isfinite(seconds)) and start <= seconds.min() and seconds.max() <= end
    ):
        worst = seconds.min() if not np.isfinite(seconds).all() or seconds.min() < start else seconds.max()
        shown = _day(worst) if np.isfinite(worst) else f"{worst:g} s"
        raise UserError(f"{shown} is outside the ephemeris (JPL DE421 covers {_day(start)} to {_day(end)})")


def _day(seconds: float) -> str:
    try:
        return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=float(seconds))).strftime("%Y-%m-%d")
    except OverflowError:  # before year 1 or after 9999
        return f"{seconds:g} s"


def _data_dir() -> str:
    # Importing skyfield_data warns that its Earth-orientation file is old; skyrack uses only
    # DE421 and Skyfield's built-in timescale, so that file's age does not matter here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            import skyfield_data
        except ImportError as exc:  # pragma: no cover - a broken install
            raise UserError("the skyfield-data package is not installed") from exc
    return os.path.join(os.path.dirname(skyfield_data.__file__), "data")
