"""The ground server's routes, one router per resource: the page, telemetry (the dictionary,
the present, histories, events, the live stream), the map, commands, the assistant's chat and
the link (contact state, skyrack.link).
Each route reaches the server's state (`skyrack.ground.state.Ground`) through `GroundDep`."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import Depends, HTTPException, Request

from skyrack.ground.state import Ground

MAX_PAGE = 5000
MAX_ID = 2**62  # ids and cursors: SQLite's integers are 64-bit; a larger one is refused, not a 500


async def _ground(request: Request) -> Ground:  # async: resolved on the event loop, no thread hop
    return request.app.state.ground


GroundDep = Annotated[Ground, Depends(_ground)]


def finite(name: str, value: float | None) -> float | None:
    if value is not None and not math.isfinite(value):
        raise HTTPException(422, f"{name} must be a finite number of seconds")
    return value
