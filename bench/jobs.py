"""Job-service benchmark: a day of mission with a job stream, per link mode.

For each link mode a mission flies the tiny model on a generated play under a fixed warp, with
the demo's job mix (`skyrack.jobs.stream.demo_stream`, Poisson arrivals every `--gap` simulated
seconds on average) submitted through the ground's ledger, and the figures are read back from
its summary (skyrack.jobs.accounts): the deadline hit-rate, latency from submission to ground
(p50, p95), the GPU's use (busy share while powered; idle share while work waited and power
allowed), energy and GPU-seconds per job, the screening downlink reduction. The reference
printed beside them: the issue's goals, and the same mission without jobs (its wall time).

    python3 bench/jobs.py [--hours 24] [--links ideal,ground,relay] [--gap 3600] [--frame-interval 120] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GOALS = {"hit_rate": 0.99, "idle_while_work": 0.05}


def fly(runs: Path, run_id: str, play: Path, args, link: str, jobs: Path | None) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "skyrack",
        "mission",
        "--preset",
        "tiny",
        "--data",
        str(play),
        "--runs-dir",
        str(runs),
        "--run-id",
        run_id,
        "--hours",
        str(args.hours),
        "--frame-interval",
        str(args.frame_interval),
        "--warp",
        str(args.warp),
        "--stress",
        str(args.stress),
        "--seed",
        str(args.seed),
        "--link",
        link,
        "--no-dashboard",
        "--json",
    ] + (["--jobs", str(jobs)] if jobs else [])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"mission {run_id} failed: {out.stderr.strip().splitlines()[-1:]}")
    summary = json.loads(out.stdout)
    return {"wall_s": round(wall, 1), "summary": summary}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--links", default="ideal,ground,relay")
    ap.add_argument("--gap", type=float, default=3600.0, help="mean simulated seconds between jobs")
    ap.add_argument("--warp", type=float, default=50.0, help="simulated seconds a wall second stands for")
    ap.add_argument("--frame-interval", type=float, default=120.0)
    ap.add_argument(
        "--stress", type=float, default=1.0, help="the upset rate's multiplier (1: the profile's)"
    )
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    from skyrack.faults.campaign import generated_corpus
    from skyrack.jobs.stream import demo_stream

    result = {"config": vars(args), "goals": GOALS, "links": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        play = tmp / "play.txt"
        play.write_text(generated_corpus(600))
        entries = demo_stream(args.seed, args.hours * 3600.0, args.gap)
        stream = tmp / "jobs.jsonl"
        stream.write_text("".join(json.dumps(e) + "\n" for e in entries))
        result["jobs_in_stream"] = len(entries)
        ref = fly(tmp / "runs", "reference", play, args, "ideal", None)
        result["reference_wall_s"] = ref["wall_s"]
        for link in [x.strip() for x in args.links.split(",") if x.strip()]:
            flown = fly(tmp / "runs", f"jobs-{link}", play, args, link, stream)
            totals = (flown["summary"].get("jobs") or {}).get("totals") or {}
            result["links"][link] = {"wall_s": flown["wall_s"], **totals}
            if not args.json:
                print(f"{link}: {flown['wall_s']} s of wall time", file=sys.stderr)
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(
        f"a day of mission ({args.hours:g} h, frames of {args.frame_interval:g} s, warp x{args.warp:g}, "
        f"stress x{args.stress:g}), {result['jobs_in_stream']} jobs in the stream; reference (no jobs, "
        f"ideal link): {result['reference_wall_s']} s of wall time"
    )
    cols = (
        ("wall s", "wall_s", "{}"),
        ("accepted", "accepted", "{}"),
        ("refused", "refused", "{}"),
        ("met", "deadlines_met", "{}"),
        ("hit-rate", "hit_rate", "{:.1%}"),
        ("w/o failed", "hit_rate_not_failed", "{:.1%}"),
        ("failed (rad)", "failed", "{}"),
        ("p50 min", "latency_p50_s", "{:.1f}"),
        ("p95 min", "latency_p95_s", "{:.1f}"),
        ("GPU busy", "gpu_busy", "{:.1%}"),
        ("idle w/ work", "idle_while_work", "{:.2%}"),
        ("Wh/job", "energy_per_job_wh", "{:.2f}"),
        ("GPU-s/job", "gpu_s_per_job", "{:.0f}"),
        ("screen saved", "screen_downlink_reduction", "{:.1%}"),
    )
    print("link    " + " ".join(f"{c[0]:>12}" for c in cols))
    for link, row in result["links"].items():
        cells = []
        for _, key, fmt in cols:
            v = row.get(key)
            if v is not None and key.startswith("latency"):
                v = v / 60.0
            if key == "failed" and v is not None:
                v = f"{v} ({row.get('failed_radiation', 0)})"
            cells.append(f"{'-' if v is None else (fmt.format(v) if not isinstance(v, str) else v):>12}")
        print(f"{link:<8}" + " ".join(cells))
    print(
        f"goals: hit-rate >= {GOALS['hit_rate']:.0%} of feasible jobs; GPU idle < {GOALS['idle_while_work']:.0%} "
        "while work is queued and power allows"
    )


if __name__ == "__main__":
    main()
