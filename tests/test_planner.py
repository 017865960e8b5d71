"""Planner: physics against Stefan-Boltzmann and the orbit twin, the published scenarios'
headline figures within 2%, monotonicity, break-even, units and bad input."""

import numpy as np
import pytest

from skyrack.errors import UserError
from skyrack.orbit.twin import OrbitTwin
from skyrack.planner import physics, units
from skyrack.planner.economics import evaluate, with_launch_price
from skyrack.planner.scenario import builtin_scenarios, check, load_scenario, parse_set
from skyrack.planner.study import reproduce, study
from skyrack.planner.sunlight import annual_sunlight, design_satellite


# -- physics ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kelvin, facts_w_m2", [(273.15, 567), (293.15, 754), (300, 827), (320, 1070), (350, 1532)]
)
def test_radiator_matches_stefan_boltzmann(kelvin, facts_w_m2):
    sigma = 5.670374419e-8
    emitted = physics.radiator_emitted_w_m2(kelvin, 0.9, sides=2)
    assert emitted == pytest.approx(2 * 0.9 * sigma * kelvin**4, rel=1e-12)
    assert emitted == pytest.approx(facts_w_m2, rel=0.003)  # 2 eps sigma T^4, rounded
    # no loads, no sink: net equals emission; loads only ever lower it
    assert physics.radiator_net_w_m2(kelvin, 0.9, 0.12, 2, sink_k=0.0) == pytest.approx(emitted)
    assert physics.radiator_net_w_m2(kelvin, 0.9, 0.12, 2, 0.48, 0.3, 0.1) < emitted


def test_radiator_loads_add_up():
    absorbed = physics.radiator_absorbed_w_m2(0.9, 0.12, 0.5, albedo_illumination=1.0, solar_incidence=0.2)
    assert absorbed == pytest.approx(0.9 * 237 * 0.5 + 0.12 * 1361 * 0.30 * 0.5 + 0.12 * 1361 * 0.2)


def test_array_output_is_irradiance_times_efficiency_times_fill():
    assert physics.array_flux_w_m2(1361, 0.30, 0.90) == pytest.approx(1361 * 0.30 * 0.90)
    assert physics.array_flux_w_m2(1361, 0.22, 0.90) == pytest.approx(269.5, rel=1e-3)  # angadh's ~270 W/m2
    plan = evaluate(load_scenario("skyrack").values())
    v = plan.values
    assert plan.size["array_flux_w_m2"] == pytest.approx(
        v["power.solar_constant"]
        * v["power.cell_efficiency"]
        * v["power.fill_factor"]
        * v["power.pointing_factor"]
    )
    assert plan.size["array_area_m2"] * plan.size["array_flux_w_m2"] == pytest.approx(
        plan.size["array_power_bol_w"]
    )


def test_array_and_battery_carry_the_load_through_eclipse():
    p = physics.array_power_for_load(1000.0, 0.6, 0.9)
    # energy over an orbit: lit share feeds load + recharge, dark share drawn from the battery
    assert p * 0.6 == pytest.approx(1000 * 0.6 + 1000 * 0.4 / 0.9)
    assert physics.battery_energy_wh(1000.0, 1800, 0.5, 1.0) == pytest.approx(1000.0)


def _twin_year_mean(spec, every_days=7, step_s=20.0):
    """The twin's own sunlight API on a grid the planner does not use: one orbit a week, 20 s."""
    sat, _ = design_satellite(spec)
    twin = OrbitTwin(sat)
    t0 = sat.epoch.timestamp()
    seconds = (
        t0 + np.arange(0, 365, every_days)[:, None] * 86400.0 + np.arange(0, twin.period_s, step_s)[None, :]
    ).ravel()
    return float(twin.sunlit(seconds).mean())


