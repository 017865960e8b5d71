"""The compiled checks (skyrack.faults.native) against the torch code they replace. ABFT: the same
verdict on clean and corrupted products of all three kinds, at shapes that are not multiples of
the vector width, with one or two threads; non-finite values are faults; strided operands and a
machine without a working compiler fall back to torch. The fingerprint: the same bytes."""

from __future__ import annotations

import pytest
import torch

from skyrack.faults import native
from skyrack.faults.gemm import Abft, GemmSites
from skyrack.faults.guard import ABFT_THRESHOLD


@pytest.fixture(scope="module")
def kernels():
    k = native.kernels()
    if k is None:
        pytest.skip("no C compiler on this machine: the torch checks are the only path")
    return k


def _products(m, k, n, seed=0):
    """The three products of a linear layer, as _CheckedLinear computes them: (out, a, b)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(m, k, generator=g)
    w = torch.randn(n, k, generator=g) * k**-0.5
    grad_y = torch.randn(m, n, generator=g)
    xt = x.t()
    return {
        "forward": (x.mm(w.t()), x, w.t()),
        "grad_input": (grad_y.mm(w), grad_y, w),
        "grad_weight": (xt.mm(grad_y), xt, grad_y),
    }


def _worst(check, out, a, b):
    check.reset()
    check("site", out, a, b)
    return check.worst()


# the cpu preset's shapes, and odd ones whose rows end past the last full vector; products with a
# handful of terms (the last two) are too short for the rounding scale to promise no false alarm
# (one costs a recomputed step), so there only detection is asserted
SHAPES = [
    (1536, 128, 384, True),
    (1536, 512, 128, True),
    (300, 37, 41, True),
    (5, 130, 17, False),
    (1, 8, 1, False),
]


@pytest.mark.parametrize("m,k,n,long_enough", SHAPES)
def test_clean_products_pass_and_one_corrupted_element_is_caught_on_both_paths(kernels, m, k, n, long_enough):
    fast, reference = Abft(), Abft(native=False)
    assert fast.native is not None and reference.native is None
    for kind, (out, a, b) in _products(m, k, n).items():
        clean = (_worst(fast, out, a, b), _worst(reference, out, a, b))
        assert max(clean) < ABFT_THRESHOLD or not long_enough, (kind, clean)
        for index in (0, out.numel() // 2, out.numel() - 1):  # first, middle and the tail past the lanes
            bad = out.clone()
            bad.view(-1)[index] += 1e-3 * out.norm() / out.shape[0] ** 0.5 + 1e-3
            hit = (_worst(fast, bad, a, b), _worst(reference, bad, a, b))
            assert min(hit) > ABFT_THRESHOLD, (kind, index, hit)
            assert hit[0] == pytest.approx(hit[1], rel=0.05), (kind, index, hit)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e20, -3e38])
def test_non_finite_or_overflowing_elements_are_faults(kernels, value):
    fast = Abft()
    products = _products(64, 48, 40)
    for kind, (out, a, b) in products.items():
        bad = out.clone()
        bad.view(-1)[7] = value
        assert _worst(fast, bad, a, b) > ABFT_THRESHOLD, (kind, value)


def test_one_and_two_threads_agree(kernels):
    fast = Abft()
    before = torch.get_num_threads()
    try:
        results = []
        for threads in (1, 2):
            torch.set_num_threads(threads)
            products = _products(512, 96, 200, seed=3)
            results.append([_worst(fast, *p) for p in products.values()])
    finally:
        torch.set_num_threads(before)
    assert results[0] == pytest.approx(results[1], rel=1e-3)


def test_strided_operands_use_the_torch_check(kernels):
    fast = Abft()
    out, a, b = _products(64, 32, 48)["forward"]
    wide = torch.zeros(64, 96)
    wide[:, :48] = out
    strided = wide[:, :48]
    assert not strided.is_contiguous()
    assert _worst(fast, strided, a, b) < ABFT_THRESHOLD
    assert len(fast._ratios) == 1  # the torch path ran
    strided[3, 5] += 1.0
    assert _worst(fast, strided, a, b) > ABFT_THRESHOLD


def test_without_a_working_compiler_the_checks_fall_back_and_say_why(tmp_path, monkeypatch):
    monkeypatch.setenv("SKYRACK_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "false")  # a compiler that always fails
    native.kernels.cache_clear()
    said = []
    try:
        assert native.kernels(said.append) is None
        assert len(said) == 1 and "could not be built" in said[0] and "torch" in said[0]
        monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
        native.kernels.cache_clear()
        assert native.kernels(said.append) is None and "no C compiler" in said[1]
    finally:
        native.kernels.cache_clear()


def test_the_library_is_built_once_and_found_again(tmp_path, monkeypatch, kernels):
    cc = native._compiler()
    first = native.build(tmp_path, cc)
    stamp = first.stat().st_mtime_ns
    again = native.build(tmp_path, cc)
    assert again == first and again.stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # nothing left from the build


def test_the_compiled_fingerprint_gives_the_torch_bytes_and_sees_every_flip(kernels, monkeypatch):
    import skyrack.faults.bits as bits

    g = torch.Generator().manual_seed(9)
    tensors = [torch.randn(n, generator=g) for n in (1, 7, 8, 9, 1000, 4099)] + [
        torch.arange(33, dtype=torch.int32)
    ]
    fast = bits.word_sums(tensors)
    assert bits._native_word_sums(tensors) == fast
    monkeypatch.setattr(bits, "_native_word_sums", lambda tensors: None)
    assert bits.word_sums(tensors) == fast  # the torch path, byte for byte
    monkeypatch.undo()
    for t, index, bit in (
        (tensors[0], 0, 31),
        (tensors[4], 999, 0),
        (tensors[5], 4098, 17),
        (tensors[6], 32, 3),
    ):
        bits.flip_bits(t, index, [bit])
        assert bits.word_sums(tensors) != fast
        bits.flip_bits(t, index, [bit])
        assert bits.word_sums(tensors) == fast
    strided = torch.randn(10, 10)[:, ::2]
    assert bits._native_word_sums([strided]) is None  # a strided view takes the torch path


def _layer_worst(check, m, k, n, corrupt=None, backward=True):
    """One bias-free linear layer routed through GemmSites and `check`: forward (and backward) on
    random data, one element of the product `corrupt` ("forward", "grad_input", "grad_weight")
    off by a small relative amount; the step's worst ratio."""
    g = torch.Generator().manual_seed(5)
    layer = torch.nn.Sequential(torch.nn.Linear(k, n, bias=False))
    with torch.no_grad():
        layer[0].weight.copy_(torch.randn(n, k, generator=g) * k**-0.5)
    sites = GemmSites.for_model(layer)

    def tamper(site, out, a, b):
        if site == f"0.{corrupt}":
            out.view(-1)[out.numel() // 3] += 1e-3 * out.norm() / out.shape[0] ** 0.5 + 1e-3

    sites.check, sites.tamper = check, tamper
    check.reset()
    x = torch.randn(m, k, generator=g, requires_grad=True)
    y = layer(x)
    pending = len(getattr(check, "_pending", ()))
    if backward:
        (y * torch.randn(m, n, generator=g)).sum().backward()
    return check.worst(), pending


@pytest.mark.parametrize("m,k,n", [(1536, 128, 384), (1536, 512, 128), (300, 37, 41)])
def test_a_layers_products_checked_together_in_its_backward_agree_with_torch(kernels, m, k, n):
    fast, reference = Abft(), Abft(native=False)
    clean, pending = _layer_worst(fast, m, k, n)
    assert pending == 1  # the forward's check waited for the backward
    assert clean < ABFT_THRESHOLD and not fast._pending and not fast._ratios  # all three in C
    for kind in ("forward", "grad_input", "grad_weight"):
        hit = _layer_worst(fast, m, k, n, kind)[0], _layer_worst(reference, m, k, n, kind)[0]
        assert min(hit) > ABFT_THRESHOLD, (kind, hit)
        assert hit[0] == pytest.approx(hit[1], rel=0.05), (kind, hit)


def test_a_forward_whose_backward_never_comes_is_still_checked(kernels):
    fast = Abft()
    assert _layer_worst(fast, 300, 37, 41, backward=False)[0] < ABFT_THRESHOLD
    worst, pending = _layer_worst(fast, 300, 37, 41, "forward", backward=False)
    assert pending == 1 and worst > ABFT_THRESHOLD  # worst() finished the waiting check
    with torch.no_grad():  # evaluation: nothing waits, the forward is checked at once
        worst, pending = _layer_worst(fast, 300, 37, 41, "forward", backward=False)
    assert pending == 0 and worst > ABFT_THRESHOLD
