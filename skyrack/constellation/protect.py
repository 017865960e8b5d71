"""The fault protection of one satellite's inner steps, and the faults a run injects into them.

Each satellite keeps the protection a one-satellite run has (`skyrack.faults`): ABFT row
checksums on every GEMM of its model, a finite loss and gradient, and an integrity fingerprint of
its parameters, optimizer state and DiLoCo global parameters between steps. A step whose checks
fail is recomputed from the same batch. A state whose fingerprint changed between two inner
steps is restored from the copy taken at the start of the round and the round's steps so far are
replayed; on CPU both are bitwise, so a protected satellite ends a round with the model it would
have had without the fault. The copy is taken, and fingerprinted, when a round's sync is done (and
after a heal), so an upset between rounds goes back to it too.

Faults (`plan["faults"]`, drawn by the launcher from the run's seed, each fired once: at each
satellite's own upset rate along its orbit times a stress factor, and/or a given number spread at
random):
  * compute - one element of one GEMM output in one inner step gets a high bit flipped (the first
    execution of that step only: a recomputation runs clean, as after a one-off upset);
  * memory  - one bit of one parameter element flipped after one inner step's update.
"""

from __future__ import annotations

import copy
import math
import random

import torch

from skyrack.faults.bits import flip_bits, word_sums
from skyrack.faults.gemm import Abft, GemmSites
from skyrack.faults.guard import ABFT_THRESHOLD, state_tensors

KINDS = ("compute", "memory")
MAX_TRIES = 3  # recomputations of one step before it is taken as it is


def _fault(i: int, kind: str, sat: int, rnd: int, step: int, rng: random.Random) -> dict:
    return {
        "id": i,
        "kind": kind,
        "sat": sat,
        "round": rnd,
        "step": step,
        "pick": rng.random(),  # which GEMM site, or which parameter
        "element": rng.randrange(1 << 30),
        "bit": rng.choice((27, 28, 29, 30, 22, 21)),  # exponent and high mantissa bits
    }


def draw_faults(n: int, satellites: int, rounds: int, steps_per_round: int, seed: int) -> list[dict]:
    """`n` faults over the satellites, rounds and inner steps, kinds alternating."""
    rng = random.Random(seed)
    return [
        _fault(
            i,
            KINDS[i % len(KINDS)],
            rng.randrange(satellites),
            rng.randrange(rounds),
            rng.randrange(steps_per_round),
            rng,
        )
        for i in range(n)
    ]


def radiation_faults(
    exposures: list[list[float]], stress: float, steps_per_round: int, seed: int, first_id: int = 0
) -> list[dict]:
    """Faults drawn from each satellite's own radiation, as a mission draws them
    (`skyrack.bus.radiation.upsets_per_step`): `exposures[r][s]` is the expected number of
    upsets in satellite s's training state over round r at the profile's rate (0 where it is not
    in the round); each is a Poisson count of mean exposure x `stress`, each upset at a random
    inner step of the round, compute or memory at even odds."""
    rng = random.Random(seed ^ 0x5EED)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for r, row in enumerate(exposures):
        for sat, expected in enumerate(row):
            mean = expected * stress
            count = (
                int(torch.poisson(torch.tensor([mean], dtype=torch.float64), generator=gen))
                if mean > 0
                else 0
            )
            for _ in range(count):
                kind = KINDS[rng.randrange(len(KINDS))]
                out.append(_fault(first_id + len(out), kind, sat, r, rng.randrange(steps_per_round), rng))
    return out


