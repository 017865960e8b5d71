"""Several satellites flying together, and the optical links between them.

A formation turns one profile's orbit into N orbits:

- `train`: one plane, the satellites `separation_km` apart along the track;
- `walker`: a Walker-delta pattern i: N/P/F (P planes spaced evenly in node, phasing F);
- `cluster`: a Suncatcher-like tight cluster about the reference orbit: every satellite rides
  one relative ellipse of about `radius_km` (along-track `radius_km`, radial and cross-track
  half that) at its own phase, from parallel eccentricity and inclination offsets.

Links are pure functions of positions (arrays of shape (N, 3, T), km): a pair sees each other
when the straight segment between them clears a sphere of the Earth's equatorial radius plus a
grazing altitude (the atmosphere bends and scatters an optical beam below it), and lies within
the terminal's range. A window's data rate follows the optical-link budget: received power falls
as 1 / range^2, and at a fixed number of photons per bit so does the rate, up to the terminal's
modem limit. Every figure says its source or that it is an assumption (`LINK_FIGURES`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from skyrack.errors import UserError
from skyrack.orbit.elements import MU_EARTH_KM3_S2, R_EARTH_EQUATORIAL_KM, Satellite, from_elements

FORMATIONS = ("train", "walker", "cluster")

# Each figure as a profile states one (skyrack.profile.Figure): its value and its source or why
# it is an assumption. (The orbit library stays below the profile module.)
LINK_FIGURES: dict[str, dict] = {
    "grazing_altitude_km": dict(
        value=100.0, assumption="beam kept above the Karman line, clear of refraction and scattering"
    ),
    "max_range_km": dict(
        value=5000.0, assumption="rated range of a LEO optical terminal (no sourced figure)"
    ),
    "reference_rate_bps": dict(
        value=100e9, assumption="100 Gbit/s at the reference range, a current terminal"
    ),
    "reference_range_km": dict(value=1000.0, assumption="range at which the reference rate holds"),
    "max_rate_bps": dict(
        value=1.6e12, source="Suncatcher bench demonstration, 1.6 Tbit/s (arXiv 2511.19468)"
    ),
    "cluster_radius_km": dict(
        value=1.0, source="Suncatcher: 81 satellites within a 1 km radius (arXiv 2511.19468)"
    ),
    "train_separation_km": dict(value=100.0, assumption="a string of pearls 100 km apart"),
}


@dataclass(frozen=True)
class LinkModel:
    grazing_altitude_km: float = LINK_FIGURES["grazing_altitude_km"]["value"]
    max_range_km: float = LINK_FIGURES["max_range_km"]["value"]
    reference_rate_bps: float = LINK_FIGURES["reference_rate_bps"]["value"]
    reference_range_km: float = LINK_FIGURES["reference_range_km"]["value"]
    max_rate_bps: float = LINK_FIGURES["max_rate_bps"]["value"]

    def rate_bps(self, range_km: np.ndarray) -> np.ndarray:
        """Data rate at `range_km`: 1 / range^2 from the reference, capped by the modem."""
        d = np.maximum(np.asarray(range_km, dtype=float), 1e-6)
        return np.minimum(self.max_rate_bps, self.reference_rate_bps * (self.reference_range_km / d) ** 2)


# -- formations --------------------------------------------------------------------------------------
def _elements(sat: Satellite) -> dict:
    rec = sat.satrec
    n_rad_s = rec.no_kozai / 60.0
    a = (MU_EARTH_KM3_S2 / n_rad_s**2) ** (1.0 / 3.0)
    return {
        "altitude_km": a - R_EARTH_EQUATORIAL_KM,
        "inclination_deg": math.degrees(rec.inclo),
        "raan_deg": math.degrees(rec.nodeo),
        "eccentricity": rec.ecco,
        "arg_perigee_deg": math.degrees(rec.argpo),
        "mean_anomaly_deg": math.degrees(rec.mo),
        "a_km": a,
    }


def build_formation(
    base: Satellite,
    kind: str,
    n: int,
    *,
    separation_km: float | None = None,
    planes: int | None = None,
    phasing: int = 1,
    radius_km: float | None = None,
) -> list[Satellite]:
    """N satellites of formation `kind` about the orbit of `base` (same epoch and shape)."""
    if n < 2:
        raise UserError(f"a constellation needs at least 2 satellites, got {n}")
    if kind not in FORMATIONS:
        raise UserError(f"unknown formation {kind!r}; one of {', '.join(FORMATIONS)}")
    el = _elements(base)
    a = el.pop("a_km")
    # per satellite: (d raan, d inclination, d mean anomaly) in degrees, eccentricity, perigee
    offsets: list[tuple[float, float, float, float, float]] = []
    e0, w0 = el["eccentricity"], el["arg_perigee_deg"]
    if kind == "train":
        sep = LINK_FIGURES["train_separation_km"]["value"] if separation_km is None else separation_km
        if sep <= 0:
            raise UserError(f"--separation must be positive, got {sep} km")
        step = math.degrees(2.0 * math.asin(min(1.0, sep / (2.0 * a))))
        offsets = [(0.0, 0.0, -k * step, e0, w0) for k in range(n)]
    elif kind == "walker":
        p = planes if planes is not None else (2 if n % 2 == 0 and n > 2 else 1)
        if p < 1 or n % p:
            raise UserError(f"a Walker pattern needs the planes ({p}) to divide the satellites ({n})")
        s = n // p
        offsets = [
            (360.0 * j / p, 0.0, 360.0 * k / s + 360.0 * phasing * j / n, e0, w0)
            for j in range(p)
            for k in range(s)
        ]
    else:
        rho = LINK_FIGURES["cluster_radius_km"]["value"] if radius_km is None else radius_km
        if rho <= 0:
            raise UserError(f"--radius must be positive, got {rho} km")
        # Parallel eccentricity and inclination vectors (the classic passively safe formation):
        # each satellite rides the same relative ellipse (radial rho/2, along-track rho,
        # cross-track rho/2) at its own phase, so no two ever meet.
        de, di = rho / (2.0 * a), rho / (2.0 * a)
        sin_i = max(1e-6, math.sin(math.radians(el["inclination_deg"])))
        for k in range(n):
            theta = 2.0 * math.pi * k / n
            offsets.append(
                (
                    math.degrees(di * math.sin(theta) / sin_i),
                    math.degrees(di * math.cos(theta)),
                    w0 - math.degrees(theta),  # keeps the mean argument of latitude
                    de,
                    math.degrees(theta),
                )
            )
    return [
        from_elements(
            f"{base.name}-{k + 1}",
            base.epoch,
            altitude_km=el["altitude_km"],
            inclination_deg=min(180.0, max(0.0, el["inclination_deg"] + di)),
            raan_deg=el["raan_deg"] + dr,
            eccentricity=ecc,
            arg_perigee_deg=perigee,
            mean_anomaly_deg=(el["mean_anomaly_deg"] + dm) % 360.0,
            source=f"{base.source}; {kind} formation, satellite {k + 1} of {n}",
        )
        for k, (dr, di, dm, ecc, perigee) in enumerate(offsets)
    ]


# -- links ---------------------------------------------------------------------------------------------
def segment_clearance_km(r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
    """Least distance (km) from the Earth's centre to the segment r1-r2; (3, ...) arrays."""
    d = r2 - r1
    dd = np.sum(d * d, axis=0)
    s = np.clip(-np.sum(r1 * d, axis=0) / np.where(dd > 0, dd, 1.0), 0.0, 1.0)
    closest = r1 + s * d
    return np.sqrt(np.sum(closest * closest, axis=0))


