"""Mission benchmark, in one process.

(a) The archive's sustained frame-write rate: frames of every dictionary channel (plus an event
    on one frame in ten) committed one transaction each, beside the rate the default mission
    needs (one frame per `frame interval / warp` wall seconds at full power).
(b) The mission machinery's share of wall time: the same training run (preset, seed, steps)
    alone, then flown as a mission at full power with no faults (twin, governor, commands,
    archive, dashboard redrawn into an in-memory terminal); machinery = the mission loop's wall
    time minus the time spent in training steps inside it, also compared with the run alone.
    Goal: machinery < 5% of training wall time.

    python3 bench/mission.py [--steps 200] [--preset cpu] [--frames 3000] [--json]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def frame_rate(n: int) -> dict:
    from skyrack.telemetry.archive import Archive, Event
    from skyrack.telemetry.dictionary import CHANNELS

    values = {
        c.name: (
            "Pacific Ocean"
            if c.type == "str"
            else False
            if c.type == "bool"
            else 7
            if c.type == "int"
            else 0.5
        )
        for c in CHANNELS
    }
    with tempfile.TemporaryDirectory() as tmp, Archive(Path(tmp) / "telemetry.sqlite") as archive:
        start = time.perf_counter()
        for i in range(n):
            values["train.step"] = i
            archive.write_frame(
                1.7e9 + 10.0 * i, values, [Event("checkpoint", {"step": i})] if i % 10 == 0 else ()
            )
        seconds = time.perf_counter() - start
    return {
        "frames": n,
        "channels": len(CHANNELS),
        "frames_per_s": n / seconds,
        "ms_per_frame": 1e3 * seconds / n,
    }


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def machinery(steps: int, preset: str, data: str | None) -> dict:
    from skyrack.mission.dashboard import Dashboard
    from skyrack.mission.runner import Flight, Options
    from skyrack.mission.training import Training

    quiet = lambda message: None  # noqa: E731
    with tempfile.TemporaryDirectory() as tmp:
        alone = Training(
            Path(tmp) / "alone",
            preset_name=preset,
            data_file=data,
            steps=steps,
            seed=1337,
            session=1,
            say=quiet,
            device="cpu",
        )
        start = time.perf_counter()
        while not alone.done:
            alone.step()
        alone_s = time.perf_counter() - start

        view = Dashboard(_Terminal(), live=True)
        flight = Flight(
            Options(
                steps=steps,
                preset=preset,
                data=data,
                stress=0.0,
                soc=1.0,
                runs_dir=tmp,
                run_id="bench",
                device="cpu",
            ),
            quiet,
            view,
        )
        mission = flight.mission
        start = time.perf_counter()
        mission.fly()
        mission_s = time.perf_counter() - start
        train_s = mission.train_watch.total
        ticks = mission.k
        flight.archive.close()
        flight.lock.release()
    outside = mission_s - train_s
    return {
        "preset": preset,
        "steps": steps,
        "warp": flight.meta.warp,
        "ticks": ticks,
        "training_alone_s": alone_s,
        "mission_s": mission_s,
        "training_in_mission_s": train_s,
        "machinery_s": outside,
        "machinery_ms_per_tick": 1e3 * outside / max(1, ticks),
        "machinery_share": outside / train_s,
        "mission_vs_alone": mission_s / alone_s - 1.0,
        "dashboard_redraws": view.stream.getvalue().count("\x1b[K\n") // 8,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--data", help="training text (default: the complete works of Shakespeare)")
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rate = frame_rate(args.frames)
    share = machinery(args.steps, args.preset, args.data)
    need = 1.0 / (10.0 / share["warp"])
    result = {"archive": {**rate, "default_mission_needs_frames_per_s": need}, "machinery": share}
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(
        f"archive: {rate['frames_per_s']:,.0f} frames/s sustained ({rate['ms_per_frame']:.2f} ms a frame of "
        f"{rate['channels']} channels); the default mission needs {need:.1f} frames/s at full power"
    )
    m = share
    print(
        f"training {m['steps']} steps of preset {m['preset']}: alone {m['training_alone_s']:.1f} s; as a mission "
        f"(warp {m['warp']:.0f}, {m['ticks']} frames) {m['mission_s']:.1f} s, of which training "
        f"{m['training_in_mission_s']:.1f} s"
    )
    print(
        f"machinery outside training: {m['machinery_s']:.2f} s = {m['machinery_ms_per_tick']:.2f} ms a frame = "
        f"{m['machinery_share']:.1%} of training wall time (goal < 5%); mission vs training alone "
        f"{m['mission_vs_alone']:+.1%}"
    )


if __name__ == "__main__":
    main()
