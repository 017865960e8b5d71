"""The space-ground link: contacts and rates, CCSDS packets, the lossy downlink, the ground archive."""

import math

import numpy as np
import pytest
from skyfield.api import EarthSatellite, wgs84

from skyrack.link import packets as P
from skyrack.link.contacts import Schedule, downlink_rate_bps, eb_n0_db, station_contacts
from skyrack.link.ground import GroundArchive
from skyrack.link.radio import radio_of
from skyrack.link.session import Channel, Link
from skyrack.orbit.passes import look_angles
from skyrack.orbit.stations import resolve_station
from skyrack.orbit.timebase import skyfield_time
from skyrack.orbit.twin import OrbitTwin
from skyrack.profile import load_profile
from skyrack.sources.ephemeris import timescale
from skyrack.telemetry.archive import Archive, Event
from skyrack.telemetry.dictionary import CHANNELS, EVENTS

START = 1785066359.0  # the default mission's start for the built-in elements


@pytest.fixture(scope="module")
def profile():
    return load_profile("starcloud-1")


@pytest.fixture(scope="module")
def twin(profile):
    return OrbitTwin(profile.satellite)


@pytest.fixture(scope="module")
def radio(profile):
    return radio_of(profile)


# -- contacts and rates --------------------------------------------------------------------------
def test_contacts_are_the_passes_skyfield_finds(profile, twin, radio):
    contacts = station_contacts(twin, radio, START, START + 86400)
    lines = profile.satellite.satrec  # the same elements, through Skyfield's own SGP4 and frames
    sat = EarthSatellite.from_satrec(lines, timescale())
    ref = []
    for key in radio.stations:
        st = resolve_station(key)
        topos = wgs84.latlon(st.lat_deg, st.lon_deg, elevation_m=st.height_km * 1000)
        times, kinds = sat.find_events(topos, skyfield_time(START), skyfield_time(START + 86400), 10.0)
        ts = [t.utc_datetime().timestamp() for t in times]
        rises = [t for t, k in zip(ts, kinds) if k == 0]
        sets = [t for t, k in zip(ts, kinds) if k == 2]
        ref += [(st.name, r, s) for r, s in zip(rises, sets)]
    ref.sort(key=lambda x: x[1])
    assert len(contacts) == len(ref) >= 15
    for c, (name, rise, set_) in zip(contacts, ref):
        assert c.station == name
        assert abs(c.set_s - set_) < 2
        assert abs(c.rise_s - rise) < 2 or c.rise_s > rise  # an overlapping pass waits for the antenna
    for a, b in zip(contacts, contacts[1:]):
        assert a.set_s <= b.rise_s


def test_default_mission_has_two_contacts(twin, radio):
    end = START + 2.1 * twin.period_s
    inside = [c for c in station_contacts(twin, radio, START, end) if c.rise_s < end]
    assert len(inside) >= 2


def test_contact_volume_is_the_integral_of_its_rate(twin, radio):
    from dataclasses import replace

    weak = replace(radio, tx_power_w=0.02)  # a weaker radio, so that the rate changes over the pass
    (c, *_) = station_contacts(twin, weak, START, START + 3 * 3600)
    fine = np.linspace(c.rise_s, c.set_s, 40001)
    _, _, rng = look_angles(twin, resolve_station(c.key), fine)
    rate = downlink_rate_bps(weak, rng)
    assert rate.min() < rate.max()  # the ladder steps during the pass
    integral = float(np.sum(0.5 * (rate[1:] + rate[:-1]) * np.diff(fine)))
    assert c.volume_bits == pytest.approx(integral, rel=0.01)
    mid = 0.5 * (c.rise_s + c.set_s)
    assert c.bits_between(c.rise_s - 100, mid) + c.bits_between(mid, c.set_s + 100) == pytest.approx(
        c.volume_bits
    )


def test_link_budget_closes_and_fails_as_expected(radio):
    assert eb_n0_db(radio, 2000.0, radio.downlink_rate_bps) > radio.required_eb_n0_db
    assert downlink_rate_bps(radio, [800.0])[0] == radio.downlink_rate_bps
    assert downlink_rate_bps(radio, [1e9])[0] == 0.0


