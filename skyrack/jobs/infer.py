"""The `infer` workload: batch LLM inference with the on-board Gemma 3 270M.

Payload: a UTF-8 JSON list of 1..16 prompt strings. Params: `max_tokens` (1..256, default 64),
nothing else. Each prompt is one user turn in Gemma's turn format (the GGUF carries no chat
template, so the turns are written out as the assistant writes them, `skyrack.assistant.prompt`),
and the model answers until its end of turn or `max_tokens`. Decoding is greedy: the same
payload gives the same completions, and nothing is drawn from any random generator (the job's
`seed` is accepted for the workload interface and not needed).

The weights are the registry's base Gemma (`skyrack.sources.gemma`), loaded the way the assistant's
`TransformersBackend` loads them, without the assistant's LoRA adapter: that adapter is tuned to
answer questions about the satellite's own telemetry, and a customer's prompts are not.
A job's prompts decode together in left-padded batches, one per group of similar length
(`groups`): a step of Gemma 3 270M is dominated by reading its 262k-row output layer, which a
batch reads once for every prompt, while padding a short prompt to a long one's width would
cost prefill and memory for nothing.

Jobs run in the mission's process between training steps, so `run` leaves torch's global RNG
state (restored around loading and decoding whatever transformers does), the torch thread count
and every other global the trainer uses as they were. The model is built on the first `run` and
kept in a module-level cache for the life of the process (~1 GB in fp32; loading costs ~10 s).

Token counts use Gemma's own tokenizer (`tokenizer.json` of the converted model, read with the
`tokenizers` library, without loading the weights: ~2 s once a process), so `check` stays cheap
on the ground, and `run` decodes exactly the ids that were counted.

`estimate` prices a job from rates measured once on this machine (a prefill rate, and a decode
step at one prompt and at a full batch), cached under the skyrack cache beside the model's
sha256, the device and the torch thread count they were measured with. The first estimate on a
machine loads the model and measures them (~20 s idle, minutes on a busy machine); `rates()`
called at start-up pays that before the first customer waits on it.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass

from skyrack.assistant.prompt import TURN
from skyrack.errors import UserError
from skyrack.jobs.workload import Estimate, Outcome

MODEL_NAME = "gemma3-270m"
RESULT_NAME = "completions.json"
MAX_PROMPTS = 16
MAX_TOKENS_LIMIT = 256
DEFAULT_MAX_TOKENS = 64
PARAMS = ("max_tokens",)
# The on-board context, prompt (in Gemma's turn format, <bos> included) plus max_tokens. Gemma 3
# 270M reads 32k positions, but on board memory decides. Its fp32 key/value cache is
# 18 layers x (K + V) x 1 head x 256 x 4 B = 36 KiB a position, and eager attention holds
# prompts x 4 heads x width^2 fp32 scores (twice, before and after the softmax) for a layer in the
# prefill: quadratic in the width. Measured here, one prompt of 1,879 tokens and 15 short ones
# took 4.8 GB over the loaded model padded into one batch, 1.6 GB grouped by length (below); the
# 40 KiB payload bounds the rest. At 2,048 a job stays within a few GB beside the training; at
# 8k the scores alone would need 16x as much.
CONTEXT_TOKENS = 2048
# What a completion's text costs in the JSON that comes down, per generated token: Gemma's
# English tokens average ~4 bytes; escaping and other scripts run higher.
RESULT_BYTES_PER_TOKEN = 6
RESULT_BYTES_PER_PROMPT = 48  # {"index": .., "text": "", "tokens": .., "prompt_tokens": ..}
RESULT_BYTES_HEADER = 160  # the model, its sha256, max_tokens
END_TOKENS = ("<end_of_turn>", "<eos>")
RATES_VERSION = 2
# Prompts decode in groups of similar length: a group is padded to its longest prompt, and a
# prompt joins the group while the group's padded positions stay within this multiple of its
# real ones. A group more costs max_tokens decode steps; padding costs prefill and memory.
PADDING_LIMIT = 2.0

_lock = threading.RLock()  # one load and one decode at a time in a process
_cache: dict = {}  # "tokenizer", "model": built on first use, kept for the process


@dataclass(frozen=True)
class Job:
    max_tokens: int
    rows: list[list[int]]  # each prompt's ids in Gemma's turn format, <bos> first


def _model_dir():
    from skyrack.sources.gemma import converted_dir

    return converted_dir()


def _model_sha256() -> str:
    """The sha256 of the weights that run, as the converted copy's record keeps it."""
    from skyrack.sources.gemma import RECORD

    record = json.loads((_model_dir() / RECORD).read_text())
    return record["files"]["model.safetensors"]["sha256"]


