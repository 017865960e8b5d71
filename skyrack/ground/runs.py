"""Which mission run the ground server shows: a run directory and how to follow it.

A run is `<runs>/<run-id>/telemetry.sqlite` (the shared run-directory contract); `<runs>` is
`--runs-dir`, else `$SKYRACK_RUNS`, else `./runs`. A run whose archive meta says `status ==
"running"` is followed live; any other is replayed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from skyrack.errors import UserError
from skyrack.telemetry.archive import Archive
from skyrack.telemetry.runs import ARCHIVE_NAME


@dataclass(frozen=True)
class RunInfo:
    run_dir: Path
    run_id: str
    status: str  # "running", "finished", "interrupted" or "unknown"
    wall_started: float

    @property
    def archive_path(self) -> Path:
        return self.run_dir / ARCHIVE_NAME

    @property
    def live(self) -> bool:
        return self.status == "running"


def read_run(run_dir: Path) -> RunInfo:
    with Archive(run_dir / ARCHIVE_NAME, readonly=True) as archive:
        status = archive.meta("status", "unknown")
        started = archive.meta("wall_started")
        run_id = archive.meta("run_id") or run_dir.name
    if not isinstance(started, (int, float)):
        started = (run_dir / ARCHIVE_NAME).stat().st_mtime
    return RunInfo(run_dir, str(run_id), str(status), float(started))


def list_runs(root: Path) -> list[RunInfo]:
    """Every run with an archive under `root`, oldest first; unreadable ones are skipped."""
    if not root.is_dir():
        return []
    runs = []
    for archive in root.glob(f"*/{ARCHIVE_NAME}"):
        try:
            runs.append(read_run(archive.parent))
        except UserError:
            continue
    return sorted(runs, key=lambda r: (r.wall_started, r.run_id))


def choose_run(root: Path, run: str | None = None, live: bool = False) -> RunInfo:
    """`run` (an id under `root` or a path), else the newest running mission when `live`,
    else the newest run of any status."""
    if run is not None:
        candidate = Path(run)
        if not (candidate / ARCHIVE_NAME).is_file():
            candidate = root / run
        if not (candidate / ARCHIVE_NAME).is_file():
            raise UserError(f"no mission run {run!r}: no {ARCHIVE_NAME} in {candidate}")
        return read_run(candidate)
    runs = list_runs(root)
    if live:
        runs = [r for r in runs if r.live]
        if not runs:
            raise UserError(
                f"no running mission under {root}; start one with `skyrack mission` or give --run"
            )
    if not runs:
        raise UserError(f"no mission runs under {root}; start one with `skyrack mission` or give --runs-dir")
    return runs[-1]
