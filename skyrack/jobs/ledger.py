"""The ground's ledger of customers' jobs: what was submitted, refused, flown, and delivered.

Everything that submits a job goes through here (the ground API, the CLI through the API, the
mission's job stream), so there is one set of checks and one place ids are given:

    record = submit(run, {"kind": "infer", "params": {...}, "payload": b"...",
                          "deadline_in_s": 7200, "priority": 5, "avoid_saa": False},
                    customer="acme", now_t=ground_time)
    jobs_of(run, "acme"); job(run, 3, "acme"); cancel(run, 3, "acme"); result_path(run, 3, "acme")

`customer=None` is the operator: every job. A customer asking for another's job is told there is
no such job (404), as for one that does not exist.

Where it lives: a `jobs` table in the archive the ground keeps (`RunDir.served_archive`: the
ground archive over a real link, the on-board archive on the ideal link), beside the commands
queued there: an accepted job queues its `submit_job` telecommand (the spec's wire form) in the
same transaction, keyed `job/<id>` (a key the command API cannot take, so no one can pre-empt it).

What the ledger says of a job after submission is what the ground has learned, never what it
could read on board: over a real link the newest `job` event received for it (by on-board event
id: a retransmitted old event does not move a job back), and `delivered` once its result file is
complete in `RUN/downlink/jobs/<id>/` (`skyrack.link.files`); on the ideal link the on-board
events, and the result read from `RUN/jobs/<id>/` once the job is `done`. Latency is the
delivery time on the ground's clock minus the submission time.

Every refusal raises `JobRefused(status, reason)`: 413 a payload over the uplink's limit; 422 an
unknown kind, a malformed spec, image or prompts (the workload's `check`), a deadline in the
past, a deadline the scheduler says cannot be met (its reason); 409 the mission not in flight.
A refusal of the job itself (413, 422) is recorded too, with an id and the reason, so the mission
report can count it; a repeated Idempotency-Key gives the first answer again (the record, or the
same refusal), and a key reused for a different request is refused (409).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import math
import sqlite3
from pathlib import Path

from skyrack.errors import UserError
from skyrack.jobs.spec import FINAL, KINDS, MAX_PAYLOAD_BYTES, JobSpec
from skyrack.telemetry.runs import DOWNLINK_NAME, RunDir, as_run

JOBS_NAME = "jobs"  # RUN/jobs/<id>/ on board; RUN/downlink/jobs/<id>/ on the ground
FIELDS = ("kind", "params", "payload", "deadline_t", "deadline_in_s", "priority", "avoid_saa")
WITHDRAWN = "withdrawn: the job was cancelled before it went up"

LEDGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY, customer TEXT NOT NULL, kind TEXT NOT NULL, params TEXT NOT NULL,
    payload BLOB NOT NULL, payload_bytes INTEGER NOT NULL, priority INTEGER, avoid_saa INTEGER,
    submitted_t REAL NOT NULL, deadline_t REAL, state TEXT NOT NULL, status INTEGER, reason TEXT,
    estimate TEXT, schedule TEXT, idempotency_key TEXT, request TEXT, cancel_t REAL,
    UNIQUE (customer, idempotency_key));
"""


class JobRefused(UserError):
    """A job the ground will not fly: `status` is the HTTP status that says why."""

    def __init__(self, status: int, reason: str, job: dict | None = None):
        super().__init__(reason)
        self.status, self.reason, self.job = status, reason, job


def result_name(job_id: int, name: str) -> str:
    """A result's path under the run on board (`RUN/<this>`) and the name it is offered to the
    link's file downlink under (it lands as `RUN/downlink/<this>` on the ground)."""
    return f"{JOBS_NAME}/{int(job_id)}/{Path(name).name}"


def command_key(job_id: int, what: str = "submit") -> str:
    return f"{JOBS_NAME}/{int(job_id)}/{what}"


