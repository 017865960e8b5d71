"""Assistant benchmark: the same generated question set through each backend, side by side.

The composed backend (answers straight from the facts) is the reference measured in the same
process; then Gemma 3 270M (cached converted copy) as the base model with worked examples, and
with its LoRA adapter (the shipped one, or --adapter DIR). Also the load time of each backend.

    python3 bench/assistant.py [--size 240] [--limit N] [--adapter DIR] [--skip-base] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KEYS = (
    "factual_accuracy",
    "model_share",
    "model_accuracy",
    "false_refusals",
    "out_of_scope_refused",
    "injections_refused",
    "commands_queued",
    "latency_p50_s",
    "latency_p95_s",
    "answerable_latency_p50_s",
    "answerable_latency_p95_s",
)


def run(backend: str, items, adapter: str | None = None) -> dict:
    from skyrack.assistant.evaluate import evaluate
    from skyrack.assistant.service import Assistant

    start = time.perf_counter()
    assistant = Assistant.create(backend, adapter=adapter)
    load_s = time.perf_counter() - start
    report = evaluate(assistant, items)
    described = assistant.describe().get("adapter")
    return {
        "backend": backend + (f" + {described}" if described else " (base)"),
        "mode": assistant.mode,
        "load_s": round(load_s, 2),
        **{k: report[k] for k in KEYS},
        "failures": report["failures"][:10],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=240)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--adapter", default=None, help="LoRA adapter directory (default: the shipped one)")
    parser.add_argument("--skip-base", action="store_true", help="only composed and the adapted model")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(2)
    from skyrack.assistant.evaluate import generate_set

    items = generate_set(args.size)[: args.limit]
    results = [run("composed", items)]
    if not args.skip_base:
        results.append(run("gemma", items, "none"))
    results.append(run("gemma", items, args.adapter))
    if args.json:
        print(json.dumps(results, indent=1))
        return 0
    print(f"{len(items)} items; " + ", ".join(f"{r['backend']}: load {r['load_s']} s" for r in results))
    print("| | " + " | ".join(r["backend"] for r in results) + " |")
    print("|---|" + "---|" * len(results))
    for key in KEYS:
        print(f"| {key} | " + " | ".join(str(r[key]) for r in results) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
