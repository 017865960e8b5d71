"""The run contract: where a mission's runs live, every file of a run, how a run is named and
found, what its archive's meta holds, and the orbit twin it flies.

    <runs>/<run-id>/telemetry.sqlite   the archive (skyrack.telemetry.archive); its meta is `RunMeta`;
                                       with a real link it is the on-board store
    <runs>/<run-id>/ground.sqlite      what the ground received over the link (skyrack.link.ground);
                                       the ground server reads it when it exists
    <runs>/<run-id>/outbox/            on board: files offered for downlink, kept until acknowledged
    <runs>/<run-id>/downlink/          on the ground: files received whole over the link
    <runs>/<run-id>/checkpoints/       the trainer's verified checkpoints
    <runs>/<run-id>/forecast.json      the twin's forecast for the job scheduler (skyrack.jobs.schedule):
                                       the power budget, SAA, eclipses and contacts ahead
    <runs>/<run-id>/jobs/<id>/         on board: a customer job's spec and result (skyrack.jobs.service)
    <runs>/<run-id>/report.html        the mission report (skyrack.mission.report)
    <runs>/<run-id>/summary.json       its headline numbers
    <runs>/<run-id>/samples.txt        Shakespeare sampled from the final checkpoint
    <runs>/<run-id>/mission.lock       while a mission writes here (skyrack.mission.rundir)

`<runs>` is `--runs-dir`, else `$SKYRACK_RUNS`, else `./runs`. The mission writes there; the
ground server, the report and the assistant read there. A capability that adds a file to a run
adds its name here, and finds runs with `find_run`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from skyrack.errors import UserError

ARCHIVE_NAME = "telemetry.sqlite"
GROUND_ARCHIVE_NAME = "ground.sqlite"
OUTBOX_NAME = "outbox"
DOWNLINK_NAME = "downlink"
CHECKPOINTS_NAME = "checkpoints"
FORECAST_NAME = "forecast.json"
JOBS_NAME = "jobs"
REPORT_NAME = "report.html"
SUMMARY_NAME = "summary.json"
SAMPLES_NAME = "samples.txt"
LOCK_NAME = "mission.lock"


def runs_root(given: str | os.PathLike | None = None) -> Path:
    return Path(given or os.environ.get("SKYRACK_RUNS") or "runs")


def new_run_id(now: float | None = None) -> str:
    return time.strftime("mission-%Y%m%d-%H%M%S", time.gmtime(now if now is not None else time.time()))


def check_run_id(run_id: str) -> str:
    """A run id is one plain directory name."""
    if not run_id or run_id in (".", "..") or "/" in run_id or "\\" in run_id or run_id.startswith("."):
        raise UserError(f"bad run id {run_id!r}: use a plain name such as mission-1")
    return run_id


@dataclass(frozen=True)
class RunDir:
    """One run's directory and the paths of its files."""

    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def archive(self) -> Path:
        return self.path / ARCHIVE_NAME

    @property
    def ground_archive(self) -> Path:
        return self.path / GROUND_ARCHIVE_NAME

    @property
    def served_archive(self) -> Path:
        """What the ground knows: the ground archive over a real link, else the on-board one."""
        return self.ground_archive if self.ground_archive.is_file() else self.archive

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS_NAME

    @property
    def forecast(self) -> Path:
        return self.path / FORECAST_NAME

    @property
    def jobs(self) -> Path:
        return self.path / JOBS_NAME

    @property
    def report(self) -> Path:
        return self.path / REPORT_NAME

    @property
    def summary(self) -> Path:
        return self.path / SUMMARY_NAME

    @property
    def samples(self) -> Path:
        return self.path / SAMPLES_NAME

    @property
    def lock(self) -> Path:
        return self.path / LOCK_NAME

    def has_archive(self) -> bool:
        return self.archive.is_file()

    def meta(self) -> RunMeta:
        return RunMeta.read(self)

    def lock_holder(self) -> dict | None:
        """What the lock says ({"pid", "host", "since"}), None when there is no readable lock."""
        try:
            holder = json.loads(self.lock.read_text())
        except (OSError, ValueError):
            return None
        return holder if isinstance(holder, dict) else None

    def writer_gone(self) -> bool:
        """The lock names a process of this host that no longer exists: its mission was killed
        (SIGKILL, a crash, the machine) without saying so. A run without a lock, or locked from
        another host, is not judged."""
        holder = self.lock_holder()
        pid = holder.get("pid") if holder else None
        return bool(holder) and holder.get("host") == socket.gethostname() and not pid_alive(pid)

    def create(self) -> None:
        """Make the directory (a new mission): a clear error where it cannot be written."""
        if self.path.exists() and self.has_archive():
            raise UserError(
                f"run {self.run_id!r} already exists in {self.path.parent}; "
                f"continue it with --resume {self.run_id} or pick another --run-id"
            )
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = self.path / f".write-test-{os.getpid()}"
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError as exc:
            raise UserError(f"cannot write run directory {self.path}: {exc.strerror or exc}") from None


