"""Customers of the job service and their bearer tokens.

Each customer has its own token, shown once when the customer is added (`skyrack jobs customer
add NAME`) and kept only as its SHA-256, in `<runs>/.ground-customers` beside the operator's
`.ground-token`: a JSON file of mode 0600, written atomically, refused when others may read it
(as the operator's token is, `skyrack.ground.auth`). A token names at most one customer; the
lookup compares the token's hash with every customer's in constant time, all of them, so the
answer's timing says nothing about which customer, or how much of a guess, was right.

A customer's token reaches the job routes only (`/api/jobs`, its own jobs); the operator's token
keeps every command and sees every job.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import time
from pathlib import Path

from skyrack.errors import UserError

CUSTOMERS_FILE_NAME = ".ground-customers"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
RESERVED = ("operator",)  # the operator's jobs are recorded under this name


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def read_customers(path: Path) -> dict[str, dict]:
    """{name: {"sha256", "added_t"}}; an absent file is no customers."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise UserError(f"cannot read the customers file {path}: {exc.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UserError(
            f"customers file {path} is accessible by other users; run `chmod 600 {path}` or delete it"
        )
    try:
        data = json.loads(path.read_text())
        customers = data["customers"]
        if not isinstance(customers, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("sha256"), str) for v in customers.values()
        ):
            raise ValueError("not a table of customers")
    except OSError as exc:
        raise UserError(f"cannot read the customers file {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"customers file {path} is damaged ({exc}); restore it or delete it") from None
    return customers


@contextlib.contextmanager
def _locked(path: Path):
    """One change at a time (two `customer add` at once must both land)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _write(path: Path, customers: dict) -> None:
    from skyrack.storage import atomic_write_bytes

    atomic_write_bytes(path, json.dumps({"customers": customers}, indent=1).encode(), mode=0o600)


def add_customer(path: Path, name: str) -> str:
    """Add a customer; returns its new token (the only time it is shown)."""
    if not NAME.match(name or ""):
        raise UserError(
            f"bad customer name {name!r}: 1 to 64 of A-Z a-z 0-9 . _ -, starting with a letter or digit"
        )
    if name.lower() in RESERVED:
        raise UserError(f"{name!r} is reserved for the operator")
    with _locked(path):
        customers = read_customers(path)
        if name in customers:
            raise UserError(f"customer {name!r} exists; remove it first to give it a new token")
        token = secrets.token_urlsafe(32)
        customers[name] = {"sha256": token_hash(token), "added_t": time.time()}
        _write(path, customers)
    return token


def remove_customer(path: Path, name: str) -> None:
    with _locked(path):
        customers = read_customers(path)
        if name not in customers:
            raise UserError(f"no customer {name!r}")
        del customers[name]
        _write(path, customers)


def list_customers(path: Path) -> list[dict]:
    return [{"name": n, "added_t": c.get("added_t")} for n, c in sorted(read_customers(path).items())]


class Customers:
    """The server's view of the file, read again whenever it changes (a customer added or
    removed takes effect at the next request, without a restart)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._seen: tuple | None = None
        self._hashes: list[tuple[str, str]] = []

    def _load(self) -> list[tuple[str, str]]:
        try:
            st = self.path.stat()
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            key = None
        if key != self._seen:
            self._hashes = [(n, c["sha256"]) for n, c in read_customers(self.path).items()]
            self._seen = key
        return self._hashes

    def who(self, token: str) -> str | None:
        """The customer whose token this is, else None."""
        given = token_hash(token).encode()
        found = None
        for name, digest in self._load():
            if hmac.compare_digest(given, digest.encode()) and found is None:
                found = name
        return found