# -- submitting ------------------------------------------------------------------------------------
def submit(
    run: RunDir | str, spec_fields: dict, customer: str, now_t: float, *, idempotency_key: str | None = None
) -> dict:
    """Check a job, give it an id, record it and queue it for the uplink; returns its record.
    `spec_fields`: kind, params, payload (bytes, or base64 text), deadline_t (simulated POSIX
    seconds) or deadline_in_s (from now_t), priority, avoid_saa."""
    from skyrack.telemetry.archive import Archive

    run = as_run(run)
    request = _fingerprint(spec_fields)
    with Archive(run.served_archive) as archive:
        db = archive.db
        db.executescript(LEDGER_SCHEMA)
        if archive.meta("status") != "running" or run.writer_gone():
            raise JobRefused(409, "the mission is not running; jobs are accepted only in flight")
        if idempotency_key is not None:
            known = _by_key(db, customer, idempotency_key)
            if known is not None:
                return _replay(run, known, request)
        try:
            spec, est = _checked(run, spec_fields, customer, now_t)
        except JobRefused as refused:
            _record_refusal(db, spec_fields, customer, now_t, refused, idempotency_key, request)
            raise
        # One writer at a time from here: the jobs ahead, the id and the command agree.
        db.execute("BEGIN IMMEDIATE")
        try:
            # its id now: the scheduler orders equal deadlines and priorities by it
            next_id = db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM jobs").fetchone()[0]
            spec = JobSpec(**{**_spec_dict(spec), "job_id": next_id})
            ahead = [(s, e) for s, e, _ in _open_jobs(run, db)]
            verdict = _verdict(run, spec, est, ahead, now_t)
            if not verdict.ok:
                db.rollback()
                what = "the deadline cannot be met" if spec.deadline_t is not None else "the job cannot run"
                refused = JobRefused(422, f"{what}: {verdict.reason}")
                _record_refusal(db, spec_fields, customer, now_t, refused, idempotency_key, request)
                raise refused
            job_id = _insert(db, spec, "submitted", None, None, est, verdict, idempotency_key, request)
            # queue_command's own `with` commits this whole transaction (the job and its command
            # together) or rolls it back.
            archive.queue_command(
                "submit_job", {"spec": spec.encode()}, now=now_t, idempotency_key=command_key(job_id)
            )
        except BaseException:
            if db.in_transaction:
                db.rollback()
            raise
    return job(run, job_id, None)


def _checked(run: RunDir, fields: dict, customer: str, now_t: float):
    """The job's spec and the workload's estimate, or JobRefused with the reason."""
    from skyrack.jobs.workload import module_for

    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise JobRefused(422, f"a job has no field {sorted(unknown)[0]!r}; fields: {', '.join(FIELDS)}")
    payload = _payload(fields.get("payload", b""))
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise JobRefused(
            413,
            f"the job's payload is {len(payload):,} bytes; a job carries at most "
            f"{MAX_PAYLOAD_BYTES:,} bytes up the link",
        )
    kind = fields.get("kind")
    if kind not in KINDS:
        raise JobRefused(422, f"unknown job kind {kind!r}; one of {', '.join(KINDS)}")
    params = fields.get("params") or {}
    if not isinstance(params, dict):
        raise JobRefused(422, "params must be a JSON object")
    priority = fields.get("priority", 5)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise JobRefused(422, "priority must be a whole number")
    avoid_saa = fields.get("avoid_saa", False)
    if not isinstance(avoid_saa, bool):
        raise JobRefused(422, "avoid_saa must be true or false")
    spec = JobSpec(
        job_id=0,
        customer=customer,
        kind=kind,
        params=params,
        payload=payload,
        submitted_t=float(now_t),
        deadline_t=_deadline(fields, now_t),
        priority=priority,
        avoid_saa=avoid_saa,
    )
    try:
        spec.check()
        json.dumps(params, allow_nan=False)
        workload = module_for(kind)
        workload.check(params, payload)
        est = workload.estimate(params, payload)
    except UserError as exc:
        raise JobRefused(422, str(exc)) from None
    except ValueError:
        raise JobRefused(422, "params must hold finite numbers only") from None
    return spec, est


