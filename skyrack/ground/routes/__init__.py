"""The ground server's routes, one router per resource: the page, telemetry (the dictionary,
the present, histories, events, the live stream), the map, commands, the assistant's chat and
the link (contact state, skyrack.link).
Each route reaches the server's state (`skyrack.ground.state.Ground`) through `GroundDep`."""

from __future__ import annotations

import math
import re
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from skyrack.ground.state import Ground

MAX_PAGE = 5000
_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
MAX_ID = 2**62  # ids and cursors: SQLite's integers are 64-bit; a larger one is refused, not a 500


async def _ground(request: Request) -> Ground:  # async: resolved on the event loop, no thread hop
    return request.app.state.ground


GroundDep = Annotated[Ground, Depends(_ground)]


def finite(name: str, value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise HTTPException(422, f"{name} must be a finite number of seconds")
    return value


def check_idempotency_key(key: str | None) -> None:
    """Refuse an Idempotency-Key header outside the characters and length the routes accept."""
    if key is not None and not _IDEMPOTENCY_KEY.match(key):
        raise HTTPException(422, "Idempotency-Key: 1 to 128 characters of A-Z a-z 0-9 . _ : -")
