"""A training run that lives with radiation: the guard protects it, the injector hits it.

The fault campaign and the mission both drive training through `ProtectedRun`:

    run = ProtectedRun(trainer, protect=True, seed=7)
    run.listeners.append(lambda name, data: ...)   # fault_injected / fault_recovered / checkpoint
    run.add_fault("memory")                         # fires during or just after the next step
    loss = run.step()                               # one guarded step, checkpoints, due faults
    run.counts()                                    # injected / detected / recovered so far

Memory and compute faults are applied by the injector's hooks inside the step; storage faults
(bytes flipped in the newest checkpoint) and interrupts (the process dies: everything in memory
is lost and training restarts from the newest checkpoint that verifies) are carried out here,
after the step they are due at. Protection off keeps the same faults but no guard, no checkpoint
scrubbing and no verification on restart: what is read is used.
"""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from skyrack.faults.guard import Guard, state_fingerprint
from skyrack.faults.inject import KINDS, Fault, Injector
from skyrack.train.checkpoint import CheckpointError, list_checkpoints, read_verified
from skyrack.train.trainer import Trainer

Listener = Callable[[str, dict[str, Any]], None]


class ProtectedRun:
    def __init__(self, trainer: Trainer, *, protect: bool = True, faults: list[Fault] | None = None,
                 seed: int = 0, snapshot_every: int = 10, trace: bool = False):
        self.trainer, self.protect = trainer, protect
        self.out_dir = trainer.out_dir
        self.faults: list[Fault] = list(faults or [])
        self.listeners: list[Listener] = []
        # the campaign's oracle: the state fingerprint after every step (replays overwrite)
        self.trace: dict[int, bytes] = {}
        if trace:
            trainer.hooks["after_step"].append(lambda t: self.trace.__setitem__(t.state.step, state_fingerprint(t)))
        self.injector = Injector(trainer, self.faults, seed=seed)
        self.faults = self.injector.faults  # one list: faults added later reach the injector
        self.injector.on_fire.append(self._fired)
        self.guard = Guard(trainer, enabled=protect, snapshot_every=snapshot_every)
        self.guard.on_recover.append(self._guard_recovered)
        self.restarts = 0
        self.refused_checkpoints = 0
        self.corrupted: dict[str, list[Fault]] = {}  # checkpoint dir -> storage faults on it

    @classmethod
    def fresh(cls, model_cfg, train_cfg, dataset, out_dir: Path, *, device: str = "cpu", **kwargs) -> "ProtectedRun":
        return cls(Trainer(model_cfg, train_cfg, dataset, out_dir, device=device),
                   seed=train_cfg.seed + 1, **kwargs)

    # -- faults ---------------------------------------------------------------------------------
    def add_fault(self, kind: str, step: int | None = None) -> Fault:
        """Schedule a fault of `kind` for `step` (default: the next step)."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        fault = Fault(len(self.faults), kind, step if step is not None else self.trainer.state.step + 1)
        self.faults.append(fault)
        return fault

    def counts(self) -> dict[str, int]:
        fired = [f for f in self.faults if f.fired]
        return {"injected": len(fired),
                "detected": len(self.guard.detections) + self.refused_checkpoints + self.restarts,
                "recovered": sum(1 for f in fired if getattr(f, "outcome_hint", None) == "recovered"
                                 or getattr(f, "erased", None) == "guard" or f.kind == "interrupt")}

    def _emit(self, name: str, **data) -> None:
        for fn in self.listeners:
            fn(name, data)

    def _fired(self, fault: Fault) -> None:
        self._emit("fault_injected", kind=fault.kind, where=f"{fault.target} {fault.where}".strip(),
                   id=fault.id, step=fault.step)

    def _recovered(self, fault: Fault, how: str) -> None:
        self._emit("fault_recovered", kind=fault.kind, how=how, id=fault.id)

    # -- rollbacks erase faults that had not yet reached the restored state ---------------------
    def _guard_recovered(self, restored_to: int, detected_at: int, reason: str) -> None:
        for f in self._rollback(restored_to, "guard"):
            self._recovered(f, f"{reason}: restored step {restored_to}, replayed to {detected_at}")

    def _rollback(self, restored_to: int, by: str) -> list[Fault]:
        erased = []
        for f in self.faults:
            if f.fired and f.kind in ("memory", "compute") and not getattr(f, "erased", None):
                if observe_step(f) > restored_to:
                    f.erased = by
                    erased.append(f)
        return erased

    # -- checkpoints ------------------------------------------------------------------------------
    def save(self) -> Path | None:
        path = self.trainer.save()
        if path is not None:
            self._emit("checkpoint", step=self.trainer.state.step, path=str(path))
            if self.protect:
                self._scrub()
        return path

    def _scrub(self) -> None:
        """Protection: after each save every kept checkpoint is re-verified, and a corrupt one
        dropped (a newer good one exists: the one just written)."""
        for ckpt in list_checkpoints(self.out_dir):
            try:
                read_verified(ckpt)
            except CheckpointError:
                self.refused_checkpoints += 1
                for f in self.corrupted.pop(str(ckpt), []):
                    f.outcome_hint = "recovered"
                    self._recovered(f, f"corrupt checkpoint {ckpt.name} refused by its sha256 and removed")
                shutil.rmtree(ckpt, ignore_errors=True)

    def _corrupt(self, fault: Fault) -> None:
        ckpts = list_checkpoints(self.out_dir) if self.out_dir else []
        if not ckpts:
            self.injector.fire(fault, "checkpoint", "none written yet")
            fault.outcome_hint = "masked"
            return
        rng = random.Random(fault.id * 7919 + fault.step)
        path = ckpts[0] / "model.pt"
        data = bytearray(path.read_bytes())
        offset = rng.randrange(len(data))
        bit = rng.randrange(8)
        data[offset] ^= 1 << bit
        path.write_bytes(bytes(data))
        fault.bits = [bit]
        self.injector.fire(fault, "checkpoint", f"{path}@{offset}")
        self.corrupted.setdefault(str(ckpts[0]), []).append(fault)

    def _restart(self, fault: Fault) -> None:
        """The process is killed: everything in memory is lost; resume from the newest checkpoint
        (protected: the newest that verifies; unprotected: the newest, read as it is)."""
        self.injector.fire(fault, "process", f"SIGKILL after step {self.trainer.state.step}")
        self.restarts += 1
        for ckpt in list_checkpoints(self.out_dir) if self.out_dir else []:
            hit = self.corrupted.pop(str(ckpt), [])
            try:
                files = read_verified(ckpt) if self.protect else {p.name: p.read_bytes() for p in ckpt.iterdir()}
                self.trainer.load_state(files)
            except Exception:  # refused by its sha256, or unreadable as it is
                self.refused_checkpoints += 1
                for f in hit:
                    f.outcome_hint = "recovered"
                    self._recovered(f, f"corrupt checkpoint {ckpt.name} refused on restart")
                continue
            for f in hit:  # loaded as it was: its effect (if any) shows from the next step on
                f.loaded_at = self.trainer.state.step
            break
        else:  # no good checkpoint left: start over; a fresh trainer of the seed is step 0
            t = self.trainer
            t.load_state(Trainer(t.model_cfg, t.cfg, t.dataset, None, device=str(t.device)).checkpoint_files())
        self.guard.reset()
        self.guard.grad_norms.clear()
        self.guard.losses.clear()
        self._rollback(self.trainer.state.step, "restart")
        self._recovered(fault, f"restarted from step {self.trainer.state.step}")

    # -- the loop -----------------------------------------------------------------------------------
    def step(self) -> float:
        """One guarded training step, the checkpoint it is due, then the faults due after it."""
        trainer, cfg = self.trainer, self.trainer.cfg
        loss = float(self.guard.step())
        s = trainer.state.step
        if s % cfg.checkpoint_interval == 0 or s == cfg.steps:
            self.save()
        self.injector.between_steps()
        for f in self.injector.due(s, "storage"):
            self._corrupt(f)
        for f in self.injector.due(s, "interrupt"):
            self._restart(f)
        return loss

    def finish(self) -> None:
        self.guard.finish()

    def run(self) -> dict:
        """Train to the configured step count (the campaign's run); returns its outcome."""
        trainer = self.trainer
        start = time.perf_counter()
        if self.faults:
            trainer.save()  # the initial checkpoint a restart before the first interval goes back to
        while trainer.state.step < trainer.cfg.steps:
            self.step()
        self.finish()
        self.trace[trainer.cfg.steps + 1] = state_fingerprint(trainer)
        seconds = time.perf_counter() - start
        return {"val_loss": trainer.evaluate(), "seconds": seconds, "detections": len(self.guard.detections),
                "replayed_steps": self.guard.replayed_steps, "restarts": self.restarts}


def observe_step(f: Fault) -> int:
    """The first step whose recorded fingerprint a fault can change."""
    if f.kind == "storage":
        return getattr(f, "loaded_at", 10**9) + 1
    if f.kind == "memory" and f.target in ("param", "moment"):
        return f.step + 1
    return f.step
