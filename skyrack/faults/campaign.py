"""A fault campaign: the same training run twice with one seed, fault-free and under injection,
and every injected fault classified against the fault-free run.

Classification (per fault, at the end):
  * recovered - erased by a recovery that protection triggered (the step recomputed, or a
                snapshot restored and replayed), or carried out and survived (an interrupt:
                restart from the last verified checkpoint; a storage corruption: refused by its
                sha256, the previous good checkpoint used);
  * masked    - no effect: the run's state after the fault is bitwise equal to the fault-free
                run's at the same step, or the fault was erased by a restart, or (storage) the
                corrupted checkpoint was never read;
  * rounding  - undetected, the state diverged from the fault-free run, but the corruption was
                no larger than the rounding error the hit value may carry anyway (one ulp of a
                stored value; gamma_k * sum|a_i b_i| for a GEMM output element: what another
                correct GEMM may return). Its own class, never counted as masked; a control run
                (the fault-free run with one parameter moved by one ulp) shows what such a
                divergence does to the final validation loss;
  * silent    - undetected, the state diverged bitwise from the fault-free run, and the
                corruption was larger than rounding.

The oracle is a trace: the fingerprint of parameters and optimizer moments after every step of
both runs (recorded at the trainer's after_step hook, so replays overwrite discarded steps).
Once the traces part, a later undetected fault cannot be shown to have had no effect: it is
rounding or silent by its size (the conservative choice).

With a campaign directory (`run_campaign(directory=D)`) every part of the campaign is saved as it
goes (the configuration and fault schedule, each run's state every 10 steps, each run's result),
atomically, so a campaign killed at any moment resumes (`resume=True`) and ends with the same
classification as one never interrupted.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
import tempfile
from pathlib import Path

from skyrack.errors import UserError
from skyrack.faults.inject import KINDS, Fault, schedule, schedule_from_rate
from skyrack.faults.runtime import ProtectedRun, observe_step
from skyrack.storage import atomic_write_text
from skyrack.train.config import preset

TOLERANCE = 0.02  # the campaign's pass mark: final val loss within this of the fault-free run's (nats)
OUTCOMES = ("masked", "recovered", "rounding", "silent")


# The campaign trains the `tiny` preset and evaluates once, at the end, on more windows.
TINY_OVERRIDES = dict(eval_interval=10**9, eval_windows=128)


def generated_corpus(lines: int = 1500, seed: int = 7) -> str:
    """A small play from a tiny grammar: learnable in a few hundred steps on a CPU."""
    rng = random.Random(seed)
    speakers = ["HAMLET", "OPHELIA", "HORATIO", "GERTRUDE", "POLONIUS", "LAERTES"]
    verbs = ["doth love", "shall see", "must fear", "would praise", "cannot find"]
    objects = ["the ghost", "my lord", "this night", "the king", "sweet Denmark", "a crown"]
    out = []
    for _ in range(lines):
        out.append(
            f"{rng.choice(speakers)}:\nI {rng.choice(verbs)} {rng.choice(objects)}, "
            f"and {rng.choice(objects)} {rng.choice(verbs)} me.\n"
        )
    return "\n".join(out)


def dataset_for(data_file: str | None = None):
    from skyrack.train.data import build_dataset, read_text_file

    text = read_text_file(data_file) if data_file else generated_corpus()
    name = str(data_file) if data_file else "generated-play"
    return build_dataset(text, name, hashlib.sha256(text.encode()).hexdigest(), "tail")


def rate_per_step(stress: float, state_bits: float, step_seconds: float, profile: str | None = None) -> float:
    """Upsets a step in the training state: the profile's SEU rate per bit and day times the
    state's bits, for a step of `step_seconds` on orbit, times `stress`."""
    from skyrack.bus.radiation import SECONDS_PER_DAY, expected_daily_upsets, upsets_per_step
    from skyrack.bus.spec import BusSpec
    from skyrack.profile import load_profile

    spec = BusSpec.from_profile(load_profile(profile))
    gpu_upsets_per_s = expected_daily_upsets(spec) / SECONDS_PER_DAY  # the orbit average
    return upsets_per_step(gpu_upsets_per_s, step_seconds, state_bits, spec.gpu_bits, stress)


def classify(faults: list[Fault], trace: dict[int, bytes], reference: dict[int, bytes]) -> None:
    onset = next((s for s in sorted(reference) if trace.get(s) != reference[s]), None)
    for f in faults:
        if f.kind == "interrupt":
            f.outcome = "recovered"
        elif f.outcome_hint:
            f.outcome = f.outcome_hint
        elif f.erased:
            f.outcome = "recovered" if f.erased == "guard" else "masked"
        elif f.kind == "storage" and f.loaded_at is None:
            f.outcome = "masked"  # never read
        elif not f.fired:
            f.outcome = "masked"  # its moment never came (e.g. no checkpoint yet)
        elif onset is None or observe_step(f) < onset:
            f.outcome = "masked"
        else:
            f.outcome = "rounding" if f.within_rounding else "silent"


