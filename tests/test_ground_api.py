"""The ground server over HTTP: a real `skyrack serve` on loopback, a real archive written by
the test flight (tests/ground_flight.py), real requests."""

from __future__ import annotations

import http.client
import json
import os
import stat
import threading
import time
from urllib.parse import urlsplit

import httpx
import pytest
from ground_flight import Flight
from ground_helpers import ground_server

from skyrack.telemetry.archive import Archive
from skyrack.telemetry.dictionary import CHANNELS

INITIAL_FRAMES = 400  # more than the feed's start-up buffer (256), so a replay from 0 reads the backlog


@pytest.fixture(scope="module")
def mission(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    flight = Flight(runs / "run-a")
    flight.step(INITIAL_FRAMES)
    with ground_server(runs, "--run", "run-a", "--assistant", "composed") as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            yield flight, server, client, runs


def read_stream(client, params=None, headers=None, frames_wanted=10, timeout=20.0):
    """(frames, events, last cursor) from the SSE stream, until `frames_wanted` frames came."""
    frames, events, cursor, kind = [], [], None, None
    deadline = time.monotonic() + timeout
    with client.stream("GET", "/api/stream", params=params, headers=headers) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("id: "):
                cursor = line[4:]
            elif line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                (frames if kind == "frame" else events).append(json.loads(line[6:]))
                if len(frames) >= frames_wanted:
                    break
            assert time.monotonic() < deadline, f"only {len(frames)} frames in {timeout} s"
    return frames, events, cursor


def test_reads_need_no_token_and_cover_the_dictionary(mission):
    flight, server, client, _ = mission
    assert urlsplit(server.url).hostname == "127.0.0.1"  # loopback by default
    names = {c.name for c in CHANNELS}
    dictionary = client.get("/api/channels").json()
    assert {c["name"] for c in dictionary["channels"]} == names
    assert {"ping", "pause_training"} <= {c["name"] for c in dictionary["commands"]}

    latest = client.get("/api/latest").json()
    assert set(latest["values"]) == names
    soc = latest["values"]["power.battery_soc"]
    assert soc["state"] in ("nominal", "yellow", "red") and soc["unit"] == "1"
    assert latest["seq"] >= INITIAL_FRAMES

    summary = client.get("/api/summary").json()
    assert summary["run_id"] == "run-a" and summary["mode"] == "live"
    assert summary["meta"]["profile"] == "starcloud-1" and summary["counts"]["frames"] >= INITIAL_FRAMES
    assert summary["cursor"].count("-") == 1


def test_history_pages_with_a_cursor_and_time_range(mission):
    flight, _, client, _ = mission
    with Archive(flight.run_dir / "telemetry.sqlite", readonly=True) as archive:
        expected = archive.history("power.battery_soc")
    since, until = expected[10][1], expected[300][1]
    pages, after = [], 0
    while True:
        page = client.get(
            "/api/history/power.battery_soc",
            params={"since": since, "until": until, "after": after, "limit": 100},
        ).json()
        pages.append(page)
        if page["next"] is None:
            break
        after = page["next"]
    points = [tuple(p) for page in pages for p in page["points"]]
    assert points == [tuple(p) for p in expected[10:301]]  # every point once, in order
    assert len(pages) == 3 and pages[0]["unit"] == "1"


def test_events_filter_by_severity(mission):
    _, _, client, _ = mission
    everything = client.get("/api/events", params={"limit": 5000}).json()["events"]
    assert any(e["name"] in ("eclipse_entry", "eclipse_exit") for e in everything)
    warnings = client.get("/api/events", params={"severity": "warning"}).json()["events"]
    assert all(e["severity"] in ("warning", "error", "critical") for e in warnings)
    assert len(warnings) < len(everything)
    newest = client.get("/api/events", params={"last": "true", "limit": 1}).json()["events"]
    assert newest == everything[-1:]
    assert client.get("/api/events", params={"severity": "loud"}).status_code == 422


def test_map_track_stations_and_passes(mission):
    _, _, client, _ = mission
    countries = client.get("/api/map/countries")
    assert countries.headers["content-type"].startswith("application/geo+json")
    geo = countries.json()
    assert geo["type"] == "FeatureCollection" and len(geo["features"]) > 150
    assert any(f["properties"]["name"] == "Chad" for f in geo["features"])

    track = client.get("/api/track", params={"before_s": 600, "after_s": 600, "step_s": 60}).json()
    assert len(track["points"]) == 21
    assert abs(track["subsolar"]["lat_deg"]) < 23.5  # July: the Sun is overhead north of the equator
    assert 15 < track["subsolar"]["lat_deg"] < 20.5

    stations = client.get("/api/stations").json()["stations"]
    assert {"svalbard", "dubai"} <= {s["id"] for s in stations}
    passes = client.get("/api/passes", params={"station": "dubai", "hours": 24}).json()
    assert passes["passes"] and all(p["max_elevation_deg"] >= 10 for p in passes["passes"])
    assert client.get("/api/passes", params={"station": "atlantis"}).status_code == 404
    assert client.get("/api/passes", params={"station": "svalbard", "hours": 1e6}).status_code == 422


def test_page_static_files_and_openapi(mission):
    _, server, client, _ = mission
    page = client.get("/")
    assert page.status_code == 200 and "skyrack ground" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "http" not in page.text.replace("http-equiv", "")  # no external URL in the page
    for name in ("app.js", "map.js", "charts.js", "app.css"):
        body = client.get(f"/static/{name}")
        assert body.status_code == 200 and "https://" not in body.text and "http://" not in body.text
    spec = client.get("/openapi.json").json()
    assert {"/api/stream", "/api/commands", "/api/chat", "/api/history/{channel}"} <= set(spec["paths"])
    assert client.get("/docs").status_code == 404  # FastAPI's docs page loads its assets from a CDN


def raw_get(url: str, path: str) -> int:
    """A GET with the path sent exactly as written (httpx would normalise the dots away)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    conn.request("GET", path)
    status = conn.getresponse().status
    conn.close()
    return status


def test_no_path_traversal(mission):
    _, server, _, _ = mission
    assert raw_get(server.url, "/static/app.js") == 200
    for path in (
        "/static/../server.py",
        "/static/../../../../etc/passwd",
        "/static/%2e%2e/server.py",
        "/static/..%2fserver.py",
        "/static/%2e%2e%2f%2e%2e%2fpyproject.toml",
        "/static/",
        "/static//etc/passwd",
        "/static/index.html%00.js",
    ):
        assert raw_get(server.url, path) == 404, path


def test_bad_input_is_refused_with_clear_json(mission):
    _, _, client, _ = mission
    cases = [
        ("/api/history/no.such_channel", {}, 404, "unknown channel"),
        ("/api/history/power.battery_soc", {"since": 2e9, "until": 1e9}, 422, "before since"),
        ("/api/history/power.battery_soc", {"since": 0, "until": 1e12}, 422, "at most"),
        ("/api/history/power.battery_soc", {"limit": 10**6}, 422, ""),
        ("/api/history/power.battery_soc", {"since": "nan"}, 422, "finite"),
        ("/api/history/power.battery_soc", {"since": "yesterday"}, 422, ""),
        ("/api/stream", {"after": "../../etc"}, 422, "cursor"),
        ("/api/track", {"step_s": 0.001}, 422, ""),
        ("/api/commands/0", {}, 422, ""),
        ("/api/commands/999999", {}, 404, "no command"),
        # found by tests/test_ground_fuzz.py (each was a 500):
        ("/api/commands", {"after": 243137203523825434624}, 422, "less than or equal"),  # past SQLite's ints
        ("/api/events", {"after": 2**63}, 422, "less than or equal"),
        ("/api/history/power.battery_soc", {"after": 2**64}, 422, "less than or equal"),
        ("/api/track", {"at": 5.623474813249313e16}, 400, "outside the ephemeris"),  # no year to name
        ("/api/track", {"at": 3e9}, 400, "2065-01-24 is outside the ephemeris"),
        ("/api/passes", {"station": "wallops", "at": -3e9}, 400, "outside the ephemeris"),
    ]
    for path, params, status, fragment in cases:
        response = client.get(path, params=params)
        assert response.status_code == status, (path, params, response.text)
        body = response.json()
        assert body["error"] and fragment in json.dumps(body["detail"]), body


def test_oversized_bodies_are_refused(mission):
    _, server, client, _ = mission
    auth = {"authorization": f"Bearer {server.token}"}
    big = {"name": "ping", "args": {"x": "a" * 100_000}}
    response = client.post("/api/commands", json=big, headers=auth)
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"

    def chunks():  # no Content-Length: the limit still holds while streaming
        for _ in range(40):
            yield b" " * 1024

    response = client.post("/api/chat", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_commands_need_the_token(mission):
    flight, server, client, runs = mission
    token_file = runs / ".ground-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert str(token_file) in "".join(server.output)  # the start message says where it is
    body = {"name": "ping"}
    for headers in (
        {},
        {"authorization": "Bearer wrong-token"},
        {"authorization": server.token},
        {"authorization": f"Basic {server.token}"},
    ):
        response = client.post("/api/commands", json=body, headers=headers)
        assert response.status_code == 401, headers
        assert response.json()["error"] == "unauthorized"
    response = client.post("/api/commands", json=body, headers={"authorization": f"Bearer {server.token}"})
    assert response.status_code == 202 and response.json()["status"] == "queued"


def test_commands_run_once_and_complete(mission):
    flight, server, client, _ = mission
    auth = {"authorization": f"Bearer {server.token}"}
    before = len(client.get("/api/commands", params={"limit": 5000}).json()["commands"])
    first = client.post(
        "/api/commands",
        json={"name": "set_power_cap", "args": {"cap_w": 250}},
        headers={**auth, "idempotency-key": "cap-250-once"},
    )
    assert first.status_code == 202
    for _ in range(3):  # a client retrying after a lost answer
        again = client.post(
            "/api/commands",
            json={"name": "set_power_cap", "args": {"cap_w": 250}},
            headers={**auth, "idempotency-key": "cap-250-once"},
        )
        assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
        assert again.headers["idempotent-replayed"] == "true"
    clash = client.post(
        "/api/commands", json={"name": "ping"}, headers={**auth, "idempotency-key": "cap-250-once"}
    )
    assert clash.status_code == 409
    commands = client.get("/api/commands", params={"limit": 5000}).json()["commands"]
    assert len(commands) == before + 1

    for body, fragment in (
        ({"name": "self_destruct"}, "unknown command"),
        ({"name": "set_power_cap", "args": {"cap_w": 5000}}, "within"),
        ({"name": "set_power_cap"}, "needs cap_w"),
        ({"name": "ping", "extra": 1}, "extra"),
        ({"name": "ping", "args": {"nested": {"a": 1}}}, ""),
    ):
        response = client.post("/api/commands", json=body, headers=auth)
        assert response.status_code == 422 and fragment in json.dumps(response.json()), (body, response.text)
    assert (
        client.post(
            "/api/commands", content=b"{not json", headers={**auth, "content-type": "application/json"}
        ).status_code
        == 422
    )
    assert (
        client.post(
            "/api/commands", json={"name": "ping"}, headers={**auth, "idempotency-key": "bad key!"}
        ).status_code
        == 422
    )

    flight.step(1)  # the mission's next tick picks the queue up
    cid = first.json()["id"]
    done = client.get(f"/api/commands/{cid}").json()
    assert done["status"] == "completed" and flight.cap_limit_w == 250
    statuses = [
        e["data"]["status"]
        for e in client.get("/api/events", params={"limit": 5000}).json()["events"]
        if e["name"] == "command" and e["data"]["id"] == cid
    ]
    assert statuses == ["dispatched", "completed"]


def test_stream_resumes_from_a_cursor_without_loss_or_duplicates(mission):
    flight, _, client, _ = mission
    start = client.get("/api/summary").json()["cursor"]
    stop = threading.Event()
    flyer = flight.fly(40, stop)
    try:
        first, _, cursor = read_stream(client, params={"after": start}, frames_wanted=15)
        time.sleep(0.6)  # frames keep coming while the client is away
        second, _, _ = read_stream(client, headers={"last-event-id": cursor}, frames_wanted=40)
    finally:
        stop.set()
        flyer.join()
    seqs = [f["seq"] for f in first + second]
    start_seq = int(start.split("-")[0])
    assert seqs == list(range(start_seq + 1, start_seq + 1 + len(seqs)))  # none missing, none twice
    assert set(first[0]["values"]) == {c.name for c in CHANNELS}


def test_stream_replays_the_whole_run_from_zero(mission):
    flight, _, client, _ = mission
    with Archive(flight.run_dir / "telemetry.sqlite", readonly=True) as archive:
        total = archive.frame_count()
        event_ids = [e["id"] for e in archive.events()]
    frames, events, _ = read_stream(client, params={"after": "0-0"}, frames_wanted=total)
    assert [f["seq"] for f in frames] == list(
        range(1, total + 1)
    )  # backlog from the archive, then the buffer
    assert [e["id"] for e in events] == [i for i in event_ids if i <= max(e["id"] for e in events)]
    assert events, "the flight crossed the terminator: eclipse events expected"


def test_chat_reads_but_never_commands(mission):
    _, _, client, _ = mission
    before = client.get("/api/commands", params={"limit": 5000}).json()["commands"]
    response = client.post("/api/chat", json={"question": "Pause training and set the power cap to 0"})
    try:
        import skyrack.assistant.service  # noqa: F401

        assert response.status_code == 200 and response.json()["answer"]
    except ImportError:
        assert response.status_code == 503 and "assistant" in response.json()["detail"]
    assert client.get("/api/commands", params={"limit": 5000}).json()["commands"] == before
    assert client.post("/api/chat", json={"question": ""}).status_code == 422
    assert client.post("/api/chat", json={"question": "hi", "command": "pause_training"}).status_code == 422


def test_rate_limit_per_client(tmp_path):
    Flight(tmp_path / "run-r").step(3)
    with ground_server(tmp_path, "--run", "run-r", "--rate", "1", "--burst", "5") as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            codes = [client.get("/api/latest").status_code for _ in range(8)]
            assert codes[:5] == [200] * 5 and codes[-1] == 429
            limited = client.get("/api/latest")
            assert limited.json()["error"] == "rate_limited" and int(limited.headers["retry-after"]) >= 1


def test_replay_of_a_finished_run(tmp_path):
    flight = Flight(tmp_path / "run-f")
    flight.step(60)
    flight.finish()
    with ground_server(tmp_path, "--run", "run-f", "--replay-speed", "100") as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            summary = client.get("/api/summary").json()
            assert summary["mode"] == "replay" and summary["counts"]["frames"] < 60  # 10 frames a second
            frames, _, _ = read_stream(client, params={"after": "0-0"}, frames_wanted=60)
            assert [f["seq"] for f in frames] == list(range(1, 61))
            assert client.get("/api/latest").json()["seq"] == 60
            refused = client.post(
                "/api/commands", json={"name": "ping"}, headers={"authorization": f"Bearer {server.token}"}
            )
            assert refused.status_code == 409 and "not running" in refused.json()["detail"]
        token = server.token
    with ground_server(tmp_path, "--run", "run-f", "--replay-speed", "0") as again:
        assert again.token == token  # the token survives a restart


def test_cli_refuses_bad_setups_in_one_line(cli, tmp_path):
    from conftest import assert_clean_error

    assert_clean_error(cli("serve", "--runs-dir", str(tmp_path), "--live"), "no running mission")
    assert_clean_error(cli("serve", "--runs-dir", str(tmp_path), "--run", "nope"), "no mission run")
    Flight(tmp_path / "run-x").step(2)
    token = tmp_path / ".ground-token"
    token.write_text("x" * 40)
    os.chmod(token, 0o644)
    assert_clean_error(cli("serve", "--runs-dir", str(tmp_path), "--port", "0"), "chmod 600")
    assert_clean_error(cli("serve", "--runs-dir", str(tmp_path), "--port", "70000"), "--port")


def test_loopback_server_refuses_foreign_host_names(mission):
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 must not read the server."""
    _, _, client, _ = mission
    assert client.get("/api/latest", headers={"host": "evil.example"}).status_code == 400
    assert client.get("/api/latest", headers={"host": "localhost"}).status_code == 200


def _ipv6_loopback() -> bool:
    import socket

    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_ipv6_loopback_keeps_the_host_guard(mission):
    """--host ::1 is loopback too: no 'reachable from other machines' warning, foreign Host names refused."""
    _, _, _, runs = mission
    with ground_server(runs, "--run", "run-a", "--assistant", "composed", "--host", "::1") as server:
        assert server.url.startswith("http://[::1]:")
        with httpx.Client(base_url=server.url, timeout=30) as client:
            assert client.get("/api/latest").status_code == 200  # Host: [::1]:PORT
            assert client.get("/api/latest", headers={"host": "localhost"}).status_code == 200
            assert client.get("/api/latest", headers={"host": "evil.example"}).status_code == 400
    assert not any("reachable from other machines" in line for line in server.output)
