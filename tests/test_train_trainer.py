"""The Trainer object as a later caller (governor, fault injector) uses it."""

import torch
from train_helpers import make_corpus

from skyrack.train.config import preset
from skyrack.train.data import build_dataset
from skyrack.train.trainer import Trainer, lr_factor


def _trainer(tmp_path=None, **kw):
    ds = build_dataset(make_corpus(200), "t", "x", "tail")
    model, train = preset(
        "cpu",
        vocab_size=ds.tokenizer.vocab_size,
        n_layer=1,
        n_head=2,
        n_embd=16,
        block_size=16,
        batch_size=4,
        steps=10,
        eval_windows=8,
        **kw,
    )
    return Trainer(model, train, ds, tmp_path)


def test_hooks_see_each_step_and_can_change_gradients():
    trainer = _trainer()
    seen = []
    for event in ("before_step", "after_backward", "after_step"):
        trainer.hooks[event].append(lambda t, e=event: seen.append((e, t.state.step)))
    trainer.step()
    assert seen == [("before_step", 0), ("after_backward", 0), ("after_step", 1)]

    def erase(t):  # a grad-zeroing "fault": a fresh model then does not move at all
        for p in t.model.parameters():
            p.grad.zero_()

    trainer = _trainer()
    trainer.hooks["after_backward"].append(erase)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    trainer.step()
    after = list(trainer.model.parameters())
    assert all(torch.equal(a, b) for a, b in zip(before, after))


def test_schedule_warms_up_then_decays_to_the_floor():
    _, cfg = preset("cpu", steps=100, warmup_steps=10, min_lr_ratio=0.1)
    factors = [lr_factor(s, cfg) for s in range(100)]
    assert factors[0] < factors[9] <= 1.0
    assert max(factors) <= 1.0 and abs(lr_factor(100, cfg) - 0.1) < 1e-12
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))


def test_evaluate_is_repeatable_and_consumes_no_randomness():
    trainer = _trainer(dropout=0.1)
    trainer.step()
    state = torch.get_rng_state()
    assert trainer.evaluate() == trainer.evaluate()
    assert torch.equal(state, torch.get_rng_state())
