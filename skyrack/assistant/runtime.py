"""Language-model backends: a transformers model on CPU or CUDA, or an OpenAI-compatible server.

`TransformersBackend` decodes greedily with its own short loop instead of `generate()`:
- the prompt's reusable prefix (instruction and examples) is run once and its key/value cache
  kept, so a question costs only its own facts and answer;
- the output layer is cut to the tokens the answer may use (the prompt's own tokens and a
  domain word list: ~2-4k of Gemma's 262k). Gemma 3 270M spends most of each step in its
  262k-row output layer; scoring only the allowed rows makes a step several times cheaper, and
  the model cannot wander off into other scripts. The model still chooses every token.
"""

from __future__ import annotations

import copy
import json
import os
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from skyrack.device import pick_device
from skyrack.errors import UserError
from skyrack.storage import sha256_file

END_MARKERS = ("<end_of_turn>", "\n")

# Words an answer may need beyond those in its prompt.
DOMAIN_WORDS = (
    "I I'm I'll I am will be above over in and at up moving minutes minute hours hour an a the my next "
    "then now right currently sunlight eclipse shadow enter come back into pass over ground station starts "
    "high km km/s °N °S °E °W ° % W Wh °C battery arrays give draw GPU power cap training step loss "
    "validation faults detected recovered dose rad inside outside South Atlantic Anomaly of with, . ; : ( ) - "
    "0 1 2 3 4 5 6 7 8 9 00 10 20 30 UTC degrees kilometres kilometers per second full speed"
)


def domain_token_ids(encode) -> set[int]:
    """The domain words' tokens; `encode(text)` gives ids without special tokens."""
    ids = set(encode(DOMAIN_WORDS))
    # Each word alone and after a space: "." after "minutes" is a bare token, not " .".
    return ids | {i for w in DOMAIN_WORDS.split() for spaced in (w, " " + w) for i in encode(spaced)}


class ComposedBackend:
    """No model: answers are composed from the facts."""

    mode = "composed"
    name = "composed"
    load_s = 0.0

    def describe(self) -> dict:
        return {"backend": self.name, "mode": self.mode}


