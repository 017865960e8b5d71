"""Radiation-style faults injected into a live `Trainer`.

Classes (`Fault.kind`):
  * memory    - single-event upsets: one bit (98.6 %, Alsat-1) or two adjacent bits flipped, any
                bit position, in the tensor's own dtype, in a parameter or an optimizer moment
                (between steps) or a gradient (after backward);
  * compute   - a corrupted value while computing: an activation of a transformer block during
                forward, or a gradient after backward; several bits at once or a rescaled value,
                mostly finite (real SDCs are NaN/Inf only ~1 % of the time);
  * interrupt - the process dies (SIGKILL) and restarts from its last checkpoint;
  * storage   - bytes of a checkpoint on disk flipped.
memory and compute faults are applied here; interrupt and storage need the run directory and are
carried out by `skyrack.faults.runtime.ProtectedRun`, which asks `due()` for them.

Each fault fires once, at the first execution of its step: a replay of that step after recovery
runs clean, as it would after a one-off upset.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field

import torch

from skyrack.faults.bits import bit_width, flip_bits
from skyrack.train.trainer import Trainer

KINDS = ("memory", "compute", "interrupt", "storage")


@dataclass
class Fault:
    id: int
    kind: str
    step: int              # fires while executing step `step` (1-based), or just after it
    target: str = ""       # param / moment / grad / activation / process / checkpoint
    where: str = ""        # tensor name and element, or file
    bits: list[int] = field(default_factory=list)
    before: float | None = None
    after: float | None = None
    fired: bool = False
    timeline: int = 0      # how many rollbacks had happened when it fired (see campaign)

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
        faults.append(Fault(len(faults), rng.choices(KINDS, weights)[0], max(1, int(t) + 1 if t % 1 else int(t))))
    return faults


class Injector:
    def __init__(self, trainer: Trainer, faults: list[Fault], seed: int = 0):
        self.trainer, self.faults, self.rng = trainer, sorted(faults, key=lambda f: f.step), random.Random(seed)
        self.timeline = 0
        self.on_fire: list = []  # fn(fault), called as each fault is carried out
        self._names = [n for n, _ in trainer.model.named_parameters()]
        self._handles = []
        trainer.hooks["before_step"].append(self._before_step)
        trainer.hooks["after_backward"].append(self._after_backward)

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

    def _flip(self, fault: Fault, tensor: torch.Tensor, name: str, target: str, compute: bool) -> None:
        index = self.rng.randrange(tensor.numel())
        if compute and self.rng.random() < 0.5:   # a wrong but ordinary-looking value
            flat = tensor.view(-1)
            fault.before = float(flat[index])
            flat[index] = flat[index] * self.rng.choice((-1.0, 4.0, -16.0, 64.0, 1e3))
            fault.after = float(flat[index])
            fault.bits = []
        else:
            fault.bits = self._bits(tensor, compute)
            fault.before, fault.after = flip_bits(tensor, index, fault.bits)
        self.fire(fault, target, f"{name}[{index}]")

    def between_steps(self) -> None:
        """Memory upsets in parameters or optimizer moments, after step `state.step`."""
        for fault in self._pending(self.trainer.state.step, ("memory",)):
            if self.rng.random() < 0.5:
                moments = [(f"{self._names[i]}.{key}", v)
                           for opt in self.trainer.optimizers
                           for i, p in enumerate(self.trainer.model.parameters())
                           for key, v in sorted(opt.state.get(p, {}).items())
                           if torch.is_tensor(v) and v.ndim > 0]
                if moments:
                    name, tensor = self.rng.choice(moments)
                    self._flip(fault, tensor, name, "moment", compute=False)
                    continue
            i = self.rng.randrange(len(self._names))
            self._flip(fault, list(self.trainer.model.parameters())[i].data, self._names[i], "param", False)

    # -- hooks ----------------------------------------------------------------------------------
    def _before_step(self, trainer: Trainer) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []
        step = trainer.state.step + 1
        for fault in self._pending(step, ("compute",)):
            if self.rng.random() < 0.5:
                block_i = self.rng.randrange(len(trainer.model.blocks))
                self._handles.append(trainer.model.blocks[block_i].register_forward_hook(
                    self._activation_hook(fault, f"blocks.{block_i}.out")))
            else:
                fault.target = "gradient"

    def _activation_hook(self, fault: Fault, name: str):
        def hook(module, inputs, output):
            if fault.fired:
                return None
            out = output.detach().clone()
            self._flip(fault, out, name, "activation", compute=True)
            return output + (out - output.detach())  # the corrupted value, same autograd graph
        return hook

    def _after_backward(self, trainer: Trainer) -> None:
        step = trainer.state.step + 1
        for fault in self._pending(step, ("memory", "compute")):
            if fault.kind == "compute" and fault.target != "gradient":
                continue
            if fault.kind == "memory":
                if not fault.target:  # decided once: most memory upsets land between steps
                    fault.target = "grad" if self.rng.random() < 0.2 else "state"
                if fault.target != "grad":
                    continue
            params = [(n, p) for n, p in zip(self._names, trainer.model.parameters()) if p.grad is not None]
            name, p = self.rng.choice(params)
            self._flip(fault, p.grad, name + ".grad", "grad" if fault.kind == "memory" else "gradient",
                       compute=fault.kind == "compute")
