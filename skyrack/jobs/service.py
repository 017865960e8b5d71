"""The job service on board: customers' jobs queued, run between training steps within the GPU's
budget, accounted, and their results handed to the downlink.

- `submit_job` / `cancel_job` telecommands reach it through `skyrack.mission.uplink.execute`: a
  job is `queued` (its spec kept under `RUN/jobs/<id>/.onboard/`), a queued job may be cancelled.
- Every tick the mission grants the GPU's compute (simulated seconds of full-power GPU time:
  the tick times the governor's throughput fraction; nothing when the cap is 0, which covers
  eclipse, heat and a die not yet warm). `spend` takes it for jobs first, in the order of
  `skyrack.jobs.schedule.edf_key` (earliest deadline, then priority), skipping `avoid_saa` jobs
  inside the SAA; training gets the rest.
- A job starts by running for real, here, between two training steps (`workload.run`), the
  trainer's random state saved before and restored after (the workloads promise not to touch it;
  this makes sure), and the torch thread count likewise. Its compute is its wall time times the
  ratio a training step is charged at; it is then `running` until the ticks have paid that
  compute, and `done` at the tick that pays the last of it: its result moves from
  `.onboard/` to `RUN/jobs/<id>/<name>` and is offered to the link's file downlink with the
  job's priority.
- Radiation: while a job runs, upsets are drawn at the orbit's rate (the mission's stress
  included) times the share of the GPU's memory the job's working memory occupies
  (`WORKING_BYTES`, an assumption: inputs, activations, KV cache and outputs; the weights are
  read-only and not counted), over the simulated seconds it occupies the GPU. A hit is caught
  (the memory's ECC / the result's checksum, an assumption) and costs the attempt: the job runs
  again from the start, up to `ATTEMPTS` times in all, its lost GPU time and energy still
  accounted to it; then it fails alone, as a crash of its workload does. The queue and the
  training go on.
- Energy: the bus model's GPU energy of each tick (draw x tick) is split between the jobs, the
  training and idle by the compute each used; a job's energy is the sum of its shares, its price
  its GPU-hours at the planner's $/GPU-hour (`skyrack.jobs.pricing`).

The service's state (the jobs and the totals) is the archive's meta `jobs_board`, written with
each frame in the frame's own transaction, so a resumed mission continues the queue where the
last committed frame left it.
"""

from __future__ import annotations

import inspect
import json
import os
import random
import time
from dataclasses import dataclass

import numpy as np

from skyrack.jobs.schedule import edf_key
from skyrack.jobs.spec import JobSpec
from skyrack.storage import atomic_write_bytes, atomic_write_text
from skyrack.telemetry.archive import Event

META_KEY = "jobs_board"
ONBOARD = ".onboard"  # RUN/jobs/<id>/.onboard/: the spec and a result not yet done
WORKING_BYTES = {"screen": 4e6, "infer": 8e6}  # assumption: a job's working memory on the GPU
EPS_S = 1e-9
ATTEMPTS = 3  # runs of a job an upset may spoil before it fails: a replay, as training's are


@dataclass
class Tick:
    """What one tick gave the GPU: its compute and energy, and where they went."""

    granted_s: float = 0.0  # full-power seconds of compute the tick allowed
    jobs_s: float = 0.0
    energy_wh: float = 0.0
    jobs_wh: float = 0.0
    training_wh: float = 0.0
    idle_wh: float = 0.0


def _fresh() -> dict:
    return {
        "jobs": {},
        "totals": {"jobs_wh": 0.0, "training_wh": 0.0, "idle_wh": 0.0, "gpu_wh": 0.0, "jobs_gpu_s": 0.0},
        "counts": {"done": 0, "failed": 0, "cancelled": 0},
        "busy": 0.0,
        "jobs_share": 0.0,
    }


