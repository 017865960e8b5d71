"""Time at the edges is an aware UTC datetime; inside, float POSIX seconds (UTC) in numpy arrays."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from skyrack.errors import UserError

UNIX_EPOCH_JD = 2440587.5


def parse_time(text: str) -> datetime:
    """ISO 8601 ('2026-11-21T12:00:00Z', '2026-11-21 12:00', '2026-11-21'); naive means UTC."""
    cleaned = text.strip()
    if cleaned.lower() == "now":
        return datetime.now(UTC)
    try:
        value = datetime.fromisoformat(cleaned.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise UserError(f"malformed time {text!r}: use ISO 8601, e.g. 2026-11-21T12:00:00Z") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def to_seconds(value: datetime | float | np.ndarray) -> np.ndarray:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return np.asarray(value.timestamp(), dtype=float)
    return np.asarray(value, dtype=float)


def to_datetime(seconds: float) -> datetime:
    return datetime.fromtimestamp(round(float(seconds), 6), tz=UTC)


def iso(seconds: float) -> str:
    return to_datetime(seconds).strftime("%Y-%m-%dT%H:%M:%SZ")


def julian_split(seconds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(whole, fraction) Julian dates that keep microsecond precision for SGP4."""
    days = np.floor(seconds / 86400.0)
    return days + UNIX_EPOCH_JD, (seconds - days * 86400.0) / 86400.0


def skyfield_time(seconds):
    """A Skyfield `Time` for POSIX seconds. POSIX days have 86,400 s, so split into whole days
    and seconds of day: passing raw seconds to `ts.utc` would count leap seconds too."""
    from skyrack.sources.ephemeris import timescale

    seconds = np.asarray(seconds, dtype=float)
    days = np.floor(seconds / 86400.0)
    return timescale().utc(1970, 1, 1 + days, 0, 0, seconds - days * 86400.0)
