"""Helpers for the job service's ground tests: a run in flight over either link, a stand-in for
the satellite's side of a job (the `job` events and the result offered to the link, as the
on-board service writes them), and small workloads for the tests that check the ground alone."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

from skyrack.errors import UserError
from skyrack.jobs.spec import JobSpec
from skyrack.jobs.workload import Estimate, Outcome
from skyrack.link.ground import GroundArchive
from skyrack.telemetry.archive import Archive, Event

START = 1785066359.0
PNG = b"\x89PNG\r\n\x1a\n"


CONTACT = {"station": "Svalbard", "rise_t": START + 1800, "set_t": START + 2400, "mean_rate_bps": 4e6}


def forecast(
    run: Path, *, link: str, contacts: list[dict] | None = None, gpu_s_per_tick: float = 10.0
) -> None:
    """The mission's forecast (skyrack.jobs.schedule): a day of 10 s ticks, `gpu_s_per_tick`
    of full-power GPU time in each, and the contacts ahead (one by default, half an hour in)."""
    from skyrack.jobs.schedule import Forecast, write_forecast
    from skyrack.telemetry.runs import RunDir

    ticks = 8640
    write_forecast(
        RunDir(run).forecast,
        Forecast(
            run_id=run.name, written_t=START, t0=START, tick_s=10.0,
            budget_s=[j * gpu_s_per_tick for j in range(ticks + 1)],
            contacts=[] if link == "ideal" else (contacts if contacts is not None else [CONTACT]),
            link=link, uplink_rate_bps=9600.0, sim_per_wall=1.0, gpu_full_w=300.0, gpu_idle_w=20.0,
            battery_reserve_wh=50.0, end_t=START + ticks * 10.0,
        ),
    )  # fmt: skip


def flying_run(runs: Path, run_id: str = "r1", *, link: str = "ground", now: float = START + 600) -> Path:
    """A run whose mission is in flight: the on-board archive, its forecast, and the ground
    archive over a real link."""
    run = runs / run_id
    run.mkdir(parents=True, exist_ok=True)
    forecast(run, link=link)
    with Archive(run / "telemetry.sqlite") as onboard:
        onboard.set_meta("status", "running")
        onboard.set_meta("start_t", START)
        onboard.write_frame(now if link == "ideal" else START, {"train.step": 0})
    if link != "ideal":
        with GroundArchive(run / "ground.sqlite") as ground:
            ground.set_meta("status", "running")
            ground.set_meta("ground_clock", now)
    return run


def _infer_check(params: dict, payload: bytes) -> None:
    extra = set(params) - {"max_tokens"}
    if extra:
        raise UserError(f"infer takes no parameter {sorted(extra)[0]!r}")
    try:
        prompts = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise UserError("the prompts are not a JSON list of text") from None
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise UserError("the prompts are not a JSON list of text")
    if any(len(p) > 200 for p in prompts):
        raise UserError("a prompt is over the model's context")


def _screen_check(params: dict, payload: bytes) -> None:
    if params.get("source") == "onboard":
        return
    if not payload.startswith(PNG):
        raise UserError("the image is not a PNG or GeoTIFF")


def workloads() -> dict[str, types.ModuleType]:
    """Stand-in workload modules, keyed by their import name (for monkeypatch.setitem(sys.modules))."""
    out = {}
    for kind, check, name in (
        ("infer", _infer_check, "completions.json"),
        ("screen", _screen_check, "screen.json"),
    ):
        m = types.ModuleType(f"skyrack.jobs.{kind}")
        m.check = check
        m.estimate = lambda params, payload: Estimate(wall_s=2.0, result_bytes=3000)
        m.run = lambda params, payload, *, seed, _n=name: Outcome(b"x" * 3000, _n, {})
        out[m.__name__] = m
    return out


def use_stand_in_workloads(monkeypatch) -> None:
    for name, module in workloads().items():
        monkeypatch.setitem(sys.modules, name, module)
        monkeypatch.setattr(sys.modules["skyrack.jobs"], name.rsplit(".", 1)[1], module, raising=False)


def prompts(*texts: str) -> bytes:
    return json.dumps(list(texts)).encode()


class Satellite:
    """The satellite's half of a job, as the on-board service does it: a `submit_job` that
    arrived is queued (a `job` event), run at `run_at`, done with its result written under
    RUN/jobs/<id>/ and offered to the link's file downlink at the job's priority."""

    def __init__(self, run: Path, store: Archive, link=None):
        self.run, self.store, self.link = run, store, link
        self.queued: dict[int, JobSpec] = {}

    def tick(self, t: float, run_at: float | None = None) -> None:
        for cmd in self.store.pending_commands(t):
            self.store.set_command_status(cmd["id"], "dispatched", now=t)
            if cmd["name"] == "submit_job":
                spec = JobSpec.decode(cmd["args"]["spec"])
                self.queued[spec.job_id] = spec
                self._event(t, spec.job_id, "queued", "waiting for power")
            elif cmd["name"] == "cancel_job":
                jid = cmd["args"]["job_id"]
                if self.queued.pop(jid, None) is not None:
                    self._event(t, jid, "cancelled", "cancelled before it started")
            self.store.set_command_status(cmd["id"], "completed", now=t)
        if run_at is not None and t >= run_at:
            for jid, spec in list(self.queued.items()):
                self._event(t, jid, "running", "on the GPU")
                folder = self.run / "jobs" / str(jid)
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "result.json").write_bytes(b"r" * 2500)
                self._event(
                    t, jid, "done", "ok", energy_wh=1.5, gpu_s=12.0, price_usd=0.02, result="result.json"
                )
                if self.link is not None:
                    self.link.store.offer_file(
                        folder / "result.json", f"jobs/{jid}/result.json", spec.priority
                    )
                del self.queued[jid]

    def _event(self, t, jid, state, detail, **extra):
        self.store.write_events(t, [Event("job", {"job_id": jid, "state": state, "detail": detail, **extra})])
