"""The ground's ledger of jobs: submission and every refusal, ids, idempotency, customers' jobs
apart, cancelling, and the ledger following what comes down over a real ground link."""

import base64

import pytest
from jobs_helpers import PNG, START, Satellite, flying_run, forecast, prompts, use_stand_in_workloads

from skyrack.jobs import ledger
from skyrack.jobs.ledger import JobRefused
from skyrack.jobs.spec import MAX_PAYLOAD_BYTES, JobSpec
from skyrack.link.ground import GroundArchive
from skyrack.telemetry.archive import Archive

NOW = START + 600


@pytest.fixture(autouse=True)
def workloads(monkeypatch):
    use_stand_in_workloads(monkeypatch)


def infer(**more):
    return {"kind": "infer", "params": {"max_tokens": 16}, "payload": prompts("To be"), **more}


def refused(run, fields, customer="acme", now=NOW, **kw) -> JobRefused:
    with pytest.raises(JobRefused) as caught:
        ledger.submit(run, fields, customer, now, **kw)
    return caught.value


def test_a_job_is_recorded_and_queued_for_the_uplink_where_the_ground_keeps_commands(tmp_path):
    run = flying_run(tmp_path)
    a = ledger.submit(run, infer(deadline_in_s=7200), "acme", NOW)
    b = ledger.submit(run, {"kind": "screen", "params": {"source": "onboard", "tiles": 4}}, "zenith", NOW)
    assert (a["id"], b["id"]) == (1, 2) and a["state"] == b["state"] == "submitted"
    assert a["deadline_t"] == NOW + 7200 and a["submitted_t"] == NOW and a["customer"] == "acme"
    assert a["estimate"] == {"wall_s": 2.0, "result_bytes": 3000} and a["latency_s"] is None
    with GroundArchive(run / "ground.sqlite", readonly=True) as ground:
        cmds = ground.commands()
    assert [c["name"] for c in cmds] == ["submit_job", "submit_job"]
    assert cmds[0]["idempotency_key"] == "jobs/1/submit" and cmds[0]["created_t"] == NOW
    spec = JobSpec.decode(cmds[0]["args"]["spec"])
    assert (spec.job_id, spec.customer, spec.kind, spec.payload) == (1, "acme", "infer", prompts("To be"))
    assert spec.deadline_t == NOW + 7200
    assert a["uplink"]["status"] == "queued"
    with Archive(run / "telemetry.sqlite", readonly=True) as onboard:
        assert onboard.commands() == []  # nothing reaches the satellite but through the link


def test_on_the_ideal_link_the_job_goes_straight_to_the_on_board_queue(tmp_path):
    run = flying_run(tmp_path, link="ideal")
    rec = ledger.submit(run, infer(), "acme", NOW)
    with Archive(run / "telemetry.sqlite", readonly=True) as onboard:
        (cmd,) = onboard.commands()
    assert cmd["name"] == "submit_job" and JobSpec.decode(cmd["args"]["spec"]).job_id == rec["id"]


def test_every_refusal_has_its_status_and_reason_and_is_recorded(tmp_path):
    run = flying_run(tmp_path)
    cases = [
        ({"kind": "screen", "payload": b"\0" * (MAX_PAYLOAD_BYTES + 1)}, 413, "at most 40,960 bytes"),
        ({"kind": "mine_bitcoin"}, 422, "unknown job kind"),
        ({"kind": "screen", "payload": b"GIF89a not a png"}, 422, "not a PNG"),
        (infer(payload=prompts("x" * 500)), 422, "over the model's context"),
        (infer(payload=b"[1, 2"), 422, "not a JSON list"),
        (infer(deadline_t=NOW - 1), 422, "in the past"),
        (infer(deadline_in_s=-5), 422, "in the past"),
        (infer(deadline_t=NOW + 10, deadline_in_s=10), 422, "give the deadline once"),
        (infer(priority=12), 422, "priority"),
        (infer(payload="not base64!"), 422, "not valid base64"),
        (infer(color="blue"), 422, "no field 'color'"),
    ]
    for fields, status, words in cases:
        r = refused(run, fields)
        assert r.status == status and words in r.reason, (fields.get("kind"), r.status, r.reason)
        assert r.job["state"] == "refused"
    jobs = ledger.jobs_of(run, "acme")
    assert len(jobs) == len(cases) and all(j["state"] == "refused" for j in jobs)
    assert jobs[0]["refused"] == {"status": 413, "reason": cases[0][2] and jobs[0]["refused"]["reason"]}
    with GroundArchive(run / "ground.sqlite", readonly=True) as ground:
        assert ground.commands() == []  # nothing refused flies


