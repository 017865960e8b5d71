"""The ephemeris and timescale: the one place astronomical data enters.

Skyfield's built-in leap-second and UT1 tables give the timescale; the JPL DE421 ephemeris
(1900-2050) comes from the `skyfield-data` package, so nothing is downloaded at run time.
"""

from __future__ import annotations

import functools
import os
import warnings

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
