"""TEST FIXTURE: a small real "flight" that writes a mission archive the way the mission runner
does, for the ground server's tests and benchmark until they are switched to `skyrack mission`.

It steps the real OrbitTwin (orbit, sunlight, SAA, region beneath), derives the other channels
from simple stand-in models (battery charged by the array and drained in eclipse, a GPU cap, a
falling loss), writes one frame per tick with every dictionary channel, and at each tick
executes the queued commands as the mission will: dispatched -> completed (or failed).
It is not the mission: no bus model, no governor, no training.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np

from skyrack.geo.regions import RegionIndex
from skyrack.orbit.twin import OrbitTwin
from skyrack.profile import load_profile
from skyrack.telemetry.archive import Archive, Event
from skyrack.telemetry.dictionary import CHANNELS

START_T = (
    1785100000.0  # 2026-07-26 21:06 UTC: Starcloud-1 over Central Africa, heading for Arabia, in eclipse
)
BATTERY_WH = 400.0


class Flight:
    def __init__(
        self,
        run_dir: Path,
        *,
        start_t: float = START_T,
        frame_interval_s: float = 10.0,
        profile: str = "starcloud-1",
        index: RegionIndex | None = None,
    ):
        self.run_dir = Path(run_dir)
        self.archive = Archive(self.run_dir / "telemetry.sqlite")
        self.twin = OrbitTwin(load_profile(profile).satellite)
        self.index = index or RegionIndex.load()
        self.t = start_t
        self.dt = frame_interval_s
        self.step_count = 0
        self.soc = 0.8
        self.cap_w = 300.0
        self.cap_limit_w = 700.0
        self.paused = False
        self.stress = 1.0
        self.sunlit_prev: float | None = None
        self.commits: dict[int, float] = {}  # seq -> wall time of its commit (for latency figures)
        self._states: list = []
        meta = {
            "run_id": self.run_dir.name,
            "profile": profile,
            "tle_file": None,
            "start_t": start_t,
            "end_t": start_t + 86400.0,
            "frame_interval_s": frame_interval_s,
            "warp": 1.0,
            "preset": "test",
            "stress": 1.0,
            "status": "running",
            "wall_started": time.time(),
        }
        for key, value in meta.items():
            self.archive.set_meta(key, value)

    def _state_at(self, k: int):
        if not self._states:  # the twin is vectorized: a hundred ticks per call
            seconds = self.t + np.arange(100) * self.dt
            s = self.twin.state(seconds)
            codes = self.index.lookup(s.lat_deg, s.lon_deg)
            self._states = [
                (
                    float(s.lat_deg[i]),
                    float(s.lon_deg[i]),
                    float(s.alt_km[i]),
                    float(s.speed_km_s[i]),
                    float(s.sunlit[i]),
                    float(s.beta_deg[i]),
                    bool(s.in_saa[i]),
                    self.index.region(int(codes[i])),
                )
                for i in range(100)
            ]
        return self._states.pop(0)

    def execute_commands(self) -> None:
        for cmd in self.archive.pending_commands():
            self.archive.set_command_status(cmd["id"], "dispatched", now=self.t)
            name, args = cmd["name"], cmd["args"]
            if name == "pause_training":
                self.paused = True
            elif name == "resume_training":
                self.paused = False
            elif name == "set_power_cap":
                self.cap_limit_w = float(args["cap_w"])
            elif name == "set_stress":
                self.stress = float(args["factor"])
            self.archive.set_command_status(cmd["id"], "completed", now=self.t, result="ok")

    def step(self, n: int = 1) -> int:
        seq = 0
        for _ in range(n):
            self.execute_commands()
            lat, lon, alt, speed, sunlit, beta, in_saa, region = self._state_at(0)
            events = []
            if self.sunlit_prev is not None and (self.sunlit_prev >= 0.5) != (sunlit >= 0.5):
                events.append(Event("eclipse_exit" if sunlit >= 0.5 else "eclipse_entry", {}))
            self.sunlit_prev = sunlit
            self.cap_w = 0.0 if self.paused else min(self.cap_limit_w, 300.0 if sunlit >= 0.5 else 150.0)
            array_w = 800.0 * sunlit
            load_w = 120.0 + self.cap_w
            self.soc = float(np.clip(self.soc + (array_w - load_w) * self.dt / 3600.0 / BATTERY_WH, 0.0, 1.0))
            if not self.paused:
                self.step_count += 1
            loss = 1.4 + 2.8 * math.exp(-self.step_count / 300.0)
            values = {
                "orbit.lat_deg": lat,
                "orbit.lon_deg": lon,
                "orbit.alt_km": alt,
                "orbit.speed_km_s": speed,
                "orbit.sunlit": sunlit,
                "orbit.beta_deg": beta,
                "orbit.in_saa": in_saa,
                "orbit.region": region.name,
                "orbit.area": region.area,
                "power.array_w": array_w,
                "power.load_w": load_w,
                "power.battery_soc": self.soc,
                "power.battery_wh": self.soc * BATTERY_WH,
                "gpu.cap_w": self.cap_w,
                "gpu.temp_c": 20.0 + self.cap_w / 8.0,
                "gpu.heater_w": 0.0 if self.cap_w > 0 else 150.0,
                "gpu.throughput": self.cap_w / 700.0,
                "radiation.upset_rate": 1e-4 * self.stress * (30 if in_saa else 1),
                "radiation.dose_rad": 0.01 * self.step_count,
                "faults.injected": 0,
                "faults.detected": 0,
                "faults.recovered": 0,
                "train.step": self.step_count,
                "train.loss": loss,
                "train.val_loss": loss + 0.05,
                "train.tokens_per_s": 0.0 if self.paused else 4000.0 * self.cap_w / 300,
                # no customers' jobs on this test flight
                "jobs.queued": 0,
                "jobs.running": 0,
                "jobs.done": 0,
                "jobs.failed": 0,
                "jobs.energy_wh": 0.0,
                "gpu.busy": 0.0,
            }
            assert set(values) == {c.name for c in CHANNELS}
            seq = self.archive.write_frame(self.t, values, events)
            self.commits[seq] = time.time()
            self.t += self.dt
        return seq

    def finish(self) -> None:
        self.archive.set_meta("status", "finished")

    def fly(self, rate_hz: float, stop: threading.Event, max_frames: int | None = None) -> threading.Thread:
        """Write `rate_hz` frames per wall second in a thread until `stop` (or `max_frames`)."""

        def loop():
            # sqlite3 connections stay in their thread: this thread gets its own writer.
            self.archive = Archive(self.run_dir / "telemetry.sqlite")
            written = 0
            next_at = time.monotonic()
            while not stop.is_set() and (max_frames is None or written < max_frames):
                self.step()
                written += 1
                next_at += 1.0 / rate_hz
                stop.wait(max(0.0, next_at - time.monotonic()))

        thread = threading.Thread(target=loop, name="test-flight", daemon=True)
        thread.start()
        return thread
