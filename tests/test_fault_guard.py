"""Protection and recovery: exact recovery from a memory upset, damage without protection,
corrupted checkpoints refused, and a real SIGKILL of a protected run."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from skyrack.faults.bits import flip_bits
from skyrack.faults.campaign import TINY_OVERRIDES, dataset_for
from skyrack.faults.guard import Guard
from skyrack.faults.inject import Fault
from skyrack.faults.runtime import ProtectedRun
from skyrack.train.config import preset
from skyrack.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[1]
STEPS = 40


def _setup(steps=STEPS):
    data = dataset_for()
    model_cfg, train_cfg = preset("tiny", steps=steps, **TINY_OVERRIDES)
    return dataclasses.replace(model_cfg, vocab_size=data.tokenizer.vocab_size), train_cfg, data


def _train(protect: bool, flip_at: int | None = None, tmp=None, **guard_options) -> Trainer:
    model_cfg, train_cfg, data = _setup()
    trainer = Trainer(model_cfg, train_cfg, data, tmp, device="cpu")
    guard = Guard(trainer, enabled=protect, snapshot_every=10, **guard_options)
    while trainer.state.step < STEPS:
        guard.step()
        if trainer.state.step == flip_at:  # a memory upset between steps: top exponent bit
            weight = next(
                p for n, p in trainer.model.named_parameters() if n.startswith("blocks.0.") and p.ndim == 2
            )
            flip_bits(weight.data, 5, [30])
    guard.finish()
    trainer.guard = guard
    return trainer


def _train_hit(hit) -> Trainer:
    """A protected run in which `hit(trainer)` may corrupt something during step 12."""
    model_cfg, train_cfg, data = _setup()
    trainer = Trainer(model_cfg, train_cfg, data, None, device="cpu")
    guard = Guard(trainer, snapshot_every=10)
    hit(trainer)
    while trainer.state.step < STEPS:
        guard.step()
    guard.finish()
    trainer.guard = guard
    return trainer


def test_gradient_upset_before_the_update_is_caught_and_the_step_recomputed():
    fired = []

    def hit(trainer):
        def upset(t):  # a mantissa bit of one gradient element, while it waits for the update
            if t.state.step == 11 and not fired:
                fired.append(flip_bits(t.model.blocks[1].mlp.up.weight.grad, 7, [4]))

        trainer.hooks["before_update"].insert(0, upset)

    clean, hit_run = _train(protect=True), _train_hit(hit)
    assert fired and fired[0][0] != fired[0][1]
    assert [(d["reason"], d["how"]) for d in hit_run.guard.detections if not d.get("genuine")] == [
        ("gradient integrity", "recompute")
    ]
    assert all(torch.equal(a, b) for a, b in zip(_params(clean), _params(hit_run), strict=True))


def test_abft_catches_a_small_finite_corruption_inside_a_gemm():
    from skyrack.faults.gemm import GemmSites

    fired = []

    def hit(trainer):
        def tamper(site, out, a, b):  # one element of a backward product off by one part in a hundred
            if trainer.state.step == 11 and site == "blocks.0.mlp.down.grad_weight" and not fired:
                out.view(-1)[3] *= 1.01
                fired.append(site)

        GemmSites.for_model(trainer.model).tamper = tamper

    clean, hit_run = _train(protect=True), _train_hit(hit)
    assert fired
    assert [(d["reason"], d["how"]) for d in hit_run.guard.detections if not d.get("genuine")] == [
        ("ABFT checksum", "recompute")
    ]
    assert all(torch.equal(a, b) for a, b in zip(_params(clean), _params(hit_run), strict=True))


def _params(trainer):
    return [p.detach().clone() for p in trainer.model.parameters()]


def test_exponent_flip_is_detected_and_recovered_bitwise():
    clean = _train(protect=True)
    hit = _train(protect=True, flip_at=15)
    assert [d["reason"] for d in hit.guard.detections if not d.get("genuine")] == ["integrity"]
    assert [d for d in hit.guard.detections if not d.get("genuine")][0]["restored_to"] == 10
    for a, b in zip(_params(clean), _params(hit), strict=True):
        assert torch.equal(a.view(torch.int32), b.view(torch.int32))


def test_without_protection_the_same_flip_diverges():
    clean = _train(protect=False)
    hit = _train(protect=False, flip_at=15)
    assert any(not torch.equal(a, b) for a, b in zip(_params(clean), _params(hit)))
    assert hit.evaluate() != clean.evaluate()


def test_protection_adds_no_change_without_faults():
    a, b = _train(protect=False), _train(protect=True)
    assert all(torch.equal(x, y) for x, y in zip(_params(a), _params(b)))
    assert b.guard.detected() == 0


def test_false_alarms_recompute_identical_and_change_nothing():
    # A zero ABFT threshold makes every step's rounding an alarm: each is recomputed, found
    # bitwise identical, accepted as genuine, and the state ends where it would unprotected.
    a, b = _train(protect=False), _train(protect=True, abft_threshold=0.0)
    assert b.guard.detections and all(d.get("genuine") for d in b.guard.detections)
    assert b.guard.false_alarms == len(b.guard.detections)
    assert all(torch.equal(x, y) for x, y in zip(_params(a), _params(b)))


def test_corrupted_checkpoint_is_refused_and_previous_used(tmp_path):
    model_cfg, train_cfg, data = _setup()
    faults = [Fault(0, "storage", 30), Fault(1, "interrupt", 32)]
    run = ProtectedRun.fresh(
        model_cfg, train_cfg, data, tmp_path / "run", protect=True, faults=faults, trace=True
    )
    run.run()  # checkpoints at 0, 25 (corrupted at 30), restart at 32 -> refuses 25, uses 0
    assert faults[0].outcome_hint == "recovered"
    assert faults[1].fired and run.restarts == 1
    clean = ProtectedRun.fresh(model_cfg, train_cfg, data, tmp_path / "clean", protect=False, trace=True)
    clean.run()
    assert run.trace[STEPS + 1] == clean.trace[STEPS + 1]


SCRIPT = """
import sys, dataclasses
from skyrack.faults.campaign import TINY_OVERRIDES, dataset_for
from skyrack.faults.guard import Guard
from skyrack.train import checkpoint
from skyrack.train.config import preset
from skyrack.train.trainer import Trainer
out, steps = sys.argv[1], int(sys.argv[2])
data = dataset_for()
m, t = preset("tiny", steps=steps, **TINY_OVERRIDES)
m = dataclasses.replace(m, vocab_size=data.tokenizer.vocab_size)
t = dataclasses.replace(t, checkpoint_interval=5)
tr = Trainer(m, t, data, out, device="cpu")
if checkpoint.list_checkpoints(out):
    tr.load_state(checkpoint.load_checkpoint(out, fallback=True)[1])
