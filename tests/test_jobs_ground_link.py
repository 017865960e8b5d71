"""The link's file downlink by priority: customers' job results go down before the housekeeping
backlog, the highest priority first; checkpoints and samples after the backlog, as before."""

from dataclasses import replace

import numpy as np
import pytest

from skyrack.link import files
from skyrack.link import packets as P
from skyrack.link.contacts import Schedule, station_contacts
from skyrack.link.radio import radio_of
from skyrack.link.session import Link
from skyrack.orbit.twin import OrbitTwin
from skyrack.profile import load_profile
from skyrack.telemetry.archive import Archive

START = 1785066359.0  # the default mission's start for the built-in elements


@pytest.fixture(scope="module")
def twin():
    return OrbitTwin(load_profile("starcloud-1").satellite)


@pytest.fixture(scope="module")
def radio():
    return radio_of(load_profile("starcloud-1"))


def blob(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def test_job_results_go_down_before_the_backlog_highest_priority_first(tmp_path, twin, radio):
    slow = replace(radio, downlink_rate_bps=9600.0)  # 12 kB a frame: the order shows across frames
    first = Schedule(station_contacts(twin, slow, START, START + 3 * 3600)).contacts[0]
    frames = int((first.rise_s - START) // 10) + 40  # a backlog of every frame before the contact
    store = Archive(tmp_path / "telemetry.sqlite")
    link = Link.build(
        "ground", slow, twin, store, tmp_path / "ground.sqlite", start=START, end=START + frames * 10,
        seed=5, loss=0.0, corruption=0.0,
    )  # fmt: skip
    contents = {
        "checkpoints/ckpt.bin": blob(40_000, 1),
        "jobs/1/screen.json": blob(5_000, 2),
        "jobs/2/completions.json": blob(5_000, 3),
    }
    for name, data in contents.items():
        (tmp_path / name.replace("/", "-")).write_bytes(data)
    background = link.store.offer_file(tmp_path / "checkpoints-ckpt.bin", "checkpoints/ckpt.bin")
    low = link.store.offer_file(tmp_path / "jobs-1-screen.json", "jobs/1/screen.json", priority=2)
    high = link.store.offer_file(tmp_path / "jobs-2-completions.json", "jobs/2/completions.json", priority=7)
    assert background["priority"] == files.BACKGROUND
    for k in range(frames):
        t = START + k * 10.0
        store.write_frame(t, {"train.step": k}, [])
        link.carry(t, t + 10.0)
    db = link.ground.db
    segments = {}  # file id -> receive order of its segments
    for pid, raw in db.execute("SELECT id, raw FROM packets WHERE apid=? ORDER BY id", (P.APID_FILE_DATA,)):
        segments.setdefault(P.decode(raw).index, []).append(pid)
    # each frame's first arrival (the ground stores a frame once), in receive order
    first_arrival = dict(
        db.execute(
            "SELECT r.id, MIN(p.id) FROM receipts r JOIN packets p ON p.apid=? AND p.received_t=r.received_t "
            "WHERE r.kind='hk' GROUP BY r.id",
            (P.APID_HK,),
        ).fetchall()
    )
    dumped = [first_arrival[s] for (s,) in db.execute("SELECT id FROM receipts WHERE kind='hk' AND dump=1")]
    before = [
        first_arrival[s]
        for (s,) in db.execute("SELECT id FROM receipts WHERE kind='hk' AND t<?", (first.rise_s,))
    ]
    assert len(before) == int((first.rise_s - START) // 10) + 1  # every frame from before the contact
    # the high-priority result whole before the low one begins, both before the backlog's dump
    assert max(segments[high["id"]]) < min(segments[low["id"]])
    assert max(segments[low["id"]]) < min(dumped)
    # the checkpoint after the backlog: every frame from before the contact was down before it began
    assert min(segments[background["id"]]) > max(before)
    listing = {f["name"]: f for f in link.ground.files.listing()}
    for name in ("jobs/1/screen.json", "jobs/2/completions.json"):
        assert listing[name]["status"] == "complete"
        assert (tmp_path / "downlink" / name).read_bytes() == contents[name]
    link.close()


def test_a_lost_segment_of_a_result_is_sent_again_before_the_backlog(tmp_path, twin, radio):
    """Retransmissions keep the class of their file: a result's NAKed segments go before the dump."""
    state = {"files": []}
    (tmp_path / "a").write_bytes(blob(3000, 4))
    (tmp_path / "b").write_bytes(blob(3000, 5))
    bg = files.offer(state, tmp_path / "a", "checkpoints/a")
    job = files.offer(state, tmp_path / "b", "jobs/3/r", priority=0)
    for f in state["files"]:
        f["sent"] = f["segments"]  # all sent once
    files.receive_tc(state, "file_nak", {"file": bg["id"], "first": 0, "last": 0})
    files.receive_tc(state, "file_nak", {"file": job["id"], "first": 1, "last": 1})
    sent = []
    counts = {}

    def count(apid, peek=False):
        n = counts.get(apid, 0)
        if not peek:
            counts[apid] = n + 1
        return n

    def fits(raw):
        sent.append(P.decode(raw))
        return True

    assert files.send(state, START, fits, count, before_backlog=True)
    data = [(p.index, p.body["segment"]) for p in sent if p.kind == "file_data"]
    assert data == [(job["id"], 1)]
    assert state["file_naks"] == [[bg["id"], 0, 0]]  # the checkpoint's waits for its own turn
    sent.clear()
    assert files.send(state, START, fits, count)
    assert [(p.index, p.body["segment"]) for p in sent if p.kind == "file_data"] == [(bg["id"], 0)]
    assert state["file_naks"] == []
