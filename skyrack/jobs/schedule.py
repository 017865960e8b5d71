"""The scheduler's policy and the twin's forecast it decides from.

The forecast (`RUN/forecast.json`, written by the mission at its start and refreshed as it
learns) is the twin's prediction, not telemetry: the same dry run of the bus and the governor
that paces the training (`skyrack.mission.pacing.compute_budget`) gives the cumulative
full-power GPU seconds the bus allows before each tick, with the SAA and the eclipses of every
tick; the link's schedule (`skyrack.link.contacts`) gives the contacts ahead and their rates;
the mission's clock gives the simulated seconds a wall second of compute here is charged (the
same ratio a training step is charged at).

The policy (what `feasible` predicts and `skyrack.jobs.service` does on board):

- Earliest deadline first within the power budget. A job without a deadline comes after every
  job with one; priority (higher first) breaks ties, then the order of submission.
- The GPU's compute goes to jobs first, training gets what is left: a job preempts the
  background training between two steps, never the other way round.
- A job's compute is its calibrated wall time here (`Estimate.wall_s`, times `ESTIMATE_MARGIN`
  for a machine busier than at calibration, or times the largest factor by which the jobs of its
  kind have overrun their estimates on board so far, `wall_factor`, whichever is larger) times
  the forecast's simulated-to-wall ratio, in simulated seconds of full-power GPU time; its
  energy is that at the GPU's full cap (Wh).
  Throttled, the same compute takes longer and the same energy-equivalent budget.
- A job with `avoid_saa` gets no compute in ticks inside the South Atlantic Anomaly.
- A job starts when its `submit_job` command is on board: at the next frame on the ideal link,
  once its bytes are up on a real one: in the first contact ahead with the time to carry it (a
  long command goes up across the frames of one contact), or after the relay's latency.
- Its result is on the ground at once on the ideal link; over a real link it goes down in the
  contacts after the job is done, at the contact's mean rate, taking at most `RESULT_SHARE` of
  each contact (telemetry comes too), at the relay's rate after its latency on the relay.
- A job is accepted when, after the jobs ahead of it (accepted, not final, earlier in the EDF
  order: their whole estimates, as if none had started), its result is predicted on the ground
  by its deadline; otherwise it is refused at submission with the reason, naming the energy it
  needs before the last contact that could still bring it down and what the budget (what the
  governor allows above the battery reserve) leaves before then. A job without a deadline is
  accepted when it can run within the mission at all.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from skyrack.errors import UserError
from skyrack.storage import atomic_write_text

FORMAT = 1
ESTIMATE_MARGIN = 1.5  # the wall time a job is planned at, over its calibrated estimate
RESULT_SHARE = 0.5  # the share of a contact's volume a job's result is planned to get
PACKET_OVERHEAD = 1.1  # file packets' headers and metadata over the result's bytes
TC_OVERHEAD = 1.2  # a submit_job telecommand's bytes over its spec's wire form


@dataclass
class Forecast:
    run_id: str
    written_t: float  # simulated time of this forecast (the frame it was written at)
    t0: float  # simulated time of budget_s[0]
    tick_s: float
    budget_s: list[float]  # cumulative full-power GPU seconds before tick j (from t0)
    saa: list[list[float]] = field(default_factory=list)  # [start, end) of each SAA pass, tick-aligned
    eclipses: list[list[float]] = field(default_factory=list)  # [start, end) of each eclipse
    contacts: list[dict] = field(default_factory=list)  # {station, rise_t, set_t, mean_rate_bps}
    link: str = "ideal"  # "ideal", "ground" or "relay"
    latency_s: float = 0.0
    uplink_rate_bps: float = 0.0
    sim_per_wall: float = 1.0  # simulated seconds per wall second of compute, at full power
    gpu_full_w: float = 0.0  # GPU draw at full cap
    gpu_idle_w: float = 0.0
    battery_reserve_wh: float = 0.0
    end_t: float = 0.0  # the mission's end: no compute after it
    # learnt on board: the largest wall time a kind's job took over its estimate (skyrack.jobs.service)
    wall_factor: dict = field(default_factory=dict)
    format: int = FORMAT

    @property
    def n_ticks(self) -> int:
        return len(self.budget_s) - 1

    def tick_of(self, t: float) -> int:
        """The first tick starting at or after t (clipped to the forecast)."""
        return int(min(max(math.ceil((t - self.t0) / self.tick_s - 1e-9), 0), self.n_ticks))

    def time_of(self, j: int) -> float:
        return self.t0 + j * self.tick_s

    def capacity(self) -> np.ndarray:
        """Full-power GPU seconds each tick allows."""
        return np.diff(np.asarray(self.budget_s, dtype=float))

    def in_saa(self) -> np.ndarray:
        """Whether each tick starts inside the South Atlantic Anomaly."""
        starts = self.t0 + np.arange(self.n_ticks) * self.tick_s
        inside = np.zeros(self.n_ticks, dtype=bool)
        for a, b in self.saa:
            inside |= (starts >= a - 1e-6) & (starts < b - 1e-6)
        return inside

    def wh(self, gpu_s: float) -> float:
        return gpu_s * self.gpu_full_w / 3600.0

    def as_dict(self) -> dict:
        return asdict(self)


def spans(t0: float, tick_s: float, flags) -> list[list[float]]:
    """[start, end) of each run of ticks where `flags` holds."""
    out, begin = [], None
    for j, f in enumerate(flags):
        if f and begin is None:
            begin = j
        elif not f and begin is not None:
            out.append([t0 + begin * tick_s, t0 + j * tick_s])
            begin = None
    if begin is not None:
        out.append([t0 + begin * tick_s, t0 + len(flags) * tick_s])
    return out


def make_forecast(
    *,
    run_id: str,
    now_t: float,
    t0: float,
    tick_s: float,
    budget_s,
    track: dict,
    end_t: float,
    link_mode: str,
    schedule,
    radio,
    sim_per_wall: float,
    bus,
) -> Forecast:
    """The forecast from a dry run (`compute_budget` and its `track`), the link's `schedule`
    (skyrack.link.contacts.Schedule; None on the ideal link) and the bus spec."""
    contacts = []
    if schedule is not None:
        for c in schedule.contacts:
            if c.set_s > t0:
                contacts.append(
                    {
                        "station": c.station,
                        "rise_t": float(c.rise_s),
                        "set_t": float(c.set_s),
                        "mean_rate_bps": float(c.volume_bits / max(c.duration_s, 1e-9)),
                    }
                )
    relay = link_mode == "relay"
    return Forecast(
        run_id=run_id,
        written_t=float(now_t),
        t0=float(t0),
        tick_s=float(tick_s),
        budget_s=[float(x) for x in budget_s],
        saa=spans(t0, tick_s, track.get("in_saa", [])),
        eclipses=spans(t0, tick_s, [s < 0.5 for s in track.get("sunlit", [])]),
        contacts=contacts,
        link=link_mode,
        latency_s=float(radio.relay_latency_s if relay else 0.0) if radio is not None else 0.0,
        uplink_rate_bps=float((radio.relay_rate_bps if relay else radio.uplink_rate_bps) if radio else 0.0),
        sim_per_wall=float(sim_per_wall),
        gpu_full_w=float(bus.gpu_max_power_w),
        gpu_idle_w=float(bus.gpu_idle_power_w),
        battery_reserve_wh=float(bus.reserve_wh),
        end_t=float(end_t),
    )


def write_forecast(path, forecast: Forecast) -> None:
    d = forecast.as_dict()
    d["budget_s"] = [round(x, 3) for x in d["budget_s"]]
    atomic_write_text(path, json.dumps(d, separators=(",", ":")))


def load_forecast(run) -> Forecast:
    """The mission's forecast (`RUN/forecast.json`), checked; a clear error when absent or damaged."""
    from skyrack.telemetry.runs import as_run

    path = as_run(run).forecast
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(
            f"mission {as_run(run).run_id} has no forecast ({path.name}): it is not flying"
        ) from None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the forecast {path}: {exc}") from None
    try:
        if d.get("format") != FORMAT:
            raise ValueError(f"format {d.get('format')!r}, expected {FORMAT}")
        forecast = Forecast(**d)
        if forecast.tick_s <= 0 or len(forecast.budget_s) < 1 or np.any(np.diff(forecast.budget_s) < -1e-6):
            raise ValueError("its budget is not a cumulative series")
    except (TypeError, ValueError) as exc:
        raise UserError(f"the forecast {path} is damaged: {exc}") from None
    return forecast


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str
    start_t: float | None = None  # when the job is on board and may start
    done_t: float | None = None  # when its compute is predicted done
    ground_t: float | None = None  # when its result is predicted on the ground

    def as_dict(self) -> dict:
        return asdict(self)