def _payload(value) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if not isinstance(value, str):
        raise JobRefused(422, "payload must be base64 text")
    if len(value) > 2 * MAX_PAYLOAD_BYTES:  # decoded it is larger than a job may be
        raise JobRefused(413, f"the job's payload is over {MAX_PAYLOAD_BYTES:,} bytes")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise JobRefused(422, "payload is not valid base64") from None


def _deadline(fields: dict, now_t: float) -> float | None:
    at, within = fields.get("deadline_t"), fields.get("deadline_in_s")
    if at is not None and within is not None:
        raise JobRefused(422, "give the deadline once: deadline_t or deadline_in_s")
    for name, value in (("deadline_t", at), ("deadline_in_s", within)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
        ):
            raise JobRefused(422, f"{name} must be a finite number of seconds")
    if within is not None:
        if within <= 0:
            raise JobRefused(422, "the deadline is in the past")
        return float(now_t) + float(within)
    return None if at is None else float(at)


def _verdict(run: RunDir, spec: JobSpec, est, ahead: list, now_t: float):
    """The scheduler's word (skyrack.jobs.schedule) from the mission's forecast."""
    from skyrack.jobs.schedule import feasible, load_forecast

    try:
        forecast = load_forecast(run)
    except UserError as exc:  # the mission writes it as it starts: without it, it is not flying
        raise JobRefused(409, str(exc)) from None
    return feasible(spec, est, forecast, ahead, now_t)


def _fingerprint(fields: dict) -> str:
    """What makes two submissions the same request (for the Idempotency-Key)."""
    d = {k: fields.get(k) for k in FIELDS}
    raw = d.pop("payload") or b""
    if isinstance(raw, str):
        raw = raw.encode("ascii", "replace")  # the base64 text as given: the same text, the same request
    d["payload_sha256"] = hashlib.sha256(bytes(raw)).hexdigest()
    return json.dumps(d, sort_keys=True, default=str)


def _by_key(db, customer: str, key: str) -> dict | None:
    row = db.execute("SELECT id, request FROM jobs WHERE customer=? AND idempotency_key=?", (customer, key))
    found = row.fetchone()
    return {"id": found[0], "request": found[1]} if found else None


def _replay(run: RunDir, known: dict, request: str) -> dict:
    if known["request"] != request:
        raise JobRefused(409, "this Idempotency-Key was used for a different job")
    record = {**job(run, known["id"], None), "replayed": True}
    if record["state"] == "refused":
        raise JobRefused(record["refused"]["status"], record["refused"]["reason"], record)
    return record


def _insert(db, spec: JobSpec, state, status, reason, est, verdict, key, request) -> int:
    return db.execute(
        "INSERT INTO jobs (id, customer, kind, params, payload, payload_bytes, priority, avoid_saa, "
        "submitted_t, deadline_t, state, status, reason, estimate, schedule, idempotency_key, request) "
        "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (
            spec.job_id,
            spec.customer,
            spec.kind,
            json.dumps(spec.params, default=str),
            spec.payload if state != "refused" else b"",
            len(spec.payload),
            spec.priority,
            int(spec.avoid_saa),
            spec.submitted_t,
            spec.deadline_t,
            state,
            status,
            reason,
            json.dumps({"wall_s": est.wall_s, "result_bytes": est.result_bytes}) if est else None,
            json.dumps(verdict.as_dict()) if verdict is not None else None,
            key,
            request,
        ),
    ).lastrowid


