"""`skyrack faults campaign` end to end: every fault accounted for, and a campaign killed with
SIGKILL mid-run resumes to the same classification as one never interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

from tests.conftest import REPO, assert_clean_error

ARGS = ["faults", "campaign", "--faults", "10", "--steps", "40", "--no-control", "--json"]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}  # one thread: the same bits every run


def _campaign(*extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "skyrack", *ARGS, *extra],
        cwd=REPO,
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return json.loads(out)


def test_campaign_killed_mid_run_resumes_and_accounts_for_every_fault(tmp_path):
    whole = _campaign("--dir", str(tmp_path / "whole"))
    killed = _campaign("--dir", str(tmp_path / "killed"))
    state = tmp_path / "killed" / "faulty" / "state"
    deadline = time.monotonic() + 300
    while not (state / "ckpt-000020").exists():  # well into the run under injection
        assert killed.poll() is None and time.monotonic() < deadline, killed.stderr.read()
        time.sleep(0.2)
    os.kill(killed.pid, signal.SIGKILL)
    assert killed.wait(30) == -signal.SIGKILL
    assert not (tmp_path / "killed" / "result.json").exists()
    r = _finish(whole)
    resumed = _finish(_campaign("--resume", str(tmp_path / "killed")))

    total = r["table"]["total"]
    assert total["injected"] == 10 == len(r["faults"])
    assert total["masked"] + total["recovered"] + total["rounding"] + total["silent"] == 10
    assert total["silent"] == 0 and r["bitwise_equal_final_state"]
    assert {f["kind"] for f in r["faults"]} == {"memory", "compute", "interrupt", "storage"}
    assert resumed["table"] == r["table"]

    def key(f):  # the campaign's own directory differs between the two
        return (
            f["id"],
            f["kind"],
            f["step"],
            f["outcome"],
            f["where"].replace("/killed/", "/whole/"),
            f["bits"],
        )

    assert [key(f) for f in resumed["faults"]] == [key(f) for f in r["faults"]]
    assert resumed["faulty"]["val_loss"] == r["faulty"]["val_loss"]


def test_campaign_table_and_bad_input(cli, tmp_path):
    result = cli("faults", "campaign", "--faults", "4", "--steps", "30", "--no-control", timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    header = lines.index(next(line for line in lines if line.startswith("class ")))
    assert lines[header].split() == ["class", "injected", "masked", "recovered", "rounding", "silent"]
    rows = {}
    for line in lines[header + 1 :]:
        if not line.strip():
            break
        kind, *counts = line.split()
        rows[kind] = [int(c) for c in counts]
    total = rows.pop("total")
    assert total[0] == 4  # the four faults asked for were injected
    assert [sum(column) for column in zip(*rows.values())] == total  # the classes add up to the total
    for kind, (injected, *outcomes) in {**rows, "total": total}.items():
        assert sum(outcomes) == injected, kind  # every fault has exactly one outcome
    assert any(line.startswith("final val loss: fault-free ") for line in lines)
    assert_clean_error(cli("faults", "campaign", "--steps", "0"), "--steps")
    assert_clean_error(cli("faults", "campaign", "--resume", str(tmp_path / "nothing")), "no fault campaign")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    assert_clean_error(cli("faults", "campaign", "--dir", str(tmp_path / "busy")), "not empty")
