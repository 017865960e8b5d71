"""The ground server: FastAPI over one mission run's archive, served by uvicorn.

    app = create_app(run, token=...)      # see `skyrack serve --help` for the runner

Reads (dictionary, latest values, histories, events, passes, the map, the live stream) need no
token; commands need the bearer token (see `skyrack.ground.auth`). The assistant answers
questions through `POST /api/chat` and has no way to issue a command: it is only given the run
directory to read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from skyrack.errors import UserError
from skyrack.ground import sky
from skyrack.ground.auth import bearer_matches
from skyrack.ground.contact import ground_clock, link_status
from skyrack.ground.feed import ArchiveReaders, Feed
from skyrack.ground.limits import BodyLimit, RateLimit, TokenBucket
from skyrack.ground.stream import Cursor, sse
from skyrack.orbit.stations import resolve_station
from skyrack.telemetry.archive import Archive
from skyrack.telemetry.dictionary import CHANNEL, CHANNELS, COMMANDS, EVENTS, SEVERITIES
from skyrack.telemetry.runs import RunDir, twin_for

STATIC = Path(__file__).parent / "static"
STATIC_TYPES = {
    ".html": "text/html",
    ".css": "text/css",
    ".js": "text/javascript",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
MAX_PAGE = 5000
MAX_RANGE_S = 366 * 86400.0
MAX_TRACK_S = 2 * 86400.0
MAX_PASS_HOURS = 72.0
KEEPALIVE_S = 15.0
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
_STATIC_NAME = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9]+)+$")
_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class CommandRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64, description="a command of the dictionary")
    args: dict[str, float | int | bool | str] = Field(default_factory=dict, max_length=16)
    at: float | None = Field(
        default=None,
        description="time tag (simulated POSIX seconds, PUS-11 style): stored on board, run at that time",
    )


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=2000)
    history: list[tuple[str, str]] = Field(default_factory=list, max_length=20)


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


def _finite(name: str, value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise HTTPException(422, f"{name} must be a finite number of seconds")
    return value


def _cursor(text: str | None) -> Cursor | None:
    if text is None or text == "":
        return None
    try:
        return Cursor.parse(text)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


class Ground:
    """The state one server holds: the run, its feed, readers, the writer, the assistant."""

    def __init__(self, run: RunDir, token: str, replay_speed: float, assistant_backend: str):
        self.run = run
        meta = run.meta()
        self.run_id = meta.run_id or run.run_id
        self.token = token
        # The ground knows what came down: the ground archive over a real link (skyrack.link).
        self.archive_path = run.served_archive
        self.feed = Feed(self.archive_path, live=meta.live, replay_speed=replay_speed)
        self.readers = ArchiveReaders(self.archive_path)
        self.assistant_backend = assistant_backend
        self._assistant = None
        self._twin = None
        # sqlite3 connections stay in their thread: one thread writes, one thread runs the model.
        self.writer_pool = ThreadPoolExecutor(1, thread_name_prefix="ground-writer")
        self.assistant_pool = ThreadPoolExecutor(1, thread_name_prefix="ground-assistant")
        self._writer: Archive | None = None
        self._ground_writer = None
        self.closing = False

    def close_streams(self) -> None:
        """At shutdown: end every stream now rather than after the graceful-shutdown timeout."""
        self.closing = True
        self.feed.wake()

    def archive(self) -> Archive:
        return self.readers.get()

    def writer(self) -> Archive:
        if self._writer is None:
            self._writer = Archive(self.archive_path)
        return self._writer

    def meta(self) -> dict:
        return self.archive().all_meta()

    def over_link(self) -> bool:
        """A real link (ground or relay): the ground knows only what came down."""
        return self.archive_path != self.run.archive

    def ground_writer(self):
        """The ground archive, for what the ground itself records (questions)."""
        if self._ground_writer is None:
            from skyrack.link.ground import GroundArchive

            self._ground_writer = GroundArchive(self.archive_path)
        return self._ground_writer

    def twin(self):
        if self._twin is None:
            self._twin = twin_for(self.run)
        return self._twin

    def now(self) -> float | None:
        """The simulated time the ground sees: its own clock over a real link, else the last
        frame (or the replay horizon)."""
        horizon = self.feed.horizon()
        if horizon is not None:
            return horizon[2] if horizon[0] else None
        clock = ground_clock(self.archive())
        if clock is not None:
            return clock
        last = self.archive().last_frame()
        return last[1] if last else None

    def latest(self) -> dict:
        horizon = self.feed.horizon()
        archive = self.archive()
        if horizon is None:
            rows = archive.latest()
            last = archive.last_frame()
        else:
            frame = archive.frames(horizon[0] - 1, horizon[0], 1)
            rows = {c: (seq, t, v) for seq, t, values in frame for c, v in values.items()}
            last = (frame[0][0], frame[0][1]) if frame else None
        values = {}
        for name, (seq, t, value) in rows.items():
            if name in CHANNEL:
                values[name] = {
                    "value": value,
                    "seq": seq,
                    "t": t,
                    "unit": CHANNEL[name].unit,
                    "state": CHANNEL[name].limit_state(value),
                }
        return {"seq": last[0] if last else None, "t": last[1] if last else None, "values": values}

    def assistant(self):
        if self._assistant is None:
            try:
                from skyrack.assistant.service import Assistant
            except ImportError:
                raise HTTPException(
                    503,
                    "the assistant is not part of this installation (skyrack.assistant.service is missing)",
                ) from None
            self._assistant = Assistant.create(backend=self.assistant_backend)
        return self._assistant


def create_app(
    run: RunDir,
    *,
    token: str,
    replay_speed: float = 60.0,
    assistant_backend: str = "auto",
    rate: float = 50.0,
    burst: float = 200.0,
    allowed_hosts: list[str] | None = None,
) -> FastAPI:
    """`allowed_hosts`: Host headers to accept (None: any). On loopback, naming only loopback
    names stops a web page from reaching the server through DNS rebinding."""
    ground = Ground(run, token, replay_speed, assistant_backend)

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

    # -- the page -----------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.get("/static/{name:path}", include_in_schema=False)
    def static(name: str):
        # The folder is flat: a plain file name or nothing (no separators, dots runs, NULs).
        root = STATIC.resolve()
        target = (root / name).resolve() if _STATIC_NAME.match(name) else root
        if not target.is_relative_to(root) or not target.is_file() or target.suffix not in STATIC_TYPES:
            raise HTTPException(404, f"no static file {name!r}")
        return FileResponse(target, media_type=STATIC_TYPES[target.suffix])

    # -- the dictionary and the present ------------------------------------------------------
    @app.get("/api/channels", tags=["telemetry"], summary="the telemetry dictionary")
    def channels():
        return {
            "channels": [
                {
                    "name": c.name,
                    "unit": c.unit,
                    "type": c.type,
                    "description": c.description,
                    "yellow": c.yellow,
                    "red": c.red,
                }
                for c in CHANNELS
            ],
            "events": [
                {"name": e.name, "severity": e.severity, "description": e.description} for e in EVENTS
            ],
            "commands": [
                {"name": c.name, "description": c.description, "arguments": [a.__dict__ for a in c.arguments]}
                for c in COMMANDS
            ],
            "severities": list(SEVERITIES),
        }

    @app.get("/api/latest", tags=["telemetry"], summary="latest value of every channel, with its limit state")
    def latest():
        return ground.latest()

    @app.get("/api/summary", tags=["mission"], summary="run metadata, latest values, counts, stream cursor")
    def summary():
        archive = ground.archive()
        horizon = ground.feed.horizon()
        frames, events = archive.counts(*(horizon[:2] if horizon is not None else ()))
        summary_file = ground.run.summary
        try:
            report = json.loads(summary_file.read_text()) if summary_file.is_file() else None
        except (OSError, ValueError):
            report = None
        return {
            "run_id": ground.run_id,
            "mode": "live" if ground.feed.live else "replay",
            "replay_speed": None if ground.feed.live else ground.feed.replay_speed,
            "meta": ground.meta(),
            "now": ground.now(),
            "cursor": str(ground.feed.end),
            "counts": {"frames": frames, "events": events, "commands": len(archive.commands())},
            "latest": ground.latest(),
            "summary": report,
            "feed_error": ground.feed.error,
        }

    @app.get("/api/history/{channel}", tags=["telemetry"], summary="one channel over a time range, paged")
    def history(
        channel: Annotated[str, PathParam(max_length=64)],
        since: Annotated[float | None, Query(description="simulated POSIX seconds")] = None,
        until: Annotated[float | None, Query(description="simulated POSIX seconds")] = None,
        after: Annotated[int, Query(ge=0, description="cursor: the `next` of the previous page")] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1000,
    ):
        if channel not in CHANNEL:
            raise HTTPException(404, f"unknown channel {channel!r}; GET /api/channels lists them")
        since, until = _finite("since", since), _finite("until", until)
        if since is not None and until is not None:
            if until < since:
                raise HTTPException(422, "until is before since")
            if until - since > MAX_RANGE_S:
                raise HTTPException(
                    422, f"a range is at most {MAX_RANGE_S / 86400:.0f} days; page through it"
                )
        horizon = ground.feed.horizon()
        if horizon is not None:
            until = horizon[2] if until is None else min(until, horizon[2])
        rows = ground.archive().history(channel, since, until, after_seq=after, limit=limit)
        return {
            "channel": channel,
            "unit": CHANNEL[channel].unit,
            "points": [[seq, t, value] for seq, t, value in rows],
            "next": rows[-1][0] if len(rows) == limit else None,
        }

    @app.get("/api/events", tags=["telemetry"], summary="events at or above a severity, paged")
    def events(
        severity: Annotated[str | None, Query(pattern="^(" + "|".join(SEVERITIES) + ")$")] = None,
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 200,
        last: Annotated[bool, Query(description="the newest `limit` events instead of the oldest")] = False,
    ):
        horizon = ground.feed.horizon()
        rows = ground.archive().events(
            severity, after, limit, max_id=horizon[1] if horizon else None, newest=last
        )
        return {"events": rows, "next": rows[-1]["id"] if len(rows) == limit and not last else None}

    # -- the map ------------------------------------------------------------------------------
    @app.get("/api/map/countries", tags=["map"], summary="simplified country outlines (GeoJSON)")
    def countries():
        return Response(
            sky.countries_geojson(),
            media_type="application/geo+json",
            headers={"cache-control": "public, max-age=86400"},
        )

    @app.get("/api/link", tags=["link"], summary="contact state, the contact timeline, what came down")
    def link():
        replay = ground.feed.horizon() is not None
        return link_status(
            ground.archive(), ground.now() if replay else None, ground.latest()["t"] if replay else None
        )

    @app.get("/api/stations", tags=["map"], summary="built-in ground stations")
    def stations():
        return {"stations": sky.stations()}

    @app.get("/api/track", tags=["map"], summary="ground track around a time, and the subsolar point")
    def track(
        at: Annotated[float | None, Query()] = None,
        before_s: Annotated[float, Query(ge=0, le=MAX_TRACK_S)] = 3000.0,
        after_s: Annotated[float, Query(ge=0, le=MAX_TRACK_S)] = 6000.0,
        step_s: Annotated[float, Query(ge=5, le=3600)] = 30.0,
    ):
        at = _finite("at", at)
        at = at if at is not None else ground.now()
        if at is None:
            raise HTTPException(409, "the mission has no frame yet")
        if (before_s + after_s) / step_s > 20000:
            raise HTTPException(422, "too many points; use a larger step_s")
        lat, lon = sky.subsolar_point(at)
        return {
            "at": at,
            "points": sky.ground_track(ground.twin(), at - before_s, at + after_s, step_s),
            "subsolar": {"lat_deg": lat, "lon_deg": lon},
        }

    @app.get("/api/passes", tags=["map"], summary="passes over a ground station")
    def passes(
        station: Annotated[str, Query(min_length=1, max_length=64, description="built-in id or LAT,LON")],
        hours: Annotated[float, Query(gt=0, le=MAX_PASS_HOURS)] = 24.0,
        min_elevation: Annotated[float, Query(gt=-90, lt=90)] = 10.0,
        at: Annotated[float | None, Query()] = None,
    ):
        try:
            where = resolve_station(station)
        except UserError as exc:
            raise HTTPException(404, str(exc)) from None
        at = _finite("at", at)
        at = at if at is not None else ground.now()
        if at is None:
            raise HTTPException(409, "the mission has no frame yet")
        return {
            "station": sky.station_dict(where),
            "from": at,
            "hours": hours,
            "min_elevation_deg": min_elevation,
            "passes": sky.passes(ground.twin(), where, at, hours, min_elevation),
        }

    # -- the live stream ----------------------------------------------------------------------
    @app.get(
        "/api/stream",
        tags=["telemetry"],
        summary="live frames and events (server-sent events)",
        response_class=StreamingResponse,
    )
    async def stream(
        request: Request,
        after: Annotated[str | None, Query(description="cursor SEQ-EVENTID; 0-0 replays all")] = None,
        last_event_id: Annotated[str | None, Header()] = None,
    ):
        start = _cursor(last_event_id) or _cursor(after)
        if start is None:  # a new client: begin with the latest frame
            end = ground.feed.end
            start = Cursor(max(0, end.seq - 1), end.event_id)
        loop = asyncio.get_running_loop()

        async def items():
            cursor = start
            yield f"retry: 1000\n: cursor {cursor}\n\n"
            while not ground.closing:
                changed = ground.feed.changed()
                batch = ground.feed.buffered_after(cursor)
                if batch is None:  # older than the buffer: catch up from the archive
                    batch = await loop.run_in_executor(
                        None, lambda after=cursor: ground.feed.backlog_after(ground.archive(), after)
                    )
                if batch:
                    cursor = batch[-1].cursor
                    yield "".join(sse(item) for item in batch)
                    continue
                try:
                    await asyncio.wait_for(changed.wait(), KEEPALIVE_S)
                except TimeoutError:
                    yield ": keep-alive\n\n"

        return StreamingResponse(
            items(),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    # -- commands -----------------------------------------------------------------------------
    def require_token(authorization: str | None) -> None:
        if not bearer_matches(authorization, ground.token):
            raise HTTPException(
                401,
                "commands need the ground token: Authorization: Bearer <token>",
                headers={"www-authenticate": "Bearer"},
            )

    @app.post(
        "/api/commands",
        tags=["commands"],
        status_code=202,
        summary="queue a command for the running mission (bearer token; Idempotency-Key honoured)",
    )
    async def post_command(
        body: CommandRequest,
        response: Response,
        authorization: Annotated[str | None, Header()] = None,
        idempotency_key: Annotated[str | None, Header()] = None,
    ):
        require_token(authorization)
        if idempotency_key is not None and not _IDEMPOTENCY_KEY.match(idempotency_key):
            raise HTTPException(422, "Idempotency-Key: 1 to 128 characters of A-Z a-z 0-9 . _ : -")

        def queue():
            archive = ground.writer()
            if archive.meta("status") != "running":
                raise HTTPException(409, "the mission is not running; commands are accepted only in flight")
            known = archive.command_by_key(idempotency_key) if idempotency_key is not None else None
            if known is not None:
                if known["name"] != body.name or known["args"] != body.args:
                    raise HTTPException(409, "this Idempotency-Key was used for a different command")
                return known, False
            now = ground.now()
            now = now if now is not None else time.time()
            at = _finite("at", body.at)
            try:
                return archive.queue_command(
                    body.name, body.args, now=now, idempotency_key=idempotency_key, at_t=at
                ), True
            except UserError as exc:
                raise HTTPException(422, str(exc)) from None

        command, created = await asyncio.get_running_loop().run_in_executor(ground.writer_pool, queue)
        if not created:
            response.status_code = 200
            response.headers["idempotent-replayed"] = "true"
        return command

    @app.get("/api/commands", tags=["commands"], summary="commands, oldest first, paged")
    def list_commands(
        after: Annotated[int, Query(ge=0)] = 0, limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 200
    ):
        rows = ground.archive().commands(after_id=after, limit=limit)
        return {"commands": rows, "next": rows[-1]["id"] if len(rows) == limit else None}

    @app.get("/api/commands/{cid}", tags=["commands"], summary="one command and its state")
    def get_command(cid: Annotated[int, PathParam(ge=1, le=2**62)]):
        try:
            return ground.archive().command(cid)
        except UserError as exc:
            raise HTTPException(404, str(exc)) from None

    # -- the assistant ------------------------------------------------------------------------
    @app.post("/api/chat", tags=["assistant"], summary="ask the satellite; it reads, it never commands")
    async def chat(body: ChatRequest, response: Response):
        if ground.over_link():  # the question goes up the link; the satellite answers on board

            def queue():
                archive = ground.ground_writer()
                if archive.meta("status") != "running":
                    raise HTTPException(409, "the mission is not running; the satellite cannot be asked")
                now = ground.now()
                question = archive.ask(body.question, [list(h) for h in body.history], now)
                return {**question, "expected": link_status(archive, None)}

            response.status_code = 202
            return await asyncio.get_running_loop().run_in_executor(ground.writer_pool, queue)

        def ask():  # in the assistant's own thread: loading a model must not stall the stream
            assistant = ground.assistant()
            return assistant.ask(
                body.question,
                run_dir=ground.run.path,
                at=ground.now(),
                profile=ground.meta().get("profile"),
                history=[tuple(h) for h in body.history],
            )

        return await asyncio.get_running_loop().run_in_executor(ground.assistant_pool, ask)

    @app.get("/api/chat/{qid}", tags=["assistant"], summary="a question sent over the link, and its answer")
    def chat_answer(qid: Annotated[int, PathParam(ge=1, le=2**62)]):
        if not ground.over_link():
            raise HTTPException(404, "questions are answered at once on the ideal link")
        from skyrack.link.ground import GroundArchive

        with GroundArchive(ground.archive_path, readonly=True) as archive:
            found = (
                archive.question(qid)
                if archive.db.execute("SELECT 1 FROM sqlite_master WHERE name='questions'").fetchone()
                else None
            )
            if found is None:
                raise HTTPException(404, f"no question {qid}")
            return {**found, "expected": link_status(archive, None) if found["status"] == "queued" else None}

    # Outermost first: headers on every answer, then the rate limit, then the body limit.
    app.add_middleware(BodyLimit)
    app.add_middleware(
        RateLimit, bucket=TokenBucket(rate, burst), costs={"/api/chat": 10.0, "/api/commands": 2.0}
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
