"""Gemma 3's text decoder in numpy, over memory-mapped float32 safetensors.

Why not transformers at run time: importing torch and transformers costs seconds, and
`from_pretrained` reads every weight into memory (1.1 GB, of which the 262k x 640 embedding is
670 MB). Here the weights stay in the cached file and are mapped, not read: the decoder layers
(400 MB) are touched on every token, but of the tied embedding / output layer only the rows of
the prompt's tokens and of the tokens an answer may use are ever read. A LoRA adapter is
merged into its projections on load (W + B @ A * alpha / r, as peft merges it).

The arithmetic follows transformers' Gemma3 with eager attention, in float32: scaled embedding,
RMSNorm with (1 + w), q/k norms, RoPE with a local base on sliding-window layers, GQA, GELU-tanh
MLP, pre- and post-norms around attention and MLP. Embedding rows are read with pread, not mapped:
the kernel maps 64 KB around each faulted page, which for a few thousand scattered rows would
map a fifth of the table. numpy's BLAS sums in another order than
torch's, so logits differ in the last bits; the greedy tokens are compared in the tests.
"""

from __future__ import annotations

import json
import mmap
import os
import time
from pathlib import Path

import numpy as np

from skyrack.errors import UserError

_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}


class Safetensors:
    """Read-only views of a safetensors file's tensors: mapped, or read into memory on request."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        with self.path.open("rb") as f:
            head = f.read(8)
            if len(head) != 8:
                raise UserError(f"{self.path} is not a safetensors file (too short)")
            n = int.from_bytes(head, "little")
            size = os.fstat(f.fileno()).st_size
            if not 0 < n <= size - 8:
                raise UserError(f"{self.path} is not a safetensors file (bad header length)")
            try:
                header = json.loads(f.read(n))
            except ValueError:
                raise UserError(f"{self.path} has a damaged safetensors header") from None
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        header.pop("__metadata__", None)
        self._base = 8 + n
        self.entries: dict[str, tuple[np.dtype, tuple[int, ...], int, int]] = {}
        for name, e in header.items():
            dtype = np.dtype(_DTYPES.get(e["dtype"], np.uint8))
            start, end = e["data_offsets"]
            if (
                e["dtype"] not in _DTYPES
                or self._base + end > size
                or end - start != dtype.itemsize * int(np.prod(e["shape"], dtype=np.int64))
            ):
                raise UserError(f"{self.path}: tensor {name} does not fit the file (damaged or truncated)")
            self.entries[name] = (dtype, tuple(e["shape"]), self._base + start, end - start)

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def mapped(self, name: str) -> np.ndarray:
        """A view into the mapping: pages are read from disk (or the page cache) when touched."""
        dtype, shape, offset, nbytes = self.entries[name]
        return np.frombuffer(self._map, dtype, nbytes // dtype.itemsize, offset).reshape(shape)

    def rows(self, name: str, ids) -> np.ndarray:
        """Rows of a 2-D tensor by pread: mapping them would map the pages around each row too."""
        dtype, shape, offset, _ = self.entries[name]
        width = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        with self.path.open("rb") as f:
            fd = f.fileno()
            data = b"".join(os.pread(fd, width, offset + int(i) * width) for i in ids)
        return np.frombuffer(data, dtype).reshape(len(ids), *shape[1:])

    def read(self, name: str) -> np.ndarray:
        """A private writable copy, read with pread (the mapping's pages stay untouched)."""
        dtype, shape, offset, nbytes = self.entries[name]
        out = np.empty(shape, dtype)
        with self.path.open("rb") as f:
            f.seek(offset)
            f.readinto(memoryview(out).cast("B"))
        return out


def _rms_norm(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * (1.0 + w)


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(np.float32(0.7978845608028654) * (x + np.float32(0.044715) * x * x * x)))


class KVCache:
    """Keys and values per layer, grown in blocks; `length` tokens are valid."""

    def __init__(self, layers: int, kv_heads: int, head_dim: int):
        self.k = [np.empty((kv_heads, 0, head_dim), np.float32) for _ in range(layers)]
        self.v = [np.empty((kv_heads, 0, head_dim), np.float32) for _ in range(layers)]
        self.length = 0

    def put(self, layer: int, k: np.ndarray, v: np.ndarray, start: int) -> tuple[np.ndarray, np.ndarray]:
        end = start + k.shape[1]
        if end > self.k[layer].shape[1]:
            grow = max(end, 2 * self.k[layer].shape[1], 256)
            for store in (self.k, self.v):
                bigger = np.empty((k.shape[0], grow, k.shape[2]), np.float32)
                bigger[:, :start] = store[layer][:, :start]
                store[layer] = bigger
        self.k[layer][:, start:end] = k
        self.v[layer][:, start:end] = v
        return self.k[layer][:, :end], self.v[layer][:, :end]


class Gemma3Text:
    def __init__(self, folder: str | Path, adapter: str | Path | None = None):
        folder = Path(folder)
        try:
            config = json.loads((folder / "config.json").read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read {folder / 'config.json'}: {exc}") from None
        config = config.get("text_config", config)
        self.hidden = config["hidden_size"]
        self.heads = config["num_attention_heads"]
        self.kv_heads = config["num_key_value_heads"]
        self.head_dim = config["head_dim"]
        self.eps = np.float32(config.get("rms_norm_eps", 1e-6))
        self.n_layers = config["num_hidden_layers"]
        self.window = config.get("sliding_window") or 0
        self.layer_types = config.get("layer_types") or ["full_attention"] * self.n_layers
        self.scaling = np.float32(config.get("query_pre_attn_scalar", self.head_dim) ** -0.5)
        self.embed_scale = np.float32(self.hidden**0.5)
        self._inv_freq = {kind: self._rope_inv_freq(config, kind) for kind in set(self.layer_types)}
        self.store = Safetensors(folder / "model.safetensors")
        prefix = "model." if "model.embed_tokens.weight" in self.store else ""
        self._embed_name = prefix + "embed_tokens.weight"
        self.vocab = self.store.entries[self._embed_name][1][0]
        self._rows: dict[int, np.ndarray] = {}  # embedding rows read so far (a few thousand of 262k)
        self.final_norm = self.store.read(prefix + "norm.weight")
        names = (
            "self_attn.q_proj",
            "self_attn.k_proj",
            "self_attn.v_proj",
            "self_attn.o_proj",
            "mlp.gate_proj",
            "mlp.up_proj",
            "mlp.down_proj",
        )
        norms = (
            "input_layernorm",
            "post_attention_layernorm",
            "pre_feedforward_layernorm",
            "post_feedforward_layernorm",
            "self_attn.q_norm",
            "self_attn.k_norm",
        )
        started = time.perf_counter()
        lora = _lora_deltas(adapter) if adapter else {}
        merge_s = time.perf_counter() - started  # reading the adapter, then merging it, below
        self.layers = []
        for i in range(self.n_layers):
            layer = {}
            for n in names:
                key = f"{prefix}layers.{i}.{n}.weight"
                if f"layers.{i}.{n}" in lora:  # merged into a private copy; the mapped original stays cold
                    t = time.perf_counter()
                    w = self.store.read(key)
                    a, b, scale = lora.pop(f"layers.{i}.{n}")
                    w += (b @ a) * scale
                    merge_s += time.perf_counter() - t
                else:
                    w = self.store.mapped(key)
                layer[n.split(".")[1]] = w.T  # x @ W.T, as nn.Linear: BLAS reads the transpose in place
            for n in norms:
                layer[n.split(".")[-1]] = self.store.read(f"{prefix}layers.{i}.{n}.weight")
            self.layers.append(layer)
        if lora:
            raise UserError(f"the adapter names modules this model lacks: {sorted(lora)[:3]}")
        self.adapter_s = merge_s
        self.weights_s = time.perf_counter() - started - merge_s

    @staticmethod
    def _rope_inv_freq(config: dict, kind: str) -> np.ndarray:
        params = (config.get("rope_parameters") or {}).get(kind) or {}
        if kind == "sliding_attention":
            base = params.get("rope_theta", config.get("rope_local_base_freq", 10000.0))
        else:
            base = params.get("rope_theta", config.get("rope_theta", 1e6))
        if params.get("rope_type", "default") != "default" or config.get("rope_scaling"):
            raise UserError(
                f"RoPE scaling {params.get('rope_type') or config.get('rope_scaling')} is not supported"
            )
        dim = config["head_dim"]
        return (1.0 / (base ** (np.arange(0, dim, 2, dtype=np.float32) / np.float32(dim)))).astype(np.float32)

    def new_cache(self) -> KVCache:
        return KVCache(self.n_layers, self.kv_heads, self.head_dim)

    def embed_rows(self, ids) -> np.ndarray:
        ids = [int(i) for i in ids]
        if not 0 <= min(ids, default=0) <= max(ids, default=0) < self.vocab:
            raise UserError(f"token id outside the vocabulary of {self.vocab}")
        missing = sorted({i for i in ids if i not in self._rows})
        if missing:
            self._rows.update(zip(missing, self.store.rows(self._embed_name, missing)))
        return np.stack([self._rows[i] for i in ids])

    def forward(self, ids: list[int], cache: KVCache, keep: int = 1) -> np.ndarray:
        """Run `ids` after the cache's tokens: the final-normed hidden states of the last `keep`."""
        start, t = cache.length, len(ids)
        x = self.embed_rows(ids) * self.embed_scale  # (t, hidden)
        pos = np.arange(start, start + t, dtype=np.float32)
        rope = {}
        for kind, inv in self._inv_freq.items():
            freqs = pos[:, None] * inv[None, :]
            emb = np.concatenate([freqs, freqs], axis=-1)
            rope[kind] = (np.cos(emb), np.sin(emb))
        q_pos = np.arange(start, start + t)[:, None]
        k_pos = np.arange(start + t)[None, :]
        causal = k_pos <= q_pos
        masks = {"full_attention": np.where(causal, 0.0, -np.inf).astype(np.float32)}
        if self.window:
            sliding = causal & (k_pos > q_pos - self.window)
            masks["sliding_attention"] = np.where(sliding, 0.0, -np.inf).astype(np.float32)
        group = self.heads // self.kv_heads
        half = self.head_dim // 2
        for i, layer in enumerate(self.layers):
            kind = self.layer_types[i]
            cos, sin = rope[kind]
            h = _rms_norm(x, layer["input_layernorm"], self.eps)
            q = (h @ layer["q_proj"]).reshape(t, self.heads, self.head_dim).transpose(1, 0, 2)
            k = (h @ layer["k_proj"]).reshape(t, self.kv_heads, self.head_dim).transpose(1, 0, 2)
            v = (h @ layer["v_proj"]).reshape(t, self.kv_heads, self.head_dim).transpose(1, 0, 2)
            q = _rms_norm(q, layer["q_norm"], self.eps)
            k = _rms_norm(k, layer["k_norm"], self.eps)
            q = q * cos + np.concatenate([-q[..., half:], q[..., :half]], axis=-1) * sin
            k = k * cos + np.concatenate([-k[..., half:], k[..., :half]], axis=-1) * sin
            keys, values = cache.put(i, k, v, start)
            qg = q.reshape(self.kv_heads, group * t, self.head_dim)
            scores = (qg @ keys.transpose(0, 2, 1)).reshape(self.heads, t, -1) * self.scaling
            scores = scores + masks.get(kind, masks["full_attention"])
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            out = (scores.reshape(self.kv_heads, group * t, -1) @ values).reshape(
                self.heads, t, self.head_dim
            )
            out = out.transpose(1, 0, 2).reshape(t, self.heads * self.head_dim)
            x = x + _rms_norm(out @ layer["o_proj"], layer["post_attention_layernorm"], self.eps)
            h = _rms_norm(x, layer["pre_feedforward_layernorm"], self.eps)
            h = (_gelu_tanh(h @ layer["gate_proj"]) * (h @ layer["up_proj"])) @ layer["down_proj"]
            x = x + _rms_norm(h, layer["post_feedforward_layernorm"], self.eps)
        cache.length = start + t
        return _rms_norm(x[-keep:], self.final_norm, self.eps)


def _lora_deltas(adapter: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray, float]]:
    """'layers.N.self_attn.q_proj' -> (A, B, alpha / r) from a peft LoRA adapter directory."""
    folder = Path(adapter)
    try:
        config = json.loads((folder / "adapter_config.json").read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{folder} is not a LoRA adapter directory: {exc}") from None
    unsupported = [k for k in ("use_dora", "use_rslora", "use_qalora") if config.get(k)]
    if config.get("peft_type", "LORA") != "LORA" or unsupported or config.get("rank_pattern"):
        raise UserError(
            f"{folder}: only plain LoRA adapters can be merged here ({unsupported or config.get('peft_type')})"
        )
    if config.get("alpha_pattern"):
        raise UserError(f"{folder}: per-module LoRA alpha is not supported")
    scale = float(config["lora_alpha"]) / float(config["r"])
    weights = Safetensors(folder / "adapter_model.safetensors")
    out: dict[str, list] = {}
    for name in weights.entries:
        # base_model.model.model.layers.3.self_attn.q_proj.lora_A.weight
        module, _, part = name.rpartition(".lora_")
        if not part or "layers." not in module:
            raise UserError(f"{folder}: unexpected tensor {name} in the adapter")
        key = module[module.index("layers.") :]
        pair = out.setdefault(key, [None, None])
        pair[0 if part.startswith("A") else 1] = weights.read(name)
    deltas = {}
    for key, (a, b) in out.items():
        if a is None or b is None:
            raise UserError(f"{folder}: {key} lacks lora_A or lora_B")
        deltas[key] = (a, b, scale)
    return deltas
