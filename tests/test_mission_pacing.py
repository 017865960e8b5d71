"""Pacing: the preset's whole schedule fitted into the mission's compute budget, the step probe
that leaves training bitwise untouched, and a machine too slow for the wall-time budget told so."""

from __future__ import annotations

import json

import numpy as np
import torch
from conftest import run_cli
from train_helpers import make_corpus

from skyrack.mission.clock import StepClock
from skyrack.mission.pacing import MARGIN, MIN_STEPS, Pace, fit_schedule, measure_step_s
from skyrack.train.config import preset
from skyrack.train.data import build_dataset
from skyrack.train.trainer import Trainer


def _trainer(steps=12):
    ds = build_dataset(make_corpus(200), "t", "x", "tail")
    model, train = preset(
        "cpu",  # Muon + AdamW: both optimizers' state must come back
        vocab_size=ds.tokenizer.vocab_size,
        n_layer=1,
        n_head=2,
        n_embd=16,
        block_size=16,
        batch_size=4,
        steps=steps,
        dropout=0.1,
        eval_windows=8,
    )
    return Trainer(model, train, ds)


def test_the_step_probe_leaves_training_bitwise_where_it_was():
    plain = _trainer()
    for _ in range(5):
        plain.step()
    probed = _trainer()
    assert measure_step_s(probed, warmup=1, steps=2) > 0
    assert probed.state.step == 0
    for _ in range(5):
        probed.step()
    for a, b in zip(plain.model.state_dict().values(), probed.model.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(plain.optimizers, probed.optimizers):
        for sa, sb in zip(a.state.values(), b.state.values()):
            assert all(torch.equal(sa[key], sb[key]) for key in sa)
    assert plain.sampler.state_dict() == probed.sampler.state_dict()


def _fly(pace, clock, fractions, steps, lose_at=None):
    """The loop's use of the clock: steps done per tick at each tick's throughput fraction."""
    done, finished_at = 0, None
    for k, f in enumerate(fractions):
        clock.grant(10.0, f)
        if f > 0:
            clock.step_cost_s = pace.step_cost_s(k, steps - done)
        while f > 0 and clock.due() and done < steps:
            clock.spent(0.01)
            done += 1
            if lose_at is not None and done == lose_at:
                done -= 50  # a restart from a checkpoint 50 steps back
                lose_at = None
        if done >= steps and finished_at is None:
            finished_at = k
    return done, finished_at


def test_pacing_ends_training_at_its_margin_of_the_compute_budget_and_absorbs_lost_steps():
    # an orbit-like duty cycle: two thirds lit at varying power, a third in eclipse
    fractions = np.tile(np.r_[np.linspace(0.4, 1.0, 400), np.zeros(200)], 2)
    budget = np.r_[0.0, np.cumsum(10.0 * fractions)]
    for lose_at in (None, 700):
        done, end = _fly(Pace(budget, 0), StepClock(warp=1.0), fractions, 1500, lose_at)
        assert done == 1500
        share = budget[end + 1] / budget[-1]
        assert MARGIN - 0.02 < share < MARGIN + 0.05, share
    # however slow a step is in wall time, the same steps happen on the same ticks
    fast = _fly(Pace(budget, 0), StepClock(warp=1.0), fractions, 1500)
    slow_clock = StepClock(warp=1.0)
    slow_clock.spent = lambda wall_s, c=slow_clock, f=slow_clock.spent: f(wall_s * 100)
    assert _fly(Pace(budget, 0), slow_clock, fractions, 1500) == fast


def test_a_machine_too_slow_for_the_budget_trains_a_shorter_schedule_and_says_so():
    said = []
    trainer = _trainer(steps=5000)
    step_s = fit_schedule(trainer, wall_budget_s=1e-6, say=said.append, preset_name="cpu")
    assert step_s > 0 and trainer.cfg.steps == MIN_STEPS
    assert "too slow" in said[0] and "Training 200 steps instead" in said[0] and "--minutes" in said[0]
    said.clear()
    trainer = _trainer(steps=20)
    fit_schedule(trainer, wall_budget_s=1e6, say=said.append, preset_name="cpu")
    assert trainer.cfg.steps == 20 and said[0].startswith("pacing: all 20 steps")


def test_a_paced_mission_trains_every_step_and_says_how(tmp_path):
    play = tmp_path / "play.txt"
    play.write_text(make_corpus(600))
    result = run_cli(
        *[
            "mission",
            "--preset",
            "tiny",
            "--data",
            str(play),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--run-id",
            "p1",
            "--hours",
            "0.5",
            "--no-dashboard",
            "--stress",
            "0",
            "--json",
        ],
        env={"OMP_NUM_THREADS": "1"},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["training_steps"] == 300
    assert "pacing: all 300 steps of the tiny preset fit the mission" in result.stderr
    assert "the bus allows" in result.stderr
