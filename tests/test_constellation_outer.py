import torch

from skyrack.constellation import outer
from skyrack.train.config import ModelConfig
from skyrack.train.model import GPT

CFG = ModelConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=16)


def _model():
    torch.manual_seed(0)
    return GPT(CFG)


def _batch(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 20, (4, 8), generator=g)
    return x, torch.roll(x, -1, 1)


def _grads(model, seed):
    model.zero_grad(set_to_none=True)
    _, loss = model(*_batch(seed))
    loss.backward()
    return [p.grad.clone() for p in model.parameters()]


def test_diloco_with_one_inner_step_lr_1_and_no_momentum_is_the_ddp_update():
    lr, seeds = 0.05, (1, 2, 3)
    # DDP: the gradients averaged (what the all-reduce gives), one SGD step
    ddp = _model()
    grads = [_grads(ddp, s) for s in seeds]
    for p, *gs in zip(ddp.parameters(), *grads):
        p.grad = torch.stack(gs).mean(0)
    torch.optim.SGD(ddp.parameters(), lr=lr).step()
    # DiLoCo: each satellite one inner SGD step from the same start, pseudo-gradients averaged
    deltas = []
    for s in seeds:
        m = _model()
        dl = outer.DiLoCo(list(m.parameters()), lr=1.0, momentum=0.0)
        _grads(m, s)
        torch.optim.SGD(m.parameters(), lr=lr).step()
        deltas.append(dl.pseudo_gradient(list(range(len(dl.params)))))
    m = _model()
    dl = outer.DiLoCo(list(m.parameters()), lr=1.0, momentum=0.0)
    dl.outer_step(list(range(len(dl.params))), torch.stack(deltas).mean(0))
    start = _model()
    for a, b in zip(ddp.parameters(), m.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)  # fp32 rounding of two summation orders
    assert any(not torch.equal(a, s) for a, s in zip(ddp.parameters(), start.parameters()))


def test_outer_step_is_nesterov_sgd_on_the_pseudo_gradient():
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    dl = outer.DiLoCo([p], lr=0.7, momentum=0.9)
    with torch.no_grad():
        p.sub_(torch.tensor([0.1, -0.2]))  # local training moved it
    delta = dl.pseudo_gradient([0])
    torch.testing.assert_close(delta, torch.tensor([0.1, -0.2]))
    dl.outer_step([0], delta)
    # first Nesterov step: buf = g; update = g + 0.9 g
    torch.testing.assert_close(p.detach(), torch.tensor([1.0, 2.0]) - 0.7 * 1.9 * torch.tensor([0.1, -0.2]))
    torch.testing.assert_close(dl.global_params[0], p.detach())


def test_streaming_syncs_only_its_fragment():
    m = _model()
    params = list(m.parameters())
    frags = outer.fragments(params, 3)
    assert sorted(i for f in frags for i in f) == list(range(len(params)))
    assert len(frags) == 3
    dl = outer.DiLoCo(params, lr=1.0, momentum=0.0)
    with torch.no_grad():
        for p in params:
            p.add_(1.0)
    local = [p.detach().clone() for p in params]
    dl.outer_step(frags[0], dl.pseudo_gradient(frags[0]))
    for i, p in enumerate(params):
        if i in frags[0]:
            torch.testing.assert_close(p.detach(), local[i])  # global - (global - local) = local
            torch.testing.assert_close(dl.global_params[i], local[i])
        else:
            torch.testing.assert_close(p.detach(), local[i])
            torch.testing.assert_close(dl.global_params[i], local[i] - 1.0)


def test_quantized_payloads_are_smaller_and_close():
    t = torch.linspace(-1, 1, 1001)
    for quant, bits, tol in (("int8", 8, 1 / 127), ("int4", 4, 1 / 7)):
        q = outer.quantize(t, quant)
        assert (q - t).abs().max() <= tol / 2 + 1e-6
        assert len(torch.unique(q)) <= 2**bits - 1
        assert outer.payload_bytes([1001], quant) == (1001 * bits + 7) // 8 + 4
    assert outer.payload_bytes([1001, 10], "none") == 4 * 1011
    assert torch.equal(outer.quantize(torch.zeros(5), "int8"), torch.zeros(5))
