"""The lock that keeps a run directory (skyrack.telemetry.runs) to one writer.

`<run>/mission.lock` holds {"pid": ..., "host": ..., "since": ...} while a mission writes the
run. It is created with O_EXCL, so of two missions started on one directory exactly one gets
it; a lock left by a process that no longer exists (a mission killed with SIGKILL) is stale and
taken over.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from skyrack.errors import UserError
from skyrack.telemetry.runs import RunDir, check_run_id, find_run, new_run_id  # noqa: F401  (their old home)


def _older_than(path: Path, seconds: float) -> bool:
    try:
        return time.time() - path.stat().st_mtime > seconds
    except OSError:
        return True


class RunLock:
    """`with RunLock(run_dir):` - the mission's exclusive claim on a run directory."""

    def __init__(self, run_dir: RunDir):
        self.run_dir, self.path = run_dir, run_dir.lock
        self.held = False

    def _holder(self) -> dict | None:
        return self.run_dir.lock_holder()

    def acquire(self) -> None:
        body = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}).encode()
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = self._holder()
                pid = holder.get("pid") if holder else None
                never_written = holder is None and _older_than(self.path, 10.0)
                if self.run_dir.writer_gone() or never_written:
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
