"""The assistant's chat: questions answered from the run's telemetry; it reads, it never commands."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from skyrack.ground.routes import GroundDep

router = APIRouter()


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=2000)
    history: list[tuple[str, str]] = Field(default_factory=list, max_length=20)


@router.post("/api/chat", tags=["assistant"], summary="ask the satellite; it reads, it never commands")
async def chat(ground: GroundDep, body: ChatRequest):
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
