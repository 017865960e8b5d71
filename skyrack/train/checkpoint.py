"""Checkpoints that are either whole and verified, or refused.

Layout of a run directory:

    <run>/ckpt-000500/   model.pt  optimizer.pt  trainer.pt  config.json  tokenizer.json
                         manifest.json   (sha256 and size of every other file; written last)
    <run>/ckpt-001000/   ...

A checkpoint is written into a hidden temporary directory (each file via temp file, fsync,
rename), its manifest last, and then the directory is renamed to its final name and the run
directory fsynced: a crash at any moment leaves either the complete checkpoint or nothing under
a `ckpt-*` name. Loading reads every file, checks it against the manifest before unpickling
anything, and refuses a mismatch; with `fallback=True` it goes back to the newest checkpoint that
verifies.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from skyrack.errors import UserError
from skyrack.storage import atomic_write_bytes, fsync_dir

FORMAT = "skyrack-checkpoint/1"
MANIFEST = "manifest.json"
PREFIX = "ckpt-"


class CheckpointError(UserError):
    """A checkpoint that is missing, incomplete or corrupt."""


def torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def write_checkpoint(run_dir: str | os.PathLike, step: int, files: dict[str, bytes], keep: int = 3) -> Path:
    """Write `files` (name -> bytes) as checkpoint `step` of `run_dir`; keep the newest `keep`."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    final = run_dir / f"{PREFIX}{step:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=run_dir))
    try:
        manifest = {"format": FORMAT, "step": step, "files": {}}
        for name, data in files.items():
            atomic_write_bytes(tmp / name, data)
            manifest["files"][name] = {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
        atomic_write_bytes(tmp / MANIFEST, json.dumps(manifest, indent=1).encode())
        if final.exists():  # re-saving the same step (e.g. after a resume): replace it
            shutil.rmtree(final)
        os.replace(tmp, final)
        fsync_dir(run_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for old in list_checkpoints(run_dir)[keep:] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(path: str | os.PathLike) -> list[Path]:
    """Checkpoint directories under run directory `path`, newest first (or [path] itself if
    it is a checkpoint directory)."""
    path = Path(path)
    if (path / MANIFEST).exists() or _step(path) >= 0:
        return [path]
    if not path.is_dir():
        return []
    found = [
        p
        for p in path.iterdir()
        if p.is_dir() and p.name.startswith(PREFIX) and p.name[len(PREFIX) :].isdigit()
    ]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX) :]), reverse=True)


def read_verified(ckpt: Path) -> dict[str, bytes]:
    """Every file of checkpoint `ckpt`, checked against its manifest; `CheckpointError` if not."""
    try:
        manifest = json.loads((ckpt / MANIFEST).read_bytes())
        entries = manifest["files"]
        if manifest.get("format") != FORMAT:
            raise CheckpointError(f"checkpoint {ckpt} has unknown format {manifest.get('format')!r}")
    except CheckpointError:
        raise
    except (OSError, ValueError, KeyError, TypeError):
        raise CheckpointError(f"checkpoint {ckpt} has no readable manifest") from None
    out = {}
    for name, entry in entries.items():
        try:
            data = (ckpt / name).read_bytes()
        except OSError:
            raise CheckpointError(f"checkpoint {ckpt} is incomplete: {name} is missing") from None
        if len(data) != entry["bytes"] or hashlib.sha256(data).hexdigest() != entry["sha256"]:
            raise CheckpointError(f"checkpoint {ckpt} is corrupt: {name} does not match its sha256")
        out[name] = data
    return out


def load_checkpoint(path: str | os.PathLike, fallback: bool = False) -> tuple[Path, dict[str, bytes]]:
    """(checkpoint dir, verified files) of the newest checkpoint at `path` (a run directory or
    one checkpoint directory). A corrupt newest one is refused, or skipped when `fallback`."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no such checkpoint directory: {path}")
    candidates = list_checkpoints(path)
    if not candidates:
        raise CheckpointError(f"no checkpoint found in {path}")
    if fallback and candidates == [path]:  # one checkpoint named: fall back to older siblings
        candidates += [c for c in list_checkpoints(path.parent) if _step(c) < _step(path)]
    errors = []
    for ckpt in candidates:
        try:
            return ckpt, read_verified(ckpt)
        except CheckpointError as exc:
            if not fallback:
                raise CheckpointError(
                    f"{exc} (pass --fallback to use the previous good checkpoint)"
                ) from None
            errors.append(str(exc))
    raise CheckpointError(f"no good checkpoint in {path}: {errors[0]}")


def _step(ckpt: Path) -> int:
    name = ckpt.name
    return int(name[len(PREFIX) :]) if name.startswith(PREFIX) and name[len(PREFIX) :].isdigit() else -1


def load_torch(data: bytes):
    """Unpickle verified checkpoint bytes (tensors, numbers, strings, containers only)."""
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