def test_a_job_is_refused_when_the_mission_is_not_flying(tmp_path):
    run = flying_run(tmp_path)
    with GroundArchive(run / "ground.sqlite") as ground:
        ground.set_meta("status", "finished")
    r = refused(run, infer())
    assert r.status == 409 and "not running" in r.reason
    assert ledger.jobs_of(run, None) == []


def test_an_infeasible_deadline_is_refused_with_the_schedulers_reason(tmp_path):
    from jobs_helpers import CONTACT

    run = flying_run(tmp_path)  # the next contact is at START + 1800
    ok = ledger.submit(run, infer(deadline_t=CONTACT["set_t"]), "acme", NOW)
    assert ok["schedule"]["ok"] and ok["schedule"]["ground_t"] <= CONTACT["set_t"]
    assert CONTACT["rise_t"] <= ok["schedule"]["start_t"] < CONTACT["set_t"]
    r = refused(run, infer(deadline_t=CONTACT["rise_t"] - 60))  # before the job can even go up
    assert r.status == 422 and "cannot reach the satellite before its deadline" in r.reason
    # a starved bus: 0.01 s of GPU time a tick cannot do 3 s of work within the one contact
    late = {**CONTACT, "rise_t": START + 80000, "set_t": START + 80600}
    forecast(run, link="ground", contacts=[CONTACT, late], gpu_s_per_tick=0.01)
    r = refused(run, infer(deadline_t=CONTACT["set_t"]))
    assert r.status == 422 and r.reason.startswith(
        "the deadline cannot be met: needs 0.2 Wh of GPU time before"
    )
    assert "the battery reserve allows 0.0 Wh before then after 0.2 Wh for the 1 jobs ahead" in r.reason
    assert ledger.job(run, r.job["id"], "acme")["refused"]["reason"] == r.reason


def test_a_mission_without_its_forecast_takes_no_job(tmp_path):
    run = flying_run(tmp_path)
    (run / "forecast.json").unlink()
    r = refused(run, infer())
    assert r.status == 409 and "no forecast" in r.reason


def test_idempotency_key_returns_the_first_answer(tmp_path):
    run = flying_run(tmp_path)
    first = ledger.submit(run, infer(), "acme", NOW, idempotency_key="k1")
    again = ledger.submit(run, infer(), "acme", NOW + 5, idempotency_key="k1")
    assert again["id"] == first["id"] and again["replayed"]
    other = ledger.submit(run, infer(), "zenith", NOW, idempotency_key="k1")  # keys are per customer
    assert other["id"] != first["id"]
    r = refused(run, infer(priority=9), idempotency_key="k1")
    assert r.status == 409 and "different job" in r.reason
    bad = refused(run, {"kind": "nope"}, idempotency_key="k2")
    again_bad = refused(run, {"kind": "nope"}, idempotency_key="k2")
    assert (again_bad.status, again_bad.reason, again_bad.job["id"]) == (
        bad.status,
        bad.reason,
        bad.job["id"],
    )
    with GroundArchive(run / "ground.sqlite", readonly=True) as ground:
        assert len(ground.commands()) == 2  # one job of each customer went to the uplink queue


def test_a_customer_sees_only_its_own_jobs(tmp_path):
    run = flying_run(tmp_path)
    a = ledger.submit(run, infer(), "acme", NOW)
    b = ledger.submit(run, infer(), "zenith", NOW)
    assert [j["id"] for j in ledger.jobs_of(run, "acme")] == [a["id"]]
    assert [j["id"] for j in ledger.jobs_of(run, None)] == [a["id"], b["id"]]
    for call in (ledger.job, ledger.cancel, ledger.result_path):
        with pytest.raises(JobRefused) as caught:
            call(run, a["id"], "zenith")
        assert caught.value.status == 404 and caught.value.reason == f"no job {a['id']}"
    assert ledger.job(run, a["id"], None)["customer"] == "acme"


def test_cancel_before_it_went_up_withdraws_it(tmp_path):
    run = flying_run(tmp_path)
    rec = ledger.submit(run, infer(), "acme", NOW)
    done = ledger.cancel(run, rec["id"], "acme")
    assert done["state"] == "cancelled" and done["uplink"]["result"] == ledger.WITHDRAWN
    assert done["cancel"]["status"] == "queued"  # a cancel_job follows, in case it was on its way
    with GroundArchive(run / "ground.sqlite", readonly=True) as ground:
        assert ground.uplink_commands()[0]["name"] == "cancel_job"
    r = pytest.raises(JobRefused, ledger.cancel, run, rec["id"], "acme").value
    assert r.status == 409 and "cancelled" in r.reason
    ideal = flying_run(tmp_path, "r2", link="ideal")
    rec = ledger.submit(ideal, infer(), "acme", NOW)
    assert ledger.cancel(ideal, rec["id"], None)["state"] == "cancelled"
    with Archive(ideal / "telemetry.sqlite", readonly=True) as onboard:
        assert [c["name"] for c in onboard.pending_commands()] == []  # withdrawn, nothing to send


