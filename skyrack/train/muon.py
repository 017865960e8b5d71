"""Muon with its orthogonalization in the precision the hardware runs fast.

`torch.optim.Muon` always orthogonalizes in bf16: right on a GPU, but on a CPU without native
bf16 every bf16 product is emulated and the optimizer step costs ~40x its float32 cost
(`skyrack.train.hardware`). This subclass keeps torch's algorithm, hyperparameters and
state (a checkpoint of one loads into the other) and runs the Newton-Schulz iteration in
`ns_dtype`: with bfloat16 its update is bitwise torch's, with float32 it is the same update
without bf16's rounding, the matrices of one shape orthogonalized together in batched products
(a dozen small products per matrix cost more in dispatch than in arithmetic at width 128).
"""

from __future__ import annotations

import math

import torch

# The quintic Newton-Schulz coefficients Muon uses (torch.optim.Muon's defaults), kept here to
# check that the optimizer we subclass still uses them.
NS_COEFFICIENTS = (3.4445, -4.7750, 2.0315)


def orthogonalize(
    g: torch.Tensor,
    dtype: torch.dtype,
    steps: int = 5,
    coefficients: tuple[float, float, float] = NS_COEFFICIENTS,
    eps: float = 1e-7,
) -> torch.Tensor:
    """An approximately orthogonal matrix with `g`'s singular vectors (U S' V^T with S' near
    1), by `steps` quintic Newton-Schulz iterations X <- aX + (bA + cA^2)X, A = XX^T, computed
    in `dtype`. The wide orientation keeps the Gram matrix the small one. `g` may also be a
    stack of same-shape matrices (batch first), each orthogonalized on its own in batched
    products: one call for the stack instead of a dozen small ones per matrix."""
    a, b, c = coefficients
    x = g.to(dtype)
    tall = x.size(-2) > x.size(-1)
    if tall:
        x = x.mT
    # Frobenius norm >= spectral norm: singular values <= 1
    norm = x.norm() if x.dim() == 2 else x.norm(dim=(-2, -1), keepdim=True)
    x = x / norm.clamp(min=eps)
    mm_add = torch.addmm if x.dim() == 2 else torch.baddbmm
    for _ in range(steps):
        gram = x @ x.mT
        poly = mm_add(gram, gram, gram, beta=b, alpha=c)
        x = mm_add(x, poly, x, beta=a)
    return x.mT if tall else x


def lr_scale(shape: torch.Size, rule: str | None) -> float:
    """Muon's per-matrix learning-rate scale (torch's `adjust_lr_fn`)."""
    rows, cols = shape[:2]
    if rule is None or rule == "original":
        return math.sqrt(max(1.0, rows / cols))
    if rule == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    return 1.0


class Muon(torch.optim.Muon):
    """torch.optim.Muon, orthogonalizing in `ns_dtype` (see the module docstring)."""

    def __init__(self, params, *, ns_dtype: torch.dtype = torch.bfloat16, **kwargs):
        super().__init__(params, **kwargs)
        self.ns_dtype = ns_dtype

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum, decay = group["lr"], group["momentum"], group["weight_decay"]
            if isinstance(lr, torch.Tensor):
                lr = lr.item()
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            for p in params:
                if "momentum_buffer" not in self.state[p]:
                    self.state[p]["momentum_buffer"] = torch.zeros_like(
                        p.grad, memory_format=torch.preserve_format
                    )
            bufs = [self.state[p]["momentum_buffer"] for p in params]
            torch._foreach_lerp_(bufs, grads, 1 - momentum)
            updates = torch._foreach_lerp(grads, bufs, momentum) if group["nesterov"] else bufs
            ns = (group["ns_steps"], group["ns_coefficients"], group["eps"])
            if self.ns_dtype == torch.bfloat16:  # torch's Muon, one matrix at a time: its bits
                ortho = [orthogonalize(u, self.ns_dtype, *ns) for u in updates]
            else:  # same-shape matrices in batched products (the cpu preset's step: 52 -> 33 ms here)
                ortho = [None] * len(params)
                by_shape: dict[tuple, list[int]] = {}
                for i, u in enumerate(updates):
                    by_shape.setdefault(tuple(u.shape), []).append(i)
                for idx in by_shape.values():
                    stack = orthogonalize(torch.stack([updates[i] for i in idx]), self.ns_dtype, *ns)
                    for i, o in zip(idx, stack.unbind(0)):
                        ortho[i] = o
            torch._foreach_mul_(params, 1 - lr * decay)
            for p, o in zip(params, ortho):
                p.add_(o, alpha=-lr * lr_scale(p.shape, group["adjust_lr_fn"]))
        return loss
