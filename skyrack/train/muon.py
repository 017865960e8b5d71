"""Muon with its orthogonalization in the precision the hardware runs fast.

`torch.optim.Muon` always orthogonalizes in bf16: right on a GPU, but on a CPU without native
bf16 every bf16 product is emulated and the optimizer step costs ~40x its float32 cost
(`skyrack.train.hardware`). This subclass keeps torch's algorithm, hyperparameters and
state (a checkpoint of one loads into the other) and runs the Newton-Schulz iteration in
`ns_dtype`: with bfloat16 its update is bitwise torch's, with float32 it is the same update
without bf16's rounding.
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
    in `dtype`. The wide orientation keeps the Gram matrix the small one."""
    a, b, c = coefficients
    x = g.to(dtype)
    tall = g.size(0) > g.size(1)
    if tall:
        x = x.T
    x = x / x.norm().clamp(min=eps)  # Frobenius norm >= spectral norm: singular values <= 1
    for _ in range(steps):
        gram = x @ x.T
        poly = torch.addmm(gram, gram, gram, beta=b, alpha=c)
        x = torch.addmm(x, poly, x, beta=a)
    return x.T if tall else x


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
            for p in group["params"]:
                if p.grad is None:
                    continue
                grad = p.grad
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(grad, memory_format=torch.preserve_format)
                buf = state["momentum_buffer"]
                buf.lerp_(grad, 1 - momentum)
                update = grad.lerp(buf, momentum) if group["nesterov"] else buf
                update = orthogonalize(
                    update, self.ns_dtype, group["ns_steps"], group["ns_coefficients"], group["eps"]
                )
                p.mul_(1 - lr * decay)
                p.add_(update, alpha=-lr * lr_scale(p.shape, group["adjust_lr_fn"]))
        return loss