class TransformersBackend:
    mode = "model"

    def __init__(
        self,
        model_dir: str | Path,
        *,
        adapter: str | Path | None = None,
        device: str | None = None,
        name: str | None = None,
        threads: int | None = None,
    ):
        start = time.perf_counter()
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as exc:
            raise UserError(f"the model backend needs transformers: {exc}") from None
        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        self.device = str(pick_device(device))
        self.name = name or str(model_dir)
        marks = [time.perf_counter()]
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
            marks.append(time.perf_counter())
            # Eager attention: for one new token at a time on CPU it is several times cheaper than SDPA here.
            model = AutoModelForCausalLM.from_pretrained(
                str(model_dir), dtype=torch.float32, attn_implementation="eager"
            )
        except (OSError, ValueError) as exc:
            raise UserError(
                f"cannot load a transformers model from {model_dir}: {str(exc).splitlines()[0]}"
            ) from None
        marks.append(time.perf_counter())
        if adapter:
            model = load_adapter(model, adapter)
        self.model = model.to(self.device).eval()
        marks.append(time.perf_counter())
        self.load_breakdown = {
            "imports_s": round(marks[0] - start, 3),
            "weights_s": round(marks[2] - marks[1], 3),
            "adapter_s": round(marks[3] - marks[2], 3),
            "tokenizer_s": round(marks[1] - marks[0], 3),
        }
        self.adapter = str(adapter) if adapter else None
        self._prefix_cache: dict[str, tuple] = {}
        self._lock = threading.Lock()  # one decode at a time (the ground server may call from threads)
        self._domain_ids = domain_token_ids(lambda s: self.tokenizer(s, add_special_tokens=False).input_ids)
        self._end_ids = {
            i
            for m in ("<end_of_turn>", "<eos>")
            for i in [self.tokenizer.convert_tokens_to_ids(m)]
            if i is not None and i >= 0
        }
        if self.tokenizer.eos_token_id is not None:
            self._end_ids.add(self.tokenizer.eos_token_id)
        self.load_s = time.perf_counter() - start

    def describe(self) -> dict:
        return {
            "backend": self.name,
            "mode": self.mode,
            "runtime": "transformers",
            "device": self.device,
            "adapter": self.adapter,
            "load_s": round(self.load_s, 2),
            "load": self.load_breakdown,
        }

    def _ids(self, text: str, special: bool):
        return self.tokenizer(text, add_special_tokens=special, return_tensors="pt").input_ids.to(self.device)

    def _run(self, ids, past):
        out = self.model.model(input_ids=ids, past_key_values=past, use_cache=True)
        return out.last_hidden_state[:, -1], out.past_key_values

    def generate(self, prefix: str, rest: str, max_new_tokens: int = 40, draft: str | None = None) -> str:
        """Greedy decoding, one token a step (`draft` is not used here)."""
        torch = self.torch
        with self._lock, torch.inference_mode():
            if prefix not in self._prefix_cache:
                hidden, past = self._run(self._ids(prefix, True), None)
                self._prefix_cache[prefix] = (past, self._ids(prefix, True)[0].tolist())
            past, prefix_ids = self._prefix_cache[prefix]
            past = copy.deepcopy(past)
            rest_ids = self._ids(rest, False)
            allowed = sorted(self._domain_ids | set(prefix_ids) | set(rest_ids[0].tolist()) | self._end_ids)
            allowed_t = torch.tensor(allowed, device=self.device)
            head = self.model.get_output_embeddings().weight.index_select(0, allowed_t)
            hidden, past = self._run(rest_ids, past)
            produced: list[int] = []
            for _ in range(max_new_tokens):
                token = int(allowed_t[torch.argmax(hidden @ head.T, dim=-1)[0]])
                if token in self._end_ids:
                    break
                produced.append(token)
                text = self.tokenizer.decode(produced)
                if "\n" in text or "<end_of_turn>" in text:
                    break
                hidden, past = self._run(torch.tensor([[token]], device=self.device), past)
        text = self.tokenizer.decode(produced, skip_special_tokens=True)
        for marker in END_MARKERS:
            text = text.split(marker)[0]
        return text.strip()


def _env_threads() -> int:
    value = os.environ.get("SKYRACK_BLAS_THREADS", "1")
    if not value.isdigit() or int(value) < 1:
        raise UserError(f"SKYRACK_BLAS_THREADS must be a positive whole number, not {value!r}")
    return int(value)


