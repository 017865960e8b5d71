"""`skyrack assistant finetune`: teach Gemma to say the facts, with LoRA, on dialogues from the twin.

The dialogue set is generated, never collected: questions (paraphrased, time-shifted, multi-fact,
about power, heat, faults and training in generated runs, out of scope, injection attempts) at many
instants over two weeks of orbits, each answered by the composer from the tools' facts. The model
sees exactly the short prompt it gets at run time once adapted (facts + question, no examples), and
the loss covers only the answer tokens. LoRA on the attention projections keeps the adapter to a
few MB; it trains on a GPU when there is one, and within `--minutes` on a CPU.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path

from skyrack.assistant.compose import CANNOT_TELL, REFUSE_ACTION
from skyrack.assistant.evaluate import (
    ALTITUDE,
    BUS,
    INJECTIONS,
    LIGHT,
    OUT_OF_SCOPE,
    PASSES,
    SHIFTED,
    SPEED,
    WHERE,
    make_runs,
)
from skyrack.assistant.facts import Fact
from skyrack.assistant.prompt import short_prompt
from skyrack.assistant.runtime import ADAPTER_WEIGHTS
from skyrack.assistant.service import Assistant, telemetry_context
from skyrack.errors import UserError
from skyrack.orbit.timebase import iso
from skyrack.storage import atomic_write_text, sha256_file

MULTI = [
    "Where are you, and are you in sunlight?",
    "How high are you and how fast are you going?",
    "What are you above and what comes next?",
    "Where are you and when is your next pass?",
    "What are your coordinates?",
    "What is your latitude and longitude?",
]


def dialogues(count: int, runs: list[Path], seed: int = 0, profile: str | None = None) -> list[dict]:
    """(prompt, answer) pairs from the composed assistant at many instants."""
    rng = random.Random(seed)
    composed = Assistant.create("composed")
    epoch = telemetry_context(profile=profile, at=0.0).twin.satellite.epoch.timestamp()
    out = []
    while len(out) < count:
        t = epoch + rng.uniform(-7, 7) * 86400.0
        pick = rng.random()
        run = None
        if pick < 0.30:
            question = rng.choice(WHERE)
        elif pick < 0.45:
            question = rng.choice(SHIFTED).format(m=rng.choice([5, 10, 15, 20, 30, 40, 45, 60, 75, 90]))
        elif pick < 0.50:
            question = f"Where will you be at {iso(t + rng.uniform(300, 7200))[11:16]} UTC?"
        elif pick < 0.65:
            question = rng.choice(ALTITUDE + SPEED + LIGHT + PASSES)
        elif pick < 0.75:
            question = rng.choice(MULTI)
        elif pick < 0.88:
            question, run = rng.choice(BUS)[1], rng.choice(runs)
        elif pick < 0.94:
            question = rng.choice(OUT_OF_SCOPE)
        else:
            question = rng.choice(INJECTIONS)
        result = composed.ask(question, at=None if run else t, run_dir=run, profile=profile)
        facts = [Fact.from_dict(f) for f in result["facts"]]
        if result["refused"] and result["answer"] not in (CANNOT_TELL, REFUSE_ACTION):
            continue
        out.append({"prompt": short_prompt(question, facts), "answer": result["answer"]})
    return out


def answer_loss(model, ids, mask, labels):
    """Cross-entropy on the answer tokens only, scoring just those positions: Gemma's output layer
    has 262k rows, and running it over the prompt too would cost several times the whole step."""
    import torch.nn.functional as F

    causal = model.get_base_model()
    hidden = causal.model(input_ids=ids, attention_mask=mask).last_hidden_state[:, :-1]
    target = labels[:, 1:]
    keep = target != -100
    logits = causal.lm_head(hidden[keep])
    return F.cross_entropy(logits.float(), target[keep])


def finetune(
    out: Path,
    *,
    backend: str = "gemma",
    examples: int = 300,
    steps: int = 120,
    minutes: float = 15.0,
    rank: int = 8,
    lr: float = 2e-4,
    device: str | None = None,
    seed: int = 0,
    batch: int = 4,
    progress=None,
) -> dict:
    try:
        import torch
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:
        raise UserError(f"finetune needs torch, transformers and peft: {exc}") from None
    from skyrack.device import pick_device

    if backend == "gemma":
        from skyrack.sources.gemma import converted_dir

        model_dir = converted_dir(progress)
    elif Path(backend).is_dir():
        model_dir = Path(backend)
    else:
        raise UserError(f"finetune adapts a local model: gemma or a model directory, not {backend!r}")
    torch.manual_seed(seed)
    device = str(pick_device(device))
    with tempfile.TemporaryDirectory(prefix="skyrack-ft-") as tmp:
        data = dialogues(examples, make_runs(Path(tmp), seed=seed + 1), seed)
    if progress:
        progress(f"finetune: {len(data)} dialogues generated; training LoRA rank {rank} on {device}")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(
        str(model_dir), dtype=torch.float32, attn_implementation="eager"
    )
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
    )
    model = get_peft_model(model, config).to(device)
    model.train()
    encoded = []
    for d in data:
        prompt = tokenizer(d["prompt"], add_special_tokens=True).input_ids
        answer = tokenizer(d["answer"] + "<end_of_turn>", add_special_tokens=False).input_ids
        encoded.append((prompt + answer, [-100] * len(prompt) + answer))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    rng = random.Random(seed)
    losses, start, step = [], time.perf_counter(), 0
    while step < steps and time.perf_counter() - start < minutes * 60:
        chosen = rng.sample(encoded, min(batch, len(encoded)))
        width = max(len(ids) for ids, _ in chosen)
        pad = tokenizer.pad_token_id or 0
        ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in chosen], device=device)
        labels = torch.tensor([lab + [-100] * (width - len(lab)) for _, lab in chosen], device=device)
        mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in chosen], device=device)
        loss = answer_loss(model, ids, mask, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        step += 1
        if progress and step % 10 == 0:
            progress(
                f"finetune: step {step}/{steps}, loss {sum(losses[-10:]) / len(losses[-10:]):.3f}, "
                f"{time.perf_counter() - start:.0f} s"
            )
    if not losses:
        raise UserError("no training step fitted in --minutes")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    summary = {
        "out": str(out),
        "base": str(model_dir),
        "device": device,
        "dialogues": len(data),
        "steps": step,
        "rank": rank,
        "lr": lr,
        "batch": batch,
        "seed": seed,
        "train_s": round(time.perf_counter() - start, 1),
        "first_loss": round(sum(losses[:5]) / len(losses[:5]), 4),
        "last_loss": round(sum(losses[-5:]) / len(losses[-5:]), 4),
        "command": f"skyrack assistant finetune --out {out} --examples {examples} --steps {steps} "
        f"--rank {rank} --lr {lr} --seed {seed} --minutes {minutes:g}",
        "sha256": sha256_file(out / ADAPTER_WEIGHTS),
    }
    atomic_write_text(out / "skyrack-finetune.json", json.dumps(summary, indent=1))
    return summary
