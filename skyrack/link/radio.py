"""The link figures a profile declares (`[link]`), read once into one value.

Every figure is sourced or an assumption in the profile; a profile without a `[link]` table
gets the built-in Starcloud-1 radio, so that any profile can fly every link mode.
"""

from __future__ import annotations

from dataclasses import dataclass

from skyrack.errors import UserError

MODES = ("ground", "relay", "ideal")


@dataclass(frozen=True)
class Radio:
    mode: str
    stations: tuple[str, ...]
    min_elevation_deg: float
    frequency_hz: float
    downlink_rate_bps: float
    uplink_rate_bps: float
    tx_power_w: float
    tx_antenna_gain_dbi: float
    station_g_over_t_db_k: float
    losses_db: float
    required_eb_n0_db: float
    packet_loss: float
    packet_corruption: float
    relay_rate_bps: float
    relay_latency_s: float

    @property
    def eirp_dbw(self) -> float:
        import math

        return 10.0 * math.log10(self.tx_power_w) + self.tx_antenna_gain_dbi


def radio_of(profile) -> Radio:
    """The profile's radio, falling back to the built-in profile's for figures it lacks."""
    figures = dict(profile.link)
    if len(figures) < len(Radio.__dataclass_fields__):
        from skyrack.profile import DEFAULT_PROFILE, load_profile

        if profile.name.lower() != DEFAULT_PROFILE:
            figures = {**load_profile(DEFAULT_PROFILE).link, **figures}
    missing = [name for name in Radio.__dataclass_fields__ if name not in figures]
    if missing:
        raise UserError(f"profile {profile.name!r}: [link] lacks {', '.join(missing)}")
    values = {name: figures[name].value for name in Radio.__dataclass_fields__}
    values["stations"] = tuple(str(s) for s in values["stations"])
    radio = Radio(**values)
    if radio.mode not in MODES:
        raise UserError(
            f"profile {profile.name!r}: link mode {radio.mode!r} is not one of {', '.join(MODES)}"
        )
    for name in ("packet_loss", "packet_corruption"):
        if not 0.0 <= getattr(radio, name) < 1.0:
            raise UserError(f"profile {profile.name!r}: {name} must lie in [0, 1)")
    return radio
