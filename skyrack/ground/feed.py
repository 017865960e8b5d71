"""The live feed: one thread watches the archive and every stream client reads from its buffer.

Polling is one `PRAGMA data_version` per interval (it changes only when another connection
commits), so a quiet archive costs nothing, and fifty clients cost one reader, not fifty. The
buffer keeps the most recent items; a client whose cursor is older than the buffer reads its
backlog straight from the archive, then joins the buffer, with nothing missed in between (see
`skyrack.ground.stream`).

A finished run is replayed: the feed reveals its frames as if the mission were flying again,
`replay_speed` simulated seconds per wall second (0: all at once), and REST reads stop at the
same horizon, so the page and the API tell the same story.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
import time
from pathlib import Path

import numpy as np

from skyrack.ground.stream import Cursor, Item, merge, read_frames
from skyrack.telemetry.archive import Archive

POLL_S = 0.02
BUFFER_ITEMS = 4096
CHUNK = 500  # items read from the archive per query


class ArchiveReaders:
    """One read-only connection per thread (sqlite3 connections stay in their thread)."""

    def __init__(self, path: Path):
        self.path = path
        self._local = threading.local()
        self._all: list[Archive] = []
        self._lock = threading.Lock()

    def get(self) -> Archive:
        archive = getattr(self._local, "archive", None)
        if archive is None:
            archive = Archive(self.path, readonly=True)
            # The connection may be closed from the shutdown thread, nothing else shares it.
            self._local.archive = archive
            with self._lock:
                self._all.append(archive)
        return archive

    def close(self) -> None:
        with self._lock:
            for archive in self._all:
                try:
                    archive.close()
                except Exception:  # a connection owned by another thread: the process exit frees it
                    pass
            self._all.clear()


class Feed:
    def __init__(
        self,
        path: Path,
        *,
        live: bool,
        replay_speed: float = 60.0,
        poll_s: float = POLL_S,
        buffer_items: int = BUFFER_ITEMS,
    ):
        self.path = path
        self.live = live
        self.replay_speed = replay_speed
        self.poll_s = poll_s
        self.buffer_items = buffer_items
        self._lock = threading.Lock()
        self._items: list[Item] = []
        self._base = Cursor()
        self._end = Cursor()
        self._horizon: tuple[int, int, float] | None = None  # replay: (max seq, max event id, t)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._replay_index: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None
        self._replay_t0 = 0.0
        self._replay_wall0 = 0.0
        self.error: str | None = None

    # -- lifecycle (called from the event loop) ---------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._changed = asyncio.Event()
        with Archive(self.path, readonly=True) as archive:
            last = archive.last_frame()
            last_event = archive.last_event_id()
            if self.live:
                # Start the buffer a little before the end; older items are read on demand.
                self._base = self._end = Cursor(
                    max(0, (last[0] if last else 0) - 256), max(0, last_event - 256)
                )
            else:
                self._load_replay_index(archive)
        self._thread = threading.Thread(target=self._run, name="ground-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _load_replay_index(self, archive: Archive) -> None:
        frames = np.array(archive.frame_times(), dtype=float)
        events = np.array(archive.event_times(), dtype=float)
        frames = frames.reshape(-1, 2)
        events = events.reshape(-1, 2)
        # An event is revealed once every event before it (by id) is, so the cursor stays a prefix.
        event_reveal_t = np.maximum.accumulate(events[:, 1]) if len(events) else events[:, 1]
        self._replay_index = (frames[:, 0], frames[:, 1], events[:, 0], event_reveal_t)
        self._replay_t0 = float(
            min(frames[:, 1].min() if len(frames) else np.inf, events[:, 1].min() if len(events) else np.inf)
        )
        self._replay_wall0 = time.monotonic()

    # -- the watcher thread ------------------------------------------------------------------
    def _run(self) -> None:
        try:
            with Archive(self.path, readonly=True) as archive:
                version = None
                while not self._stop.is_set():
                    if self.live:
                        changed, version = archive.changed_since(version)
                        if not changed:
                            self._stop.wait(self.poll_s)
                            continue
                        more = self._read_more(archive, None, None)
                    else:
                        max_seq, max_eid = self._advance_horizon()
                        more = self._read_more(archive, max_seq, max_eid)
                    if not more:
                        self._stop.wait(self.poll_s)
        except Exception as exc:  # keep serving what is buffered; /api/summary reports it
            self.error = f"{type(exc).__name__}: {exc}"

    def _advance_horizon(self) -> tuple[int, int]:
        seqs, ts, eids, ets = self._replay_index
        if self.replay_speed <= 0:
            horizon_t = np.inf
        else:
            horizon_t = self._replay_t0 + self.replay_speed * (time.monotonic() - self._replay_wall0)
        n = int(np.searchsorted(ts, horizon_t, side="right"))
        m = int(np.searchsorted(ets, horizon_t, side="right"))
        max_seq = int(seqs[n - 1]) if n else 0
        max_eid = int(eids[m - 1]) if m else 0
        shown_t = float(min(horizon_t, max(ts[-1] if len(ts) else -np.inf, ets[-1] if len(ets) else -np.inf)))
        with self._lock:
            self._horizon = (max_seq, max_eid, shown_t)
        return max_seq, max_eid

    def _read_more(self, archive: Archive, max_seq: int | None, max_eid: int | None) -> bool:
        """Append what was committed (up to the replay horizon); True if a chunk was full."""
        end = self._end
        # Events first: a frame committed in between then comes before its events, not after.
        events = archive.events(after_id=end.event_id, max_id=max_eid, limit=CHUNK)
        frames = read_frames(archive, end.seq, max_seq, CHUNK)
        if not frames and not events:
            return False
        items = merge(frames, events, end)
        with self._lock:
            self._items.extend(items)
            self._end = items[-1].cursor
            excess = len(self._items) - self.buffer_items
            if excess > 0:
                self._base = self._items[excess - 1].cursor
                del self._items[:excess]
        self.wake()
        return len(frames) == CHUNK or len(events) == CHUNK

    def wake(self) -> None:
        """Wake every waiting stream (from any thread)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._notify)

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # -- what clients see --------------------------------------------------------------------
    @property
    def end(self) -> Cursor:
        with self._lock:
            return self._end

    def horizon(self) -> tuple[int, int, float] | None:
        """Replay: (last visible seq, last visible event id, simulated time shown); live: None."""
        with self._lock:
            return self._horizon if not self.live else None

    def changed(self) -> asyncio.Event:
        """Set at the next append; take it before reading, wait on it when nothing was new."""
        return self._changed

    def buffered_after(self, cursor: Cursor, limit: int = CHUNK) -> list[Item] | None:
        """Items after `cursor` from the buffer, or None when the cursor is older than it."""
        with self._lock:
            if not cursor.covers(self._base):
                return None
            items = self._items
            start = bisect.bisect_left(
                range(len(items)),
                True,
                key=lambda k: items[k].cursor.seq > cursor.seq or items[k].cursor.event_id > cursor.event_id,
            )
            out = []
            for item in items[start:]:
                if item.key > (cursor.seq if item.kind == "frame" else cursor.event_id):
                    out.append(item)
                    if len(out) >= limit:
                        break
            return out

    def backlog_after(self, archive: Archive, cursor: Cursor) -> list[Item]:
        """Items after `cursor` up to the buffer's start, straight from the archive (any thread)."""
        with self._lock:
            base = self._base
        events = archive.events(after_id=cursor.event_id, max_id=base.event_id, limit=CHUNK)
        frames = read_frames(archive, cursor.seq, base.seq, CHUNK)
        return merge(frames, events, cursor)