class MappedGemmaBackend:
    """Gemma 3 in numpy over its cached float32 safetensors, mapped (skyrack.assistant.npgemma);
    no torch, no transformers: the whole load takes a fraction of a second.

    Greedy decoding with a draft (prompt-lookup speculation): the caller's expected answer (the
    composed one) is tokenized and run through the model in one pass with the prompt; the model's
    own greedy choice at every position is compared with the draft, the agreeing run is kept and
    decoding goes on from the model's first different token. The output is the model's greedy
    answer whatever the draft says; a good draft turns ~20 sequential steps into one or two passes.
    """

    mode = "model"
    PREFIXES = 4  # key/value caches of worked-example prefixes kept (~15 MB each)

    def __init__(
        self,
        model_dir: str | Path,
        *,
        adapter: str | Path | None = None,
        name: str | None = None,
        threads: int | None = None,
    ):
        start = time.perf_counter()
        from threadpoolctl import ThreadpoolController

        from skyrack.assistant.bpe import BPETokenizer
        from skyrack.assistant.npgemma import Gemma3Text

        # One BLAS thread by default: a decode step is bound by memory bandwidth, and OpenBLAS's
        # spinning threads on a 2-core machine that is doing anything else cost 2-5x (measured).
        # $SKYRACK_BLAS_THREADS gives more where cores are free.
        self.threads = threads or _env_threads()
        self._blas = ThreadpoolController()
        imported = time.perf_counter()
        if adapter:
            verify_adapter(adapter)
        with self._blas.limit(limits=self.threads, user_api="blas"):
            self.model = Gemma3Text(model_dir, adapter)
        loaded = time.perf_counter()
        self.tokenizer = BPETokenizer(model_dir)
        self.name = name or str(model_dir)
        self.device = "cpu"
        self.adapter = str(adapter) if adapter else None
        self._lock = threading.Lock()  # one decode at a time (the ground server may call from threads)
        self._prefixes: dict[str, tuple] = {}
        encode = self.tokenizer.encode
        self._domain_ids = domain_token_ids(lambda s: encode(s, False))
        self._end_ids = {
            i for m in ("<end_of_turn>", "<eos>") if (i := self.tokenizer.token_to_id(m)) is not None
        }
        self.load_s = time.perf_counter() - start
        self.load_breakdown = {
            "imports_s": round(imported - start, 3),
            "weights_s": round(self.model.weights_s, 3),
            "adapter_s": round(loaded - imported - self.model.weights_s, 3),  # checksum, read, merge
            "tokenizer_s": round(time.perf_counter() - loaded, 3),
        }

    def describe(self) -> dict:
        return {
            "backend": self.name,
            "mode": self.mode,
            "runtime": "numpy, mapped float32 safetensors",
            "device": self.device,
            "adapter": self.adapter,
            "load_s": round(self.load_s, 3),
            "load": self.load_breakdown,
            "blas_threads": self.threads,
        }

    def _prefix(self, prefix: str):
        if prefix not in self._prefixes:
            ids = self.tokenizer.encode(prefix, True)
            cache = self.model.new_cache()
            self.model.forward(ids, cache)
            while len(self._prefixes) >= self.PREFIXES:
                self._prefixes.pop(next(iter(self._prefixes)))
            self._prefixes[prefix] = (cache, ids)
        cache, ids = self._prefixes[prefix]
        cache.length = len(ids)  # what a previous answer appended is overwritten
        return cache, ids

    def generate(self, prefix: str, rest: str, max_new_tokens: int = 40, draft: str | None = None) -> str:
        with self._lock, self._blas.limit(limits=self.threads, user_api="blas"):
            cache, prefix_ids = self._prefix(prefix)
            rest_ids = self.tokenizer.encode(rest, False)
            allowed = np.array(sorted(self._domain_ids | set(prefix_ids) | set(rest_ids) | self._end_ids))
            head = self.model.embed_rows(allowed)  # only these rows of the 262k are paged in
            pending, produced, done = rest_ids, [], False
            self.passes = 0
            while not done and len(produced) < max_new_tokens:
                guess = self._guess(draft, produced)[: max_new_tokens - len(produced) - 1]
                hidden = self.model.forward(pending + guess, cache, keep=len(guess) + 1)
                self.passes += 1
                choice = allowed[np.argmax(hidden @ head.T, axis=-1)].tolist()
                agreed = 0
                while agreed < len(guess) and choice[agreed] == guess[agreed]:
                    agreed += 1
                cache.length -= len(guess) - agreed  # keys and values past the agreement are dropped
                for token in guess[:agreed] + [choice[agreed]]:
                    if token in self._end_ids:
                        done = True
                        break
                    produced.append(token)
                    text = self.tokenizer.decode(produced)
                    if "\n" in text or "<end_of_turn>" in text or len(produced) >= max_new_tokens:
                        done = True
                        break
                pending = [choice[agreed]]
        text = self.tokenizer.decode(produced, skip_special_tokens=True)
        for marker in END_MARKERS:
            text = text.split(marker)[0]
        return text.strip()

    def _guess(self, draft: str | None, produced: list[int]) -> list[int]:
        """The draft's tokens after what is produced, while the answer still follows the draft."""
        if not draft:
            return []
        said = self.tokenizer.decode(produced)
        if not draft.startswith(said):
            return []
        return self.tokenizer.encode(draft[len(said) :], False)


ADAPTER_WEIGHTS = "adapter_model.safetensors"


def verify_adapter(adapter: str | Path) -> None:
    if not Path(adapter, "adapter_config.json").exists():
        raise UserError(f"{adapter} is not a LoRA adapter directory (no adapter_config.json)")
    # An adapter from `skyrack assistant finetune` records its weights' checksum: verify it on read.
    summary = Path(adapter, "skyrack-finetune.json")
    if summary.exists() and Path(adapter, ADAPTER_WEIGHTS).exists():
        try:
            expected = json.loads(summary.read_text()).get("sha256")
        except ValueError:
            raise UserError(f"{summary} is not valid JSON") from None
        if expected and sha256_file(Path(adapter, ADAPTER_WEIGHTS)) != expected:
            raise UserError(
                f"{Path(adapter, ADAPTER_WEIGHTS)} does not match its recorded sha256; the adapter is corrupt"
            )


