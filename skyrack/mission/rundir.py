"""A mission's run directory (the shared contract) and the lock that keeps it to one writer.

    <runs>/<run-id>/telemetry.sqlite   the archive (skyrack.telemetry.archive): the on-board store
    <runs>/<run-id>/ground.sqlite      what came down over the link (skyrack.link.ground)
    <runs>/<run-id>/checkpoints/       the trainer's verified checkpoints
    <runs>/<run-id>/report.html, summary.json, samples.txt
    <runs>/<run-id>/mission.lock       while a mission writes here: {"pid": ..., "host": ...}

`<runs>` is `--runs-dir`, else `$SKYRACK_RUNS`, else `./runs`. The lock is created with O_EXCL,
so of two missions started on one directory exactly one gets it; a lock left by a process that
no longer exists (a mission killed with SIGKILL) is stale and taken over.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from skyrack.errors import UserError
from skyrack.telemetry.runs import GROUND_ARCHIVE_NAME, runs_root

ARCHIVE = "telemetry.sqlite"
LOCK = "mission.lock"


def new_run_id(now: float | None = None) -> str:
    return time.strftime("mission-%Y%m%d-%H%M%S", time.gmtime(now if now is not None else time.time()))


def check_run_id(run_id: str) -> str:
    """A run id is one plain directory name."""
    if not run_id or run_id in (".", "..") or "/" in run_id or "\\" in run_id or run_id.startswith("."):
        raise UserError(f"bad run id {run_id!r}: use a plain name such as mission-1")
    return run_id


@dataclass(frozen=True)
class RunDir:
    path: Path

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def archive(self) -> Path:
        return self.path / ARCHIVE

    @property
    def ground_archive(self) -> Path:
        return self.path / GROUND_ARCHIVE_NAME

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def report(self) -> Path:
        return self.path / "report.html"

    @property
    def summary(self) -> Path:
        return self.path / "summary.json"

    @property
    def samples(self) -> Path:
        return self.path / "samples.txt"

    def create(self) -> None:
        """Make the directory (a new mission): a clear error where it cannot be written."""
        if self.path.exists() and (self.path / ARCHIVE).exists():
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


def find_run(run: str, root: str | os.PathLike | None = None) -> RunDir:
    """A run named by id (under the runs directory) or by path; it must hold an archive."""
    candidate = Path(run)
    if not (candidate / ARCHIVE).is_file():
        candidate = runs_root(root) / run
    if not (candidate / ARCHIVE).is_file():
        raise UserError(f"no mission run {run!r}: no {ARCHIVE} in {candidate}")
    return RunDir(candidate)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return True


class RunLock:
    """`with RunLock(run_dir):` - the mission's exclusive claim on a run directory."""

    def __init__(self, run_dir: RunDir):
        self.path = run_dir.path / LOCK
        self.held = False

    def _holder(self) -> dict | None:
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def acquire(self) -> None:
        body = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}).encode()
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = self._holder()
                same_host = holder is not None and holder.get("host") == socket.gethostname()
                pid = holder.get("pid") if holder else None
                dead = same_host and isinstance(pid, int) and not _alive(pid)
                if dead or (holder is None and _older_than(self.path, 10.0)):  # or never written
                    self.path.unlink(missing_ok=True)  # stale: its mission is gone
                    continue
                who = f"process {pid}" if pid else "another mission"
                raise UserError(
                    f"run directory {self.path.parent} is locked by {who} "
                    f"(remove {self.path} if that mission is gone)"
                ) from None
            except OSError as exc:
                raise UserError(
                    f"cannot lock run directory {self.path.parent}: {exc.strerror or exc}"
                ) from None
            try:
                os.write(fd, body)
                os.fsync(fd)
            finally:
                os.close(fd)
            self.held = True
            return
        raise UserError(f"cannot lock run directory {self.path.parent}")

    def release(self) -> None:
        if self.held:
            holder = self._holder()
            if holder and holder.get("pid") == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()
