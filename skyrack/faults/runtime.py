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

A run that must survive its own host being killed (the fault campaign) gives `state_dir`: every
`snapshot_every` steps, right after a verified step, the whole run (trainer state, the run
directory's checkpoints as they are, every fault record, the guard's history, the injector's
random state and the trace) is written there as one verified checkpoint, and `resume()`
continues from the newest one exactly as the run would have gone on.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import tarfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from skyrack.faults.guard import Guard, state_bits, state_fingerprint
from skyrack.faults.inject import KINDS, Fault, Injector
from skyrack.train.checkpoint import CheckpointError, list_checkpoints, read_verified, write_checkpoint
from skyrack.train.trainer import Trainer

Listener = Callable[[str, dict[str, Any]], None]


class ProtectedRun:
    def __init__(
        self,
        trainer: Trainer,
        *,
        protect: bool = True,
        faults: list[Fault] | None = None,
        seed: int = 0,
        snapshot_every: int = 10,
        trace: bool = False,
        state_dir: Path | None = None,
    ):
        self.trainer, self.protect = trainer, protect
        self.out_dir = trainer.out_dir
        self.faults: list[Fault] = list(faults or [])
        self.listeners: list[Listener] = []
        # the campaign's oracle: the state fingerprint after every step (replays overwrite)
        self.trace: dict[int, bytes] = {}
        if trace:
            trainer.hooks["after_step"].append(
                lambda t: self.trace.__setitem__(t.state.step, state_fingerprint(t))
            )
        self.injector = Injector(trainer, self.faults, seed=seed)
        self.faults = self.injector.faults  # one list: faults added later reach the injector
        self.injector.on_fire.append(self._fired)
        self.guard = Guard(trainer, enabled=protect, snapshot_every=snapshot_every)
        self.guard.on_recover.append(self._guard_recovered)
        self.snapshot_every = snapshot_every
        self.state_dir = Path(state_dir) if state_dir else None
        self.restarts = 0
        self.refused_checkpoints = 0
        self.corrupted: dict[str, list[Fault]] = {}  # checkpoint dir -> storage faults on it
        self.seconds = 0.0  # wall time of run(), earlier sessions included

    @classmethod
    def fresh(
        cls, model_cfg, train_cfg, dataset, out_dir: Path, *, device: str = "cpu", **kwargs
    ) -> ProtectedRun:
        return cls(
            Trainer(model_cfg, train_cfg, dataset, out_dir, device=device), seed=train_cfg.seed + 1, **kwargs
        )

    # -- faults ---------------------------------------------------------------------------------
    def add_fault(self, kind: str, step: int | None = None) -> Fault:
        """Schedule a fault of `kind` for `step` (default: the next step)."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        fault = Fault(len(self.faults), kind, step if step is not None else self.trainer.state.step + 1)
        self.faults.append(fault)
        return fault

    def counts(self) -> dict[str, int]:
        """Faults, each counted once, so that recovered <= detected <= injected:

        injected:  faults carried out (fired) on the state, a computation, a checkpoint or the process;
        detected:  injected faults protection caught: a check fired on the step they hit (or a
                   rollback it caused undid them), their checkpoint was refused by its sha256, or
                   (an interrupt) the process died;
        recovered: detected faults whose effect was undone: the step recomputed, the snapshot
                   restored and replayed, the previous good checkpoint used, the run restarted.
                   Every detection here ends in one of those, so it equals `detected` unless a
                   recovery fails (a corrupt snapshot raises and stops the run).
        The rest (injected - detected) were masked or silent: only a fault-free run of the same
        seed tells those apart (`skyrack faults campaign`)."""
        fired = [f for f in self.faults if f.fired]
        caught = [f for f in fired if _caught(f)]
        return {"injected": len(fired), "detected": len(caught), "recovered": len(caught)}

    def _emit(self, name: str, **data) -> None:
        for fn in self.listeners:
            fn(name, data)

    def _fired(self, fault: Fault) -> None:
        self._emit(
            "fault_injected",
            kind=fault.kind,
            where=f"{fault.target} {fault.where}".strip(),
            id=fault.id,
            step=fault.step,
        )

    def _recovered(self, fault: Fault, how: str) -> None:
        self._emit("fault_recovered", kind=fault.kind, how=how, id=fault.id)

    # -- rollbacks erase faults that had not yet reached the restored state ---------------------
    def _guard_recovered(self, restored_to: int, detected_at: int, reason: str) -> None:
        for f in self._rollback(restored_to, "guard"):
            self._recovered(f, f"{reason}: restored step {restored_to}, replayed to {detected_at}")

    def _rollback(self, restored_to: int, by: str) -> list[Fault]:
        erased = []
        for f in self.faults:
            if f.fired and f.kind in ("memory", "compute") and not f.erased:
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
                files = (
                    read_verified(ckpt) if self.protect else {p.name: p.read_bytes() for p in ckpt.iterdir()}
                )
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
            t.load_state(
                Trainer(t.model_cfg, t.cfg, t.dataset, None, device=str(t.device)).checkpoint_files()
            )
        self.guard.reset()
        self.guard.grad_norms.clear()
        self.guard.losses.clear()
        self._rollback(self.trainer.state.step, "restart")
        self._recovered(fault, f"restarted from step {self.trainer.state.step}")

    # -- the loop -----------------------------------------------------------------------------------
    def step(self) -> float:
        """One guarded training step, the checkpoint it is due, then the faults due after it."""
        trainer = self.trainer
        loss = float(self.guard.step())
        s = trainer.state.step
        if self.state_dir is not None and s % self.snapshot_every == 0:
            self.save_state()
        self._after(s)
        return loss

    def _after(self, s: int) -> None:
        """What follows step `s`: its checkpoint, then the faults due after it."""
        cfg = self.trainer.cfg
        if s % cfg.checkpoint_interval == 0 or s == cfg.steps:
            self.save()
        self.injector.between_steps()
        for f in self.injector.due(s, "storage"):
            self._corrupt(f)
        for f in self.injector.due(s, "interrupt"):
            self._restart(f)

    def finish(self) -> None:
        self.guard.finish()

    def run(self) -> dict:
        """Train to the configured step count (the campaign's run), continuing from `state_dir`
        when it holds a saved state; returns the run's outcome."""
        trainer = self.trainer
        start = time.perf_counter()
        if not self.resume() and self.faults:
            trainer.save()  # the initial checkpoint a restart before the first interval goes back to
        while trainer.state.step < trainer.cfg.steps:
            self.step()
        self.finish()
        self.trace[trainer.cfg.steps + 1] = state_fingerprint(trainer)
        self.seconds += time.perf_counter() - start
        return {
            "val_loss": trainer.evaluate(),
            "seconds": self.seconds,
            "seconds_per_step": self.seconds / trainer.cfg.steps,
            "detections": self.guard.detected(),
            "false_alarms": self.guard.false_alarms,
            "replayed_steps": self.guard.replayed_steps,
            "recomputed_steps": self.guard.recomputed_steps,
            "restarts": self.restarts,
            "state_bits": state_bits(trainer),
        }

    # -- surviving the host: the whole run saved and resumed -----------------------------------
    def save_state(self) -> Path:
        """Write the run as it stands (after a verified step) under `state_dir`, atomically."""
        t, g = self.trainer, self.guard
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            if self.out_dir is not None and self.out_dir.exists():
                tar.add(self.out_dir, arcname="run")
        book = {
            "faults": [f.record() for f in self.faults],
            "injector_rng": self.injector.rng.getstate(),
            "timeline": self.injector.timeline,
            "detections": g.detections,
            "replayed_steps": g.replayed_steps,
            "recomputed_steps": g.recomputed_steps,
            "false_alarms": g.false_alarms,
            "grad_norms": list(g.grad_norms),
            "losses": list(g.losses),
            "restarts": self.restarts,
            "refused_checkpoints": self.refused_checkpoints,
            "corrupted": {k: [f.id for f in v] for k, v in self.corrupted.items()},
            "trace": {str(k): v.hex() for k, v in self.trace.items()},
            "seconds": self.seconds
            + time.perf_counter()
            - getattr(self, "_session_start", time.perf_counter()),
        }
        files = {**t.checkpoint_files(), "run.json": json.dumps(book).encode(), "run.tar": buffer.getvalue()}
        return write_checkpoint(self.state_dir, t.state.step, files, keep=2)

    def resume(self) -> bool:
        """Continue from the newest saved state under `state_dir` that verifies; False if none."""
        self._session_start = time.perf_counter()
        for ckpt in list_checkpoints(self.state_dir) if self.state_dir else []:
            try:
                files = read_verified(ckpt)
            except CheckpointError:
                continue
            break
        else:
            return False
        t, g = self.trainer, self.guard
        t.load_state(files)
        book = json.loads(files["run.json"])
        if self.out_dir is not None:
            shutil.rmtree(self.out_dir, ignore_errors=True)
            with tarfile.open(fileobj=io.BytesIO(files["run.tar"])) as tar:
                for member in tar.getmembers():
                    if not member.name.startswith("run") or ".." in member.name:
                        raise CheckpointError(f"saved run state {ckpt} holds an unexpected path")
                    target = self.out_dir.parent / (self.out_dir.name + member.name[3:])
                    if member.isdir():
                        target.mkdir(parents=True, exist_ok=True)
                    elif member.isfile():
                        target.parent.mkdir(parents=True, exist_ok=True)
                        target.write_bytes(tar.extractfile(member).read())
        by_id = {f.id: f for f in self.faults}
        for rec in book["faults"]:
            f = by_id.get(rec["id"])
            if f is None:  # added on the fly (the mission) after this run was built
                f = by_id[rec["id"]] = Fault(rec["id"], rec["kind"], rec["step"])
                self.faults.append(f)
            for k, v in rec.items():
                setattr(f, k, v)
        self.injector.rng.setstate(_tuples(book["injector_rng"]))
        self.injector.timeline = book["timeline"]
        g.detections[:] = book["detections"]
        g.replayed_steps, g.recomputed_steps = book["replayed_steps"], book["recomputed_steps"]
        g.false_alarms = book["false_alarms"]
        g.grad_norms.clear()
        g.grad_norms.extend(book["grad_norms"])
        g.losses.clear()
        g.losses.extend(book["losses"])
        self.restarts, self.refused_checkpoints = book["restarts"], book["refused_checkpoints"]
        self.corrupted = {k: [by_id[i] for i in v] for k, v in book["corrupted"].items()}
        self.trace = {int(k): bytes.fromhex(v) for k, v in book["trace"].items()}
        self.seconds = book["seconds"]
        g.reset()
        self._after(t.state.step)  # the rest of the step the state was saved in
        return True


def _caught(f: Fault) -> bool:
    """Whether protection caught fault `f` (see ProtectedRun.counts)."""
    return f.kind == "interrupt" or f.outcome_hint == "recovered" or f.erased == "guard"


def _tuples(x):
    """JSON turned random.getstate()'s tuples into lists."""
    return tuple(_tuples(v) for v in x) if isinstance(x, list) else x


def observe_step(f: Fault) -> int:
    """The first step whose recorded fingerprint a fault can change."""
    if f.kind == "storage":
        return (10**9 if f.loaded_at is None else f.loaded_at) + 1
    if f.kind == "memory" and f.target in ("param", "moment"):
        return f.step + 1
    return f.step
