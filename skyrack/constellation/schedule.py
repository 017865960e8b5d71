"""The constellation's simulated clock: every satellite's bus, the links between them, and the
training rounds laid on that one timeline before any process starts.

Each satellite flies the mission's physics (`skyrack.mission.spacecraft.Spacecraft`: its own
orbit, sunlight, power, thermal model, radiation and governor), one control tick at a time, with
the GPU drawing the governor's cap whenever it lets training run. The governor's throughput
fraction f (0 while paused) sets how fast a satellite does its inner steps: one step is
`step_s` simulated seconds of full-power compute (an assumption per run: the step time of the
model on the satellite's accelerator).

A round is: every satellite running at its start does `steps` inner steps (a satellite the
governor pauses before it finishes leaves the round); the finishers then wait for the link
graph to join them (relays allowed), idling meanwhile (the wait is on the record, and capped at
`max_wait_s`: past it the round ends without a sync and the satellites go on from their own
parameters); the synchronization then takes its wire bytes over the ring's slowest hop. A ring
all-reduce of S bytes over n satellites sends 2 (n - 1) / n x S from each of them.

Everything here is deterministic in the inputs, so the coordinator and every worker agree on
the schedule without talking; only a process that really dies changes who takes part, and the
round protocol (`protocol.py`) settles that at run time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from skyrack.errors import UserError
from skyrack.orbit import constellation as geo
from skyrack.orbit.twin import OrbitTwin

LINK_CHUNK = 2048  # ticks of link geometry computed per vectorized call


def ring_wire_bytes(payload_bytes: float, n: int) -> float:
    """Bytes each satellite sends in a ring all-reduce of `payload_bytes` over `n` satellites."""
    return 0.0 if n < 2 else 2.0 * (n - 1) / n * payload_bytes


@dataclass
class Round:
    index: int
    start_t: float
    compute_end_t: float
    sync_t: float | None  # the sync starts (links joined); None: no sync this round
    end_t: float
    participants: list[int]  # did the round's inner steps and take part in its sync
    paused: list[int]  # the governor kept them from the round
    dropped: list[int]  # dropped out on purpose (a forced dropout)
    killed: list[int] = field(default_factory=list)  # killed by a radiation interrupt, or rebooting
    wait_s: float = 0.0
    rate_bps: float = 0.0
    wire_bytes: float = 0.0  # per participant
    fragment: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class BusTrack:
    """One satellite's bus flown tick by tick as far as the plan needs it."""

    craft: object
    fraction: list[float] = field(default_factory=list)
    frames: list[dict] = field(default_factory=list)

    def extend_to(self, k: int) -> None:
        craft = self.craft
        while len(self.fraction) <= k:
            i = len(self.fraction)
            now = craft.at(i)
            decision = craft.decide(now)
            cap = decision.cap_w
            f = craft.throughput(cap)
            gpu_w = craft.gpu_draw_w(cap)
            heater_w = craft.heater_w(now, gpu_w, craft.ready_w(cap, decision))
            self.fraction.append(f)
            self.frames.append(
                {
                    "t": now.t,
                    "decision": decision.kind,
                    "reason": decision.reason,
                    **craft.bus_values(now, cap, gpu_w, heater_w, f),
                }
            )
            craft.advance(now, gpu_w, heater_w)


