"""Real runs: one torchrun per satellite, gloo over the coordinator's store."""

import json
import socket
import sqlite3

import pytest

from skyrack.cli import main
from skyrack.constellation.launch import Options, prepare, train
from skyrack.faults.campaign import generated_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "play.txt"
    path.write_text(generated_corpus(), encoding="utf-8")
    return str(path)


def _bad(capsys, *argv):
    assert main(["constellation", "train", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_bad_input_is_one_line_and_exit_2(capsys, corpus):
    assert "at least 2" in _bad(capsys, "--satellites", "1")
    assert "--inner-steps" in _bad(capsys, "--inner-steps", "0")
    assert "never joins" in _bad(capsys, "--formation", "walker", "--satellites", "2", "--data", corpus)
    assert "divide" in _bad(capsys, "--inner-steps", "10", "--fragments", "3")
    assert "--stress" in _bad(capsys, "--stress", "-1")
    assert "--lr" in _bad(capsys, "--lr", "0")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert "in use" in _bad(
            capsys, "--port", str(port), "--data", corpus, "--steps", "4", "--inner-steps", "2"
        )


def test_the_plan_drops_one_satellite_a_round_in_turn(corpus):
    doc, _ = prepare(
        Options(satellites=3, inner_steps=4, steps=24, data=corpus, dropout_every_round=True),
        say=lambda m: None,
    )
    rounds = doc["rounds"]
    assert [r["dropped"] for r in rounds] == [[0], [1], [2], [0], [1], [2]]
    assert all(len(r["participants"]) == 2 and r["sync_t"] is not None for r in rounds)
    # the clock: 4 steps of 2 s, then the sync's bytes over a 1.6 Tbit/s cluster link
    r0 = rounds[0]
    assert r0["compute_end_t"] - r0["start_t"] == pytest.approx(8.0)
    assert r0["wire_bytes"] == pytest.approx(doc["payload_bytes"][0])  # 2 (n - 1) / n with n = 2
    # (absolute times near 1.8e9 s carry ~2e-7 s of rounding)
    assert r0["end_t"] - r0["sync_t"] == pytest.approx(doc["payload_bytes"][0] * 8 / 1.6e12, abs=5e-7)


def test_a_run_trains_counts_its_bytes_and_heals_a_killed_satellite(tmp_path, corpus):
    opts = Options(
        satellites=2,
        algo="diloco",
        inner_steps=5,
        steps=20,
        data=corpus,
        runs_dir=str(tmp_path),
        run_id="run",
        kill="2@1",  # satellite 2's process dies halfway through round 1
        gone_s=10.0,
        timeout_s=90.0,
    )
    s = train(opts, say=lambda m: None, live=False)
    a, b = s["per_satellite"]
    # the survivor went on: four synced rounds; each with a peer all-reduced every parameter in fp32
    assert s["syncs"] == 4
    # (it is out of round 1, where it dies, and 2, where it reboots; round 3 waits for it)
    assert [r["members"] for r in s["rounds"]] == [[0, 1], [0], [0], [0, 1]]
    assert a["bytes_allreduced"] == 2 * s["parameters"] * 4
    # the killed one came back, healed from its peer, and holds the same model at the end
    assert b["killed"] == [1] and b["restarts"] == 1 and b["heals"] == 1 and b["exit_code"] == 0
    assert a["digest"] == b["digest"] and s["models_agree"]
    # the heal's state went over the links too: two synced rounds of two all-reduced, plus it
    assert b["heal_bytes"] > s["parameters"] * 4 and s["heal_bytes_total"] == b["heal_bytes"]
    assert s["link_bytes_total"] == 2 * (2 * s["parameters"] * 4) + b["heal_bytes"]
    assert s["bytes_per_satellite"] == b["bytes_allreduced"] + b["heal_bytes"]
    # the loss fell
    first_train = s["curves"]["train_loss"][0]
    assert s["final_val_loss"] < first_train - 0.5
    # outputs: the report, and an archive per satellite that the ground server can read
    run = tmp_path / "run"
    assert "Timeline" in (run / "report.html").read_text()
    assert json.loads((run / "summary.json").read_text())["syncs"] == 4
    for k in (1, 2):
        db = sqlite3.connect(tmp_path / f"run-sat-{k}" / "telemetry.sqlite")
        frames = db.execute("SELECT COUNT(*) FROM frames").fetchone()[0]
        steps = db.execute("SELECT MAX(value) FROM samples WHERE channel = 'train.step'").fetchone()[0]
        assert frames >= 2 and steps >= 10
    assert any(e["kind"] == "heal" for e in s["timeline"])


@pytest.mark.slow
def test_ddp_across_four_processes_all_reduces_every_step(tmp_path, corpus):
    opts = Options(satellites=4, algo="ddp", steps=12, data=corpus, runs_dir=str(tmp_path), run_id="ddp")
    s = train(opts, say=lambda m: None, live=False)
    assert s["syncs"] == 12 and s["models_agree"]
    assert all(p["bytes_allreduced"] == 12 * 4 * s["parameters"] for p in s["per_satellite"])
    assert s["final_val_loss"] < s["curves"]["train_loss"][0]


def test_syncs_wait_for_a_link_window(corpus):
    # two satellites in counter-rotating planes see each other for minutes twice an orbit
    doc, sky = prepare(
        Options(satellites=2, formation="walker", planes=2, inner_steps=50, steps=300, data=corpus),
        say=lambda m: None,
    )
    rounds = doc["rounds"]
    assert any(r["wait_s"] > 600 for r in rounds)
    for r in rounds:
        assert r["sync_t"] is not None
        up, _ = sky.link_state(sky.tick_of(r["sync_t"]))
        assert up[0, 1]
        if r["wait_s"] > 0:
            up, _ = sky.link_state(sky.tick_of(r["compute_end_t"]))
            assert not up[0, 1]
        assert r["end_t"] > r["sync_t"]  # the bytes take time at the window's rate


def test_each_satellite_recovers_its_own_faults_to_the_bit(tmp_path, corpus):
    """Compute faults (a flipped bit in a GEMM output) and memory upsets (a flipped bit in a
    parameter between inner steps) on both satellites: with protection, every one is detected
    and the run ends with the fault-free run's model, bit for bit; without, it does not."""

    def run(run_id, **kw):
        opts = Options(
            satellites=2, inner_steps=5, steps=20, data=corpus, runs_dir=str(tmp_path), run_id=run_id, **kw
        )
        return train(opts, say=lambda m: None, live=False)

    clean, hit, bare = run("clean"), run("hit", faults=8), run("bare", faults=8, protect=False)
    digests = {
        name: {p["digest"] for p in s["per_satellite"]}
        for name, s in (("clean", clean), ("hit", hit), ("bare", bare))
    }
    assert all(len(d) == 1 for d in digests.values())  # the satellites agree within each run
    assert digests["hit"] == digests["clean"] != digests["bare"]
    injected = sum(p["faults_injected"] for p in hit["per_satellite"])
    assert injected == 8 == sum(p["faults_injected"] for p in bare["per_satellite"])
    assert sum(p["faults_detected"] for p in hit["per_satellite"]) >= injected
    assert sum(p["replayed_steps"] for p in hit["per_satellite"]) > 0  # memory upsets went back and replayed
    assert sum(p["recomputed_steps"] for p in hit["per_satellite"]) > 0  # compute faults recomputed
    assert sum(p["faults_detected"] for p in bare["per_satellite"]) == 0
    # each satellite's archive counts its own faults as a mission's does
    for k, p in enumerate(hit["per_satellite"], start=1):
        db = sqlite3.connect(tmp_path / f"hit-sat-{k}" / "telemetry.sqlite")
        top = dict(
            db.execute(
                "SELECT channel, MAX(value) FROM samples WHERE channel LIKE 'faults.%' GROUP BY channel"
            )
        )
        assert top["faults.injected"] == p["faults_injected"]
        assert top["faults.detected"] == top["faults.recovered"] == p["faults_detected"]


def test_radiation_faults_come_from_each_satellites_own_upset_rate(corpus):
    from skyrack.constellation.protect import radiation_faults

    doc, sky = prepare(
        Options(satellites=3, inner_steps=10, steps=200, data=corpus, stress=2e4), say=lambda m: None
    )
    faults = doc["faults"]
    assert faults and len({f["id"] for f in faults}) == len(faults)
    for f in faults:  # each where its satellite trains, at one of the round's inner steps
        assert f["sat"] in doc["rounds"][f["round"]]["participants"] and 0 <= f["step"] < 10
    assert (
        prepare(Options(satellites=3, inner_steps=10, steps=200, data=corpus), say=lambda m: None)[0][
            "faults"
        ]
        == []
    )
    # the exposure integrates the satellite's rate over the ticks a span overlaps
    t0 = sky.start_t + 3.5 * sky.tick_s
    t1, t2 = t0 + 2.25 * sky.tick_s, t0 + 7.5 * sky.tick_s
    assert sky.upsets(1, t0, t2) == pytest.approx(sky.upsets(1, t0, t1) + sky.upsets(1, t1, t2))
    k = sky.tick_of(t0)
    tick = sky.start_t + k * sky.tick_s
    assert sky.upsets(1, tick, tick + sky.tick_s) == pytest.approx(
        sky.tracks[1].frames[k]["radiation.upset_rate"] * sky.tick_s
    )
    # Poisson counts of mean exposure x stress, per satellite and round
    exposures = [[0.0, 0.5, 2.0]] * 400
    drawn = radiation_faults(exposures, 1.0, 7, seed=3)
    per_sat = [sum(f["sat"] == s for f in drawn) for s in range(3)]
    assert per_sat[0] == 0 and abs(per_sat[1] - 200) < 5 * 200**0.5 and abs(per_sat[2] - 800) < 5 * 800**0.5
    assert drawn == radiation_faults(exposures, 1.0, 7, seed=3)
    assert {f["kind"] for f in drawn} == {"compute", "memory"} and all(0 <= f["step"] < 7 for f in drawn)


def test_a_satellite_restarted_after_its_final_record_exits_at_once(tmp_path, corpus):
    """torchrun restarts a worker that dies in the interpreter's teardown, after its final
    record: the new incarnation must leave at once, not wait for a round that never comes."""
    import os
    import subprocess
    import sys
    import time

    from skyrack.constellation import protocol
    from skyrack.constellation.launch import _free_port, _store

    doc, _ = prepare(Options(satellites=2, inner_steps=2, steps=4, data=corpus), say=lambda m: None)
    port = _free_port()
    store = _store(port)
    doc["store"] = f"127.0.0.1:{port}"
    (tmp_path / "plan.json").write_text(json.dumps(doc), encoding="utf-8")
    protocol.put(store, "current", len(doc["rounds"]) - 1)
    protocol.put(store, "committed", len(doc["rounds"]) - 1)
    protocol.Member(store, 1, 0).finished()
    env = dict(os.environ, TORCHELASTIC_RESTART_COUNT="1", OMP_NUM_THREADS="1")
    t0 = time.time()
    out = subprocess.run(
        [sys.executable, "-m", "skyrack.constellation.worker", str(tmp_path), "1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "nothing to redo" in out.stdout
    assert time.time() - t0 < 60  # (without the check it waits timeout_s for a donor's state)
    assert not (tmp_path / "sat-1.jsonl").read_text().strip()  # no restart record: it never rejoined


def test_the_live_view_logs_a_block_only_when_something_changed():
    import io

    from skyrack.constellation import protocol
    from skyrack.constellation.launch import View, _free_port, _store

    port = _free_port()
    store = _store(port)
    out = io.StringIO()  # not a terminal: blocks appended, never redrawn in place
    view = View(port, 2, ["Sat-1", "Sat-2"], True, stream=out)
    view.rounds = 3
    protocol.put(store, "status/0", {"inc": 0, "round": 0, "state": "computing", "loss": 3.1, "tokens": 512})
    view._draw(store)
    view._draw(store)
    assert out.getvalue().count("round 1/3") == 1 and "Sat-2            starting" in out.getvalue()
    protocol.put(store, "status/1", {"inc": 1, "round": 0, "state": "computing", "loss": 3.2, "tokens": 256})
    view._draw(store)
    assert out.getvalue().count("round 1/3") == 2 and "restarted x1" in out.getvalue()
