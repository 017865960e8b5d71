"""Files over the link: an acknowledged transfer with retransmission, in the manner of CFDP
class 2 (CCSDS 727.0-B), carried by the same packets, channel and contacts as the telemetry.

- The satellite offers a file (a checkpoint's files, the samples, a job's result): it is cut
  into 1 KiB segments; in each contact go its metadata (name, size, segment count, SHA-256, and
  how many segments have been sent so far) and its segments in order.
- Each file has a priority: `BACKGROUND` (below 0: checkpoints, samples) goes after the
  telemetry backlog; 0..9 (a customer's job result, `skyrack.jobs.spec.MAX_PRIORITY`) goes
  before it. Within each class the highest priority goes first, then the oldest offer
  (`skyrack.link.onboard` calls `send` once per class, at its place in the downlink order).
- The ground keeps every segment once; from the metadata it knows which segments were sent and
  lost, and asks for them again (a NAK, by range, as for telemetry gaps).
- When every segment is there and the SHA-256 matches, the ground writes the file atomically
  under `<run>/downlink/` and acknowledges it (the ACK goes up in the next window); the
  satellite stops sending its metadata. A transfer spans as many contacts as it needs.

cfdp-py's handlers were not used: they bring their own state machines, timers and
spacepackets pin; this is the same protocol idea (metadata, file data, NAKs, Finished/ACK) on
the link's own store-and-retrieve machinery, so a kill -9 on either side resumes it too.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from skyrack.link import packets as P

SEGMENT_BYTES = P.FILE_SEGMENT_BYTES
BACKGROUND = -1  # the priority of the housekeeping files: after the telemetry backlog

FILES_SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, size INTEGER NOT NULL, segments INTEGER NOT NULL,
    sent INTEGER NOT NULL, sha256 TEXT NOT NULL, status TEXT NOT NULL, path TEXT, completed_t REAL,
    meta_t REAL);
CREATE TABLE IF NOT EXISTS file_segments (
    file_id INTEGER NOT NULL, segment INTEGER NOT NULL, data BLOB NOT NULL,
    PRIMARY KEY (file_id, segment)) WITHOUT ROWID;
"""


