"""The link: contact state, the contact timeline, what came down and what was rejected."""

from __future__ import annotations

from fastapi import APIRouter

from skyrack.ground.contact import link_status
from skyrack.ground.routes import GroundDep

router = APIRouter()


@router.get("/api/link", tags=["link"], summary="contact state, the contact timeline, what came down")
def link(ground: GroundDep):
    replay = ground.feed.horizon() is not None
    return link_status(
        ground.archive(), ground.now() if replay else None, ground.latest()["t"] if replay else None
    )
