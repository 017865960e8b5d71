"""A trained GPT back from its checkpoint, and Shakespeare written with it: `skyrack sample`
and the mission report's sample."""

from __future__ import annotations

import json

from skyrack.device import pick_device
from skyrack.errors import UserError
from skyrack.train.config import from_dict


def load_model(path: str, device: str | None = None, fallback: bool = False):
    """(model in eval mode, tokenizer, checkpoint dir) from a verified checkpoint."""
    from skyrack.train import checkpoint
    from skyrack.train.data import CharTokenizer
    from skyrack.train.model import GPT

    ckpt_dir, files = checkpoint.load_checkpoint(path, fallback=fallback)
    model_cfg, _ = from_dict(json.loads(files["config.json"]))
    tokenizer = CharTokenizer.from_json(files["tokenizer.json"].decode())
    model = GPT(model_cfg)
    try:
        model.load_state_dict(checkpoint.load_torch(files["model.pt"]))
    except RuntimeError as exc:
        raise UserError(
            f"checkpoint {ckpt_dir} does not match its config: {str(exc).splitlines()[0]}"
        ) from None
    return model.to(pick_device(device)).eval(), tokenizer, ckpt_dir


def generate_text(
    model,
    tokenizer,
    prompt: str | None,
    tokens: int,
    *,
    seed: int = 1337,
    temperature: float = 0.8,
    top_k: int | None = 200,
) -> str:
    """`prompt` (default: a newline) continued by `tokens` sampled characters, reproducibly."""
    import torch

    prompt = prompt if prompt is not None else ("\n" if "\n" in tokenizer.index else tokenizer.chars[0])
    if not prompt:
        raise UserError("--prompt is empty; give at least one character")
    ids = tokenizer.encode(prompt)  # one-line UserError for characters outside the vocabulary
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    idx = torch.tensor([ids], dtype=torch.long, device=device)
    out = model.generate(idx, tokens, temperature=temperature, top_k=top_k or None, generator=generator)
    return tokenizer.decode(out[0].tolist())
