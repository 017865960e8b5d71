"""The job routes of the ground API: customers apart at every route, tokens, every refusal as a
clear 4xx, Idempotency-Key, the result once it is on the ground. The app is the real one
(`create_app`), served in-process; the workloads are the tests' small stand-ins."""

import base64
import os
import stat

import pytest
from fastapi.testclient import TestClient
from jobs_helpers import PNG, START, flying_run, prompts, use_stand_in_workloads

from skyrack.errors import UserError
from skyrack.ground import customers
from skyrack.ground.server import create_app
from skyrack.jobs.spec import MAX_PAYLOAD_BYTES
from skyrack.telemetry.archive import Archive, Event
from skyrack.telemetry.runs import RunDir

OPERATOR_TOKEN = "operator-token-0123456789abcdef"


@pytest.fixture
def ground(tmp_path, monkeypatch):
    use_stand_in_workloads(monkeypatch)
    runs = tmp_path / "runs"
    run = flying_run(runs, link="ideal")
    path = runs / customers.CUSTOMERS_FILE_NAME
    tokens = {name: customers.add_customer(path, name) for name in ("acme", "zenith")}
    app = create_app(RunDir(run), token=OPERATOR_TOKEN, replay_speed=0, customers_file=path)
    with TestClient(app) as client:
        yield client, run, tokens, path


def auth(token):
    return {"authorization": f"Bearer {token}"}


def job_body(**more):
    return {
        "kind": "infer",
        "params": {"max_tokens": 8},
        "payload": base64.b64encode(prompts("hi")).decode(),
        **more,
    }


def finish(run, job_id, data=b"the completions"):
    """The satellite ran it: `done` and its result under RUN/jobs/<id>/ (the ideal link)."""
    folder = run / "jobs" / str(job_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "completions.json").write_bytes(data)
    with Archive(run / "telemetry.sqlite") as onboard:
        for state in ("queued", "running", "done"):
            onboard.write_events(
                START + 700,
                [
                    Event(
                        "job",
                        {"job_id": job_id, "state": state, "detail": "", "energy_wh": 0.5, "gpu_s": 3.0},
                    )
                ],
            )


