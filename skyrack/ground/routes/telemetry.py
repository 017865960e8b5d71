"""Telemetry: the dictionary, the latest values, the run's summary, a channel's history, the
events, and the live stream of frames and events (server-sent events)."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse

from skyrack.ground.routes import MAX_ID, MAX_PAGE, GroundDep, finite
from skyrack.ground.stream import Cursor, sse
from skyrack.telemetry.dictionary import CHANNEL, CHANNELS, COMMANDS, EVENTS, SEVERITIES

MAX_RANGE_S = 366 * 86400.0
KEEPALIVE_S = 15.0

router = APIRouter()


def _cursor(text: str | None) -> Cursor | None:
    if text is None or text == "":
        return None
    try:
        return Cursor.parse(text)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("/api/channels", tags=["telemetry"], summary="the telemetry dictionary")
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
        "events": [{"name": e.name, "severity": e.severity, "description": e.description} for e in EVENTS],
        "commands": [
            {"name": c.name, "description": c.description, "arguments": [a.__dict__ for a in c.arguments]}
            for c in COMMANDS
        ],
        "severities": list(SEVERITIES),
    }


@router.get("/api/latest", tags=["telemetry"], summary="latest value of every channel, with its limit state")
def latest(ground: GroundDep):
    return ground.latest()


@router.get("/api/summary", tags=["mission"], summary="run metadata, latest values, counts, stream cursor")
def summary(ground: GroundDep):
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


@router.get("/api/history/{channel}", tags=["telemetry"], summary="one channel over a time range, paged")
def history(
    ground: GroundDep,
    channel: Annotated[str, PathParam(max_length=64)],
    since: Annotated[float | None, Query(description="simulated POSIX seconds")] = None,
    until: Annotated[float | None, Query(description="simulated POSIX seconds")] = None,
    after: Annotated[int, Query(ge=0, le=MAX_ID, description="cursor: the `next` of the previous page")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 1000,
):
    if channel not in CHANNEL:
        raise HTTPException(404, f"unknown channel {channel!r}; GET /api/channels lists them")
    since, until = finite("since", since), finite("until", until)
    if since is not None and until is not None:
        if until < since:
            raise HTTPException(422, "until is before since")
        if until - since > MAX_RANGE_S:
            raise HTTPException(422, f"a range is at most {MAX_RANGE_S / 86400:.0f} days; page through it")
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


@router.get("/api/events", tags=["telemetry"], summary="events at or above a severity, paged")
def events(
    ground: GroundDep,
    severity: Annotated[str | None, Query(pattern="^(" + "|".join(SEVERITIES) + ")$")] = None,
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 200,
    last: Annotated[bool, Query(description="the newest `limit` events instead of the oldest")] = False,
):
    horizon = ground.feed.horizon()
    rows = ground.archive().events(
        severity, after, limit, max_id=horizon[1] if horizon else None, newest=last
    )
    return {"events": rows, "next": rows[-1]["id"] if len(rows) == limit and not last else None}


@router.get(
    "/api/stream",
    tags=["telemetry"],
    summary="live frames and events (server-sent events)",
    response_class=StreamingResponse,
)
async def stream(
    ground: GroundDep,
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
