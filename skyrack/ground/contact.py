"""What the ground knows of its link: contact state, the contact timeline, what has come down.

Read from the ground archive alone: the predicted contacts the ground planned (meta
`contacts`), its own clock (meta `ground_clock`), its receipts and its rejects. With the ideal
link there is no ground archive and the link is always "up".
"""

from __future__ import annotations

import bisect

from skyrack.telemetry.archive import Archive


def ground_clock(archive: Archive) -> float | None:
    """The ground station's simulated time (it runs on between contacts, when nothing comes)."""
    return archive.meta("ground_clock")


def contact_state(contacts: list[dict], now: float) -> dict:
    """In contact (with whom, for how long) or the next contact, at `now`."""
    rises = [c["rise_t"] for c in contacts]
    i = bisect.bisect_right(rises, now)
    current = contacts[i - 1] if i and contacts[i - 1]["set_t"] > now else None
    nxt = contacts[i] if i < len(contacts) else None
    return {
        "in_contact": current is not None,
        "station": current["station"] if current else None,
        "left_s": current["set_t"] - now if current else None,
        "next_station": nxt["station"] if nxt else None,
        "next_in_s": nxt["rise_t"] - now if nxt else None,
        "next_rise_t": nxt["rise_t"] if nxt else None,
    }


def link_status(archive: Archive, now: float | None, latest_t: float | None = None) -> dict:
    """`now`: the replay horizon (None live: the ground's clock); `latest_t`: the newest frame
    shown (None: the archive's newest)."""
    link = archive.meta("link")
    if not link:
        return {"mode": "ideal", "now": now, "in_contact": True, "contacts": []}
    contacts = archive.meta("contacts", [])
    now = ground_clock(archive) if now is None else now
    if link["mode"] == "relay":
        state = {
            "in_contact": True,
            "station": "the data relay",
            "left_s": None,
            "next_station": None,
            "next_in_s": None,
            "next_rise_t": None,
        }
    else:
        state = contact_state(contacts, now) if now is not None else {"in_contact": False}
    db = archive.db
    has_receipts = db.execute("SELECT 1 FROM sqlite_master WHERE name='receipts'").fetchone()
    received = last_received = None
    rejects: dict[str, int] = {}
    if has_receipts:
        received = db.execute("SELECT COUNT(*) FROM receipts WHERE kind='hk'").fetchone()[0]
        last_received = db.execute("SELECT MAX(received_t) FROM receipts").fetchone()[0]
        rejects = dict(db.execute("SELECT reason, COUNT(*) FROM rejects GROUP BY reason").fetchall())
    files = []
    if db.execute("SELECT 1 FROM sqlite_master WHERE name='files'").fetchone():
        cols = ("id", "name", "size", "segments", "sent", "status", "completed_t")
        files = [dict(zip(cols, r)) for r in db.execute(f"SELECT {', '.join(cols)} FROM files ORDER BY id")]
    last = archive.last_frame()
    if latest_t is not None:
        last = (None, latest_t)
    store = archive.meta("store_status", {"last_frame": 0, "last_event": 0})
    return {
        **link,
        "now": now,
        **state,
        "contacts": contacts,
        "frames_received": received,
        "frames_known_on_board": store["last_frame"],
        "last_received_t": last_received,
        "latest_frame_t": last[1] if last else None,
        "latest_age_s": (now - last[1]) if (last and now is not None) else None,
        "rejects": rejects,
        "files": files,
        "at_mission_end": archive.meta("at_mission_end"),
        "complete_t": archive.meta("complete_t"),
    }
