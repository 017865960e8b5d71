"""Start or resume a mission: plan it (the archive's meta), rebuild the spacecraft and the
training job, fly, and close the run (status, final checkpoint, report).

A new mission's defaults (each overridable):
- start: half an orbit before the first South Atlantic Anomaly crossing after the elements'
  epoch (after now when the elements are fresh), so that a short mission sees the anomaly;
- length: 2.1 orbits (two full orbits, each with its eclipse);
- pacing (no `--warp`): the preset's whole schedule is fitted into the mission, ending at 85% of
  the compute the bus allows, whatever a step costs here; a machine too slow to do it in about 5
  minutes of wall time (`--minutes`) is told so and trains a shorter schedule of the same recipe
  (`skyrack.mission.pacing`). With `--warp` (or `--steps`) one step stands for warp x its wall
  time instead, and the wall time sets how many steps a mission trains;
- battery at 50% (`--soc`), so that the governor has to plan from the first tick;
- stress 10: ten times the profile's upset rate, so that two orbits see a few dozen faults.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from skyrack.errors import UserError, positive
from skyrack.mission.rundir import RunLock
from skyrack.mission.uplink import Operator
from skyrack.telemetry.runs import RunDir, RunMeta, check_run_id, find_run, new_run_id, profile_for, runs_root

DEFAULT_WALL_S = 300.0
DEFAULT_ORBITS = 2.1
STEPS_MODE_MAX_HOURS = 24.0
COUNTERS = ("faults.injected", "faults.detected", "faults.recovered")


@dataclass
class Options:
    """What `skyrack mission` was told; None is "not given" (a new mission takes `DEFAULTS`)."""

    profile: str | None = None
    tle: str | None = None
    start: str | None = None
    hours: float | None = None
    steps: int | None = None
    warp: float | None = None
    stress: float | None = None
    preset: str | None = None
    data: str | None = None
    run_id: str | None = None
    resume: str | None = None
    runs_dir: str | None = None
    frame_interval: float | None = None
    soc: float | None = None
    seed: int | None = None
    device: str | None = None
    link: str | None = None  # ground, relay or ideal (None: the profile's)
    link_loss: float | None = None
    minutes: float = DEFAULT_WALL_S / 60.0  # wall-time budget of a paced mission
    jobs: str | None = None  # a job stream: a JSON-lines FILE or "demo" (skyrack.jobs.stream)


DEFAULTS = {"stress": 10.0, "preset": "cpu", "frame_interval": 10.0, "soc": 0.5, "seed": 1337}

# A resumed mission keeps its plan. These options may change on resume: the pace of the clock,
# the fault rate (a `set_stress` command does the same in flight) and where training runs.
# Every other one fixes the orbit, the clock's grid or the training job the archive and the
# checkpoints were made with, and is refused.
CHANGEABLE_ON_RESUME = ("warp", "stress", "device")
FIXED_ON_RESUME = {
    "profile": "--profile",
    "tle": "--tle",
    "start": "--start",
    "hours": "--hours",
    "steps": "--steps",
    "preset": "--preset",
    "data": "--data",
    "run_id": "--run-id",
    "frame_interval": "--frame-interval",
    "soc": "--soc",
    "seed": "--seed",
    "link": "--link",
    "link_loss": "--link-loss",
    "jobs": "--jobs",
}


def refuse_fixed_options(opts: Options) -> None:
    """One line naming the options a resume cannot apply, if any were given."""
    given = [flag for name, flag in FIXED_ON_RESUME.items() if getattr(opts, name) is not None]
    if given:
        raise UserError(
            f"--resume continues mission {opts.resume} as it was planned: {', '.join(given)} cannot change "
            f"(only {', '.join('--' + name for name in CHANGEABLE_ON_RESUME)} can)"
        )


def default_start(twin, base_s: float) -> float:
    """Half an orbit before the first SAA entry within a day of `base_s` (or `base_s`)."""
    entries = [c.seconds for c in twin.saa_crossings(base_s, base_s + 86400.0, step_s=30.0) if c.rising]
    return round(entries[0] - twin.period_s / 2) if entries else round(base_s)


def plan(opts: Options, say: Callable[[str], None]) -> RunMeta:
    """The archive meta of a new mission."""
    from skyrack.orbit.timebase import iso, parse_time
    from skyrack.orbit.twin import OrbitTwin
    from skyrack.train.config import PRESETS

    opts = dataclasses.replace(opts, **{k: v for k, v in DEFAULTS.items() if getattr(opts, k) is None})

    positive("--hours", opts.hours), positive("--steps", opts.steps), positive("--warp", opts.warp)
    positive("--stress", opts.stress, allow_zero=True), positive("--frame-interval", opts.frame_interval)
    if opts.link_loss is not None and not 0.0 <= opts.link_loss < 1.0:
        raise UserError(f"--link-loss must lie in [0, 1), got {opts.link_loss}")
    positive("--minutes", opts.minutes)
    if not 0.0 <= opts.soc <= 1.0:
        raise UserError(f"--soc must lie in 0..1, got {opts.soc}")
    if opts.preset not in PRESETS:
        raise UserError(f"unknown preset {opts.preset!r}; one of {', '.join(sorted(PRESETS))}")
    if opts.data is not None:
        from skyrack.train.data import read_text_file

        read_text_file(opts.data)  # a clear error now, not after the run directory exists
    if opts.jobs is not None and opts.jobs != "demo":
        from skyrack.jobs.stream import read_stream

        read_stream(opts.jobs)  # a clear error now, not after the run directory exists
    profile_arg = opts.profile or "starcloud-1"
    if Path(profile_arg).is_file():
        profile_arg = str(Path(profile_arg).resolve())
    tle = str(Path(opts.tle).resolve()) if opts.tle else None
    profile = profile_for(RunMeta(profile=profile_arg, tle_file=tle))
    twin = OrbitTwin(profile.satellite)
    from skyrack.link.radio import radio_of

    link_mode = opts.link or radio_of(profile).mode
    if opts.start:
        start = parse_time(opts.start).timestamp()
    else:
        now, epoch = time.time(), profile.satellite.epoch.timestamp()
        fresh = twin.staleness_warning(now) is None
        start = default_start(twin, now if fresh else epoch)
        if not fresh:
            say(
                f"the elements date from {profile.satellite.epoch:%Y-%m-%d}: flying from {iso(start)}, near "
                f"their epoch (give --start, or fresh elements with --tle, to fly now)"
            )
    if opts.steps is not None:
        hours = STEPS_MODE_MAX_HOURS
    else:
        hours = opts.hours if opts.hours is not None else DEFAULT_ORBITS * twin.period_s / 3600.0
    end = start + round(hours * 3600.0 / opts.frame_interval) * opts.frame_interval
    if end <= start:
        raise UserError(f"--hours {hours} is shorter than one frame of {opts.frame_interval:g} s")
    stale = twin.staleness_warning([start, end])
    if stale:
        say(f"warning: {stale}")
    warp = (
        opts.warp
        or ((end - start) if opts.steps is None else DEFAULT_ORBITS * twin.period_s) / DEFAULT_WALL_S
    )
    return RunMeta(
        run_id=None,
        profile=profile_arg,
        tle_file=tle,
        start_t=float(start),
        end_t=float(end),
        frame_interval_s=float(opts.frame_interval),
        warp=float(warp),
        preset=opts.preset,
        stress=float(opts.stress),
        status="running",
        wall_started=time.time(),
        satellite=profile.satellite.name,
        steps=opts.steps,
        pacing=opts.warp is None and opts.steps is None,
        wall_budget_s=float(opts.minutes * 60.0),
        seed=opts.seed,
        initial_soc=opts.soc,
        data=str(Path(opts.data).resolve()) if opts.data else None,
        session=1,
        sessions=[],
        link=link_mode,
        link_loss=opts.link_loss,
    )


class Flight:
    """Everything one session of a mission holds: run dir, lock, archive, spacecraft, training."""

    def __init__(self, opts: Options, say: Callable[[str], None], view):
        self.opts, self.say, self.view = opts, say, view
        self.archive = None
        root = runs_root(opts.runs_dir)
        if root.exists() and not root.is_dir():
            raise UserError(f"runs directory {root} is not a directory")
        if opts.resume:
            refuse_fixed_options(opts)
            positive("--warp", opts.warp), positive("--stress", opts.stress, allow_zero=True)
            self.run = find_run(opts.resume, root)
            meta = None
        else:
            meta = plan(opts, say)
            self.run = RunDir(root / check_run_id(opts.run_id or new_run_id()))
            created = not self.run.path.exists()
            self.run.create()
        self.lock = RunLock(self.run)
        self.lock.acquire()
        try:
            self._open(meta)
        except BaseException as exc:
            if getattr(self, "archive", None) is not None:
                self.archive.close()
            if meta is not None and created:  # a mission that never flew leaves nothing behind
                shutil.rmtree(self.run.path, ignore_errors=True)
            else:
                self.lock.release()
            if isinstance(exc, OSError):
                raise UserError(
                    f"cannot write run directory {self.run.path}: {exc.strerror or exc}"
                ) from None
            raise

    def _open(self, meta: RunMeta | None) -> None:
        from skyrack.geo.regions import RegionIndex
        from skyrack.mission.loop import Mission
        from skyrack.mission.spacecraft import Spacecraft
        from skyrack.mission.training import Training
        from skyrack.orbit.twin import OrbitTwin
        from skyrack.telemetry.archive import Archive

        self.archive = Archive(self.run.archive)
        resuming = meta is None
        if resuming:
            meta = RunMeta.from_archive(self.archive)
            meta.link = meta.link or "ideal"  # a run from before the link had none
            if meta.start_t is None:
                raise UserError(
                    f"{self.run.archive} holds no mission plan; it was not written by `skyrack mission`"
                )
            if meta.status == "finished":
                raise UserError(f"mission {meta.run_id} has finished; nothing to resume")
            meta.session = int(meta.session or 1) + 1
        else:
            meta.run_id = self.run.run_id
        meta.sessions = list(meta.sessions) + [
            {"session": meta.session, "wall_started": time.time(), "wall_s": 0.0}
        ]
        meta.status = "running"
        self.meta = meta

        profile = profile_for(meta)
        twin = OrbitTwin(profile.satellite)
        craft = Spacecraft(
            profile,
            twin,
            RegionIndex.load(),
            start_s=meta.start_t,
            end_s=meta.end_t,
            tick_s=meta.frame_interval_s,
            initial_soc=meta.initial_soc,
        )
        changed = []
        if resuming:  # the options a resume may change (CHANGEABLE_ON_RESUME), applied
            if self.opts.warp is not None and self.opts.warp != meta.warp:
                meta.warp = float(self.opts.warp)
                meta.pacing = False  # a warp given is the pace from now on
                changed.append(f"warp x{meta.warp:g}")
            if self.opts.stress is not None:
                meta.stress = float(self.opts.stress)
                changed.append(f"stress x{meta.stress:g}")
        operator = Operator(stress=meta.stress)
        if resuming and self.archive.meta("operator"):
            operator = Operator(**self.archive.meta("operator"))
            if self.opts.stress is not None:  # given now, it replaces what the ground last set
                operator.stress = meta.stress
        last = self.archive.last_frame()
        values = {name: value for name, (_, _, value) in self.archive.latest().items()} if last else None
        first_tick = 0
        if last:
            k = int(round((last[1] - meta.start_t) / meta.frame_interval_s))
            gpu_w = craft.gpu_draw_w(float(values["gpu.cap_w"]))
            craft.restore(
                values["power.battery_wh"], values["gpu.temp_c"], gpu_w, values["radiation.dose_rad"]
            )
            craft.advance(craft.at(k), gpu_w)
            first_tick = k + 1
        from skyrack.mission.pacing import compute_budget

        n_ticks = int(round((meta.end_t - meta.start_t) / meta.frame_interval_s))
        track: dict = {}  # one dry run: the pace of training and the job scheduler's forecast
        budget = compute_budget(craft, operator, first_tick, n_ticks, track)
        pace = fit = None
        if meta.pacing:
            pace, fit = self._pace(budget, first_tick, resuming)
        self.training = Training(
            self.run.checkpoints,
            preset_name=meta.preset,
            data_file=meta.data,
            steps=meta.steps,
            seed=int(meta.seed),
            session=meta.session,
            say=self.say,
            device=self.opts.device,
            fit=fit,
        )
        offsets = {name: int(values[name]) if values else 0 for name in COUNTERS}
        from skyrack.link.radio import radio_of

        self.link = None
        if meta.link != "ideal":
            from skyrack.link.session import Link

            self.link = Link.build(
                meta.link,
                radio_of(profile),
                twin,
                self.archive,
                self.run.ground_archive,
                start=meta.start_t,
                end=meta.end_t,
                seed=int(meta.seed),
                loss=meta.link_loss,
                plan=meta.as_dict(),
                answer=self._onboard_assistant(meta),
            )
        from skyrack.jobs.schedule import make_forecast, write_forecast

        self.forecast = make_forecast(
            run_id=meta.run_id,
            now_t=craft.time_of(first_tick),
            t0=craft.time_of(first_tick),
            tick_s=meta.frame_interval_s,
            budget_s=budget,
            track=track,
            end_t=meta.end_t,
            link_mode=meta.link,
            schedule=self.link.schedule if self.link is not None else None,
            radio=radio_of(profile),
            sim_per_wall=float(meta.warp),
            bus=craft.spec,
        )
        write_forecast(self.run.forecast, self.forecast)
        from skyrack.jobs.service import JobService, offer_for, pricing_for

        self.jobs = JobService(
            self.archive,
            self.run.jobs,
            gpu_bits=craft.spec.gpu_bits,
            seed=int(meta.seed),
            offer=offer_for(self.link),
            price=pricing_for(meta.profile),
        )
        self.mission = Mission(
            self.archive,
            craft,
            self.training,
            meta=meta,
            operator=operator,
            view=self.view,
            first_tick=first_tick,
            offsets=offsets,
            previous=values,
            link=self.link,
            pace=pace,
            forecast=self.forecast,
            forecast_path=self.run.forecast,
            jobs=self.jobs,
            stream=self._stream(meta, resuming),
        )
        meta.write(self.archive)  # the plan goes on record once everything is ready to fly
        if resuming:
            self.mission.say(
                f"mission resumed (session {meta.session}) after frame {last[0] if last else 0}; "
                f"training continues from step {self.training.step_count}"
                + (f"; now {', '.join(changed)}" if changed else "")
            )

    def _stream(self, meta: RunMeta, resuming: bool):
        """The mission's job stream (--jobs), its entries kept in the meta for a resume."""
        from skyrack.jobs import stream

        entries = self.archive.meta("job_stream_entries") if resuming else None
        if not resuming and self.opts.jobs:
            if self.opts.jobs == "demo":
                entries = stream.demo_stream(int(meta.seed), meta.end_t - meta.start_t)
            else:
                entries = stream.read_stream(self.opts.jobs)
            self.archive.set_meta("job_stream_entries", entries)
            self.say(f"job stream: {len(entries)} jobs over the mission ({self.opts.jobs})")
        if not entries:
            return None
        return stream.Stream(entries, meta.start_t, self.archive, stream.submitter(self.run), say=self.say)

    def _onboard_assistant(self, meta: RunMeta):
        """The satellite's own assistant for questions that come up the link: composed answers
        from the on-board store, verified against it (a model is not loaded on board)."""
        state: dict = {}
        run_dir, profile, tle = self.run.path, meta.profile, meta.tle_file

        def answer(question: str, history: list, at: float) -> dict:
            if "assistant" not in state:
                from skyrack.assistant.service import Assistant

                state["assistant"] = Assistant.create(backend="composed")
            return state["assistant"].ask(
                question, run_dir=run_dir, at=at, profile=profile, history=history, tle=tle
            )

        return answer

    def _pace(self, budget, first_tick: int, resuming: bool):
        """(the Pace of this session, the schedule fit of a new mission's trainer or None)."""
        from skyrack.mission.pacing import MARGIN, Pace, fit_schedule

        meta = self.meta
        pace = Pace(budget, first_tick)
        if resuming:
            return pace, None

        def fit(trainer) -> None:
            self.say(
                f"the bus allows {pace.total_s / 60:.0f} min of full-power GPU time over the mission; "
                f"training is paced to end at {MARGIN:.0%} of it"
            )
            if pace.total_s <= 0:
                self.say("warning: the bus never powers the GPU in this mission: no training will run")
                return
            step_s = fit_schedule(trainer, meta.wall_budget_s, self.say, meta.preset)
            meta.warp = MARGIN * pace.total_s / (trainer.cfg.steps * step_s)

        return pace, fit

    def fly(self) -> dict:
        from skyrack.mission.report import write_report

        try:
            status = self._fly()
            if self.link is not None:
                self._drain(status)
        finally:
            self.view.close()
            if self.link is not None:
                self.link.close()
            self.archive.close()
            self.lock.release()
        summary = write_report(self.run, say=self.say)
        summary["status"] = status
        return summary

    def _fly(self) -> str:
        from skyrack.telemetry.archive import Event

        mission, training = self.mission, self.training
        try:
            status = mission.fly()
            if status == "interrupted":
                training.save()
        except OSError as exc:
            self._mark("interrupted")
            raise UserError(
                f"cannot write run directory {self.run.path}: {exc.strerror or exc}; "
                f"the archive holds every committed frame (resume with --resume {self.run.run_id})"
            ) from None
        except UserError:
            self._mark("interrupted")
            raise
        last = self.archive.last_frame()
        t = last[1] if last else self.meta.start_t
        message = (
            f"mission complete: {last[0] if last else 0} frames, training step {training.step_count}"
            if status == "finished"
            else f"mission interrupted at frame {last[0] if last else 0}; continue with --resume {self.run.run_id}"
        )
        closing = self.jobs.close(t) if status == "finished" else []
        self.archive.write_events(t, mission.pending + closing + [Event("mission", {"message": message})])
        if status == "finished" and self.meta.steps is not None:
            self.archive.set_meta("end_t", t + self.meta.frame_interval_s)
        self._mark(status)
        self.say(message)
        return status

    def _drain(self, status: str) -> None:
        """What the ground had at the end, then (a finished mission) the dumps of the passes
        after it, until the ground holds every frame and event the satellite stored."""
        link, end = self.link, self.meta.end_t
        at_end = link.ground.completeness()
        link.ground.set_meta("at_mission_end", {**at_end, "t": end})
        self.say(
            f"the ground has {at_end['frames_received']} of {self.archive.frame_count()} frames at the "
            f"mission's end ({link.mode} link)"
        )
        if status != "finished":
            return
        done = link.drain(end)
        if done is None:
            self.say("the ground still lacks frames a day after the mission; see ground.sqlite")
        else:
            self.say(f"the ground holds every frame {(done - end) / 60:.0f} min after the mission's end")
        link.ground.set_meta("complete_t", done)

    def _mark(self, status: str) -> None:
        try:
            self.archive.set_meta("status", status)
            if self.link is not None:
                self.link.ground.set_meta("status", status)
        except Exception:  # the disk may be the very problem; the status is then left as it was
            pass


def run_mission(opts: Options, say: Callable[[str], None], view) -> dict:
    return Flight(opts, say, view).fly()
