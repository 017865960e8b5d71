"""Wall time to a target validation loss on tiny Shakespeare, skyrack's recipe beside nanoGPT's.

    python3 bench/train_speed.py                  # CPU: target 1.88, then nanoGPT's CPU recipe
    python3 bench/train_speed.py --device cuda    # GPU: target 1.47, nanoGPT's GPU-recipe model
    python3 bench/train_speed.py --skip-reference # only skyrack's run

Runtime on an idle 2-core AVX2 machine: about 3 minutes (nanoGPT's 2000 iterations are two
thirds of it). The machine comes first: the CPU's model and vector extensions (AVX2, AVX-512,
AVX-512 BF16, AMX), the threads torch uses, then (CPU) the time of one step of the cpu preset
with Muon orthogonalizing in float32 and in bf16, interleaved in this process, and the
precision skyrack picks here.

Data: `<repo>/../shared/data/tinyshakespeare.txt` (skipped with a message when absent), split as
nanoGPT's prepare.py does: the first 90% trains, the contiguous last 10% (111,540 characters)
validates; vocabulary from the whole file.

The two runs are interleaved in one process, a few steps of one then a few of the other, each
timed on its own clock (the wall time inside its own chunks), so that both share whatever else
the machine does. skyrack's run is timed from building the model to the first evaluation whose
loss is at or below the target, evaluations included. Its validation loss is measured honestly: the mean
cross-entropy over the WHOLE validation split, cut into consecutive windows of block_size + 1
characters (the exact expectation of nanoGPT's random-window estimate, without its noise).

The reference is nanoGPT's recipe run with skyrack's model code configured identically (the
model is architecturally nanoGPT's): CPU 4 layers, 4 heads, 128 wide, block 64, batch 12, AdamW
lr 1e-3 cosine to 1e-4, warmup 100, beta2 0.99, weight decay 0.1, clip 1.0, dropout 0,
2000 iterations, evaluating every 250 iterations (iteration 0 included) on 20 random train and
20 random validation batches, as nanoGPT's estimate_loss does; GPU: 6/6/384, block 256, batch
64, dropout 0.2, 5000 iterations, 200 eval batches. It is timed for its whole run; its final
loss is printed both as nanoGPT's 20-batch estimate and on the whole validation split.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from skyrack.train.config import TrainConfig, preset  # noqa: E402
from skyrack.train.data import build_dataset, eval_offsets  # noqa: E402
from skyrack.train.hardware import cpu_info  # noqa: E402
from skyrack.train.trainer import Trainer, muon_precision  # noqa: E402

DATA = REPO.parent / "shared" / "data" / "tinyshakespeare.txt"

# skyrack's recipes: the fastest found to the target (see BENCHMARKS.md).
OURS = {
    "cpu": dict(
        target=1.88,
        preset="nanogpt-cpu",
        train=dict(
            steps=340,
            batch_size=24,
            optimizer="muon",
            lr=6e-3,
            muon_lr=0.03,
            warmup_steps=20,
            min_lr_ratio=0.1,
            weight_decay=0.0,
        ),
        eval_at=(0.88, 1.0),
    ),
    "cuda": dict(
        target=1.47,
        preset="nanogpt",
        train=dict(
            steps=2500, batch_size=64, optimizer="muon", lr=2e-3, muon_lr=0.02, warmup_steps=100, compile=True
        ),
        eval_at=(0.6, 0.7, 0.8, 0.9, 1.0),
    ),
}
REFERENCE = {"cpu": dict(preset="nanogpt-cpu", eval_iters=20), "cuda": dict(preset="nanogpt", eval_iters=200)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class Clock:
    """Wall seconds spent inside `with clock:` blocks: one run's own time while two interleave."""

    def __init__(self, device: str):
        self.device, self.total = torch.device(device), 0.0

    def __enter__(self):
        self._t0 = time.perf_counter()

    def __exit__(self, *exc):
        sync(self.device)
        self.total += time.perf_counter() - self._t0


def interleave(*runs) -> None:
    """Advance generator runs in turn, one chunk each, until all are done: both runs of the
    benchmark then share whatever else the machine is doing."""
    active = list(runs)
    while active:
        for run in list(active):
            try:
                next(run)
            except StopIteration:
                active.remove(run)


