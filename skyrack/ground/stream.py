"""The stream's items and cursors: telemetry frames and events merged in time order.

A cursor is `S-E`: every frame with seq <= S and every event with id <= E has been delivered.
Frames and events are each read in their own order (seq, id) and merged by time, so after any
prefix of the stream the delivered set is exactly "frames <= S and events <= E": a client that
reconnects with its last cursor gets the rest, nothing twice and nothing missed.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from skyrack.telemetry.archive import Archive
from skyrack.telemetry.dictionary import CHANNEL

_CURSOR = re.compile(r"^(\d{1,15})-(\d{1,15})$")


@dataclass(frozen=True)
class Cursor:
    seq: int = 0
    event_id: int = 0

    def __str__(self) -> str:
        return f"{self.seq}-{self.event_id}"

    @classmethod
    def parse(cls, text: str) -> Cursor:
        match = _CURSOR.match(text.strip())
        if not match:
            raise ValueError(f"cursor {text[:40]!r} is not of the form SEQ-EVENTID (e.g. 120-7)")
        return cls(int(match.group(1)), int(match.group(2)))

    def covers(self, other: Cursor) -> bool:
        return self.seq >= other.seq and self.event_id >= other.event_id


@dataclass(frozen=True)
class Item:
    kind: str  # "frame" or "event"
    key: int  # frame seq or event id
    t: float
    cursor: Cursor  # the cursor once this item is delivered
    data: str  # JSON payload, serialized once for every client


def limit_states(values: dict) -> dict[str, str]:
    """Channels outside their limits: name -> 'yellow' | 'red'."""
    states = {}
    for name, value in values.items():
        state = CHANNEL[name].limit_state(value) if name in CHANNEL else "nominal"
        if state != "nominal":
            states[name] = state
    return states


def frame_payload(seq: int, t: float, values: dict) -> dict:
    return {"seq": seq, "t": t, "values": values, "limits": limit_states(values)}


def read_frames(archive: Archive, after_seq: int, max_seq: int | None, limit: int) -> list[dict]:
    """Whole frames with after_seq < seq <= max_seq as stream payloads, in seq order."""
    return [frame_payload(seq, t, values) for seq, t, values in archive.frames(after_seq, max_seq, limit)]


def merge(frames: list[dict], events: list[dict], start: Cursor) -> list[Item]:
    """Frames and events in time order (an event after the frame it belongs to), each list
    keeping its own order, with the running cursor."""
    items: list[Item] = []
    i = j = 0
    seq, eid = start.seq, start.event_id
    while i < len(frames) or j < len(events):
        take_frame = j >= len(events) or (i < len(frames) and frames[i]["t"] <= events[j]["t"])
        if take_frame:
            f = frames[i]
            i += 1
            seq = max(seq, f["seq"])
            items.append(
                Item("frame", f["seq"], f["t"], Cursor(seq, eid), json.dumps(f, separators=(",", ":")))
            )
        else:
            e = events[j]
            j += 1
            eid = max(eid, e["id"])
            items.append(
                Item("event", e["id"], e["t"], Cursor(seq, eid), json.dumps(e, separators=(",", ":")))
            )
    return items


def sse(item: Item) -> str:
    """One server-sent event; the browser's EventSource sends `id` back as Last-Event-ID."""
    return f"id: {item.cursor}\nevent: {item.kind}\ndata: {item.data}\n\n"
