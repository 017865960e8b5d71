"""The telemetry archive: one SQLite database (WAL) per run.

A frame is the satellite's state at one simulated instant: one row in `frames` and one row per
channel in `samples`, committed in a single transaction together with the events raised at
that instant and the `latest` table. A crash therefore loses at most the frame being written,
and a resumed run continues after `last_frame()` without duplicating or skipping a frame.
The schema's channel table is filled from the telemetry dictionary.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from skyrack.errors import UserError
from skyrack.telemetry.dictionary import CHANNEL, CHANNELS, COMMAND, EVENT, SEVERITIES

# A command goes queued -> dispatched -> completed | failed, as flight software reports it; over
# a real link (skyrack.link) it is also `accepted` on board when it arrives (PUS-1 acceptance).
COMMAND_STATES = ("queued", "accepted", "dispatched", "completed", "failed")

SCHEMA = """
CREATE TABLE IF NOT EXISTS channels (
    name TEXT PRIMARY KEY, unit TEXT, type TEXT, description TEXT,
    yellow_lo REAL, yellow_hi REAL, red_lo REAL, red_hi REAL);
CREATE TABLE IF NOT EXISTS frames (seq INTEGER PRIMARY KEY, t REAL NOT NULL);
CREATE TABLE IF NOT EXISTS samples (
    seq INTEGER NOT NULL REFERENCES frames(seq), channel TEXT NOT NULL, value,
    PRIMARY KEY (channel, seq)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS latest (channel TEXT PRIMARY KEY, seq INTEGER, t REAL, value);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY, seq INTEGER, t REAL NOT NULL, name TEXT NOT NULL,
    severity TEXT NOT NULL, message TEXT NOT NULL, data TEXT);