def run_ours(dataset, kind: str, device: str, overrides: dict, out: dict, chunk: int = 5):
    """A generator: skyrack's run, `chunk` steps at a time; fills `out`."""
    recipe = OURS[kind]
    model_cfg, train_cfg = preset(
        recipe["preset"], vocab_size=dataset.tokenizer.vocab_size, **{**recipe["train"], **overrides}
    )
    model_cfg = dataclasses.replace(model_cfg, vocab_size=dataset.tokenizer.vocab_size)
    eval_steps = sorted({max(1, round(f * train_cfg.steps)) for f in recipe["eval_at"]})
    clock = Clock(device)
    with clock:
        trainer = Trainer(model_cfg, dataclasses.replace(train_cfg, eval_windows=0), dataset, device=device)
    history, reached = [], None
    while trainer.state.step < train_cfg.steps and reached is None:
        yield
        with clock:
            for _ in range(chunk):
                trainer.step()
                if trainer.state.step in eval_steps:
                    val = trainer.evaluate()
                    break
                if trainer.state.step >= train_cfg.steps:
                    break
        if trainer.state.step in eval_steps and (not history or history[-1][0] != trainer.state.step):
            history.append((trainer.state.step, round(val, 4), round(clock.total, 2)))
            print(f"  ours  step {trainer.state.step:5d}  val {val:.4f}  {history[-1][2]:7.2f} s", flush=True)
            if val <= recipe["target"]:
                reached = history[-1]
    out.update(
        model=dataclasses.asdict(model_cfg),
        train=dataclasses.asdict(train_cfg),
        target=recipe["target"],
        reached=reached,
        history=history,
        wall_s=round(clock.total, 2),
    )


@torch.no_grad()
def nanogpt_estimate(trainer: Trainer, split, eval_iters: int, gen: torch.Generator) -> float:
    """nanoGPT's estimate_loss for one split: mean loss of `eval_iters` random batches."""
    trainer.model.eval()
    block, batch = trainer.model_cfg.block_size, trainer.cfg.batch_size
    losses = []
    for _ in range(eval_iters):
        ix = torch.randint(split.n_tokens - block, (batch,), generator=gen).numpy() + split.segments[0][0]
        x, y = split.windows(ix, block)
        with trainer.autocast:
            losses.append(trainer.model(x.to(trainer.device), y.to(trainer.device))[1].float())
    trainer.model.train()
    return float(torch.stack(losses).mean())


