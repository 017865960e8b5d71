"""Customers' jobs (skyrack.jobs.ledger): submit one, list them, read one, cancel one, fetch its
result once it is on the ground.

Every route needs a token: a customer's own (skyrack.ground.customers) reaches that customer's
jobs only, and another customer's job reads as no job at all (404); the operator's token
(skyrack.ground.auth) sees and cancels every job. No token, or one that is no one's: 401.
Every refusal is a 4xx with the reason in `detail`.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Response
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field

from skyrack.ground.auth import bearer_matches
from skyrack.ground.routes import MAX_ID, GroundDep, check_idempotency_key
from skyrack.ground.state import Ground
from skyrack.jobs import ledger
from skyrack.jobs.spec import MAX_PRIORITY

OPERATOR = "operator"  # the name the operator's own jobs are recorded under

router = APIRouter()


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str = Field(min_length=1, max_length=32, description="infer or screen (skyrack.jobs.spec.KINDS)")
    params: dict[str, Any] = Field(default_factory=dict, max_length=32, description="the kind's parameters")
    payload: str = Field(default="", description="the uploaded data, base64: prompts (JSON) or an image")
    deadline: float | None = Field(
        default=None, description="the result must be on the ground by then (simulated POSIX seconds)"
    )
    deadline_in_s: float | None = Field(default=None, description="or: this many seconds from now")
    priority: int = Field(default=5, ge=0, le=MAX_PRIORITY, description="0 lowest .. 9 highest")
    avoid_saa: bool = Field(default=False, description="never run inside the South Atlantic Anomaly")


def caller(ground: Ground, authorization: str | None) -> str | None:
    """The customer a token belongs to; None for the operator; 401 for anyone else."""
    if bearer_matches(authorization, ground.token):
        return None
    scheme, _, given = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and given.strip():
        name = ground.customers.who(given.strip())
        if name is not None:
            return name
    raise HTTPException(
        401,
        "jobs need a customer's token or the operator's: Authorization: Bearer <token>",
        headers={"www-authenticate": "Bearer"},
    )


async def _in_writer(ground: Ground, work):
    """Ledger work on the server's one writer thread; a refusal becomes its 4xx."""

    def guarded():
        try:
            return work()
        except ledger.JobRefused as refused:
            raise HTTPException(refused.status, refused.reason) from None

    return await asyncio.get_running_loop().run_in_executor(ground.writer_pool, guarded)


HeaderValue = Annotated[str | None, Header()]
JobId = Annotated[int, PathParam(ge=1, le=MAX_ID)]


@router.post(
    "/api/jobs",
    tags=["jobs"],
    status_code=201,
    summary="submit a job (customer or operator token; Idempotency-Key honoured)",
)
async def post_job(
    ground: GroundDep,
    body: JobRequest,
    response: Response,
    authorization: HeaderValue = None,
    idempotency_key: HeaderValue = None,
):
    customer = caller(ground, authorization)
    check_idempotency_key(idempotency_key)
    fields = body.model_dump()
    fields["deadline_t"] = fields.pop("deadline")

    def submit():
        now = ground.now()
        if now is None:
            now = ground.archive().meta("start_t") or time.time()
        return ledger.submit(ground.run, fields, customer or OPERATOR, now, idempotency_key=idempotency_key)

    record = await _in_writer(ground, submit)
    if record.pop("replayed", False):
        response.status_code = 200
        response.headers["idempotent-replayed"] = "true"
    return record


@router.get("/api/jobs", tags=["jobs"], summary="the caller's jobs, oldest first (the operator: all)")
async def list_jobs(ground: GroundDep, authorization: HeaderValue = None):
    customer = caller(ground, authorization)
    return {"jobs": await _in_writer(ground, lambda: ledger.jobs_of(ground.run, customer))}


@router.get("/api/jobs/{job_id}", tags=["jobs"], summary="one job: its state, schedule and accounting")
async def get_job(ground: GroundDep, job_id: JobId, authorization: HeaderValue = None):
    customer = caller(ground, authorization)
    return await _in_writer(ground, lambda: ledger.job(ground.run, job_id, customer))


@router.post("/api/jobs/{job_id}/cancel", tags=["jobs"], summary="cancel a job that has not started")
async def cancel_job(ground: GroundDep, job_id: JobId, authorization: HeaderValue = None):
    customer = caller(ground, authorization)
    return await _in_writer(ground, lambda: ledger.cancel(ground.run, job_id, customer))


@router.get(
    "/api/jobs/{job_id}/result",
    tags=["jobs"],
    summary="the job's result, once it is on the ground (404 before, with the job's state)",
    response_class=Response,
)
async def get_result(ground: GroundDep, job_id: JobId, authorization: HeaderValue = None):
    customer = caller(ground, authorization)

    def read():
        record = ledger.job(ground.run, job_id, customer)
        path = ledger.result_path(ground.run, job_id, customer)
        if path is None:
            raise ledger.JobRefused(
                404, f"job {job_id} is {record['state']}: its result is not on the ground yet"
            )
        return record["result"]["name"], path.read_bytes()

    name, data = await _in_writer(ground, read)
    shown = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:128] or "result"
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"content-disposition": f'attachment; filename="{shown}"'},
    )
