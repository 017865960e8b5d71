"""A resident assistant on loopback: the model loaded once, `skyrack ask` answered in its time.

`skyrack assistant serve` loads an assistant and answers POST /ask on 127.0.0.1 (a port of its
choosing unless told) until stopped. It writes where it listens, its pid, the backend it runs
and a random token to `<cache>/assistant-service.json` (owner-only); `skyrack ask` reads that
file, sends its question with the token when the service runs the backend it was asked for, and
loads the model in-process when no service answers. The service only reads telemetry, like the
assistant it holds; the token keeps other local users from making it read their paths.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from skyrack.errors import UserError
from skyrack.sources.cache import cache_dir
from skyrack.storage import atomic_write_text

RECORD = "assistant-service.json"
MAX_BODY = 64 * 1024


def record_path() -> Path:
    return cache_dir() / RECORD


def _request_kwargs(body: dict) -> dict:
    history = body.get("history") or []
    return {
        "run_dir": Path(body["run_dir"]) if body.get("run_dir") else None,
        "at": float(body["at"]) if body.get("at") is not None else None,
        "profile": body.get("profile"),
        "tle": body.get("tle"),
        "history": [(str(q), str(a)) for q, a in history],
    }


class _Handler(BaseHTTPRequestHandler):
    server_version = "skyrack-assistant"

    def log_message(self, *args) -> None:  # quiet: the terminal belongs to the person who started it
        pass

    def _send(self, status: int, payload: dict) -> None:
        data = json.dumps(payload, default=str, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path != "/health":
            return self._send(404, {"error": "not found"})
        self._send(200, {"ok": True, "backend": self.server.assistant.describe(), "pid": os.getpid()})

    def do_POST(self) -> None:
        if self.path != "/ask":
            return self._send(404, {"error": "not found"})
        if not secrets.compare_digest(self.headers.get("Authorization", ""), f"Bearer {self.server.token}"):
            return self._send(401, {"error": "a valid bearer token is required"})
        length = int(self.headers.get("Content-Length") or 0)
        if not 0 < length <= MAX_BODY:
            return self._send(413, {"error": f"the body must be 1..{MAX_BODY} bytes"})
        try:
            body = json.loads(self.rfile.read(length))
            question = str(body["question"])
            kwargs = _request_kwargs(body)
        except (ValueError, KeyError, TypeError) as exc:
            return self._send(400, {"error": f"bad request: {exc}"})
        try:
            result = self.server.assistant.ask(question, **kwargs)
        except UserError as exc:
            return self._send(422, {"error": str(exc)})
        self._send(200, {"result": result, "backend_info": self.server.assistant.describe()})


class ResidentAssistant:
    """The service: `start()` binds and records it, `serve_forever()` answers, `close()` removes it."""

    def __init__(self, assistant, key: dict, port: int = 0, record: Path | None = None):
        self.server = ThreadingHTTPServer(("127.0.0.1", port), _Handler)
        self.server.daemon_threads = True
        self.server.assistant = assistant
        self.server.token = secrets.token_urlsafe(24)
        self.record = record or record_path()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        info = {"url": self.url, "pid": os.getpid(), "token": self.server.token, "key": key}
        old = os.umask(0o077)  # the token file is the owner's alone
        try:
            atomic_write_text(self.record, json.dumps(info))
        finally:
            os.umask(old)

    def serve_forever(self) -> None:
        self.server.serve_forever()

    def start_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        try:
            if json.loads(self.record.read_text()).get("url") == self.url:
                self.record.unlink()
        except (OSError, ValueError):
            pass


def ask_resident(question: str, key: dict, timeout_s: float = 30.0, record: Path | None = None, **kwargs):
    """(result, backend_info, url) from a running service for this backend `key`, else None."""
    try:
        info = json.loads((record or record_path()).read_text())
        if info.get("key") != key:
            return None
        os.kill(int(info["pid"]), 0)  # a service that died without cleaning up: not there
    except (OSError, ValueError, KeyError, TypeError):
        return None
    body = {"question": question, **kwargs}
    if body.get("run_dir") is not None:
        body["run_dir"] = str(Path(body["run_dir"]).resolve())
    request = urllib.request.Request(
        info["url"] + "/ask",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {info['token']}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            payload = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 422:  # the assistant's own one-line refusal, as in-process
            raise UserError(json.loads(exc.read()).get("error", "the assistant refused")) from None
        return None
    except (OSError, ValueError):
        return None
    return payload["result"], payload["backend_info"], info["url"]
