"""Bus models and governor: energy bookkeeping, Stefan-Boltzmann, radiation units, the
governor's limits under simulation, and `skyrack power` as a person runs it."""

import dataclasses
import json

import numpy as np
import pytest
from conftest import assert_clean_error

from skyrack.bus.governor import BusNow, Governor, LightWindow, OrbitNow, throughput_fraction
from skyrack.bus.power import Battery, battery_after
from skyrack.bus.radiation import RadiationModel, expected_daily_upsets
from skyrack.bus.simulate import simulate
from skyrack.bus.spec import BusSpec
from skyrack.bus.thermal import KELVIN, ThermalModel, equilibrium_temperature, view_factor_vertical_plate
from skyrack.orbit.timebase import parse_time
from skyrack.orbit.twin import OrbitTwin
from skyrack.profile import Figure, load_profile

AT = parse_time("2026-07-26T06:00:00Z").timestamp()


def _stressed(**figures):
    base = load_profile("starcloud-1")
    return dataclasses.replace(
        base, bus={**base.bus, **{k: Figure(v, assumption="stress test") for k, v in figures.items()}}
    )


@pytest.fixture(scope="module")
def starcloud():
    profile = load_profile("starcloud-1")
    return profile, OrbitTwin(profile.satellite)


@pytest.fixture(scope="module")
def starcloud_day(starcloud):
    profile, twin = starcloud
    return simulate(profile, twin, AT, 24.0, 10.0)


# -- power ---------------------------------------------------------------------------------
def _battery_change_from_flows(tl):
    """What the battery must have gained from the bus flows, after efficiencies."""
    spec = tl.spec
    flow = (
        tl.array_w - tl.load_w - tl.shed_w + tl.unmet_w
    )  # bus-side power into (+) or out of (-) the battery
    stored = np.where(
        flow > 0, flow * spec.battery_charge_efficiency, flow / spec.battery_discharge_efficiency
    )
    return float(stored.sum() * tl.tick_s / 3600.0)


@pytest.mark.parametrize("soc", [0.6, 1.0])
def test_power_balance_over_one_orbit(starcloud, soc):
    profile, twin = starcloud
    tl = simulate(profile, twin, AT, twin.period_s / 3600.0, 10.0, initial_soc=soc)
    change = tl.final_battery_wh - tl.battery_wh[0]
    assert change == pytest.approx(_battery_change_from_flows(tl), abs=1e-6)
    # and within the efficiency losses of the plain energy balance
    e_in, e_out, shed = (float(x.sum() * tl.tick_s / 3600.0) for x in (tl.array_w, tl.load_w, tl.shed_w))
    gross = e_in - e_out - shed
    assert change <= gross + 1e-6
    assert change >= gross - 0.06 * (e_in + e_out)
    assert tl.unmet_w.sum() == 0
    if soc == 1.0:
        assert shed > 0  # the full battery sheds the surplus, and it is recorded
    else:
        assert shed == 0


def test_without_eclipse_the_battery_only_carries_loads_the_array_cannot():
    profile = load_profile("suncatcher")  # dawn-dusk SSO: no eclipse in September
    twin = OrbitTwin(profile.satellite)
    tl = simulate(profile, twin, parse_time("2026-09-01T00:00:00Z").timestamp(), 3.0, 10.0, initial_soc=0.7)
    assert tl.sunlit.min() == 1.0
    deficit = np.maximum(0.0, tl.load_w - tl.array_w)
    drawn = np.diff(np.append(tl.battery_wh, tl.final_battery_wh)) < 0
    assert not np.any(drawn & (deficit == 0))
    assert tl.final_battery_wh > tl.battery_wh[0]
    assert tl.summary()["gpu_duty"] == 1.0


def test_coarse_ticks_keep_the_energy_and_the_reserve(starcloud, starcloud_day):
    profile, twin = starcloud
    coarse = simulate(profile, twin, AT, 24.0, 600.0)
    fine = starcloud_day.summary()
    assert coarse.summary()["energy_in_wh"] == pytest.approx(fine["energy_in_wh"], rel=0.005)
    _assert_within_limits(coarse)


