"""Benchmark: one day of the orbit twin at 1 s steps beside Skyfield's bare propagation.

The twin computes position, geodetic coordinates, sunlight (with penumbra), beta angle, the
South Atlantic Anomaly flag and the named region beneath, for 86,400 instants. The reference
is Skyfield's `EarthSatellite.at(t)` for the same instants in the same process (positions
only). Goal: the whole twin costs at most 3x bare propagation.

    python bench/orbit.py [--repeat 5]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skyfield.api import EarthSatellite  # noqa: E402

from skyrack.geo.regions import RegionIndex  # noqa: E402
from skyrack.orbit.timebase import skyfield_time  # noqa: E402
from skyrack.orbit.twin import OrbitTwin  # noqa: E402
from skyrack.profile import load_profile  # noqa: E402
from skyrack.sources.ephemeris import timescale  # noqa: E402

GOAL_RATIO = 3.0


def best_of(repeat: int, fn) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    profile = load_profile("starcloud-1")
    twin = OrbitTwin(profile.satellite)
    seconds = twin.satellite.epoch.timestamp() + np.arange(86_400, dtype=float)
    tle = profile.satellite.satrec
    sat = EarthSatellite.from_satrec(tle, timescale())
    t = skyfield_time(seconds)
    index = RegionIndex.load()

    def bare():
        _ = sat.at(t).position.km

    def whole_twin():
        state = twin.state(seconds)
        index.lookup(state.lat_deg, state.lon_deg)

    bare(), whole_twin()  # warm caches (ephemeris, region index) outside the timing
    t_bare = best_of(args.repeat, bare)
    t_twin = best_of(args.repeat, whole_twin)
    state = twin.state(seconds)
    t_regions = best_of(args.repeat, lambda: index.lookup(state.lat_deg, state.lon_deg))
    ratio = t_twin / t_bare
    print(f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}")
    print("samples: 86,400 (one day at 1 s), best of", args.repeat)
    print(f"skyfield bare propagation (reference): {t_bare * 1e3:8.1f} ms")
    print(f"skyrack twin, everything:              {t_twin * 1e3:8.1f} ms  ({ratio:.2f}x reference)")
    print(f"  of which region naming:              {t_regions * 1e3:8.1f} ms")
    print(f"goal: <= {GOAL_RATIO:.0f}x reference -> {'met' if ratio <= GOAL_RATIO else 'NOT met'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
