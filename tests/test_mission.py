"""The mission runner end to end, in real subprocesses: a short mission with the tiny model on a
small generated play, commands from the ground while it flies, SIGKILL and resume, the
telemetry/events readers, and the one-line errors."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, assert_clean_error, run_cli

from skyrack.errors import UserError
from skyrack.telemetry.archive import Archive
from skyrack.telemetry.dictionary import CHANNEL, CHANNELS, SEVERITIES
from skyrack.telemetry.runs import RunMeta, choose_run

TICK = 30.0
FAST = {"OMP_NUM_THREADS": "1"}  # the tiny model runs best on one thread of a busy machine


@pytest.fixture(scope="module")
def play(tmp_path_factory) -> Path:
    from skyrack.faults.campaign import generated_corpus

    path = tmp_path_factory.mktemp("data") / "play.txt"
    path.write_text(generated_corpus(600))
    return path


def mission_args(runs: Path, run_id: str, play: Path, *extra: str) -> list[str]:
    return [
        "mission",
        "--preset",
        "tiny",
        "--data",
        str(play),
        "--runs-dir",
        str(runs),
        "--run-id",
        run_id,
        "--frame-interval",
        str(TICK),
        "--no-dashboard",
        *extra,
    ]


def start(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), **FAST}
    return subprocess.Popen(
        [sys.executable, "-m", "skyrack", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(predicate, timeout: float = 60.0, every: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def frames(archive_path: Path) -> int:
    if not archive_path.exists():
        return 0
    try:
        with Archive(archive_path, readonly=True) as archive:
            return archive.frame_count() if archive.meta("status") == "running" else 0
    except Exception:
        return 0


@pytest.fixture(scope="module")
def flown(tmp_path_factory, play):
    """One mission over an eclipse and the SAA, with every command queued while it flies."""
    runs = tmp_path_factory.mktemp("runs")
    # a low battery: the governor pauses the GPU through the first eclipse and resumes in sunlight
    proc = start(
        mission_args(
            runs, "m1", play, "--hours", "1.7", "--warp", "100000", "--stress", "60", "--soc", "0.3", "--json"
        )
    )
    archive_path = runs / "m1" / "telemetry.sqlite"
    try:
        wait_for(lambda: frames(archive_path) >= 2 or proc.poll() is not None)
        queued = []
        with Archive(archive_path) as ground:
            for name, args in (
                ("ping", {}),
                ("pause_training", {}),
                ("resume_training", {}),
                ("checkpoint_now", {}),
                ("set_power_cap", {"cap_w": 300.0}),
                ("set_stress", {"factor": 80.0}),
            ):
                queued.append(ground.queue_command(name, args, now=0.0))
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    return runs, runs / "m1", json.loads(out), queued


def test_mission_archive_matches_the_dictionary_and_records_its_events(flown):
    runs, run, summary, _ = flown
    with Archive(run / "telemetry.sqlite", readonly=True) as archive:
        n = archive.frame_count()
        assert set(archive.latest()) == {c.name for c in CHANNELS}
        per_channel = dict(
            archive.db.execute("SELECT channel, COUNT(*) FROM samples GROUP BY channel").fetchall()
        )
        assert per_channel == {c.name: n for c in CHANNELS}
        assert archive.meta("status") == "finished"
        for key in (
            "run_id",
            "profile",
            "tle_file",
            "start_t",
            "end_t",
            "frame_interval_s",
            "warp",
            "preset",
            "stress",
            "wall_started",
        ):
            assert archive.meta(key, "missing") != "missing", key
        names = [e["name"] for e in archive.events()]
        governor = [e for e in archive.events() if e["name"] == "governor"]
        steps = [v for _, _, v in archive.history("train.step")]
    assert n == round(1.7 * 3600 / TICK)
    for name in (
        "eclipse_entry",
        "eclipse_exit",
        "saa_entry",
        "saa_exit",
        "governor",
        "fault_injected",
        "fault_recovered",
        "checkpoint",
        "mission",
        "command",
    ):
        assert name in names, name
    assert governor[0]["data"]["reason"]
    assert [g["data"]["action"] for g in governor][:2] == ["pause", "resume"]
    assert max(steps) > 5  # it trained
    assert summary["frames"] == n and summary["frames_contiguous"]
    assert summary["eclipses"] >= 1 and summary["saa_crossings"] >= 1
    assert summary["faults"]["injected"] > 0 and summary["faults"]["recovered"] > 0
    assert (run / "summary.json").is_file() and (run / "samples.txt").read_text().strip()
    assert not (run / "mission.lock").exists()


def test_commands_from_the_ground_complete_and_take_effect(flown):
    _, run, summary, queued = flown
    with Archive(run / "telemetry.sqlite", readonly=True) as archive:
        done = {c["id"]: c for c in archive.commands()}
        caps = archive.history("gpu.cap_w")
        operator = archive.meta("operator")
        command_events = [e for e in archive.events() if e["name"] == "command"]
    for cmd in queued:
        assert done[cmd["id"]]["status"] == "completed", done[cmd["id"]]
        states = [e["data"]["status"] for e in command_events if e["data"]["id"] == cmd["id"]]
        assert states == ["dispatched", "completed"]
    assert done[queued[0]["id"]]["result"] == "pong"
    assert operator == {"paused": False, "cap_limit_w": 300.0, "stress": 80.0}  # kept for a resume
    applied = done[queued[4]["id"]]["updated_t"]
    after = [v for _, t, v in caps if t > applied]
    assert after and max(after) == 300.0  # the governor would allow more; the operator's limit holds
    with Archive(run / "telemetry.sqlite", readonly=True) as archive:
        steps = [v for _, _, v in archive.history("train.step")]
    paused = [i for i in range(1, len(caps)) if caps[i][2] == 0.0]
    assert paused and all(steps[i] == steps[i - 1] for i in paused)  # no training while paused
    assert summary["commands"]["completed"] == len(queued)


def test_report_is_self_contained(flown):
    _, run, _, _ = flown
    html = (run / "report.html").read_text()
    assert html.startswith("<!doctype html>") and "<svg" in html
    assert not re.search(r"https?://|src=|href=|url\(|@import|<script", html, re.I)
    for figure in (
        "Ground track",
        "Power and battery",
        "Temperature and the governor",
        "Training",
        "Faults",
        "What the satellite learned to write",
    ):
        assert figure in html
    assert "heaters W" in html and "heaters (peak" in html  # the heaters' power, charted and summed


def test_telemetry_and_events_commands_return_what_was_written(flown):
    runs, run, _, _ = flown
    with Archive(run / "telemetry.sqlite", readonly=True) as archive:
        history = archive.history("power.battery_soc")
        events = archive.events()
    result = run_cli("telemetry", "m1", "--runs-dir", str(runs), "--channel", "power.battery_soc", "--csv")
    assert result.returncode == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["seq", "t", "time", "power.battery_soc"]
    assert [(int(s), float(t), float(v)) for s, t, _, v in rows[1:]] == history

    t_mid = history[len(history) // 2][1]
    result = run_cli("telemetry", str(run), "--channel", "power.battery_soc", "--json", "--since", str(t_mid))
    payload = json.loads(result.stdout)
    assert payload["unit"] == CHANNEL["power.battery_soc"].unit
    assert [(r["seq"], r["t"], r["value"]) for r in payload["rows"]] == [h for h in history if h[1] >= t_mid]

    result = run_cli("events", "m1", "--runs-dir", str(runs), "--json")
    got = json.loads(result.stdout)["events"]
    assert [{k: v for k, v in e.items() if k != "time"} for e in got] == events
    assert all(e["time"].endswith("Z") for e in got)
    result = run_cli("events", "m1", "--runs-dir", str(runs), "--severity", "warning", "--json")
    got = json.loads(result.stdout)["events"]
    allowed = SEVERITIES[SEVERITIES.index("warning") :]
    assert got and all(e["severity"] in allowed for e in got)
    assert len(got) == sum(1 for e in events if e["severity"] in allowed)
    text = run_cli("events", "m1", "--runs-dir", str(runs)).stdout.splitlines()
    assert len(text) == len(events) and "entering eclipse" in "\n".join(text)


def test_sigkill_then_resume_continues_without_duplicate_or_missing_frames(tmp_path, play):
    runs = tmp_path / "runs"
    args = mission_args(runs, "k1", play, "--steps", "40", "--warp", "150", "--stress", "20")
    proc = start(args)
    archive_path = runs / "k1" / "telemetry.sqlite"
    try:
        wait_for(lambda: frames(archive_path) >= 12 or proc.poll() is not None)
        assert proc.poll() is None, proc.communicate()[1]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    with Archive(archive_path, readonly=True) as archive:
        killed_at = archive.frame_count()
        step_at_kill = archive.latest()["train.step"][2]
    assert (runs / "k1" / "mission.lock").exists()  # left behind by the dead process: stale
    # Readers see the killed run as interrupted, not "running" forever (the archive still says so).
    assert RunMeta.read(runs / "k1").status == "interrupted"
    assert choose_run(runs).run_id == "k1"
    with pytest.raises(UserError, match="no running mission"):
        choose_run(runs, live=True)

    result = run_cli(
        "mission",
        "--resume",
        "k1",
        "--runs-dir",
        str(runs),
        "--stress",
        "30",  # the options a resume may change are applied
        "--warp",
        "160",
        "--no-dashboard",
        "--json",
        env=FAST,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    with Archive(archive_path, readonly=True) as archive:
        rows = archive.db.execute("SELECT seq, t FROM frames ORDER BY seq").fetchall()
        start_t = archive.meta("start_t")
        resumed = [
            e for e in archive.events() if e["name"] == "mission" and "resumed" in e["data"]["message"]
        ]
        steps = [v for _, _, v in archive.history("train.step")]
    assert [s for s, _ in rows] == list(range(1, len(rows) + 1))
    assert [t for _, t in rows] == [start_t + k * TICK for k in range(len(rows))]
    assert len(rows) > killed_at and len(resumed) == 1
    assert resumed[0]["data"]["message"].endswith("now warp x160, stress x30")
    assert summary["stress"] == 30 and summary["warp"] == 160
    assert steps[-1] == 40 and step_at_kill < 40
    assert summary["frames"] == len(rows) and summary["frames_contiguous"] and summary["sessions"] == 2
    assert summary["training_steps"] == 40 and summary["status"] == "finished"
    # The realistic link resumed where it stood: the ground holds every frame and event once.
    with Archive(runs / "k1" / "ground.sqlite", readonly=True) as ground:
        got = ground.db.execute("SELECT seq FROM frames ORDER BY seq").fetchall()
        events = ground.db.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM events").fetchone()
        receipts = ground.db.execute("SELECT COUNT(*) FROM receipts WHERE kind='hk'").fetchone()[0]
    assert [s for (s,) in got] == [s for s, _ in rows] and receipts == len(rows)
    with Archive(archive_path, readonly=True) as archive:
        assert events == (archive.last_event_id(), archive.last_event_id())


def test_lock_keeps_one_mission_per_run_directory(tmp_path):
    from skyrack.mission.rundir import RunLock
    from skyrack.telemetry.runs import RunDir

    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    first = RunLock(run)
    first.acquire()
    with pytest.raises(UserError, match="locked"):
        RunLock(run).acquire()
    first.release()
    (run.path / "mission.lock").write_text(json.dumps({"pid": 2**22 + 12345, "host": socket.gethostname()}))
    with RunLock(run):  # a dead holder's lock is stale
        pass
    assert not (run.path / "mission.lock").exists()


def test_clear_errors(tmp_path, play, flown, capsys):
    runs, run, _, _ = flown
    # in a real subprocess, as a person meets them
    assert_clean_error(
        run_cli("telemetry", "m1", "--runs-dir", str(runs), "--channel", "nope"), "unknown channel"
    )
    assert_clean_error(run_cli("mission", "--resume", "ghost", "--runs-dir", str(runs)), "no mission run")
    locked = runs / "busy"
    locked.mkdir()
    (locked / "mission.lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    assert_clean_error(run_cli(*mission_args(runs, "busy", play, "--hours", "0.1")), "locked")
    assert not (locked / "telemetry.sqlite").exists()

    # the rest through the same entry point, in this process (each a one-line error, exit 2)
    from skyrack.cli import main

    def refused(fragment: str, *argv: str) -> None:
        assert main(list(argv)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and fragment.lower() in err[0].lower(), err

    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    refused("no mission run", "telemetry", "ghost", "--runs-dir", str(runs), "--channel", "train.loss")
    refused(
        "malformed time",
        "telemetry",
        "m1",
        "--runs-dir",
        str(runs),
        "--channel",
        "train.loss",
        "--since",
        "yesterday",
    )
    refused("unknown severity", "events", "m1", "--runs-dir", str(runs), "--severity", "loud")
    refused("finished", "mission", "--resume", "m1", "--runs-dir", str(runs))
    for option in (["--seed", "7"], ["--preset", "tiny"], ["--hours", "3"], ["--soc", "0.9"]):
        refused(f"{option[0]} cannot change", "mission", "--resume", "m1", "--runs-dir", str(runs), *option)
    refused("--stress", "mission", "--resume", "m1", "--runs-dir", str(runs), "--stress", "-1")
    refused("already exists", *mission_args(runs, "m1", play))
    refused("not a directory", *mission_args(not_a_dir, "x", play))
    refused("bad run id", *mission_args(runs, "../x", play))
    refused("not found", *mission_args(runs, "x", tmp_path / "missing.txt"))
    refused("--warp", *mission_args(runs, "x", play, "--warp", "-1"))
    assert not (runs / "x").exists()


def test_full_disk_is_a_clear_error_and_the_archive_stays_whole(tmp_path, play):
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        result = run_cli(
            *mission_args(disk, "full", play, "--hours", "3", "--warp", "20", "--stress", "0"),
            env=FAST,
            timeout=180,
        )
        assert_clean_error(result, "no space left")
        archive_path = disk / "full" / "telemetry.sqlite"
        if archive_path.exists():
            with Archive(archive_path, readonly=True) as archive:
                assert archive.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
                seqs = [s for (s,) in archive.db.execute("SELECT seq FROM frames ORDER BY seq")]
                assert seqs == list(range(1, len(seqs) + 1))
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_step_clock_turns_throughput_into_steps_per_tick():
    from skyrack.mission.clock import StepClock

    def steps_in(clock, ticks, fraction, wall=0.05):
        n = 0
        for _ in range(ticks):
            clock.grant(10.0, fraction)
            while clock.due():
                clock.spent(wall)
                n += 1
        return n

    clock = StepClock(warp=40.0, window=5)
    assert steps_in(clock, 5, 1.0) == 5  # calibration: one step a tick
    # now one 0.05 s step stands for 40 x 0.05 = 2 simulated seconds at full power
    assert steps_in(clock, 100, 1.0) == 500
    assert steps_in(clock, 100, 0.5) == 250
    assert steps_in(clock, 100, 0.0) == 0 and clock.credit_s == 0.0


def test_a_cap_that_would_run_the_die_below_its_minimum_waits_for_the_heaters():
    from skyrack.bus.thermal import KELVIN
    from skyrack.geo.regions import RegionIndex
    from skyrack.mission.spacecraft import Spacecraft
    from skyrack.orbit.twin import OrbitTwin
    from skyrack.profile import load_profile

    profile = load_profile("starcloud-1")
    start = 1785077369.0
    craft = Spacecraft(
        profile,
        OrbitTwin(profile.satellite),
        RegionIndex.load(),
        start_s=start,
        end_s=start + 600,
        tick_s=10.0,
        initial_soc=0.9,
    )
    spec = craft.spec
    low, full = spec.gpu_min_power_w, spec.gpu_max_power_w
    craft.thermal.radiator_k = spec.gpu_min_operating_temp_c + KELVIN - 40.0  # cold-soaked in eclipse
    assert craft.gpu_temp_c(low) < spec.gpu_min_operating_temp_c
    assert craft.runnable_cap(low) == 0.0 and craft.runnable_cap(0.0) == 0.0
    craft.thermal.radiator_k = spec.gpu_min_operating_temp_c + KELVIN + 5.0  # kept warm
    assert craft.runnable_cap(low) == low and craft.runnable_cap(full) == full


def test_dashboard_redraws_in_place_on_a_terminal_and_logs_lines_elsewhere():
    from skyrack.mission.dashboard import Dashboard
    from skyrack.mission.loop import Snapshot

    values = {
        c.name: (
            0.5 if c.type == "float" else 3 if c.type == "int" else False if c.type == "bool" else "Chad"
        )
        for c in CHANNELS
    }
    snap = Snapshot(
        values=values,
        t=1.785e9,
        start_t=1.785e9,
        end_t=1.785e9 + 600,
        tick_s=10.0,
        frames=1,
        light_change=("eclipse", 300.0),
        eta_s=65.0,
        target_steps=100,
        run_id="r1",
        satellite="SAT",
    )

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    term = Terminal()
    view = Dashboard(term, refresh_s=0.0)
    view.update(snap)
    view.update(snap)
    text = term.getvalue()
    assert text.count("\x1b[8F") == 1  # the second frame overwrote the first
    for shown in (
        "SAT",
        "r1",
        "Chad",
        "eclipse in 5 min",
        "50%",
        "cap 0 W",
        "injected 3",
        "step 3/100",
        "ETA 1:05",
    ):
        assert shown in text, shown
    plain = io.StringIO()
    view = Dashboard(plain, log_every_s=3600.0)
    view.update(snap)
    view.update(snap)
    assert plain.getvalue().count("\n") == 1 and "\x1b" not in plain.getvalue()


def test_a_running_run_whose_writer_died_reads_as_interrupted(tmp_path):
    from skyrack.telemetry.runs import RunDir

    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    with Archive(run.archive) as archive:
        RunMeta(run_id="r", status="running").write(archive)
    assert RunMeta.read(run).status == "running"  # no lock: nothing to judge by (a test flight)
    me = {"pid": os.getpid(), "host": socket.gethostname()}
    run.lock.write_text(json.dumps(me))
    assert RunMeta.read(run).status == "running" and not run.writer_gone()
    run.lock.write_text(json.dumps({**me, "pid": 2**22 + 12345}))  # beyond pid_max: never alive
    assert RunMeta.read(run).status == "interrupted" and run.writer_gone()
    run.lock.write_text(json.dumps({**me, "pid": 2**22 + 12345, "host": "elsewhere"}))
    assert RunMeta.read(run).status == "running"  # another host's process cannot be checked
    with Archive(run.archive) as archive:
        assert archive.meta("status") == "running"  # reading changed nothing