def clock(t: float, ref: float | None = None) -> str:
    """14:20 UTC (with the date when it is not the day of `ref`)."""
    g = time.gmtime(t)
    if ref is not None and time.gmtime(ref)[:3] != g[:3]:
        return time.strftime("%Y-%m-%d %H:%M UTC", g)
    return time.strftime("%H:%M UTC", g)


def edf_key(spec) -> tuple:
    """The order jobs are served in: earliest deadline, then higher priority, then first come."""
    deadline = spec.deadline_t if spec.deadline_t is not None else math.inf
    return (deadline, -spec.priority, spec.submitted_t, spec.job_id)


def need_s(est, forecast: Forecast, kind: str | None = None) -> float:
    """Planned full-power GPU seconds of a job: its estimate times the margin, or times what the
    satellite has seen its kind take over its estimate, whichever is larger."""
    factor = max(ESTIMATE_MARGIN, float(forecast.wall_factor.get(kind, 0.0)) if kind else 0.0)
    return max(float(est.wall_s), 0.0) * factor * forecast.sim_per_wall


def up_time(spec, forecast: Forecast, now_t: float) -> tuple[float | None, str]:
    """When the job's command is on board and runs (None: never, with the reason)."""
    tick = forecast.tick_s
    size = len(spec.encode()) * TC_OVERHEAD
    if forecast.link == "ideal":
        return now_t + tick, ""
    rate = forecast.uplink_rate_bps
    if rate <= 0:
        return None, "the link has no uplink"
    if forecast.link == "relay":
        return now_t + forecast.latency_s + size * 8.0 / rate + 2 * tick, ""
    # A long command goes up across the frames of one contact (skyrack.link.session), whole
    # within it: the first contact ahead with the time to carry it.
    longest = 0.0
    for c in forecast.contacts:
        start = max(now_t, c["rise_t"])
        span = c["set_t"] - start - tick
        longest = max(longest, c["set_t"] - c["rise_t"])
        if span > 0 and span * rate / 8.0 >= size:
            return start + size * 8.0 / rate + 2 * tick, ""
    if longest > 0 and longest * rate / 8.0 < size:
        return None, (
            f"its command is {size / 1024:.0f} KiB; the longest contact ahead carries "
            f"{longest * rate / 8.0 / 1024:.0f} KiB up (a smaller payload would go)"
        )
    return None, "no contact ahead to carry it up"