def pid_alive(pid: Any) -> bool:
    """Whether process `pid` of this host exists (a number that is not a pid is not alive)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # no such process; a number beyond any pid
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def as_run(run: RunDir | str | os.PathLike) -> RunDir:
    return run if isinstance(run, RunDir) else RunDir(Path(run))


# -- finding runs ----------------------------------------------------------------------------------


def find_run(run: str | os.PathLike, root: str | os.PathLike | None = None) -> RunDir:
    """A run named by path, else by id under the runs directory; it must hold an archive."""
    candidate = RunDir(Path(run))
    if not candidate.has_archive():
        candidate = RunDir(runs_root(root) / run)
    if not candidate.has_archive():
        raise UserError(f"no mission run {str(run)!r}: no {ARCHIVE_NAME} in {candidate.path}")
    return candidate


def list_runs(root: str | os.PathLike | None = None) -> list[tuple[RunDir, RunMeta]]:
    """Every run with a readable archive under the runs directory, oldest first."""
    base = runs_root(root)
    if not base.is_dir():
        return []
    runs = []
    for archive in base.glob(f"*/{ARCHIVE_NAME}"):
        run = RunDir(archive.parent)
        try:
            runs.append((run, run.meta()))
        except UserError:
            continue
    return sorted(runs, key=lambda rm: (rm[1].started(rm[0]), rm[1].run_id or rm[0].run_id))


def choose_run(root: str | os.PathLike | None, run: str | None = None, live: bool = False) -> RunDir:
    """`run` (found by `find_run`), else the newest running mission when `live`, else the
    newest run of any status."""
    if run is not None:
        return find_run(run, root)
    base = runs_root(root)
    runs = list_runs(base)
    if live:
        runs = [(r, m) for r, m in runs if m.live]
        if not runs:
            raise UserError(
                f"no running mission under {base}; start one with `skyrack mission` or give --run"
            )
    if not runs:
        raise UserError(f"no mission runs under {base}; start one with `skyrack mission` or give --runs-dir")
    return runs[-1][0]


# -- what a run's archive says about it --------------------------------------------------------


@dataclass
class RunMeta:
    """A mission's plan and state, one field per key of its archive's meta table.

    The mission writes it (`write`) when it starts or resumes and updates `status`, `end_t` and
    `sessions` as it flies; everyone else reads it (`read`). Keys the archive lacks read as the
    defaults below; keys this record does not name (the operator's state) stay in the archive.
    """

    run_id: str | None = None
    satellite: str | None = None
    profile: str | None = None  # built-in name or absolute path of the profile TOML
    tle_file: str | None = None  # elements overriding the profile's orbit
    start_t: float | None = None  # simulated POSIX seconds
    end_t: float | None = None
    frame_interval_s: float | None = None
    warp: float | None = None
    preset: str | None = None
    stress: float | None = None
    status: str | None = None  # "running", "finished" or "interrupted"
    wall_started: float | None = None  # wall-clock POSIX seconds of the first session
    steps: int | None = None  # fly until training reaches this step (None: fly the hours)
    pacing: bool | None = None  # the preset's schedule fitted into the mission (skyrack.mission.pacing)
    wall_budget_s: float | None = None  # the wall time a paced mission aims at
    seed: int | None = None
    initial_soc: float | None = None
    data: str | None = None  # the training text (None: the complete works of Shakespeare)
    session: int | None = None
    sessions: list[dict] = field(default_factory=list)
    link: str | None = None  # "ground", "relay" or "ideal" (None: a run from before the link)
    link_loss: float | None = None  # the channel's packet loss (None: the profile's)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunMeta:
        meta = cls(**{f.name: values.get(f.name) for f in dataclasses.fields(cls) if f.name != "sessions"})
        meta.sessions = list(values.get("sessions") or [])
        return meta

    @classmethod
    def from_archive(cls, archive) -> RunMeta:
        return cls.from_dict(archive.all_meta())

    @classmethod
    def read(cls, run: RunDir | str | os.PathLike) -> RunMeta:
        """The meta as a reader should see it: a run whose archive says "running" while its lock
        names a dead process was killed, and reads as "interrupted" (resumable with --resume).
        The archive itself is left as it is, for the mission that resumes it."""
        from skyrack.telemetry.archive import Archive

        run = as_run(run)
        with Archive(run.archive, readonly=True) as archive:
            meta = cls.from_archive(archive)
        if meta.status == "running" and run.writer_gone():
            meta.status = "interrupted"
        return meta

    def write(self, archive) -> None:
        for key, value in self.as_dict().items():
            archive.set_meta(key, value)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def live(self) -> bool:
        return self.status == "running"

    def started(self, run: RunDir) -> float:
        """When the run began (wall clock), else when its archive was last written."""
        if isinstance(self.wall_started, (int, float)):
            return float(self.wall_started)
        return run.archive.stat().st_mtime


# -- the spacecraft a run flies ----------------------------------------------------------------


def profile_for(run: RunDir | RunMeta | None = None, *, profile: str | None = None, tle: str | None = None):
    """The spacecraft profile a run flies; `profile` and `tle` stand in for what the run does not
    name (and are all there is without a run)."""
    from skyrack.profile import load_profile

    meta = run.meta() if isinstance(run, RunDir) else run or RunMeta()
    return load_profile(meta.profile or profile, meta.tle_file or tle)


def twin_for(run: RunDir | RunMeta | None = None, *, profile: str | None = None, tle: str | None = None):
    """The orbit twin of the satellite a run flies (see `profile_for`)."""
    from skyrack.orbit.twin import OrbitTwin

    return OrbitTwin(profile_for(run, profile=profile, tle=tle).satellite)
