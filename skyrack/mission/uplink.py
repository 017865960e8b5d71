"""Commands from the ground, executed at the mission's next tick: queued -> dispatched ->
completed | failed (each change is a `command` event, written by the archive).

What a command changes is the operator's part of the compute budget (`Operator`): a pause, an
upper bound on the governor's power cap, the fault stress; or the queue of customers' jobs
(`submit_job`, `cancel_job`, handed to `skyrack.jobs.service.JobService`). It is kept in the archive's meta
(`operator`) so that a resumed mission keeps obeying it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass


@dataclass
class Operator:
    paused: bool = False
    cap_limit_w: float | None = None
    stress: float = 1.0

    def cap(self, governor_cap_w: float, min_w: float, jobs_waiting: bool = False) -> float:
        """The cap the GPU runs at: the governor's, bounded by the operator; 0 is paused. A
        pause stops the training only: customers' jobs waiting still get the GPU."""
        if (self.paused and not jobs_waiting) or governor_cap_w <= 0:
            return 0.0
        cap = governor_cap_w if self.cap_limit_w is None else min(governor_cap_w, self.cap_limit_w)
        return cap if cap >= min_w else 0.0

    def as_dict(self) -> dict:
        return asdict(self)


def execute(
    archive,
    t: float,
    operator: Operator,
    checkpoint_now: Callable[[], str],
    downlink_checkpoint: Callable[[], str] | None = None,
    jobs=None,
) -> bool:
    """Run every queued command; returns whether the operator state changed. `jobs`: the
    on-board job service (skyrack.jobs.service), which takes submit_job and cancel_job."""
    changed = False
    for cmd in archive.pending_commands(t):  # a time-tagged command waits for its time
        archive.set_command_status(cmd["id"], "dispatched", now=t)
        name, args = cmd["name"], cmd["args"]
        try:
            if name == "ping":
                result = "pong"
            elif name == "pause_training":
                result = "training paused" if not operator.paused else "already paused"
                operator.paused, changed = True, True
            elif name == "resume_training":
                result = "training resumed" if operator.paused else "was not paused"
                operator.paused, changed = False, True
            elif name == "checkpoint_now":
                result = checkpoint_now()
            elif name == "downlink_checkpoint":
                if downlink_checkpoint is None:
                    raise ValueError(
                        "the ideal link has no downlink of files: the checkpoint is in the run directory"
                    )
                result = downlink_checkpoint()
            elif name == "set_power_cap":
                operator.cap_limit_w, changed = float(args["cap_w"]), True
                result = f"GPU cap limited to {operator.cap_limit_w:.0f} W"
            elif name == "set_stress":
                operator.stress, changed = float(args["factor"]), True
                result = f"fault stress x{operator.stress:g}"
            elif name in ("submit_job", "cancel_job"):
                if jobs is None:
                    raise ValueError("this mission runs no job service")
                if name == "submit_job":
                    result = jobs.submit(str(args["spec"]), t)
                else:
                    result = jobs.cancel(int(args["job_id"]), t)
            else:
                raise ValueError(f"the mission does not know command {name!r}")
        except Exception as exc:  # a failed command is reported, and the mission flies on
            archive.set_command_status(cmd["id"], "failed", now=t, result=str(exc).splitlines()[0][:200])
            continue
        archive.set_command_status(cmd["id"], "completed", now=t, result=result)
    return changed