def down_time(done_t: float, result_bytes: int, forecast: Forecast) -> float | None:
    """When a result finished at `done_t` is whole on the ground (None: not in the forecast)."""
    bits = max(int(result_bytes), 1) * 8.0 * PACKET_OVERHEAD
    tick = forecast.tick_s
    if forecast.link == "ideal":
        return done_t
    if forecast.link == "relay":
        rate = next((c["mean_rate_bps"] for c in forecast.contacts), 0.0) * RESULT_SHARE
        return done_t + forecast.latency_s + bits / rate + tick if rate > 0 else None
    left = bits
    for c in forecast.contacts:
        a = max(c["rise_t"], done_t)
        if c["set_t"] <= a:
            continue
        rate = c["mean_rate_bps"] * RESULT_SHARE
        room = rate * (c["set_t"] - a)
        if room >= left:
            return a + left / rate + tick
        left -= room
    return None


def _serve(capacity: np.ndarray, j0: int, need: float) -> int | None:
    """Take `need` from capacity[j0:] in place; the tick where it is met (None: never)."""
    if need <= 0:
        return j0
    cum = np.cumsum(capacity[j0:])
    j = int(np.searchsorted(cum, need - 1e-9))
    if j >= cum.size:
        capacity[j0:] = 0.0
        return None
    capacity[j0 : j0 + j] = 0.0
    capacity[j0 + j] = cum[j] - need
    return j0 + j


