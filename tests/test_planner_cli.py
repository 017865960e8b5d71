"""`skyrack plan` as a person runs it: table, --json, the HTML report, compare, bad input."""

import json

from tests.conftest import assert_clean_error


def test_plan_5gw_json_and_report(cli, tmp_path):
    out = tmp_path / "r.html"
    result = cli("plan", "--it-power", "5GW", "--json", "--out", str(out))
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["size"]["it_power_w"] == 5e9
    assert doc["size"]["launches"] > 100 and doc["size"]["array_area_m2"] > 1e6
    assert doc["ratio"] > 0 and doc["orbit"]["usd_per_kwh"] > 0 and doc["ground"]["usd_per_gpu_hour"] > 0
    assert doc["ten_x_claim"][0]["ratio"] < 0.1 < doc["ten_x_claim"][-1]["ratio"]
    text = out.read_text()
    assert text.count("<svg") == 4 and "http" not in text.replace("http://www.w3.org", "")
    assert "break-even" in text and "Manhattan" in text or "Central Park" in text


def test_plan_table_for_a_published_scenario(cli):
    result = cli("plan", "--scenario", "mccalip", "--no-report")
    assert result.returncode == 0, result.stderr
    assert "PUBLISHED FIGURES" in result.stdout and "CORRECTIONS" in result.stdout
    assert "!!" not in result.stdout


def test_plan_compare(cli):
    result = cli("plan", "compare")
    assert result.returncode == 0, result.stderr
    for name in ("starcloud-wp", "suncatcher", "mccalip", "skyrack"):
        assert name in result.stdout
    assert "reproduced within 2%" in result.stdout


def test_plan_orbit_option(cli):
    result = cli("plan", "--orbit", "incl:45:550", "--it-power", "40 MW", "--json", "--no-report")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sunlight"]["sunlit_fraction"] < 0.75


def test_plan_bad_input_is_one_line(cli):
    assert_clean_error(cli("plan", "--it-power", "5kg", "--no-report"), "target.it_power")
    assert_clean_error(
        cli("plan", "--set", "power.cell_efficiency=1.3", "--no-report"), "cell_efficiency", "at most 1"
    )
    assert_clean_error(cli("plan", "--set", "launch.price_per_kg=$-200/kg", "--no-report"), "price_per_kg")
    assert_clean_error(cli("plan", "--set", "launch.payload=0", "--no-report"), "payload")
    assert_clean_error(cli("plan", "--scenario", "nope", "--no-report"), "unknown scenario")
    assert_clean_error(cli("plan", "--orbit", "sso:abc", "--no-report"), "orbit")
    assert_clean_error(cli("plan", "--orbit", "nosuch", "--no-report"), "unknown profile")
    assert_clean_error(cli("plan", "--orbit", "sso:99999", "--no-report"), "no sun-synchronous orbit")
    assert_clean_error(cli("plan", "--orbit", "incl:200:500", "--no-report"), "inclination")


def test_plan_table_shows_every_step_label_whole(cli):
    steps = json.loads(cli("plan", "--no-report", "--json").stdout)["ten_x_claim"]
    result = cli("plan", "--no-report")
    assert result.returncode == 0, result.stderr
    table = result.stdout.split("CLAIM", 1)[1].split("as published: orbit", 1)[0]
    words = " ".join(table.split())  # a wrapped label reads whole once the lines are joined
    for st in steps:
        assert st["title"] in words or any(
            " ".join(st["title"].split()[:k]) in words and " ".join(st["title"].split()[k:]) in words
            for k in range(1, len(st["title"].split()))
        ), st["title"]
    assert max(len(line) for line in table.splitlines()) <= 120