def _tokenizer():
    if "tokenizer" not in _cache:
        from tokenizers import Tokenizer

        with _lock:
            if "tokenizer" in _cache:
                return _cache["tokenizer"]
            tokenizer = Tokenizer.from_file(str(_model_dir() / "tokenizer.json"))
            added = tokenizer.get_added_tokens_decoder()
            _cache["special"] = {i: a.content for i, a in added.items() if a.special}
            _cache["head"] = tokenizer.encode(TURN.split("{text}")[0].format(role="user")).ids
            tail = TURN.split("{text}")[1] + "<start_of_turn>model\n"
            _cache["tail"] = tokenizer.encode(tail, add_special_tokens=False).ids
            _cache["end"] = {tokenizer.token_to_id(t) for t in END_TOKENS}
            _cache["tokenizer"] = tokenizer
    return _cache["tokenizer"]


def _parse(params: dict, payload: bytes) -> Job:
    """The job's max_tokens and each prompt's ids, or one UserError line saying what is wrong."""
    if not isinstance(params, dict):
        raise UserError("infer params must be a JSON object")
    unknown = sorted(set(params) - set(PARAMS))
    if unknown:
        raise UserError(f"unknown infer parameter {unknown[0]!r}; the only one is max_tokens")
    max_tokens = params.get("max_tokens", DEFAULT_MAX_TOKENS)
    if (
        isinstance(max_tokens, bool)
        or not isinstance(max_tokens, int)
        or not 1 <= max_tokens <= MAX_TOKENS_LIMIT
    ):
        raise UserError(f"max_tokens must be a whole number within 1..{MAX_TOKENS_LIMIT}, got {max_tokens!r}")
    try:
        prompts = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError:
        raise UserError("the infer payload is not UTF-8 text") from None
    except ValueError as exc:
        raise UserError(f"the infer payload is not JSON: {exc}") from None
    if not isinstance(prompts, list):
        raise UserError("the infer payload must be a JSON list of prompt strings")
    if not 1 <= len(prompts) <= MAX_PROMPTS:
        raise UserError(f"an infer job carries 1 to {MAX_PROMPTS} prompts, got {len(prompts)}")
    for i, prompt in enumerate(prompts):
        if not isinstance(prompt, str):
            raise UserError(f"the prompt at index {i} is not a string")
        if not prompt.strip():
            raise UserError(f"the prompt at index {i} is empty")
    tokenizer = _tokenizer()
    special, head, tail = _cache["special"], _cache["head"], _cache["tail"]
    rows = []
    for i, prompt in enumerate(prompts):
        ids = tokenizer.encode(prompt, add_special_tokens=False).ids
        # A control token in the text would end or open turns: the prompt must be plain text.
        control = next((special[t] for t in ids if t in special), None)
        if control is not None:
            raise UserError(
                f"the prompt at index {i} contains Gemma's control token {control!r}; send plain text"
            )
        row = head + ids + tail  # added tokens split first, so this is the whole turn's encoding
        if len(row) + max_tokens > CONTEXT_TOKENS:
            raise UserError(
                f"the prompt at index {i} is {len(row):,} tokens in Gemma's turn format; with max_tokens "
                f"{max_tokens} that is over the on-board context of {CONTEXT_TOKENS:,} tokens"
            )
        rows.append(row)
    return Job(max_tokens, rows)


def check(params: dict, payload: bytes) -> None:
    _parse(params, payload)


# -- the model ---------------------------------------------------------------------------------
def prepare() -> None:
    """Load the model and tokenizer now (once per process): the on-board service calls this
    before it times a job, so the first job is not billed for the load."""
    _tokenizer()
    _model()


def _model():
    """The assistant's transformers loading of the base Gemma, once per process."""
    if "model" not in _cache:
        import torch

        from skyrack.assistant.runtime import TransformersBackend

        with _lock, torch.random.fork_rng():
            if "model" not in _cache:
                _cache["model"] = TransformersBackend(_model_dir(), name=MODEL_NAME)
    return _cache["model"]