# -- on board ------------------------------------------------------------------------------------
def offer(state: dict, path: Path, name: str, priority: int = BACKGROUND) -> dict:
    """Put a file in the on-board downlink queue (its content is read when its segments go)."""
    data = path.read_bytes()
    files = state.setdefault("files", [])
    entry = {
        "id": max((f["id"] for f in files), default=0) + 1,
        "name": name,
        "path": str(path),
        "size": len(data),
        "segments": max(1, -(-len(data) // SEGMENT_BYTES)),
        "sha256": hashlib.sha256(data).hexdigest(),
        "sent": 0,
        "acked": False,
        "priority": int(priority),
    }
    files.append(entry)
    return entry


def urgent(f: dict) -> bool:
    """A file that goes before the telemetry backlog (a job's result)."""
    return f.get("priority", BACKGROUND) >= 0  # offers from before priorities are background


def send(state: dict, t: float, fits, count, *, before_backlog: bool = False) -> bool:
    """For the files of one class (before the telemetry backlog or after it): the metadata of
    every unacknowledged one, retransmissions asked for, then new segments, highest priority
    first, then the oldest; returns False when the window is full."""
    files = [f for f in state.get("files", []) if not f["acked"] and urgent(f) == before_backlog]
    files.sort(key=lambda f: (-f.get("priority", BACKGROUND), f["id"]))
    cache: dict[int, bytes] = {}

    def content(f) -> bytes:
        if f["id"] not in cache:
            cache[f["id"]] = Path(f["path"]).read_bytes()
        return cache[f["id"]]

    def segment(f, k: int, dump: bool) -> bool:
        chunk = content(f)[k * SEGMENT_BYTES : (k + 1) * SEGMENT_BYTES]
        raw = P.encode_file_segment(t, f["id"], k, chunk, count(P.APID_FILE_DATA, peek=True), dump)
        if not fits(raw):
            return False
        count(P.APID_FILE_DATA)
        return True

    for f in files:
        meta = P.encode_file_meta(
            t,
            f["id"],
            f["name"],
            f["size"],
            f["segments"],
            f["sent"],
            bytes.fromhex(f["sha256"]),
            count(P.APID_FILE_META, peek=True),
        )
        if not fits(meta):
            return False
        count(P.APID_FILE_META)
    by_id = {f["id"]: f for f in files}
    naks = state.setdefault("file_naks", [])
    rank = {f["id"]: i for i, f in enumerate(files)}
    naks.sort(key=lambda n: rank.get(n[0], len(rank)))  # stable: a file's ranges stay in order
    others = {f["id"] for f in state.get("files", []) if not f["acked"]} - by_id.keys()
    i = 0
    while i < len(naks):
        fid, first, last = naks[i]
        if fid in others:
            i += 1  # the other class's: sent at its own place in the order
            continue
        f = by_id.get(fid)
        while f is not None and first <= last:
            if not segment(f, first, True):
                naks[i] = [fid, first, last]
                return False
            first += 1
        naks.pop(i)
    for f in files:
        while f["sent"] < f["segments"]:
            if not segment(f, f["sent"], False):
                return False
            f["sent"] += 1
    return True


def receive_tc(state: dict, kind: str, body: dict) -> None:
    if kind == "file_nak":
        request = [int(body["file"]), int(body["first"]), int(body["last"])]
        if request not in state.setdefault("file_naks", []):
            state["file_naks"].append(request)
    elif kind == "file_ack":
        for f in state.get("files", []):
            if f["id"] == int(body["file"]):
                f["acked"] = True


# -- on the ground -------------------------------------------------------------------------------
class GroundFiles:
    """The ground's half, on the ground archive's connection."""

    def __init__(self, db, downlink_dir: Path):
        self.db = db
        self.dir = downlink_dir
        db.executescript(FILES_SCHEMA)

    def rows(self, metas: list[tuple], segments: list[tuple]) -> None:
        """Store metadata (id, name, size, segments, sent, sha256, receive time) and segments
        (id, k, data) inside the caller's transaction."""
        for fid, name, size, count, sent, digest, received_t in metas:
            self.db.execute(
                "INSERT INTO files (id, name, size, segments, sent, sha256, status, meta_t) "
                "VALUES (?,?,?,?,?,?,'receiving',?) "
                "ON CONFLICT(id) DO UPDATE SET sent=max(sent, excluded.sent), meta_t=excluded.meta_t",
                (fid, name, size, count, sent, digest, received_t),
            )
        self.db.executemany("INSERT OR IGNORE INTO file_segments VALUES (?,?,?)", segments)

    def finish(self, now: float) -> list[int]:
        """Write every file whose segments are all in and whose SHA-256 matches; returns their ids."""
        from skyrack.storage import atomic_write_bytes

        done = []
        for fid, name, size, count, digest in self.db.execute(
            "SELECT id, name, size, segments, sha256 FROM files WHERE status='receiving'"
        ).fetchall():
            have = self.db.execute("SELECT COUNT(*) FROM file_segments WHERE file_id=?", (fid,)).fetchone()[0]
            if have < count:
                continue
            data = b"".join(
                r[0]
                for r in self.db.execute(
                    "SELECT data FROM file_segments WHERE file_id=? ORDER BY segment", (fid,)
                )
            )
            if len(data) != size or hashlib.sha256(data).hexdigest() != digest:
                status, path = "corrupt", None  # cannot happen past the CRC; said plainly if it does
            else:
                target = self.dir / Path(name)
                if self.dir.resolve() not in target.resolve().parents:
                    status, path = "refused", None  # a name that would leave the downlink folder
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    atomic_write_bytes(target, data)
                    status, path = "complete", str(target)
            with self.db:
                self.db.execute(
                    "UPDATE files SET status=?, path=?, completed_t=? WHERE id=?", (status, path, now, fid)
                )
                self.db.execute("DELETE FROM file_segments WHERE file_id=?", (fid,))
            done.append(fid)
        return done

    def naks(self) -> list[dict]:
        out = []
        for fid, sent in self.db.execute("SELECT id, sent FROM files WHERE status='receiving'").fetchall():
            have = np.array(
                [r[0] for r in self.db.execute("SELECT segment FROM file_segments WHERE file_id=?", (fid,))],
                dtype=int,
            )
            present = np.zeros(sent + 2, dtype=bool)
            present[have[have < sent] + 1] = True
            present[0] = present[-1] = True
            edges = np.flatnonzero(np.diff(present.astype(np.int8)))
            out += [
                {"file": fid, "first": int(a), "last": int(b) - 1} for a, b in zip(edges[0::2], edges[1::2])
            ]
        return out

    def acks(self) -> list[dict]:
        """Files done here that the satellite still announces: it has not had the ACK yet."""
        rows = self.db.execute("SELECT id FROM files WHERE status != 'receiving' AND meta_t >= completed_t")
        return [{"file": fid} for (fid,) in rows]

    def listing(self) -> list[dict]:
        cols = ("id", "name", "size", "segments", "sent", "sha256", "status", "path", "completed_t")
        return [
            dict(zip(cols, r)) for r in self.db.execute(f"SELECT {', '.join(cols)} FROM files ORDER BY id")
        ]
