"""The fast Gemma path: the compiled BPE tokenizer, the numpy decoder over mapped weights with a
merged LoRA adapter and draft-checked greedy decoding, the cached copy's integrity checks, and the
resident assistant. A tiny random Gemma 3 with a Gemma-style tokenizer is built here and every
output is compared with transformers, token for token; (slow) the same on the real Gemma."""

import json
import os
import threading

import numpy as np
import pytest

from skyrack.assistant.bpe import BPETokenizer, compile_tokenizer
from skyrack.assistant.npgemma import Gemma3Text
from skyrack.assistant.runtime import MappedGemmaBackend, TransformersBackend
from skyrack.assistant.service import Assistant
from skyrack.errors import UserError
from skyrack.orbit.timebase import parse_time

T0 = parse_time("2026-07-26T06:00:00Z").timestamp()
CORPUS = [
    "I'm above the Mediterranean Sea, and in 1 minute I'll be above North Africa.",
    "Facts:\nI'm above: Chad, Africa\nnext I'll be above: the Middle East\nnext in: 12 minutes",
    "Question: Where are you? In 20 minutes I'll be above the Indian Ocean. altitude: 505 km up",
    "You are the satellite. Answer in one or two sentences, in the first person, using only the facts.",
]
TEXTS = [
    *CORPUS,
    "<start_of_turn>user\nFacts:\nI'm above: Chad\nQuestion: Where are you?<end_of_turn>\n<start_of_turn>model\n",
    "température 41.5 °C, ünïcödé 日本 🚀\n\n\n tabs\t\tx",
    "  leading  and trailing  ",
    "a <foo> b <b>x</b>",
    "\n" * 7 + "end",
    "",
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A random Gemma3ForCausalLM (2 layers, 32 wide, sliding window 8) with a byte-fallback BPE
    tokenizer of Gemma's design, saved as a transformers directory, the tokenizer compiled."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, processors, trainers

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
    normalizer = normalizers.Replace(" ", "▁")
    trainer_tk = Tokenizer(models.BPE(unk_token="<unk>"))
    trainer_tk.normalizer = normalizer
    trainer_tk.train_from_iterator(CORPUS * 4, trainers.BpeTrainer(vocab_size=160, special_tokens=specials))
    trained = json.loads(trainer_tk.to_str())["model"]
    vocab = dict(trained["vocab"])
    for b in range(256):  # byte fallback tokens, as Gemma's vocabulary has them
        vocab.setdefault(f"<0x{b:02X}>", len(vocab))
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1)) for m in trained["merges"]]
    tk = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tk.normalizer = normalizer
    tk.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    tk.add_special_tokens([AddedToken(s, normalized=False, special=True) for s in specials])
    tk.add_tokens([AddedToken(s, normalized=False) for s in ("\n", "\n\n", "\n\n\n", "\t", "<b>", "</b>")])
    tk.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    tokenizer = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tk, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    config = transformers.Gemma3TextConfig(
        vocab_size=len(tk.get_vocab()),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=16,
        sliding_window=8,
        layer_types=["sliding_attention", "full_attention"],
        max_position_embeddings=4096,
        bos_token_id=vocab["<bos>"],
        eos_token_id=vocab["<eos>"],
        pad_token_id=vocab["<pad>"],
    )
    torch.manual_seed(0)
    model = transformers.Gemma3ForCausalLM(config)
    with torch.no_grad():  # Gemma's norms start at zero (weight 1 + w); make them matter
        for name, p in model.named_parameters():
            if "norm" in name:
                p.normal_(0, 0.3)
    folder = tmp_path_factory.mktemp("tiny-gemma-style")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    compile_tokenizer(folder / "tokenizer.json", folder)
    return folder


@pytest.fixture(scope="module")
def tiny_adapter(tiny, tmp_path_factory):
    """A LoRA adapter on q/k/v/o with non-zero B, so merging it changes the answers."""
    torch = pytest.importorskip("torch")
    peft = pytest.importorskip("peft")
    import transformers

    base = transformers.AutoModelForCausalLM.from_pretrained(str(tiny), dtype=torch.float32)
    lora = peft.get_peft_model(
        base,
        peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]),
    )
    torch.manual_seed(1)
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    folder = tmp_path_factory.mktemp("tiny-adapter")
    lora.save_pretrained(folder)
    return folder