class Protection:
    """Checks, recomputation and replay around a satellite's inner steps; also fires the faults
    planned for it. `enabled=False` injects the same faults and checks nothing (the damage)."""

    def __init__(self, sat, faults: list[dict], enabled: bool = True):
        self.sat, self.enabled = sat, enabled
        self.sites = GemmSites.for_model(sat.model)
        self.abft = Abft(ABFT_THRESHOLD) if enabled else None
        if self.abft is not None:
            self.sites.check = self.abft
        self.pending = {(f["round"], f["step"], f["kind"]): f for f in faults}
        self.injected = self.detected = self.recovered = 0
        self.recomputed = self.replayed = self.false_alarms = 0
        self._fp: bytes | None = None
        self._snap: dict | None = None
        self._armed: dict | None = None

    # -- state ----------------------------------------------------------------------------------
    def counts(self) -> dict:
        """The faults so far, as the telemetry's faults.* channels count them."""
        return {"injected": self.injected, "detected": self.detected, "recovered": self.recovered}

    def _tensors(self) -> list[torch.Tensor]:
        """The one-satellite guard's state (parameters, optimizer moments) and DiLoCo's."""
        out = state_tensors(self.sat)
        if self.sat.dl is not None:
            out.extend(self.sat.dl.state_tensors())
        return out

    def fingerprint(self) -> bytes:
        return word_sums(self._tensors())

    def take_snapshot(self) -> None:
        """Copy the state as it is now and fingerprint it: the last verified state, which a
        detection goes back to (taken at the end of each round and after a heal)."""
        s = self.sat
        self._snap = {
            "params": [p.detach().clone() for p in s.params],
            "optimizers": [copy.deepcopy(o.state_dict()) for o in s.optimizers],
            "outer": [t.clone() for t in s.dl.state_tensors()] if s.dl is not None else None,
            "position": s.sampler.position,
            "tokens": s.tokens,
            "rng": torch.get_rng_state(),
        }
        self._fp = self.fingerprint() if self.enabled else None

    def begin_round(self, r: int) -> None:
        """Verify the state against the copy taken when the last round ended; a change since
        (an upset between rounds) goes back to that copy."""
        if self._snap is None:
            self.take_snapshot()
        elif self.enabled and self.fingerprint() != self._fp:
            self.detected += 1
            self._restore()
            self.sat.log("fault_detected", how="restore", round=r, reason="state integrity between rounds")
            self.recovered += 1

    def end_round(self, r: int) -> None:
        """After the sync: the state the next round starts from. A memory fault planned for a
        round without inner updates of its own (DDP) strikes here, between rounds."""
        self.take_snapshot()
        for key in [k for k in self.pending if k[0] == r and k[2] == "memory"]:
            self._memory_fault(*key[:2])

    def restart(self) -> None:
        """A heal replaced the state with a peer's."""
        self.take_snapshot()

    def _restore(self) -> None:
        s, snap = self.sat, self._snap
        with torch.no_grad():
            if s.dl is not None:
                s.dl.load_state_tensors(snap["outer"])
            for p, saved in zip(s.params, snap["params"], strict=True):
                p.copy_(saved)
        for opt, sd in zip(s.optimizers, snap["optimizers"], strict=True):
            opt.load_state_dict(copy.deepcopy(sd))
        s.sampler.position, s.tokens = snap["position"], snap["tokens"]
        torch.set_rng_state(snap["rng"])

    # -- the inner step -------------------------------------------------------------------------
    def step(self, r: int, i: int, grads, update, set_lr) -> float:
        """One inner step `i` of round `r`: `grads()` (forward and backward, returns the loss) and
        `update()` (None for DDP, whose update is the sync's), checked and recomputed."""
        if self.enabled and self._fp is not None and self.fingerprint() != self._fp:
            self.detected += 1
            self._replay(r, i, grads, update, set_lr)
        loss = self._checked(r, i, grads)
        if update is not None:
            update()
            if self.enabled:
                self._fp = self.fingerprint()
            self._memory_fault(r, i)  # an upset in memory, after the state was fingerprinted
        return loss

    def before_sync(self, r: int, steps: int, grads, update, set_lr) -> None:
        """The state must not have changed since the last inner step before it leaves in a sync."""
        if self.enabled and update is not None and self._fp is not None and self.fingerprint() != self._fp:
            self.detected += 1
            self._replay(r, steps, grads, update, set_lr)

    def _checked(self, r: int, i: int, grads) -> float:
        """grads() until its result passes the checks; a problem that comes back bitwise the same
        on recomputation is the step's own (a false alarm, as in `skyrack.faults.guard`) and is
        taken."""
        s = self.sat
        seen = None
        for attempt in range(MAX_TRIES):
            position, rng = s.sampler.position, torch.get_rng_state()
            if self.abft is not None:
                self.abft.reset()
            self._arm(r, i)
            loss = grads()
            self.sites.tamper, self._armed = None, None
            problem = None if not self.enabled else self._problem(loss)
            if problem is None:
                self.recovered += attempt  # each recomputation answered a detection
                return loss
            if (problem, loss) == seen:  # the recomputation's own: no fault was there
                self.false_alarms += 1
                self.detected -= 1
                s.log("false_alarm", round=r, step=i, reason=problem)
                return loss
            seen = (problem, loss)
            self.detected += 1
            self.recomputed += 1
            s.log("fault_detected", how="recompute", round=r, step=i, attempt=attempt, reason=problem)
            s.sampler.position = position
            s.tokens -= s.train_cfg.batch_size * s.model_cfg.block_size
            torch.set_rng_state(rng)
        return loss

    def _problem(self, loss: float) -> str | None:
        """Why this step's result cannot be taken, or None."""
        if not math.isfinite(loss):
            return "non-finite loss"
        worst = self.abft.worst()
        if worst > self.abft.threshold:
            return f"ABFT checksum ({worst:.3g} units)"
        norms = [p.grad.norm() for p in self.sat.params if p.grad is not None]
        if norms and not bool(torch.isfinite(torch.stack(norms).sum())):
            return "non-finite gradient"
        return None

    def _replay(self, r: int, upto: int, grads, update, set_lr) -> None:
        """Back to the round's start, then steps 0 .. upto-1 again (faults already fired stay off)."""
        self._restore()
        self.sat.log("fault_detected", how="replay", round=r, step=upto, replayed=upto)
        for j in range(upto):
            set_lr(j)
            self._checked(r, j, grads)
            update()
            self.replayed += 1
        self.recovered += 1
        set_lr(upto)  # the learning rate of the step the replay returns to
        self._fp = self.fingerprint()

    # -- faults ---------------------------------------------------------------------------------
    def _arm(self, r: int, i: int) -> None:
        fault = self.pending.pop((r, i, "compute"), None)
        if fault is None:
            return
        names = self.sites.sites()
        site = names[int(fault["pick"] * len(names)) % len(names)]

        def tamper(where, out, a, b):
            if where != site or self._armed is None:
                return
            index = fault["element"] % out.numel()
            before, after = flip_bits(out, index, [fault["bit"]])
            self._armed = None
            self.injected += 1
            self.sat.log("fault", fault="compute", round=r, step=i, site=site, before=before, after=after)

        self._armed = fault
        self.sites.tamper = tamper

    def _memory_fault(self, r: int, i: int) -> None:
        fault = self.pending.pop((r, i, "memory"), None)
        if fault is None:
            return
        params = [p for p in self.sat.params if p.ndim == 2]
        p = params[int(fault["pick"] * len(params)) % len(params)]
        before, after = flip_bits(p.data, fault["element"] % p.numel(), [fault["bit"]])
        self.injected += 1
        self.sat.log("fault", fault="memory", round=r, step=i, before=before, after=after)
