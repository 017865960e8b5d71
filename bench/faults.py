"""Fault-protection benchmark.

(a) protection overhead per training step with no faults: the same trainer config with the
    Guard off, on without ABFT, and on, interleaved in one process (goal <= 5%);
(b) a campaign of >= 200 injected faults across all classes, protection on (goal: zero silent,
    final val loss within 0.02 of the fault-free run) and off (the damage).

    python3 bench/faults.py [--steps 20] [--rounds 8] [--faults 200] [--campaign-steps 400] [--json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def overhead(steps: int, rounds: int = 3) -> dict:
    """Per-step CPU time of the same trainer config with protection off, on without the ABFT
    checks, and fully on; interleaved in chunks of `steps` steps, `rounds` times, in one
    process (CPU time of this process: the machine is shared, wall time is noise)."""
    from skyrack.faults.campaign import dataset_for
    from skyrack.faults.guard import Guard
    from skyrack.train.config import ModelConfig, TrainConfig
    from skyrack.train.trainer import Trainer
    data = dataset_for()
    model = ModelConfig(block_size=64, n_layer=4, n_head=4, n_embd=128, vocab_size=data.tokenizer.vocab_size)
    train = TrainConfig(steps=10**6, batch_size=24, optimizer="adamw", lr=1e-3, warmup_steps=10)
    modes = {"off": dict(enabled=False), "on_without_abft": dict(abft=False), "on": {}}
    guards = {name: Guard(Trainer(model, train, data, None, device="cpu"), **kw) for name, kw in modes.items()}
    for g in guards.values():
        for _ in range(3):
            g.step()
    per_step = {name: [] for name in modes}
    for _ in range(rounds):
        for name, g in guards.items():
            start = time.process_time()
            for _ in range(steps):
                g.step()
            per_step[name].append((time.process_time() - start) / steps)
    ms = {name: 1e3 * statistics.median(v) for name, v in per_step.items()}
    return {"model": "4 layers x 128, block 64, batch 24, AdamW", "steps": steps, "rounds": rounds,
            "ms_per_step": ms, "false_alarms": {n: g.false_alarms for n, g in guards.items()},
            "overhead": ms["on"] / ms["off"] - 1, "overhead_without_abft": ms["on_without_abft"] / ms["off"] - 1}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=20, help="steps per chunk of the overhead measurement")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--faults", type=int, default=200)
    ap.add_argument("--campaign-steps", type=int, default=400)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)  # one core: steady figures on a shared machine
    from skyrack.faults.campaign import run_campaign
    from skyrack.faults.commands import render
    result = {"threads": torch.get_num_threads(), "overhead": overhead(args.steps, args.rounds), "campaigns": {}}
    o = result["overhead"]
    ms = o["ms_per_step"]
    print(f"(a) {o['model']}: {ms['off']:.1f} ms/step off, {ms['on_without_abft']:.1f} on without ABFT "
          f"({100 * o['overhead_without_abft']:+.1f}%), {ms['on']:.1f} on ({100 * o['overhead']:+.1f}%); "
          f"false alarms (recomputed steps) {o['false_alarms']['on']}", flush=True)
    for protect in (True, False):
        r = run_campaign(n_faults=args.faults, protect=protect, steps=args.campaign_steps)
        result["campaigns"]["on" if protect else "off"] = {k: v for k, v in r.items() if k != "faults"}
        print("\n(b) " + render(r), flush=True)
    if args.json:
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
