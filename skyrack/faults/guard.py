"""Protection of a training run: cheap detection every step, exact recovery by recomputation
or replay.

    guard = Guard(trainer)            # protection on; Guard(trainer, enabled=False) is a no-op
    while trainer.state.step < steps:
        guard.step()                  # instead of trainer.step()
    guard.finish()                    # last integrity check

Detection, per step:
  * state integrity: a fingerprint (per-tensor wrapping word sums, `word_sums`) of the
    parameters and optimizer moments is recorded after each step and checked before the next
    one: any bit flip in memory between steps changes it;
  * gradient integrity: the same fingerprint of the gradients when backward has written them,
    checked just before the update reads them (an upset while they wait in memory);
  * compute: ABFT row checksums on every linear layer's GEMMs, forward and backward
    (`skyrack.faults.gemm`): a corrupted element of a product's output is caught where it
    happens;
  * anomalies: the global gradient norm must be finite and below `grad_factor` times the median
    of the recent accepted norms, the loss finite and below `loss_factor` times theirs.

Every check but the first runs before the optimizer update: a failing step is abandoned before
it touches the state (`StepAborted`), its position (batch, random draws) restored and the step
recomputed. A state integrity failure goes back to the in-memory snapshot of the whole training
state kept every `snapshot_every` steps (taken only from a verified state) and replays the steps
since. On CPU training is bitwise deterministic, so both reproduce the fault-free run exactly.
A step whose anomaly comes back bitwise identical on recomputation is genuine (not a fault) and
is accepted.
"""

from __future__ import annotations

import statistics
from collections import deque
from collections.abc import Callable

import torch

from skyrack.faults.bits import word_sums
from skyrack.faults.gemm import Abft, GemmSites
from skyrack.train.trainer import StepAborted, Trainer


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


def state_bits(trainer: Trainer) -> int:
    """Bits of the training state in (GPU) memory: what radiation upsets can hit."""
    return sum(t.numel() * t.element_size() * 8 for t in state_tensors(trainer))


def state_fingerprint(trainer: Trainer) -> bytes:
    return word_sums(state_tensors(trainer))


def capture(trainer: Trainer) -> dict:
    """An in-memory copy of everything a bitwise replay needs."""
    return trainer.snapshot()


def restore(trainer: Trainer, snap: dict) -> None:
    trainer.restore(snap)


def fingerprint_of_snapshot(snap: dict) -> bytes:
    """The snapshot lives in memory too: its own fingerprint is checked before it is used."""
    tensors = list(snap["model"].values())
    for sd in snap["optimizers"]:
        for st in sd["state"].values():
            tensors.extend(v for v in st.values() if torch.is_tensor(v) and v.ndim > 0)
    return word_sums(tensors)


# Checksum residual, in units of its rounding scale (see gemm.Abft), above which a step is
# recomputed. In clean training the worst residual of a step has a median of 0.21, a 99th
# percentile of 0.32-0.39 and a maximum of 0.40 (2 layers x 64 over 100 steps, 4 layers x 128 over
# 50). A step above the threshold that recomputes bitwise identical is accepted (a false alarm
# costs one step); a lower threshold catches smaller corruptions.
ABFT_THRESHOLD = 0.4


def gradients(trainer: Trainer) -> list[torch.Tensor]:
    return [p.grad for p in trainer.model.parameters() if p.grad is not None]


