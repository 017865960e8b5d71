"""The command token: generated on first start, kept in a file only its owner can read.

Reads need no token; every command does (`Authorization: Bearer <token>`). The comparison is
constant-time so the response time says nothing about how much of a guess was right.
"""

from __future__ import annotations

import hmac
import os
import secrets
import stat
from pathlib import Path

from skyrack.errors import UserError

TOKEN_FILE_NAME = ".ground-token"


def load_or_create_token(path: Path) -> tuple[str, bool]:
    """(token, created). A new token is written with mode 0600 from the start (O_EXCL, no window
    where it is readable by others); an existing file readable by group or others is refused."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_token(path), False
    except OSError as exc:
        raise UserError(f"cannot create the command token file {path}: {exc.strerror}") from None
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w") as handle:
        handle.write(token + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    return token, True


def _read_token(path: Path) -> str:
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise UserError(
                f"command token file {path} is accessible by other users; "
                f"run `chmod 600 {path}` or delete it to make a new token"
            )
        token = path.read_text().strip()
    except OSError as exc:
        raise UserError(f"cannot read the command token file {path}: {exc.strerror}") from None
    if len(token) < 16:
        raise UserError(f"command token file {path} holds no usable token; delete it to make a new one")
    return token


def bearer_matches(header: str | None, token: str) -> bool:
    """True if an Authorization header carries exactly `token` (constant-time)."""
    if not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())
