"""Radiation-style faults injected into a live `Trainer`.

Classes (`Fault.kind`):
  * memory    - single-event upsets: one bit (98.6 %, Alsat-1) or two adjacent bits flipped, any
                bit position, in the tensor's own dtype, in a parameter or an optimizer moment
                (between steps) or a gradient (while it waits in memory between backward and
                the update: the trainer's "before_update" hook);
  * compute   - a wrong element in the output of a GEMM kernel, where GPU silent data
                corruptions happen: the forward product of a linear layer (an activation) or
                one of its two backward products (a gradient), see `skyrack.faults.gemm`;
                several bits at once or a rescaled value, mostly finite (real SDCs are NaN/Inf
                only ~1 % of the time);
  * interrupt - the process dies (SIGKILL) and restarts from its last checkpoint;
  * storage   - bytes of a checkpoint on disk flipped.
memory and compute faults are applied here; interrupt and storage need the run directory and are
carried out by `skyrack.faults.runtime.ProtectedRun`, which asks `due()` for them.

Each fault fires once, at the first execution of its step: a replay of that step after recovery
runs clean, as it would after a one-off upset.

Each memory or compute fault also records `rounding`: the rounding error the corrupted value
could carry anyway, i.e. one ulp of a stored value, or for a GEMM output element the standard
bound gamma_k * sum_i |a_i b_i| (k the inner dimension, gamma_k = k u / (1 - k u)): another
correct GEMM implementation may differ by that much. `within_rounding` says the corruption was
no larger (the campaign reports such faults in their own class).
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass, field

import torch

from skyrack.faults.bits import bit_width, flip_bits
from skyrack.faults.gemm import GemmSites
from skyrack.train.trainer import Trainer

KINDS = ("memory", "compute", "interrupt", "storage")


@dataclass
class Fault:
    id: int
    kind: str
    step: int  # fires while executing step `step` (1-based), or just after it
    target: str = ""  # param / moment / grad / activation / process / checkpoint
    where: str = ""  # tensor name and element, or file
    site: str = ""  # compute: the GEMM it strikes (layer.phase)
    bits: list[int] = field(default_factory=list)
    before: float | None = None
    after: float | None = None
    fired: bool = False
    timeline: int = 0  # how many rollbacks had happened when it fired (see campaign)
    rounding: float | None = None  # the rounding error the hit value may carry anyway
    within_rounding: bool = False  # the corruption was no larger than `rounding`
    # What the protected run learnt of it (skyrack.faults.runtime), and what the campaign concluded:
    outcome_hint: str | None = None  # "recovered" or "masked", decided where it was carried out
    erased: str | None = None  # the recovery that rolled the state back past it ("guard", ...)
    loaded_at: int | None = None  # storage: the step whose restart read the corrupted checkpoint
    outcome: str | None = None  # the campaign's class: masked, recovered, rounding or silent

    def record(self) -> dict:
        return asdict(self)


def schedule(n: int, steps: int, seed: int, weights=(0.4, 0.4, 0.1, 0.1)) -> list[Fault]:
    """`n` faults spread evenly over steps 1..steps (jittered), their classes drawn by `weights`."""
    rng = random.Random(seed)
    faults = []
    for i in range(n):
        lo = 1 + (steps * i) // n
        hi = max(lo, (steps * (i + 1)) // n)
        faults.append(Fault(i, rng.choices(KINDS, weights)[0], rng.randint(lo, min(hi, steps))))
    return faults


def schedule_from_rate(per_step: float, steps: int, seed: int, weights=(0.4, 0.4, 0.1, 0.1)) -> list[Fault]:
    """Poisson arrivals at `per_step` faults per step (the radiation model's rate x stress)."""
    rng = random.Random(seed)
    faults, t = [], 0.0
    while per_step > 0:
        t += rng.expovariate(per_step)
        if t > steps:
            break
        faults.append(
            Fault(len(faults), rng.choices(KINDS, weights)[0], max(1, int(t) + 1 if t % 1 else int(t)))
        )
    return faults


class Injector:
    def __init__(self, trainer: Trainer, faults: list[Fault], seed: int = 0):
        self.trainer, self.faults, self.rng = (
            trainer,
            sorted(faults, key=lambda f: f.step),
            random.Random(seed),
        )
        self.timeline = 0
        self.on_fire: list = []  # fn(fault), called as each fault is carried out
        self._names = [n for n, _ in trainer.model.named_parameters()]
        self.sites = GemmSites.for_model(trainer.model)
        self.sites.tamper = self._tamper
        trainer.hooks["before_step"].append(self._before_step)
        # before any checker's hook: the upset lands while the gradients wait for the update
        trainer.hooks["before_update"].insert(0, self._before_update)

    def _pending(self, step: int, kinds: tuple[str, ...]) -> list[Fault]:
        return [f for f in self.faults if not f.fired and f.step == step and f.kind in kinds]

    def due(self, step: int, kind: str) -> list[Fault]:
        """Interrupt or storage faults of `step` not yet carried out (the campaign fires them)."""
        return self._pending(step, (kind,))

    def fire(self, fault: Fault, target: str, where: str) -> None:
        fault.fired, fault.target, fault.where, fault.timeline = True, target, where, self.timeline
        for fn in self.on_fire:
            fn(fault)

    # -- the bit flips --------------------------------------------------------------------------
    def _bits(self, tensor: torch.Tensor, compute: bool) -> list[int]:
        width = bit_width(tensor.dtype)
        if not compute:
            b = self.rng.randrange(width)
            return [b] if self.rng.random() < 0.986 or b == width - 1 else [b, b + 1]
        n = self.rng.randint(2, 4)
        start = self.rng.randrange(width - n + 1)
        return list(range(start, start + n))

    def _flip(
        self,
        fault: Fault,
        tensor: torch.Tensor,
        name: str,
        target: str,
        compute: bool,
        index: int | None = None,
        rounding: float | None = None,
    ) -> None:
        if index is None:
            index = self.rng.randrange(tensor.numel())
        flat = tensor.view(-1)
        if rounding is None:  # a stored value: one ulp
            value = flat[index : index + 1].detach()
            rounding = float((torch.nextafter(value, value.new_full((1,), math.inf)) - value).abs())
        if compute and self.rng.random() < 0.5:  # a wrong but ordinary-looking value
            fault.before = float(flat[index])
            flat[index] = flat[index] * self.rng.choice((-1.0, 4.0, -16.0, 64.0, 1e3))
            fault.after = float(flat[index])
            fault.bits = []
        else:
            fault.bits = self._bits(tensor, compute)
            fault.before, fault.after = flip_bits(tensor, index, fault.bits)
        fault.rounding = rounding
        fault.within_rounding = math.isfinite(fault.after) and abs(fault.after - fault.before) <= rounding
        self.fire(fault, target, f"{name}[{index}]")

    def between_steps(self) -> None:
        """Memory upsets in parameters or optimizer moments, after step `state.step`."""
        for fault in self._pending(self.trainer.state.step, ("memory",)):
            if not fault.target:  # decided once: most memory upsets land between steps
                fault.target = "grad" if self.rng.random() < 0.2 else "state"
            if fault.target == "grad":
                continue
            if self.rng.random() < 0.5:
                moments = [
                    (f"{self._names[i]}.{key}", v)
                    for opt in self.trainer.optimizers
                    for i, p in enumerate(self.trainer.model.parameters())
                    for key, v in sorted(opt.state.get(p, {}).items())
                    if torch.is_tensor(v) and v.ndim > 0
                ]
                if moments:
                    name, tensor = self.rng.choice(moments)
                    self._flip(fault, tensor, name, "moment", compute=False)
                    continue
            i = self.rng.randrange(len(self._names))
            self._flip(fault, list(self.trainer.model.parameters())[i].data, self._names[i], "param", False)

    # -- hooks ----------------------------------------------------------------------------------
    def _before_step(self, trainer: Trainer) -> None:
        step = trainer.state.step + 1
        for fault in self._pending(step, ("compute", "memory")):
            if fault.kind == "compute" and not fault.site:
                fault.site = self.rng.choice(self.sites.sites())
            elif fault.kind == "memory" and not fault.target:
                fault.target = "grad" if self.rng.random() < 0.2 else "state"

    def _tamper(self, site: str, out: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> None:
        step = self.trainer.state.step + 1
        for fault in self._pending(step, ("compute",)):
            if fault.site != site:
                continue
            row, col = self.rng.randrange(out.shape[0]), self.rng.randrange(out.shape[1])
            k = a.shape[1]
            unit = torch.finfo(out.dtype).eps / 2
            gamma = k * unit / (1 - k * unit)
            rounding = gamma * float((a[row].float().abs() * b[:, col].float().abs()).sum())
            phase = site.rsplit(".", 1)[1]
            self._flip(
                fault,
                out,
                site,
                "activation" if phase == "forward" else "gradient",
                True,
                index=row * out.shape[1] + col,
                rounding=rounding,
            )

    def _before_update(self, trainer: Trainer) -> None:
        step = trainer.state.step + 1
        for fault in self._pending(step, ("memory",)):
            if fault.target != "grad":
                continue
            params = [(n, p) for n, p in zip(self._names, trainer.model.parameters()) if p.grad is not None]
            name, p = self.rng.choice(params)
            self._flip(fault, p.grad, name + ".grad", "grad", compute=False)