def _generate(rows: list[list[int]], max_tokens: int, *, full: bool = False) -> list[list[int]]:
    """Greedy completions of `rows` in one left-padded batch, each cut at its end of turn;
    `full` decodes max_tokens for every row (calibration)."""
    backend = _model()
    torch = backend.torch
    _tokenizer()
    end = sorted(_cache["end"])
    pad = backend.tokenizer.pad_token_id or 0
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for r, row in enumerate(rows):
        ids[r, width - len(row) :] = torch.tensor(row)
        mask[r, width - len(row) :] = 1
    with _lock, torch.random.fork_rng(), torch.inference_mode():
        out = backend.model.generate(
            input_ids=ids.to(backend.device),
            attention_mask=mask.to(backend.device),
            max_new_tokens=max_tokens,
            min_new_tokens=max_tokens if full else None,
            do_sample=False,
            eos_token_id=end,
            pad_token_id=pad,
        )
    produced = []
    for row in out[:, width:].tolist():
        stop = next((k for k, t in enumerate(row) if t in _cache["end"]), len(row))
        produced.append(row[:stop])
    return produced


def groups(rows: list[list[int]]) -> list[list[int]]:
    """The prompts' indices in decode groups, longest first (a function of the payload alone)."""
    out: list[list[int]] = []
    for i in sorted(range(len(rows)), key=lambda i: (-len(rows[i]), i)):
        group = out[-1] if out else None
        if group and (len(group) + 1) * len(rows[group[0]]) <= PADDING_LIMIT * (
            sum(len(rows[j]) for j in group) + len(rows[i])
        ):
            group.append(i)
        else:
            out.append([i])
    return out


def run(params: dict, payload: bytes, *, seed: int) -> Outcome:
    job = _parse(params, payload)
    _model()  # loaded outside the timing: a process pays it once, not each job
    start = time.perf_counter()
    produced: list[list[int]] = [[] for _ in job.rows]
    for group in groups(job.rows):
        for i, ids in zip(group, _generate([job.rows[i] for i in group], job.max_tokens)):
            produced[i] = ids
    wall = time.perf_counter() - start
    tokenizer = _tokenizer()
    completions = [
        {
            "index": i,
            "text": tokenizer.decode(ids, skip_special_tokens=True),
            "tokens": len(ids),
            "prompt_tokens": len(row),
        }
        for i, (row, ids) in enumerate(zip(job.rows, produced))
    ]
    result = {
        "model": MODEL_NAME,
        "model_sha256": _model_sha256(),
        "max_tokens": job.max_tokens,
        "completions": completions,
    }
    tokens = sum(c["tokens"] for c in completions)
    summary = {
        "prompts": len(job.rows),
        "prompt_tokens": sum(map(len, job.rows)),
        "tokens": tokens,
        "tokens_per_s": round(tokens / wall, 2) if wall > 0 else 0.0,
        "wall_s": round(wall, 3),
    }
    return Outcome(json.dumps(result, ensure_ascii=False).encode("utf-8"), RESULT_NAME, summary)


# -- the estimate --------------------------------------------------------------------------------
CALIBRATION_TEXT = "The satellite passes over the ground station and sends down what it has computed. "
CALIBRATION_STEPS = 6
PREFILL_WIDTH, DECODE_WIDTH = 128, 16  # the prompt widths the rates are measured at


def _shape() -> dict:
    """What a token costs the model, from its config.json, to carry the rates measured at the
    calibration widths over to a job's: a prefill is bound by arithmetic (the body's matrices, and
    attention, which eager mode computes over the whole padded width), a decode step by the bytes
    read (every weight once for the batch, then each prompt's key/value cache)."""
    if "shape" not in _cache:
        cfg = json.loads((_model_dir() / "config.json").read_text())
        h, layers, d = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["head_dim"]
        heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
        per_layer = (
            2 * h * heads * d + 2 * h * kv * d + 3 * h * cfg["intermediate_size"]
        )  # q o, k v, gated MLP
        _cache["shape"] = {
            "body_flops": 2 * layers * per_layer,  # a token through the layers
            "attention_flops": 4 * layers * heads * d,  # a token, per position it attends to
            "weight_bytes": 4 * (layers * per_layer + cfg["vocab_size"] * h),  # fp32
            "kv_bytes": 4 * 2 * layers * kv * d,  # a cached position of one prompt
        }
    return _cache["shape"]


