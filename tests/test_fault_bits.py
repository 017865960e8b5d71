"""Bit flips happen in the tensor's own dtype, and the fingerprint always sees them."""

import math

import pytest
import torch

from skyrack.faults.bits import bit_width, flip_bits, word_sums


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_exponent_flip_of_one_point_five_gives_huge_or_nonfinite(dtype):
    t = torch.full((4,), 1.5, dtype=dtype)
    width = bit_width(dtype)
    top_exponent_bit = width - 2  # just below the sign bit
    before, after = flip_bits(t, 2, [top_exponent_bit])
    assert before == 1.5
    assert not math.isfinite(after) or abs(after) > 1e30
    assert t[0] == 1.5 and t[3] == 1.5  # neighbours untouched
    flip_bits(t, 2, [top_exponent_bit])  # flipping back restores the value exactly
    assert float(t[2]) == 1.5


def test_sign_and_mantissa_flips():
    t = torch.tensor([2.0, 3.0])
    assert flip_bits(t, 0, [31]) == (2.0, -2.0)
    before, after = flip_bits(t, 1, [0])
    assert before == 3.0 and after != 3.0 and abs(after - 3.0) < 1e-6


def test_word_sums_detects_every_single_bit_flip_in_a_small_model():
    torch.manual_seed(0)
    tensors = [torch.randn(7, 5), torch.randn(11).to(torch.bfloat16), torch.randn(3, dtype=torch.float64)]
    reference = word_sums(tensors)
    for t in tensors:
        for index in range(t.numel()):
            for bit in range(bit_width(t.dtype)):
                flip_bits(t, index, [bit])
                assert word_sums(tensors) != reference
                flip_bits(t, index, [bit])
    assert word_sums(tensors) == reference


def test_word_sums_sees_two_flips_that_would_cancel_in_a_plain_sum():
    a, b = torch.zeros(4), torch.zeros(4)
    flip_bits(a, 0, [3])  # a now holds bit 3; clearing it later subtracts 8 from a's word sum
    reference = word_sums([a, b])
    flip_bits(a, 0, [3])  # -8 in a
    flip_bits(b, 0, [3])  # +8 in b
    assert word_sums([a, b]) != reference
