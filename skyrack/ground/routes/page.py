"""The dashboard: its page and the flat folder of its static files."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

STATIC = Path(__file__).parent.parent / "static"
STATIC_TYPES = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
_STATIC_NAME = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9]+)+$")

router = APIRouter()


@router.get("/", include_in_schema=False)
def index():
    return FileResponse(STATIC / "index.html", media_type="text/html")


@router.get("/static/{name:path}", include_in_schema=False)
def static(name: str):
    # The folder is flat: a plain file name or nothing (no separators, dots runs, NULs).
    root = STATIC.resolve()
    target = (root / name).resolve() if _STATIC_NAME.match(name) else root
    if not target.is_relative_to(root) or not target.is_file() or target.suffix not in STATIC_TYPES:
        raise HTTPException(404, f"no static file {name!r}")
    return FileResponse(target, media_type=STATIC_TYPES[target.suffix])
