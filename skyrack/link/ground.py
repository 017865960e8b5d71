"""The ground archive: what the ground station has received, and nothing else.

It has the on-board archive's schema (frames, samples, latest, events, commands, meta), so that
`skyrack serve`, the report and the assistant read it as they read any archive, plus:

- `receipts`: for every frame and event received, its generation time and its receive time;
- `packets`: every packet accepted, raw, in the order received (what the TCP packet port
  streams, `skyrack.ground.tmport`);
- `rejects`: every packet refused, with the reason (crc, truncated, length, apid, duplicate...).

A frame keeps its on-board sequence number and an event its on-board id, so a frame received
twice (a retransmission, a resumed mission re-sending what it had sent) is stored once. The
ground learns the store's newest frame and event from the store-status packet, and the gaps
below it are what it asks for again (PUS-15 retrieval by range).

Commands are queued here by the ground server; the link carries them up and their PUS-1 reports
(accepted, dispatched, completed, failed) down, and the reports move the command on here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from skyrack.link.files import GroundFiles
from skyrack.link.packets import PacketError, decode
from skyrack.telemetry.archive import Archive
from skyrack.telemetry.dictionary import CHANNELS
from skyrack.telemetry.runs import DOWNLINK_NAME

GROUND_SCHEMA = """
CREATE TABLE IF NOT EXISTS receipts (
    kind TEXT NOT NULL, id INTEGER NOT NULL, t REAL NOT NULL, received_t REAL NOT NULL,
    dump INTEGER NOT NULL, PRIMARY KEY (kind, id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS receipts_received ON receipts(received_t);
CREATE TABLE IF NOT EXISTS packets (
    id INTEGER PRIMARY KEY, received_t REAL NOT NULL, apid INTEGER NOT NULL, dump INTEGER NOT NULL,
    raw BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS questions (
    id INTEGER PRIMARY KEY, question TEXT NOT NULL, history TEXT NOT NULL, asked_t REAL NOT NULL,
    status TEXT NOT NULL, answer TEXT, answered_t REAL);
CREATE TABLE IF NOT EXISTS rejects (
    id INTEGER PRIMARY KEY, received_t REAL NOT NULL, reason TEXT NOT NULL, detail TEXT,
    apid INTEGER, length INTEGER);
"""
ORDER = {"queued": 0, "accepted": 1, "dispatched": 2, "completed": 3, "failed": 3}
MAX_RANGES = 64  # retrieval requests per uplink: the rest wait for the next one


class GroundArchive(Archive):
    def __init__(self, path: str | Path, *, readonly: bool = False):
        super().__init__(path, readonly=readonly)
        if not readonly:
            self.db.executescript(GROUND_SCHEMA)
            self.files = GroundFiles(self.db, self.path.parent / DOWNLINK_NAME)

    # -- receiving ---------------------------------------------------------------------------
    def receive(self, packets: list[tuple[bytes, float]]) -> dict:
        """Decode and store (raw, receive time) packets in one transaction; returns counts."""
        counts = {"received": 0, "rejected": 0, "frames": 0, "events": 0}
        rows_frames, rows_samples, rows_receipts, rows_events, rows_rejects = [], [], [], [], []
        rows_packets, file_metas, file_segments = [], [], []
        store = self.store_status()
        commands: list[dict] = []
        answers: list[tuple] = []
        seen = set()
        for raw, received_t in packets:
            try:
                p = decode(raw)
                key = ("hk" if p.kind == "hk" else "event", p.index)
                if p.kind in ("hk", "event", "verify") and (key in seen or self._has(key)):
                    raise PacketError("duplicate", f"{key[0]} {p.index} already received")
            except PacketError as exc:
                apid = int.from_bytes(raw[0:2], "big") & 0x7FF if len(raw) >= 2 else None
                rows_rejects.append((received_t, exc.reason, str(exc)[:200], apid, len(raw)))
                counts["rejected"] += 1
                continue
            counts["received"] += 1
            rows_packets.append((received_t, p.apid, int(p.dump), bytes(raw)))
            if p.kind == "store":
                store = {k: max(store[k], p.body[k]) for k in store}
                continue
            if p.kind == "file_meta":
                b = p.body
                file_metas.append(
                    (p.index, b["name"], b["size"], b["segments"], b["sent"], b["sha256"], received_t)
                )
                continue
            if p.kind == "file_data":
                file_segments.append((p.index, p.body["segment"], p.body["data"]))
                continue
            seen.add(key)
            rows_receipts.append((key[0], p.index, p.t, received_t, int(p.dump)))
            if p.kind == "hk":
                rows_frames.append((p.index, p.t))
                rows_samples += [(p.index, c.name, p.body[c.name]) for c in CHANNELS]
                counts["frames"] += 1
            else:
                b = p.body
                rows_events.append(
                    (p.index, b["seq"], p.t, b["name"], b["severity"], b["message"], json.dumps(b["data"]))
                )
                counts["events"] += 1
                if b["name"] == "command":
                    commands.append({**b["data"], "t": p.t})
                elif b["name"] == "answer":
                    answers.append((json.dumps(b["data"]), received_t, b["data"].get("question_id")))
        with self.db:
            self.db.executemany("INSERT OR IGNORE INTO frames (seq, t) VALUES (?,?)", rows_frames)
            self.db.executemany("INSERT OR IGNORE INTO samples VALUES (?,?,?)", rows_samples)
            self.db.executemany(
                "INSERT INTO latest VALUES (?,?,?,?) ON CONFLICT(channel) DO UPDATE SET "
                "seq=excluded.seq, t=excluded.t, value=excluded.value WHERE excluded.seq > latest.seq",
                self._latest_rows(rows_frames, rows_samples),
            )
            self.db.executemany("INSERT OR IGNORE INTO receipts VALUES (?,?,?,?,?)", rows_receipts)
            self.db.executemany(
                "INSERT OR IGNORE INTO events (id, seq, t, name, severity, message, data) VALUES (?,?,?,?,?,?,?)",
                rows_events,
            )
            self.db.executemany(
                "INSERT INTO packets (received_t, apid, dump, raw) VALUES (?,?,?,?)", rows_packets
            )
            self.db.executemany(
                "INSERT INTO rejects (received_t, reason, detail, apid, length) VALUES (?,?,?,?,?)",
                rows_rejects,
            )
            for report in commands:
                self._report(report)
            self.db.executemany(
                "UPDATE questions SET status='answered', answer=?, answered_t=? WHERE id=? AND status='queued'",
                answers,
            )
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", ("store_status", json.dumps(store)))
            self.files.rows(file_metas, file_segments)
        if file_metas or file_segments:
            self.files.finish(max(rt for _, rt in packets))
        return counts

    @staticmethod
    def _latest_rows(rows_frames, rows_samples) -> list:
        if not rows_frames:
            return []
        newest = max(seq for seq, _ in rows_frames)
        t = dict(rows_frames)[newest]
        return [(name, seq, t, value) for (seq, name, value) in rows_samples if seq == newest]

    def _has(self, key: tuple[str, int]) -> bool:
        return self.db.execute("SELECT 1 FROM receipts WHERE kind=? AND id=?", key).fetchone() is not None

    def _report(self, report: dict) -> None:
        """A PUS-1 report moves the ground's command on (never back: reports can come out of order)."""
        row = self.db.execute("SELECT status FROM commands WHERE id=?", (report.get("id"),)).fetchone()
        status = report.get("status")
        if row is None or status not in ORDER or ORDER[status] <= ORDER.get(row[0], 0):
            return
        self.db.execute(
            "UPDATE commands SET status=?, updated_t=?, result=? WHERE id=?",
            (status, report["t"], report.get("result"), report["id"]),
        )

    # -- what is missing ---------------------------------------------------------------------
    def store_status(self) -> dict:
        empty = {"last_frame": 0, "last_event": 0, "sent_frame": 0, "sent_event": 0}
        return {**empty, **self.meta("store_status", {})}

    def received_ids(self, kind: str) -> np.ndarray:
        rows = self.db.execute("SELECT id FROM receipts WHERE kind=? ORDER BY id", (kind,)).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def missing(self, kind: str, up_to: int | None = None) -> list[tuple[int, int]]:
        """Ranges (first, last) of frames or events the satellite has sent and the ground lacks
        (what it has not sent yet is not missing: it is still to come)."""
        last = self.store_status()["sent_frame" if kind == "hk" else "sent_event"] if up_to is None else up_to
        have = self.received_ids(kind)
        have = have[(have >= 1) & (have <= last)]
        # Sparse, from the ids held: no array as long as the store (a damaged count cannot blow it up).
        bounds = np.concatenate([[0], have, [last + 1]])
        step = np.diff(bounds)
        at = np.flatnonzero(step > 1)
        return [(int(bounds[i]) + 1, int(bounds[i + 1]) - 1) for i in at[: 4 * MAX_RANGES]]

    def retrieval_requests(self) -> list[dict]:
        """The gaps to ask for again: events first, then housekeeping."""
        out = []
        for kind in ("event", "hk"):
            out += [{"kind": kind, "first": a, "last": b} for a, b in self.missing(kind)]
        return out[:MAX_RANGES]

    def completeness(self) -> dict:
        store = self.store_status()
        return {
            "frames_received": int(self.received_ids("hk").size),
            "events_received": int(self.received_ids("event").size),
            "store_frames": store["last_frame"],
            "store_events": store["last_event"],
            "rejected": self.db.execute("SELECT COUNT(*) FROM rejects").fetchone()[0],
        }

    def rejects(self, limit: int = 100) -> list[dict]:
        rows = self.db.execute(
            "SELECT id, received_t, reason, detail, apid, length FROM rejects ORDER BY id DESC LIMIT ?",
            (limit,),
        ).fetchall()
        cols = ("id", "received_t", "reason", "detail", "apid", "length")
        return [dict(zip(cols, r)) for r in rows]

    def latencies(self) -> np.ndarray:
        """Receive time minus generation time of every frame received (s)."""
        rows = self.db.execute("SELECT received_t - t FROM receipts WHERE kind='hk'").fetchall()
        return np.array([r[0] for r in rows], dtype=float)

    def receipts_until(self, t: float) -> tuple[int, int]:
        """How many frames and events the ground had received by time t."""
        q = "SELECT COUNT(*) FROM receipts WHERE kind=? AND received_t <= ?"
        return (self.db.execute(q, ("hk", t)).fetchone()[0], self.db.execute(q, ("event", t)).fetchone()[0])

    # -- questions for the satellite -----------------------------------------------------------
    def ask(self, question: str, history: list, now: float) -> dict:
        with self.db:
            qid = self.db.execute(
                "INSERT INTO questions (question, history, asked_t, status) VALUES (?,?,?,'queued')",
                (question, json.dumps(history), now),
            ).lastrowid
        return self.question(qid)

    def question(self, qid: int) -> dict | None:
        row = self.db.execute(
            "SELECT id, question, asked_t, status, answer, answered_t FROM questions WHERE id=?", (qid,)
        ).fetchone()
        if row is None:
            return None
        qid, question, asked_t, status, answer, answered_t = row
        return {
            "id": qid,
            "question": question,
            "asked_t": asked_t,
            "status": status,
            "answered_t": answered_t,
            **({"result": json.loads(answer)} if answer else {}),
        }

    def unanswered(self) -> list[dict]:
        rows = self.db.execute(
            "SELECT id, question, history FROM questions WHERE status='queued' ORDER BY id"
        )
        return [{"id": i, "question": q, "history": json.loads(h)} for i, q, h in rows.fetchall()]

    # -- uplink --------------------------------------------------------------------------------
    def uplink_commands(self) -> list[dict]:
        """Commands not yet acknowledged by the satellite (sent again until an acceptance comes)."""
        return self._commands("WHERE status='queued' ORDER BY id")


def queue_ground_command(run: str, runs_dir: str | None, name: str, args: dict, at_t: float | None) -> dict:
    """Queue a command where the ground keeps them: the ground archive over a real link (it goes
    up in the next contact), the on-board archive on the ideal link (it runs at the next frame)."""
    from skyrack.errors import UserError
    from skyrack.telemetry.runs import find_run

    found = find_run(run, runs_dir)
    over_link = found.ground_archive.is_file()
    with Archive(found.served_archive) as archive:
        if archive.meta("status") != "running":
            raise UserError(f"mission {found.run_id} is not running; commands are accepted only in flight")
        now = archive.meta("ground_clock") if over_link else None
        if now is None:
            last = archive.last_frame()
            now = last[1] if last else archive.meta("start_t")
        if at_t is not None and at_t < now:
            raise UserError("the time tag is in the past of the mission")
        cmd = archive.queue_command(name, args, now=now, at_t=at_t)
    return {
        **cmd,
        "where": "queued on the ground for the next contact" if over_link else "queued for the next frame",
    }
