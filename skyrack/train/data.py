"""Text in, batches out: the character tokenizer, the train/validation split, the sampler.

Split rules (deterministic, no randomness involved):
- A single text (`--data FILE`, tiny Shakespeare): the last 10% of the characters are the
  validation split, the first 90% the training split, exactly as nanoGPT's prepare.py does.
- A corpus of several works (the complete works): the concatenated text is cut into chunks of
  `CHUNK_CHARS` characters and every tenth chunk (index 9, 19, 29, ...) is held out for
  validation, so that validation samples every part of the canon (tragedies, comedies,
  histories, poems) rather than the alphabetically last plays.
A training or validation window never crosses from one split into the other.

The validation sample is fixed: `eval_windows` windows of `block_size + 1` characters starting
at evenly spaced offsets across the validation split (`eval_windows=0`: the whole split cut into
consecutive, non-overlapping windows). No random number is drawn to evaluate.

The training sampler is counter-based: batch number k of process `rank` is drawn from a fresh
generator seeded with (seed, rank, k), so its whole state is the integer k (`position`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from skyrack.errors import UserError

CHUNK_CHARS = 20_000
VAL_EVERY = 10  # every tenth chunk is validation
VAL_FRACTION = 0.1  # single texts: the last 10%


def read_text_file(path) -> str:
    """The UTF-8 text of `path`; a missing, empty or binary file is a `UserError`."""
    try:
        with open(path, "rb") as file:
            raw = file.read()
    except FileNotFoundError:
        raise UserError(f"data file not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"data path is a directory, not a text file: {path}") from None
    except OSError as exc:
        raise UserError(f"cannot read data file {path}: {exc.strerror}") from None
    if b"\x00" in raw:
        raise UserError(f"data file {path} is binary (it contains NUL bytes), not UTF-8 text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UserError(f"data file {path} is not UTF-8 text (bad byte at offset {exc.start})") from None
    if not text.strip():
        raise UserError(f"data file {path} is empty")
    return text.replace("\r\n", "\n")


class CharTokenizer:
    """One token per distinct character, ids in code-point order."""

    def __init__(self, chars: str):
        self.chars = "".join(sorted(set(chars)))
        self.index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls(text)

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def unknown(self, text: str) -> list[str]:
        return sorted({c for c in text if c not in self.index})

    def encode(self, text: str) -> list[int]:
        missing = self.unknown(text)
        if missing:
            shown = "".join(missing[:20])
            raise UserError(f"characters outside the model's vocabulary: {shown!r}")
        return [self.index[c] for c in text]

    def encode_array(self, text: str) -> np.ndarray:
        """Fast encoding of a long text (every character must be in the vocabulary)."""
        lut = np.full(max(map(ord, self.chars)) + 1, -1, dtype=np.int64)
        for i, c in enumerate(self.chars):
            lut[ord(c)] = i
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
        if codes.size and codes.max() >= lut.size or (lut[codes] < 0).any():
            self.encode(text)  # raises with the offending characters
        dtype = np.uint8 if self.vocab_size <= 256 else np.int32
        return lut[codes].astype(dtype)

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)

    def to_json(self) -> str:
        return json.dumps({"type": "char", "chars": self.chars}, ensure_ascii=False)

    @classmethod
    def from_json(cls, payload: str) -> CharTokenizer:
        data = json.loads(payload)
        if data.get("type") != "char":
            raise ValueError(f"unknown tokenizer type {data.get('type')!r}")
        return cls(data["chars"])


@dataclass
class Split:
    """Token ids and the [start, end) segments of them that belong to this split."""

    tokens: np.ndarray
    segments: list[tuple[int, int]]

    @property
    def n_tokens(self) -> int:
        return sum(end - start for start, end in self.segments)

    def window_starts(self, block_size: int) -> tuple[np.ndarray, np.ndarray]:
        """(segment starts, cumulative count of valid window starts) for windows of
        block_size + 1 tokens that stay inside one segment."""
        starts = np.array([s for s, e in self.segments], dtype=np.int64)
        counts = np.array([max(0, e - s - block_size) for s, e in self.segments], dtype=np.int64)
        return starts, np.cumsum(counts)

    def offsets(self, k: np.ndarray, block_size: int) -> np.ndarray:
        """Token offsets of the windows numbered `k` among all valid windows of this split."""
        seg_starts, cum = self.window_starts(block_size)
        seg = np.searchsorted(cum, k, side="right")
        before = np.concatenate(([0], cum[:-1]))[seg]
        return seg_starts[seg] + (k - before)

    def windows(self, offsets: np.ndarray, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = offsets[:, None] + np.arange(block_size + 1)[None, :]
        chunk = torch.from_numpy(self.tokens[idx].astype(np.int64))
        return chunk[:, :-1], chunk[:, 1:]


@dataclass
class Dataset:
    name: str
    sha256: str
    tokenizer: CharTokenizer
    train: Split
    val: Split
    split_rule: str

    def describe(self) -> dict:
        return {
            "data": self.name,
            "sha256": self.sha256,
            "vocab_size": self.tokenizer.vocab_size,
            "train_tokens": self.train.n_tokens,
            "val_tokens": self.val.n_tokens,
            "split": self.split_rule,
        }


def build_dataset(
    text: str, name: str, sha256: str, split: str = "tail", tokenizer: CharTokenizer | None = None
) -> Dataset:
    """Tokenize `text` and split it: `split` is "tail" (last 10% validation) or "chunks"
    (every tenth chunk of CHUNK_CHARS validation). A given tokenizer (from a checkpoint) is kept."""
    tokenizer = tokenizer or CharTokenizer.from_text(text)
    tokens = tokenizer.encode_array(text)
    n = len(tokens)
    if split == "tail":
        cut = int(n * (1 - VAL_FRACTION))
        train, val = [(0, cut)], [(cut, n)]
        rule = "last 10% of the text is validation (contiguous, as nanoGPT)"
    elif split == "chunks":
        train, val = [], []
        for i, start in enumerate(range(0, n, CHUNK_CHARS)):
            seg = (start, min(n, start + CHUNK_CHARS))
            if i % VAL_EVERY == VAL_EVERY - 1:
                val.append(seg)
            elif train and train[-1][1] == seg[0]:
                train[-1] = (train[-1][0], seg[1])  # merge consecutive training chunks
            else:
                train.append(seg)
        rule = f"every {VAL_EVERY}th chunk of {CHUNK_CHARS} characters is validation"
    else:
        raise ValueError(f"unknown split rule {split!r}")
    return Dataset(name, sha256, tokenizer, Split(tokens, train), Split(tokens, val), rule)


def check_fits(split: Split, block_size: int, what: str) -> None:
    if split.window_starts(block_size)[1][-1:].sum() <= 0:
        raise UserError(
            f"the {what} split ({split.n_tokens} characters) is too short for "
            f"block_size {block_size}; use more text or a smaller --block-size"
        )


class BatchSampler:
    """Random training windows, reproducible from (seed, rank, position) alone."""

    def __init__(self, split: Split, block_size: int, batch_size: int, seed: int, rank: int = 0):
        check_fits(split, block_size, "training")
        self.split, self.block_size, self.batch_size = split, block_size, batch_size
        self.seed, self.rank = seed, rank
        self.position = 0
        self._n_windows = int(split.window_starts(block_size)[1][-1])

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng([self.seed, self.rank, self.position])
        self.position += 1
        k = rng.integers(0, self._n_windows, size=self.batch_size)
        return self.split.windows(self.split.offsets(k, self.block_size), self.block_size)

    def state_dict(self) -> dict:
        return {"position": self.position, "seed": self.seed, "rank": self.rank}

    def load_state_dict(self, state: dict) -> None:
        self.position = int(state["position"])


def eval_offsets(split: Split, block_size: int, n_windows: int) -> np.ndarray:
    """Start offsets of the fixed validation sample (see the module docstring)."""
    check_fits(split, block_size, "validation")
    if n_windows <= 0:  # the whole split in consecutive windows
        out = []
        for s, e in split.segments:
            out.extend(range(s, e - block_size, block_size))
        return np.array(out, dtype=np.int64)
    total = int(split.window_starts(block_size)[1][-1])
    k = np.linspace(0, total - 1, n_windows).round().astype(np.int64)
    return split.offsets(k, block_size)


# -- the training text --------------------------------------------------------------------------
COMPLETE_WORKS = "shakespeare-complete-works"  # the data name of the default corpus in a checkpoint


def load_dataset(
    data_file: str | None, tokenizer: CharTokenizer | None = None, say=print, expect_sha256: str | None = None
) -> Dataset:
    """The complete works (default) or `data_file`, tokenized and split. With `expect_sha256`
    (resuming), other data is refused before anything else is done."""
    if data_file is None:
        from skyrack.sources.shakespeare import complete_works

        corpus = complete_works()
        text, name, digest, rule = corpus.text, COMPLETE_WORKS, corpus.sha256, "chunks"
        info = corpus.describe()
        report = (
            f"corpus: complete works of Shakespeare ({info['works']} works, "
            f"{info['characters']:,} characters, vocabulary {info['vocabulary']}), "
            f"from {info['source']}, sha256 {digest[:12]}"
        )
    else:
        text = read_text_file(data_file)
        name, digest, rule = str(Path(data_file).resolve()), hashlib.sha256(text.encode()).hexdigest(), "tail"
        report = (
            f"corpus: {data_file} ({len(text):,} characters, vocabulary {len(set(text))}), "
            f"sha256 {digest[:12]}"
        )
    if expect_sha256 and digest != expect_sha256:
        raise UserError(
            f"the checkpoint was trained on other data (sha256 {expect_sha256[:12]}, "
            f"not {digest[:12]} of {data_file or 'the complete works'})"
        )
    say(report)
    return build_dataset(text, name, digest, rule, tokenizer)
