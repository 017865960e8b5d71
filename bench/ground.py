"""Benchmark: the ground server's live stream under load, on loopback.

A `skyrack serve` subprocess follows a mission archive while a writer commits frames
(`--rate` a second, every dictionary channel; the test flight of tests/ground_flight.py until
the real mission runner drives this), 50 clients hold the server-sent event stream and 20
history queries a second run beside them, for 30 s. It checks that every client received
every frame committed while it was connected, once and in order, and reports the latency from
the archive commit to the client. Reference, in the same process and run: a reader polling
the archive directly (PRAGMA data_version every 20 ms, the server's own polling interval),
the floor of any poll-based feed. Stops by itself (hard limit: seconds + 60 s).

    python bench/ground.py [--clients 50] [--history-rps 20] [--seconds 30] [--rate 10]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

import httpx  # noqa: E402
import numpy as np  # noqa: E402
from ground_flight import Flight  # noqa: E402

from skyrack.telemetry.archive import Archive  # noqa: E402
from skyrack.telemetry.dictionary import CHANNELS  # noqa: E402


def start_server(runs: Path) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "skyrack", "serve", "--runs-dir", str(runs), "--run", "bench", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 60
    for line in proc.stdout:
        match = re.search(r"on (http://\S+?)/?$", line)
        if match:
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # drain
            return proc, match.group(1)
        if time.monotonic() > deadline:
            break
    proc.kill()
    raise SystemExit("skyrack serve did not start")


async def stream_client(url: str, cursor: str, received: list, stop: asyncio.Event) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=None) as client:
        async with client.stream("GET", "/api/stream", params={"after": cursor}) as response:
            kind = None
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "frame":
                    received.append((json.loads(line[6:])["seq"], time.time()))
                if stop.is_set():
                    return


async def history_load(
    url: str, rps: float, t0: float, latencies: list, codes: list, stop: asyncio.Event
) -> None:
    names = [c.name for c in CHANNELS]
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:

        async def one():
            start = time.perf_counter()
            since = t0 + random.uniform(0, 600)
            response = await client.get(
                f"/api/history/{random.choice(names)}",
                params={"since": since, "until": since + 3600, "limit": 500},
            )
            latencies.append(time.perf_counter() - start)
            codes.append(response.status_code)

        tasks = []
        next_at = time.perf_counter()
        while not stop.is_set():
            tasks.append(asyncio.create_task(one()))
            next_at += 1.0 / rps
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
        await asyncio.gather(*tasks, return_exceptions=True)


def direct_reader(path: Path, seen: dict, stop: threading.Event) -> None:
    """The reference: the archive polled directly, as the server's feed does."""
    with Archive(path, readonly=True) as archive:
        last = archive.last_frame()[0]
        version = None
        while not stop.is_set():
            now = archive.db.execute("PRAGMA data_version").fetchone()[0]
            if now != version:
                version = now
                for (seq,) in archive.db.execute("SELECT seq FROM frames WHERE seq > ?", (last,)):
                    seen[seq] = time.time()
                    last = seq
            stop.wait(0.02)


def percentiles(values) -> str:
    if len(values) == 0:
        return "n/a"
    ms = np.asarray(values) * 1000.0
    return (
        f"p50 {np.percentile(ms, 50):6.1f} ms   p99 {np.percentile(ms, 99):6.1f} ms   "
        f"max {ms.max():6.1f} ms   (n={ms.size})"
    )


async def run(args) -> int:
    runs = Path(tempfile.mkdtemp(prefix="skyrack-bench-ground-"))
    flight = Flight(runs / "bench")
    flight.step(100)
    proc, url = start_server(runs)
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            cursor = (await client.get("/api/summary")).json()["cursor"]
        start_seq = int(cursor.split("-")[0])
        stop_clients = asyncio.Event()
        received = [[] for _ in range(args.clients)]
        clients = [
            asyncio.create_task(stream_client(url, cursor, received[k], stop_clients))
            for k in range(args.clients)
        ]
        await asyncio.sleep(1.0)  # all connected before the first frame
        history_latency, history_codes = [], []
        stop_history = asyncio.Event()
        history = asyncio.create_task(
            history_load(url, args.history_rps, flight.t - 1000, history_latency, history_codes, stop_history)
        )
        stop_writer = threading.Event()
        direct, stop_direct = {}, threading.Event()
        reader = threading.Thread(
            target=direct_reader, args=(flight.run_dir / "telemetry.sqlite", direct, stop_direct)
        )
        reader.start()
        writer = flight.fly(args.rate, stop_writer)
        await asyncio.sleep(args.seconds)
        stop_writer.set()
        writer.join()
        stop_history.set()
        await history
        last_seq = max(flight.commits)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(not r or r[-1][0] < last_seq for r in received):
            await asyncio.sleep(0.1)
        stop_clients.set()
        stop_direct.set()
        reader.join()
        await asyncio.sleep(0.2)
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    expected = list(range(start_seq + 1, last_seq + 1))
    complete = sum(1 for r in received if [s for s, _ in r] == expected)
    latency = [t - flight.commits[s] for r in received for s, t in r if s in flight.commits]
    reference = [t - flight.commits[s] for s, t in direct.items() if s in flight.commits]
    ok = sum(1 for c in history_codes if c == 200)
    print(
        f"ground stream benchmark ({platform.machine()}, {os.cpu_count()} cpus, Python {platform.python_version()})"
    )
    print(
        f"  {args.seconds:g} s, writer {args.rate:g} frames/s ({len(expected)} frames of {len(CHANNELS)} channels), "
        f"{args.clients} stream clients, {args.history_rps:g} history queries/s"
    )
    print(f"  clients with every frame once, in order: {complete}/{args.clients}")
    print(f"  commit -> client (server-sent events):  {percentiles(latency)}")
    print(f"  commit -> direct archive poll (reference): {percentiles(reference)}")
    print(
        f"  history queries: {ok}/{len(history_codes)} ok, {len(history_codes) / args.seconds:.1f}/s, "
        f"latency {percentiles(history_latency)}"
    )
    return 0 if complete == args.clients and ok == len(history_codes) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--history-rps", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=10.0, help="frames committed per second")
    args = parser.parse_args()
    # Bounded: whatever happens, the benchmark ends.
    timer = threading.Timer(args.seconds + 60, lambda: os._exit(3))
    timer.daemon = True
    timer.start()
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
