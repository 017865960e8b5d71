"""Fault-protection benchmark.

(a) protection overhead per training step with no faults: the same trainer config with the
    Guard off, on without ABFT, on with the ABFT on torch (the reference for the compiled checks),
    and on, interleaved in one process (goal <= 5%), for nanoGPT's
    Shakespeare model, the mission's default and a small AdamW model;
(b) a campaign of >= 200 injected faults across all classes, protection on (goal: zero silent,
    final val loss within 0.02 of the fault-free run) and off (the damage).

    python3 bench/faults.py [--configs nanogpt,cpu,small-adamw] [--steps 20] [--rounds 8] [--faults 200] [--campaign-steps 400] [--json]
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


# The configs whose protection overhead is measured: nanoGPT's Shakespeare model (the workload of
# the mission statement), the mission's default (the `cpu` preset) and the small AdamW model the
# campaign family uses. The checks cost O(size of a GEMM's operands) against the GEMM's
# O(size x width), so their share falls as the model widens.
CONFIGS = {
    "nanogpt": ("preset nanogpt: 6 layers x 384, block 256, batch 64, AdamW, dropout 0.2", "nanogpt", {}),
    "cpu": ("preset cpu (the mission's default): 4 layers x 128, block 64, batch 24, Muon", "cpu", {}),
    "small-adamw": (
        "4 layers x 128, block 64, batch 24, AdamW",
        "cpu",
        dict(optimizer="adamw", lr=1e-3, warmup_steps=10),
    ),
}


def overhead(config: str, steps: int, rounds: int = 3) -> dict:
    """Per-step CPU time of the same trainer config with protection off, on without the ABFT
    checks, with them on torch, and fully on; `rounds` x `steps` steps of each, interleaved
    step by step in one process, medians (CPU time of this process: the machine is shared, wall
    time is noise)."""
    import dataclasses

    from skyrack.faults.campaign import dataset_for
    from skyrack.faults.guard import Guard
    from skyrack.train.config import preset
    from skyrack.train.trainer import Trainer

    data = dataset_for()
    label, preset_name, train_overrides = CONFIGS[config]
    model, train = preset(preset_name, steps=10**6, **train_overrides)
    model = dataclasses.replace(model, vocab_size=data.tokenizer.vocab_size)
    # "on_torch_abft" is the reference for the compiled checks: the same guard with its ABFT on
    # torch's eager operations, as before skyrack.faults.native (its fingerprint stays compiled)
    modes = {"off": dict(enabled=False), "on_without_abft": dict(abft=False), "on_torch_abft": {}, "on": {}}
    guards = {
        name: Guard(Trainer(model, train, data, None, device="cpu"), **kw) for name, kw in modes.items()
    }
    guards["on_torch_abft"].abft.native = None
    for g in guards.values():
        for _ in range(2):
            g.step()
    per_step = {name: [] for name in modes}
    names = list(guards)
    # one step of each mode in turn, each mode in each place of the order in turn: the machine's
    # slow drifts (other tenants) then fall on every mode alike; chunks of several steps a mode
    # moved the A/B figures by +-10 % from run to run
    for i in range(rounds * steps):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            start = time.process_time()
            guards[name].step()
            per_step[name].append(time.process_time() - start)
    ms = {name: 1e3 * statistics.median(v) for name, v in per_step.items()}
    return {
        "config": config,
        "model": label,
        "steps": steps,
        "rounds": rounds,
        "ms_per_step": ms,
        "inside_checks": inside_checks(guards["on"], steps),
        "false_alarms": {n: g.false_alarms for n, g in guards.items()},
        "overhead": ms["on"] / ms["off"] - 1,
        "overhead_without_abft": ms["on_without_abft"] / ms["off"] - 1,
        "overhead_torch_abft": ms["on_torch_abft"] / ms["off"] - 1,
    }


def inside_checks(guard, steps: int) -> dict:
    """`inside_checks_of` the guard as it is, and with its ABFT on torch (the reference)."""
    native = guard.abft.native
    shares = inside_checks_of(guard, steps)
    guard.abft.native = None
    try:
        shares["abft_torch"] = inside_checks_of(guard, steps)["abft"]
    finally:
        guard.abft.native = native
    return shares


def inside_checks_of(guard, steps: int) -> dict:
    """A low-noise second view of the cost: the CPU time spent inside the ABFT checks and the
    integrity fingerprints, as a share of the protected step (what the A/B figure measures with
    the noise of separate chunks, less the cache effects the checks have on the GEMMs)."""
    import skyrack.faults.guard as guard_module

    spent = {"abft": 0.0, "fingerprints": 0.0}
    abft, word_sums = guard.abft, guard_module.word_sums

    def timed(fn, account):
        def call(*args):
            start = time.process_time()
            try:
                return fn(*args)
            finally:
                spent[account] += time.process_time() - start

        return call

    checks = ("after_forward", "after_backward", "worst")
    for name in checks:  # instance attributes shadow the methods while timed
        setattr(abft, name, timed(getattr(abft, name), "abft"))
    guard_module.word_sums = timed(word_sums, "fingerprints")
    try:
        start = time.process_time()
        for _ in range(steps):
            guard.step()
        total = time.process_time() - start
    finally:
        for name in checks:
            delattr(abft, name)
        guard_module.word_sums = word_sums
    return {name: value / total for name, value in spent.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--configs", default="nanogpt,cpu,small-adamw", help=f"comma-separated, of {', '.join(CONFIGS)}"
    )
    ap.add_argument(
        "--steps",
        type=int,
        default=20,
        help="the overhead measurement takes rounds x steps steps of each mode, interleaved "
        "(nanogpt: a tenth of the steps, at least 1, and at most 3 rounds; its steps are ~40x longer)",
    )
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--faults", type=int, default=200, help="0: no campaign, only the overhead")
    ap.add_argument("--campaign-steps", type=int, default=400)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)  # one core: steady figures on a shared machine
    from skyrack.faults.campaign import run_campaign
    from skyrack.faults.commands import render

    result = {"threads": torch.get_num_threads(), "overhead": [], "campaigns": {}}
    for config in args.configs.split(","):
        if config not in CONFIGS:
            sys.exit(f"bench/faults.py: unknown config {config!r}; one of {', '.join(CONFIGS)}")
        steps = max(1, args.steps // 10) if config == "nanogpt" else args.steps
        rounds = min(args.rounds, 3) if config == "nanogpt" else args.rounds
        o = overhead(config, steps, rounds)
        result["overhead"].append(o)
        ms = o["ms_per_step"]
        print(
            f"(a) {o['model']}: {ms['off']:.1f} ms/step off, {ms['on_without_abft']:.1f} on without ABFT "
            f"({100 * o['overhead_without_abft']:+.1f}%), {ms['on_torch_abft']:.1f} on with the torch ABFT "
            f"(reference, {100 * o['overhead_torch_abft']:+.1f}%), {ms['on']:.1f} on ({100 * o['overhead']:+.1f}%; "
            f"goal <= 5%); inside the checks: ABFT {100 * o['inside_checks']['abft']:.1f}% "
            f"(torch reference {100 * o['inside_checks']['abft_torch']:.1f}%), fingerprints "
            f"{100 * o['inside_checks']['fingerprints']:.1f}% of a protected step; "
            f"false alarms (recomputed steps) {o['false_alarms']['on']}",
            flush=True,
        )
    for protect in (True, False) if args.faults else ():
        r = run_campaign(n_faults=args.faults, protect=protect, steps=args.campaign_steps)
        result["campaigns"]["on" if protect else "off"] = {k: v for k, v in r.items() if k != "faults"}
        print("\n(b) " + render(r), flush=True)
    if args.json:
        print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
