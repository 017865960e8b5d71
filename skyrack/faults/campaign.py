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

from skyrack.faults.inject import KINDS, Fault, Injector, schedule, schedule_from_rate

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


class Run:
    """One training run, optionally protected and under injection, with its fingerprint trace."""

    def __init__(self, model_cfg, train_cfg, dataset, out_dir: Path, protect: bool,
                 faults: list[Fault] | None = None, snapshot_every: int = 10):
        from skyrack.faults.guard import Guard, state_fingerprint
        from skyrack.train.trainer import Trainer
        self.trainer = Trainer(model_cfg, train_cfg, dataset, out_dir, device="cpu")
        self.protect, self.out_dir = protect, out_dir
        self.trace: dict[int, int] = {}
        self._fp = state_fingerprint
        self.trainer.hooks["after_step"].append(lambda t: self.trace.__setitem__(t.state.step, self._fp(t)))
        self.faults = faults or []
        self.injector = Injector(self.trainer, self.faults, seed=train_cfg.seed + 1) if faults else None
        self.guard = Guard(self.trainer, enabled=protect, snapshot_every=snapshot_every)
        self.guard.on_recover.append(lambda to, at, why: self._rollback(to, "guard"))
        self.restarts = 0
        self.corrupted: dict[str, list[Fault]] = {}  # checkpoint dir -> storage faults on it

    # -- rollbacks erase faults that had not yet reached the restored state ---------------------
    def _rollback(self, restored_to: int, by: str) -> None:
        for f in self.faults:
            if f.fired and f.kind in ("memory", "compute") and not getattr(f, "erased", None):
                if observe_step(f) > restored_to:
                    f.erased = by

    def _scrub(self) -> None:
        """Protection: after each save, every kept checkpoint is re-verified; a corrupt one is
        dropped (a newer good one exists: the one just written)."""
        import shutil

        from skyrack.train.checkpoint import CheckpointError, list_checkpoints, read_verified
        for ckpt in list_checkpoints(self.out_dir):
            try:
                read_verified(ckpt)
            except CheckpointError:
                for f in self.corrupted.pop(str(ckpt), []):
                    f.outcome_hint = "recovered"
                shutil.rmtree(ckpt, ignore_errors=True)

    def _corrupt(self, fault: Fault) -> None:
        from skyrack.train.checkpoint import list_checkpoints
        ckpts = list_checkpoints(self.out_dir)
        if not ckpts:
            fault.fired, fault.target, fault.where = True, "checkpoint", "none written yet"
            fault.outcome_hint = "masked"
            return
        rng = random.Random(fault.id * 7919 + fault.step)
        path = ckpts[0] / "model.pt"
        data = bytearray(path.read_bytes())
        offset = rng.randrange(len(data))
        bit = rng.randrange(8)
        data[offset] ^= 1 << bit
        path.write_bytes(bytes(data))
        fault.fired, fault.target, fault.where, fault.bits = True, "checkpoint", f"{path}@{offset}", [bit]
        self.corrupted.setdefault(str(ckpts[0]), []).append(fault)

    def _restart(self, fault: Fault) -> None:
        """The process is killed: everything in memory is lost; resume from the newest checkpoint
        (protected: the newest that verifies; unprotected: the newest, read as it is)."""
        from skyrack.train.checkpoint import CheckpointError, list_checkpoints, read_verified
        fault.fired, fault.target, fault.where = True, "process", f"SIGKILL after step {self.trainer.state.step}"
        self.restarts += 1
        for ckpt in list_checkpoints(self.out_dir):
            hit = self.corrupted.pop(str(ckpt), [])
            try:
                if self.protect:
                    files = read_verified(ckpt)
                else:
                    files = {p.name: p.read_bytes() for p in ckpt.iterdir()}
                self.trainer.load_state(files)
            except (CheckpointError, Exception):  # refused by its sha256, or unreadable
                for f in hit:
                    f.outcome_hint = "recovered"
                continue
            for f in hit:  # loaded as it was: its effect (if any) shows from the next step on
                f.loaded_at = self.trainer.state.step
            break
        else:  # no good checkpoint left: start over; a fresh trainer of the seed is step 0
            from skyrack.train.trainer import Trainer
            t = self.trainer
            t.load_state(Trainer(t.model_cfg, t.cfg, t.dataset, None, device="cpu").checkpoint_files())
        self.guard.reset()
        self.guard.grad_norms.clear()
        self.guard.losses.clear()
        self._rollback(self.trainer.state.step, "restart")

    def run(self) -> dict:
        trainer, cfg = self.trainer, self.trainer.cfg
        start = time.perf_counter()
        if self.faults:
            trainer.save()  # the initial checkpoint a restart before the first interval goes back to
        while trainer.state.step < cfg.steps:
            self.guard.step()
            s = trainer.state.step
            if s % cfg.checkpoint_interval == 0 or s == cfg.steps:
                trainer.save()
                if self.protect:
                    self._scrub()
            if self.injector:
                self.injector.between_steps()
                for f in self.injector.due(s, "storage"):
                    self._corrupt(f)
                for f in self.injector.due(s, "interrupt"):
                    self._restart(f)
        self.guard.finish()
        self.trace[cfg.steps + 1] = self._fp(trainer)
        seconds = time.perf_counter() - start
        val = trainer.evaluate()
        return {"val_loss": val, "seconds": seconds, "detections": len(self.guard.detections),
                "replayed_steps": self.guard.replayed_steps, "restarts": self.restarts}


def observe_step(f: Fault) -> int:
    """The first step whose recorded fingerprint a fault can change."""
    if f.kind == "storage":
        return getattr(f, "loaded_at", 10**9) + 1
    if f.kind == "memory" and f.target in ("param", "moment"):
        return f.step + 1
    return f.step


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
        clean = Run(model_cfg, train_cfg, dataset, Path(tmp) / "clean", protect=False)
        ref = clean.run()
        if n_faults is None:
            bits = sum(t.numel() * t.element_size() * 8 for t in _state(clean.trainer))
            per_step = rate_per_step(stress, bits)
            faults = schedule_from_rate(per_step, train_cfg.steps, seed)
        else:
            per_step = None
            faults = schedule(n_faults, train_cfg.steps, seed)
        hot = Run(model_cfg, train_cfg, dataset, Path(tmp) / "faulty", protect=protect, faults=faults)
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
