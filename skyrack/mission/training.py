"""The training job the satellite runs: the Shakespeare GPT under `ProtectedRun` (the guard
detects and recovers, the injector carries out the faults the orbit throws at it).

Faults come from the radiation model: the expected upsets a second in the whole GPU memory at
this point of the orbit (the SAA multiplier included), times the share of that memory the
training state occupies (parameters and optimizer moments), times `stress`, times the tick's
length; the count in a tick is Poisson. Their kinds follow `FAULT_MIX`, an assumption: most
single-event effects in memory are bit flips in stored words; corrupted computations are
rarer, functional interrupts (the process dies) and corrupted checkpoint writes rarer still.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from skyrack.bus.radiation import upsets_per_step
from skyrack.errors import UserError
from skyrack.train.config import PRESETS, ModelConfig, TrainConfig, from_dict, preset

FAULT_MIX = {"memory": 0.7, "compute": 0.2, "interrupt": 0.05, "storage": 0.05}
CHECKPOINT_INTERVAL = 100  # steps; a killed process or a dying satellite loses at most this many


def configs(name: str, steps: int | None) -> tuple[ModelConfig, TrainConfig]:
    if name not in PRESETS:
        raise UserError(f"unknown preset {name!r}; one of {', '.join(sorted(PRESETS))}")
    model, train = preset(name, steps=steps)
    return model, dataclasses.replace(
        train, checkpoint_interval=min(train.checkpoint_interval, CHECKPOINT_INTERVAL)
    )


class Training:
    """The trainer (fresh, or from the run's newest verified checkpoint) under protection."""

    def __init__(
        self,
        checkpoints: Path,
        *,
        preset_name: str,
        data_file: str | None,
        steps: int | None,
        seed: int,
        session: int,
        say: Callable[[str], None],
        device: str | None = None,
        fit: Callable | None = None,
    ):
        """`fit(trainer)`, on a new run only, may shorten its schedule before the first checkpoint."""
        from skyrack.faults.guard import state_bits
        from skyrack.faults.runtime import ProtectedRun
        from skyrack.train import checkpoint
        from skyrack.train.data import COMPLETE_WORKS, CharTokenizer, load_dataset
        from skyrack.train.trainer import Trainer

        files = None
        if checkpoint.list_checkpoints(checkpoints):
            ckpt, files = checkpoint.load_checkpoint(checkpoints, fallback=True)
            saved = json.loads(files["config.json"])
            model_cfg, train_cfg = from_dict(saved)
            name = saved["data"]["data"]
            dataset = load_dataset(
                None if name == COMPLETE_WORKS else name,
                CharTokenizer.from_json(files["tokenizer.json"].decode()),
                say,
                expect_sha256=saved["data"]["sha256"],
            )
            say(f"training resumes from {ckpt.name} (step {ckpt.name.split('-')[-1].lstrip('0') or 0})")
        else:
            model_cfg, train_cfg = configs(preset_name, steps)
            dataset = load_dataset(data_file, None, say)
            model_cfg = dataclasses.replace(model_cfg, vocab_size=dataset.tokenizer.vocab_size)
            train_cfg = dataclasses.replace(train_cfg, seed=seed)
        self.trainer = Trainer(model_cfg, train_cfg, dataset, checkpoints, device=device)
        if self.trainer.precision_note:
            say(self.trainer.precision_note)
        if files is not None:
            self.trainer.load_state(files)
        elif fit is not None:
            fit(self.trainer)
        self.run = ProtectedRun(self.trainer, protect=True, seed=seed * 1000 + session)
        self.run.listeners.append(self._heard)
        if files is None:
            self.trainer.save()  # step 0: where a process killed before the first interval restarts
        self.saved_step = self.trainer.state.step
        self.rng = np.random.default_rng([seed, session])
        self.kinds, self.weights = list(FAULT_MIX), np.array(list(FAULT_MIX.values()))
        self._bits = state_bits(self.trainer)
        self.tokens_per_step = model_cfg.block_size * train_cfg.batch_size
        self.last_loss: float | None = None

    def _heard(self, name: str, data: dict) -> None:
        if name == "checkpoint":
            self.saved_step = data["step"]

    @property
    def step_count(self) -> int:
        return self.trainer.state.step

    @property
    def done(self) -> bool:
        return self.trainer.state.step >= self.trainer.cfg.steps

    def expose(self, gpu_upsets_per_s: float, gpu_bits: float, seconds: float, stress: float) -> list[str]:
        """Draw the faults of `seconds` of exposure and schedule them for the next step."""
        expected = upsets_per_step(gpu_upsets_per_s, seconds, self._bits, gpu_bits, stress)
        n = int(self.rng.poisson(expected)) if expected > 0 else 0
        kinds = [self.kinds[i] for i in self.rng.choice(len(self.kinds), size=n, p=self.weights)] if n else []
        for kind in kinds:
            self.run.add_fault(kind)
        return kinds

    def step(self) -> float:
        loss = self.run.step()
        self.last_loss = loss
        if self.trainer.state.step == 1:
            from skyrack.faults.guard import state_bits

            self._bits = state_bits(self.trainer)  # the optimizer's moments exist from the first step
        s, cfg = self.trainer.state.step, self.trainer.cfg
        if s % cfg.eval_interval == 0 or s == cfg.steps:
            self.trainer.evaluate()
        return loss

    def save(self):
        return self.run.save()

    def finish(self) -> None:
        """The final integrity check and a checkpoint of the final state."""
        self.run.finish()
        if self.trainer.state.val_loss is None or self.trainer.state.step % self.trainer.cfg.eval_interval:
            self.trainer.evaluate()
        if self.saved_step != self.trainer.state.step:
            self.run.save()
