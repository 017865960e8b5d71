"""Bit-level corruption of tensors in their real dtype, and integrity fingerprints that see it.

A memory upset flips one (or a few neighbouring) bits of a stored word; here a tensor is viewed
as integers of its own width, so a flip in a bf16 weight flips a bf16 bit, not an fp32 one.
"""

from __future__ import annotations

import torch

_INT_VIEW = {
    torch.float32: torch.int32, torch.float16: torch.int16, torch.bfloat16: torch.int16,
    torch.float64: torch.int64, torch.int64: torch.int64, torch.int32: torch.int32,
    torch.int16: torch.int16, torch.uint8: torch.uint8, torch.int8: torch.int8,
}


def bit_width(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size() * 8


def int_view(tensor: torch.Tensor) -> torch.Tensor:
    try:
        return tensor.view(_INT_VIEW[tensor.dtype])
    except KeyError:
        raise TypeError(f"no integer view for {tensor.dtype}") from None


@torch.no_grad()
def flip_bits(tensor: torch.Tensor, flat_index: int, bits: list[int] | tuple[int, ...]) -> tuple[float, float]:
    """Flip `bits` (0 = least significant) of element `flat_index`, in place.

    Returns the element's value before and after, as Python floats (the after value may be
    inf or nan: that is what a flipped exponent bit does).
    """
    width = bit_width(tensor.dtype)
    if any(not 0 <= b < width for b in bits):
        raise ValueError(f"bits must be in [0, {width}) for {tensor.dtype}")
    flat = tensor.view(-1)
    before = float(flat[flat_index])
    words = int_view(flat)
    mask = 0
    for b in bits:
        mask |= 1 << b
    if mask >= 1 << (width - 1):  # the sign bit: express the mask as the signed integer it is
        mask -= 1 << width
    words[flat_index] ^= torch.tensor(mask, dtype=words.dtype, device=words.device)
    return before, float(flat[flat_index])


@torch.no_grad()
def fingerprint(tensors) -> torch.Tensor:
    """A cheap integrity sum over tensors' raw words; any single- or few-bit flip changes it.

    Each tensor's integer view is summed in int64 (a flip of bit k changes the sum by 2**k, and
    2**k < 2**63 cannot wrap to zero), then the per-tensor sums are mixed with distinct odd
    multipliers so a flip cannot hide by moving between tensors. Returns a 0-d int64 tensor on
    the tensors' device, so no host synchronisation is needed until it is compared.
    """
    total = None
    for k, t in enumerate(tensors):
        words = int_view(t.detach().reshape(-1))
        s = words.sum(dtype=torch.int64) * (2 * k + 1)
        total = s if total is None else total + s
    return total if total is not None else torch.zeros((), dtype=torch.int64)