class JobService:
    def __init__(self, archive, jobs_dir, *, gpu_bits: float, seed: int = 0, offer=None, price=None):
        """`offer(path, name, priority)`: the link's file downlink (None on the ideal link);
        `price(gpu_s) -> $`: the job's price (None: `skyrack.jobs.pricing` for the profile)."""
        self.archive, self.jobs_dir = archive, jobs_dir
        self.gpu_bits, self.seed = gpu_bits, seed
        self.offer, self.price = offer, price
        self.state = {**_fresh(), **(archive.meta(META_KEY) or {})}
        self.pending: list[Event] = []  # job events of this tick, committed with its frame
        self.specs: dict[int, JobSpec] = {}
        self.paid: dict[int, float] = {}  # this tick: compute each job got
        self.had_work = False  # this tick: a job could run when it began
        self.started_now = False  # this tick: a job ran for real (what it took is news for the forecast)
        self.done_now: list[dict] = []  # this tick: jobs whose compute is paid

    # -- the commands --------------------------------------------------------------------------
    def submit(self, text: str, t: float) -> str:
        spec = JobSpec.decode(text)
        jid = str(spec.job_id)
        if jid in self.state["jobs"]:
            return f"job {spec.job_id} is already on board ({self.state['jobs'][jid]['state']})"
        folder = self._folder(spec.job_id) / ONBOARD
        atomic_write_text(folder / "spec.json", text)
        estimate = None
        try:  # loads the workload's model now, outside any job's GPU time; a failure shows at its run
            from skyrack.jobs.workload import module_for

            estimate = float(module_for(spec.kind).estimate(spec.params, spec.payload).wall_s)
        except Exception:
            pass
        self.state["jobs"][jid] = {
            "job_id": spec.job_id,
            "customer": spec.customer,
            "kind": spec.kind,
            "priority": spec.priority,
            "deadline_t": spec.deadline_t,
            "submitted_t": spec.submitted_t,
            "avoid_saa": spec.avoid_saa,
            "state": "queued",
            "queued_t": t,
            "need_s": None,
            "paid_s": 0.0,
            "energy_wh": 0.0,
            "wall_s": None,
            "estimate_wall_s": estimate,
        }
        self.specs[spec.job_id] = spec
        self._now(t, spec.job_id, "queued", f"{spec.kind} for {spec.customer}, priority {spec.priority}")
        return f"job {spec.job_id} queued"

    def cancel(self, job_id: int, t: float) -> str:
        job = self.state["jobs"].get(str(int(job_id)))
        if job is None:
            raise ValueError(f"no job {job_id} on board")
        if job["state"] != "queued":
            raise ValueError(f"job {job_id} is {job['state']}: only a queued job can be cancelled")
        job["state"] = "cancelled"
        self.state["counts"]["cancelled"] += 1
        self._now(t, int(job_id), "cancelled", "cancelled from the ground")
        return f"job {job_id} cancelled"

    def _now(self, t: float, job_id: int, state: str, detail: str) -> None:
        """A change made by a command: on record at once (the command's own status is)."""
        self.archive.write_events(t, [self._event(job_id, state, detail)])
        self.archive.set_meta(META_KEY, self.state)

    # -- each tick -----------------------------------------------------------------------------
    def has_work(self) -> bool:
        return any(j["state"] in ("queued", "running") for j in self.state["jobs"].values())

    def _runnable(self, in_saa: bool) -> list[dict]:
        jobs = [j for j in self.state["jobs"].values() if j["state"] in ("queued", "running")]
        if in_saa:
            jobs = [j for j in jobs if not j["avoid_saa"]]
        return sorted(jobs, key=lambda j: edf_key(_Key(j)))

    def tick(
        self, t: float, credit_s: float, *, fraction: float, ratio: float, in_saa: bool, upset_rate: float
    ) -> float:
        """The jobs' part of a tick, before its training steps: up to `credit_s` of its compute
        (full-power seconds) for jobs in EDF order; returns what they used. `upset_rate`: the
        expected upsets a second in the whole GPU memory, stress included."""
        self.paid, self.done_now, self.started_now = {}, [], False
        used = 0.0
        runnable = self._runnable(in_saa)
        self.had_work = bool(runnable)
        if fraction <= 0:
            return used
        for job in runnable:
            if credit_s - used <= EPS_S:
                break
            if job["state"] == "queued":
                self._start(job, t, ratio)
                if job["state"] != "running":
                    continue
            pay = min(job["need_s"] - job["paid_s"], credit_s - used)
            job["paid_s"] += pay
            job["used_s"] = job.get("used_s", 0.0) + pay  # every attempt's GPU time, for the bill
            used += pay
            self.paid[job["job_id"]] = pay
            if self._hit(job, upset_rate, pay / fraction, t):  # pay / fraction: seconds it holds the GPU
                continue
            if job["paid_s"] >= job["need_s"] - EPS_S:
                job.update(state="done", ended_t=t)
                self.state["counts"]["done"] += 1
                self.done_now.append(job)
        return used

    def account(
        self, *, granted_s: float, jobs_s: float, gpu_w: float, tick_s: float, training: bool
    ) -> Tick:
        """Split the tick's GPU energy (the bus model's draw x tick) by the compute each used."""
        energy = gpu_w * tick_s / 3600.0
        out = Tick(granted_s=granted_s, jobs_s=jobs_s, energy_wh=energy)
        if granted_s <= 0:
            out.idle_wh = energy
        else:
            share = min(jobs_s, granted_s) / granted_s
            out.jobs_wh = energy * share
            rest = energy - out.jobs_wh
            if training:
                out.training_wh = rest
            else:
                out.idle_wh = rest
            paid = sum(self.paid.values())
            for jid, pay in self.paid.items():
                self.state["jobs"][str(jid)]["energy_wh"] += out.jobs_wh * pay / paid if paid > 0 else 0.0
        totals = self.state["totals"]
        totals["jobs_wh"] += out.jobs_wh
        totals["training_wh"] += out.training_wh
        totals["idle_wh"] += out.idle_wh
        totals["gpu_wh"] += energy
        totals["jobs_gpu_s"] += jobs_s
        if granted_s > 0 and self.had_work:  # power allowed and work waited: what went unused
            totals["work_powered_s"] = totals.get("work_powered_s", 0.0) + granted_s
            unused = 0.0 if training else granted_s - min(jobs_s, granted_s)
            totals["work_idle_s"] = totals.get("work_idle_s", 0.0) + unused
        share = min(jobs_s, granted_s) / granted_s if granted_s > 0 else 0.0
        self.state["jobs_share"] = share
        self.state["busy"] = (1.0 if training else share) if granted_s > 0 else 0.0
        self._finalise_done()
        return out

    # -- a job's life --------------------------------------------------------------------------
    def _folder(self, job_id: int):
        return self.jobs_dir / str(int(job_id))

    def _spec(self, job_id: int) -> JobSpec:
        if job_id not in self.specs:
            self.specs[job_id] = JobSpec.decode((self._folder(job_id) / ONBOARD / "spec.json").read_text())
        return self.specs[job_id]

    def _start(self, job: dict, t: float, ratio: float) -> None:
        """Run the job for real, now, between two training steps."""
        from skyrack.jobs.workload import module_for

        jid = job["job_id"]
        try:
            spec = self._spec(jid)
            workload = module_for(spec.kind)
            with KeepTrainerState():
                prepare = getattr(workload, "prepare", None)
                if prepare is not None:  # a model loaded once per process is not the job's GPU time
                    prepare()
                t0 = time.perf_counter()
                outcome = workload.run(spec.params, spec.payload, seed=self.seed * 1_000_003 + jid)
                wall = time.perf_counter() - t0
            name = os.path.basename(outcome.name) or "result"
            atomic_write_bytes(self._folder(jid) / ONBOARD / name, outcome.result)
        except Exception as exc:  # the job fails alone; the queue and the training go on
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            self._fail(job, t, f"the {job['kind']} workload failed: {reason}")
            return
        job.update(
            state="running",
            started_t=t,
            wall_s=wall,
            need_s=wall * ratio,
            result=name,
            result_bytes=len(outcome.result),
            summary=_small(outcome.summary),
        )
        self.started_now = True
        self.pending.append(
            self._event(jid, "running", f"ran {wall:.2f} s here: {wall * ratio:.0f} GPU-seconds")
        )

    def _hit(self, job: dict, rate_per_s: float, exposure_s: float, t: float) -> bool:
        expected = rate_per_s * exposure_s * WORKING_BYTES.get(job["kind"], 8e6) * 8.0 / self.gpu_bits
        if expected <= 0:
            return False
        rng = np.random.default_rng([self.seed, job["job_id"], int(round(t))])
        n = int(rng.poisson(expected))
        if not n:
            return False
        hit = f"hit by {n} radiation upset{'s' if n > 1 else ''} in its working memory"
        attempt = job.get("attempt", 1)
        if attempt >= ATTEMPTS:
            self._fail(job, t, f"{hit}, attempt {attempt} of {ATTEMPTS}")
        else:
            job.update(attempt=attempt + 1, paid_s=0.0)
            self.pending.append(
                self._event(
                    job["job_id"], "running", f"{hit}: runs again (attempt {attempt + 1} of {ATTEMPTS})"
                )
            )
        return True

    def _fail(self, job: dict, t: float, reason: str) -> None:
        job.update(state="failed", reason=reason, ended_t=t)
        self.state["counts"]["failed"] += 1
        self.pending.append(self._event(job["job_id"], "failed", reason, **self._accounting(job)))

    def _finalise_done(self) -> None:
        """Jobs done this tick (their energy now known): result in place, offered, announced."""
        for job in self.done_now:
            jid = job["job_id"]
            folder = self._folder(jid)
            src, dst = folder / ONBOARD / job["result"], folder / job["result"]
            if src.exists():
                os.replace(src, dst)
            if self.offer is not None and dst.exists():
                self.offer(dst, f"jobs/{jid}/{job['result']}", self._spec(jid).priority)
            job["price_usd"] = self._price(job)
            self.pending.append(
                self._event(
                    jid,
                    "done",
                    f"{job['result']}, {job['result_bytes']:,} bytes, {job['energy_wh']:.2f} Wh",
                    **self._accounting(job),
                    result=job["result"],
                    result_bytes=job["result_bytes"],
                    summary=job.get("summary", {}),
                )
            )
        self.done_now = []

    def _price(self, job: dict) -> float | None:
        if self.price is None:
            return None
        try:
            return round(float(self.price(job.get("used_s", job["paid_s"]))), 6)
        except Exception:  # no price is better than no result
            return None

    @staticmethod
    def _accounting(job: dict) -> dict:
        tokens = (job.get("summary") or {}).get("tokens") if job["kind"] == "infer" else None
        return {
            "kind": job["kind"],
            "customer": job["customer"],
            "energy_wh": round(job["energy_wh"], 6),
            "gpu_s": round(job.get("used_s", job["paid_s"]), 3),
            "wall_s": round(job["wall_s"], 4) if job.get("wall_s") is not None else None,
            "attempts": job.get("attempt", 1),
            **({"price_usd": job["price_usd"]} if job.get("price_usd") is not None else {}),
            **({"joules_per_token": round(job["energy_wh"] * 3600.0 / tokens, 4)} if tokens else {}),
        }

    def _event(self, job_id: int, state: str, detail: str, **extra) -> Event:
        return Event("job", {"job_id": int(job_id), "state": state, "detail": detail, **extra})

    def close(self, t: float) -> list[Event]:
        """The mission is over: jobs still waiting or running fail, with the reason."""
        for job in self.state["jobs"].values():
            if job["state"] in ("queued", "running"):
                self._fail(job, t, "the mission ended before it was done")
        events = self.take_events()
        self.archive.set_meta(META_KEY, self.state)
        return events

    def wall_factors(self) -> dict:
        """For each kind, the largest wall time a job took over its on-board estimate."""
        out: dict[str, float] = {}
        for j in self.state["jobs"].values():
            est, wall = j.get("estimate_wall_s"), j.get("wall_s")
            if est and wall and est > 0:
                out[j["kind"]] = round(max(out.get(j["kind"], 0.0), wall / est), 3)
        return out

    # -- what the frame and the archive get -----------------------------------------------------
    def channels(self) -> dict:
        jobs = self.state["jobs"].values()
        return {
            "jobs.queued": sum(1 for j in jobs if j["state"] == "queued"),
            "jobs.running": sum(1 for j in jobs if j["state"] == "running"),
            "jobs.done": self.state["counts"]["done"],
            "jobs.failed": self.state["counts"]["failed"],
            "jobs.energy_wh": self.state["totals"]["jobs_wh"],
            "gpu.busy": self.state["busy"],
        }

    def take_events(self) -> list[Event]:
        out, self.pending = self.pending, []
        return out

    def meta(self) -> dict:
        """The state to commit with the frame."""
        return {META_KEY: self.state}


