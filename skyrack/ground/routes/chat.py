"""The assistant's chat: questions answered from the run's telemetry; it reads, it never commands."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, HTTPException, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from skyrack.ground.contact import link_status
from skyrack.ground.routes import GroundDep

router = APIRouter()


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=2000)
    history: list[tuple[str, str]] = Field(default_factory=list, max_length=20)


@router.post("/api/chat", tags=["assistant"], summary="ask the satellite; it reads, it never commands")
async def chat(ground: GroundDep, body: ChatRequest, response: Response):
    if ground.over_link():  # the question goes up the link; the satellite answers on board

        def queue():
            archive = ground.ground_writer()
            if archive.meta("status") != "running":
                raise HTTPException(409, "the mission is not running; the satellite cannot be asked")
            question = archive.ask(body.question, [list(h) for h in body.history], ground.now())
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


@router.get("/api/chat/{qid}", tags=["assistant"], summary="a question sent over the link, and its answer")
def chat_answer(ground: GroundDep, qid: Annotated[int, PathParam(ge=1, le=2**62)]):
    if not ground.over_link():
        raise HTTPException(404, "questions are answered at once on the ideal link")
    from skyrack.link.ground import GroundArchive

    with GroundArchive(ground.archive_path, readonly=True) as archive:
        has_table = archive.db.execute("SELECT 1 FROM sqlite_master WHERE name='questions'").fetchone()
        found = archive.question(qid) if has_table else None
        if found is None:
            raise HTTPException(404, f"no question {qid}")
        return {**found, "expected": link_status(archive, None) if found["status"] == "queued" else None}