def test_the_ledger_follows_what_comes_down_over_a_real_link(tmp_path):
    from skyrack.link.contacts import Schedule, station_contacts
    from skyrack.link.radio import radio_of
    from skyrack.link.session import Link
    from skyrack.orbit.twin import OrbitTwin
    from skyrack.profile import load_profile

    profile = load_profile("starcloud-1")
    radio, twin = radio_of(profile), OrbitTwin(profile.satellite)
    first, second = Schedule(station_contacts(twin, radio, START, START + 6 * 3600)).contacts[:2]
    run = tmp_path / "r1"
    store = Archive(run / "telemetry.sqlite")
    store.set_meta("status", "running")
    frames = int((second.rise_s - START) // 10) + 30
    link = Link.build(
        "ground", radio, twin, store, run / "ground.sqlite", start=START, end=START + frames * 10,
        seed=7, loss=0.0, corruption=0.0, plan={"status": "running"},
    )  # fmt: skip
    forecast(run, link="ground", contacts=[
        {"station": c.station, "rise_t": c.rise_s, "set_t": c.set_s, "mean_rate_bps": 4e6} for c in (first, second)
    ])  # fmt: skip
    sat = Satellite(run, store, link)
    run_at = first.set_s + 600  # between the contacts: the result waits for the next one
    seen = {}
    rec = None
    for k in range(frames):
        t = START + k * 10.0
        if k == 3:
            rec = ledger.submit(run, infer(), "acme", t, idempotency_key="once")
        sat.tick(t, run_at)
        store.write_frame(t, {"train.step": k}, [])
        link.carry(t, t + 10.0)
        if rec is not None:
            state = ledger.job(run, rec["id"], "acme")["state"]
            seen.setdefault(state, t + 10.0)  # learned by the end of this frame's window
    # done on board between the contacts; the ground learns it, and has the result, in the next one
    assert list(seen) == ["submitted", "queued", "delivered"]
    assert first.rise_s <= seen["queued"] < first.set_s + 10  # learned in the first contact
    assert second.rise_s <= seen["delivered"] < second.rise_s + 60
    final = ledger.job(run, rec["id"], "acme")
    assert final["latency_s"] == pytest.approx(final["delivered_t"] - final["submitted_t"])
    assert final["delivered_t"] >= second.rise_s and final["on_board"]["t"] == pytest.approx(run_at, abs=10)
    assert (final["energy_wh"], final["gpu_s"], final["price_usd"]) == (1.5, 12.0, 0.02)
    path = ledger.result_path(run, rec["id"], "acme")
    assert (
        path == run / "downlink" / "jobs" / str(rec["id"]) / "result.json"
        and path.read_bytes() == b"r" * 2500
    )
    assert final["result"]["name"] == "result.json" and final["result"]["bytes"] == 2500
    link.close()


def test_payload_as_base64_text_is_the_same_job(tmp_path):
    run = flying_run(tmp_path)
    rec = ledger.submit(
        run, {"kind": "screen", "payload": base64.b64encode(PNG + b"data").decode()}, "acme", NOW
    )
    assert rec["payload_bytes"] == len(PNG) + 4


def test_the_real_workloads_refuse_through_the_ledger(tmp_path, monkeypatch):
    """The workloads' own checks (skyrack.jobs.infer, skyrack.jobs.screen), not the stand-ins."""
    import sys

    for kind in ("infer", "screen"):
        monkeypatch.delitem(sys.modules, f"skyrack.jobs.{kind}", raising=False)
    run = flying_run(tmp_path)
    long = refused(run, infer(payload=prompts("to be or not " * 1000)))
    assert long.status == 422 and "over the on-board context" in long.reason
    image = refused(run, {"kind": "screen", "params": {"source": "upload"}, "payload": b"GIF89a...."})
    assert image.status == 422 and "neither a PNG nor a (Geo)TIFF" in image.reason
    tiles = refused(run, {"kind": "screen", "params": {"source": "onboard", "tiles": 0}})
    assert tiles.status == 422 and "params.tiles" in tiles.reason
    ok = ledger.submit(run, {"kind": "screen", "params": {"source": "onboard", "tiles": 4}}, "acme", NOW)
    assert ok["state"] == "submitted" and ok["estimate"]["result_bytes"] > 0