def test_schedule_state(twin, radio):
    sched = Schedule(station_contacts(twin, radio, START, START + 86400))
    first = sched.contacts[0]
    before = sched.state(first.rise_s - 60)
    assert not before["in_contact"] and before["next_station"] == first.station
    assert before["next_in_s"] == pytest.approx(60)
    inside = sched.state(first.rise_s + 30)
    assert inside["in_contact"] and inside["left_s"] == pytest.approx(first.duration_s - 30)


# -- packets ---------------------------------------------------------------------------------------
def random_frame(rng):
    values = {}
    for c in CHANNELS:
        if c.type == "float":
            values[c.name] = (
                None if rng.random() < 0.05 else float(rng.normal() * 10.0 ** rng.integers(-3, 6))
            )
        elif c.type == "int":
            values[c.name] = int(rng.integers(-(2**62), 2**62))
        elif c.type == "bool":
            values[c.name] = bool(rng.random() < 0.5)
        else:
            values[c.name] = "".join(rng.choice(list("abcé Ωxyz"), size=int(rng.integers(0, 12))))
    return values


@pytest.mark.parametrize("n", [10_000, pytest.param(100_000, marks=pytest.mark.slow)])
def test_frames_round_trip(n):
    rng = np.random.default_rng(1)
    base = 1785066359.0
    template = [random_frame(rng) for _ in range(200)]
    for i in range(n):
        values = template[i % 200]
        t = base + i * 10.0 + (i % 1000) / 1000.0
        p = P.decode(P.encode_frame(i + 1, t, values, i))
        assert p.kind == "hk" and p.index == i + 1 and p.seq_count == i % P.SEQ_MODULO
        assert p.t == pytest.approx(t, abs=5e-4)
        assert p.body == values


def test_events_round_trip():
    for i, e in enumerate(EVENTS):
        data = (
            {"name": "ping", "status": "completed", "id": 3, "result": "pong"}
            if e.name == "command"
            else {"x": i}
        )
        event = {
            "id": i + 1,
            "seq": i or None,
            "t": 1e9 + i,
            "name": e.name,
            "severity": e.severity,
            "message": "m ü",
            "data": data,
        }
        p = P.decode(P.encode_event(event, i))
        assert p.index == i + 1 and p.kind == ("verify" if e.name == "command" else "event")
        assert p.body == {k: event[k] for k in ("seq", "name", "severity", "message", "data")}


