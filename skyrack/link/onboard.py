"""The satellite's side of the link: the mission's archive as the on-board store, the order in
which it goes down, and what the uplink brings.

Downlink priority within each contact (documented, as the ground relies on it):

1. the store status (PUS 15): the newest frame and event, so the ground knows what it lacks;
2. realtime: the newest frame;
3. events not yet sent, oldest first (events before housekeeping: they are few and they say
   what happened);
4. retransmissions the ground asked for (PUS-15 retrieval by range), events first;
5. customers' job results (files offered with a priority 0..9, `skyrack.link.files`), the
   highest priority first, then the oldest: metadata, segments asked for again, new ones. They
   go before the dump because a customer waits for them against a deadline, they are small
   (the insight, not the raw data) and the backlog can fill whole contacts after an outage;
6. the housekeeping backlog, oldest first (the dump);
7. the housekeeping files (checkpoints, samples: priority `files.BACKGROUND`), the same way.

What has been sent is kept in the store's meta (`link_store`), updated in the same place the packets
are built, so a resumed mission continues the dump where it stood; re-sending a little after a
crash is harmless because the ground stores each frame and event once.
"""

from __future__ import annotations

import copy

from skyrack.link import files
from skyrack.link import packets as P
from skyrack.telemetry.archive import Archive, Event

FRESH = {"sent_frame": 0, "sent_event": 0, "realtime": [], "retrieve": [], "counts": {}, "asked": []}


