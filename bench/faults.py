"""Fault-protection benchmark.

(a) protection overhead per training step with no faults: the same trainer config with the
    Guard on and off, interleaved in one process (goal <= 5%);
(b) a campaign of >= 200 injected faults across all classes, protection on (goal: zero silent,
    final val loss within 0.02 of the fault-free run) and off (the damage).

    python3 bench/faults.py [--steps 100] [--faults 200] [--campaign-steps 400] [--json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def overhead(steps: int, rounds: int = 3) -> dict:
    from skyrack.faults.campaign import dataset_for
    from skyrack.faults.guard import Guard
    from skyrack.train.config import ModelConfig, TrainConfig
    from skyrack.train.trainer import Trainer
    data = dataset_for()
    model = ModelConfig(block_size=64, n_layer=4, n_head=4, n_embd=128, vocab_size=data.tokenizer.vocab_size)
    train = TrainConfig(steps=10**6, batch_size=24, optimizer="adamw", lr=1e-3, warmup_steps=10)
    per_step = {True: [], False: []}
    for _ in range(rounds):
        for protect in (False, True):
            trainer = Trainer(model, train, data, None, device="cpu")
            guard = Guard(trainer, enabled=protect)
            for _ in range(5):
                guard.step()
            start = time.perf_counter()
            for _ in range(steps):
                guard.step()
            per_step[protect].append((time.perf_counter() - start) / steps)
    off, on = statistics.median(per_step[False]), statistics.median(per_step[True])
    return {"model": "4 layers x 128, block 64, batch 24, AdamW", "steps": steps, "rounds": rounds,
            "ms_per_step_off": 1e3 * off, "ms_per_step_on": 1e3 * on, "overhead": on / off - 1}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--faults", type=int, default=200)
    ap.add_argument("--campaign-steps", type=int, default=400)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    from skyrack.faults.campaign import run_campaign
    from skyrack.faults.commands import render
    result = {"threads": torch.get_num_threads(), "overhead": overhead(args.steps), "campaigns": {}}
    o = result["overhead"]
    print(f"(a) {o['model']}: {o['ms_per_step_off']:.2f} ms/step off, {o['ms_per_step_on']:.2f} on "
          f"-> overhead {100 * o['overhead']:+.1f}%", flush=True)
    for protect in (True, False):
        r = run_campaign(n_faults=args.faults, protect=protect, steps=args.campaign_steps)
        result["campaigns"]["on" if protect else "off"] = {k: v for k, v in r.items() if k != "faults"}
        print("\n(b) " + render(r), flush=True)
    if args.json:
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
