"""Gemma's BPE tokenizer, read from a compact cache in milliseconds instead of seconds.

The converted model's `tokenizer.json` (262k tokens, 515k merges) takes the `tokenizers` library
2-3 s and ~280 MB to load, longer than the answer. The assistant tokenizes a few hundred
characters per question, so a small BPE over the same vocabulary and merges does:
`compile_tokenizer` turns tokenizer.json once into arrays (the token strings end to end with
their offsets; the merges as pair, rank and merged id, sorted by pair) and a small JSON of the
added tokens and single characters, and `BPETokenizer` applies exactly what that tokenizer.json
declares for Gemma: added tokens matched first in the raw text (longest first), spaces replaced
by '▁', the lowest-ranked merge applied leftmost first, byte fallback for characters outside
the vocabulary, <bos> prepended. tests/test_assistant_fast.py checks it token for token against
the `tokenizers` library.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from skyrack.errors import UserError

TABLES, SPEC = "skyrack-tokenizer.npz", "skyrack-tokenizer.json"
# Added tokens of these shapes are found by pattern, then looked up; the rest are listed literally.
_SHAPED = re.compile(r"<[^<>\n\t]*>|\n+|\t+")
_NONE = np.iinfo(np.int64).max


def compile_tokenizer(tokenizer_json: Path, out: Path) -> list[Path]:
    """Write the compact files into `out`; refuse a tokenizer of another design."""
    spec = json.loads(Path(tokenizer_json).read_text(encoding="utf-8"))
    model = spec["model"]
    normalizer, post = spec.get("normalizer") or {}, spec.get("post_processor") or {}
    expected = (
        model.get("type") == "BPE"
        and model.get("byte_fallback")
        and not model.get("dropout")
        and not model.get("continuing_subword_prefix")
        and not model.get("end_of_word_suffix")
        and not model.get("ignore_merges")
        and normalizer.get("type") == "Replace"
        and normalizer.get("content") == "▁"
        and (not post or (post.get("type") == "TemplateProcessing" and len(post["special_tokens"]) <= 1))
        and not any(a["normalized"] or a["lstrip"] or a["rstrip"] for a in spec["added_tokens"])
    )
    if not expected:
        raise UserError(f"{tokenizer_json} is not a Gemma-style BPE tokenizer; it cannot be compiled")
    vocab: dict[str, int] = model["vocab"]
    size = 1 + max([*vocab.values(), *(a["id"] for a in spec["added_tokens"])])
    tokens = [""] * size
    for token, i in [*vocab.items(), *((a["content"], a["id"]) for a in spec["added_tokens"])]:
        tokens[i] = token
    # Rows (left * size + right, rank, merged id), sorted by the first column for searchsorted.
    merges = np.empty((len(model["merges"]), 3), dtype=np.int64)
    for rank, pair in enumerate(model["merges"]):
        left, right = pair if isinstance(pair, list) else pair.split(" ", 1)
        merges[rank] = (vocab[left] * size + vocab[right], rank, vocab[left + right])
    merges = merges[np.argsort(merges[:, 0], kind="stable")]
    blob = [t.encode("utf-8") for t in tokens]
    offsets = np.zeros(len(blob) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum([len(b) for b in blob])
    table = {
        "bos": next((s["ids"][0] for s in post.get("special_tokens", {}).values()), None),
        "unk": vocab.get(model.get("unk_token") or "<unk>"),
        "added": [
            {"id": a["id"], "content": a["content"], "special": a["special"]} for a in spec["added_tokens"]
        ],
        "chars": {t: i for t, i in vocab.items() if len(t) == 1},
        "bytes": [vocab.get(f"<0x{b:02X}>") for b in range(256)],
    }
    paths = [out / TABLES, out / SPEC]
    with paths[0].open("wb") as f:
        np.savez(f, merges=merges, offsets=offsets, blob=np.frombuffer(b"".join(blob), dtype=np.uint8))
    paths[1].write_text(json.dumps(table, ensure_ascii=False), encoding="utf-8")
    return paths


class BPETokenizer:
    def __init__(self, folder: str | Path):
        folder = Path(folder)
        try:
            with np.load(folder / TABLES) as tables:
                merges, self._offsets = tables["merges"], tables["offsets"]
                self._blob = tables["blob"].tobytes()
            spec = json.loads((folder / SPEC).read_text(encoding="utf-8"))
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"cannot read the compiled tokenizer in {folder}: {exc}") from None
        self.size = len(self._offsets) - 1
        self._keys, self._ranks, self._merged = merges[:, 0].copy(), merges[:, 1].copy(), merges[:, 2].copy()
        self.bos_id, self.unk_id = spec["bos"], spec["unk"]
        self._chars: dict[str, int] = spec["chars"]
        self._bytes: list[int | None] = spec["bytes"]
        self.added = {a["content"]: a["id"] for a in spec["added"]}
        self.special_ids = {a["id"] for a in spec["added"] if a["special"]}
        literal = sorted((a for a in self.added if not _SHAPED.fullmatch(a)), key=len, reverse=True)
        # A bracketed run that is not an added token stays text; it must not swallow a literal one.
        heads = re.escape("".join(sorted({a[0] for a in literal})))
        shaped = _SHAPED.pattern.replace("<>", "<>" + heads, 1)
        self._find = re.compile("|".join([*map(re.escape, literal), shaped]))

    def token(self, i: int) -> str:
        return self._blob[int(self._offsets[i]) : int(self._offsets[i + 1])].decode("utf-8")

    def token_to_id(self, token: str) -> int | None:
        return self.added.get(token, self._chars.get(token))

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        out = [self.bos_id] if add_special_tokens and self.bos_id is not None else []
        done = 0
        for match in self._find.finditer(text):
            piece = match.group()
            if piece in self.added:
                ids = [self.added[piece]]
            elif piece[0] in "\n\t":  # a run longer than any added one: the longest first, as matched
                ids = []
                while piece:
                    n = next(n for n in range(len(piece), 0, -1) if piece[:n] in self.added)
                    ids.append(self.added[piece[:n]])
                    piece = piece[n:]
            else:
                continue  # an ordinary bracketed word, BPE'd with the text around it
            out.extend(self._bpe(text[done : match.start()]))
            out.extend(ids)
            done = match.end()
        out.extend(self._bpe(text[done:]))
        return out

    def _bpe(self, text: str) -> list[int]:
        if not text:
            return []
        symbols: list[int] = []
        for ch in text.replace(" ", "▁"):
            i = self._chars.get(ch)
            if i is not None:
                symbols.append(i)
            else:
                symbols.extend(self.unk_id if self._bytes[b] is None else self._bytes[b] for b in ch.encode())
        while len(symbols) > 1:
            ids = np.asarray(symbols, dtype=np.int64)
            keys = ids[:-1] * self.size + ids[1:]
            at = np.searchsorted(self._keys, keys).clip(max=len(self._keys) - 1)
            ranks = np.where(self._keys[at] == keys, self._ranks[at], _NONE)
            k = int(ranks.argmin())
            if ranks[k] == _NONE:
                break
            # The leftmost occurrence only: the token it makes may outrank a later occurrence.
            symbols[k : k + 2] = [int(self._merged[at[k]])]
        return symbols

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        parts: list[str] = []
        pending = bytearray()  # byte-fallback tokens, joined before they are read as UTF-8
        for i in ids:
            if skip_special_tokens and i in self.special_ids:
                continue
            token = self.token(i)
            if len(token) == 6 and token.startswith("<0x") and token.endswith(">"):
                pending.append(int(token[3:5], 16))
                continue
            if pending:
                parts.append(pending.decode("utf-8", errors="replace"))
                pending.clear()
            parts.append(token.replace("▁", " "))
        if pending:
            parts.append(pending.decode("utf-8", errors="replace"))
        return "".join(parts)