def feasible(spec, est, forecast: Forecast, ahead: list, now_t: float) -> Verdict:
    """Will `spec` (estimated `est`), served after the jobs `ahead` that come before it in the
    EDF order, be done and its result on the ground before its deadline? See the module's policy."""
    start_t, why = up_time(spec, forecast, now_t)
    if start_t is None:
        return Verdict(False, f"the job cannot go up: {why}")
    deadline = spec.deadline_t
    if deadline is not None and start_t >= deadline:
        return Verdict(
            False,
            f"the job cannot reach the satellite before its deadline at {clock(deadline, now_t)}: "
            f"it would be on board at {clock(start_t, now_t)}",
            start_t,
        )
    if start_t >= forecast.end_t:
        return Verdict(
            False,
            f"the job would be on board at {clock(start_t, now_t)} (the next uplink), after the "
            f"mission ends at {clock(forecast.end_t, now_t)}",
            start_t,
        )
    free = forecast.capacity()
    saa = forecast.in_saa()
    j_now = forecast.tick_of(now_t + forecast.tick_s)
    key = edf_key(spec)
    before = sorted((a for a in ahead if edf_key(a[0]) < key), key=lambda a: edf_key(a[0]))
    ahead_s = 0.0
    for other, other_est in before:  # the jobs ahead take their compute first
        need = need_s(other_est, forecast, other.kind)
        ahead_s += need
        avail = np.where(saa, 0.0, free) if other.avoid_saa else free.copy()
        offered = avail.copy()
        _serve(avail, j_now, need)
        free -= offered - avail
    mine = np.where(saa, 0.0, free) if spec.avoid_saa else free.copy()
    own = mine.copy()  # what is left for this job, before it takes any
    need = need_s(est, forecast, spec.kind)
    j0 = forecast.tick_of(start_t)
    jd = _serve(mine, j0, need)
    need_wh = forecast.wh(need)
    ahead_note = (
        f" after {forecast.wh(ahead_s):.1f} Wh for the {len(before)} jobs ahead of it" if before else ""
    )
    saa_note = " outside the SAA" if spec.avoid_saa else ""
    if jd is None:
        return Verdict(
            False,
            f"needs {need_wh:.1f} Wh of GPU time{saa_note}; the battery reserve allows "
            f"{forecast.wh(float(own[j0:].sum())):.1f} Wh before the mission ends at "
            f"{clock(forecast.end_t, now_t)}{ahead_note}",
            start_t,
        )
    done_t = forecast.time_of(jd + 1)
    ground_t = down_time(done_t, est.result_bytes, forecast)
    if ground_t is None:
        return Verdict(
            False, f"no contact after {clock(done_t, now_t)} can bring its result down", start_t, done_t
        )
    if deadline is None or ground_t <= deadline:
        return Verdict(
            True,
            f"on board at {clock(start_t, now_t)}, done by {clock(done_t, now_t)}, on the ground by "
            f"{clock(ground_t, now_t)}" + (f" (deadline {clock(deadline, now_t)})" if deadline else ""),
            start_t,
            done_t,
            ground_t,
        )
    # too late: what the last chance to come down needs, and what the budget leaves before it
    latest_done, where = _latest_done(deadline, est.result_bytes, forecast)
    if latest_done is None or latest_done <= start_t:
        return Verdict(
            False,
            f"no contact between {clock(start_t, now_t)} and its deadline at {clock(deadline, now_t)} "
            f"can bring its result down"
            + (
                f"; the first after it is at {clock(c['rise_t'], now_t)}"
                if (c := _after(forecast, done_t))
                else ""
            ),
            start_t,
            done_t,
            ground_t,
        )
    jl = forecast.tick_of(latest_done)
    allows = forecast.wh(float(own[j0:jl].sum()))
    return Verdict(
        False,
        f"needs {need_wh:.1f} Wh of GPU time{saa_note} before {clock(latest_done, now_t)} "
        f"({where}); the battery reserve allows {allows:.1f} Wh before then{ahead_note}",
        start_t,
        done_t,
        ground_t,
    )


def _after(forecast: Forecast, t: float) -> dict | None:
    return next((c for c in forecast.contacts if c["set_t"] > t), None)


def _latest_done(deadline: float, result_bytes: int, forecast: Forecast) -> tuple[float | None, str]:
    """The latest time a job may be done for its result to be down by `deadline`, and what
    brings it down then (in words)."""
    tick = forecast.tick_s
    if forecast.link == "ideal":
        return deadline, "its deadline"
    bits = max(int(result_bytes), 1) * 8.0 * PACKET_OVERHEAD
    if forecast.link == "relay":
        rate = next((c["mean_rate_bps"] for c in forecast.contacts), 0.0) * RESULT_SHARE
        if rate <= 0:
            return None, ""
        return deadline - forecast.latency_s - bits / rate - tick, "its deadline"
    best: tuple[float | None, str] = (None, "")
    for c in forecast.contacts:  # the last contact before the deadline with room for the result
        if c["rise_t"] >= deadline:
            break
        rate = c["mean_rate_bps"] * RESULT_SHARE
        done_by = min(c["set_t"], deadline - tick) - bits / rate if rate > 0 else -math.inf
        if done_by >= c["rise_t"]:
            best = (done_by, f"in the contact at {clock(c['rise_t'])}, the last to bring it down in time")
    return best
