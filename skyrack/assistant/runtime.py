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
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

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
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
            # Eager attention: for one new token at a time on CPU it is several times cheaper than SDPA here.
            model = AutoModelForCausalLM.from_pretrained(
                str(model_dir), dtype=torch.float32, attn_implementation="eager"
            )
        except (OSError, ValueError) as exc:
            raise UserError(
                f"cannot load a transformers model from {model_dir}: {str(exc).splitlines()[0]}"
            ) from None
        if adapter:
            model = load_adapter(model, adapter)
        self.model = model.to(self.device).eval()
        self.adapter = str(adapter) if adapter else None
        self._prefix_cache: dict[str, tuple] = {}
        self._lock = threading.Lock()  # one decode at a time (the ground server may call from threads)
        self._domain_ids = set(self.tokenizer(DOMAIN_WORDS, add_special_tokens=False).input_ids)
        # Each word alone and after a space: "." after "minutes" is a bare token, not " .".
        self._domain_ids |= {
            i
            for w in DOMAIN_WORDS.split()
            for spaced in (w, " " + w)
            for i in self.tokenizer(spaced, add_special_tokens=False).input_ids
        }
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
            "device": self.device,
            "adapter": self.adapter,
            "load_s": round(self.load_s, 2),
        }

    def _ids(self, text: str, special: bool):
        return self.tokenizer(text, add_special_tokens=special, return_tensors="pt").input_ids.to(self.device)

    def _run(self, ids, past):
        out = self.model.model(input_ids=ids, past_key_values=past, use_cache=True)
        return out.last_hidden_state[:, -1], out.past_key_values

    def generate(self, prefix: str, rest: str, max_new_tokens: int = 40) -> str:
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


ADAPTER_WEIGHTS = "adapter_model.safetensors"


def load_adapter(model, adapter: str | Path):
    try:
        from peft import PeftModel
    except ImportError as exc:
        raise UserError(f"--adapter needs peft: {exc}") from None
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

    def generate(self, prefix: str, rest: str, max_new_tokens: int = 40) -> str:
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


def open_backend(spec: str, adapter: str | None = None, device: str | None = None, progress=None):
    """'composed', 'gemma' (the registry's Gemma 3 270M), 'auto', a model directory or an http(s) URL.
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
    if spec in ("gemma", "auto"):
        if use_shipped and (SHIPPED_ADAPTER / "adapter_config.json").exists():
            adapter = str(SHIPPED_ADAPTER)
        try:
            from skyrack.sources.gemma import converted_dir

            return TransformersBackend(
                converted_dir(progress), adapter=adapter, device=device, name="gemma3-270m"
            )
        except (UserError, ImportError) as exc:
            if spec == "gemma":
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
