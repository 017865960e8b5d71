"""Orbital elements in, an SGP4 model out: TLE text, CCSDS OMM JSON, or classical elements.

Every parser checks what a person can get wrong (line length, checksum, catalog number,
ranges) and raises `UserError` naming the problem.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sgp4 import omm
from sgp4.api import WGS72, Satrec

from skyrack.errors import UserError

MU_EARTH_KM3_S2 = 398600.4418
R_EARTH_EQUATORIAL_KM = 6378.137
J2 = 1.08262668e-3
SIDEREAL_YEAR_S = 365.256363004 * 86400.0


@dataclass(frozen=True)
class Satellite:
    """An SGP4 model with the name and epoch a person knows it by."""

    name: str
    satrec: Satrec
    source: str  # where the elements came from, for reports

    @property
    def epoch(self) -> datetime:
        seconds = (self.satrec.jdsatepoch - 2440587.5 + self.satrec.jdsatepochF) * 86400.0
        return datetime.fromtimestamp(round(seconds, 6), tz=UTC)

    @property
    def period_s(self) -> float:
        """Anomalistic period from the Kozai-corrected mean motion (rad/min)."""
        return 2.0 * math.pi / self.satrec.no_kozai * 60.0


def tle_checksum(line: str) -> int:
    return sum(int(c) if c.isdigit() else (1 if c == "-" else 0) for c in line[:68]) % 10


def parse_tle(text: str, source: str = "TLE") -> Satellite:
    """Parse a two- or three-line element set; the optional first line is the name."""
    lines = [line.rstrip() for line in text.strip().splitlines() if line.strip()]
    if len(lines) == 3:
        name, line1, line2 = lines[0].strip(), lines[1], lines[2]
        if name.startswith("0 "):
            name = name[2:].strip()
    elif len(lines) == 2:
        line1, line2 = lines
        name = f"NORAD {line1[2:7].strip()}"
    else:
        raise UserError(f"{source}: expected 2 or 3 lines (name optional), got {len(lines)}")
    for number, line in ((1, line1), (2, line2)):
        if not line.startswith(f"{number} "):
            raise UserError(f"{source}: line {number} must start with '{number} '")
        if len(line) != 69:
            raise UserError(f"{source}: line {number} has {len(line)} characters, a TLE line has 69")
        if not line[68].isdigit() or tle_checksum(line) != int(line[68]):
            raise UserError(
                f"{source}: line {number} checksum is {line[68]!r}, the digits add up to {tle_checksum(line)}"
            )
    if line1[2:7] != line2[2:7]:
        raise UserError(f"{source}: catalog numbers differ between lines ({line1[2:7]} vs {line2[2:7]})")
    try:
        satrec = Satrec.twoline2rv(line1, line2, WGS72)
    except Exception as exc:  # sgp4 raises bare ValueErrors on malformed fields
        raise UserError(f"{source}: unreadable element field ({exc})") from exc
    _check_model(satrec, source)
    return Satellite(name=name, satrec=satrec, source=source)


def parse_omm_json(text: str, source: str = "OMM") -> Satellite:
    """A CCSDS OMM record in JSON (as CelesTrak serves it): one object or a list of one."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{source}: not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    if isinstance(data, list):
        if len(data) != 1:
            raise UserError(f"{source}: expected one OMM record, found {len(data)}")
        data = data[0]
    try:
        satrec = Satrec()
        omm.initialize(satrec, data)
    except (KeyError, ValueError, TypeError) as exc:
        raise UserError(f"{source}: incomplete OMM record (missing or bad {exc})") from exc
    _check_model(satrec, source)
    return Satellite(name=str(data.get("OBJECT_NAME", "satellite")), satrec=satrec, source=source)


def load_elements_file(path: str | Path) -> Satellite:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"element file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read element file {path}: {exc}") from None
    if text.lstrip().startswith(("{", "[")):
        return parse_omm_json(text, source=str(path))
    return parse_tle(text, source=str(path))


def sun_synchronous_inclination_deg(altitude_km: float, eccentricity: float = 0.0) -> float:
    """Inclination whose J2 nodal drift matches the Sun's mean motion (360 deg per year)."""
    a = R_EARTH_EQUATORIAL_KM + altitude_km
    n = math.sqrt(MU_EARTH_KM3_S2 / a**3)
    required = 2.0 * math.pi / SIDEREAL_YEAR_S
    cos_i = -required / (1.5 * n * J2 * (R_EARTH_EQUATORIAL_KM / (a * (1 - eccentricity**2))) ** 2)
    if abs(cos_i) > 1:
        raise UserError(f"no sun-synchronous orbit exists at {altitude_km} km")
    return math.degrees(math.acos(cos_i))


def from_elements(
    name: str,
    epoch: datetime,
    *,
    altitude_km: float,
    inclination_deg: float,
    raan_deg: float,
    eccentricity: float = 0.0,
    arg_perigee_deg: float = 0.0,
    mean_anomaly_deg: float = 0.0,
    bstar: float = 0.0,
    source: str = "elements",
) -> Satellite:
    """An SGP4 model from classical mean elements (altitude of the mean semi-major axis)."""
    if altitude_km <= 100:
        raise UserError(f"{source}: altitude {altitude_km} km is below any orbit")
    if not 0 <= eccentricity < 1:
        raise UserError(f"{source}: eccentricity must be in [0, 1), got {eccentricity}")
    if not 0 <= inclination_deg <= 180:
        raise UserError(f"{source}: inclination must be in [0, 180] degrees, got {inclination_deg}")
    a = R_EARTH_EQUATORIAL_KM + altitude_km
    mean_motion_rad_min = math.sqrt(MU_EARTH_KM3_S2 / a**3) * 60.0
    epoch = epoch.astimezone(UTC)
    jd = epoch.timestamp() / 86400.0 + 2440587.5
    satrec = Satrec()
    satrec.sgp4init(
        WGS72,
        "i",
        99999,
        jd - 2433281.5,
        bstar,
        0.0,
        0.0,
        eccentricity,
        math.radians(arg_perigee_deg),
        math.radians(inclination_deg),
        math.radians(mean_anomaly_deg),
        mean_motion_rad_min,
        math.radians(raan_deg % 360.0),
    )
    _check_model(satrec, source)
    return Satellite(name=name, satrec=satrec, source=source)


def _check_model(satrec: Satrec, source: str) -> None:
    if satrec.error:
        raise UserError(f"{source}: SGP4 rejects these elements (error code {satrec.error})")
    if satrec.no_kozai <= 0:
        raise UserError(f"{source}: mean motion must be positive")


def raan_for_ltan(epoch: datetime, ltan_hours: float) -> float:
    """Right ascension of the ascending node that puts it at local solar time `ltan_hours`."""
    from skyrack.sources.ephemeris import planets, timescale

    eph = planets()
    t = timescale().from_datetime(epoch)
    ra, _, _ = (eph["sun"] - eph["earth"]).at(t).radec(epoch="date")
    return math.degrees(ra.radians) + (ltan_hours - 12.0) * 15.0