class _Key:
    """A job record seen as a spec by `edf_key`."""

    def __init__(self, job: dict):
        self.deadline_t, self.priority = job["deadline_t"], job["priority"]
        self.submitted_t, self.job_id = job["submitted_t"], job["job_id"]


class KeepTrainerState:
    """Around a job: torch's, numpy's and Python's global random states and torch's thread count
    come back as they were, whatever the workload did (the training resumes bitwise)."""

    def __enter__(self):
        import torch

        self.torch = torch
        self.rng = torch.get_rng_state()
        self.cuda = (
            torch.cuda.get_rng_state_all()
            if torch.cuda.is_available() and torch.cuda.is_initialized()
            else None
        )
        self.np = np.random.get_state()
        self.py = random.getstate()
        self.threads = torch.get_num_threads()
        return self

    def __exit__(self, *exc):
        torch = self.torch
        torch.set_rng_state(self.rng)
        if self.cuda is not None:
            torch.cuda.set_rng_state_all(self.cuda)
        np.random.set_state(self.np)
        random.setstate(self.py)
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        return False


def _small(summary) -> dict:
    """The workload's summary, kept small and JSON (it goes into events and the meta)."""
    try:
        text = json.dumps(summary, default=str)
    except (TypeError, ValueError):
        return {}
    return json.loads(text) if len(text) <= 2000 else {"note": "summary too large to carry"}


def pricing_for(profile: str | None):
    """price(gpu_s) -> $: the job's GPU-hours at the planner's $/GPU-hour for the profile
    (`skyrack.jobs.pricing`, computed at the first price asked); None where it is unavailable."""
    try:
        from skyrack.jobs import pricing
    except ImportError:
        return None
    rate = getattr(pricing, "usd_per_gpu_hour", None)
    if rate is None:
        return None
    cache: dict = {}

    def price(gpu_s: float) -> float:
        if "rate" not in cache:
            cache["rate"] = float(rate(profile) if profile else rate())
        return gpu_s / 3600.0 * cache["rate"]

    return price


def offer_for(link):
    """The link's file downlink as `offer(path, name, priority)` (priority passed where it is taken)."""
    if link is None:
        return None
    takes = "priority" in inspect.signature(link.store.offer_file).parameters

    def offer(path, name: str, priority: int):
        if takes:
            return link.store.offer_file(path, name, priority=priority)
        return link.store.offer_file(path, name)

    return offer