g = Guard(tr)
while tr.state.step < steps:
    g.step()
    if tr.state.step % 5 == 0:
        tr.save()
    print(tr.state.step, flush=True)
g.finish()
import torch
torch.save([p.detach() for p in tr.model.parameters()], out + "/final.pt")
"""


def _script(out: Path, steps: int, **kw):
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(out), str(steps)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def test_sigkill_of_a_protected_run_resumes_to_the_same_result(tmp_path):
    steps = 60
    ref = _script(tmp_path / "ref", steps)
    assert ref.wait(120) == 0, ref.stderr.read()
    proc = _script(tmp_path / "killed", steps)
    for line in proc.stdout:
        if int(line) >= 23:
            break
    os.kill(proc.pid, signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL
    again = _script(tmp_path / "killed", steps)
    assert again.wait(120) == 0, again.stderr.read()
    a = torch.load(tmp_path / "ref" / "final.pt")
    b = torch.load(tmp_path / "killed" / "final.pt")
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_protected_run_reports_faults_added_on_the_fly(tmp_path):
    """The mission's way in: faults added as they arrive, every one reported as an event."""
    model_cfg, train_cfg, data = _setup()
    run = ProtectedRun.fresh(model_cfg, train_cfg, data, tmp_path / "run", protect=True)
    seen = []
    run.listeners.append(lambda name, info: seen.append((name, info.get("kind"))))
    run.save()
    run.add_fault("memory", step=6)
    run.add_fault("interrupt", step=6)  # restarts from the step-0 checkpoint
    while run.trainer.state.step < 12:
        run.step()
    counts = run.counts()
    assert counts["injected"] == 2 and counts["recovered"] >= 1
    assert ("fault_injected", "memory") in seen and ("fault_injected", "interrupt") in seen
    assert ("fault_recovered", "interrupt") in seen
    assert ("checkpoint", None) in seen
    with pytest.raises(ValueError):
        run.add_fault("cosmic")


def test_fault_counts_add_up_when_one_detection_covers_several_faults(tmp_path):
    """Three upsets in one step: one integrity detection restores the snapshot and undoes all
    three. Each fault is counted once, so recovered <= detected <= injected."""
    model_cfg, train_cfg, data = _setup()
    run = ProtectedRun.fresh(model_cfg, train_cfg, data, tmp_path / "run", protect=True)
    run.save()
    for _ in range(3):
        run.add_fault("memory", step=8)
    while run.trainer.state.step < 12:
        run.step()
    assert run.counts() == {"injected": 3, "detected": 3, "recovered": 3}
    assert run.guard.detected() < 3  # fewer detections than faults: the counters count faults


def test_resume_keeps_faults_added_on_the_fly(tmp_path):
    """A storage fault added after the run was built, saved with the run's state while its
    checkpoint is still corrupt, is found again on resume (a fresh run knows no faults)."""
    model_cfg, train_cfg, data = _setup()

    def build():
        return ProtectedRun.fresh(
            model_cfg, train_cfg, data, tmp_path / "run", protect=True, state_dir=tmp_path / "state"
        )

    run = build()
    run.save()
    run.add_fault("storage", step=5)  # corrupts the step-0 checkpoint after step 5
    while run.trainer.state.step < 10:  # the run's state is saved after step 10
        run.step()
    assert [f.id for f in run.corrupted[str(next(iter(run.corrupted)))]] == [0]
    again = build()
    assert again.resume() and again.trainer.state.step == 10
    assert [f.kind for f in again.faults] == ["storage"]
    (saved,) = again.corrupted.values()
    assert saved == again.faults  # the same Fault object, not a copy or a KeyError