def _record_refusal(db, fields, customer, now_t, refused: JobRefused, key, request) -> None:
    """Keep the refused job (no payload): it has an id and its reason, for the customer and the report."""
    kind = fields.get("kind") if isinstance(fields.get("kind"), str) else str(fields.get("kind"))
    params = fields.get("params") if isinstance(fields.get("params"), dict) else {}
    priority = fields.get("priority") if isinstance(fields.get("priority"), int) else None
    deadline = fields.get("deadline_t")
    with db:
        job_id = db.execute(
            "INSERT INTO jobs (customer, kind, params, payload, payload_bytes, priority, avoid_saa, "
            "submitted_t, deadline_t, state, status, reason, idempotency_key, request) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                str(customer)[:64],
                kind[:64],
                json.dumps(params, default=str)[:4000],
                b"",
                0,
                priority,
                int(bool(fields.get("avoid_saa"))),
                float(now_t),
                float(deadline) if isinstance(deadline, (int, float)) and math.isfinite(deadline) else None,
                "refused",
                refused.status,
                refused.reason,
                key,
                request,
            ),
        ).lastrowid
    refused.job = {"id": job_id, "state": "refused", "status": refused.status, "reason": refused.reason}


# -- reading ---------------------------------------------------------------------------------------
COLUMNS = (
    "id", "customer", "kind", "params", "payload", "payload_bytes", "priority", "avoid_saa",
    "submitted_t", "deadline_t", "state", "status", "reason", "estimate", "schedule", "cancel_t",
)  # fmt: skip


@contextlib.contextmanager
def _reader(run: RunDir):
    """A read-only connection to the ledger's archive (None when no job was ever submitted)."""
    path = run.served_archive
    if not path.is_file():
        yield None
        return
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        if db.execute("SELECT 1 FROM sqlite_master WHERE name='jobs'").fetchone() is None:
            yield None
        else:
            yield db
    finally:
        db.close()


def jobs_of(run: RunDir | str, customer: str | None) -> list[dict]:
    """Every job of `customer` (None: the operator, every job), oldest first."""
    run = as_run(run)
    with _reader(run) as db:
        if db is None:
            return []
        where, args = ("WHERE customer=?", (customer,)) if customer is not None else ("", ())
        rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM jobs {where} ORDER BY id", args).fetchall()
        return _records(run, db, rows)


def job(run: RunDir | str, job_id: int, customer: str | None) -> dict:
    """One job's record; JobRefused(404) when there is none, or it is another customer's."""
    run = as_run(run)
    with _reader(run) as db:
        rows = []
        if db is not None:
            rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM jobs WHERE id=?", (int(job_id),)).fetchall()
        if not rows or (customer is not None and rows[0][1] != customer):
            raise JobRefused(404, f"no job {job_id}")
        return _records(run, db, rows)[0]


def result_path(run: RunDir | str, job_id: int, customer: str | None) -> Path | None:
    """The result's file on the ground once delivered (None before); 404 as `job`."""
    record = job(run, job_id, customer)
    return Path(record["result"]["path"]) if record["state"] == "delivered" else None


def _records(run: RunDir, db, rows: list) -> list[dict]:
    ids = [r[0] for r in rows]
    events = _job_events(db, ids)
    results = _results(run, db, ids, events)
    commands = _commands(db, ids)
    return [_record(dict(zip(COLUMNS, r)), events.get(r[0]), results.get(r[0]), commands) for r in rows]


def _job_events(db, ids: list[int]) -> dict[int, dict]:
    """For each job, what the ground has received of it: the newest state (by on-board event id)
    and the accounting the events carried (later keys over earlier)."""
    out: dict[int, dict] = {}
    if not ids:
        return out
    has_receipts = db.execute("SELECT 1 FROM sqlite_master WHERE name='receipts'").fetchone() is not None
    received = (
        "(SELECT received_t FROM receipts WHERE kind='event' AND receipts.id=events.id)"
        if has_receipts
        else "events.t"
    )
    wanted = set(ids)
    rows = db.execute(
        f"SELECT id, t, data, {received} FROM events WHERE name='job' ORDER BY id"
    ).fetchall()  # few: one per state change of a job
    for _, t, data, received_t in rows:
        d = json.loads(data or "{}")
        jid = d.get("job_id")
        if jid not in wanted:
            continue
        entry = out.setdefault(jid, {"extra": {}})
        entry.update(state=d.get("state"), detail=d.get("detail"), t=t, received_t=received_t)
        entry["extra"].update({k: v for k, v in d.items() if k not in ("job_id", "state", "detail")})
        if d.get("state") == "done":
            entry["done_t"] = t
    return out


