"""The mission loop: one control tick of `frame_interval_s` simulated seconds at a time,

    twin (orbit, light, region) -> commands -> governor -> operator's bounds -> compute budget
    -> faults at the radiation rate x stress -> training steps the budget pays for
    -> one telemetry frame with its events, committed -> the bus advanced over the tick.

Frame k is the satellite at time start + k x tick: the orbit there, the battery and temperature
at the tick's start, the decision held over the tick, and training as it stands after the
tick's steps. A frame is committed in one transaction with its events, so a crash loses at most
the frame being built; `--resume` restores the bus from the last committed frame, steps it over
that frame's tick with the frame's own decision, and continues with frame k + 1, while training
continues from the newest checkpoint that verifies.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass, field

from skyrack.mission.clock import StepClock, Stopwatch
from skyrack.mission.uplink import Operator, execute
from skyrack.telemetry.archive import Archive, Event
from skyrack.telemetry.dictionary import CHANNEL, CHANNELS
from skyrack.telemetry.runs import RunMeta

LIMITED = tuple(c.name for c in CHANNELS if c.yellow or c.red)
FORECAST_REFRESH_TICKS = 30  # the forecast is written again every this many frames
SESSION_SAVE_S = 20.0  # wall seconds between updates of the session's bookkeeping in the meta


@dataclass
class Snapshot:
    """What the live view shows; filled by the loop, read by the dashboard."""

    values: dict = field(default_factory=dict)
    t: float = 0.0
    end_t: float = 0.0
    start_t: float = 0.0
    tick_s: float = 10.0
    light_change: tuple[str, float] | None = None
    eta_s: float | None = None
    target_steps: int = 0
    frames: int = 0
    last_event: str = ""
    run_id: str = ""
    satellite: str = ""
    link: str = ""  # the link's state in words ("" on the ideal link)


class Mission:
    def __init__(
        self,
        archive: Archive,
        craft,
        training,
        *,
        meta: RunMeta,
        operator: Operator,
        view,
        first_tick: int,
        offsets: dict,
        previous: dict | None,
        link=None,
        pace=None,
        forecast=None,
        forecast_path=None,
        jobs=None,
        stream=None,
    ):
        self.archive, self.craft, self.training, self.meta = archive, craft, training, meta
        self.operator, self.view = operator, view
        self.link = link  # None: the ideal link (the ground reads this archive)
        self.k = first_tick
        self.tick_s = float(meta.frame_interval_s)
        self.n_ticks = int(round((meta.end_t - meta.start_t) / self.tick_s))
        self.offsets = offsets  # fault counters of earlier sessions
        self.clock = StepClock(float(meta.warp))
        self.pace = pace  # skyrack.mission.pacing.Pace, or None: a fixed warp
        # the job scheduler's forecast (skyrack.jobs.schedule), refreshed as the mission learns
        self.forecast, self.forecast_path = forecast, forecast_path
        self.jobs = jobs  # skyrack.jobs.service.JobService: customers' jobs before training
        self.stream = stream  # stream(t): submits the job stream's jobs due by t (skyrack.jobs.stream)
        self.train_watch = Stopwatch()
        self.pending: list[Event] = []
        self.previous = previous  # the last committed frame's values (None: a new mission)
        self.limit_state = {name: CHANNEL[name].limit_state((previous or {}).get(name)) for name in LIMITED}
        self.snapshot = Snapshot(
            start_t=meta.start_t,
            end_t=meta.end_t,
            tick_s=self.tick_s,
            run_id=meta.run_id,
            satellite=meta.satellite or "",
            target_steps=training.trainer.cfg.steps,
        )
        self.tokens_per_s = 0.0
        self.training_announced_done = training.done
        training.run.listeners.append(self._on_training_event)

    # -- events from the fault runtime (collected, committed with the next frame) ------------------
    def _on_training_event(self, name: str, data: dict) -> None:
        if name in ("fault_injected", "fault_recovered", "checkpoint"):
            self.pending.append(Event(name, {**data, "session": self.meta.session or 1}))

    def say(self, message: str) -> None:
        self.pending.append(Event("mission", {"message": message}))

    # -- the loop --------------------------------------------------------------------------------
    def fly(self) -> str:
        """Fly to the end (or until interrupted); returns the final status."""
        wall0 = time.perf_counter()
        last_session_save = wall0
        ticks_done = 0
        status = "finished"
        with StopFlag() as stop:
            while not self._finished():
                if stop.raised:
                    status = "interrupted"
                    break
                self._tick()
                ticks_done += 1
                now = time.perf_counter()
                if ticks_done > 5:
                    rate = ticks_done / max(now - wall0, 1e-9)
                    self.snapshot.eta_s = (self._remaining_ticks()) / rate
                if now - last_session_save > SESSION_SAVE_S:
                    self._save_session(now - wall0)
                    last_session_save = now
        self._save_session(time.perf_counter() - wall0)
        return status

    def _finished(self) -> bool:
        if self.meta.steps is not None and self.training.done:
            return True
        return self.k >= self.n_ticks

    def _remaining_ticks(self) -> float:
        if self.meta.steps is not None and self.clock.step_sim_s:
            steps_left = self.training.trainer.cfg.steps - self.training.step_count
            return min(self.n_ticks - self.k, steps_left * self.clock.step_sim_s / self.tick_s)
        return self.n_ticks - self.k

    def _tick(self) -> None:
        craft, training, op = self.craft, self.training, self.operator
        k, t = self.k, self.craft.time_of(self.k)
        now = craft.at(k)
        events, self.pending = self.pending, []
        if self.previous is None:
            events.append(
                Event(
                    "mission",
                    {
                        "message": f"mission {self.meta.run_id} begins: "
                        f"{self.meta.satellite}, {self.n_ticks} frames of {self.tick_s:g} s"
                    },
                )
            )
        else:
            events += self._crossings(now)

        if execute(
            self.archive,
            t,
            op,
            self._checkpoint_now,
            self._downlink_checkpoint if self.link else None,
            self.jobs,
        ):
            self.archive.set_meta("operator", op.as_dict())
            self._refresh_forecast(k, t, budget=True)  # a pause or a cap limit changes the budget ahead
        decision = craft.decide(now)
        if decision.kind != "hold":
            events.append(
                Event(
                    "governor", {"action": decision.kind, "cap_w": decision.cap_w, "reason": decision.reason}
                )
            )
        work = self.jobs.has_work()
        active = not training.done or work
        cap = op.cap(decision.cap_w, craft.spec.gpu_min_power_w, work) if active else 0.0
        warm_w = craft.ready_w(cap, decision) if active else None
        cap = craft.runnable_cap(cap)
        if decision.checkpoint and active and training.step_count > 0:
            training.save()  # the governor foresees a pause: keep the work done so far
        fraction = craft.throughput(cap)

        steps_before, wall_steps, jobs_s = training.step_count, 0.0, 0.0
        training_on = not training.done and not op.paused
        if fraction > 0:
            training.expose(now.upsets_per_s, craft.spec.gpu_bits, self.tick_s, op.stress)
            self.clock.grant(self.tick_s, fraction)
            if self.pace is not None:
                steps_left = training.trainer.cfg.steps - training.step_count
                self.clock.step_cost_s = self.pace.step_cost_s(k, steps_left)
            # customers' jobs first (EDF), between training steps; training gets what is left
            jobs_s = self.jobs.tick(
                t,
                self.clock.credit_s,
                fraction=fraction,
                ratio=self.sim_per_wall(),
                in_saa=now.in_saa,
                upset_rate=now.upsets_per_s * op.stress,
            )
            self.clock.credit_s -= jobs_s
            while training_on and self.clock.due() and not training.done:
                with self.train_watch:
                    training.step()
                self.clock.spent(self.train_watch.last)
                wall_steps += self.train_watch.last
            if not training_on:
                self.clock.credit_s = 0.0  # the GPU was on for jobs alone: no credit kept for later
        else:
            self.clock.grant(self.tick_s, 0.0)
        events += self.pending
        self.pending = []
        stepped = training.step_count - steps_before
        if stepped > 0 and wall_steps > 0:
            self.tokens_per_s = stepped * training.tokens_per_step / wall_steps
        elif fraction == 0:
            self.tokens_per_s = 0.0
        if (training.done or self.k == self.n_ticks - 1) and not self.training_announced_done:
            self.training_announced_done = True  # the last check, evaluation and checkpoint
            with self.train_watch:
                training.finish()
            events += self.pending
            self.pending = []
            what = "training complete" if training.done else "the mission ends: training stops"
            events.append(
                Event(
                    "mission",
                    {
                        "message": f"{what} at step {training.step_count}, "
                        f"validation loss {training.trainer.state.val_loss:.3f}"
                    },
                )
            )

        gpu_w = craft.gpu_draw_w(cap)
        self.jobs.account(
            granted_s=self.tick_s * fraction,
            jobs_s=jobs_s,
            gpu_w=gpu_w,
            tick_s=self.tick_s,
            training=training_on,
        )
        events += self.jobs.take_events()
        heater_w = craft.heater_w(now, gpu_w, warm_w)
        values = self._values(now, cap, gpu_w, fraction, heater_w)
        events += self._limits(values)
        self.archive.write_frame(t, values, events, meta=self.jobs.meta())
        if self.stream is not None:  # the job stream's submissions due by now, through the ground
            self.stream(t)
        if self.link is not None:  # the frame's window of the link: down in contact, up after
            self.link.carry(t, t + self.tick_s)
        self.previous = values
        self._show(t, now, values, events)
        if k % FORECAST_REFRESH_TICKS == 0 or self.jobs.started_now:
            self._refresh_forecast(k, t)
        craft.advance(now, gpu_w, heater_w)
        self.k += 1

    def sim_per_wall(self) -> float:
        """Simulated seconds a wall second of compute is charged, as a training step is."""
        clock = self.clock
        if clock.step_sim_s is not None and clock.wall_per_step:
            return clock.step_sim_s / clock.wall_per_step
        return float(self.meta.warp)

    def _refresh_forecast(self, k: int, t: float, budget: bool = False) -> None:
        """What the mission learnt since: the ratio a step is charged at, and after an operator's
        command the budget ahead (a dry run from this tick)."""
        if self.forecast is None or self.forecast_path is None:
            return
        from skyrack.jobs.schedule import spans, write_forecast

        f = self.forecast
        f.written_t, f.sim_per_wall, f.wall_factor = t, self.sim_per_wall(), self.jobs.wall_factors()
        if budget:
            from skyrack.mission.pacing import compute_budget

            track: dict = {}
            f.budget_s = [float(x) for x in compute_budget(self.craft, self.operator, k, self.n_ticks, track)]
            f.t0 = t
            f.saa = spans(t, self.tick_s, track.get("in_saa", []))
            f.eclipses = spans(t, self.tick_s, [x < 0.5 for x in track.get("sunlit", [])])
        write_forecast(self.forecast_path, f)

    def _crossings(self, now) -> list[Event]:
        out = []
        prev = self.previous
        if (prev["orbit.sunlit"] >= 0.5) != (now.sunlit >= 0.5):
            out.append(Event("eclipse_exit" if now.sunlit >= 0.5 else "eclipse_entry", {}))
        if bool(prev["orbit.in_saa"]) != now.in_saa:
            out.append(Event("saa_entry" if now.in_saa else "saa_exit", {}))
        return out

    def _checkpoint_now(self) -> str:
        path = self.training.save()
        return f"checkpoint at step {self.training.step_count}" + (f" ({path.name})" if path else "")

    def _downlink_checkpoint(self) -> str:
        """A verified checkpoint now, its files offered to the link (skyrack.link.files)."""
        path = self.training.save()
        if path is None or not path.is_dir():
            raise ValueError("no checkpoint to send")
        parts = sorted(p for p in path.iterdir() if p.is_file())
        size = sum(p.stat().st_size for p in parts)
        for part in parts:
            self.link.store.offer_file(part, f"checkpoints/{path.name}/{part.name}")
        return f"{path.name}: {len(parts)} files, {size / 1e6:.1f} MB queued for downlink"

    def _values(self, now, cap: float, gpu_w: float, fraction: float, heater_w: float) -> dict:
        craft, training = self.craft, self.training
        counts = training.run.counts()
        state = training.trainer.state
        return {
            **craft.bus_values(now, cap, gpu_w, heater_w, fraction, self.operator.stress),
            "faults.injected": self.offsets["faults.injected"] + counts["injected"],
            "faults.detected": self.offsets["faults.detected"] + counts["detected"],
            "faults.recovered": self.offsets["faults.recovered"] + counts["recovered"],
            "train.step": state.step,
            "train.loss": training.last_loss
            if training.last_loss is not None
            else (self.previous or {}).get("train.loss"),
            "train.val_loss": state.val_loss
            if state.val_loss is not None
            else (self.previous or {}).get("train.val_loss"),
            "train.tokens_per_s": self.tokens_per_s,
            **self.jobs.channels(),
        }

    def _limits(self, values: dict) -> list[Event]:
        out = []
        for name in LIMITED:
            state = CHANNEL[name].limit_state(values[name])
            if state != self.limit_state[name]:
                self.limit_state[name] = state
                value = values[name]
                unit = CHANNEL[name].unit
                shown = f"{value:.3g}" + (f" {unit}" if unit not in ("", "1") else "")
                out.append(Event("limit", {"channel": name, "state": state, "value": shown}))
        return out

    def _show(self, t, now, values, events) -> None:
        snap = self.snapshot
        snap.values, snap.t, snap.frames = values, t, self.k + 1
        snap.light_change = self.craft.next_light_change(t, now.sunlit)
        if self.link is not None:
            snap.link = self.link.summary_line(t)
        if events:
            snap.last_event = events[-1].message
        self.view.update(snap)

    def _save_session(self, wall_s: float) -> None:
        sessions = self.archive.meta("sessions", [])
        if sessions:
            sessions[-1].update(
                wall_s=round(wall_s, 3), train_wall_s=round(self.train_watch.total, 3), last_tick=self.k - 1
            )
            self.archive.set_meta("sessions", sessions)


class StopFlag:
    """SIGTERM or Ctrl-C asks the loop to stop at the end of the tick (training is then in a
    consistent state to checkpoint); a second Ctrl-C stops at once."""

    def __init__(self):
        self.raised = False
        self._old = {}

    def _handle(self, signum, frame):
        if self.raised and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.raised = True

    def __enter__(self):
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