def precision_steps(dataset, rounds: int = 4, steps: int = 3) -> dict:
    """Wall ms of one step of the cpu preset with Muon orthogonalizing in float32 and in bf16:
    both trainers built first, then `rounds` x `steps` steps of each, interleaved (median)."""
    trainers = {}
    for precision in ("float32", "bfloat16"):
        model_cfg, train_cfg = preset(
            "cpu", vocab_size=dataset.tokenizer.vocab_size, muon_precision=precision
        )
        trainers[precision] = Trainer(model_cfg, train_cfg, dataset, device="cpu")
        trainers[precision].step()  # warm up
    times = {k: [] for k in trainers}
    for _ in range(rounds):
        for precision, trainer in trainers.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                trainer.step()
            times[precision].append((time.perf_counter() - t0) / steps * 1000)
    dtype, why = muon_precision(preset("cpu")[1], torch.device("cpu"))
    out = {k: round(sorted(v)[len(v) // 2], 1) for k, v in times.items()}
    out["chosen"] = str(dtype).removeprefix("torch.")
    out["why"] = why
    return out


def run_reference(dataset, kind: str, device: str, out: dict, chunk: int = 10):
    """A generator: nanoGPT's recipe, `chunk` iterations at a time; fills `out`."""
    ref = REFERENCE[kind]
    model_cfg, train_cfg = preset(
        ref["preset"], vocab_size=dataset.tokenizer.vocab_size, compile=(kind == "cuda")
    )
    gen = torch.Generator().manual_seed(1337)
    clock = Clock(device)
    with clock:
        trainer = Trainer(model_cfg, train_cfg, dataset, device=device)
    history, last_eval = [], -1
    while True:
        yield
        with clock:
            for _ in range(chunk):
                step = trainer.state.step
                if step % train_cfg.eval_interval == 0 and step != last_eval:
                    tr = nanogpt_estimate(trainer, dataset.train, ref["eval_iters"], gen)
                    val = nanogpt_estimate(trainer, dataset.val, ref["eval_iters"], gen)
                    last_eval = step
                    break
                if step >= train_cfg.steps:
                    break
                trainer.step()
        if last_eval == trainer.state.step and (not history or history[-1][0] != last_eval):
            history.append((last_eval, round(tr, 4), round(val, 4), round(clock.total, 2)))
            print(
                f"  nanoGPT recipe  iter {last_eval:5d}  train {tr:.4f}  val {val:.4f}  {history[-1][3]:7.2f} s",
                flush=True,
            )
        if trainer.state.step >= train_cfg.steps and last_eval == trainer.state.step:
            break
    trainer.val_offsets = eval_offsets(dataset.val, model_cfg.block_size, 0)
    full_val = trainer.evaluate()  # not timed: for comparison on the same measure as ours
    out.update(
        model=dataclasses.asdict(model_cfg),
        train=dataclasses.asdict(train_cfg),
        final_val_estimate=history[-1][2],
        final_val_full_split=round(full_val, 4),
        history=history,
        wall_s=round(clock.total, 2),
    )


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("--data", type=Path, default=DATA, help=f"tiny Shakespeare (default: {DATA})")
    p.add_argument("--skip-reference", action="store_true")
    p.add_argument("--skip-precision", action="store_true", help="no float32/bf16 Muon step comparison")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's, one per core)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    for name in (
        "steps",
        "batch_size",
        "lr",
        "muon_lr",
        "muon_precision",
        "warmup_steps",
        "min_lr_ratio",
        "weight_decay",
        "optimizer",
    ):
        kind = type(getattr(TrainConfig(), name))
        p.add_argument("--" + name.replace("_", "-"), type=kind, default=None)
    args = p.parse_args(argv)
    if not args.data.exists():
        print(f"skipped: {args.data} is absent (the benchmark needs tiny Shakespeare there)")
        return 0
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    kind = "cuda" if device.startswith("cuda") else "cpu"
    text = args.data.read_text(encoding="utf-8")
    dataset = build_dataset(text, "tinyshakespeare", hashlib.sha256(text.encode()).hexdigest(), "tail")
    cpu = cpu_info()
    machine = f"{platform.node()}: {cpu.describe()}, torch {torch.__version__}" + (
        f", {torch.cuda.get_device_name()}" if kind == "cuda" else ""
    )
    print(
        f"tiny Shakespeare: {len(text):,} chars, vocab {dataset.tokenizer.vocab_size}, "
        f"train {dataset.train.n_tokens:,} / val {dataset.val.n_tokens:,} (contiguous last 10%)"
    )
    print(f"machine: {machine}")
    overrides = {
        k: v
        for k, v in vars(args).items()
        if k in {f.name for f in dataclasses.fields(TrainConfig)} and v is not None
    }
    result = {
        "machine": machine,
        "cpu": cpu.as_dict(),
        "device": device,
    }
    if kind == "cpu" and not args.skip_precision:
        prec = precision_steps(dataset)
        result["muon_step_ms"] = prec
        print(
            f"cpu preset step (Muon + AdamW, batch 24 x 64): float32 orthogonalization {prec['float32']:.0f} ms, "
            f"bf16 {prec['bfloat16']:.0f} ms; skyrack picks {prec['chosen']} here ({prec['why']})",
            flush=True,
        )
    ours, ref = {}, {}
    runs = [run_ours(dataset, kind, device, overrides, ours)]
    if not args.skip_reference:
        runs.append(run_reference(dataset, kind, device, ref))
    interleave(*runs)
    result["ours"] = ours
    if ours["reached"]:
        print(
            f"skyrack: val {ours['reached'][1]:.4f} <= {ours['target']} at step "
            f"{ours['reached'][0]} after {ours['reached'][2]:.1f} s"
        )
    else:
        print(
            f"skyrack: target {ours['target']} NOT reached in {ours['wall_s']:.1f} s "
            f"(last val {ours['history'][-1][1]})"
        )
    if not args.skip_reference:
        result["reference"] = ref
        print(
            f"nanoGPT recipe: {ref['train']['steps']} iters in {ref['wall_s']:.1f} s, final val "
            f"{ref['final_val_estimate']:.4f} (nanoGPT's {REFERENCE[kind]['eval_iters']}-batch "
            f"estimate), {ref['final_val_full_split']:.4f} on the whole validation split"
        )
        if ours["reached"]:
            ratio = ref["wall_s"] / ours["reached"][2]
            result["speedup"] = round(ratio, 2)
            print(
                f"ratio: nanoGPT recipe {ref['wall_s']:.1f} s / skyrack {ours['reached'][2]:.1f} s "
                f"= {ratio:.2f}x"
            )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