def _results(run: RunDir, db, ids: list[int], events: dict) -> dict[int, dict]:
    """The results complete on the ground: the link's received files over a real link, the
    on-board result of a `done` job on the ideal link."""
    out: dict[int, dict] = {}
    if run.ground_archive.is_file():
        if db.execute("SELECT 1 FROM sqlite_master WHERE name='files'").fetchone() is None:
            return out
        base = (run.path / DOWNLINK_NAME).resolve()
        for name, size, completed_t in db.execute(
            "SELECT name, size, completed_t FROM files WHERE status='complete' AND name LIKE ? ORDER BY id",
            (f"{JOBS_NAME}/%",),
        ):
            parts = Path(name).parts
            if len(parts) != 3 or not parts[1].isdigit() or int(parts[1]) not in ids:
                continue
            path = base / name
            if base in path.resolve().parents and path.is_file():
                out[int(parts[1])] = {
                    "name": parts[2],
                    "bytes": size,
                    "delivered_t": completed_t,
                    "path": path,
                }
        return out
    for jid, ev in events.items():
        if ev.get("state") != "done":
            continue
        folder = run.path / JOBS_NAME / str(jid)
        named = ev["extra"].get("result")
        candidates = [folder / Path(named).name] if isinstance(named, str) else sorted(folder.glob("*"))
        found = [p for p in candidates if p.is_file()]
        if len(found) == 1:
            f = found[0]
            out[jid] = {"name": f.name, "bytes": f.stat().st_size, "delivered_t": ev["done_t"], "path": f}
    return out


def _commands(db, ids: list[int]) -> dict[str, dict]:
    keys = [command_key(i, w) for i in ids for w in ("submit", "cancel")]
    out = {}
    for chunk in range(0, len(keys), 500):
        part = keys[chunk : chunk + 500]
        rows = db.execute(
            f"SELECT idempotency_key, id, status, result FROM commands WHERE idempotency_key IN "
            f"({','.join('?' * len(part))})",
            part,
        )
        out.update({k: {"id": i, "status": s, "result": r} for k, i, s, r in rows})
    return out


def _record(row: dict, ev: dict | None, result: dict | None, commands: dict) -> dict:
    extra = (ev or {}).get("extra", {})
    if row["state"] == "refused":
        state = "refused"
    elif result is not None:
        state = "delivered"
    elif ev is not None and ev.get("state"):
        state = ev["state"]
    else:
        state = row["state"]  # submitted, or cancelled on the ground before it went up
    delivered_t = result["delivered_t"] if result else None
    latency = delivered_t - row["submitted_t"] if delivered_t is not None else None
    deadline = row["deadline_t"]
    return {
        "id": row["id"],
        "customer": row["customer"],
        "kind": row["kind"],
        "params": json.loads(row["params"]),
        "payload_bytes": row["payload_bytes"],
        "priority": row["priority"],
        "avoid_saa": bool(row["avoid_saa"]),
        "submitted_t": row["submitted_t"],
        "deadline_t": deadline,
        "state": state,
        "detail": (ev or {}).get("detail") if ev else row["reason"],
        "refused": {"status": row["status"], "reason": row["reason"]} if row["state"] == "refused" else None,
        "estimate": json.loads(row["estimate"]) if row["estimate"] else None,
        "schedule": json.loads(row["schedule"]) if row["schedule"] else None,
        "uplink": commands.get(command_key(row["id"])),
        "on_board": {k: ev.get(k) for k in ("state", "detail", "t", "received_t")} | extra if ev else None,
        "cancel": commands.get(command_key(row["id"], "cancel")) if row["cancel_t"] is not None else None,
        "result": {k: str(v) if k == "path" else v for k, v in result.items()} if result else None,
        "delivered_t": delivered_t,
        "latency_s": latency,
        "deadline_met": (delivered_t <= deadline) if (delivered_t is not None and deadline) else None,
        "energy_wh": extra.get("energy_wh"),
        "gpu_s": extra.get("gpu_s"),
        "price_usd": extra.get("price_usd"),
    }


