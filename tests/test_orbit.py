"""The orbit twin against references nobody here wrote: raw SGP4, Vallado's published test
case, Skyfield's own frames, eclipses and pass finder, and analytic shadow geometry."""

import math
from datetime import UTC, datetime

import numpy as np
import pytest
from sgp4.api import WGS72, Satrec
from skyfield.api import EarthSatellite, wgs84

from skyrack.errors import UserError
from skyrack.orbit.elements import from_elements, parse_tle, sun_synchronous_inclination_deg
from skyrack.orbit.passes import find_passes, look_angles
from skyrack.orbit.saa import in_saa
from skyrack.orbit.stations import resolve_station
from skyrack.orbit.timebase import skyfield_time
from skyrack.orbit.twin import OrbitTwin
from skyrack.profile import load_profile
from skyrack.sources.ephemeris import planets, timescale

STARCLOUD_L1 = "1 66303U 25248L   26207.16029198  .00005005  00000+0  22976-3 0  9990"
STARCLOUD_L2 = "2 66303  45.3997 271.0639 0006321 268.1150  91.9012 15.21652070 40476"
# Vallado et al. 2006, "Revisiting Spacetrack Report #3", verification case 00005 (tcppver.out).
VALLADO_L1 = "1 00005U 58002B   00179.78495062  .00000023  00000-0  28098-4 0  4753"
VALLADO_L2 = "2 00005  34.2682 348.7242 1859667 331.7664  19.3264 10.82419157413667"


@pytest.fixture(scope="module")
def twin():
    return OrbitTwin(load_profile("starcloud-1").satellite)


@pytest.fixture(scope="module")
def skyfield_sat():
    return EarthSatellite(STARCLOUD_L1, STARCLOUD_L2, "STARCLOUD-1", timescale())


def epoch_s(twin):
    return twin.satellite.epoch.timestamp()


def test_positions_match_raw_sgp4_to_the_millimetre(twin):
    raw = Satrec.twoline2rv(STARCLOUD_L1, STARCLOUD_L2, WGS72)
    seconds = epoch_s(twin) + np.linspace(-3 * 86400, 3 * 86400, 97)
    r, v = twin.propagate(seconds)
    for k, t in enumerate(seconds):
        jd = t / 86400.0 + 2440587.5
        error, r_ref, v_ref = raw.sgp4(math.floor(jd), jd - math.floor(jd))
        assert error == 0
        assert np.linalg.norm(r[:, k] - r_ref) < 1e-3  # km: 1 m
        assert np.linalg.norm(v[:, k] - v_ref) < 1e-6


def test_vallado_published_case():
    sat = parse_tle(f"{VALLADO_L1}\n{VALLADO_L2}")
    twin = OrbitTwin(sat)
    epoch = sat.epoch.timestamp()
    r, v = twin.propagate(np.array([epoch, epoch + 360 * 60.0]))
    assert np.allclose(r[:, 0], [7022.46529266, -1400.08296755, 0.03995155], atol=1e-3)
    assert np.allclose(v[:, 0], [1.893841015, 6.405893759, 4.534807250], atol=1e-6)
    assert np.allclose(r[:, 1], [-7154.03120202, -3783.17682504, -3536.19412294], atol=1e-3)


def test_geodetic_matches_skyfield_to_metres(twin, skyfield_sat):
    seconds = epoch_s(twin) + np.arange(0, 86400, 97.0)
    state = twin.state(seconds)
    position = skyfield_sat.at(skyfield_time(seconds))
    lat, lon = wgs84.latlon_of(position)
    height = wgs84.height_of(position)
    north_m = np.abs(state.lat_deg - lat.degrees) * 111_320
    east_m = np.abs((state.lon_deg - lon.degrees + 180) % 360 - 180) * 111_320 * np.cos(lat.radians)
    assert north_m.max() < 5 and east_m.max() < 5
    assert np.abs(state.alt_km - height.km).max() < 0.005


def test_starcloud_orbit_matches_published_facts(twin):
    assert twin.period_s / 60 == pytest.approx(94.63, abs=0.02)
    state = twin.state(epoch_s(twin) + np.arange(0, twin.period_s, 30.0))
    assert 480 < state.alt_km.mean() < 520
    assert np.abs(state.lat_deg).max() == pytest.approx(45.4, abs=0.3)
    assert state.speed_km_s.mean() == pytest.approx(7.6, abs=0.1)


def test_sunlit_agrees_with_skyfield(twin, skyfield_sat):
    seconds = epoch_s(twin) + np.arange(0, 86400, 20.0)
    ours = twin.state(seconds).sunlit >= 0.5
    theirs = skyfield_sat.at(skyfield_time(seconds)).is_sunlit(planets())
    # The two differ only inside the few-second penumbra at each edge.
    assert np.mean(ours != theirs) < 0.002


def test_eclipse_events_agree_with_skyfield_transitions(twin, skyfield_sat):
    start = epoch_s(twin)
    events = twin.eclipses(start, start + 3 * 3600)
    assert len(events) >= 4
    for event in events:
        before, after = skyfield_sat.at(
            skyfield_time(np.array([event.seconds - 8, event.seconds + 8]))
        ).is_sunlit(planets())
        assert before != after
        assert bool(after) == event.rising


