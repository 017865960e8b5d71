"""Muon's orthogonalization precision: float32 and bf16 agree to bf16 rounding, the bf16 path is
torch's own Muon bit for bit, and the choice follows the hardware's capabilities."""

import pytest
import torch

from skyrack.train.config import preset
from skyrack.train.hardware import CpuInfo, cpu_info, matmul_dtype
from skyrack.train.muon import Muon, orthogonalize
from skyrack.train.trainer import muon_precision

AVX2_EPYC = CpuInfo("AMD EPYC", frozenset({"avx", "avx2", "fma"}), 2)
SAPPHIRE_RAPIDS = CpuInfo("Intel Xeon", frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16"}), 8)
COOPER_LAKE = CpuInfo("Intel Xeon", frozenset({"avx2", "avx512f", "avx512_bf16"}), 8)
SKYLAKE = CpuInfo("Intel Xeon", frozenset({"avx2", "avx512f"}), 8)


@pytest.mark.parametrize("shape", [(128, 128), (384, 128), (128, 512), (512, 128), (40, 7)])
def test_float32_and_bf16_orthogonalization_agree_within_bf16_rounding(shape):
    gen = torch.Generator().manual_seed(sum(shape))
    g = torch.randn(*shape, generator=gen)
    o32 = orthogonalize(g, torch.float32)
    o16 = orthogonalize(g, torch.bfloat16).float()
    assert o32.dtype == torch.float32 and o16.shape == o32.shape
    # bf16 keeps 8 significant bits (relative rounding 2^-8 = 0.4 %); five iterations of three
    # products each carry that error, not more: the two differ by a few bf16 ulps.
    rel = (o32 - o16).norm() / o32.norm()
    assert rel < 0.03, rel
    assert rel > 1e-4  # they are really two precisions
    # orthogonalized: most singular values near 1 (Muon's NS leaves them in ~0.5..1.5; the
    # smallest few of a random square matrix start too close to 0 for five iterations)
    s = torch.linalg.svdvals(o32.double())
    assert 0.5 < s.median() < 1.5 and s.max() < 1.6
    # and the same directions in both
    cos = torch.nn.functional.cosine_similarity(o32.flatten(), o16.flatten(), dim=0)
    assert cos > 0.999


def _two_optimizers(precision_ours, seed=0):
    gen = torch.Generator().manual_seed(seed)
    w = [torch.randn(64, 32, generator=gen), torch.randn(32, 96, generator=gen)]
    a = [p.clone().requires_grad_() for p in w]
    b = [p.clone().requires_grad_() for p in w]
    ours = Muon(a, lr=0.02, weight_decay=0.01, ns_dtype=precision_ours)
    theirs = torch.optim.Muon(b, lr=0.02, weight_decay=0.01)
    grads = [[torch.randn(p.shape, generator=gen) for p in w] for _ in range(4)]
    for step in grads:
        for p, q, gr in zip(a, b, step):
            p.grad, q.grad = gr.clone(), gr.clone()
        ours.step()
        theirs.step()
    return ours, theirs, a, b


def test_bf16_path_is_torch_muon_bit_for_bit_and_state_dicts_interchange():
    ours, theirs, a, b = _two_optimizers(torch.bfloat16)
    for p, q in zip(a, b):
        assert torch.equal(p, q)
    for p, q in zip(a, b):
        assert torch.equal(ours.state[p]["momentum_buffer"], theirs.state[q]["momentum_buffer"])
    ours.load_state_dict(theirs.state_dict())  # a checkpoint of torch's Muon loads into ours


def test_float32_path_is_the_same_update_up_to_bf16_rounding():
    _, _, a, b = _two_optimizers(torch.float32)
    for p, q in zip(a, b):
        assert not torch.equal(p, q)
        step = 4 * 0.02 * 2  # four updates of lr x (at most sqrt(2)) per element, roughly
        assert (p - q).abs().max() < 0.05 * step


def test_a_stack_of_same_shape_matrices_is_orthogonalized_as_each_alone():
    gen = torch.Generator().manual_seed(7)
    for shape in [(4, 128, 384), (3, 384, 128), (2, 40, 7)]:
        stack = torch.randn(*shape, generator=gen)
        together = orthogonalize(stack, torch.float32)
        for g, o in zip(stack, together):
            alone = orthogonalize(g, torch.float32)
            assert o.shape == alone.shape
            assert ((o - alone).norm() / alone.norm()) < 1e-5  # float32 rounding, not another result


def test_float32_muon_batches_same_shape_matrices_to_the_per_matrix_update():
    gen = torch.Generator().manual_seed(3)
    w = [torch.randn(48, 16, generator=gen) for _ in range(3)] + [torch.randn(16, 16, generator=gen)]
    params = [p.clone().requires_grad_() for p in w]
    opt = Muon(params, lr=0.02, weight_decay=0.0, ns_dtype=torch.float32, nesterov=False, momentum=0.0)
    grads = [torch.randn(p.shape, generator=gen) for p in w]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    opt.step()
    scale = (48 / 16) ** 0.5  # torch's "original" rule for a tall matrix
    for p, p0, g in zip(params, w, grads):
        expect = p0 - 0.02 * (scale if p0.shape[0] > p0.shape[1] else 1.0) * orthogonalize(g, torch.float32)
        assert torch.allclose(p.detach(), expect, atol=1e-6)


def test_precision_choice_follows_the_cpu_capabilities():
    cpu = torch.device("cpu")
    assert matmul_dtype(cpu, AVX2_EPYC) == (torch.float32, "this CPU has no fast bf16")
    assert matmul_dtype(cpu, SKYLAKE)[0] == torch.float32  # AVX-512 without its BF16 extension
    assert matmul_dtype(cpu, COOPER_LAKE) == (torch.bfloat16, "this CPU has AVX-512 BF16")
    assert matmul_dtype(cpu, SAPPHIRE_RAPIDS) == (torch.bfloat16, "this CPU has AMX")
    assert "AVX2 yes, AVX-512 no, BF16 no, AMX no, 2 threads" in AVX2_EPYC.describe()


def test_this_machine_is_described_and_configured_precision_wins():
    here = cpu_info()
    assert here.model and here.threads >= 1
    dtype, _ = matmul_dtype(torch.device("cpu"))
    assert dtype == (torch.bfloat16 if here.fast_bf16 else torch.float32)
    _, cfg = preset("cpu", muon_precision="bfloat16")
    assert muon_precision(cfg, torch.device("cpu")) == (torch.bfloat16, "as configured")
    _, cfg = preset("cpu")
    assert muon_precision(cfg, torch.device("cpu"))[0] == dtype
