"""What a job is, the one declaration shared by the ground (submission, refusal, accounting) and
the satellite (queue, schedule, run): its kinds, its states, its limits, and its wire form.

A job flies up as the `submit_job` telecommand, its whole spec in one string argument (the
wire form below, payload included), so the link's command machinery carries it: sent again each
contact until accepted, its size paid from the uplink budget, executed on board at the next
frame after it arrived. `cancel_job` names a job by id.

States (each change is a `job` event in the dictionary; the ground learns them from telemetry):

    submitted (ground) -> queued (on board) -> running -> done | failed
                                     \\-> cancelled      (a queued job, or one not yet up)
    refused: at submission, never flown (the reason is kept)
    delivered: the result is complete on the ground (ground side only)
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import asdict, dataclass, field

from skyrack.errors import UserError

KINDS = ("infer", "screen")  # background training is not a job: it is what jobs preempt
STATES = ("submitted", "queued", "running", "done", "failed", "cancelled", "refused", "delivered")
FINAL = ("done", "failed", "cancelled", "refused", "delivered")

MAX_PAYLOAD_BYTES = 40 * 1024  # one telecommand (<= 64 KiB of CCSDS data) carries the whole job, base64
MAX_PRIORITY = 9  # 0 lowest .. 9 highest: the order results go down in, and ties in the schedule
MAX_NAME = 64


@dataclass(frozen=True)
class JobSpec:
    job_id: int  # given by the ground at submission; unique within a mission
    customer: str
    kind: str
    params: dict = field(default_factory=dict)  # kind-specific, small JSON values (see the kinds)
    payload: bytes = b""  # uploaded data: prompts (UTF-8 JSON list) or an image (PNG / GeoTIFF)
    submitted_t: float = 0.0  # simulated POSIX seconds at the ground
    deadline_t: float | None = None  # the result must be on the ground by then (None: best effort)
    priority: int = 5
    avoid_saa: bool = False  # do not run inside the South Atlantic Anomaly

    def check(self) -> None:
        """Refuse a malformed spec with one clear line (the workload checks its own params)."""
        if self.kind not in KINDS:
            raise UserError(f"unknown job kind {self.kind!r}; one of {', '.join(KINDS)}")
        if not (0 <= self.priority <= MAX_PRIORITY):
            raise UserError(f"priority must be within 0..{MAX_PRIORITY}")
        if len(self.payload) > MAX_PAYLOAD_BYTES:
            raise UserError(
                f"the job's payload is {len(self.payload):,} bytes; a job carries at most "
                f"{MAX_PAYLOAD_BYTES:,} bytes up the link"
            )
        if self.deadline_t is not None and not math.isfinite(self.deadline_t):
            raise UserError("the deadline must be a finite time")
        if self.deadline_t is not None and self.deadline_t <= self.submitted_t:
            raise UserError("the deadline is in the past")
        if not self.customer or len(self.customer) > MAX_NAME:
            raise UserError(f"a customer name is 1 to {MAX_NAME} characters")

    # -- the wire form: the `spec` argument of the submit_job telecommand --------------------------
    def encode(self) -> str:
        d = asdict(self)
        d["payload"] = base64.b64encode(self.payload).decode("ascii")
        return json.dumps(d, separators=(",", ":"), sort_keys=True)

    @classmethod
    def decode(cls, text: str) -> JobSpec:
        try:
            d = json.loads(text)
            d["payload"] = base64.b64decode(d.get("payload", ""), validate=True)
            spec = cls(**d)
        except (ValueError, TypeError) as exc:
            raise UserError(f"not a job spec: {exc}") from None
        spec.check()
        return spec