def test_every_single_bit_flip_is_caught():
    raw = P.encode_frame(5, 1785066359.0, random_frame(np.random.default_rng(2)), 5)
    for bit in range(len(raw) * 8):
        bad = bytearray(raw)
        bad[bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(P.PacketError):
            P.decode(bytes(bad))


def test_bad_packets_say_why():
    raw = P.encode_frame(1, 1e9, {}, 0)
    reasons = {}
    for name, bad in {
        "truncated": raw[:-5],
        "length": raw + b"\0",
        "crc": raw[:-1] + bytes([raw[-1] ^ 0xFF]),
        "tc": P.encode_tc("command", {"id": 1, "name": "ping", "args": {}}, 0),
        "empty": b"",
    }.items():
        with pytest.raises(P.PacketError) as exc:
            P.decode(bad)
        reasons[name] = exc.value.reason
    assert reasons == {
        "truncated": "truncated",
        "length": "length",
        "crc": "crc",
        "tc": "type",
        "empty": "truncated",
    }


def test_ground_detects_gaps_and_duplicates(tmp_path):
    ground = GroundArchive(tmp_path / "ground.sqlite")
    packets = [P.encode_frame(i, 1e9 + i, {}, i) for i in range(1, 21)]
    keep = [p for i, p in enumerate(packets, 1) if i not in (4, 5, 6, 13)]
    # The store holds 24 frames and has sent 22: 23 and 24 are not missing, they are still to come.
    status = P.encode_store_status(1e9 + 30, 24, 0, 0, sent_frame=22)
    ground.receive([(p, 1e9 + 100) for p in keep] + [(status, 1e9 + 100)])
    assert ground.missing("hk") == [(4, 6), (13, 13), (21, 22)]
    counts = ground.receive([(packets[0], 1e9 + 200), (packets[3], 1e9 + 200)])
    assert counts["rejected"] == 1 and counts["frames"] == 1
    assert ground.missing("hk") == [(5, 6), (13, 13), (21, 22)]
    assert ground.rejects()[0]["reason"] == "duplicate"
    assert ground.frame_count() == 17


# -- the link ----------------------------------------------------------------------------------------
def fly_store(path, frames: int, t0: float, tick: float = 10.0, link=None, every_event: int = 7):
    """Write `frames` frames to an on-board store, carrying each frame's window over `link`."""
    store = Archive(path)
    for k in range(frames):
        t = t0 + k * tick
        values = {"orbit.lat_deg": float(k), "train.step": k, "orbit.region": "Chad"}
        events = [Event("eclipse_entry", {})] if k % every_event == 0 else []
        store.write_frame(t, values, events)
        if link is not None:
            link.carry(t, t + tick)
    return store


def test_every_frame_reaches_the_ground_exactly_once_at_ten_percent_loss(tmp_path, twin, radio):
    store = Archive(tmp_path / "telemetry.sqlite")
    frames = 1200
    link = Link.build(
        "ground",
        radio,
        twin,
        store,
        tmp_path / "ground.sqlite",
        start=START,
        end=START + frames * 10.0,
        seed=3,
        loss=0.10,
        corruption=0.02,
    )
    fly_store(tmp_path / "telemetry.sqlite", frames, START, link=link).close()
    during = link.ground.completeness()
    assert 0 < during["frames_received"] < frames  # the tail after the last contact is still on board
    done = link.drain(START + frames * 10.0)
    assert done is not None
    ground = link.ground
    assert ground.frame_count() == frames
    assert ground.db.execute("SELECT COUNT(DISTINCT seq), COUNT(*) FROM frames").fetchone() == (
        frames,
        frames,
    )
    assert ground.db.execute("SELECT COUNT(*) FROM samples").fetchone()[0] == frames * len(CHANNELS)
    assert [v for _, _, v in ground.history("orbit.lat_deg")] == [float(k) for k in range(frames)]
    assert ground.missing("hk") == [] and ground.missing("event") == []
    reasons = {r["reason"] for r in ground.rejects(1000)}
    assert "crc" in reasons or "truncated" in reasons
    # Received only inside contacts, never before generation.
    rows = ground.db.execute("SELECT t, received_t FROM receipts").fetchall()
    assert all(r >= t for t, r in rows)
    link.close()


def test_silence_between_contacts(tmp_path, twin, radio):
    store = Archive(tmp_path / "telemetry.sqlite")
    link = Link.build(
        "ground",
        radio,
        twin,
        store,
        tmp_path / "ground.sqlite",
        start=START,
        end=START + 3000,
        seed=1,
        loss=0.0,
        corruption=0.0,
    )
    first = link.schedule.contacts[0]
    k_before = int((first.rise_s - START) // 10) - 1
    fly_store(tmp_path / "telemetry.sqlite", k_before, START, link=link).close()
    assert link.ground.frame_count() == 0  # nothing yet: the satellite has not seen a station
    store2 = Archive(tmp_path / "telemetry.sqlite")
    for k in range(k_before, k_before + 5):
        t = START + k * 10
        store2.write_frame(t, {"train.step": k}, [])
        link.carry(t, t + 10)
    assert link.ground.frame_count() == k_before + 5  # the whole backlog in the contact's first frames
    latency = link.ground.latencies()
    assert latency.max() > 1000 and latency.min() < 20
    link.close()


def test_channel_is_seeded_and_loses_what_it_says():
    ch = Channel(0.1, 0.0, seed=5)
    packets = [bytes([i % 256]) * 10 for i in range(20000)]
    got = ch.carry(packets, 7)
    assert got == ch.carry(packets, 7)
    assert math.isclose(len(got) / len(packets), 0.9, abs_tol=0.01)


# -- commands over the link ----------------------------------------------------------------------
def fly_with_commands(tmp_path, twin, radio, frames, queue_at, loss=0.1):
    """Fly `frames` frames; at frame k of `queue_at` the ground queues (name, at_t)."""
    from skyrack.mission.uplink import Operator, execute

    store = Archive(tmp_path / "telemetry.sqlite")
    link = Link.build(
        "ground",
        radio,
        twin,
        store,
        tmp_path / "ground.sqlite",
        start=START,
        end=START + frames * 10.0,
        seed=9,
        loss=loss,
    )
    link.ground.set_meta("status", "running")
    op = Operator()
    for k in range(frames):
        t = START + k * 10.0
        for name, at_t in queue_at.get(k, []):
            link.ground.queue_command(name, {}, now=t, at_t=at_t)
        execute(store, t, op, lambda: "checkpoint")
        store.write_frame(t, {"train.step": k}, [])
        link.carry(t, t + 10.0)
    return store, link, op


def command_events(archive, status):
    return [e for e in archive.events() if e["name"] == "command" and e["data"]["status"] == status]


def test_a_command_sent_out_of_contact_runs_after_the_next_contact_begins(tmp_path, twin, radio):
    sched = Schedule(station_contacts(twin, radio, START, START + 3 * 3600))
    first = sched.contacts[0]
    frames = int((first.set_s - START) // 10) + 5
    store, link, op = fly_with_commands(tmp_path, twin, radio, frames, {3: [("pause_training", None)]})
    (dispatched,) = command_events(store, "dispatched")
    (accepted,) = command_events(store, "accepted")
    assert first.rise_s <= accepted["t"] <= dispatched["t"] < first.rise_s + 30
    assert op.paused
    ground_cmd = link.ground.commands()[0]
    assert ground_cmd["status"] == "completed" and ground_cmd["result"] == "training paused"
    link.close()


def test_a_time_tagged_command_runs_at_its_tag_out_of_contact(tmp_path, twin, radio):
    sched = Schedule(station_contacts(twin, radio, START, START + 3 * 3600))
    first = sched.contacts[0]
    tag = first.set_s + 1234.5  # well after the contact: the satellite is silent then
    assert sched.current(tag) is None
    frames = int((tag - START) // 10) + 5
    store, link, op = fly_with_commands(tmp_path, twin, radio, frames, {2: [("ping", tag)]}, loss=0.0)
    (accepted,) = command_events(store, "accepted")
    (dispatched,) = command_events(store, "dispatched")
    assert accepted["t"] < first.set_s
    assert tag <= dispatched["t"] < tag + 10.0  # at its tag, within one frame
    assert link.ground.commands()[0]["status"] == "accepted"  # its completion is still on board
    link.close()


# -- interoperability: the raw packet port and XTCE ------------------------------------------------
def test_xtce_is_valid_and_decodes_the_tcp_stream(tmp_path, twin, radio, cli):
    """What Yamcs would do: read the TCP stream split by the CCSDS length field, decode each packet
    with the exported XTCE (here with space-packet-parser, an independent XTCE implementation)."""
    import socket
    import time
    import warnings
    from pathlib import Path

    import space_packet_parser as spp
    from space_packet_parser.xtce.validation import validate_xtce

    from skyrack.ground.tmport import PacketPort, split_stream

    out = tmp_path / "skyrack.xml"
    result = cli("dictionary", "--xtce", "-o", str(out))
    assert result.returncode == 0, result.stderr
    xsd = Path(spp.__file__).parent / "xtce" / "schemas" / "SpaceSystem.xsd"
    assert validate_xtce(
        out, local_xsd=xsd, allow_schema_download=False, print_results=False, raise_on_error=False
    ).valid

    store = Archive(tmp_path / "telemetry.sqlite")
    first = Schedule(station_contacts(twin, radio, START, START + 3 * 3600)).contacts[0]
    frames = int((first.rise_s - START) // 10) + 3
    link = Link.build(
        "ground",
        radio,
        twin,
        store,
        tmp_path / "ground.sqlite",
        start=START,
        end=START + frames * 10,
        seed=2,
        loss=0.0,
        corruption=0.0,
    )
    fly_store(tmp_path / "telemetry.sqlite", frames, START, link=link).close()
    expected = link.ground.db.execute("SELECT COUNT(*) FROM packets").fetchone()[0]
    assert expected >= frames
    port = PacketPort(tmp_path / "ground.sqlite", "127.0.0.1", 0)
    port.start()
    data = b""
    try:
        with socket.create_connection(port.address, timeout=10) as sock:
            deadline = time.monotonic() + 20
            while len(split_stream(data)[0]) < expected and time.monotonic() < deadline:
                data += sock.recv(65536)
    finally:
        port.stop()
    packets, rest = split_stream(data)
    assert len(packets) == expected and rest == b""
    definition = spp.load_xtce(out)
    hk = []
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a packet longer or shorter than its XTCE layout fails here
        for raw in packets:
            parsed = definition.parse_bytes(raw)
            assert parsed["ccsds_apid"] in (P.APID_HK, P.APID_EVENT, P.APID_VERIFY, P.APID_STORE)
            if parsed["ccsds_apid"] == P.APID_HK:
                hk.append(parsed)
            elif parsed["ccsds_apid"] == P.APID_EVENT:
                assert (
                    parsed["event_type"] == "eclipse_entry" and parsed["event_message"] == "entering eclipse"
                )
    assert sorted(p["store_index"] for p in hk) == list(range(1, frames + 1))
    by_index = {p["store_index"]: p for p in hk}
    assert (
        by_index[5]["orbit_lat_deg"] == 4.0
        and by_index[5]["orbit_region"] == "Chad"
        and by_index[5]["train_step"] == 4
    )
    t5 = (by_index[5]["cds_days"] - P.CCSDS_EPOCH_DAYS) * 86400 + by_index[5]["cds_ms_of_day"] / 1000
    assert t5 == START + 40
    link.close()


# -- chat over the link --------------------------------------------------------------------------
def test_a_question_goes_up_in_contact_and_the_answer_comes_down(tmp_path, twin, radio):
    asked = []

    def answer(question, history, at):
        asked.append((question, at))
        with Archive(tmp_path / "telemetry.sqlite", readonly=True) as onboard:
            step = onboard.latest()["train.step"][2]  # what the satellite knows when the question arrives
        return {"answer": f"I am at step {step}", "mode": "composed", "verified": True, "facts": [1]}

    store = Archive(tmp_path / "telemetry.sqlite")
    first = Schedule(station_contacts(twin, radio, START, START + 3 * 3600)).contacts[0]
    frames = int((first.rise_s - START) // 10) + 3
    link = Link.build(
        "ground",
        radio,
        twin,
        store,
        tmp_path / "ground.sqlite",
        start=START,
        end=START + frames * 10,
        seed=4,
        loss=0.0,
        answer=answer,
    )
    for k in range(frames):
        t = START + k * 10.0
        if k == 2:
            q = link.ground.ask("How is training going?", [], t)
        store.write_frame(t, {"train.step": k}, [])
        link.carry(t, t + 10.0)
        if k >= 2 and t + 10 < first.rise_s:
            assert link.ground.question(q["id"])["status"] == "queued" and not asked
    ((question, at),) = asked
    assert question == "How is training going?" and first.rise_s <= at < first.rise_s + 10
    got = link.ground.question(q["id"])
    assert got["status"] == "answered" and got["answered_t"] >= at
    k_arrival = int(np.ceil((at - START) / 10)) - 1  # the newest frame stored when it arrived
    assert got["result"]["answer"] == f"I am at step {k_arrival}" and got["result"]["verified"]
    link.close()


# -- files ---------------------------------------------------------------------------------------
def test_a_file_survives_loss_over_several_contacts(tmp_path, twin, radio):
    from dataclasses import replace

    slow = replace(radio, downlink_rate_bps=4800.0)  # a UHF-class radio: the file needs several passes
    store = Archive(tmp_path / "telemetry.sqlite")
    frames = 6 * 360
    link = Link.build(
        "ground",
        slow,
        twin,
        store,
        tmp_path / "ground.sqlite",
        start=START,
        end=START + frames * 10,
        seed=6,
        loss=0.1,
    )
    blob = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
    (tmp_path / "ckpt.bin").write_bytes(blob)
    link.store.offer_file(tmp_path / "ckpt.bin", "checkpoints/ckpt.bin")
    fly_store(tmp_path / "telemetry.sqlite", frames, START, link=link).close()
    assert link.drain(START + frames * 10) is not None
    (f,) = link.ground.files.listing()
    assert (
        f["status"] == "complete"
        and (tmp_path / "downlink" / "checkpoints" / "ckpt.bin").read_bytes() == blob
    )
    arrivals = [
        r
        for (r,) in link.ground.db.execute("SELECT received_t FROM packets WHERE apid=?", (P.APID_FILE_DATA,))
    ]
    passes = {id(link.schedule.current(t - 1e-6) or link.schedule.current(t)) for t in arrivals}
    assert len(passes) >= 2  # it spanned contacts
    assert link.ground.frame_count() == frames  # and the telemetry still came first and whole
    link.close()


def test_the_command_cli_queues_on_the_ground_with_a_time_tag(tmp_path, cli):
    from conftest import assert_clean_error

    from skyrack.orbit.timebase import iso

    run = tmp_path / "runs" / "r1"
    with Archive(run / "telemetry.sqlite") as onboard:
        onboard.set_meta("status", "running")
        onboard.write_frame(START, {"train.step": 0})
    with GroundArchive(run / "ground.sqlite") as ground:
        ground.set_meta("status", "running")
        ground.set_meta("ground_clock", START + 600)
    result = cli(
        "command",
        "r1",
        "set_power_cap",
        "cap_w=300",
        "--at",
        iso(START + 3600),
        "--runs-dir",
        str(tmp_path / "runs"),
    )
    assert result.returncode == 0, result.stderr
    assert "next contact" in result.stdout
    with GroundArchive(run / "ground.sqlite", readonly=True) as ground:
        (cmd,) = ground.commands()
    assert cmd["name"] == "set_power_cap" and cmd["args"] == {"cap_w": 300.0} and cmd["at_t"] == START + 3600
    assert cmd["status"] == "queued" and cmd["created_t"] == START + 600
    with Archive(run / "telemetry.sqlite", readonly=True) as onboard:
        assert onboard.commands() == []  # nothing reaches the satellite but through the link
    runs = str(tmp_path / "runs")
    assert_clean_error(cli("command", "r1", "warp_drive", "--runs-dir", runs), "unknown command")
    assert_clean_error(cli("command", "r1", "ping", "--at", iso(START), "--runs-dir", runs), "past")
    assert_clean_error(
        cli("command", "r1", "set_power_cap", "cap_w=lots", "--runs-dir", runs), "not a number"
    )


def test_the_ground_survives_damaged_packets_that_pass_the_crc(tmp_path):
    """Bytes changed and the CRC made right again: the parsers behind the CRC must refuse, not crash."""
    from fastcrc import crc16

    rng = np.random.default_rng(11)
    event = {
        "id": 1,
        "seq": 1,
        "t": 1e9,
        "name": "command",
        "severity": "info",
        "message": "m",
        "data": {"id": 1, "status": "completed"},
    }
    valid = [
        P.encode_frame(1, 1e9, random_frame(rng), 0),
        P.encode_event(event, 0),
        P.encode_store_status(1e9, 3, 3, 0, 2, 2),
        P.encode_file_meta(1e9, 1, "a/b.bin", 10, 1, 1, bytes(32), 0),
        P.encode_file_segment(1e9, 1, 0, b"0123456789", 0, False),
    ]
    ground = GroundArchive(tmp_path / "ground.sqlite")
    batch = []
    for i in range(3000):
        raw = bytearray(valid[i % len(valid)])
        for _ in range(int(rng.integers(1, 6))):
            raw[int(rng.integers(0, len(raw) - 2))] = int(rng.integers(0, 256))
        if rng.random() < 0.2:
            raw = raw[: int(rng.integers(8, len(raw)))]
            raw[4:6] = (len(raw) - 7).to_bytes(2, "big")
        raw[-2:] = crc16.ibm_3740(bytes(raw[:-2])).to_bytes(2, "big")
        batch.append((bytes(raw), 1e9 + i))
    batch.append((bytes(rng.integers(0, 256, 50, dtype=np.uint8)), 2e9))
    counts = ground.receive(batch)
    assert counts["received"] + counts["rejected"] == len(batch) and counts["rejected"] > 0
    assert {r["reason"] for r in ground.rejects(5000)} <= {
        "crc",
        "truncated",
        "length",
        "version",
        "type",
        "apid",
        "malformed",
        "duplicate",
    }