def _spec_dict(spec: JobSpec) -> dict:
    from dataclasses import asdict

    return asdict(spec)


def _open_jobs(run: RunDir, db) -> list[tuple[JobSpec, object, dict]]:
    """The jobs accepted and not final (what the scheduler must fit a new one behind)."""
    from skyrack.jobs.workload import Estimate

    rows = db.execute(f"SELECT {', '.join(COLUMNS)} FROM jobs WHERE state='submitted' ORDER BY id").fetchall()
    out = []
    for row, record in zip(rows, _records(run, db, rows)):
        if record["state"] in FINAL:
            continue
        d = dict(zip(COLUMNS, row))
        spec = JobSpec(
            job_id=d["id"],
            customer=d["customer"],
            kind=d["kind"],
            params=json.loads(d["params"]),
            payload=bytes(d["payload"]),
            submitted_t=d["submitted_t"],
            deadline_t=d["deadline_t"],
            priority=d["priority"],
            avoid_saa=bool(d["avoid_saa"]),
        )
        est = json.loads(d["estimate"]) if d["estimate"] else {"wall_s": 0.0, "result_bytes": 0}
        out.append((spec, Estimate(**est), record))
    return out


# -- cancelling ------------------------------------------------------------------------------------
def cancel(run: RunDir | str, job_id: int, customer: str | None, now_t: float | None = None) -> dict:
    """Ask for a job to be cancelled; returns its record. A job whose telecommand is still
    waiting on the ground is withdrawn (cancelled at once, if nothing of it came down yet); a
    `cancel_job` goes up in any case (the job may be on its way), and the satellite cancels it if
    it has not started. A final job is refused (409); a repeated cancel is harmless."""
    from skyrack.telemetry.archive import Archive

    run = as_run(run)
    record = job(run, job_id, customer)
    if record["state"] in FINAL:
        raise JobRefused(409, f"job {job_id} is {record['state']}: there is nothing to cancel")
    if record["cancel"] is not None:
        return record
    with Archive(run.served_archive) as archive:
        if archive.meta("status") != "running" or run.writer_gone():
            raise JobRefused(409, "the mission is not running; jobs are cancelled only in flight")
        now = _ground_now(archive, run) if now_t is None else now_t
        db = archive.db
        with db:
            withdrawn = db.execute(
                "UPDATE commands SET status='failed', result=?, updated_t=? "
                "WHERE idempotency_key=? AND status='queued'",
                (WITHDRAWN, now, command_key(job_id)),
            ).rowcount
            if withdrawn and record["on_board"] is None:
                db.execute("UPDATE jobs SET state='cancelled' WHERE id=?", (int(job_id),))
            db.execute("UPDATE jobs SET cancel_t=? WHERE id=?", (now, int(job_id)))
        if not (withdrawn and not run.ground_archive.is_file()):  # on the ideal link it never went
            archive.queue_command(
                "cancel_job", {"job_id": int(job_id)}, now=now, idempotency_key=command_key(job_id, "cancel")
            )
    return job(run, job_id, customer)


def _ground_now(archive, run: RunDir) -> float:
    """The ground's time: its own clock over a real link, else the newest frame."""
    now = archive.meta("ground_clock") if run.ground_archive.is_file() else None
    if now is None:
        last = archive.last_frame()
        now = last[1] if last else archive.meta("start_t", 0.0)
    return float(now)