def test_battery_sheds_when_full_and_records_unmet_when_empty():
    spec = BusSpec.from_profile(load_profile("starcloud-1"))
    full = battery_after(spec, spec.battery_capacity_wh, 300.0, 60.0)
    assert full.shed_w == 300.0 and full.battery_wh == spec.battery_capacity_wh
    empty = battery_after(spec, 0.0, -200.0, 60.0)
    assert empty.unmet_w == 200.0 and empty.battery_wh == 0.0
    # a constant net power gives the same end state in one step as in many
    battery = Battery(spec, soc=0.5)
    for _ in range(360):
        battery.step(10.0, 500.0)
    assert battery.energy_wh == pytest.approx(
        battery_after(spec, 0.5 * spec.battery_capacity_wh, 500.0, 3600.0).battery_wh
    )


# -- thermal -------------------------------------------------------------------------------
def test_equilibrium_matches_stefan_boltzmann():
    # Stefan-Boltzmann: an ideal two-sided radiator with eps 0.9 rejects 2 x 0.9 x sigma x 273^4 = 567 W
    # per m2 of panel at 273 K
    assert equilibrium_temperature(567.0, 1.0, 0.9) == pytest.approx(273.0, abs=0.1)
    assert equilibrium_temperature(827.0, 1.0, 0.9) == pytest.approx(300.0, abs=0.1)
    t = equilibrium_temperature(700.0, 1.2, 0.9, absorbed_w=150.0)
    assert 0.9 * 5.670374419e-8 * 2 * 1.2 * t**4 == pytest.approx(850.0)
    assert view_factor_vertical_plate(500.0) == pytest.approx(0.2673, abs=1e-3)


def test_transient_converges_to_equilibrium():
    spec = BusSpec.from_profile(load_profile("starcloud-1"))
    model = ThermalModel(spec, radiator_k=250.0)
    target = model.equilibrium_k(700.0, 200.0)
    for _ in range(3000):
        model.step(10.0, 700.0, 200.0)
    assert model.radiator_k == pytest.approx(target, abs=0.01)
    # stable with steps far longer than the time constant too
    model = ThermalModel(spec, radiator_k=350.0)
    for _ in range(50):
        model.step(3600.0, 700.0, 200.0)
    assert model.radiator_k == pytest.approx(target, abs=0.01)


# -- radiation -----------------------------------------------------------------------------
def test_radiation_units_and_saa_multiplier(starcloud, starcloud_day):
    profile, twin = starcloud
    spec = BusSpec.from_profile(profile)
    # 80 GB x 8 bits x 5e-7 upsets/bit/day
    assert expected_daily_upsets(spec) == pytest.approx(3.2e5)
    tl = starcloud_day
    assert tl.in_saa.any() and not tl.in_saa.all()
    inside, outside = tl.upset_rate[tl.in_saa], tl.upset_rate[~tl.in_saa]
    assert np.allclose(inside / outside[0], spec.saa_multiplier) and np.allclose(outside, outside[0])
    assert tl.summary()["expected_gpu_upsets"] == pytest.approx(3.2e5, rel=0.02)
    assert tl.dose[-1] == pytest.approx(spec.dose_rad_per_year / 365.25, rel=0.02)
    assert np.all(np.diff(tl.dose) > 0)
    graded = RadiationModel.for_orbit(spec, twin, AT, graded=True)
    rates = graded.upset_rate_per_bit_day(np.array([-26.0, -26.0, 40.0]), np.array([-50.0, -9.0, 0.0]))
    assert rates[0] == pytest.approx(spec.saa_multiplier * rates[2]) and rates[2] < rates[1] < rates[0]


# -- governor ------------------------------------------------------------------------------
def _assert_within_limits(tl):
    spec = tl.spec
    assert tl.soc.min() >= spec.battery_reserve_fraction
    assert tl.final_battery_wh >= spec.reserve_wh
    assert tl.temp_c.max() <= spec.gpu_temp_limit_c
    assert tl.unmet_w.sum() == 0
    running = tl.gpu_cap_w > 0
    assert np.all(tl.gpu_cap_w[running] >= spec.gpu_min_power_w)
    assert np.all(tl.gpu_cap_w <= spec.gpu_max_power_w)
    for i, event in enumerate(tl.events):  # every pause of a running GPU is preceded by a checkpoint
        if event.kind == "pause" and i > 0:
            assert event.checkpoint or tl.events[i - 1].kind == "checkpoint-before-pause", tl.events[
                i - 1 : i + 1
            ]


def test_governor_holds_limits_on_starcloud(starcloud_day):
    _assert_within_limits(starcloud_day)
    summary = starcloud_day.summary()
    assert summary["gpu_duty"] == 1.0 and summary["eclipses"] >= 14
    assert summary["min_soc"] < 0.4  # it uses the battery, not just idles on it