def test_customers_are_kept_apart_at_every_route(ground):
    client, run, tokens, _ = ground
    a = client.post("/api/jobs", json=job_body(), headers=auth(tokens["acme"]))
    assert a.status_code == 201, a.text
    jid = a.json()["id"]
    assert a.json()["customer"] == "acme" and a.json()["state"] == "submitted"
    b = client.post("/api/jobs", json=job_body(), headers=auth(tokens["zenith"])).json()
    finish(run, jid)
    a_h, b_h = auth(tokens["acme"]), auth(tokens["zenith"])
    # B: A's job does not exist, at every route, with the same answer as a job that does not exist
    assert [j["id"] for j in client.get("/api/jobs", headers=b_h).json()["jobs"]] == [b["id"]]
    for method, path in (
        ("GET", f"/api/jobs/{jid}"),
        ("POST", f"/api/jobs/{jid}/cancel"),
        ("GET", f"/api/jobs/{jid}/result"),
    ):
        r = client.request(method, path, headers=b_h)
        assert r.status_code == 404 and r.json()["detail"] == f"no job {jid}", (path, r.text)
        ghost = client.request(method, path.replace(f"/{jid}", "/999"), headers=b_h)
        assert ghost.status_code == 404 and ghost.json()["detail"] == "no job 999"
        # no token, a wrong one, a customer's with a character changed, the scheme missing: 401
        for headers in (
            {},
            auth("wrong"),
            auth(tokens["acme"][:-1] + "x"),
            {"authorization": tokens["acme"]},
        ):
            r = client.request(method, path, headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer", (path, headers)
    for headers in ({}, auth("wrong")):
        assert client.get("/api/jobs", headers=headers).status_code == 401
        assert client.post("/api/jobs", json=job_body(), headers=headers).status_code == 401
    # A sees, fetches its own; the operator sees both and fetches any
    assert [j["id"] for j in client.get("/api/jobs", headers=a_h).json()["jobs"]] == [jid]
    mine = client.get(f"/api/jobs/{jid}", headers=a_h).json()
    assert (
        mine["state"] == "delivered"
        and mine["energy_wh"] == 0.5
        and mine["latency_s"] == pytest.approx(100.0)
    )
    got = client.get(f"/api/jobs/{jid}/result", headers=a_h)
    assert got.status_code == 200 and got.content == b"the completions"
    assert 'filename="completions.json"' in got.headers["content-disposition"]
    op = auth(OPERATOR_TOKEN)
    assert [j["id"] for j in client.get("/api/jobs", headers=op).json()["jobs"]] == [jid, b["id"]]
    assert client.get(f"/api/jobs/{jid}/result", headers=op).content == b"the completions"
    # B cancels its own; the operator may cancel anyone's
    assert client.post(f"/api/jobs/{b['id']}/cancel", headers=op).json()["state"] == "cancelled"


def test_a_customer_token_cannot_command_the_satellite(ground):
    client, _, tokens, _ = ground
    r = client.post("/api/commands", json={"name": "ping"}, headers=auth(tokens["acme"]))
    assert r.status_code == 401
    assert (
        client.post("/api/commands", json={"name": "ping"}, headers=auth(OPERATOR_TOKEN)).status_code == 202
    )


def test_every_refusal_is_a_clear_4xx(ground):
    client, run, tokens, _ = ground
    h = auth(tokens["acme"])
    big = base64.b64encode(b"\0" * (MAX_PAYLOAD_BYTES + 10)).decode()
    huge = base64.b64encode(b"\0" * 60_000).decode()
    cases = [
        (job_body(kind="screen", payload=big), 413, "at most 40,960 bytes"),
        (job_body(kind="screen", payload=huge), 413, "request body over"),
        (job_body(kind="warp"), 422, "unknown job kind"),
        (job_body(kind="screen", params={}, payload=base64.b64encode(b"GIF89a").decode()), 422, "not a PNG"),
        (job_body(payload=base64.b64encode(prompts("y" * 300)).decode()), 422, "over the model's context"),
        (job_body(deadline=START), 422, "in the past"),
        (job_body(deadline_in_s=0), 422, "in the past"),
        (job_body(payload="%%%"), 422, "not valid base64"),
        (job_body(priority=10), 422, "priority"),
        (job_body(extra=1), 422, "extra"),
    ]
    for body, status, words in cases:
        r = client.post("/api/jobs", json=body, headers=h)
        assert r.status_code == status, (words, r.text)
        assert words in str(r.json()["detail"]), (words, r.json())
    ok = client.post("/api/jobs", json=job_body(), headers=h).json()
    finish(run, ok["id"])
    r = client.post(f"/api/jobs/{ok['id']}/cancel", headers=h)
    assert r.status_code == 409 and "delivered" in r.json()["detail"]
    with Archive(run / "telemetry.sqlite") as onboard:
        onboard.set_meta("status", "finished")
    r = client.post("/api/jobs", json=job_body(), headers=h)
    assert r.status_code == 409 and "not running" in r.json()["detail"]


def test_the_result_is_404_with_the_state_until_it_is_on_the_ground(ground):
    client, run, tokens, _ = ground
    h = auth(tokens["acme"])
    jid = client.post("/api/jobs", json=job_body(), headers=h).json()["id"]
    r = client.get(f"/api/jobs/{jid}/result", headers=h)
    assert (
        r.status_code == 404
        and r.json()["detail"] == f"job {jid} is submitted: its result is not on the ground yet"
    )
    finish(run, jid, b"done!")
    assert client.get(f"/api/jobs/{jid}/result", headers=h).content == b"done!"


def test_idempotency_key_on_submit(ground):
    client, _, tokens, _ = ground
    h = {**auth(tokens["acme"]), "idempotency-key": "order-7"}
    first = client.post("/api/jobs", json=job_body(), headers=h)
    again = client.post("/api/jobs", json=job_body(), headers=h)
    assert first.status_code == 201 and again.status_code == 200
    assert again.headers["idempotent-replayed"] == "true" and again.json()["id"] == first.json()["id"]
    other = client.post("/api/jobs", json=job_body(priority=1), headers=h)
    assert other.status_code == 409 and "different job" in other.json()["detail"]
    bad = client.post("/api/jobs", json=job_body(), headers={**h, "idempotency-key": "no spaces"})
    assert bad.status_code == 422
    assert len(client.get("/api/jobs", headers=h).json()["jobs"]) == 1


def test_customers_file_is_private_hashed_and_read_again_when_it_changes(ground):
    client, _, tokens, path = ground
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert tokens["acme"] not in text and customers.token_hash(tokens["acme"]) in text
    assert [c["name"] for c in customers.list_customers(path)] == ["acme", "zenith"]
    customers.remove_customer(path, "zenith")
    assert client.get("/api/jobs", headers=auth(tokens["zenith"])).status_code == 401
    new = customers.add_customer(path, "orbital-farms")
    assert client.get("/api/jobs", headers=auth(new)).status_code == 200
    for bad in ("", "-x", "a b", "operator", "x" * 65):
        with pytest.raises(UserError):
            customers.add_customer(path, bad)
    with pytest.raises(UserError, match="exists"):
        customers.add_customer(path, "acme")
    os.chmod(path, 0o644)
    with pytest.raises(UserError, match="accessible by other users"):
        customers.read_customers(path)


def test_a_png_screening_job_is_accepted(ground):
    client, _, tokens, _ = ground
    body = {
        "kind": "screen",
        "params": {"source": "upload"},
        "payload": base64.b64encode(PNG + b"pixels").decode(),
    }
    r = client.post("/api/jobs", json=body, headers=auth(tokens["acme"]))
    assert r.status_code == 201 and r.json()["kind"] == "screen" and r.json()["payload_bytes"] == len(PNG) + 6