class Sky:
    """The constellation on one clock: buses, positions and links on the tick grid."""

    def __init__(
        self, profile, satellites, *, start_t: float, tick_s: float, horizon_s: float, links, soc=0.9
    ):
        from skyrack.geo.regions import RegionIndex
        from skyrack.mission.spacecraft import Spacecraft

        self.satellites, self.start_t, self.tick_s, self.links = satellites, start_t, tick_s, links
        self.twins = [OrbitTwin(s) for s in satellites]
        index = RegionIndex.load()
        self.tracks = [
            BusTrack(
                Spacecraft(
                    profile,
                    twin,
                    index,
                    start_s=start_t,
                    end_s=start_t + horizon_s,
                    tick_s=tick_s,
                    initial_soc=soc,
                )
            )
            for twin in self.twins
        ]
        self._up = np.zeros((len(satellites), len(satellites), 0), dtype=bool)
        self._rate = np.zeros((len(satellites), len(satellites), 0))

    @property
    def n(self) -> int:
        return len(self.satellites)

    def tick_of(self, t: float) -> int:
        return int((t - self.start_t) // self.tick_s)

    def fraction(self, sat: int, k: int) -> float:
        self.tracks[sat].extend_to(k)
        return self.tracks[sat].fraction[k]

    def link_state(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(up, rate) at tick k, each (N, N)."""
        while self._up.shape[2] <= k:
            k0 = self._up.shape[2]
            seconds = self.start_t + (k0 + np.arange(LINK_CHUNK)) * self.tick_s
            pos = np.stack([twin.propagate(seconds)[0] for twin in self.twins])
            rng, _, up = geo.pair_links(pos, self.links)
            rate = geo.widest_rates_bps(self.links.rate_bps(rng), up)
            self._up = np.concatenate([self._up, up], axis=2)
            self._rate = np.concatenate([self._rate, rate], axis=2)
        return self._up[:, :, k], self._rate[:, :, k]

    def ring_rate(self, k: int, members: list[int]) -> float:
        """The ring all-reduce's pace through `members` at tick k (0: the ring is broken)."""
        up, rate = self.link_state(k)
        if len(members) < 2:
            return float("inf")
        hops = list(zip(members, members[1:] + members[:1]))
        return float(min(rate[i, j] for i, j in hops))

    def upsets(self, sat: int, t0: float, t1: float) -> float:
        """Expected upsets in satellite `sat`'s whole GPU memory from t0 to t1: its upset rate
        along its own orbit (the SAA included), tick by tick."""
        track, total = self.tracks[sat], 0.0
        track.extend_to(self.tick_of(t1))
        for k in range(self.tick_of(t0), self.tick_of(t1) + 1):
            tick_start = self.start_t + k * self.tick_s
            overlap = min(t1, tick_start + self.tick_s) - max(t0, tick_start)
            if overlap > 0:
                total += track.frames[k]["radiation.upset_rate"] * overlap
        return total

    def finish_time(self, sat: int, t: float, work_s: float) -> float | None:
        """When `sat`, starting at t, has done `work_s` of full-power compute; None if its governor
        pauses it first."""
        while True:
            k = self.tick_of(t)
            f = self.fraction(sat, k)
            if f <= 0:
                return None
            tick_end = self.start_t + (k + 1) * self.tick_s
            can = (tick_end - t) * f
            if can >= work_s:
                return t + work_s / f
            work_s -= can
            t = tick_end

    def windows(self, end_t: float) -> list[dict]:
        k = self.tick_of(end_t)
        self.link_state(k)
        seconds = self.start_t + np.arange(k + 1) * self.tick_s
        return geo.windows(self._up[:, :, : k + 1], seconds)

    def ever_linked(self, span_s: float) -> bool:
        """Whether the link graph joins all satellites at some tick within `span_s`."""
        k = self.tick_of(self.start_t + span_s)
        self.link_state(k)
        return bool(geo.reachable(self._up[:, :, : k + 1], list(range(self.n))).any())


def plan_rounds(
    sky: Sky,
    *,
    rounds: int,
    steps_per_round: int,
    step_s: float,
    payload_bytes: list[float],
    max_wait_s: float,
    dropout_every_round: bool = False,
    kill: dict | None = None,
    reboot_rounds: int = 1,
) -> list[Round]:
    """The rounds on the simulated clock. `payload_bytes[r % len]` is what round r all-reduces
    (one entry per streaming fragment). `kill` {"sat", "round"}: that satellite's process dies
    during the round and is back `reboot_rounds` rounds later."""
    out: list[Round] = []
    t = sky.start_t
    work = steps_per_round * step_s
    for r in range(rounds):
        k = sky.tick_of(t)
        idle_until = t
        while not any(sky.fraction(s, sky.tick_of(idle_until)) > 0 for s in range(sky.n)):
            idle_until += sky.tick_s  # every satellite paused: the clock runs on to a resume
            if idle_until - t > max_wait_s * 10:
                raise UserError("every satellite stays paused: the governors never let training run")
        t = idle_until
        k = sky.tick_of(t)
        dropped = [r % sky.n] if dropout_every_round else []
        killed = [kill["sat"]] if kill and kill["round"] <= r <= kill["round"] + reboot_rounds else []
        paused, done = [], {}
        for s in range(sky.n):
            if s in dropped or s in killed:
                continue
            end = sky.finish_time(s, t, work) if sky.fraction(s, k) > 0 else None
            if end is None:
                paused.append(s)
            else:
                done[s] = end
        members = sorted(done)
        compute_end = max(done.values()) if done else t
        fragment = r % len(payload_bytes)
        rnd = Round(r, t, compute_end, None, compute_end, members, paused, dropped, killed, fragment=fragment)
        if len(members) == 1:
            rnd.sync_t = compute_end  # a lone satellite applies its own outer step: nothing to send
        elif members:
            wait_t = compute_end
            while wait_t - compute_end <= max_wait_s:
                rate = sky.ring_rate(sky.tick_of(wait_t), members)
                if rate > 0:
                    rnd.sync_t, rnd.rate_bps = wait_t, rate
                    rnd.wire_bytes = ring_wire_bytes(payload_bytes[fragment], len(members))
                    rnd.end_t = wait_t + rnd.wire_bytes * 8.0 / rate
                    break
                wait_t = sky.start_t + (sky.tick_of(wait_t) + 1) * sky.tick_s
            rnd.wait_s = (rnd.sync_t if rnd.sync_t is not None else wait_t) - compute_end
            if rnd.sync_t is None:
                rnd.end_t = wait_t
        out.append(rnd)
        t = rnd.end_t
    return out
