"""The run contract: a run's files, finding a run, its metadata and its twin."""

from __future__ import annotations

import pytest

from skyrack.errors import UserError
from skyrack.telemetry.archive import Archive
from skyrack.telemetry.runs import RunDir, RunMeta, choose_run, find_run, twin_for


def _run(root, name, **meta) -> RunDir:
    run = RunDir(root / name)
    with Archive(run.archive) as archive:
        RunMeta(run_id=name, **meta).write(archive)
        archive.set_meta("operator", {"stress": 3.0})  # a key the record does not name
    return run


def test_meta_round_trips_through_the_archive(tmp_path):
    run = _run(
        tmp_path, "m1", profile="starcloud-1", start_t=10.0, status="running", sessions=[{"session": 1}]
    )
    meta = run.meta()
    assert (meta.run_id, meta.profile, meta.start_t, meta.sessions) == (
        "m1",
        "starcloud-1",
        10.0,
        [{"session": 1}],
    )
    assert meta.live and meta.end_t is None and meta.steps is None


def test_one_resolver_finds_a_run_by_id_or_by_path(tmp_path):
    run = _run(tmp_path, "m1")
    assert find_run("m1", tmp_path) == run
    assert find_run(str(run.path), tmp_path / "elsewhere") == run
    with pytest.raises(UserError, match="no mission run 'ghost': no telemetry.sqlite in"):
        find_run("ghost", tmp_path)


def test_choose_run_takes_the_newest_and_the_newest_running_when_live(tmp_path):
    _run(tmp_path, "old", wall_started=1.0, status="running")
    _run(tmp_path, "new", wall_started=2.0, status="finished")
    (tmp_path / "not-a-run").mkdir()
    assert choose_run(tmp_path).run_id == "new"
    assert choose_run(tmp_path, live=True).run_id == "old"
    assert choose_run(tmp_path, "old").run_id == "old"
    with pytest.raises(UserError, match="no mission runs under"):
        choose_run(tmp_path / "empty")


def test_the_twin_is_the_runs_satellite(tmp_path):
    run = _run(tmp_path, "m1", profile="suncatcher")
    assert twin_for(run).satellite.name == "Suncatcher"
    assert twin_for(run, profile="starcloud-1").satellite.name == "Suncatcher"  # the run's own wins
    assert twin_for(RunMeta(), profile="suncatcher").satellite.name == "Suncatcher"
    assert twin_for(RunMeta()).satellite.name == "STARCLOUD-1"  # the default profile
