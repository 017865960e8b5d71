"""A fault campaign: the same training run twice with one seed, fault-free and under injection,
and every injected fault classified against the fault-free run.

Classification (per fault, at the end):
  * recovered - erased by a recovery that protection triggered (snapshot restore + replay), or
                carried out and survived (an interrupt: restart from the last verified checkpoint;
                a storage corruption: refused by its sha256, the previous good checkpoint used);
  * masked    - no effect: the run's state after the fault is bitwise equal to the fault-free
                run's at the same step, or the fault was erased by a restart, or (storage) the
                corrupted checkpoint was never read. A fault that changed the state but left the
                final validation loss within `tolerance` is counted masked with effect "drift";
  * silent    - undetected, the state diverged from the fault-free run, and the final validation
                loss is off by more than `tolerance` (or not finite).

The oracle is a trace: the fingerprint of parameters and optimizer moments after every step of
both runs (recorded at the trainer's after_step hook, so replays overwrite discarded steps).
Once the traces part, later undetected faults cannot be told apart; each is classified by the
run's final outcome (the conservative choice).
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import random
import tempfile
import time
from pathlib import Path

from skyrack.faults.inject import KINDS, Fault, schedule, schedule_from_rate
from skyrack.faults.runtime import ProtectedRun, observe_step

TOLERANCE = 0.01


def small_config(steps: int = 300, seed: int = 1337):
    from skyrack.train.config import ModelConfig, TrainConfig
    model = ModelConfig(block_size=32, n_layer=2, n_head=2, n_embd=64, dropout=0.0)
    train = TrainConfig(steps=steps, batch_size=16, optimizer="adamw", lr=3e-3, warmup_steps=20,
                        eval_interval=10**9, eval_windows=128, checkpoint_interval=25,
                        keep_checkpoints=3, seed=seed, grad_clip=1.0)
    return model, train


def generated_corpus(lines: int = 1500, seed: int = 7) -> str:
    """A small play from a tiny grammar: learnable in a few hundred steps on a CPU."""
    rng = random.Random(seed)
    speakers = ["HAMLET", "OPHELIA", "HORATIO", "GERTRUDE", "POLONIUS", "LAERTES"]
    verbs = ["doth love", "shall see", "must fear", "would praise", "cannot find"]
    objects = ["the ghost", "my lord", "this night", "the king", "sweet Denmark", "a crown"]
    out = []
    for _ in range(lines):
        out.append(f"{rng.choice(speakers)}:\nI {rng.choice(verbs)} {rng.choice(objects)}, "
                   f"and {rng.choice(objects)} {rng.choice(verbs)} me.\n")
    return "\n".join(out)


def dataset_for(data_file: str | None = None):
    from skyrack.train.data import build_dataset, read_text_file
    text = read_text_file(data_file) if data_file else generated_corpus()
    name = str(data_file) if data_file else "generated-play"
    return build_dataset(text, name, hashlib.sha256(text.encode()).hexdigest(), "tail")


def rate_per_step(stress: float, state_bits: float, step_seconds: float = 1.0, profile: str | None = None) -> float:
    """Upsets a step in the training state: the profile's SEU rate per bit and day times the
    state's bits, for a step of `step_seconds` on orbit, times `stress`."""
    from skyrack.bus.radiation import expected_daily_upsets
    from skyrack.bus.spec import BusSpec
    from skyrack.profile import load_profile
    spec = BusSpec.from_profile(load_profile(profile))
    fraction = state_bits / spec.gpu_bits  # the share of GPU memory the state occupies
    return expected_daily_upsets(spec) * fraction * stress * step_seconds / 86400.0


def classify(faults: list[Fault], trace: dict[int, int], reference: dict[int, int],
             val_loss: float, ref_val_loss: float, tolerance: float = TOLERANCE) -> None:
    onset = next((s for s in sorted(reference) if trace.get(s) != reference[s]), None)
    harmful = not math.isfinite(val_loss) or abs(val_loss - ref_val_loss) > tolerance
    for f in faults:
        f.effect = "none"
        hint = getattr(f, "outcome_hint", None)
        if f.kind == "interrupt":
            f.outcome = "recovered"
        elif hint:
            f.outcome = hint
        elif getattr(f, "erased", None):
            f.outcome = "recovered" if f.erased == "guard" else "masked"
        elif f.kind == "storage" and not hasattr(f, "loaded_at"):
            f.outcome = "masked"   # never read
        elif not f.fired:
            f.outcome = "masked"   # its moment never came (e.g. no checkpoint yet)
        elif onset is None or observe_step(f) < onset:
            f.outcome = "masked"
        else:
            f.effect = "harmful" if harmful else "drift"
            f.outcome = "silent" if harmful else "masked"


def run_campaign(n_faults: int | None = None, stress: float = 1e4, protect: bool = True,
                 seed: int = 1337, steps: int = 300, data_file: str | None = None,
                 tolerance: float = TOLERANCE, model_cfg=None, train_cfg=None, workdir=None) -> dict:
    dataset = dataset_for(data_file)
    if model_cfg is None:
        model_cfg, train_cfg = small_config(steps, seed)
    model_cfg = dataclasses.replace(model_cfg, vocab_size=dataset.tokenizer.vocab_size)
    with tempfile.TemporaryDirectory(prefix="skyrack-faults-", dir=workdir) as tmp:
        clean = ProtectedRun.fresh(model_cfg, train_cfg, dataset, Path(tmp) / "clean", protect=False,
                                   trace=True)
        ref = clean.run()
        if n_faults is None:
            bits = sum(t.numel() * t.element_size() * 8 for t in _state(clean.trainer))
            per_step = rate_per_step(stress, bits)
            faults = schedule_from_rate(per_step, train_cfg.steps, seed)
        else:
            per_step = None
            faults = schedule(n_faults, train_cfg.steps, seed)
        hot = ProtectedRun.fresh(model_cfg, train_cfg, dataset, Path(tmp) / "faulty", protect=protect,
                                 faults=faults, trace=True)
        got = hot.run()
    classify(faults, hot.trace, clean.trace, got["val_loss"], ref["val_loss"], tolerance)
    table = {}
    for kind in KINDS:
        mine = [f for f in faults if f.kind == kind]
        table[kind] = {"injected": len(mine), **{o: sum(f.outcome == o for f in mine)
                                                  for o in ("masked", "recovered", "silent")},
                       "drift": sum(f.effect == "drift" for f in mine)}
    table["total"] = {k: sum(table[c][k] for c in KINDS) for k in table[KINDS[0]]}
    return {"protect": protect, "seed": seed, "steps": train_cfg.steps, "faults_per_step": per_step,
            "stress": stress if n_faults is None else None, "tolerance": tolerance,
            "fault_free": ref, "faulty": got, "table": table,
            "bitwise_equal_final_state": hot.trace.get(train_cfg.steps + 1) == clean.trace.get(train_cfg.steps + 1),
            "overhead": got["seconds"] / ref["seconds"] - 1.0,
            "faults": [{**f.record(), "outcome": f.outcome, "effect": f.effect} for f in faults]}


def _state(trainer):
    from skyrack.faults.guard import state_tensors
    return state_tensors(trainer)