def _equatorial_orbit_at_equinox(altitude_km):
    equinox = datetime(2026, 3, 20, 14, 46, tzinfo=UTC)  # Sun on the equator
    return OrbitTwin(
        from_elements("test", equinox, altitude_km=altitude_km, inclination_deg=0.0, raan_deg=0.0)
    )


def test_eclipse_fraction_matches_cylindrical_shadow_at_beta_zero():
    twin = _equatorial_orbit_at_equinox(550.0)
    start = twin.satellite.epoch.timestamp()
    state = twin.state(start + np.arange(0, twin.period_s, 1.0))
    assert abs(state.beta_deg).max() < 0.5
    analytic = math.asin(6371.0 / (6371.0 + 550.0)) / math.pi  # 0.3725
    assert np.mean(state.sunlit < 0.5) == pytest.approx(analytic, abs=0.005)
    assert twin.period_s / 60 == pytest.approx(95.5, abs=0.2)


def test_dawn_dusk_orbit_is_sunlit_away_from_solstice_and_eclipsed_near_june():
    twin = OrbitTwin(load_profile("suncatcher").satellite)
    assert math.degrees(twin.satellite.satrec.inclo) == pytest.approx(
        sun_synchronous_inclination_deg(650), abs=1e-6
    )
    assert sun_synchronous_inclination_deg(650) == pytest.approx(98.0, abs=0.1)
    for day in ("2026-03-20", "2026-09-22", "2026-12-21"):
        start = datetime.fromisoformat(f"{day}T00:00:00+00:00").timestamp()
        assert twin.state(start + np.arange(0, 86400, 20.0)).sunlit.min() == 1.0, day
    june = datetime(2026, 6, 21, tzinfo=UTC).timestamp()
    eclipsed = np.mean(twin.state(june + np.arange(0, 86400, 5.0)).sunlit < 0.5)
    assert 0.1 < eclipsed * twin.period_s / 60 / 20 < 1.1  # up to ~20 min per orbit


def test_passes_agree_with_skyfield_find_events(twin, skyfield_sat):
    station = resolve_station("wallops")
    start = epoch_s(twin)
    passes = find_passes(twin, station, start, start + 86400, 10.0)
    assert len(passes) >= 3
    topos = wgs84.latlon(station.lat_deg, station.lon_deg, elevation_m=station.height_km * 1000)
    times, kinds = skyfield_sat.find_events(topos, skyfield_time(start), skyfield_time(start + 86400), 10.0)
    ref = [t.utc_datetime().timestamp() for t in times]
    rises = [r for r, k in zip(ref, kinds) if k == 0]
    culminations = [r for r, k in zip(ref, kinds) if k == 1]
    sets = [r for r, k in zip(ref, kinds) if k == 2]
    assert len(rises) == len(sets) == len(passes)
    for p, rise, top, set_ in zip(passes, rises, culminations, sets):
        assert abs(p.rise_s - rise) < 2 and abs(p.set_s - set_) < 2 and abs(p.culmination_s - top) < 5
        # And independently: elevation at rise and set equals the mask, at culmination the peak.
        el_rise = (skyfield_sat - topos).at(skyfield_time(p.rise_s)).altaz()[0].degrees
        el_top = (skyfield_sat - topos).at(skyfield_time(p.culmination_s)).altaz()[0].degrees
        assert el_rise == pytest.approx(10.0, abs=0.05)
        assert el_top == pytest.approx(p.max_elevation_deg, abs=0.05)
        dense = look_angles(twin, station, np.linspace(p.rise_s, p.set_s, 400))[0]
        assert p.max_elevation_deg >= dense.max() - 0.01


def test_high_latitude_station_never_sees_a_45_degree_orbit(twin):
    start = epoch_s(twin)
    assert find_passes(twin, resolve_station("svalbard"), start, start + 86400) == []


def test_saa_boundary():
    assert in_saa(-26.0, -50.0) and in_saa(-30.0, -20.0)
    assert not in_saa(40.0, 10.0) and not in_saa(-26.0, 60.0) and not in_saa(10.0, -50.0)


def test_saa_crossings_happen_on_starcloud_orbit(twin):
    start = epoch_s(twin)
    crossings = twin.saa_crossings(start, start + 86400)
    assert any(c.rising for c in crossings)


def test_staleness_warning(twin):
    assert twin.staleness_warning(epoch_s(twin) + 86400) is None
    message = twin.staleness_warning(epoch_s(twin) + 40 * 86400)
    assert message and "40 days" in message


def test_tle_checksum_and_length_errors():
    with pytest.raises(UserError, match="checksum"):
        parse_tle(STARCLOUD_L1[:-1] + "1\n" + STARCLOUD_L2)
    with pytest.raises(UserError, match="69"):
        parse_tle(STARCLOUD_L1[:-2] + "\n" + STARCLOUD_L2)
    with pytest.raises(UserError, match="catalog"):
        parse_tle(STARCLOUD_L1 + "\n" + VALLADO_L2)