class Guard:
    def __init__(
        self,
        trainer: Trainer,
        enabled: bool = True,
        snapshot_every: int = 10,
        grad_factor: float = 8.0,
        loss_factor: float = 1.5,
        window: int = 32,
        max_retries: int = 3,
        abft: bool = True,
        abft_threshold: float = ABFT_THRESHOLD,
    ):
        self.trainer, self.enabled = trainer, enabled
        self.snapshot_every, self.grad_factor, self.loss_factor = snapshot_every, grad_factor, loss_factor
        self.max_retries = max_retries
        self.grad_norms: deque[float] = deque(maxlen=window)
        self.losses: deque[float] = deque(maxlen=window)
        self.detections: list[dict] = []  # {"step", "reason", "restored_to", "how"[, "genuine"]}
        self.on_recover: list[Callable[[int, int, str], None]] = []  # fn(restored_to, detected_at, reason)
        self.replayed_steps = 0
        self.recomputed_steps = 0
        self.false_alarms = 0  # anomalies that recomputed bitwise identical
        self.abft = Abft(abft_threshold) if enabled and abft else None
        self._grad_norm: float | None = None
        self._grad_fp: bytes | None = None
        self._accept: tuple | None = None  # an anomaly seen once: accepted if it recurs bitwise
        self._fp: bytes | None = None
        self._replaying = False
        self._snap: dict | None = None
        if enabled:
            trainer.hooks["after_backward"].append(self._after_backward)
            trainer.hooks["before_update"].append(self._before_update)
            if self.abft is not None:
                GemmSites.for_model(trainer.model).check = self.abft
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

    def _bound(self, history: deque, factor: float) -> float:
        if len(history) < 4:
            return float("inf")
        return factor * statistics.median(history)

    # -- the checks inside a step ---------------------------------------------------------------
    def _after_backward(self, trainer: Trainer) -> None:
        grads = gradients(trainer)
        self._grad_fp = word_sums(grads)
        self._norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))

    def _before_update(self, trainer: Trainer) -> None:
        if self._replaying:
            return
        loss, norm = torch.stack([trainer.loss.float(), self._norm.float()]).tolist()
        self._grad_norm, self._loss = norm, loss
        worst = self.abft.worst() if self.abft is not None else 0.0
        problem = self._problem(loss, norm, worst)
        if problem is None:
            return
        signature = (problem, loss, norm, worst)
        if self._accept == "any":
            return
        if signature == self._accept:  # the same anomaly, bitwise, on recomputation: genuine
            self.detections[-1]["genuine"] = True
            self.false_alarms += 1
            return
        self._accept = signature
        raise StepAborted(problem)

    def _problem(self, loss: float, g: float, worst: float) -> str | None:
        if word_sums(gradients(self.trainer)) != self._grad_fp:
            return "gradient integrity"
        if worst > self.abft.threshold if self.abft is not None else False:
            return "ABFT checksum"
        if not g == g or g == float("inf"):
            return "non-finite gradient"
        if not loss == loss or abs(loss) == float("inf"):
            return "non-finite loss"
        if g > self._bound(self.grad_norms, self.grad_factor):
            return "gradient-norm spike"
        if loss > self._bound(self.losses, self.loss_factor):
            return "loss spike"
        return None

    def detected(self) -> int:
        """Detections that were faults (not anomalies that recomputed bitwise identical)."""
        return sum(1 for d in self.detections if not d.get("genuine"))

    # -- the guarded step -----------------------------------------------------------------------
    def verify(self) -> None:
        """Integrity check of the state against the fingerprint after the last step."""
        if self.enabled and state_fingerprint(self.trainer) != self._fp:
            self._recover(self.trainer.state.step, "integrity")

    def step(self) -> torch.Tensor:
        trainer = self.trainer
        if not self.enabled:
            return trainer.step()
        self.verify()
        self._accept = None
        attempt = 0
        while True:
            position = trainer.position()
            if self.abft is not None:
                self.abft.reset()
            try:
                loss = trainer.step()
                break
            except StepAborted as abort:
                trainer.restore(position)
                self._recomputed(trainer.state.step, str(abort))
                attempt += 1
                if attempt >= self.max_retries:
                    self._accept = "any"  # recomputation keeps failing: take the step as it is
        self.grad_norms.append(self._grad_norm)
        self.losses.append(self._loss)
        self._fp = state_fingerprint(trainer)
        if trainer.state.step % self.snapshot_every == 0:
            self._take_snapshot()
        return loss

    def finish(self) -> None:
        self.verify()

    def _recomputed(self, before: int, reason: str) -> None:
        self.recomputed_steps += 1
        self.detections.append(
            {"step": before + 1, "reason": reason, "restored_to": before, "how": "recompute"}
        )
        for fn in self.on_recover:
            fn(before, before + 1, reason)

    def _recover(self, upto: int, reason: str) -> None:
        """Restore the snapshot and replay (unchecked: faults are one-off) up to step `upto`."""
        trainer = self.trainer
        detected_at = trainer.state.step
        if fingerprint_of_snapshot(self._snap) != self._snap_fp_raw:
            raise RuntimeError("the in-memory snapshot itself is corrupt; resume from a checkpoint")
        restore(trainer, self._snap)
        restored_to = trainer.state.step
        self.detections.append(
            {"step": detected_at, "reason": reason, "restored_to": restored_to, "how": "replay"}
        )
        for fn in self.on_recover:
            fn(restored_to, detected_at, reason)
        self._replaying = True
        try:
            while trainer.state.step < upto:
                trainer.step()
                self.replayed_steps += 1
        finally:
            self._replaying = False
        self._fp = state_fingerprint(trainer)