def test_compiled_tokenizer_matches_the_tokenizers_library(tiny):
    from tokenizers import Tokenizer

    ref = Tokenizer.from_file(str(tiny / "tokenizer.json"))
    mine = BPETokenizer(tiny)
    for text in TEXTS:
        for special in (True, False):
            assert mine.encode(text, special) == ref.encode(text, add_special_tokens=special).ids, text
        ids = ref.encode(text).ids
        for skip in (True, False):
            assert mine.decode(ids, skip) == ref.decode(ids, skip_special_tokens=skip), text
    assert mine.token_to_id("<end_of_turn>") == ref.token_to_id("<end_of_turn>")


def test_a_tokenizer_of_another_design_is_refused(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel()
    tk.train_from_iterator(CORPUS, trainers.BpeTrainer(vocab_size=300))
    tk.save(str(tmp_path / "tokenizer.json"))
    with pytest.raises(UserError, match="not a Gemma-style BPE tokenizer"):
        compile_tokenizer(tmp_path / "tokenizer.json", tmp_path)


@pytest.mark.parametrize("adapted", [False, True])
def test_numpy_decoder_matches_transformers(tiny, tiny_adapter, adapted):
    """Hidden states within float32 rounding of transformers' eager Gemma3 (past the sliding
    window, with a key/value cache, with the adapter merged as peft merges it)."""
    import torch
    import transformers

    from skyrack.assistant.runtime import load_adapter

    adapter = tiny_adapter if adapted else None
    model = transformers.AutoModelForCausalLM.from_pretrained(
        str(tiny), dtype=torch.float32, attn_implementation="eager"
    )
    if adapted:
        model = load_adapter(model, adapter)
    mine = Gemma3Text(tiny, adapter)
    ids = BPETokenizer(tiny).encode(
        "In 20 minutes I'll be above Chad, then the Indian Ocean, 505 km up.", True
    )
    assert len(ids) > 2 * 8  # longer than the sliding window
    with torch.inference_mode():
        want = model.model(input_ids=torch.tensor([ids])).last_hidden_state[0].numpy()
    cache = mine.new_cache()
    got = np.concatenate(
        [mine.forward(ids[:20], cache, keep=20), mine.forward(ids[20:], cache, keep=len(ids) - 20)]
    )
    assert cache.length == len(ids)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("adapted", [False, True])
def test_mapped_backend_decodes_the_same_tokens_as_transformers(tiny, tiny_adapter, adapted):
    adapter = tiny_adapter if adapted else None
    ref = TransformersBackend(tiny, adapter=adapter, device="cpu")
    fast = MappedGemmaBackend(tiny, adapter=adapter)
    prefix = "<start_of_turn>user\nYou are the satellite.<end_of_turn>\n"
    for question in CORPUS:
        rest = f"<start_of_turn>user\nQuestion: {question}<end_of_turn>\n<start_of_turn>model\n"
        want = ref.generate(prefix, rest, max_new_tokens=12)
        # No draft, a wrong draft, the right answer as draft: the same greedy answer each time.
        for draft in (None, "Totally unrelated words.", want, want[: len(want) // 2] + " and more"):
            assert fast.generate(prefix, rest, max_new_tokens=12, draft=draft) == want, draft
        assert fast.generate("", rest, max_new_tokens=12) == ref.generate("", rest, max_new_tokens=12)
    fast.generate(prefix, rest, max_new_tokens=12, draft=want + "<end_of_turn>")
    assert fast.passes <= 2  # the right draft is checked in one pass (plus one if it stopped short)
    info = fast.describe()
    assert set(info["load"]) == {"imports_s", "weights_s", "adapter_s", "tokenizer_s"}


def test_damaged_weights_file_is_one_clear_error(tiny, tmp_path):
    import shutil

    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny / name, tmp_path / name)
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="does not fit the file"):
        Gemma3Text(tmp_path)


def _fake_converted(folder):
    """A converted-copy directory with the files the checks read, and its record."""
    from skyrack.sources import gemma

    folder.mkdir(parents=True)
    for name in (*gemma.CHECKED, *gemma.COMPILED):
        (folder / name).write_bytes(os.urandom(4096))
    files = {name: gemma._file_record(folder / name) for name in (*gemma.CHECKED, *gemma.COMPILED)}
    (folder / gemma.RECORD).write_text(json.dumps({"gguf_sha256": "x", "files": files}))
    return folder


def test_cached_copy_checks_find_every_damage(tmp_path):
    from skyrack.sources.gemma import RECORD, check_converted

    assert check_converted(tmp_path / "absent") == "is missing"
    folder = _fake_converted(tmp_path / "ok")
    assert check_converted(folder) is None
    weights = folder / "model.safetensors"
    # Touched but intact: hashed once, then trusted again with the new time recorded.
    os.utime(weights, ns=(1, 1))
    assert check_converted(folder) is None
    assert json.loads((folder / RECORD).read_text())["files"]["model.safetensors"]["mtime_ns"] == 1
    data = bytearray(weights.read_bytes())
    data[100] ^= 0x40
    weights.write_bytes(bytes(data))
    assert "model.safetensors that does not match its recorded sha256" in check_converted(folder)
    weights.write_bytes(bytes(data[:1000]))
    assert "model.safetensors of 1000 bytes" in check_converted(folder)
    weights.unlink()
    assert check_converted(folder) == "lacks model.safetensors"
    (folder / RECORD).write_text(json.dumps({"gguf_sha256": "x"}))
    assert "older skyrack" in check_converted(folder)
    (folder / RECORD).write_text("{")
    assert "no readable" in check_converted(folder)


def test_a_damaged_copy_is_converted_again_with_one_line(tmp_path, monkeypatch):
    """converted_dir() rebuilds a copy that fails its checks and says so in one line (the
    conversion itself is replaced by a recording stub here; the slow test below runs it)."""
    from skyrack.sources import gemma

    monkeypatch.setenv("SKYRACK_CACHE", str(tmp_path))
    folder = _fake_converted(tmp_path / "models" / gemma.CONVERTED)
    (folder / "model.safetensors").write_bytes(b"short")
    rebuilt = []
    monkeypatch.setattr(gemma, "gguf_path", lambda progress=None: rebuilt.append("gguf") or 1 / 0)
    lines = []
    with pytest.raises(ZeroDivisionError):
        gemma.converted_dir(lines.append)
    assert rebuilt == ["gguf"]
    assert lines == [
        f"the cached Gemma copy in {folder} has model.safetensors of 5 bytes, recorded 4096; "
        "converting it again from the GGUF"
    ]


def test_resident_service_and_in_process_give_the_same_answer(tmp_path, monkeypatch, capsys):
    from skyrack.assistant.resident import ResidentAssistant
    from skyrack.cli import main

    monkeypatch.setenv("SKYRACK_CACHE", str(tmp_path))
    args = ["ask", "Where are you?", "--at", "2026-07-26T06:00:00Z", "--backend", "composed", "--json"]
    key = {"backend": "composed", "adapter": None, "device": None}
    assistant = Assistant.create("composed")
    assistant.ask("Where are you?", at=T0)  # warm: the first answer reads the map and the elements
    service = ResidentAssistant(assistant, key)
    thread = service.start_thread()
    try:
        assert main(args) == 0
        via = json.loads(capsys.readouterr().out)
        assert main([*args, "--no-service"]) == 0
        here = json.loads(capsys.readouterr().out)
        assert main([*args[:-1]]) == 0  # the text form says where the answer came from
        assert f"answered by the resident assistant at {service.url}" in capsys.readouterr().err
        # Asked for another device than the service runs: answered here.
        assert main([*args, "--device", "cpu"]) == 0
        assert json.loads(capsys.readouterr().out)["service"] is None
    finally:
        service.close()
        thread.join(5)
    assert via["service"] == service.url and here["service"] is None
    assert via["answer"] == here["answer"] and via["facts"] == here["facts"]
    assert not (tmp_path / "assistant-service.json").exists()  # closing removes the record
    assert main(args) == 0 and json.loads(capsys.readouterr().out)["service"] is None


def test_resident_service_wants_its_token(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    from skyrack.assistant.resident import ResidentAssistant

    service = ResidentAssistant(Assistant.create("composed"), {}, record=tmp_path / "r.json")
    thread = service.start_thread()
    try:
        request = urllib.request.Request(service.url + "/ask", data=b'{"question": "Where are you?"}')
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request, timeout=10)
        assert caught.value.code == 401
        assert (tmp_path / "r.json").stat().st_mode & 0o077 == 0
    finally:
        service.close()
        thread.join(5)


def _real_gemma_cached() -> bool:
    from skyrack.sources.cache import cache_dir
    from skyrack.sources.gemma import CONVERTED, check_converted

    return check_converted(cache_dir("models") / CONVERTED) is None


@pytest.mark.slow
def test_real_gemma_fast_path_answers_as_transformers_on_the_first_40_items():
    """The numpy path and the transformers path give the same answers on the eval set's first 40
    items (greedy: the same tokens), and every one verifies as the transformers one does."""
    if not _real_gemma_cached():
        pytest.skip("Gemma not cached; run `skyrack ask --backend gemma` once to fetch it")
    from skyrack.assistant.evaluate import evaluate, generate_set

    items = generate_set(240)[:40]
    fast = evaluate(Assistant.create("gemma"), items)["rows"]
    ref = evaluate(Assistant.create("gemma-transformers"), items)["rows"]
    assert [r["answer"] for r in fast] == [r["answer"] for r in ref]
    assert [r["mode"] for r in fast] == [r["mode"] for r in ref]
    assert all(r["correct"] for r in fast)


@pytest.mark.slow
def test_real_gemma_through_the_resident_service_as_in_process(tmp_path, monkeypatch):
    if not _real_gemma_cached():
        pytest.skip("Gemma not cached; run `skyrack ask --backend gemma` once to fetch it")
    from skyrack.assistant.resident import ResidentAssistant, ask_resident

    assistant = Assistant.create("gemma")
    key = {"backend": "auto", "adapter": None, "device": None}
    service = ResidentAssistant(assistant, key, record=tmp_path / "r.json")
    thread = threading.Thread(target=service.serve_forever, daemon=True)
    thread.start()
    try:
        result, info, via = ask_resident("How high are you?", key, record=tmp_path / "r.json", at=T0)
    finally:
        service.close()
    here = Assistant.create("gemma").ask("How high are you?", at=T0)
    assert via == service.url and info["runtime"].startswith("numpy")
    assert result["mode"] == "model" and result["answer"] == here["answer"]


@pytest.mark.slow
def test_real_corrupt_copy_is_detected_and_rebuilt(tmp_path, monkeypatch):
    """The real conversion, twice, in a cache of its own: a flipped byte in the converted weights
    is found on the next load, said in one line, and converted again into a copy that answers."""
    import shutil

    from skyrack.sources import gemma
    from skyrack.sources.cache import cache_dir

    real = cache_dir("models")
    if not (real / f"{gemma.GGUF_NAME}.sha256").exists():
        pytest.skip("the Gemma GGUF is not cached; run `skyrack ask --backend gemma` once to fetch it")
    monkeypatch.setenv("SKYRACK_CACHE", str(tmp_path))
    models = cache_dir("models")
    for name in (gemma.GGUF_NAME, f"{gemma.GGUF_NAME}.sha256"):
        shutil.copy(real / name, models / name)
    folder = gemma.converted_dir()
    weights = folder / "model.safetensors"
    with weights.open("r+b") as f:
        f.seek(weights.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x10]))
    lines = []
    assert gemma.converted_dir(lines.append) == folder
    assert lines[0].endswith(
        "has model.safetensors that does not match its recorded sha256; converting it again from the GGUF"
    )
    assert gemma.check_converted(folder) is None
    assert Assistant(MappedGemmaBackend(folder)).ask("How high are you?", at=T0)["verified"]
