"""The infer workload's benchmark: a batch of prompts decoded together (the job's path, one
left-padded batch) beside the same prompts run one job each (an unbatched loop: the reference),
through the same loaded Gemma 3 270M, greedy, in the same run and interleaved round by round, so
a loaded machine slows both alike.

Reported: generated tokens/s of each (wall, here), the speed-up, the completions that differ
between the two (padding is masked, so none should, barring float ties), the model's load time
(paid once a process), the calibrated rates and the estimate beside the measured wall time.

    .venv/bin/python bench/infer.py [--prompts 8] [--max-tokens 24] [--rounds 2] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PROMPTS = (
    "Describe what a weather satellite sees over the Sahara at noon.",
    "List three uses of infrared imagery for farmers.",
    "Write one sentence about wildfire smoke seen from orbit.",
    "What is a sun-synchronous orbit?",
    "Summarise why ships are easy to spot in radar images.",
    "Explain in two sentences how a solar array powers a satellite in eclipse.",
    "Give a short weather report for a coastal city in autumn.",
    "Translate 'clear skies tonight' into French.",
    "What does a ground station do during a pass?",
    "Name two crops that grow well in river deltas.",
    "Write a haiku about the night side of the Earth.",
    "Why does a satellite's battery cycle every orbit?",
    "What makes clouds bright in visible imagery?",
    "Describe a glacier in one sentence.",
    "How long does a low Earth orbit last?",
    "Suggest a name for a small Earth-observation satellite.",
)


def cpu() -> str:
    model = next(
        (line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
        "?",
    )
    flags = set(
        next(
            (line.split(":", 1)[1].split() for line in open("/proc/cpuinfo") if line.startswith("flags")), []
        )
    )
    have = [f for f in ("avx2", "fma", "f16c", "avx512f", "avx512_bf16", "amx_tile") if f in flags]
    return f"{model} ({'/'.join(have) or 'no AVX2'})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prompts", type=int, default=8, help="prompts in the batch (1..16)")
    ap.add_argument("--max-tokens", type=int, default=24)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if not 1 <= args.prompts <= len(PROMPTS):
        raise SystemExit(f"--prompts must be within 1..{len(PROMPTS)}")

    import os

    import torch

    from skyrack.jobs import infer

    load_start = time.perf_counter()
    infer._model()
    load_s = time.perf_counter() - load_start
    texts = list(PROMPTS[: args.prompts])
    params = {"max_tokens": args.max_tokens}
    batch_payload = json.dumps(texts).encode()
    rates = infer.rates(refresh=True)  # measured now, beside the figures (and cached for the estimate)
    est = infer.estimate(params, batch_payload)

    batched = {"tokens": 0, "wall_s": 0.0}
    loop = {"tokens": 0, "wall_s": 0.0}
    differ = 0
    for _ in range(args.rounds):  # interleaved: one batch, then the same prompts one job each
        start = time.perf_counter()
        out = infer.run(params, batch_payload, seed=0)
        batched["wall_s"] += time.perf_counter() - start
        batched["tokens"] += out.summary["tokens"]
        together = [c["text"] for c in json.loads(out.result)["completions"]]
        alone = []
        start = time.perf_counter()
        for text in texts:
            one = infer.run(params, json.dumps([text]).encode(), seed=0)
            loop["tokens"] += one.summary["tokens"]
            alone.append(json.loads(one.result)["completions"][0]["text"])
        loop["wall_s"] += time.perf_counter() - start
        differ += sum(a != b for a, b in zip(together, alone))
    for row in (batched, loop):
        row["tokens_per_s"] = round(row["tokens"] / row["wall_s"], 2)
        row["wall_s"] = round(row["wall_s"], 2)
    result = {
        "machine": cpu(),
        "load_average": round(os.getloadavg()[0], 2),
        "torch_threads": torch.get_num_threads(),
        "prompts": args.prompts,
        "max_tokens": args.max_tokens,
        "rounds": args.rounds,
        "model_load_s": round(load_s, 2),
        "batched": batched,
        "unbatched_loop": loop,
        "speedup": round(batched["tokens_per_s"] / loop["tokens_per_s"], 2),
        "completions_differing": differ,
        "estimate_wall_s": round(est.wall_s, 2),
        "measured_wall_s_per_batch": round(batched["wall_s"] / args.rounds, 2),
        "rates": {k: rates[k] for k in rates if k.startswith(("prefill", "decode"))},
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    print(
        f"{result['machine']}, load average {result['load_average']}, {result['torch_threads']} torch threads"
    )
    print(
        f"Gemma 3 270M loaded in {load_s:.1f} s; {args.prompts} prompts x {args.max_tokens} tokens, {args.rounds} rounds"
    )
    print(
        f"  reference, one job per prompt: {loop['tokens_per_s']:8.2f} tokens/s ({loop['tokens']} in {loop['wall_s']} s)"
    )
    print(
        f"  one batch (the job's path):   {batched['tokens_per_s']:8.2f} tokens/s "
        f"({batched['tokens']} in {batched['wall_s']} s): {result['speedup']}x"
    )
    print(f"  completions differing between the two: {differ} of {args.prompts * args.rounds}")
    print(
        f"  estimate {result['estimate_wall_s']} s per batch, measured {result['measured_wall_s_per_batch']} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
