"""The orbit commands as a person runs them: real subprocesses, real output, clear errors."""

import json

import pytest
from conftest import assert_clean_error

from skyrack.profile import builtin_profiles, load_profile

GOOD = (
    "STARCLOUD-1\n"
    "1 66303U 25248L   26207.16029198  .00005005  00000+0  22976-3 0  9990\n"
    "2 66303  45.3997 271.0639 0006321 268.1150  91.9012 15.21652070 40476\n"
)
AT = "2026-07-26T06:00:00Z"


def test_builtin_profiles_label_their_assumptions():
    assert {"starcloud-1", "suncatcher"} <= set(builtin_profiles())
    starcloud = load_profile("starcloud-1")
    assert starcloud.bus["battery_capacity_wh"].is_assumption
    assert not starcloud.bus["mass_kg"].is_assumption


@pytest.mark.parametrize(
    "figure", ["mass_kg = { value = 5 }", "mass_kg = 5", 'mass_kg = { value = 5, source = "" }']
)
def test_profile_without_provenance_is_refused(tmp_path, cli, figure):
    path = tmp_path / "bad.toml"
    path.write_text(f'name = "x"\n[orbit]\ntle = """\n{GOOD}"""\n[bus]\n{figure}\n')
    assert_clean_error(cli("passes", "--station", "wallops", "--profile", str(path), "--at", AT), "mass_kg")


def test_passes_json(cli):
    result = cli("passes", "--station", "wallops", "--at", AT, "--hours", "12", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["passes"] and all(p["max_elevation_deg"] >= 10 for p in data["passes"])
    assert data["warnings"] == []


def test_custom_tle_file_and_lat_lon_station(tmp_path, cli):
    path = tmp_path / "sat.tle"
    path.write_text(GOOD)
    result = cli("passes", "--station=-33.9,18.4", "--tle", str(path), "--at", AT, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["station"]["lat_deg"] == -33.9


@pytest.mark.parametrize(
    "tle,fragment",
    [
        (GOOD.replace("0  9990", "0  9991"), "checksum"),
        (GOOD.replace("40476", "4047"), "69"),
        ("just one line\n", "expected 2 or 3 lines"),
    ],
)
def test_bad_tle_files(tmp_path, cli, tle, fragment):
    path = tmp_path / "bad.tle"
    path.write_text(tle)
    assert_clean_error(cli("passes", "--station", "wallops", "--tle", str(path), "--at", AT), fragment)


@pytest.mark.parametrize(
    "args,fragment",
    [
        (("passes", "--station", "wallops", "--profile", "hubble"), "unknown profile"),
        (("passes", "--station", "wallops", "--at", "yesterday-ish"), "malformed time"),
        (("passes", "--station", "95,10"), "latitude"),
        (("passes", "--station", "atlantis"), "unknown station"),
        (("passes", "--station", "wallops", "--hours", "-3"), "--hours"),
        (("passes", "--station", "wallops", "--tle", "/nonexistent.tle"), "not found"),
        (("orbit", "--step", "0"), "--step"),
        (("passes",), "--station"),
        (("where", "--at", "1890-01-01T00:00:00Z"), "outside the ephemeris"),  # was a traceback
    ],
)
def test_bad_input_is_one_clear_line(cli, args, fragment):
    assert_clean_error(cli(*args), fragment)


def test_where_json_is_truthful_about_now_and_next(cli):
    from datetime import datetime

    from skyrack.geo.regions import RegionIndex
    from skyrack.orbit.beneath import announcement_keys
    from skyrack.orbit.twin import OrbitTwin

    result = cli("where", "--at", AT, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {"time", "lat_deg", "lon_deg", "alt_km", "sunlit", "region", "next"} <= set(data)
    assert {"country", "continent", "ocean", "area"} <= set(data["region"])
    twin = OrbitTwin(load_profile("starcloud-1").satellite)
    index = RegionIndex.load()
    t0 = datetime.fromisoformat(AT.replace("Z", "+00:00")).timestamp()
    state = twin.state([t0])
    assert data["lat_deg"] == pytest.approx(state.lat_deg[0], abs=1e-3)
    assert data["region"]["name"] == index.describe(state.lat_deg[0], state.lon_deg[0]).name
    assert data["next"], "a 45-degree orbit reaches a new region within the hour"
    key_of_code, labels = announcement_keys(index)
    for arrival in data["next"]:
        t = t0 + arrival["eta_s"]
        s = twin.state([t - 10.0, t])
        before, after = key_of_code[index.lookup(s.lat_deg, s.lon_deg)]
        assert labels[after] == arrival["area"] and before != after
    first = data["next"][0]
    assert first["time"] > data["time"]


def test_where_human_line(cli):
    result = cli("where", "--at", AT)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert line.startswith("Over ") and " km, " in line and "Next: " in line
    assert result.stderr == ""  # elements are fresh at this time: no warning


def test_where_warns_when_elements_are_stale(cli):
    result = cli("where", "--at", "2027-03-01T00:00:00Z")
    assert result.returncode == 0
    assert "warning" in result.stderr and "days from their epoch" in result.stderr


def test_orbit_csv_has_sunlit_and_region_columns(cli):
    result = cli("orbit", "--at", AT, "--hours", "1.6", "--step", "60")
    assert result.returncode == 0, result.stderr
    rows = result.stdout.strip().splitlines()
    assert rows[0].split(",")[-4:] == ["sunlit_fraction", "in_saa", "region", "area"]
    assert len(rows) == 1 + 97
    sunlit = [float(r.split(",")[5]) for r in rows[1:]]
    assert min(sunlit) == 0.0 and max(sunlit) == 1.0  # one orbit holds an eclipse