def test_sunlit_fraction_of_a_45_degree_orbit_matches_the_twin():
    s = annual_sunlight("incl:45:550")
    assert s.sunlit_fraction == pytest.approx(_twin_year_mean("incl:45:550"), abs=0.01)
    assert 0.60 < s.sunlit_fraction < 0.72
    # longest eclipse at 550 km: 35.6 min at beta = 0 (cylindrical shadow, R = 6371 km: a half-angle of
    # asin(R / (R + 550 km)) = 67.0 deg, 134 / 360 of a 95.5 min orbit)
    assert s.max_eclipse_s / 60 == pytest.approx(35.6, abs=1.0)


def test_sunlit_fraction_of_a_dawn_dusk_sso_matches_the_twin():
    s = annual_sunlight("sso:650")
    assert s.sunlit_fraction == pytest.approx(_twin_year_mean("sso:650"), abs=0.01)
    assert s.sunlit_fraction == pytest.approx(0.96, abs=0.015)  # ~96% over a year (cylindrical shadow)
    assert 15 * 60 < s.max_eclipse_s <= 21 * 60  # up to ~20 min near one solstice
    assert s.eclipse_orbits_fraction < 0.4


def test_planner_uses_the_twin_unless_told_otherwise():
    v = load_scenario("skyrack").values()
    plan = evaluate(v)
    assert plan.sunlight["from_twin"]
    assert plan.sunlight["sunlit_fraction"] == annual_sunlight(v["orbit.spec"]).sunlit_fraction


# -- the published scenarios ------------------------------------------------------------------
PUBLISHED = {
    "starcloud-wp": {"orbit.total_usd": 8.2e6, "ground.total_usd": 167e6},
    "suncatcher": {"orbit.usd_per_kw_year": 810},
    "mccalip": {"orbit.usd_per_w": 31.2, "ground.usd_per_w": 14.8},
}


def test_builtin_scenarios_are_all_there():
    assert set(builtin_scenarios()) == {"skyrack", "starcloud-wp", "suncatcher", "mccalip"}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_headlines_reproduced_within_2_percent(name):
    rows = reproduce(load_scenario(name))
    checked = [r for r in rows if r["checked"]]
    for r in checked:
        assert abs(r["error"]) <= 0.02, r
    # each publication's own headline figures (PUBLISHED) are among those checked
    for metric, value in PUBLISHED[name].items():
        assert any(r["metric"] == metric and r["published"] == value for r in checked), metric


def test_suncatcher_today_price_reproduced():
    rows = reproduce(load_scenario("suncatcher"))
    today = [r for r in rows if r["at"]][0]
    assert today["published"] == 14700 and abs(today["error"]) <= 0.02


@pytest.mark.parametrize(
    "figure, fragment",
    [
        ("price_per_kg = 100", "must be a table"),
        ('price_per_kg = { value = 100, source = "" }', "neither its source"),
        ('price_per_kg = { value = 100, assumption = "" }', "neither its source"),
    ],
)
def test_figure_without_provenance_is_refused(tmp_path, figure, fragment):
    # Loading is what guarantees every built-in figure has a source or an assumption: show it refuses.
    bad = tmp_path / "bad.toml"
    bad.write_text(f'extends = "skyrack"\n[launch]\n{figure}\n')
    with pytest.raises(UserError, match=fragment):
        load_scenario(str(bad))


def test_white_paper_launch_count_once_radiators_count():
    s = study(load_scenario("starcloud-wp"), detail=False)
    first, radiators = s.corrections[0], s.corrections[1]
    assert first["launches"] == 1
    assert radiators["launches"] > 1
    assert s.corrections[-1]["ratio"] > 1 > first["ratio"]  # the claim does not survive the corrections


# -- monotonicity and break-even ---------------------------------------------------------------
@pytest.mark.parametrize("name", ["skyrack", "mccalip", "starcloud-wp"])
def test_cost_rises_with_launch_price(name):
    v = load_scenario(name).values()
    costs = [
        evaluate(with_launch_price(v, p), breakeven=False).orbit["total_usd"] for p in (50, 200, 1000, 3000)
    ]
    assert all(a < b for a, b in zip(costs, costs[1:]))


