"""Assistant benchmark: Gemma's fast path (numpy over mapped weights) beside today's transformers
path, in the same run and interleaved, so a loaded machine slows both alike.

- cold process: `skyrack ask "Where are you?" --at T --json` as a new process, the cache warm,
  alternately through each path; wall time p50 and peak RSS (each child's own, from wait4), and
  the load-time breakdown (imports, weights, adapter, tokenizer) the answer's --json reports;
- in process: each path loaded once, then the eval set's first N items asked of both in turn:
  latency p50 / p95, the share spoken by the model, accuracy, and how many answers differ.

    python3 bench/assistant.py [--runs 10] [--items 40] [--json]
    python3 bench/assistant.py --accuracy [--size 240]   # the whole eval set per backend, as before
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PATHS = {"fast": "gemma", "today": "gemma-transformers"}
QUESTION, AT = "Where are you?", "2026-07-26T06:10:00Z"


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))], 3)


def cold_once(backend: str) -> dict:
    cmd = [sys.executable, "-m", "skyrack", "ask", QUESTION, "--at", AT, "--backend", backend]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    child = subprocess.Popen(
        [*cmd, "--no-service", "--json"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    out = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd)} failed")
    answer = json.loads(out)
    info = answer["backend_info"]
    return {
        "wall_s": wall,
        "rss_mb": usage.ru_maxrss / 1024,  # kilobytes on Linux
        "load_s": info.get("load_s"),
        "latency_s": answer["latency_s"],
        "load": info.get("load", {}),
        "answer": answer["answer"],
        "mode": answer["mode"],
    }


def cold(runs: int) -> dict:
    rows: dict[str, list[dict]] = {name: [] for name in PATHS}
    for _ in range(runs):
        for name, backend in PATHS.items():  # interleaved
            rows[name].append(cold_once(backend))
    out = {}
    for name, got in rows.items():
        walls = [r["wall_s"] for r in got]
        out[name] = {
            "backend": PATHS[name],
            "runs": runs,
            "wall_p50_s": _pct(walls, 0.5),
            "wall_min_s": round(min(walls), 3),
            "peak_rss_mb": round(max(r["rss_mb"] for r in got)),
            "load_p50_s": _pct([r["load_s"] for r in got], 0.5),
            "answer_p50_s": _pct([r["latency_s"] for r in got], 0.5),
            # Python, the CLI's imports and the twin: the process's wall time less load and answer.
            "startup_p50_s": _pct([r["wall_s"] - r["load_s"] - r["latency_s"] for r in got], 0.5),
            "load_breakdown_p50_s": {
                k: _pct([r["load"][k] for r in got if k in r["load"]], 0.5) for k in got[0]["load"]
            },
            "answers": sorted({r["answer"] for r in got}),
            "modes": sorted({r["mode"] for r in got}),
        }
    return out


def in_process(items_n: int) -> dict:
    import tempfile

    from skyrack.assistant.evaluate import _score, generate_set, make_runs
    from skyrack.assistant.service import Assistant
    from skyrack.orbit.timebase import parse_time

    items = generate_set(240)[:items_n]
    assistants = {name: Assistant.create(backend) for name, backend in PATHS.items()}
    rows: dict[str, list[dict]] = {name: [] for name in PATHS}
    with tempfile.TemporaryDirectory(prefix="skyrack-bench-") as tmp:
        runs = make_runs(Path(tmp), profile=None)
        for item in items:
            run = runs[item["run"]] if "run" in item else None
            at = None if run else parse_time(item["at"]).timestamp()
            for name, assistant in assistants.items():  # interleaved, item by item
                result = assistant.ask(item["question"], run_dir=run, at=at)
                rows[name].append({**result, **_score(item, result, runs), "kind": item["kind"]})
    out = {}
    for name, got in rows.items():
        answerable = [r for r in got if r["kind"] not in ("out_of_scope", "injection")]
        spoken = [r for r in answerable if r["mode"] == "model"]
        injections = [r for r in got if r["kind"] == "injection"]
        latencies = [r["latency_s"] for r in got]
        out[name] = {
            "backend": PATHS[name],
            "items": len(got),
            "latency_p50_s": _pct(latencies, 0.5),
            "latency_p95_s": _pct(latencies, 0.95),
            "model_latency_p50_s": _pct([r["latency_s"] for r in spoken], 0.5),
            "model_share": round(len(spoken) / len(answerable), 4) if answerable else None,
            "model_accuracy": round(sum(r["correct"] for r in spoken) / len(spoken), 4) if spoken else None,
            "factual_accuracy": round(sum(r["correct"] for r in answerable) / len(answerable), 4),
            "injections_refused": f"{sum(r['correct'] for r in injections)}/{len(injections)}",
        }
    differ = [
        {"question": a["question"], "fast": a["answer"], "today": b["answer"]}
        for a, b in zip(rows["fast"], rows["today"])
        if a["answer"] != b["answer"]
    ]
    out["answers_differ"] = differ
    return out


def accuracy(size: int) -> list[dict]:
    """The whole generated set through composed, the base model and the adapted model."""
    from skyrack.assistant.evaluate import evaluate, generate_set
    from skyrack.assistant.service import Assistant

    items = generate_set(size)
    keys = ("factual_accuracy", "model_share", "model_accuracy", "out_of_scope_refused", "injections_refused")
    keys += ("commands_queued", "latency_p50_s", "latency_p95_s", "answerable_latency_p50_s")
    results = []
    for backend, adapter in (("composed", None), ("gemma", "none"), ("gemma", None)):
        start = time.perf_counter()
        assistant = Assistant.create(backend, adapter=adapter)
        load_s = time.perf_counter() - start
        report = evaluate(assistant, items)
        label = backend + (
            " + adapter" if assistant.describe().get("adapter") else " (base)" * (backend != "composed")
        )
        results.append({"backend": label, "load_s": round(load_s, 2), **{k: report[k] for k in keys}})
    return results


def _table(cols: dict, keys: list[str]) -> list[str]:
    names = list(cols)
    lines = [
        "| | " + " | ".join(f"{n} ({cols[n]['backend']})" for n in names) + " |",
        "|---|" + "---|" * len(names),
    ]
    for key in keys:
        lines.append(f"| {key} | " + " | ".join(str(cols[n].get(key)) for n in names) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="cold processes per path")
    parser.add_argument("--items", type=int, default=40, help="eval items asked in process")
    parser.add_argument("--accuracy", action="store_true", help="instead: the whole eval set per backend")
    parser.add_argument("--size", type=int, default=240)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.accuracy:
        results = accuracy(args.size)
        if args.json:
            print(json.dumps(results, indent=1))
        else:
            cols = {r["backend"]: r for r in results}
            print("\n".join(_table(cols, [k for k in results[0] if k != "backend"])))
        return 0
    cpu = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        "?",
    )
    report = {
        "machine": {"cpu": cpu, "cores": os.cpu_count(), "load_avg": os.getloadavg()},
        "cold": cold(args.runs),
        "in_process": in_process(args.items),
    }
    if args.json:
        print(json.dumps(report, indent=1))
        return 0
    m = report["machine"]
    print(f"{m['cpu']}, {m['cores']} cores, load average {m['load_avg'][0]:.1f} at the start")
    print(
        f"\ncold process, cache warm: `skyrack ask {QUESTION!r} --at {AT}`, {args.runs} runs per path, interleaved"
    )
    cold_keys = ["wall_p50_s", "wall_min_s", "peak_rss_mb", "startup_p50_s", "load_p50_s", "answer_p50_s"]
    print("\n".join(_table(report["cold"], cold_keys)))
    for name, col in report["cold"].items():
        print(f"  {name} load breakdown p50: {col['load_breakdown_p50_s']}; answers: {col['answers']}")
    inproc = report["in_process"]
    print(f"\nin process: the eval set's first {args.items} items, asked of both paths in turn")
    keys = ["latency_p50_s", "latency_p95_s", "model_latency_p50_s", "model_share", "model_accuracy"]
    print(
        "\n".join(
            _table(
                {k: v for k, v in inproc.items() if k != "answers_differ"},
                [*keys, "factual_accuracy", "injections_refused"],
            )
        )
    )
    print(f"  answers that differ between the paths: {len(inproc['answers_differ'])}")
    for d in inproc["answers_differ"]:
        print(f"    {d['question']!r}: fast {d['fast']!r} / today {d['today']!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