def pair_links(positions: np.ndarray, model: LinkModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For positions (N, 3, T): range (N, N, T) km, line of sight (N, N, T) and link up (N, N, T)."""
    r1 = positions[:, None]  # (N, 1, 3, T)
    r2 = positions[None, :]
    diff = r2 - r1
    rng = np.sqrt(np.sum(diff * diff, axis=2))
    clear = segment_clearance_km(np.moveaxis(r1, 2, 0), np.moveaxis(r2, 2, 0))
    sight = clear > R_EARTH_EQUATORIAL_KM + model.grazing_altitude_km
    n = positions.shape[0]
    off_diagonal = ~np.eye(n, dtype=bool)[:, :, None]
    up = sight & (rng <= model.max_range_km) & off_diagonal
    return rng, sight, up


def reachable(up: np.ndarray, members: list[int]) -> np.ndarray:
    """(T,) whether the link graph joins all `members` (relaying through any satellite)."""
    n, _, t = up.shape
    if len(members) <= 1:
        return np.ones(t, dtype=bool)
    adj = np.moveaxis(up, 2, 0).astype(np.int32)  # (T, N, N)
    reach = np.zeros((t, n), dtype=np.int32)
    reach[:, members[0]] = 1
    for _ in range(n - 1):
        reach = np.minimum(1, reach + np.einsum("tn,tnm->tm", reach, adj))
    return np.all(reach[:, members] > 0, axis=1)


def widest_rates_bps(rate: np.ndarray, up: np.ndarray) -> np.ndarray:
    """(N, N, T) the best rate between each pair over any relay path: the path whose slowest
    hop is fastest (a max-min Floyd-Warshall, all instants at once); 0 where none exists."""
    w = np.where(up, rate, 0.0)
    for k in range(w.shape[0]):
        w = np.maximum(w, np.minimum(w[:, k : k + 1], w[k : k + 1, :]))
    return w


def ring_rate_bps(rate: np.ndarray, up: np.ndarray, members: list[int]) -> np.ndarray:
    """(T,) the pace of a ring all-reduce through `members` in index order: its slowest hop,
    each hop over its best relay path (0 where the ring is broken)."""
    if len(members) < 2:
        return np.full(rate.shape[-1], np.inf)
    w = widest_rates_bps(rate, up)
    hops = list(zip(members, members[1:] + members[:1]))
    return np.min([w[i, j] for i, j in hops], axis=0)


def windows(up: np.ndarray, seconds: np.ndarray) -> list[dict]:
    """Link windows per pair i < j: [{'a', 'b', 'start', 'end'}], from the sampled grid."""
    out = []
    n = up.shape[0]
    for i in range(n):
        for j in range(i + 1, n):
            u = up[i, j].astype(np.int8)
            edges = np.diff(np.concatenate([[0], u, [0]]))
            for s, e in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
                out.append({"a": i, "b": j, "start": float(seconds[s]), "end": float(seconds[e - 1])})
    return out