def load_adapter(model, adapter: str | Path):
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise UserError(f"--adapter needs peft: {exc}") from None
    verify_adapter(adapter)
    return PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()


class HttpBackend:
    """Any OpenAI-compatible completions endpoint (llama.cpp server, Ollama, vLLM)."""

    mode = "model"

    def __init__(self, url: str, *, model: str | None = None, timeout_s: float = 30.0):
        self.url = url.rstrip("/")
        if not self.url.endswith("/completions"):
            self.url += "/completions" if self.url.endswith("/v1") else "/v1/completions"
        self.name, self.model, self.timeout_s, self.load_s = url, model, timeout_s, 0.0

    def describe(self) -> dict:
        return {"backend": self.name, "mode": self.mode, "endpoint": self.url}

    def generate(self, prefix: str, rest: str, max_new_tokens: int = 40, draft: str | None = None) -> str:
        body = {
            "prompt": prefix + rest,
            "max_tokens": max_new_tokens,
            "temperature": 0,
            "stop": list(END_MARKERS),
        }
        if self.model:
            body["model"] = self.model
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                payload = json.loads(response.read().decode())
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise UserError(f"model endpoint {self.url} failed: {exc}") from None
        try:
            choice = payload["choices"][0]
            text = choice.get("text") if "text" in choice else choice["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise UserError(f"model endpoint {self.url} gave no completion") from None
        for marker in END_MARKERS:
            text = text.split(marker)[0]
        return text.strip()


# The LoRA adapter skyrack trained for the registry's Gemma 3 270M (`skyrack-finetune.json` in it
# has the command and the training figures); the registry Gemma uses it unless told `--adapter none`.
SHIPPED_ADAPTER = Path(__file__).resolve().parent / "adapter"


def _cpu_only(device: str | None) -> bool:
    """Whether Gemma runs on the CPU: asked for, or nothing asked and no NVIDIA driver loaded
    (looked up without importing torch, whose import alone costs a second)."""
    if device:
        return device == "cpu"
    return not Path("/proc/driver/nvidia/version").exists()


def open_backend(spec: str, adapter: str | None = None, device: str | None = None, progress=None):
    """'composed', 'gemma' (the registry's Gemma 3 270M: in numpy on a CPU, with transformers on a
    GPU), 'gemma-transformers' (always with transformers, the reference the tests and the benchmark
    compare with), 'auto' (gemma, else composed), a model directory or an http(s) URL.
    `adapter`: a LoRA adapter directory, 'none', or None (the shipped adapter for Gemma, none otherwise)."""
    use_shipped = adapter is None
    if adapter == "none":
        adapter = None
    if spec == "composed":
        if adapter:
            raise UserError("--adapter needs a model backend, not composed")
        return ComposedBackend()
    if spec.startswith(("http://", "https://")):
        return HttpBackend(spec)
    if spec in ("gemma", "auto", "gemma-transformers"):
        if use_shipped and (SHIPPED_ADAPTER / "adapter_config.json").exists():
            adapter = str(SHIPPED_ADAPTER)
        try:
            from skyrack.sources.gemma import converted_dir

            folder = converted_dir(progress)
            if spec == "gemma-transformers" or not _cpu_only(device):
                return TransformersBackend(folder, adapter=adapter, device=device, name="gemma3-270m")
            return MappedGemmaBackend(folder, adapter=adapter, name="gemma3-270m")
        except (UserError, ImportError) as exc:
            if spec != "auto":
                raise UserError(f"cannot load Gemma: {exc}") from None
            if progress:
                progress(f"no model could load ({exc}); answering in composed mode")
            return ComposedBackend()
    path = Path(spec)
    if not path.is_dir():
        raise UserError(
            f"unknown backend {spec!r}: use auto, gemma, composed, a model directory or an http URL"
        )
    return TransformersBackend(path, adapter=adapter, device=device)
