"""Customers' jobs in a real mission, flown in this process (the tiny model on a small play): jobs
preempt the training and it ends bitwise as without them; the GPU's energy is all accounted; a
feasible job's result is on the ground before its deadline and an infeasible one is refused; a
crashing job fails alone; an interrupted mission resumes its queue.

A stand-in workload, registered here only (as kind `infer`), makes jobs of a known wall time
that crash, draw from torch's global RNG, or interrupt the mission on request."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import types
from pathlib import Path

import pytest
import torch

from skyrack.jobs.workload import Estimate, Outcome
from skyrack.mission.dashboard import Dashboard
from skyrack.mission.runner import Options, run_mission
from skyrack.telemetry.archive import Archive
from skyrack.telemetry.runs import RunDir

TICK = 30.0


def _run(params: dict, payload: bytes, *, seed: int) -> Outcome:
    mode = params.get("mode", "ok")
    time.sleep(float(params.get("sleep", 0.01)))
    if mode == "crash":
        raise RuntimeError("the stand-in workload crashed on purpose")
    if mode == "rng":  # a workload that breaks its promise: the service must undo it
        torch.rand(1000)
        torch.set_num_threads(max(1, torch.get_num_threads() + 1))
    if mode == "interrupt":
        os.kill(os.getpid(), signal.SIGINT)  # the mission stops at the end of this tick
    return Outcome(json.dumps({"seed": seed, "mode": mode}).encode(), "out.json", {"mode": mode})


@pytest.fixture
def fake_workload(monkeypatch):
    fake = types.ModuleType("skyrack.jobs.infer")
    fake.check = lambda params, payload: None
    fake.estimate = lambda params, payload: Estimate(float(params.get("sleep", 0.01)), 200)
    fake.run = _run
    monkeypatch.setitem(sys.modules, "skyrack.jobs.infer", fake)
    return fake


@pytest.fixture(autouse=True)
def one_thread():
    """The tiny model runs best on one thread of a busy machine (as the mission tests set it)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def play(tmp_path_factory) -> Path:
    from skyrack.faults.campaign import generated_corpus

    path = tmp_path_factory.mktemp("data") / "play.txt"
    path.write_text(generated_corpus(600))
    return path


def stream_file(path: Path, entries: list[dict]) -> str:
    path.write_text("\n".join(json.dumps(e) for e in entries) + "\n")
    return str(path)


def job(at_s: float, **kw) -> dict:
    return {"at_s": at_s, "customer": "acme", "kind": "infer", "params": {}, **kw}


def fly(runs: Path, run_id: str, play: Path | None, **kw) -> dict:
    defaults = (
        {}
        if "resume" in kw
        else dict(
            preset="tiny",
            data=str(play),
            runs_dir=str(runs),
            run_id=run_id,
            frame_interval=TICK,
            warp=2000.0,
            stress=0.0,
            link="ideal",
            seed=7,
        )
    )
    opts = Options(**{**defaults, **kw}) if "resume" not in kw else Options(runs_dir=str(runs), **kw)
    messages: list[str] = []
    view = Dashboard(stream=open(os.devnull, "w"), live=False)
    summary = run_mission(opts, messages.append, view)
    summary["messages"] = messages
    return summary


def job_events(run: Path) -> dict[int, list[dict]]:
    with Archive(run / "telemetry.sqlite", readonly=True) as archive:
        events = [e for e in archive.events() if e["name"] == "job"]
    out: dict[int, list[dict]] = {}
    for e in events:
        out.setdefault(e["data"]["job_id"], []).append({**e["data"], "t": e["t"]})
    return out


def final_weights(run: Path) -> dict:
    from skyrack.train import checkpoint

    _, files = checkpoint.load_checkpoint(run / "checkpoints")
    return files


def test_jobs_preempt_training_and_it_ends_bitwise_as_without_them(tmp_path, play, fake_workload):
    plain = fly(tmp_path, "plain", play, steps=40)
    jobs = stream_file(
        tmp_path / "jobs.jsonl",
        [
            job(60, params={"sleep": 0.02}),
            job(60, params={"mode": "rng", "sleep": 0.02}, priority=9),
            job(200, params={"sleep": 0.05}, deadline_in_s=7200),
        ],
    )
    threads = torch.get_num_threads()
    busy = fly(tmp_path, "busy", play, steps=40, jobs=jobs)
    assert torch.get_num_threads() == threads
    assert plain["training_steps"] == busy["training_steps"] == 40
    events = job_events(tmp_path / "busy")
    assert sorted(events) == [1, 2, 3]
    assert all(ev[-1]["state"] == "done" for ev in events.values()), events
    with Archive(tmp_path / "busy" / "telemetry.sqlite", readonly=True) as archive:
        energy = [v for _, _, v in archive.history("jobs.energy_wh")]
    assert energy[-1] > 0  # the jobs took ticks' compute from the training
    a, b = final_weights(tmp_path / "plain"), final_weights(tmp_path / "busy")
    for name in ("model.pt", "optimizer.pt", "trainer.pt"):  # weights, moments, step and RNG states
        assert a[name] == b[name], name


