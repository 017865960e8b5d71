"""Sunlight over a year for a design orbit, measured with the orbit twin.

An orbit is named the way `skyrack plan --orbit` takes it:
`suncatcher` or `starcloud-1` (or any profile name or TOML path), `sso:650` (dawn-dusk
sun-synchronous at 650 km; `sso:650:10.5` puts the ascending node at 10:30 local time), or
`incl:45:550` (45 deg inclination, 550 km, node at 0 deg right ascension).

The year is sampled as one whole orbit every `SAMPLE_EVERY_DAYS`, `STEP_S` apart; the twin's
penumbra-aware visible fraction of the solar disk is averaged for the sunlit fraction, and the
longest stretch below half a disk within one sampled orbit is the longest eclipse. Profile orbits
are flown from their mean elements with drag switched off: a design orbit is station-kept.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from skyrack.errors import UserError
from skyrack.orbit import sun
from skyrack.orbit.elements import (
    MU_EARTH_KM3_S2,
    R_EARTH_EQUATORIAL_KM,
    Satellite,
    from_elements,
    sun_synchronous_inclination_deg,
)
from skyrack.orbit.twin import OrbitTwin

DESIGN_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
SAMPLE_EVERY_DAYS = 5.0
STEP_S = 15.0


@dataclass(frozen=True)
class Sunlight:
    orbit: str
    description: str
    altitude_km: float
    inclination_deg: float
    period_s: float
    sunlit_fraction: float  # time-averaged visible fraction of the solar disk over the year
    max_eclipse_s: float  # longest single eclipse (half the disk hidden or more)
    eclipse_orbits_fraction: float  # share of sampled orbits with any eclipse

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def design_satellite(spec: str) -> tuple[Satellite, str]:
    """The satellite an orbit spec names, with a one-line description."""
    text = spec.strip()
    low = text.lower()
    try:
        if low.startswith("sso:"):
            parts = low.split(":")[1:]
            alt = float(parts[0])
            ltan = float(parts[1]) if len(parts) > 1 else 18.0
            if not 0 <= ltan < 24:
                raise UserError(f"orbit {spec!r}: local time of the ascending node must be in [0, 24) hours")
            from skyrack.orbit.elements import raan_for_ltan

            incl = sun_synchronous_inclination_deg(alt)
            sat = from_elements(
                f"SSO {alt:g} km",
                DESIGN_EPOCH,
                altitude_km=alt,
                inclination_deg=incl,
                raan_deg=raan_for_ltan(DESIGN_EPOCH, ltan),
                source=f"orbit {spec}",
            )
            return sat, f"sun-synchronous {alt:g} km, node at {ltan:g} h local time, {incl:.2f} deg"
        if low.startswith("incl:"):
            parts = low.split(":")[1:]
            if len(parts) != 2:
                raise UserError(f"orbit {spec!r}: write incl:DEG:ALT_KM, e.g. incl:45:550")
            incl, alt = float(parts[0]), float(parts[1])
            sat = from_elements(
                f"{incl:g} deg {alt:g} km",
                DESIGN_EPOCH,
                altitude_km=alt,
                inclination_deg=incl,
                raan_deg=0.0,
                source=f"orbit {spec}",
            )
            return sat, f"{incl:g} deg inclination, {alt:g} km circular"
    except ValueError:
        raise UserError(f"orbit {spec!r}: numbers expected, e.g. sso:650 or incl:45:550") from None
    from skyrack.profile import load_profile

    profile = load_profile(text)
    rec = profile.satellite.satrec
    alt = _altitude_km(rec)
    sat = from_elements(
        profile.name,
        profile.satellite.epoch,
        altitude_km=alt,
        inclination_deg=math.degrees(rec.inclo),
        raan_deg=math.degrees(rec.nodeo),
        eccentricity=rec.ecco,
        arg_perigee_deg=math.degrees(rec.argpo),
        mean_anomaly_deg=math.degrees(rec.mo),
        source=f"profile {profile.name}, drag off",
    )
    return (
        sat,
        f"{profile.name}: {math.degrees(rec.inclo):.2f} deg, {alt:.0f} km (profile elements, drag off)",
    )


@functools.lru_cache(maxsize=32)
def annual_sunlight(spec: str, every_days: float = SAMPLE_EVERY_DAYS, step_s: float = STEP_S) -> Sunlight:
    """Sunlit fraction and longest eclipse over one year, from the orbit twin (cached per spec)."""
    sat, description = design_satellite(spec)
    twin = OrbitTwin(sat)
    start = sat.epoch.timestamp()
    n_orbits = int(round(365.25 / every_days))
    per_orbit = int(math.ceil(twin.period_s / step_s))
    offsets = np.arange(per_orbit) * step_s
    starts = start + np.arange(n_orbits) * every_days * 86400.0
    seconds = (starts[:, None] + offsets[None, :]).ravel()
    r_km, _ = twin.propagate(seconds)
    r_km = r_km.reshape(3, n_orbits, per_orbit)
    times = seconds.reshape(n_orbits, per_orbit)
    # The Sun per sampled orbit: one ephemeris grid spanning the year would cost seconds of nutation.
    lit = np.stack([sun.sunlit_fraction(r_km[:, k], sun.sun_teme_km(times[k])) for k in range(n_orbits)])
    dark = lit < 0.5
    # An eclipse may straddle the sampled orbit's start: rotate each orbit so it starts in sunlight.
    longest = 0.0
    for row in dark:
        if row.all():
            longest = max(longest, twin.period_s)
            continue
        if not row.any():
            continue
        rolled = np.roll(row, -int(np.argmin(row)))
        runs = np.diff(np.flatnonzero(np.diff(np.concatenate(([0], rolled.view(np.int8), [0])))))[::2]
        longest = max(longest, float(runs.max()) * step_s)
    rec = sat.satrec
    return Sunlight(
        orbit=spec,
        description=description,
        altitude_km=_altitude_km(rec),
        inclination_deg=math.degrees(rec.inclo),
        period_s=twin.period_s,
        sunlit_fraction=float(lit.mean()),
        max_eclipse_s=longest,
        eclipse_orbits_fraction=float(dark.any(axis=1).mean()),
    )


def _altitude_km(satrec) -> float:
    """Mean altitude of the semi-major axis from SGP4's Kozai mean motion (rad/min)."""
    a_km = (MU_EARTH_KM3_S2 / (satrec.no_kozai / 60.0) ** 2) ** (1.0 / 3.0)
    return a_km - R_EARTH_EQUATORIAL_KM
