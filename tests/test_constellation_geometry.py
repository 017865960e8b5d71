import math

import numpy as np
import pytest

from skyrack.errors import UserError
from skyrack.orbit import constellation as C
from skyrack.orbit.elements import R_EARTH_EQUATORIAL_KM
from skyrack.orbit.twin import OrbitTwin
from skyrack.profile import load_profile


@pytest.fixture(scope="module")
def base():
    return load_profile("suncatcher").satellite


def _positions(sats, seconds):
    return np.stack([OrbitTwin(s).propagate(seconds)[0] for s in sats])


def _sight_by_angles(r1, r2, radius):
    """Independent test: the segment clears a sphere iff the angle between the two position
    vectors is at most the sum of each point's horizon angle, acos(radius / |r|)."""
    n1, n2 = np.linalg.norm(r1, axis=0), np.linalg.norm(r2, axis=0)
    angle = np.arccos(np.clip(np.sum(r1 * r2, axis=0) / (n1 * n2), -1, 1))
    return angle <= np.arccos(radius / n1) + np.arccos(radius / n2)


def test_line_of_sight_agrees_with_horizon_angles(base):
    # Counter-rotating planes: pairs come into and out of each other's sight many times.
    sats = C.build_formation(base, "walker", 4, planes=2)
    seconds = base.epoch.timestamp() + np.arange(0.0, 3 * 86400.0, 37.0)
    pos = _positions(sats, seconds)
    model = C.LinkModel()
    _, sight, _ = C.pair_links(pos, model)
    radius = R_EARTH_EQUATORIAL_KM + model.grazing_altitude_km
    checked = 0
    for i in range(4):
        for j in range(4):
            if i == j:
                continue
            expected = _sight_by_angles(pos[i], pos[j], radius)
            assert np.array_equal(sight[i, j], expected)
            checked += expected.size
    assert checked > 50_000
    assert 0.05 < sight[0, 2].mean() < 0.95  # the check saw both answers


def test_far_points_lose_sight_and_near_points_keep_it():
    r = R_EARTH_EQUATORIAL_KM + 650.0
    a = np.array([[r], [0.0], [0.0]])
    opposite = -a
    near = np.array([[r * math.cos(0.1)], [r * math.sin(0.1)], [0.0]])
    assert C.segment_clearance_km(a, opposite)[0] == pytest.approx(0.0, abs=1e-9)
    assert C.segment_clearance_km(a, near)[0] == pytest.approx(r * math.cos(0.05))


def test_train_holds_its_separation(base):
    sats = C.build_formation(base, "train", 3, separation_km=250.0)
    seconds = base.epoch.timestamp() + np.arange(0.0, 6000.0, 60.0)
    rng, _, up = C.pair_links(_positions(sats, seconds), C.LinkModel())
    assert np.allclose(rng[0, 1], 250.0, rtol=0.01)
    assert np.allclose(rng[0, 2], 500.0, rtol=0.01)
    assert up[0, 1].all() and C.reachable(up, [0, 1, 2]).all()


def test_cluster_stays_inside_its_ring(base):
    sats = C.build_formation(base, "cluster", 6, radius_km=1.0)
    seconds = base.epoch.timestamp() + np.arange(0.0, 6000.0, 60.0)
    rng, _, up = C.pair_links(_positions(sats, seconds), C.LinkModel())
    off = ~np.eye(6, dtype=bool)
    assert rng[off].max() < 2.5 and rng[off].min() > 0.3  # within ~1 km of the centre, never meeting
    assert C.ring_rate_bps(C.LinkModel().rate_bps(rng), up, list(range(6))).min() == pytest.approx(1.6e12)


def test_rate_falls_with_the_square_of_range_below_the_cap():
    m = C.LinkModel()
    assert m.rate_bps(np.array([1000.0]))[0] == pytest.approx(100e9)
    assert m.rate_bps(np.array([2000.0]))[0] == pytest.approx(25e9)
    assert m.rate_bps(np.array([1.0]))[0] == pytest.approx(1.6e12)


def test_relays_join_satellites_that_do_not_see_each_other():
    up = np.zeros((3, 3, 2), dtype=bool)
    up[0, 1] = up[1, 0] = True  # 0-1 always
    up[1, 2, 0] = up[2, 1, 0] = True  # 1-2 only at the first instant
    assert C.reachable(up, [0, 2]).tolist() == [True, False]
    rate = np.full((3, 3, 2), 5.0)
    rate[1, 2] = rate[2, 1] = 2.0
    assert C.widest_rates_bps(rate, up)[0, 2].tolist() == [2.0, 0.0]


@pytest.mark.parametrize(
    "kind, n, kw",
    [("train", 1, {}), ("walker", 4, {"planes": 3}), ("ring", 4, {}), ("cluster", 3, {"radius_km": 0})],
)
def test_impossible_formations_are_refused(base, kind, n, kw):
    with pytest.raises(UserError):
        C.build_formation(base, kind, n, **kw)