def test_energy_of_jobs_training_and_idle_sums_to_the_bus_models_gpu_energy(tmp_path, play, fake_workload):
    jobs = stream_file(
        tmp_path / "jobs.jsonl",
        [job(30 * i, params={"sleep": 0.03}, priority=i % 10) for i in range(1, 8)],
    )
    fly(tmp_path, "energy", play, steps=30, jobs=jobs, soc=0.3)
    from skyrack.bus.spec import BusSpec
    from skyrack.profile import load_profile

    spec = BusSpec.from_profile(load_profile("starcloud-1"))
    with Archive(tmp_path / "energy" / "telemetry.sqlite", readonly=True) as archive:
        caps = [v for _, _, v in archive.history("gpu.cap_w")]
        last = {name: v for name, (_, _, v) in archive.latest().items()}
        board = archive.meta("jobs_board")
    bus_wh = sum((c if c > 0 else spec.gpu_idle_power_w) * TICK / 3600.0 for c in caps)
    totals = board["totals"]
    assert totals["jobs_wh"] + totals["training_wh"] + totals["idle_wh"] == pytest.approx(bus_wh, rel=1e-9)
    assert totals["jobs_wh"] > 0 and totals["training_wh"] > 0
    assert last["jobs.energy_wh"] == pytest.approx(totals["jobs_wh"], rel=1e-12)
    per_job = sum(j["energy_wh"] for j in board["jobs"].values())
    assert per_job == pytest.approx(totals["jobs_wh"], rel=1e-9)
    assert last["jobs.done"] == 7


def test_a_crashing_job_fails_alone_and_the_queue_and_training_go_on(tmp_path, play, fake_workload):
    jobs = stream_file(
        tmp_path / "jobs.jsonl",
        [job(60, params={"mode": "crash"}, priority=9), job(60, params={"sleep": 0.02}), job(400)],
    )
    summary = fly(tmp_path, "crash", play, steps=30, jobs=jobs)
    events = job_events(tmp_path / "crash")
    assert events[1][-1]["state"] == "failed"
    assert "crashed on purpose" in events[1][-1]["detail"]
    assert events[2][-1]["state"] == "done" and events[3][-1]["state"] == "done"
    assert summary["training_steps"] == 30
    assert (tmp_path / "crash" / "jobs" / "2" / "out.json").is_file()
    assert not (tmp_path / "crash" / "jobs" / "1" / "out.json").exists()


def test_a_feasible_job_is_on_the_ground_before_its_deadline_and_an_infeasible_one_is_refused(
    tmp_path, play, fake_workload
):
    jobs = stream_file(
        tmp_path / "jobs.jsonl",
        [job(60, deadline_in_s=1800), job(90, deadline_in_s=20)],
    )
    fly(tmp_path, "ideal", play, steps=30, jobs=jobs)
    events = job_events(tmp_path / "ideal")
    assert list(events) == [1]  # the second never flew
    done = events[1][-1]
    assert done["state"] == "done"
    records = _records(tmp_path / "ideal")
    first, refused = records[0], records[1]
    assert done["t"] <= first["deadline_t"]
    assert first["state"] == "delivered" and first["deadline_met"] is True, first
    assert first["energy_wh"] > 0 and first["gpu_s"] > 0 and first["latency_s"] > 0
    assert refused["state"] == "refused" and "deadline" in refused["refused"]["reason"]


def test_over_the_ground_link_the_result_comes_down_in_a_contact_before_the_deadline(
    tmp_path, play, fake_workload
):
    jobs = stream_file(tmp_path / "jobs.jsonl", [job(60, deadline_in_s=3 * 3600, priority=7)])
    fly(tmp_path, "ground", play, hours=1.0, link="ground", warp=200.0, jobs=jobs)
    run = tmp_path / "ground"
    events = job_events(run)
    assert events[1][-1]["state"] == "done"
    with Archive(run / "ground.sqlite", readonly=True) as ground:
        rows = ground.db.execute("SELECT name, status, completed_t FROM files").fetchall()
    got = [(n, s, t) for n, s, t in rows if n == "jobs/1/out.json"]
    assert got and got[0][1] == "complete", rows
    record = _records(run)[0]
    assert got[0][2] <= record["deadline_t"]
    assert record["state"] == "delivered" and record["deadline_met"] is True, record
    assert (run / "downlink" / "jobs" / "1" / "out.json").read_bytes() == (
        run / "jobs" / "1" / "out.json"
    ).read_bytes()


