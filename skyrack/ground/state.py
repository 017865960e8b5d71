"""What one ground server holds for the run it serves: the archive's readers and its one writer,
the live feed, the orbit twin and the assistant, each made once and shared by the routes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from fastapi import HTTPException

from skyrack.ground.contact import ground_clock
from skyrack.ground.feed import ArchiveReaders, Feed
from skyrack.telemetry.archive import Archive
from skyrack.telemetry.dictionary import CHANNEL
from skyrack.telemetry.runs import RunDir, twin_for


class Ground:
    """The state one server holds: the run, its feed, readers, the writer, the assistant."""

    def __init__(self, run: RunDir, token: str, replay_speed: float, assistant_backend: str):
        self.run = run
        meta = run.meta()
        self.run_id = meta.run_id or run.run_id
        self.token = token
        # The ground knows what came down: the ground archive over a real link (skyrack.link).
        self.archive_path = run.served_archive
        self.feed = Feed(self.archive_path, live=meta.live, replay_speed=replay_speed)
        self.readers = ArchiveReaders(self.archive_path)
        self.assistant_backend = assistant_backend
        self._assistant = None
        self._twin = None
        # sqlite3 connections stay in their thread: one thread writes, one thread runs the model.
        self.writer_pool = ThreadPoolExecutor(1, thread_name_prefix="ground-writer")
        self.assistant_pool = ThreadPoolExecutor(1, thread_name_prefix="ground-assistant")
        self._writer: Archive | None = None
        self._ground_writer = None
        self.closing = False

    def close_streams(self) -> None:
        """At shutdown: end every stream now rather than after the graceful-shutdown timeout."""
        self.closing = True
        self.feed.wake()

    def archive(self) -> Archive:
        return self.readers.get()

    def writer(self) -> Archive:
        if self._writer is None:
            self._writer = Archive(self.archive_path)
        return self._writer

    def meta(self) -> dict:
        meta = self.archive().all_meta()
        if meta.get("status") == "running" and self.run.writer_gone():
            meta["status"] = "interrupted"  # killed without a word (RunMeta.read says the same)
        return meta

    def over_link(self) -> bool:
        """A real link (ground or relay): the ground knows only what came down."""
        return self.archive_path != self.run.archive

    def ground_writer(self):
        """The ground archive, for what the ground itself records (questions for the satellite)."""
        if self._ground_writer is None:
            from skyrack.link.ground import GroundArchive

            self._ground_writer = GroundArchive(self.archive_path)
        return self._ground_writer

    def twin(self):
        if self._twin is None:
            self._twin = twin_for(self.run)
        return self._twin

    def now(self) -> float | None:
        """The simulated time the ground sees: its own clock over a real link, else the last
        frame (or the replay horizon)."""
        horizon = self.feed.horizon()
        if horizon is not None:
            return horizon[2] if horizon[0] else None
        clock = ground_clock(self.archive())
        if clock is not None:
            return clock
        last = self.archive().last_frame()
        return last[1] if last else None

    def latest(self) -> dict:
        horizon = self.feed.horizon()
        archive = self.archive()
        if horizon is None:
            rows = archive.latest()
            last = archive.last_frame()
        else:
            frame = archive.frames(horizon[0] - 1, horizon[0], 1)
            rows = {c: (seq, t, v) for seq, t, values in frame for c, v in values.items()}
            last = (frame[0][0], frame[0][1]) if frame else None
        values = {}
        for name, (seq, t, value) in rows.items():
            if name in CHANNEL:
                values[name] = {
                    "value": value,
                    "seq": seq,
                    "t": t,
                    "unit": CHANNEL[name].unit,
                    "state": CHANNEL[name].limit_state(value),
                }
        return {"seq": last[0] if last else None, "t": last[1] if last else None, "values": values}

    def assistant(self):
        if self._assistant is None:
            try:
                from skyrack.assistant.service import Assistant
            except ImportError:
                raise HTTPException(
                    503,
                    "the assistant is not part of this installation (skyrack.assistant.service is missing)",
                ) from None
            self._assistant = Assistant.create(backend=self.assistant_backend)
        return self._assistant