@pytest.mark.parametrize(
    "figures,soc,temp_c",
    [
        (
            {"battery_capacity_wh": 400, "radiator_area_m2": 0.35, "array_area_m2": 2.0},
            1.0,
            None,
        ),  # heat-bound
        (
            {"battery_capacity_wh": 400, "radiator_area_m2": 0.6, "array_area_m2": 1.3},
            0.35,
            None,
        ),  # energy-bound
        (
            {"battery_capacity_wh": 300, "radiator_area_m2": 0.3, "array_area_m2": 1.2},
            0.32,
            80.0,
        ),  # both, hot start
    ],
)
def test_governor_holds_limits_on_stressed_bus(starcloud, figures, soc, temp_c):
    _, twin = starcloud
    tl = simulate(_stressed(**figures), twin, AT, 24.0, 10.0, initial_soc=soc, initial_temp_c=temp_c)
    _assert_within_limits(tl)
    assert tl.summary()["gpu_duty"] > 0.3


def test_governor_foresees_eclipse_pause(starcloud):
    _, twin = starcloud
    tl = simulate(
        _stressed(battery_capacity_wh=400, radiator_area_m2=0.6, array_area_m2=1.3),
        twin,
        AT,
        6.0,
        initial_soc=0.35,
    )
    kinds = [e.kind for e in tl.events]
    assert "checkpoint-before-pause" in kinds and "pause" in kinds and "resume" in kinds
    warn = next(e for e in tl.events if e.kind == "checkpoint-before-pause")
    pause = next(e for e in tl.events if e.kind == "pause" and e.time_s > warn.time_s)
    assert 0 < pause.time_s - warn.time_s <= 130 and not pause.checkpoint


def test_governor_step_api():
    spec = BusSpec.from_profile(load_profile("starcloud-1"))
    cold = 280.0
    gov = Governor(spec)
    full = gov.decide(
        OrbitNow(0.0, 1.0), BusNow(spec.battery_capacity_wh, cold, 1100.0, 350.0), LightWindow(1800.0, 3900.0)
    )
    assert (full.kind, full.cap_w, full.running) == ("set-cap", spec.gpu_max_power_w, True)
    low = gov.decide(
        OrbitNow(10.0, 0.0),
        BusNow(spec.reserve_wh + 5.0, cold, 1100.0, 350.0),
        LightWindow(None, 1800.0, 7500.0, 9600.0),
    )
    assert low.kind == "pause" and low.checkpoint and low.gpu_w == spec.gpu_idle_power_w
    hot = Governor(spec).decide(
        OrbitNow(0.0, 1.0),
        BusNow(spec.battery_capacity_wh, 84.0 + KELVIN, 1100.0, 350.0),
        LightWindow(1800.0, 3900.0),
    )
    assert not hot.running and hot.reason.startswith("thermal")
    assert throughput_fraction(700.0, 700.0, 0.7) == 1.0
    assert throughput_fraction(600.0, 700.0, 0.7) == pytest.approx((6 / 7) ** 0.7)
    assert throughput_fraction(0.0, 700.0, 0.7) == 0.0
    assert gov.throughput_fraction(350.0) == pytest.approx(0.5**0.7)


# -- the command ---------------------------------------------------------------------------
def test_power_json(cli, tmp_path):
    plot = tmp_path / "bus.svg"
    result = cli("power", "--at", "2026-07-26T06:00:00Z", "--hours", "3", "--json", "--plot", str(plot))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["warnings"] == [] and data["events"] and data["rows"]
    assert data["summary"]["min_soc"] >= 0.3 and data["summary"]["eclipses"] == 2
    assert plot.read_text().startswith("<svg") and "polyline" in plot.read_text()


def test_power_text(cli):
    result = cli("power", "--at", "2026-07-26T06:00:00Z", "--hours", "2", "--every", "30")
    assert result.returncode == 0, result.stderr
    assert "governor decisions" in result.stdout and "lowest" in result.stdout


@pytest.mark.parametrize(
    "args,fragment",
    [
        (("--hours", "-1"), "--hours"),
        (("--profile", "no-such-sat"), "unknown profile"),
        (("--step", "0"), "--step"),
        (("--soc", "1.5"), "--soc"),
        (("--plot", "out.png"), "svg"),
        (("--at", "yesterday-ish"), "malformed time"),
    ],
)
def test_power_bad_input(cli, args, fragment):
    assert_clean_error(cli("power", "--at", "2026-07-26T06:00:00Z", *args), fragment)