CREATE INDEX IF NOT EXISTS events_t ON events(t);
CREATE TABLE IF NOT EXISTS commands (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, args TEXT NOT NULL, status TEXT NOT NULL,
    idempotency_key TEXT UNIQUE, created_t REAL NOT NULL, updated_t REAL NOT NULL, result TEXT,
    at_t REAL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
"""


@dataclass(frozen=True)
class Event:
    name: str
    data: dict[str, Any]

    @property
    def severity(self) -> str:
        return EVENT[self.name].severity

    @property
    def message(self) -> str:
        return EVENT[self.name].message(**self.data)


class Archive:
    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = Path(path)
        if readonly and not self.path.exists():
            raise UserError(f"no telemetry archive at {self.path}")
        try:
            if readonly:
                self.db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=10)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.db = sqlite3.connect(self.path, timeout=10)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: committed frames survive a crash
                self.db.executescript(SCHEMA)
                self._migrate()
                self._sync_channels()
        except sqlite3.DatabaseError as exc:
            raise UserError(f"cannot open telemetry archive {self.path}: {exc}") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _migrate(self) -> None:
        """Archives written before time-tagged commands lack `commands.at_t`."""
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(commands)")}
        if "at_t" not in columns:
            with self.db:
                self.db.execute("ALTER TABLE commands ADD COLUMN at_t REAL")

    def _sync_channels(self) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR REPLACE INTO channels VALUES (?,?,?,?,?,?,?,?)",
                [
                    (
                        c.name,
                        c.unit,
                        c.type,
                        c.description,
                        *(c.yellow or (None, None)),
                        *(c.red or (None, None)),
                    )
                    for c in CHANNELS
                ],
            )

    # -- writing -----------------------------------------------------------------------------
    def write_frame(
        self, t: float, values: dict[str, Any], events: Iterable[Event] = (), meta: dict | None = None
    ) -> int:
        """Commit one frame (and its events, and the `meta` keys given) atomically; returns its
        sequence number."""
        unknown = set(values) - CHANNEL.keys()
        if unknown:
            raise ValueError(f"not in the telemetry dictionary: {sorted(unknown)}")
        try:
            with self.db:
                seq = self.db.execute("INSERT INTO frames (t) VALUES (?)", (t,)).lastrowid
                rows = [(seq, name, value) for name, value in values.items()]
                self.db.executemany("INSERT INTO samples VALUES (?,?,?)", rows)
                self.db.executemany(
                    "INSERT OR REPLACE INTO latest VALUES (?,?,?,?)",
                    [(name, seq, t, value) for _, name, value in rows],
                )
                self._insert_events(seq, t, events)
                for key, value in (meta or {}).items():
                    self.db.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", (key, json.dumps(value)))
        except sqlite3.OperationalError as exc:
            raise UserError(f"cannot write telemetry archive {self.path}: {exc}") from None
        return seq

    def write_events(self, t: float, events: Iterable[Event]) -> None:
        with self.db:
            self._insert_events(None, t, events)

    def _insert_events(self, seq, t, events) -> None:
        self.db.executemany(
            "INSERT INTO events (seq, t, name, severity, message, data) VALUES (?,?,?,?,?,?)",
            [(seq, t, e.name, e.severity, e.message, json.dumps(e.data, default=str)) for e in events],
        )

    def set_meta(self, key: str, value: Any) -> None:
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta VALUES (?,?)", (key, json.dumps(value)))

    # -- reading -----------------------------------------------------------------------------
    def meta(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def last_frame(self) -> tuple[int, float] | None:
        return self.db.execute("SELECT seq, t FROM frames ORDER BY seq DESC LIMIT 1").fetchone()

    def frame_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM frames").fetchone()[0]

    def history(
        self,
        channel: str,
        since: float | None = None,
        until: float | None = None,
        after_seq: int = 0,
        limit: int | None = None,
    ) -> list[tuple[int, float, Any]]:
        """(seq, t, value) of one channel, in time order, optionally paged by `after_seq`."""
        if channel not in CHANNEL:
            raise UserError(f"unknown channel {channel!r}; see the telemetry dictionary")
        sql = (
            "SELECT s.seq, f.t, s.value FROM samples s JOIN frames f ON f.seq = s.seq "
            "WHERE s.channel = ? AND s.seq > ?"
        )
        params: list[Any] = [channel, after_seq]
        if since is not None:
            sql += " AND f.t >= ?"
            params.append(since)
        if until is not None:
            sql += " AND f.t <= ?"
            params.append(until)
        sql += " ORDER BY s.seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return self.db.execute(sql, params).fetchall()

    def latest(self) -> dict[str, tuple[int, float, Any]]:
        return {
            name: (seq, t, value)
            for name, seq, t, value in self.db.execute("SELECT channel, seq, t, value FROM latest")
        }

    def events(
        self,
        severity: str | None = None,
        after_id: int = 0,
        limit: int | None = None,
        *,
        max_id: int | None = None,
        newest: bool = False,
    ) -> list[dict]:
        """Events at or above `severity` with after_id < id <= max_id, in id order: the first
        `limit`, or the last `limit` if `newest`."""
        sql, params = "SELECT id, seq, t, name, severity, message, data FROM events WHERE id > ?", [after_id]
        if max_id is not None:
            sql += " AND id <= ?"
            params.append(max_id)
        if severity is not None:
            if severity not in SEVERITIES:
                raise UserError(f"unknown severity {severity!r}; one of {', '.join(SEVERITIES)}")
            allowed = SEVERITIES[SEVERITIES.index(severity) :]
            sql += f" AND severity IN ({','.join('?' * len(allowed))})"
            params += list(allowed)
        sql += " ORDER BY id DESC" if newest else " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        rows = self.db.execute(sql, params).fetchall()
        if newest:
            rows.reverse()
        return [
            {
                "id": i,
                "seq": s,
                "t": t,
                "name": n,
                "severity": sev,
                "message": m,
                "data": json.loads(d or "{}"),
            }
            for i, s, t, n, sev, m, d in rows
        ]

    def frames(
        self, after_seq: int = 0, max_seq: int | None = None, limit: int = 1000
    ) -> list[tuple[int, float, dict]]:
        """Whole frames (seq, t, {channel: value}) with after_seq < seq <= max_seq, in order."""
        sql, params = "SELECT seq, t FROM frames WHERE seq > ?", [after_seq]
        if max_seq is not None:
            sql += " AND seq <= ?"
            params.append(max_seq)
        frames = self.db.execute(sql + " ORDER BY seq LIMIT ?", (*params, int(limit))).fetchall()
        if not frames:
            return []
        values: dict[int, dict] = {seq: {} for seq, _ in frames}
        # samples is keyed (channel, seq): naming the channels lets SQLite range-scan each one.
        marks = ",".join("?" * len(CHANNEL))
        for seq, channel, value in self.db.execute(
            f"SELECT seq, channel, value FROM samples WHERE channel IN ({marks}) AND seq BETWEEN ? AND ?",
            (*CHANNEL, frames[0][0], frames[-1][0]),
        ):
            values[seq][channel] = value
        return [(seq, t, values[seq]) for seq, t in frames]

    def frame_times(self) -> list[tuple[int, float]]:
        return self.db.execute("SELECT seq, t FROM frames ORDER BY seq").fetchall()

    def event_times(self) -> list[tuple[int, float]]:
        return self.db.execute("SELECT id, t FROM events ORDER BY id").fetchall()

    def last_event_id(self) -> int:
        return self.db.execute("SELECT MAX(id) FROM events").fetchone()[0] or 0

    def counts(self, max_seq: int | None = None, max_event_id: int | None = None) -> tuple[int, int]:
        """How many frames and events (up to a replay horizon, if given)."""
        frames = self.db.execute(
            "SELECT COUNT(*) FROM frames WHERE seq <= ?", (max_seq if max_seq is not None else 2**62,)
        )
        events = self.db.execute(
            "SELECT COUNT(*) FROM events WHERE id <= ?",
            (max_event_id if max_event_id is not None else 2**62,),
        )
        return frames.fetchone()[0], events.fetchone()[0]

    def all_meta(self) -> dict[str, Any]:
        return {k: json.loads(v) for k, v in self.db.execute("SELECT key, value FROM meta")}

    def changed_since(self, version: int | None) -> tuple[bool, int]:
        """Whether another connection committed since `version` (SQLite's data_version)."""
        now = self.db.execute("PRAGMA data_version").fetchone()[0]
        return now != version, now

    # -- commands ------------------------------------------------------------------------------
    def queue_command(
        self,
        name: str,
        args: dict[str, Any] | None = None,
        *,
        now: float,
        idempotency_key: str | None = None,
        at_t: float | None = None,
        cid: int | None = None,
        status: str = "queued",
    ) -> dict:
        """Queue a command for the mission (time-tagged: to run at `at_t`); a repeated
        idempotency key returns the first one. `cid` keeps the ground's id for an uplinked
        command (a repeated one is ignored)."""
        args = dict(args or {})
        check_command(name, args)
        if at_t is not None and at_t != at_t:
            raise UserError("a time tag must be a number of seconds")
        try:
            with self.db:
                if idempotency_key is not None:
                    known = self.command_by_key(idempotency_key)
                    if known is not None:
                        return known
                if cid is not None:
                    self.db.execute(
                        "INSERT OR IGNORE INTO commands (id, name, args, status, idempotency_key, created_t,"
                        " updated_t, at_t) VALUES (?,?,?,?,?,?,?,?)",
                        (cid, name, json.dumps(args), status, idempotency_key, now, now, at_t),
                    )
                else:
                    cid = self.db.execute(
                        "INSERT INTO commands (name, args, status, idempotency_key, created_t, updated_t, at_t) "
                        "VALUES (?,?,?,?,?,?,?)",
                        (name, json.dumps(args), status, idempotency_key, now, now, at_t),
                    ).lastrowid
        except sqlite3.OperationalError as exc:
            raise UserError(f"cannot write telemetry archive {self.path}: {exc}") from None
        return self.command(cid)

    def pending_commands(self, t: float | None = None) -> list[dict]:
        """Commands not yet picked up, oldest first; with `t`, only those whose time tag (if
        any) has come."""
        if t is None:
            return self._commands("WHERE status IN ('queued', 'accepted') ORDER BY id")
        return self._commands(
            "WHERE status IN ('queued', 'accepted') AND (at_t IS NULL OR at_t <= ?) ORDER BY id", (t,)
        )

    def set_command_status(
        self, cid: int, status: str, *, now: float, result: str | None = None, event_t: float | None = None
    ) -> dict:
        """Move a command on, and record the change as a `command` event in the same transaction."""
        if status not in COMMAND_STATES:
            raise ValueError(f"unknown command status {status!r}")
        with self.db:
            self.db.execute(
                "UPDATE commands SET status=?, updated_t=?, result=? WHERE id=?", (status, now, result, cid)
            )
            cmd = self.command(cid)
            self._insert_events(
                None,
                now if event_t is None else event_t,
                [Event("command", {"name": cmd["name"], "status": status, "id": cid, "result": result})],
            )
        return cmd

    def command(self, cid: int) -> dict:
        rows = self._commands("WHERE id=?", (cid,))
        if not rows:
            raise UserError(f"no command {cid}")
        return rows[0]

    def command_by_key(self, idempotency_key: str) -> dict | None:
        rows = self._commands("WHERE idempotency_key=?", (idempotency_key,))
        return rows[0] if rows else None

    def commands(self, after_id: int = 0, limit: int | None = None) -> list[dict]:
        sql, params = "WHERE id > ? ORDER BY id", [after_id]
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return self._commands(sql, params)

    def _commands(self, where: str, params=()) -> list[dict]:
        cols = ("id", "name", "args", "status", "idempotency_key", "created_t", "updated_t", "result", "at_t")
        rows = self.db.execute(f"SELECT {', '.join(cols)} FROM commands {where}", params).fetchall()
        out = []
        for row in rows:
            d = dict(zip(cols, row))
            d["args"] = json.loads(d["args"])
            out.append(d)
        return out


def check_command(name: str, args: dict[str, Any]) -> None:
    """Refuse a command the dictionary does not declare, arguments of the wrong type, or out of range."""
    if name not in COMMAND:
        raise UserError(f"unknown command {name!r}; one of {', '.join(COMMAND)}")
    spec = COMMAND[name]
    declared = {a.name: a for a in spec.arguments}
    extra = set(args) - declared.keys()
    if extra:
        raise UserError(f"command {name} takes no argument {sorted(extra)[0]!r}")
    for a in spec.arguments:
        if a.name not in args:
            raise UserError(f"command {name} needs {a.name}")
        value = args[a.name]
        if not _is_argument_of_type(value, a.type):
            raise UserError(f"command {name}: {a.name} must be {_TYPE_WORDS[a.type]}, got {_shown(value)}")
        if a.type in ("float", "int") and (
            (a.minimum is not None and value < a.minimum) or (a.maximum is not None and value > a.maximum)
        ):
            raise UserError(f"command {name}: {a.name} must be within [{a.minimum}, {a.maximum}]")


_TYPE_WORDS = {
    "float": "a finite number",
    "int": "a whole number",
    "bool": "true or false",
    "str": "a string",
}


def _shown(value: Any) -> str:
    text = json.dumps(value, default=repr)
    return text if len(text) <= 40 else text[:37] + "..."


def _is_argument_of_type(value: Any, kind: str) -> bool:
    """Whether a JSON-decoded value is of a declared argument type (bool is not a number here)."""
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    if kind == "int":
        return isinstance(value, int) or (math.isfinite(value) and value == int(value))
    if kind == "float":
        return math.isfinite(value)
    raise ValueError(f"the dictionary declares an argument type {kind!r} that check_command does not know")
