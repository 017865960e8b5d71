"""Training configuration as plain data: two dataclasses and a table of presets.

A preset is a dict of field values; anything the command line names overrides it. The model
half (`ModelConfig`) is what a checkpoint must match to be loaded into a model; the training
half (`TrainConfig`) may change between runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass
class ModelConfig:
    vocab_size: int = 65
    block_size: int = 64  # context length, characters
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0


@dataclass
class TrainConfig:
    steps: int = 2000  # optimizer steps in the whole run
    batch_size: int = 12  # sequences per step (per process under DDP)
    optimizer: str = "adamw"  # "adamw", or "muon": Muon for hidden matrices, AdamW for the rest
    lr: float = 1e-3  # peak AdamW learning rate
    muon_lr: float = 0.02  # peak Muon learning rate (hidden matrices), when optimizer="muon"
    muon_precision: str = "auto"  # Muon's orthogonalization: "auto" (fast here), "float32", "bfloat16"
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio at the last step
    warmup_steps: int = 100
    weight_decay: float = 0.1  # on matrices and embeddings, never on norms
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping
    eval_interval: int = 250  # steps between evaluations (and the last step always)
    eval_windows: int = 240  # fixed validation windows per evaluation; 0 = the whole split
    checkpoint_interval: int = 500  # steps between checkpoints (and the last step always)
    keep_checkpoints: int = 3  # older checkpoints are deleted
    seed: int = 1337
    compile: bool = False  # torch.compile the model (worth it on CUDA)


# Every preset is plain data: {"model": {...}, "train": {...}}.
PRESETS: dict[str, dict[str, dict]] = {
    # A useful run in a few minutes on 2 CPU cores: nanoGPT's CPU-sized model, trained with
    # the recipe that won the CPU benchmark (bench/train_speed.py, BENCHMARKS.md).
    "cpu": {
        "model": dict(block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0),
        "train": dict(
            steps=1500,
            batch_size=24,
            optimizer="muon",
            lr=6e-3,
            muon_lr=0.03,
            warmup_steps=20,
            weight_decay=0.0,
            eval_interval=250,
            eval_windows=240,
            checkpoint_interval=250,
        ),
    },
    # nanoGPT's GPU recipe (config/train_shakespeare_char.py).
    "nanogpt": {
        "model": dict(block_size=256, n_layer=6, n_head=6, n_embd=384, dropout=0.2),
        "train": dict(
            steps=5000,
            batch_size=64,
            optimizer="adamw",
            lr=1e-3,
            warmup_steps=100,
            eval_interval=250,
            eval_windows=3200,
            checkpoint_interval=500,
        ),
    },
    # nanoGPT's CPU recipe (its README), the reference of the CPU benchmark.
    "nanogpt-cpu": {
        "model": dict(block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0),
        "train": dict(
            steps=2000,
            batch_size=12,
            optimizer="adamw",
            lr=1e-3,
            warmup_steps=100,
            eval_interval=250,
            eval_windows=240,
            checkpoint_interval=500,
        ),
    },
    # A model that trains in seconds: smoke tests, quick looks, the fault campaign.
    "tiny": {
        "model": dict(block_size=32, n_layer=2, n_head=2, n_embd=64, dropout=0.0),
        "train": dict(
            steps=300,
            batch_size=16,
            optimizer="adamw",
            lr=3e-3,
            warmup_steps=20,
            eval_interval=100,
            eval_windows=64,
            checkpoint_interval=25,
        ),
    },
}


def preset(name: str, **overrides) -> tuple[ModelConfig, TrainConfig]:
    """The configs of preset `name`, with `overrides` (field=value, None ignored) applied."""
    if name not in PRESETS:
        raise KeyError(name)
    model = dict(PRESETS[name]["model"])
    train = dict(PRESETS[name]["train"])
    model_fields = {f.name for f in dataclasses.fields(ModelConfig)}
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    for key, value in overrides.items():
        if value is None:
            continue
        if key in model_fields:
            model[key] = value
        elif key in train_fields:
            train[key] = value
        else:
            raise KeyError(key)
    return ModelConfig(**model), TrainConfig(**train)


def to_dict(model: ModelConfig, train: TrainConfig) -> dict:
    return {"model": dataclasses.asdict(model), "train": dataclasses.asdict(train)}


def from_dict(payload: dict) -> tuple[ModelConfig, TrainConfig]:
    return ModelConfig(**payload["model"]), TrainConfig(**payload["train"])
