"""The training loop: a `Trainer` that owns the model, the optimizers, the data sampler and every
random state, and advances one optimizer step at a time.

    trainer = Trainer(model_cfg, train_cfg, dataset, out_dir)
    while trainer.state.step < train_cfg.steps:
        trainer.step()                 # one optimizer step
        trainer.evaluate()             # mean validation loss on the fixed sample
        trainer.save()                 # atomic, verified checkpoint

`run()` below is that loop with the evaluation and checkpoint cadence, metrics and progress.
A caller that must throttle training (a power governor) decides when to call `step()`; a caller
that must disturb it (a radiation fault injector) registers a hook: `trainer.hooks[event]` is a
list of callables `fn(trainer)`, called at "before_step" (after the batch is drawn, as
`trainer.batch`), "after_backward" (gradients present, before clipping; the batch loss is
`trainer.loss`), "before_update" (the gradients are about to be clipped and applied: the last
moment they sit in memory before the optimizer reads them) and "after_step" (parameters and
optimizer moments updated). Parameters are `trainer.model.parameters()`, moments
`trainer.optimizers[i].state`. A hook may raise `StepAborted` before the update: the state is
then untouched except for the step's position (batch, random draws), which
`trainer.position()` taken before the step restores; `trainer.snapshot()` / `restore()` copy
the whole training state in memory (a guard's recovery point).

The same code runs on CPU or CUDA (chosen automatically) and under `torchrun` with
DistributedDataParallel (gloo on CPU, NCCL on CUDA): each process draws its own batches, DDP
averages the gradients, rank 0 writes checkpoints and metrics.

On CPU a fixed seed gives bitwise identical runs, and a run resumed from a checkpoint continues
bitwise identically: the checkpoint holds the model, the optimizer moments, the schedule step,
the sampler position and the Python, NumPy and torch (CPU and CUDA) random states.
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from skyrack.device import pick_device
from skyrack.errors import UserError
from skyrack.train import checkpoint
from skyrack.train.config import ModelConfig, TrainConfig, to_dict
from skyrack.train.data import BatchSampler, Dataset, eval_offsets
from skyrack.train.hardware import matmul_dtype
from skyrack.train.model import GPT
from skyrack.train.muon import Muon

HOOK_EVENTS = ("before_step", "after_backward", "before_update", "after_step")


class StepAborted(Exception):
    """Raised by a hook before the update to abandon the step (see the module docstring)."""


@dataclass
class TrainState:
    step: int = 0  # optimizer steps done
    tokens: int = 0  # training tokens consumed, all processes
    elapsed_s: float = 0.0  # wall time spent in earlier sessions of this run (resumes)
    train_loss: float | None = None  # mean training loss since the previous evaluation
    val_loss: float | None = None  # latest validation loss
    best_val_loss: float | None = None


def _distributed() -> tuple[int, int, int]:
    """(rank, world size, local rank); joins the process group when started by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, 0
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0"))


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Linear warmup to 1, then cosine decay to `min_lr_ratio` at the last step."""
    if step < cfg.warmup_steps:
        return (step + 1) / (cfg.warmup_steps + 1)
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps))
    return cfg.min_lr_ratio + 0.5 * (1.0 - cfg.min_lr_ratio) * (1.0 + math.cos(math.pi * progress))


MUON_PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def muon_precision(cfg: TrainConfig, device: torch.device) -> tuple[torch.dtype, str]:
    """(dtype of Muon's orthogonalization, why): the config's choice, or with "auto" the one
    that is fast on `device` (skyrack.train.hardware)."""
    if cfg.muon_precision == "auto":
        return matmul_dtype(device)
    if cfg.muon_precision not in MUON_PRECISIONS:
        raise UserError(f"unknown Muon precision {cfg.muon_precision!r} (auto, float32 or bfloat16)")
    return MUON_PRECISIONS[cfg.muon_precision], "as configured"


def build_optimizers(model: GPT, cfg: TrainConfig) -> list[torch.optim.Optimizer]:
    """AdamW for everything, or Muon for the hidden weight matrices and AdamW for the rest.
    Weight decay applies to matrices and embeddings, not to norm gains."""
    decay, no_decay, hidden = [], [], []
    for name, p in model.named_parameters():
        if cfg.optimizer == "muon" and p.ndim == 2 and name.startswith("blocks."):
            hidden.append(p)
        elif p.ndim >= 2:
            decay.append(p)
        else:
            no_decay.append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    extra = {"fused": True} if next(model.parameters()).is_cuda else {}
    optimizers = [torch.optim.AdamW(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), **extra)]
    if cfg.optimizer == "muon":
        dtype, _ = muon_precision(cfg, next(model.parameters()).device)
        optimizers.append(Muon(hidden, lr=cfg.muon_lr, weight_decay=cfg.weight_decay, ns_dtype=dtype))
    elif cfg.optimizer != "adamw":
        raise ValueError(f"unknown optimizer {cfg.optimizer!r} (adamw or muon)")
    for opt in optimizers:
        for group in opt.param_groups:
            group["peak_lr"] = group["lr"]
    return optimizers


def rng_state() -> dict:
    """Every random state a bitwise replay needs: Python, NumPy, torch CPU and CUDA."""
    name, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "python": random.getstate(),
        "numpy": [name, keys.tolist(), pos, has_gauss, gauss],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    def __init__(
        self,
        model_cfg: ModelConfig,
        train_cfg: TrainConfig,
        dataset: Dataset,
        out_dir: str | os.PathLike | None = None,
        device: str | None = None,
    ):
        """A trainer owns the process it runs in. Building one changes process-wide torch state,
        on purpose and without undoing it, because a training step needs it for as long as the
        trainer lives (scoping it to one call would lose it between steps):

        * on CPU, `torch.use_deterministic_algorithms(True)`: bitwise replay and resume;
        * on CUDA, TF32 matmuls and convolutions allowed (`torch.backends.*.allow_tf32`);
        * Python's, NumPy's and torch's global generators seeded from `train_cfg.seed + rank`;
        * with several ranks, the current CUDA device set to this rank's.

        Code sharing the process with a trainer sees the same settings."""
        self.model_cfg, self.cfg, self.dataset = model_cfg, train_cfg, dataset
        self.out_dir = Path(out_dir) if out_dir else None
        self.rank, self.world, local_rank = _distributed()
        self.device = pick_device(device)
        if self.device.type == "cuda" and self.world > 1:
            self.device = torch.device("cuda", local_rank)
            torch.cuda.set_device(self.device)
        if self.device.type == "cpu":
            torch.use_deterministic_algorithms(True)
        else:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        random.seed(train_cfg.seed + self.rank)
        np.random.seed(train_cfg.seed + self.rank)
        torch.manual_seed(train_cfg.seed + self.rank)  # DDP copies rank 0's initial weights

        self.model = GPT(model_cfg).to(self.device)  # the plain module: parameters, state_dict
        self.forward = torch.compile(self.model) if train_cfg.compile else self.model
        if self.world > 1:
            from torch.nn.parallel import DistributedDataParallel

            self.forward = DistributedDataParallel(
                self.forward, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )
        self.optimizers = build_optimizers(self.model, train_cfg)
        self.precision_note = None  # one line on the precision choices made for this hardware
        if train_cfg.optimizer == "muon":
            dtype, why = muon_precision(train_cfg, self.device)
            self.precision_note = f"muon: {str(dtype).removeprefix('torch.')} orthogonalization ({why})"
        self.autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16)
            if self.device.type == "cuda"
            else contextlib.nullcontext()
        )
        self.sampler = BatchSampler(
            dataset.train, model_cfg.block_size, train_cfg.batch_size, train_cfg.seed, self.rank
        )
        self.val_offsets = eval_offsets(dataset.val, model_cfg.block_size, train_cfg.eval_windows)
        self.state = TrainState()
        self.hooks: dict[str, list[Callable[[Trainer], None]]] = {e: [] for e in HOOK_EVENTS}
        self.batch: tuple[torch.Tensor, torch.Tensor] | None = None
        self.loss: torch.Tensor | None = None  # the current step's batch loss, from after_backward on
        self._loss_sum = torch.zeros((), device=self.device)
        self._loss_count = 0

    # -- one step ---------------------------------------------------------------------------
    def _call(self, event: str) -> None:
        for fn in self.hooks[event]:
            fn(self)

    def step(self) -> torch.Tensor:
        """One optimizer step on the next training batch; returns the batch loss (a tensor)."""
        factor = lr_factor(self.state.step, self.cfg)
        for opt in self.optimizers:
            for group in opt.param_groups:
                group["lr"] = group["peak_lr"] * factor
        x, y = self.sampler.next()
        self.batch = (x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True))
        self._call("before_step")
        self.forward.train()
        with self.autocast:
            _, loss = self.forward(*self.batch)
        loss.backward()
        self.loss = loss.detach()
        self._call("after_backward")
        self._call("before_update")
        if self.cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        for opt in self.optimizers:
            opt.step()
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        self.state.step += 1
        self.state.tokens += x.numel() * self.world
        loss = loss.detach()
        self._loss_sum += loss
        self._loss_count += 1
        self._call("after_step")
        return loss

    # -- in-memory copies of the state (a guard's recovery points) ----------------------------
    def position(self) -> dict:
        """Where the run stands without its tensors: counters, sampler, random states, loss
        accumulator. Restoring it undoes a step abandoned before its update."""
        return {
            "state": asdict(self.state),
            "sampler": dict(self.sampler.state_dict()),
            "rng": rng_state(),
            "loss": (float(self._loss_sum), self._loss_count),
        }

    def snapshot(self) -> dict:
        """A copy in memory of everything a bitwise replay from here needs."""
        return {
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "optimizers": [copy.deepcopy(o.state_dict()) for o in self.optimizers],
            **self.position(),
        }

    def restore(self, snap: dict) -> None:
        """Go back to a `snapshot()` or a `position()`; gradients are dropped."""
        if "model" in snap:
            self.model.load_state_dict(snap["model"])
            for opt, sd in zip(self.optimizers, snap["optimizers"], strict=True):
                opt.load_state_dict(copy.deepcopy(sd))
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        self.sampler.load_state_dict(snap["sampler"])
        set_rng_state(snap["rng"])
        self.state = TrainState(**snap["state"])
        self._loss_sum.fill_(snap["loss"][0])
        self._loss_count = snap["loss"][1]

    # -- evaluation -------------------------------------------------------------------------
    @torch.no_grad()
    def evaluate(self, batch_size: int | None = None) -> float:
        """Mean cross-entropy (nats per character) on the fixed validation sample."""
        batch_size = batch_size or max(self.cfg.batch_size, 64)
        offsets = self.val_offsets[self.rank :: self.world]  # each process takes its share
        self.model.eval()
        loss_sum, count = torch.zeros((), dtype=torch.float64, device=self.device), 0
        for i in range(0, len(offsets), batch_size):
            x, y = self.dataset.val.windows(offsets[i : i + batch_size], self.model_cfg.block_size)
            with self.autocast:
                _, loss = self.model(x.to(self.device), y.to(self.device))
            loss_sum += loss.double() * y.numel()
            count += y.numel()
        self.model.train()
        total = torch.stack([loss_sum, torch.tensor(float(count), dtype=torch.float64, device=self.device)])
        if self.world > 1:
            dist.all_reduce(total)
        val = float(total[0] / total[1])
        if self._loss_count:
            self.state.train_loss = float(self._loss_sum) / self._loss_count
        self._loss_sum.zero_()
        self._loss_count = 0
        self.state.val_loss = val
        if self.state.best_val_loss is None or val < self.state.best_val_loss:
            self.state.best_val_loss = val
        return val

    # -- checkpoints ------------------------------------------------------------------------
    def checkpoint_files(self) -> dict[str, bytes]:
        rng = [rng_state()]
        if self.world > 1:
            rng = [None] * self.world
            dist.all_gather_object(rng, rng_state())
        trainer_state = {
            "state": asdict(self.state),
            "sampler": self.sampler.state_dict(),
            "scheduler": {"kind": "warmup-cosine", "step": self.state.step},
            "rng": rng,
            "world_size": self.world,
            "loss_accumulator": [float(self._loss_sum), self._loss_count],
        }
        config = to_dict(self.model_cfg, self.cfg)
        config["data"] = self.dataset.describe()
        return {
            "model.pt": checkpoint.torch_bytes(self.model.state_dict()),
            "optimizer.pt": checkpoint.torch_bytes([opt.state_dict() for opt in self.optimizers]),
            "trainer.pt": checkpoint.torch_bytes(trainer_state),
            "config.json": json.dumps(config, indent=1).encode(),
            "tokenizer.json": self.dataset.tokenizer.to_json().encode(),
        }

    def save(self) -> Path | None:
        """Write a checkpoint of the current step under `out_dir` (rank 0); returns its path."""
        files = self.checkpoint_files()  # every rank takes part in gathering RNG states
        path = None
        if self.rank == 0 and self.out_dir is not None:
            path = checkpoint.write_checkpoint(
                self.out_dir, self.state.step, files, keep=self.cfg.keep_checkpoints
            )
        if self.world > 1:
            dist.barrier()
        return path

    def load_state(self, files: dict[str, bytes]) -> None:
        """Restore everything from verified checkpoint files (see checkpoint.load_checkpoint)."""
        self.model.load_state_dict(checkpoint.load_torch(files["model.pt"]))
        for opt, sd in zip(self.optimizers, checkpoint.load_torch(files["optimizer.pt"]), strict=True):
            opt.load_state_dict(sd)
            for group in opt.param_groups:  # a resumed run may change the peak learning rate
                group["peak_lr"] = self.cfg.muon_lr if isinstance(opt, torch.optim.Muon) else self.cfg.lr
        saved = checkpoint.load_torch(files["trainer.pt"])
        self.state = TrainState(**saved["state"])
        self.sampler.load_state_dict(saved["sampler"])
        loss_sum, self._loss_count = saved["loss_accumulator"]
        self._loss_sum.fill_(loss_sum)
        rng = saved["rng"]
        set_rng_state(rng[self.rank] if self.rank < len(rng) else rng[0])


class Progress:
    """A one-line progress bar on stderr (a TTY), or a plain line every `every_s` seconds."""

    def __init__(self, total: int, stream=None, every_s: float = 10.0, enabled: bool = True):
        self.total, self.stream, self.every_s, self.enabled = total, stream or sys.stderr, every_s, enabled
        self.tty = self.stream.isatty()
        self.last = 0.0

    def update(self, step: int, loss: float, tokens_per_s: float, eta_s: float, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last < (0.25 if self.tty else self.every_s):
            return
        self.last = now
        width = 28
        filled = int(width * step / max(1, self.total))
        bar = "#" * filled + "-" * (width - filled)
        eta = time.strftime("%H:%M:%S", time.gmtime(max(0.0, eta_s)))
        line = f"step {step}/{self.total} [{bar}] loss {loss:.4f}  {tokens_per_s:,.0f} tok/s  ETA {eta}"
        self.stream.write(("\r" + line + "\x1b[K") if self.tty else line + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        if self.enabled:
            self.stream.write(("\r\x1b[K" if self.tty else "") + text + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def run(
    trainer: Trainer,
    progress: Progress | None = None,
    on_eval: Callable[[dict], None] | None = None,
    log_every: int = 10,
) -> TrainState:
    """Train to `trainer.cfg.steps`, evaluating every `eval_interval` steps and checkpointing
    every `checkpoint_interval` steps (both at the last step too). Each evaluation is appended
    to `<out_dir>/metrics.jsonl` and passed to `on_eval` as a dict."""
    cfg, state = trainer.cfg, trainer.state
    progress = progress or Progress(cfg.steps, enabled=False)
    start, start_tokens, start_step = time.monotonic(), state.tokens, state.step
    loss = float("nan")
    while state.step < cfg.steps:
        batch_loss = trainer.step()
        step, last = state.step, state.step == cfg.steps
        if step % log_every == 0 or last or step == start_step + 1:
            loss = float(batch_loss)  # a device sync: only now and then
        elapsed = time.monotonic() - start
        tok_s = (state.tokens - start_tokens) / max(elapsed, 1e-9)
        eta = elapsed / max(1, step - start_step) * (cfg.steps - step)
        progress.update(step, loss, tok_s, eta, force=last)
        if step % cfg.eval_interval == 0 or last:
            val = trainer.evaluate()
            record = {
                "step": step,
                "train_loss": state.train_loss,
                "val_loss": val,
                "lr": trainer.optimizers[0].param_groups[0]["lr"],
                "tokens": state.tokens,
                "elapsed_s": round(state.elapsed_s + time.monotonic() - start, 3),
                "tokens_per_s": round(tok_s, 1),
            }
            if trainer.rank == 0:
                if trainer.out_dir is not None:
                    trainer.out_dir.mkdir(parents=True, exist_ok=True)
                    with open(trainer.out_dir / "metrics.jsonl", "a") as fh:
                        fh.write(json.dumps(record) + "\n")
                progress.message(f"step {step}: train loss {state.train_loss:.4f}, val loss {val:.4f}")
                if on_eval:
                    on_eval(record)
        if step % cfg.checkpoint_interval == 0 or last:
            saved_elapsed = state.elapsed_s
            state.elapsed_s = saved_elapsed + time.monotonic() - start
            trainer.save()
            state.elapsed_s = saved_elapsed
    progress.close()
    state.elapsed_s += time.monotonic() - start
    return state
