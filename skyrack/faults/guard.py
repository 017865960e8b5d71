"""Protection of a training run: cheap detection every step, exact recovery by replay.

    guard = Guard(trainer)            # protection on; Guard(trainer, enabled=False) is a no-op
    while trainer.state.step < steps:
        guard.step()                  # instead of trainer.step()
    guard.finish()                    # last integrity check

Detection, per step:
  * integrity: a fingerprint (per-tensor wrapping word sums, `word_sums`) of the parameters and optimizer
    moments is recorded after each step and checked before the next one: any bit flip in
    memory between steps changes it;
  * gradients: after backward, the global gradient norm must be finite and below `grad_factor`
    times the median of the recent accepted norms;
  * loss: finite and below `loss_factor` times the median of the recent accepted losses.

Recovery: an in-memory snapshot of the whole training state (model, optimizer, sampler, random
states, counters) is kept every `snapshot_every` steps, taken only from a verified state. On a
detection the snapshot is restored and the steps since are replayed; on CPU training is bitwise
deterministic, so the replay reproduces the fault-free run exactly. A step whose anomaly comes
back bitwise identical on recomputation is genuine (not a fault) and is accepted.
"""

from __future__ import annotations

import copy
import statistics
from collections import deque
from dataclasses import asdict
from typing import Callable

import torch

from skyrack.faults.bits import word_sums
from skyrack.train.trainer import TrainState, Trainer, _rng_state, _set_rng_state


def state_tensors(trainer: Trainer) -> list[torch.Tensor]:
    """Parameters and every optimizer state tensor, in a fixed order."""
    out = [p.data for p in trainer.model.parameters()]
    for opt in trainer.optimizers:
        for group in opt.param_groups:
            for p in group["params"]:
                st = opt.state.get(p)
                if st:
                    out.extend(v for _, v in sorted(st.items()) if torch.is_tensor(v) and v.ndim > 0)
    return out


def state_fingerprint(trainer: Trainer) -> bytes:
    return word_sums(state_tensors(trainer))


def capture(trainer: Trainer) -> dict:
    """An in-memory copy of everything a bitwise replay needs."""
    return {"model": {k: v.detach().clone() for k, v in trainer.model.state_dict().items()},
            "optimizers": [copy.deepcopy(o.state_dict()) for o in trainer.optimizers],
            "sampler": copy.deepcopy(trainer.sampler.state_dict()),
            "rng": _rng_state(), "state": asdict(trainer.state),
            "loss": (float(trainer._loss_sum), trainer._loss_count)}


def restore(trainer: Trainer, snap: dict) -> None:
    trainer.model.load_state_dict(snap["model"])
    for opt, sd in zip(trainer.optimizers, snap["optimizers"], strict=True):
        opt.load_state_dict(copy.deepcopy(sd))
    trainer.sampler.load_state_dict(copy.deepcopy(snap["sampler"]))
    _set_rng_state(snap["rng"])
    trainer.state = TrainState(**snap["state"])
    trainer._loss_sum.fill_(snap["loss"][0])
    trainer._loss_count = snap["loss"][1]


def fingerprint_of_snapshot(snap: dict) -> bytes:
    """The snapshot lives in memory too: its own fingerprint is checked before it is used."""
    tensors = list(snap["model"].values())
    for sd in snap["optimizers"]:
        for st in sd["state"].values():
            tensors.extend(v for v in st.values() if torch.is_tensor(v) and v.ndim > 0)
    return word_sums(tensors)


class Guard:
    def __init__(self, trainer: Trainer, enabled: bool = True, snapshot_every: int = 10,
                 grad_factor: float = 8.0, loss_factor: float = 1.5, window: int = 32,
                 max_retries: int = 3):
        self.trainer, self.enabled = trainer, enabled
        self.snapshot_every, self.grad_factor, self.loss_factor = snapshot_every, grad_factor, loss_factor
        self.max_retries = max_retries
        self.grad_norms: deque[float] = deque(maxlen=window)
        self.losses: deque[float] = deque(maxlen=window)
        self.detections: list[dict] = []      # {"step", "reason", "restored_to"}
        self.on_recover: list[Callable[[int, int, str], None]] = []  # fn(restored_to, detected_at, reason)
        self.replayed_steps = 0
        self._grad_norm: float | None = None
        self._replaying = False
        self._fp: bytes | None = None
        self._snap: dict | None = None
        if enabled:
            trainer.hooks["after_backward"].append(self._after_backward)
            self.reset()

    # -- bookkeeping --------------------------------------------------------------------------
    def reset(self) -> None:
        """Take the current state as verified (a fresh start or a resume from a checkpoint)."""
        if self.enabled:
            self._take_snapshot()
            self._fp = state_fingerprint(self.trainer)

    def _take_snapshot(self) -> None:
        self._snap = capture(self.trainer)
        self._snap_fp_raw = fingerprint_of_snapshot(self._snap)

    def _after_backward(self, trainer: Trainer) -> None:
        grads = [p.grad for p in trainer.model.parameters() if p.grad is not None]
        norms = torch._foreach_norm(grads)
        self._grad_norm = float(torch.linalg.vector_norm(torch.stack(norms)))

    def _bound(self, history: deque, factor: float) -> float:
        if len(history) < 4:
            return float("inf")
        return factor * statistics.median(history)

    def _problem(self, loss: float) -> str | None:
        g = self._grad_norm
        if g is None or not g == g or g == float("inf"):
            return "non-finite gradient"
        if not loss == loss or abs(loss) == float("inf"):
            return "non-finite loss"
        if g > self._bound(self.grad_norms, self.grad_factor):
            return "gradient-norm spike"
        if loss > self._bound(self.losses, self.loss_factor):
            return "loss spike"
        return None

    # -- the guarded step -----------------------------------------------------------------------
    def verify(self) -> None:
        """Integrity check of the state against the fingerprint after the last step."""
        if self.enabled and state_fingerprint(self.trainer) != self._fp:
            self._recover(self.trainer.state.step, "integrity")

    def step(self) -> torch.Tensor:
        if not self.enabled:
            return self.trainer.step()
        self.verify()
        target = self.trainer.state.step + 1
        suspect = None
        for _ in range(self.max_retries + 1):
            loss = self.trainer.step()
            value = float(loss)
            problem = self._problem(value)
            if problem is None or (value, self._grad_norm) == suspect:
                break  # clean, or an anomaly that recomputes bitwise identical: genuine
            suspect = (value, self._grad_norm)
            self._recover(target - 1, problem)
        self.grad_norms.append(self._grad_norm)
        self.losses.append(value)
        self._fp = state_fingerprint(self.trainer)
        if self.trainer.state.step % self.snapshot_every == 0:
            self._take_snapshot()
        return loss

    def finish(self) -> None:
        self.verify()

    def _recover(self, upto: int, reason: str) -> None:
        """Restore the snapshot and replay (unchecked: faults are one-off) up to step `upto`."""
        trainer = self.trainer
        detected_at = trainer.state.step
        if fingerprint_of_snapshot(self._snap) != self._snap_fp_raw:
            raise RuntimeError("the in-memory snapshot itself is corrupt; resume from a checkpoint")
        restore(trainer, self._snap)
        restored_to = trainer.state.step
        self.detections.append({"step": detected_at, "reason": reason, "restored_to": restored_to})
        for fn in self.on_recover:
            fn(restored_to, detected_at, reason)
        while trainer.state.step < upto:
            trainer.step()
            self.replayed_steps += 1
        self._fp = state_fingerprint(trainer)
