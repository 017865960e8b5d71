"""Bit-level corruption of tensors in their real dtype, and an integrity fingerprint that sees it.

A memory upset flips one (or a few neighbouring) bits of a stored word; here a tensor is viewed
as integers of its own width, so a flip in a bf16 weight flips a bf16 bit, not an fp32 one.
"""

from __future__ import annotations

import ctypes

import numpy as np
import torch

_INT_VIEW = {
    torch.float32: torch.int32,
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
    torch.float64: torch.int64,
    torch.int64: torch.int64,
    torch.int32: torch.int32,
    torch.int16: torch.int16,
    torch.uint8: torch.uint8,
    torch.int8: torch.int8,
}


def bit_width(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size() * 8


def int_view(tensor: torch.Tensor) -> torch.Tensor:
    try:
        return tensor.view(_INT_VIEW[tensor.dtype])
    except KeyError:
        raise TypeError(f"no integer view for {tensor.dtype}") from None


@torch.no_grad()
def flip_bits(
    tensor: torch.Tensor, flat_index: int, bits: list[int] | tuple[int, ...]
) -> tuple[float, float]:
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
def word_sums(tensors) -> bytes:
    """An integrity fingerprint: per-tensor sums of the raw words in the words' own width
    (wrapping). A flip of bit k changes its tensor's sum by 2**k modulo 2**width, never by zero,
    and the sums stay separate per tensor, so flips in two tensors cannot cancel. Summing in the
    native width rather than int64 keeps the per-step check near 1 % of a training step; with a
    hundred small tensors per step the cost is the per-tensor dispatch, so each tensor costs one
    view and one sum (the sums are grouped by width and stacked once per group)."""
    tensors = [t.detach() for t in tensors]
    fast = _native_word_sums(tensors)
    if fast is not None:
        return fast
    groups: dict[torch.dtype, list[torch.Tensor]] = {}
    for t in tensors:
        words = int_view(t)
        groups.setdefault(words.dtype, []).append(words.sum(dtype=words.dtype))
    return b"".join(torch.stack(sums).cpu().numpy().tobytes() for sums in groups.values())


def _native_word_sums(tensors: list[torch.Tensor]) -> bytes | None:
    """The same bytes as the torch path, in one C call, when every tensor is a contiguous CPU
    tensor of 32-bit words (a CPU training state in float32); None otherwise."""
    from skyrack.faults.native import kernels

    k = kernels()
    if k is None or not tensors:
        return None
    if not all(
        t.device.type == "cpu" and t.element_size() == 4 and t.is_contiguous() and t.dtype in _INT_VIEW
        for t in tensors
    ):
        return None
    count = len(tensors)
    ptrs = (ctypes.c_void_p * count)(*(t.data_ptr() for t in tensors))
    lens = (ctypes.c_long * count)(*(t.numel() for t in tensors))
    out = np.empty(count, dtype=np.uint32)
    k.word_sums32(ptrs, lens, count, out.ctypes.data)
    return out.tobytes()