def test_cost_falls_with_array_specific_power():
    v = load_scenario("skyrack").values()
    costs = [
        evaluate({**v, "power.array_specific_power": sp}, breakeven=False).orbit["total_usd"]
        for sp in (50, 100, 150, 300, 1000)
    ]
    assert all(a > b for a, b in zip(costs, costs[1:]))


@pytest.mark.parametrize("name", ["skyrack", "mccalip", "suncatcher", "starcloud-wp"])
def test_break_even_launch_price_solves_ratio_one(name):
    v = load_scenario(name).values()
    plan = evaluate(v)
    be = plan.break_even_launch_per_kg
    assert be is not None and be > 0
    assert evaluate(with_launch_price(v, be), breakeven=False).ratio == pytest.approx(1.0, rel=1e-9)


def test_no_break_even_when_orbit_costs_more_with_free_launch():
    v = load_scenario("skyrack").values()
    v = {**v, "power.array_cost_per_w": 500.0}
    assert evaluate(v).break_even_launch_per_kg is None


# -- units and bad input -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, kind, value",
    [
        ("5GW", "power", 5e9),
        ("40 MW", "power", 40e6),
        ("$200/kg", "usd_per_kg", 200.0),
        ("$8.2M", "usd", 8.2e6),
        ("10y", "years", 10.0),
        ("30%", "fraction", 0.3),
        ("20C", "temperature", 293.15),
        ("320K", "temperature", 320.0),
        ("$0.04/kWh", "usd_per_kwh", 0.04),
        ("$40/MWh", "usd_per_kwh", 0.04),
        ("100 t", "mass", 1e5),
        ("$10M/yr", "usd_per_year", 1e7),
        ("$1.5B", "usd", 1.5e9),
        (7, "power", 7.0),
    ],
)
def test_units_parse(text, kind, value):
    assert units.parse(text, kind) == pytest.approx(value)


@pytest.mark.parametrize(
    "text, kind",
    [("5 kg", "power"), ("abc", "power"), ("5GW", "usd_per_kg"), ("$5/kg", "power"), ("nan", "power")],
)
def test_units_refuse_the_wrong_kind(text, kind):
    with pytest.raises(UserError):
        units.parse(text, kind)


@pytest.mark.parametrize(
    "key, value, fragment",
    [
        ("power.cell_efficiency", 1.2, "at most 1"),
        ("power.cell_efficiency", 0, "above 0"),
        ("launch.price_per_kg", "$-5/kg", "at least 0"),
        ("launch.payload", 0, "above 0"),
        ("target.it_power", "-5GW", "above 0"),
        ("ground.pue", 0.9, "at least 1"),
        ("model.sizing", "magic", "one of"),
    ],
)
def test_impossible_values_refused(key, value, fragment):
    with pytest.raises(UserError, match=fragment):
        check(key, value)


def test_set_pairs_and_unknown_keys():
    assert parse_set(["launch.price_per_kg=$200/kg"]) == {"launch.price_per_kg": "$200/kg"}
    assert parse_set(["price_per_kg=300"]) == {"launch.price_per_kg": "300"}
    with pytest.raises(UserError, match="did you mean"):
        parse_set(["launch.price_per_kgg=3"])
    with pytest.raises(UserError, match="key=value"):
        parse_set(["launch.price_per_kg"])


def test_hot_loads_beyond_emission_refused():
    v = {
        **load_scenario("skyrack").values(),
        "thermal.radiator_temperature": 160.0,
        "thermal.solar_incidence": 1.0,
        "thermal.absorptivity": 0.9,
    }
    with pytest.raises(UserError, match="absorbs more than it emits"):
        evaluate(v)


def test_assumptions_file_needs_sources(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('extends = "skyrack"\n[launch]\nprice_per_kg = { value = 100 }\n')
    with pytest.raises(UserError, match="neither its source"):
        load_scenario(str(bad))
    good = tmp_path / "good.toml"
    good.write_text(
        'extends = "skyrack"\n[launch]\nprice_per_kg = { value = "$100/kg", assumption = "Starship goal" }\n'
    )
    assert load_scenario(str(good)).values()["launch.price_per_kg"] == 100.0
