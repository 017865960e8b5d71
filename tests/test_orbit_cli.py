"""The orbit commands as a person runs them: real subprocesses, real output, clear errors."""

import json

import pytest

from conftest import assert_clean_error
from skyrack.profile import builtin_profiles, load_profile

GOOD = ("STARCLOUD-1\n"
        "1 66303U 25248L   26207.16029198  .00005005  00000+0  22976-3 0  9990\n"
        "2 66303  45.3997 271.0639 0006321 268.1150  91.9012 15.21652070 40476\n")
AT = "2026-07-26T06:00:00Z"


def test_builtin_profiles_label_every_assumption():
    assert {"starcloud-1", "suncatcher"} <= set(builtin_profiles())
    for name in builtin_profiles():
        profile = load_profile(name)
        assert profile.bus, name
        for key, figure in profile.bus.items():
            assert figure.source or figure.assumption, (name, key)
    starcloud = load_profile("starcloud-1")
    assert starcloud.bus["battery_capacity_wh"].is_assumption
    assert not starcloud.bus["mass_kg"].is_assumption


def test_profile_without_provenance_is_refused(tmp_path, cli):
    path = tmp_path / "bad.toml"
    path.write_text(f'name = "x"\n[orbit]\ntle = """\n{GOOD}"""\n[bus]\nmass_kg = {{ value = 5 }}\n')
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


@pytest.mark.parametrize("tle,fragment", [
    (GOOD.replace("0  9990", "0  9991"), "checksum"),
    (GOOD.replace("40476", "4047"), "69"),
    ("just one line\n", "expected 2 or 3 lines"),
])
def test_bad_tle_files(tmp_path, cli, tle, fragment):
    path = tmp_path / "bad.tle"
    path.write_text(tle)
    assert_clean_error(cli("passes", "--station", "wallops", "--tle", str(path), "--at", AT), fragment)


@pytest.mark.parametrize("args,fragment", [
    (("passes", "--station", "wallops", "--profile", "hubble"), "unknown profile"),
    (("passes", "--station", "wallops", "--at", "yesterday-ish"), "malformed time"),
    (("passes", "--station", "95,10"), "latitude"),
    (("passes", "--station", "atlantis"), "unknown station"),
    (("passes", "--station", "wallops", "--hours", "-3"), "--hours"),
    (("passes", "--station", "wallops", "--tle", "/nonexistent.tle"), "not found"),
    (("orbit", "--step", "0"), "--step"),
    (("passes",), "--station"),
])
def test_bad_input_is_one_clear_line(cli, args, fragment):
    assert_clean_error(cli(*args), fragment)
