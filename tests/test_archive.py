"""The telemetry archive: the dictionary is the schema, frames are atomic, crashes lose nothing."""

import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from conftest import REPO

from skyrack.errors import UserError
from skyrack.telemetry.archive import Archive, Event
from skyrack.telemetry.dictionary import CHANNEL, CHANNELS, COMMANDS, EVENTS


def test_dictionary_is_well_formed():
    assert len({c.name for c in CHANNELS}) == len(CHANNELS)
    assert len({e.name for e in EVENTS}) == len(EVENTS)
    assert {"ping", "pause_training", "set_power_cap"} <= {c.name for c in COMMANDS}
    soc = CHANNEL["power.battery_soc"]
    assert (
        soc.limit_state(0.9) == "nominal"
        and soc.limit_state(0.3) == "yellow"
        and soc.limit_state(0.2) == "red"
    )


def test_frames_round_trip_with_events(tmp_path):
    path = tmp_path / "telemetry.sqlite"
    with Archive(path) as archive:
        for k in range(5):
            events = [Event("eclipse_entry", {})] if k == 3 else []
            archive.write_frame(1000.0 + k, {"orbit.alt_km": 500.0 + k, "orbit.region": "Chad"}, events)
    with Archive(path, readonly=True) as archive:
        assert archive.frame_count() == 5 and archive.last_frame() == (5, 1004.0)
        assert [v for _, _, v in archive.history("orbit.alt_km")] == [500.0, 501.0, 502.0, 503.0, 504.0]
        assert [t for _, t, _ in archive.history("orbit.alt_km", since=1001, until=1003)] == [
            1001,
            1002,
            1003,
        ]
        assert len(archive.history("orbit.alt_km", after_seq=3, limit=10)) == 2
        assert archive.latest()["orbit.region"] == (5, 1004.0, "Chad")
        (event,) = archive.events()
        assert (
            event["name"] == "eclipse_entry"
            and event["t"] == 1003.0
            and event["message"] == "entering eclipse"
        )
        assert archive.events(severity="warning") == []
        names = {row[0] for row in archive.db.execute("SELECT name FROM channels")}
        assert names == set(CHANNEL)


def test_unknown_channel_is_refused(tmp_path):
    with Archive(tmp_path / "a.sqlite") as archive:
        with pytest.raises(ValueError):
            archive.write_frame(0.0, {"orbit.warp_drive": 1})
        with pytest.raises(UserError):
            archive.history("orbit.warp_drive")
        assert archive.frame_count() == 0


WRITER = """
import sys, time
sys.path.insert(0, {repo!r})
from skyrack.telemetry.archive import Archive
archive = Archive({path!r})
k = 0
while True:
    archive.write_frame(float(k), {{"train.step": k, "orbit.alt_km": 500.0, "orbit.region": "x" * 50}})
    k += 1
"""


def test_sigkill_mid_write_loses_only_the_uncommitted_frame(tmp_path):
    path = tmp_path / "telemetry.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER.format(repo=str(REPO), path=str(path))])
    deadline = time.time() + 30
    while time.time() < deadline:
        time.sleep(0.3)
        if path.exists():
            try:
                with Archive(path, readonly=True) as a:
                    if a.frame_count() > 200:
                        break
            except (UserError, sqlite3.DatabaseError):
                pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with Archive(path) as archive:  # reopening recovers the WAL
        assert archive.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        n = archive.frame_count()
        assert n > 200
        seqs = [s for s, _, _ in archive.history("train.step")]
        assert seqs == list(range(1, n + 1))  # every committed frame complete, none partial
        for channel in ("orbit.alt_km", "orbit.region"):
            assert len(archive.history(channel)) == n
        # A resumed writer continues after the last committed frame.
        seq = archive.write_frame(float(n), {"train.step": n})
        assert seq == n + 1


def test_commands_queue_once_per_idempotency_key_and_move_through_states(tmp_path):
    from skyrack.errors import UserError
    from skyrack.telemetry.archive import Archive

    with Archive(tmp_path / "t.sqlite") as a:
        first = a.queue_command("set_power_cap", {"cap_w": 300.0}, now=10.0, idempotency_key="k1")
        again = a.queue_command("set_power_cap", {"cap_w": 300.0}, now=11.0, idempotency_key="k1")
        assert again["id"] == first["id"] and first["status"] == "queued"
        assert [c["id"] for c in a.pending_commands()] == [first["id"]]
        a.set_command_status(first["id"], "dispatched", now=12.0)
        assert a.pending_commands() == []
        done = a.set_command_status(first["id"], "completed", now=13.0, result="cap 300 W")
        assert done["status"] == "completed" and done["result"] == "cap 300 W"
        assert [e["data"]["status"] for e in a.events() if e["name"] == "command"] == [
            "dispatched",
            "completed",
        ]
        for name, args in (
            ("launch", {}),
            ("set_power_cap", {}),
            ("set_power_cap", {"cap_w": -1}),
            ("set_power_cap", {"cap_w": "x"}),
            ("ping", {"x": 1}),
        ):
            with pytest.raises(UserError):
                a.queue_command(name, args, now=14.0)


def test_command_arguments_are_checked_for_every_declared_type(monkeypatch):
    from skyrack.errors import UserError
    from skyrack.telemetry import archive
    from skyrack.telemetry.dictionary import Argument, CommandType

    typed = CommandType(
        "typed",
        "a command with one argument of each type",
        (
            Argument("n", "int", "a count", 1, 10),
            Argument("on", "bool", "a switch"),
            Argument("label", "str", "a name"),
            Argument("x", "float", "a number", 0.0, 1.0),
        ),
    )
    monkeypatch.setitem(archive.COMMAND, "typed", typed)
    good = {"n": 3, "on": False, "label": "a", "x": 0.5}
    archive.check_command("typed", good)
    archive.check_command("typed", {**good, "n": 3.0})  # a whole number written as a float
    for bad, fragment in (
        ({"n": 2.5}, "n must be a whole number"),
        ({"n": True}, "n must be a whole number"),
        ({"n": 11}, "n must be within"),
        ({"on": 1}, "on must be true or false"),
        ({"on": "yes"}, "on must be true or false"),
        ({"label": 5}, "label must be a string"),
        ({"label": None}, "label must be a string"),
        ({"x": float("inf")}, "x must be a finite number"),
        ({"x": float("nan")}, "x must be a finite number"),
        ({"x": [0.5]}, "x must be a finite number"),
        ({"x": "0.5"}, "x must be a finite number"),
    ):
        with pytest.raises(UserError, match=fragment):
            archive.check_command("typed", {**good, **bad})
