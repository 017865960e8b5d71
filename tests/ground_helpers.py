"""Helpers for the ground tests: a real `skyrack serve` subprocess on a free loopback port."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from conftest import REPO


@dataclass
class Server:
    url: str
    token: str
    process: subprocess.Popen
    output: list[str]
    runs_dir: Path


@contextmanager
def ground_server(runs_dir: Path, *args: str, timeout: float = 60.0):
    """Start `skyrack serve --runs-dir RUNS --port 0 ARGS`, wait for its URL, stop it afterwards."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "skyrack", "serve", "--runs-dir", str(runs_dir), "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env=env,
    )
    output: list[str] = []
    found = threading.Event()

    def read():
        for line in proc.stdout:
            output.append(line)
            if " on http://" in line:
                found.set()

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + timeout
    while not found.wait(0.1):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("skyrack serve did not start:\n" + "".join(output))
    url = re.search(r"on (http://\S+?)/?$", "".join(output), re.M).group(1)
    token = (runs_dir / ".ground-token").read_text().strip()
    try:
        yield Server(url, token, proc, output, runs_dir)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
