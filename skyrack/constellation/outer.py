"""The arithmetic of training across satellites, apart from any transport.

DDP averages every step's gradients. DiLoCo (arXiv 2311.08105) lets each satellite take H inner
optimizer steps from the shared ("global") parameters, then averages the pseudo-gradients
global - local and takes one outer step with SGD, Nesterov momentum (lr 0.7, momentum 0.9 in
the paper) from the global parameters. Streaming DiLoCo (arXiv 2501.18512) syncs the parameters
in fragments, one fragment a round in turn.

Quantized outer gradients: each satellite rounds its pseudo-gradient to int8 or 4-bit levels with
one scale per tensor (symmetric, the scale the tensor's largest magnitude), which is what its
terminal would send. The average is then taken in fp32 over the host's transport; the wire bytes
are accounted as the quantized payload (bits / 8 per element plus a 4-byte scale per tensor).
"""

from __future__ import annotations

import torch

QUANT_BITS = {"none": 32, "int8": 8, "int4": 4}


def fragments(params: list[torch.nn.Parameter], n: int) -> list[list[int]]:
    """Parameter indices split into `n` contiguous fragments of about equal size."""
    if n < 1:
        raise ValueError("at least one fragment")
    total = sum(p.numel() for p in params)
    out: list[list[int]] = [[] for _ in range(n)]
    seen = 0
    for i, p in enumerate(params):
        out[min(n - 1, int(seen * n / total))].append(i)
        seen += p.numel()
    return [f for f in out if f] or [list(range(len(params)))]


def payload_bytes(numels: list[int], quant: str) -> int:
    """Bytes one satellite's contribution takes on the wire."""
    bits = QUANT_BITS[quant]
    if bits == 32:
        return 4 * sum(numels)
    return sum((n * bits + 7) // 8 + 4 for n in numels)


def quantize(t: torch.Tensor, quant: str) -> torch.Tensor:
    """`t` as the receiver rebuilds it from `quant` levels and one fp32 scale."""
    bits = QUANT_BITS[quant]
    if bits == 32:
        return t
    levels = 2 ** (bits - 1) - 1
    scale = t.abs().max() / levels
    if scale == 0:
        return torch.zeros_like(t)
    return torch.clamp(torch.round(t / scale), -levels, levels) * scale


def flatten(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(flat: torch.Tensor, like: list[torch.Tensor]) -> list[torch.Tensor]:
    out, i = [], 0
    for t in like:
        out.append(flat[i : i + t.numel()].view_as(t))
        i += t.numel()
    return out


class DiLoCo:
    """Global parameters and the outer optimizer over a model's parameters."""

    def __init__(self, params: list[torch.nn.Parameter], lr: float, momentum: float, nesterov: bool = True):
        self.params = params
        self.global_params = [p.detach().clone() for p in params]
        self.outer = torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov and momentum > 0)

    def pseudo_gradient(self, idx: list[int], quant: str = "none") -> torch.Tensor:
        """Flat global - local over the parameters `idx`, as this satellite sends it."""
        return flatten([quantize(self.global_params[i] - self.params[i].detach(), quant) for i in idx])

    @torch.no_grad()
    def outer_step(self, idx: list[int], mean_delta: torch.Tensor) -> None:
        """One outer step of the parameters `idx` with the averaged pseudo-gradient; the others
        keep their local values (streaming)."""
        chosen = [self.params[i] for i in idx]
        for p in self.params:
            p.grad = None
        for i, p, d in zip(idx, chosen, unflatten(mean_delta, chosen)):
            p.copy_(self.global_params[i])
            p.grad = d.clone()
        self.outer.step()  # SGD skips parameters without a gradient
        for i, p in zip(idx, chosen):
            self.global_params[i].copy_(p)
            p.grad = None

    def state_tensors(self) -> list[torch.Tensor]:
        """What a rejoining satellite needs: the global parameters and the outer momentum."""
        out = list(self.global_params)
        for p in self.params:
            buf = self.outer.state.get(p, {}).get("momentum_buffer")
            out.append(buf if buf is not None else torch.zeros_like(p))
        return out

    @torch.no_grad()
    def load_state_tensors(self, tensors: list[torch.Tensor]) -> None:
        n = len(self.params)
        for g, p, src in zip(self.global_params, self.params, tensors[:n]):
            g.copy_(src)
            p.copy_(src)
        if self.outer.defaults["momentum"] > 0:
            for p, buf in zip(self.params, tensors[n:]):
                self.outer.state[p]["momentum_buffer"] = buf.clone()