class OnboardStore:
    def __init__(self, archive: Archive):
        self.archive = archive
        # a deep copy: FRESH's lists must not be shared by two stores (two links in one process)
        self.state = {**copy.deepcopy(FRESH), **(archive.meta("link_store") or {})}
        self.dirty = False
        self.questions: list[tuple[int, str, list, float]] = []  # arrived, not yet answered

    def save(self) -> None:
        if self.dirty:
            self.archive.set_meta("link_store", self.state)
            self.dirty = False

    def _count(self, apid: int) -> int:
        counts = self.state["counts"]
        n = counts.get(str(apid), 0)
        counts[str(apid)] = n + 1
        return n

    def downlink(self, t: float, budget_bytes: float) -> list[bytes]:
        """The packets that fit in `budget_bytes`, in priority order; marks them sent."""
        out: list[bytes] = []
        used = 0.0
        st = self.state
        self.dirty = True

        def fits(raw: bytes) -> bool:
            nonlocal used
            if used + len(raw) > budget_bytes:
                return False
            used += len(raw)
            out.append(raw)
            return True

        last = self.archive.last_frame()
        last_frame = last[0] if last else 0
        last_event = self.archive.last_event_id()
        status = P.encode_store_status(
            t, last_frame, last_event, self._peek(P.APID_STORE), st["sent_frame"], st["sent_event"]
        )
        if not fits(status):
            return out
        self._count(P.APID_STORE)
        if last_frame > st["sent_frame"] and last_frame not in st["realtime"]:
            seq, ft, values = self.archive.frames(last_frame - 1, last_frame, 1)[0]
            if fits(P.encode_frame(seq, ft, values, self._peek(P.APID_HK))):
                self._count(P.APID_HK)
                st["realtime"].append(seq)
        for event in self.archive.events(after_id=st["sent_event"], limit=2000):
            if not fits(P.encode_event(event, self._peek(_event_apid(event)))):
                return out
            self._count(_event_apid(event))
            st["sent_event"] = event["id"]
        while st["retrieve"]:
            kind, first, last_ = st["retrieve"][0]
            sent_to = self._resend(kind, first, last_, fits)
            if sent_to < last_:
                st["retrieve"][0] = [kind, sent_to + 1, last_]
                return out
            st["retrieve"].pop(0)
        if not files.send(st, t, fits, self._counter, before_backlog=True):
            return out
        while True:
            room = int(max(budget_bytes - used, 0) // P_HK_LEN) + 1
            frames = self.archive.frames(st["sent_frame"], None, min(room, 1000))
            if not frames:
                break
            for seq, ft, values in frames:
                if seq in st["realtime"]:
                    st["sent_frame"] = seq
                    continue
                if not fits(P.encode_frame(seq, ft, values, self._peek(P.APID_HK), dump=True)):
                    return out
                self._count(P.APID_HK)
                st["sent_frame"] = seq
            st["realtime"] = [s for s in st["realtime"] if s > st["sent_frame"]]
        files.send(st, t, fits, self._counter)  # housekeeping files last: the telemetry comes first
        return out

    def _counter(self, apid: int, peek: bool = False) -> int:
        return self._peek(apid) if peek else self._count(apid)

    def offer_file(self, path, name: str, priority: int = files.BACKGROUND) -> dict:
        """Queue a file for downlink (`priority` 0..9: a job's result, before the housekeeping
        backlog; see the order above); a copy goes to the run's outbox, so that the original may
        change or go (an old checkpoint pruned) while the transfer spans its contacts."""
        from pathlib import Path

        from skyrack.storage import atomic_write_bytes
        from skyrack.telemetry.runs import OUTBOX_NAME

        outbox = self.archive.path.parent / OUTBOX_NAME
        outbox.mkdir(exist_ok=True)
        n = len(self.state.get("files", [])) + 1
        copy = outbox / f"{n:04d}-{Path(name).name}"
        atomic_write_bytes(copy, Path(path).read_bytes())
        self.dirty = True
        return files.offer(self.state, copy, name, priority)

    def _peek(self, apid: int) -> int:
        return self.state["counts"].get(str(apid), 0)

    def _resend(self, kind: str, first: int, last: int, fits) -> int:
        """Send kind's [first, last] again; returns the last index sent (first - 1: none)."""
        sent = first - 1
        if kind == "event":
            for event in self.archive.events(after_id=first - 1, max_id=last, limit=last - first + 1):
                if not fits(P.encode_event(event, self._peek(_event_apid(event)), dump=True)):
                    return sent
                self._count(_event_apid(event))
                sent = event["id"]
            return last
        cursor = first - 1
        while cursor < last:
            frames = self.archive.frames(cursor, last, 500)
            if not frames:
                return last
            for seq, ft, values in frames:
                if not fits(P.encode_frame(seq, ft, values, self._peek(P.APID_HK), dump=True)):
                    return sent
                self._count(P.APID_HK)
                sent = cursor = seq
        return last

    # -- the uplink ----------------------------------------------------------------------------
    def receive_tc(self, raw: bytes, t: float) -> str | None:
        """Act on one telecommand arriving at time t; returns why it was refused, if it was."""
        try:
            kind, body = P.decode_tc(raw)
        except P.PacketError as exc:
            return exc.reason
        if kind in ("file_nak", "file_ack"):
            files.receive_tc(self.state, kind, body)
            self.dirty = True
            return None
        if kind == "ask":
            qid = int(body["id"])
            if qid in self.state["asked"]:
                return "duplicate"  # asked again before the answer came down: answered already
            self.state["asked"].append(qid)
            self.dirty = True
            self.questions.append((qid, str(body["question"])[:2000], body.get("history") or [], t))
            return None
        if kind == "retrieve":
            if body.get("kind") in ("hk", "event") and 1 <= int(body["first"]) <= int(body["last"]):
                request = [body["kind"], int(body["first"]), int(body["last"])]
                if request not in self.state["retrieve"]:
                    self.state["retrieve"].append(request)
                    self.dirty = True
                return None
            return "malformed"
        cid = int(body["id"])
        if self.archive.db.execute("SELECT 1 FROM commands WHERE id=?", (cid,)).fetchone():
            return "duplicate"  # sent again before its acceptance came down: already accepted
        try:
            self.archive.queue_command(
                body["name"], body.get("args") or {}, now=t, at_t=body.get("at"), cid=cid, status="accepted"
            )
        except Exception as exc:  # refused on board: a failed-acceptance report goes down
            self.archive.write_events(
                t,
                [
                    Event(
                        "command",
                        {
                            "name": str(body.get("name")),
                            "status": "failed",
                            "id": cid,
                            "result": str(exc)[:200],
                        },
                    )
                ],
            )
            return "refused"
        when = f", to run at {body['at']:.0f}" if body.get("at") is not None else ""
        self.archive.write_events(
            t,
            [
                Event(
                    "command",
                    {"name": body["name"], "status": "accepted", "id": cid, "result": f"on board{when}"},
                )
            ],
        )
        return None


def _event_apid(event: dict) -> int:
    return P.APID_VERIFY if event["name"] == "command" else P.APID_EVENT


P_HK_LEN = len(P.encode_frame(1, 0.0, {}, 0))
