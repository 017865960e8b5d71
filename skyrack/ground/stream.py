"""The stream's items and cursors: telemetry frames and events merged in time order.

A cursor is `S-E`: every frame with seq <= S and every event with id <= E has been delivered.
Frames and events are each read in their own order (seq, id) and merged by time, so after any
prefix of the stream the delivered set is exactly "frames <= S and events <= E": a client that
reconnects with its last cursor gets the rest, nothing twice and nothing missed.
"""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass

from skyrack.telemetry.dictionary import CHANNEL, CHANNELS

_CURSOR = re.compile(r"^(\d{1,15})-(\d{1,15})$")
_CHANNEL_NAMES = tuple(c.name for c in CHANNELS)


@dataclass(frozen=True)
class Cursor:
    seq: int = 0
    event_id: int = 0

    def __str__(self) -> str:
        return f"{self.seq}-{self.event_id}"

    @classmethod
    def parse(cls, text: str) -> "Cursor":
        match = _CURSOR.match(text.strip())
        if not match:
            raise ValueError(f"cursor {text[:40]!r} is not of the form SEQ-EVENTID (e.g. 120-7)")
        return cls(int(match.group(1)), int(match.group(2)))

    def covers(self, other: "Cursor") -> bool:
        return self.seq >= other.seq and self.event_id >= other.event_id


@dataclass(frozen=True)
class Item:
    kind: str  # "frame" or "event"
    key: int   # frame seq or event id
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


def read_frames(db: sqlite3.Connection, after_seq: int, max_seq: int | None, limit: int) -> list[dict]:
    """Whole frames with after_seq < seq <= max_seq, in seq order (at most `limit`)."""
    sql, params = "SELECT seq, t FROM frames WHERE seq > ?", [after_seq]
    if max_seq is not None:
        sql += " AND seq <= ?"
        params.append(max_seq)
    frames = db.execute(sql + " ORDER BY seq LIMIT ?", (*params, limit)).fetchall()
    if not frames:
        return []
    values: dict[int, dict] = {seq: {} for seq, _ in frames}
    # samples is keyed (channel, seq): naming the channels lets SQLite range-scan each one.
    marks = ",".join("?" * len(_CHANNEL_NAMES))
    for seq, channel, value in db.execute(
            f"SELECT seq, channel, value FROM samples WHERE channel IN ({marks}) AND seq BETWEEN ? AND ?",
            (*_CHANNEL_NAMES, frames[0][0], frames[-1][0])):
        values[seq][channel] = value
    return [frame_payload(seq, t, values[seq]) for seq, t in frames]


def read_events(db: sqlite3.Connection, after_id: int, max_id: int | None, limit: int, *,
                severities: tuple[str, ...] | None = None, newest: bool = False) -> list[dict]:
    """Events with after_id < id <= max_id in id order: the first `limit`, or the last if `newest`."""
    sql, params = "SELECT id, seq, t, name, severity, message, data FROM events WHERE id > ?", [after_id]
    if max_id is not None:
        sql += " AND id <= ?"
        params.append(max_id)
    if severities is not None:
        sql += f" AND severity IN ({','.join('?' * len(severities))})"
        params += list(severities)
    sql += f" ORDER BY id {'DESC' if newest else ''} LIMIT ?"
    rows = db.execute(sql, (*params, limit)).fetchall()
    if newest:
        rows.reverse()
    return [{"id": i, "seq": s, "t": t, "name": n, "severity": sev, "message": m, "data": json.loads(d or "{}")}
            for i, s, t, n, sev, m, d in rows]


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
            items.append(Item("frame", f["seq"], f["t"], Cursor(seq, eid), json.dumps(f, separators=(",", ":"))))
        else:
            e = events[j]
            j += 1
            eid = max(eid, e["id"])
            items.append(Item("event", e["id"], e["t"], Cursor(seq, eid), json.dumps(e, separators=(",", ":"))))
    return items


def sse(item: Item) -> str:
    """One server-sent event; the browser's EventSource sends `id` back as Last-Event-ID."""
    return f"id: {item.cursor}\nevent: {item.kind}\ndata: {item.data}\n\n"