def run_campaign(
    n_faults: int | None = None,
    stress: float = 1e4,
    protect: bool = True,
    seed: int = 1337,
    steps: int = 300,
    data_file: str | None = None,
    tolerance: float = TOLERANCE,
    model_cfg=None,
    train_cfg=None,
    workdir=None,
    directory: str | Path | None = None,
    resume: bool = False,
    control: bool = True,
) -> dict:
    """Run (or, with `resume`, continue) a campaign; its parts live under `directory` (a fresh
    temporary one when None)."""
    params = {
        "n_faults": n_faults,
        "stress": stress,
        "protect": protect,
        "seed": seed,
        "steps": steps,
        "data_file": data_file,
        "tolerance": tolerance,
        "control": control,
    }
    if directory is None:
        with tempfile.TemporaryDirectory(prefix="skyrack-faults-", dir=workdir) as tmp:
            return _campaign(Path(tmp), params, model_cfg, train_cfg)
    d = Path(directory)
    spec = d / "campaign.json"
    if resume:
        if not spec.exists():
            raise UserError(f"{d} holds no fault campaign to resume (no campaign.json)")
        saved = json.loads(spec.read_text())
        return _campaign(d, saved["params"], model_cfg, train_cfg)
    if d.exists() and any(d.iterdir()):
        raise UserError(f"campaign directory {d} is not empty (resume it with --resume)")
    return _campaign(d, params, model_cfg, train_cfg)


def _campaign(d: Path, params: dict, model_cfg, train_cfg) -> dict:
    d.mkdir(parents=True, exist_ok=True)
    spec = d / "campaign.json"
    saved = json.loads(spec.read_text()) if spec.exists() else {"params": params}
    if not spec.exists():
        atomic_write_text(spec, json.dumps(saved, indent=1))
    dataset = dataset_for(params["data_file"])
    if model_cfg is None:
        model_cfg, train_cfg = preset("tiny", steps=params["steps"], seed=params["seed"], **TINY_OVERRIDES)
    model_cfg = dataclasses.replace(model_cfg, vocab_size=dataset.tokenizer.vocab_size)

    def part(name: str, **kw) -> tuple[ProtectedRun, dict]:
        run = ProtectedRun.fresh(
            model_cfg, train_cfg, dataset, d / name / "run", trace=True, state_dir=d / name / "state", **kw
        )
        done = d / name / "result.json"
        if done.exists():  # finished before an interruption: its record is enough
            rec = json.loads(done.read_text())
            run.trace = {int(k): bytes.fromhex(v) for k, v in rec.pop("trace").items()}
            return run, rec
        out = run.run()
        out["faults_detail"] = [f.record() for f in run.faults]
        atomic_write_text(done, json.dumps({**out, "trace": {str(k): v.hex() for k, v in run.trace.items()}}))
        return run, out

    clean, ref = part("clean", protect=False)
    per_step = step_seconds = None
    if "faults" not in saved:
        if params["n_faults"] is None:
            bits = ref["state_bits"]
            step_seconds = ref["seconds_per_step"]
            per_step = rate_per_step(params["stress"], bits, step_seconds)
            faults = schedule_from_rate(per_step, train_cfg.steps, params["seed"])
        else:
            faults = schedule(params["n_faults"], train_cfg.steps, params["seed"])
        saved.update(faults=[f.record() for f in faults], faults_per_step=per_step, step_seconds=step_seconds)
        atomic_write_text(spec, json.dumps(saved, indent=1))
    faults = [Fault(**r) for r in saved["faults"]]
    hot, got = part("faulty", protect=params["protect"], faults=faults)
    faults = [Fault(**r) for r in got["faults_detail"]]
    classify(faults, hot.trace, clean.trace)
    table = {}
    for kind in KINDS:
        mine = [f for f in faults if f.kind == kind]
        table[kind] = {"injected": len(mine), **{o: sum(f.outcome == o for f in mine) for o in OUTCOMES}}
    table["total"] = {k: sum(table[c][k] for c in KINDS) for k in table[KINDS[0]]}
    steps = train_cfg.steps
    result = {
        "protect": params["protect"],
        "seed": params["seed"],
        "steps": steps,
        "faults_per_step": saved.get("faults_per_step"),
        "step_seconds": saved.get("step_seconds"),
        "stress": params["stress"] if params["n_faults"] is None else None,
        "tolerance": params["tolerance"],
        "fault_free": {k: v for k, v in ref.items() if k != "faults_detail"},
        "faulty": {k: v for k, v in got.items() if k != "faults_detail"},
        "table": table,
        "val_loss_within_tolerance": math.isfinite(got["val_loss"])
        and abs(got["val_loss"] - ref["val_loss"]) <= params["tolerance"],
        "bitwise_equal_final_state": hot.trace.get(steps + 1) == clean.trace.get(steps + 1),
        "overhead": got["seconds"] / ref["seconds"] - 1.0,
        "faults": [f.record() for f in faults],
    }
    if params.get("control", True) and table["total"]["rounding"]:
        result["control"] = one_ulp_control(model_cfg, train_cfg, dataset, faults, ref["val_loss"])
    atomic_write_text(d / "result.json", json.dumps(result, indent=1))
    return result


def one_ulp_control(model_cfg, train_cfg, dataset, faults: list[Fault], ref_val_loss: float) -> dict:
    """The fault-free run with one parameter element moved by one ulp (its lowest mantissa bit
    flipped) after the step of the first rounding-class fault: how far rounding alone takes the
    final validation loss."""
    from skyrack.faults.bits import flip_bits
    from skyrack.train.trainer import Trainer

    at = min(f.step for f in faults if f.outcome == "rounding")
    trainer = Trainer(model_cfg, train_cfg, dataset, None, device="cpu")
    while trainer.state.step < train_cfg.steps:
        trainer.step()
        if trainer.state.step == at:
            weight = next(
                p for n, p in trainer.model.named_parameters() if p.ndim == 2 and n.startswith("blocks.")
            )
            flip_bits(weight.data, 0, [0])
    val = trainer.evaluate()
    return {"step": at, "val_loss": val, "diff": val - ref_val_loss}
