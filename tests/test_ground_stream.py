"""The stream's cursor arithmetic and the feed's buffer, in process, with a tiny buffer so that
trimming and the archive backlog are both exercised."""

from __future__ import annotations

import asyncio
import json

import pytest

from skyrack.ground.feed import Feed
from skyrack.ground.stream import Cursor, merge
from skyrack.telemetry.archive import Archive, Event


def test_cursor_parses_strictly():
    assert Cursor.parse("12-3") == Cursor(12, 3) and str(Cursor(12, 3)) == "12-3"
    for bad in ("", "12", "a-b", "-1-2", "1-2-3", "9" * 16 + "-0"):
        with pytest.raises(ValueError):
            Cursor.parse(bad)


def test_merge_orders_by_time_and_keeps_each_prefix():
    frames = [{"seq": 5, "t": 10.0}, {"seq": 6, "t": 20.0}]
    events = [{"id": 8, "t": 10.0}, {"id": 9, "t": 15.0}]
    items = merge(frames, events, Cursor(4, 7))
    assert [(i.kind, i.key) for i in items] == [("frame", 5), ("event", 8), ("event", 9), ("frame", 6)]
    assert [str(i.cursor) for i in items] == ["5-7", "5-8", "5-9", "6-9"]


def read_all(feed: Feed, archive: Archive, cursor: Cursor) -> list[tuple[str, int]]:
    """What a client starting at `cursor` receives, by the server's own rule."""
    out = []
    while True:
        batch = feed.buffered_after(cursor, limit=7)
        if batch is None:
            batch = feed.backlog_after(archive, cursor)
        if not batch:
            return out
        out += [(i.kind, i.key) for i in batch]
        cursor = batch[-1].cursor


def test_feed_buffer_trims_and_clients_catch_up_from_the_archive(tmp_path):
    path = tmp_path / "telemetry.sqlite"
    with Archive(path) as archive:
        archive.write_frame(0.0, {"orbit.alt_km": 500.0})

    async def scenario():
        feed = Feed(path, live=True, buffer_items=8, poll_s=0.005)
        feed.start(asyncio.get_running_loop())
        with Archive(path) as writer:
            for k in range(1, 60):
                events = [Event("eclipse_entry", {})] if k % 7 == 0 else []
                writer.write_frame(float(k), {"orbit.alt_km": 500.0 + k}, events)
                if k % 11 == 0:
                    writer.write_events(k + 0.5, [Event("mission", {"message": f"note {k}"})])
        for _ in range(400):
            if feed.end.seq == 60:
                break
            await asyncio.sleep(0.01)
        feed.stop()
        return feed

    feed = asyncio.run(scenario())
    assert feed.end.seq == 60 and feed.buffered_after(Cursor(0, 0)) is None  # trimmed: 0 is behind the buffer
    with Archive(path, readonly=True) as archive:
        n_events = len(archive.events())
        full = read_all(feed, archive, Cursor(0, 0))
        assert [k for kind, k in full if kind == "frame"] == list(range(1, 61))
        assert [k for kind, k in full if kind == "event"] == list(range(1, n_events + 1))
        frame = json.loads(feed.buffered_after(Cursor(59, n_events))[0].data)
        assert frame["seq"] == 60 and frame["values"] == {"orbit.alt_km": 559.0}

        # Resuming from any point of the full stream gives exactly the rest (each kind in its order;
        # how frames and events interleave may differ where the reads were cut differently).
        def by_kind(items):
            return [k for kind, k in items if kind == "frame"], [k for kind, k in items if kind == "event"]

        cursor = Cursor(0, 0)
        for position, (kind, key) in enumerate(full):
            cursor = Cursor(key, cursor.event_id) if kind == "frame" else Cursor(cursor.seq, key)
            if position % 9 == 0:
                assert by_kind(read_all(feed, archive, cursor)) == by_kind(full[position + 1 :])
