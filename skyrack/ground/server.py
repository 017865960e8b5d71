"""The ground server: FastAPI over one mission run's archive, served by uvicorn.

    app = create_app(run, token=...)      # see `skyrack serve --help` for the runner

Reads (dictionary, latest values, histories, events, passes, the map, the live stream) need no
token; commands need the bearer token (see `skyrack.ground.auth`). The assistant answers
questions through `POST /api/chat` and has no way to issue a command: it is only given the run
directory to read. The routes live in `skyrack.ground.routes`, one router per resource; this
module puts them together with the error handlers and the middleware.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from skyrack.errors import UserError
from skyrack.ground.customers import CUSTOMERS_FILE_NAME, Customers
from skyrack.ground.limits import JOB_BODY_BYTES, BodyLimit, RateLimit, TokenBucket
from skyrack.ground.routes import chat, commanding, jobs, link, maps, page, telemetry
from skyrack.ground.state import Ground
from skyrack.telemetry.runs import RunDir

SECURITY_HEADERS = [
    # The page may talk to this server only: no CDN, no tiles, no fonts, no third party at all.
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; "
        b"script-src 'self'; connect-src 'self'; font-src 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]


class SecurityHeaders:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, with_headers)


def _error(status: int, error: str, detail: Any) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail}, status_code=status)


def create_app(
    run: RunDir,
    *,
    token: str,
    replay_speed: float = 60.0,
    assistant_backend: str = "auto",
    rate: float = 50.0,
    burst: float = 200.0,
    allowed_hosts: list[str] | None = None,
    customers_file: Path | None = None,
) -> FastAPI:
    """`allowed_hosts`: Host headers to accept (None: any). On loopback, naming only loopback
    names stops a web page from reaching the server through DNS rebinding. `customers_file`:
    the job service's customers and their hashed tokens (default: beside the run's directory,
    where the runs dir keeps `.ground-token`)."""
    ground = Ground(run, token, replay_speed, assistant_backend)
    ground.customers = Customers(customers_file or run.path.parent / CUSTOMERS_FILE_NAME)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        ground.feed.start(asyncio.get_running_loop())
        yield
        ground.feed.stop()
        ground.readers.close()
        ground.writer_pool.shutdown(wait=False, cancel_futures=True)
        ground.assistant_pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="skyrack ground",
        version="1",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        description="Telemetry, events, commands and the live stream of one skyrack mission run.",
    )
    app.state.ground = ground

    # -- errors: always JSON, always {"error", "detail"} -----------------------------------
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc: StarletteHTTPException):
        names = {
            400: "bad_request",
            401: "unauthorized",
            404: "not_found",
            409: "conflict",
            413: "payload_too_large",
            422: "invalid_request",
            429: "rate_limited",
            503: "unavailable",
        }
        response = _error(exc.status_code, names.get(exc.status_code, "error"), exc.detail)
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):
        detail = [{"where": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()]
        return _error(422, "invalid_request", detail)

    @app.exception_handler(UserError)
    async def user_error(request, exc: UserError):
        return _error(400, "bad_request", str(exc))

    for routes in (page, telemetry, maps, commanding, chat, link, jobs):
        app.include_router(routes.router)

    # Outermost first: headers on every answer, then the rate limit, then the body limit.
    app.add_middleware(BodyLimit, paths={"/api/jobs": JOB_BODY_BYTES})
    app.add_middleware(
        RateLimit,
        bucket=TokenBucket(rate, burst),
        costs={"/api/chat": 10.0, "/api/commands": 2.0, "/api/jobs": 2.0},
    )
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts)
    app.add_middleware(SecurityHeaders)
    return app


def bind_socket(host: str, port: int):
    """The listening socket, bound before uvicorn starts so that port 0 gives a known port."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def run_server(app: FastAPI, sock) -> None:
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame):
            app.state.ground.close_streams()
            super().handle_exit(sig, frame)

    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=5, access_log=False)
    Server(config).run(sockets=[sock])