def test_an_interrupted_mission_resumes_its_queue(tmp_path, play, fake_workload):
    jobs = stream_file(
        tmp_path / "jobs.jsonl",
        [
            job(60, params={"mode": "interrupt", "sleep": 0.1}, priority=9),  # longer than a tick
            job(60, params={"sleep": 0.02}, priority=1),
        ],
    )
    first = fly(tmp_path, "resume", play, steps=30, jobs=jobs)
    assert first["status"] == "interrupted"
    with Archive(tmp_path / "resume" / "telemetry.sqlite", readonly=True) as archive:
        board = archive.meta("jobs_board")
    assert {j["state"] for j in board["jobs"].values()} == {"running", "queued"}
    fly(tmp_path, "resume", None, resume="resume")
    events = job_events(tmp_path / "resume")
    assert events[1][-1]["state"] == "done" and events[2][-1]["state"] == "done"
    assert [e["state"] for e in events[1]].count("running") == 1  # not run twice


def _records(run: Path) -> list[dict]:
    """The ground's ledger of the stream's jobs."""
    from skyrack.jobs import ledger

    return sorted(ledger.jobs_of(RunDir(run), None), key=lambda r: r["id"])


def test_the_trainers_random_state_and_threads_come_back_whatever_a_job_does():
    import random

    import numpy as np

    from skyrack.jobs.service import KeepTrainerState

    before = (
        torch.get_rng_state(),
        np.random.get_state()[1].copy(),
        random.getstate(),
        torch.get_num_threads(),
    )
    with KeepTrainerState():
        torch.rand(10), np.random.rand(3), random.random()
        torch.set_num_threads(before[3] + 1)
    assert torch.equal(torch.get_rng_state(), before[0])
    assert (np.random.get_state()[1] == before[1]).all() and random.getstate() == before[2]
    assert torch.get_num_threads() == before[3]


def test_an_upset_job_runs_again_and_fails_only_after_its_last_attempt(tmp_path, fake_workload):
    from skyrack.jobs.service import ATTEMPTS, JobService
    from skyrack.jobs.spec import JobSpec

    with Archive(tmp_path / "telemetry.sqlite") as archive:
        board = JobService(archive, tmp_path / "jobs", gpu_bits=8e6 * 8, price=lambda s: s)
        spec = JobSpec(1, "acme", "infer", {"sleep": 0.01}, b"", 0.0, 1e6)
        board.submit(spec.encode(), 10.0)
        quiet = dict(fraction=1.0, ratio=100.0, in_saa=False)
        board.tick(20.0, 0.1, upset_rate=0.0, **quiet)  # runs for real, then pays part of its GPU time
        job = board.state["jobs"]["1"]
        assert job["state"] == "running" and 0 < job["paid_s"] < job["need_s"]
        for attempt in range(2, ATTEMPTS + 1):  # an upset a second over its whole memory: surely hit
            board.tick(30.0 + attempt, 0.1, upset_rate=1e3, **quiet)
            assert job["state"] == "running" and job["attempt"] == attempt and job["paid_s"] == 0.0
        board.tick(40.0, 0.1, upset_rate=1e3, **quiet)
        assert job["state"] == "failed" and f"attempt {ATTEMPTS} of {ATTEMPTS}" in job["reason"]
        billed = board._accounting(job)
        assert billed["attempts"] == ATTEMPTS and billed["gpu_s"] == pytest.approx(0.1 * (ATTEMPTS + 1))
        states = [e.data["state"] for e in board.take_events()]
        assert states == ["running"] * ATTEMPTS + ["failed"]  # ran, then each upset: runs again

        spec2 = JobSpec(2, "acme", "infer", {"sleep": 0.01}, b"", 0.0, 1e6)
        board.submit(spec2.encode(), 50.0)
        board.tick(60.0, 0.1, upset_rate=0.0, **quiet)
        second = board.state["jobs"]["2"]
        board.tick(61.0, 0.1, upset_rate=1e3, **quiet)  # hit once, then a quiet sky: it is done
        while second["state"] == "running":
            board.tick(62.0, 10.0, upset_rate=0.0, **quiet)
        assert second["state"] == "done" and second["attempt"] == 2
