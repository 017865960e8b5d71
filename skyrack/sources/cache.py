"""The user cache directory that every data source shares."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir(*parts: str) -> Path:
    """`$SKYRACK_CACHE`, else `$XDG_CACHE_HOME/skyrack`, else `~/.cache/skyrack`; created on use."""
    root = os.environ.get("SKYRACK_CACHE")
    if not root:
        xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(xdg, "skyrack")
    path = Path(root, *parts)
    path.mkdir(parents=True, exist_ok=True)
    return path
