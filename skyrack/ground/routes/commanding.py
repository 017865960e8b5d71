"""Commands: queue one for the running mission (bearer token, Idempotency-Key honoured), list
them, read one and its state."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from skyrack.errors import UserError
from skyrack.ground.auth import bearer_matches
from skyrack.ground.routes import MAX_ID, MAX_PAGE, GroundDep, check_idempotency_key, finite
from skyrack.ground.state import Ground

router = APIRouter()


class CommandRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64, description="a command of the dictionary")
    args: dict[str, float | int | bool | str] = Field(default_factory=dict, max_length=16)
    at: float | None = Field(
        default=None,
        description="time tag (simulated POSIX seconds, PUS-11 style): stored on board, run at that time",
    )


def require_token(ground: Ground, authorization: str | None) -> None:
    if not bearer_matches(authorization, ground.token):
        raise HTTPException(
            401,
            "commands need the ground token: Authorization: Bearer <token>",
            headers={"www-authenticate": "Bearer"},
        )


@router.post(
    "/api/commands",
    tags=["commands"],
    status_code=202,
    summary="queue a command for the running mission (bearer token; Idempotency-Key honoured)",
)
async def post_command(
    ground: GroundDep,
    body: CommandRequest,
    response: Response,
    authorization: Annotated[str | None, Header()] = None,
    idempotency_key: Annotated[str | None, Header()] = None,
):
    require_token(ground, authorization)
    check_idempotency_key(idempotency_key)

    def queue():
        archive = ground.writer()
        if archive.meta("status") != "running" or ground.run.writer_gone():
            raise HTTPException(409, "the mission is not running; commands are accepted only in flight")
        known = archive.command_by_key(idempotency_key) if idempotency_key is not None else None
        if known is not None:
            if known["name"] != body.name or known["args"] != body.args:
                raise HTTPException(409, "this Idempotency-Key was used for a different command")
            return known, False
        now = ground.now()
        now = now if now is not None else time.time()
        at = finite("at", body.at)
        try:
            command = archive.queue_command(
                body.name, body.args, now=now, idempotency_key=idempotency_key, at_t=at
            )
            return command, True
        except UserError as exc:
            raise HTTPException(422, str(exc)) from None

    command, created = await asyncio.get_running_loop().run_in_executor(ground.writer_pool, queue)
    if not created:
        response.status_code = 200
        response.headers["idempotent-replayed"] = "true"
    return command


@router.get("/api/commands", tags=["commands"], summary="commands, oldest first, paged")
def list_commands(
    ground: GroundDep,
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 200,
):
    rows = ground.archive().commands(after_id=after, limit=limit)
    return {"commands": rows, "next": rows[-1]["id"] if len(rows) == limit else None}


@router.get("/api/commands/{cid}", tags=["commands"], summary="one command and its state")
def get_command(ground: GroundDep, cid: Annotated[int, PathParam(ge=1, le=MAX_ID)]):
    try:
        return ground.archive().command(cid)
    except UserError as exc:
        raise HTTPException(404, str(exc)) from None
