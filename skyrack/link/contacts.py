"""Contact windows and data rates: pure, vectorized functions of the orbit and the stations.

A contact is a pass above the station's elevation mask (the passes `skyrack passes` computes).
The satellite has one antenna: where passes over two stations overlap, the later one starts
when the earlier one ends. The downlink rate at each instant comes from a link budget,

    C/N0 = EIRP - L_free_space(range) - losses + G/T + 228.6 dB (Boltzmann)
    Eb/N0 = C/N0 - 10 log10(R)

and the radio steps down by halves from its nominal rate (adaptive coding and modulation, as
smallsat radios do) to the fastest rate whose Eb/N0 meets the required figure. The data volume
of a contact is the integral of that rate, tabulated once per second.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import numpy as np

from skyrack.link.radio import Radio
from skyrack.orbit.passes import find_passes, look_angles
from skyrack.orbit.stations import BUILTIN, resolve_station

C_M_S = 299_792_458.0
BOLTZMANN_DB = 228.6  # -10 log10(k), dB(W/Hz/K)
RATE_STEPS = 8  # nominal, 1/2, ... 1/128 of the nominal rate
GRID_S = 1.0


def free_space_loss_db(range_km, frequency_hz: float) -> np.ndarray:
    d = np.asarray(range_km, dtype=float) * 1e3
    return 20.0 * np.log10(4.0 * np.pi * d * frequency_hz / C_M_S)


def eb_n0_db(radio: Radio, range_km, rate_bps) -> np.ndarray:
    c_n0 = (
        radio.eirp_dbw
        - free_space_loss_db(range_km, radio.frequency_hz)
        - radio.losses_db
        + radio.station_g_over_t_db_k
        + BOLTZMANN_DB
    )
    return c_n0 - 10.0 * np.log10(rate_bps)


def downlink_rate_bps(radio: Radio, range_km) -> np.ndarray:
    """The fastest rate of the radio's ladder that closes the link at each slant range (0 if none)."""
    range_km = np.asarray(range_km, dtype=float)
    ladder = radio.downlink_rate_bps / 2.0 ** np.arange(RATE_STEPS)  # (steps,)
    closes = eb_n0_db(radio, range_km[..., None], ladder) >= radio.required_eb_n0_db
    best = np.where(closes.any(axis=-1), ladder[np.argmax(closes, axis=-1)], 0.0)
    return best


@dataclass
class Contact:
    station: str  # display name
    key: str  # built-in name or LAT,LON
    rise_s: float
    set_s: float
    max_elevation_deg: float
    grid_s: np.ndarray = field(repr=False)
    rate_bps: np.ndarray = field(repr=False)
    cum_bits: np.ndarray = field(repr=False)

    @property
    def duration_s(self) -> float:
        return self.set_s - self.rise_s

    @property
    def volume_bits(self) -> float:
        return float(self.cum_bits[-1])

    def bits_between(self, t0: float, t1: float) -> float:
        """Bits the contact carries between t0 and t1 (clipped to the contact)."""
        a, b = max(t0, self.rise_s), min(t1, self.set_s)
        if b <= a:
            return 0.0
        return float(np.interp(b, self.grid_s, self.cum_bits) - np.interp(a, self.grid_s, self.cum_bits))

    def as_dict(self) -> dict:
        return {
            "station": self.station,
            "key": self.key,
            "rise_t": self.rise_s,
            "set_t": self.set_s,
            "max_elevation_deg": round(self.max_elevation_deg, 2),
            "volume_bits": round(self.volume_bits),
            "mean_rate_bps": round(self.volume_bits / max(self.duration_s, 1e-9)),
        }


def _tabulate(
    twin, station, radio: Radio, rise: float, set_: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    grid = np.append(np.arange(rise, set_, GRID_S), set_)
    _, _, rng = look_angles(twin, station, grid)
    rate = downlink_rate_bps(radio, rng)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (rate[1:] + rate[:-1]) * np.diff(grid))])
    return grid, rate, cum


def station_contacts(twin, radio: Radio, start: float, end: float) -> list[Contact]:
    """Every contact of the radio's ground network in [start, end], in time order, one at a time."""
    found = []
    for key in radio.stations:
        station = BUILTIN.get(key) or resolve_station(key)
        for p in find_passes(twin, station, start, end, radio.min_elevation_deg):
            found.append((p.rise_s, p.set_s, p.max_elevation_deg, station, key))
    found.sort(key=lambda f: f[0])
    contacts: list[Contact] = []
    for rise, set_, peak, station, key in found:
        if contacts and rise < contacts[-1].set_s:  # one antenna: the earlier pass keeps it
            rise = contacts[-1].set_s
        if set_ - rise < GRID_S:
            continue
        grid, rate, cum = _tabulate(twin, station, radio, rise, set_)
        contacts.append(Contact(station.name, key, rise, set_, peak, grid, rate, cum))
    return contacts


def relay_contact(radio: Radio, start: float, end: float) -> Contact:
    """The relay: one contact that never ends, at the relay's constant rate."""
    grid = np.array([start, end])
    rate = np.full(2, radio.relay_rate_bps)
    return Contact("the data relay", "relay", start, end, 90.0, grid, rate, rate[0] * (grid - start))


class Schedule:
    """The contacts of a mission, for the questions the loop asks each frame."""

    def __init__(self, contacts: list[Contact], latency_s: float = 0.0):
        self.contacts = contacts
        self.latency_s = latency_s
        self._rises = [c.rise_s for c in contacts]

    def overlapping(self, t0: float, t1: float) -> list[Contact]:
        i = max(bisect.bisect_right(self._rises, t0) - 1, 0)
        out = []
        for c in self.contacts[i:]:
            if c.rise_s >= t1:
                break
            if c.set_s > t0:
                out.append(c)
        return out

    def current(self, t: float) -> Contact | None:
        for c in self.overlapping(t, t + 1e-9):
            if c.rise_s <= t < c.set_s:
                return c
        return None

    def next_after(self, t: float) -> Contact | None:
        i = bisect.bisect_right(self._rises, t)
        return self.contacts[i] if i < len(self.contacts) else None

    def state(self, t: float) -> dict:
        """What the dashboard says: in contact (and for how long) or the next contact."""
        now = self.current(t)
        nxt = self.next_after(t)
        return {
            "t": t,
            "in_contact": now is not None,
            "station": now.station if now else None,
            "left_s": (now.set_s - t) if now else None,
            "next_station": nxt.station if nxt else None,
            "next_in_s": (nxt.rise_s - t) if nxt else None,
        }


def contact_minutes_per_day(contacts: list[Contact], days: float) -> float:
    return sum(c.duration_s for c in contacts) / 60.0 / days
