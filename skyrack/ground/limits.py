"""Limits against mistakes and abuse: request body size and per-client request rates."""

from __future__ import annotations

import json
import threading
import time

MAX_BODY_BYTES = 16 * 1024
JOB_BODY_BYTES = 64 * 1024  # POST /api/jobs: a job's payload (skyrack.jobs.spec, 40 KiB) as base64


class TokenBucket:
    """`rate` requests per second on average, bursts of up to `burst`, per client key."""

    def __init__(self, rate: float, burst: float):
        self.rate = rate
        self.burst = burst
        self._state: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str, cost: float = 1.0) -> float:
        """0 if allowed, else the seconds to wait before trying again."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._state.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= cost:
                self._state[key] = (tokens - cost, now)
                return 0.0
            self._state[key] = (tokens, now)
            if len(self._state) > 10_000:  # forget idle clients rather than grow without bound
                self._state = {k: v for k, v in self._state.items() if now - v[1] < 60}
            return (cost - tokens) / self.rate


async def _send_json(send, status: int, payload: dict, headers: list | None = None) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware: refuse bodies over `max_bytes` (or the path's own limit in `paths`),
    whether declared or streamed (413)."""

    def __init__(self, app, max_bytes: int = MAX_BODY_BYTES, paths: dict[str, int] | None = None):
        self.app = app
        self.max_bytes = max_bytes
        self.paths = paths or {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        limit = self.paths.get(scope["path"], self.max_bytes)
        too_big = {"error": "payload_too_large", "detail": f"request body over {limit} bytes"}
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return await _send_json(send, 413, too_big)
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        # Bodies here are small: read the whole body first (a chunked one too), then hand it on.
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > limit:
                return await _send_json(send, 413, too_big)
            if not message.get("more_body"):
                break
        delivered = False

        async def replay():
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


class RateLimit:
    """ASGI middleware: a token bucket per client address; streams and static files count once
    per request like everything else. Over the limit: 429 with Retry-After."""

    def __init__(self, app, bucket: TokenBucket, costs: dict[str, float] | None = None):
        self.app = app
        self.bucket = bucket
        self.costs = costs or {}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        client = (scope.get("client") or ("?", 0))[0]
        cost = self.costs.get(scope["path"], 1.0)
        wait = self.bucket.take(client, cost)
        if wait > 0:
            return await _send_json(
                send,
                429,
                {"error": "rate_limited", "detail": f"too many requests; retry in {wait:.1f} s"},
                [(b"retry-after", str(max(1, round(wait + 0.5))).encode())],
            )
        return await self.app(scope, receive, send)
