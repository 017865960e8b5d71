"""The scheduler's feasibility verdicts on hand-made forecasts (EDF within the budget, SAA
avoidance, the contacts that bring results down), and the forecast file's checks."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from skyrack.errors import UserError
from skyrack.jobs.schedule import ESTIMATE_MARGIN, Forecast, feasible, load_forecast, write_forecast
from skyrack.jobs.spec import JobSpec
from skyrack.telemetry.runs import RunDir

T0 = 1_785_000_000.0
TICK = 10.0


@dataclass(frozen=True)
class Est:  # the shape of skyrack.jobs.workload.Estimate
    wall_s: float
    result_bytes: int


def forecast(n: int = 360, per_tick: float = 10.0, link: str = "ideal", **kw) -> Forecast:
    budget = [0.0]
    for _ in range(n):
        budget.append(budget[-1] + per_tick)
    return Forecast(
        run_id="m",
        written_t=T0,
        t0=T0,
        tick_s=TICK,
        budget_s=budget,
        link=link,
        sim_per_wall=10.0,
        gpu_full_w=360.0,  # 0.1 Wh per full-power second
        gpu_idle_w=40.0,
        battery_reserve_wh=100.0,
        end_t=T0 + n * TICK,
        uplink_rate_bps=9600.0,
        **kw,
    )


def job(job_id=1, deadline=None, priority=5, avoid_saa=False, submitted=T0) -> JobSpec:
    return JobSpec(
        job_id=job_id,
        customer="acme",
        kind="screen",
        params={"source": "onboard", "tiles": 4},
        submitted_t=submitted,
        deadline_t=deadline,
        priority=priority,
        avoid_saa=avoid_saa,
    )


def test_a_job_that_fits_is_accepted_with_its_predicted_times():
    f = forecast()
    v = feasible(job(deadline=T0 + 600), Est(2.0, 1000), f, [], T0)
    assert v.ok, v.reason
    need = 2.0 * ESTIMATE_MARGIN * f.sim_per_wall  # 30 full-power seconds: three ticks
    assert v.start_t == T0 + TICK
    assert v.done_t == pytest.approx(v.start_t + need)
    assert v.ground_t == v.done_t  # the ideal link: on the ground at once
    assert "deadline" in v.reason


def test_a_tight_deadline_is_refused_with_the_energy_it_needs_and_what_the_budget_allows():
    f = forecast(per_tick=1.0)  # a throttled GPU: one full-power second a tick
    v = feasible(job(deadline=T0 + 120), Est(2.0, 1000), f, [], T0)
    assert not v.ok
    assert "needs 3.0 Wh of GPU time" in v.reason and "the battery reserve allows" in v.reason
    allows = float(v.reason.split("allows ")[1].split(" Wh")[0])
    assert allows < 3.0


def test_jobs_ahead_with_earlier_deadlines_take_the_budget_first():
    f = forecast(per_tick=2.0)
    est = Est(2.0, 1000)  # 30 full-power seconds: 15 ticks each
    alone = feasible(job(2, deadline=T0 + 200), est, f, [], T0)
    assert alone.ok, alone.reason
    earlier = [(job(1, deadline=T0 + 190), est)]
    v = feasible(job(2, deadline=T0 + 200), est, f, earlier, T0)
    assert not v.ok and "jobs ahead" in v.reason
    # a job ahead with a later deadline does not delay it (EDF: it would be preempted)
    later = [(job(1, deadline=T0 + 3000), est)]
    assert feasible(job(2, deadline=T0 + 200), est, f, later, T0).ok
    # equal deadlines: the higher priority goes first
    rival = [(job(1, deadline=T0 + 200, priority=1), est)]
    assert feasible(job(2, deadline=T0 + 200, priority=9), est, f, rival, T0).ok
    assert not feasible(job(2, deadline=T0 + 200, priority=0), est, f, rival, T0).ok


def test_avoid_saa_gets_no_compute_inside_the_anomaly():
    f = forecast(saa=[[T0, T0 + 600]])
    est = Est(1.0, 100)
    plain = feasible(job(deadline=T0 + 3600), est, f, [], T0)
    shy = feasible(job(deadline=T0 + 3600, avoid_saa=True), est, f, [], T0)
    assert plain.ok and shy.ok
    assert plain.done_t < T0 + 600 <= shy.done_t - TICK
    assert not feasible(job(deadline=T0 + 500, avoid_saa=True), est, f, [], T0).ok


def test_over_a_ground_link_the_result_comes_down_in_the_next_contact():
    contacts = [
        {"station": "A", "rise_t": T0 + 100, "set_t": T0 + 400, "mean_rate_bps": 1e6},
        {"station": "B", "rise_t": T0 + 3000, "set_t": T0 + 3300, "mean_rate_bps": 1e6},
    ]
    f = forecast(link="ground", contacts=contacts)
    est = Est(1.0, 20_000)
    v = feasible(job(submitted=T0 + 500, deadline=T0 + 3200), est, f, [], T0 + 500)
    assert v.ok, v.reason
    assert v.start_t >= T0 + 3000  # goes up in contact B, then comes down in it too
    assert T0 + 3000 <= v.ground_t <= T0 + 3300
    refused = feasible(job(submitted=T0 + 150, deadline=T0 + 2900), Est(200.0, 20_000), f, [], T0 + 150)
    assert not refused.ok
    assert refused.reason.startswith("needs 300.0 Wh of GPU time before ")
    assert "in the contact at" in refused.reason and "the battery reserve allows" in refused.reason
    late = feasible(job(submitted=T0 + 500, deadline=T0 + 2900), est, f, [], T0 + 500)
    assert not late.ok and "before its deadline" in late.reason


def test_a_long_command_goes_up_across_one_contact_and_one_longer_than_any_contact_cannot():
    big = JobSpec(job_id=1, customer="acme", kind="screen", payload=b"x" * 30_000, submitted_t=T0)
    bits = len(big.encode()) * 8.0  # ~40,000 characters: about 35 s at 9.6 kbit/s
    long_pass = [{"station": "A", "rise_t": T0 + 100, "set_t": T0 + 700, "mean_rate_bps": 1e6}]
    f = forecast(link="ground", contacts=long_pass)
    v = feasible(big, Est(0.1, 100), f, [], T0)
    assert v.ok and v.start_t >= T0 + 100 + bits / 9600.0
    short_pass = [{"station": "A", "rise_t": T0 + 100, "set_t": T0 + 120, "mean_rate_bps": 1e6}]
    v = feasible(big, Est(0.1, 100), forecast(link="ground", contacts=short_pass), [], T0)
    assert not v.ok and "the longest contact ahead carries" in v.reason


def test_no_deadline_means_accepted_when_it_fits_the_mission_at_all():
    f = forecast(n=10)
    assert feasible(job(), Est(1.0, 100), f, [], T0).ok
    v = feasible(job(), Est(100.0, 100), f, [], T0)
    assert not v.ok and "mission ends" in v.reason


def test_the_forecast_file_round_trips_and_a_damaged_one_is_a_clear_error(tmp_path):
    run = RunDir(tmp_path / "m")
    run.path.mkdir()
    with pytest.raises(UserError, match="no forecast"):
        load_forecast(run)
    f = forecast(contacts=[{"station": "A", "rise_t": T0, "set_t": T0 + 60, "mean_rate_bps": 1.0}])
    write_forecast(run.forecast, f)
    back = load_forecast(run)
    assert back.budget_s == f.budget_s and back.contacts == f.contacts and back.link == f.link
    d = json.loads(run.forecast.read_text())
    d["budget_s"] = [0.0, 5.0, 1.0]
    run.forecast.write_text(json.dumps(d))
    with pytest.raises(UserError, match="damaged"):
        load_forecast(run)
    run.forecast.write_text("{not json")
    with pytest.raises(UserError, match="cannot read"):
        load_forecast(run)


def test_a_job_whose_uplink_comes_after_the_mission_is_refused_for_that_reason():
    late_pass = [{"station": "A", "rise_t": T0 + 400 * TICK, "set_t": T0 + 410 * TICK, "mean_rate_bps": 1e6}]
    f = forecast(n=360, link="ground", contacts=late_pass)
    v = feasible(job(submitted=T0), Est(0.1, 100), f, [], T0)
    assert not v.ok and "after the mission ends" in v.reason and "(the next uplink)" in v.reason