def _prefill_s(rates: dict, n: int, width: int) -> float:
    shape = _shape()
    per_token = shape["body_flops"] + shape["attention_flops"] * width
    at_calibration = shape["body_flops"] + shape["attention_flops"] * PREFILL_WIDTH
    return n * width / rates["prefill_tokens_per_s"] * per_token / at_calibration


def _decode_step_s(rates: dict, n: int, context: float) -> float:
    shape = _shape()
    one, full = rates["decode_step_s_1"], rates[f"decode_step_s_{MAX_PROMPTS}"]
    step = one + (full - one) * (n - 1) / (MAX_PROMPTS - 1)
    weights, cache = shape["weight_bytes"], shape["kv_bytes"] * n
    return step * (weights + cache * context) / (weights + cache * DECODE_WIDTH)


def _calibrate() -> dict:
    """Time the decode path itself: a prefill of 4 x 128 tokens, and decode steps at one prompt
    and at a full batch (the step is dominated by the output layer, read once for the batch)."""
    tokenizer = _tokenizer()
    text = tokenizer.encode(CALIBRATION_TEXT * 40, add_special_tokens=False).ids
    head = _cache["head"]

    def timed(n: int, length: int, steps: int) -> float:
        rows = [head + text[k : k + length - len(head)] for k in range(n)]
        best = math.inf
        for _ in range(2):  # the quicker of two: a busy machine only ever slows a pass
            start = time.perf_counter()
            _generate(rows, steps, full=True)
            best = min(best, time.perf_counter() - start)
        return best

    _model()
    step = {}
    for n in (1, MAX_PROMPTS):
        one = timed(n, DECODE_WIDTH, 1)
        step[n] = max((timed(n, DECODE_WIDTH, 1 + CALIBRATION_STEPS) - one) / CALIBRATION_STEPS, 1e-6)
    prefill_s = timed(4, PREFILL_WIDTH, 1)  # max_new_tokens 1: the prefill pass alone picks the first token
    return {
        "prefill_tokens_per_s": 4 * PREFILL_WIDTH / prefill_s,
        "decode_step_s_1": step[1],
        f"decode_step_s_{MAX_PROMPTS}": step[MAX_PROMPTS],
    }


def rates(refresh: bool = False) -> dict:
    """This machine's calibrated rates, measured once (~20 s) and cached per model, device and
    torch thread count; a record that does not match or does not read, or `refresh`, measures
    them again."""
    import torch

    from skyrack.device import pick_device
    from skyrack.sources.cache import cache_dir
    from skyrack.storage import atomic_write_text

    key = {
        "version": RATES_VERSION,
        "model_sha256": _model_sha256(),
        "device": str(pick_device(None)),
        "threads": torch.get_num_threads(),
    }
    path = cache_dir("jobs") / f"infer-rates-{key['model_sha256'][:16]}-{key['device']}-{key['threads']}.json"
    names = ("prefill_tokens_per_s", "decode_step_s_1", f"decode_step_s_{MAX_PROMPTS}")
    try:
        if refresh:
            raise FileNotFoundError(path)
        record = json.loads(path.read_text())
        if {k: record.get(k) for k in key} == key and all(
            isinstance(record[n], float) and math.isfinite(record[n]) and record[n] > 0 for n in names
        ):
            return record
    except (OSError, ValueError, KeyError):
        pass
    record = {**key, **_calibrate(), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    atomic_write_text(path, json.dumps(record, indent=1))
    return record


def estimate(params: dict, payload: bytes) -> Estimate:
    """Wall seconds here and the result's size. For each decode group, the padded prefill, then
    max_tokens decode steps (each interpolated between one prompt and a full batch), both carried
    from the calibration widths to the group's (`_shape`); an upper figure, since a prompt may end
    its turn early."""
    job = _parse(params, payload)
    r = rates()
    wall = 0.0
    for group in groups(job.rows):
        n, width = len(group), len(job.rows[group[0]])
        wall += _prefill_s(r, n, width) + job.max_tokens * _decode_step_s(r, n, width + job.max_tokens / 2)
    n = len(job.rows)
    result_bytes = RESULT_BYTES_HEADER + n * (
        RESULT_BYTES_PER_PROMPT + job.max_tokens * RESULT_BYTES_PER_TOKEN
    )
    return Estimate(wall_s=wall, result_bytes=result_bytes)
