"""The link over one mission: each frame, what goes down and what comes up.

Modes (`--link`):
- `ground`: the profile's ground network; packets move only inside contacts, at the contact's
  rate (`skyrack.link.contacts`);
- `relay`: an always-on, low-rate relay with a latency (the profile's assumption);
- `ideal`: no link at all; the ground reads the on-board store directly (the old behaviour,
  kept for tests and demos). No `Link` is built for it.

The channel loses a packet with probability `loss` and corrupts one (flips a bit or cuts it
short) with probability `corruption`, in both directions; the ground's CRC check catches the
corrupted ones. Uplinked commands are sent again in every contact until their PUS-1 acceptance
report comes down; gaps are asked for again at the end of every contact frame, so a contact
usually fills the gaps it found itself, and the next contact the rest.

Everything happens at the end of a frame: the frame is in the store, then the link carries
[t, t + frame) worth of bits. A command that goes up in that window runs at the next frame,
which starts at or after the moment it arrived, so it never runs before its contact begins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from skyrack.link import files
from skyrack.link import packets as P
from skyrack.link.contacts import Contact, Schedule, relay_contact, station_contacts
from skyrack.link.ground import GroundArchive
from skyrack.link.onboard import OnboardStore
from skyrack.link.radio import Radio

DRAIN_HOURS = 24.0
RETRY_S = 30.0  # a gap asked for is not asked for again sooner than this (plus the round trip)  # after the mission, the dump continues until the ground has it all, or this long


@dataclass
class Channel:
    loss: float
    corruption: float
    seed: int = 0

    def carry(self, packets: list[bytes], key: int) -> list[bytes]:
        """What arrives of `packets`, in order: some lost, some damaged."""
        if not packets or (self.loss == 0 and self.corruption == 0):
            return list(packets)
        rng = np.random.default_rng((self.seed, key))
        fate = rng.random(len(packets))
        out = []
        for raw, u in zip(packets, fate):
            if u < self.loss:
                continue
            if u < self.loss + self.corruption:
                damaged = bytearray(raw)
                if rng.random() < 0.25:
                    damaged = damaged[: int(rng.integers(1, len(raw)))]
                else:
                    bit = int(rng.integers(0, len(raw) * 8))
                    damaged[bit // 8] ^= 1 << (bit % 8)
                raw = bytes(damaged)
            out.append(raw)
        return out


class Link:
    def __init__(
        self,
        mode: str,
        radio: Radio,
        schedule: Schedule,
        store: OnboardStore,
        ground: GroundArchive,
        channel: Channel,
        answer=None,
    ):
        self.mode, self.radio, self.schedule = mode, radio, schedule
        # answer(question, history, at) -> dict: the satellite's assistant, on board (the mission
        # passes it in: the link carries questions and answers, it does not answer them)
        self.answer = answer
        self.store, self.ground, self.channel = store, ground, channel
        self.latency_s = radio.relay_latency_s if mode == "relay" else 0.0
        self.in_flight_down: list[tuple[bytes, float]] = []
        self.in_flight_up: list[tuple[bytes, float]] = []
        self.tc_count = int(ground.meta("tc_count", 0))
        self.up_credit = (None, 0.0)  # (contact, uplink bytes its windows left to a long command)
        self.stats = {"sent": 0, "delivered": 0, "uplinked": 0}
        self.requested: dict[tuple, float] = {}  # retrieval request -> when it went up

    @classmethod
    def build(
        cls,
        mode: str,
        radio: Radio,
        twin,
        store_archive,
        ground_path,
        *,
        start: float,
        end: float,
        seed: int,
        loss=None,
        corruption=None,
        plan: dict | None = None,
        answer=None,
    ):
        """The link of one mission; `plan` (the mission's meta) goes on the ground's record too:
        the ground planned the mission, so it knows it without a packet."""
        horizon = end + DRAIN_HOURS * 3600.0
        if mode == "relay":
            schedule = Schedule([relay_contact(radio, start, horizon)], radio.relay_latency_s)
        else:
            schedule = Schedule(station_contacts(twin, radio, start, horizon))
        ground = GroundArchive(ground_path)
        channel = Channel(
            radio.packet_loss if loss is None else loss,
            radio.packet_corruption if corruption is None else corruption,
            seed,
        )
        link = cls(mode, radio, schedule, OnboardStore(store_archive), ground, channel, answer)
        for key, value in (plan or {}).items():
            if key not in ("sessions", "operator"):
                ground.set_meta(key, value)
        ground.set_meta("link", link.describe())
        ground.set_meta(
            "contacts", [c.as_dict() for c in schedule.contacts if c.rise_s < end] if mode == "ground" else []
        )
        return link

    def describe(self) -> dict:
        return {
            "mode": self.mode,
            "loss": self.channel.loss,
            "corruption": self.channel.corruption,
            "latency_s": self.latency_s,
            "downlink_rate_bps": self.radio.relay_rate_bps
            if self.mode == "relay"
            else self.radio.downlink_rate_bps,
            "uplink_rate_bps": self.radio.relay_rate_bps
            if self.mode == "relay"
            else self.radio.uplink_rate_bps,
            "stations": list(self.radio.stations) if self.mode == "ground" else [],
        }

    def summary_line(self, t: float) -> str:
        """The link in words, for the terminal view."""
        state = self.schedule.state(t)
        if self.mode == "relay":
            where = f"through the data relay ({self.latency_s:g} s latency)"
        elif state["in_contact"]:
            where = f"in contact with {state['station']}, {state['left_s'] / 60:.0f} min left"
        elif state["next_station"]:
            where = f"silent; next contact {state['next_station']} in {state['next_in_s'] / 60:.0f} min"
        else:
            where = "silent; no contact planned"
        last = self.store.archive.last_frame()
        return f"{where}; the ground has {self.ground.frame_count()} of {last[0] if last else 0} frames"

    def close(self) -> None:
        self.store.save()
        self.ground.close()

    # -- one frame ---------------------------------------------------------------------------
    def carry(self, t0: float, t1: float) -> None:
        """Move [t0, t1) worth of packets each way (nothing outside contacts)."""
        for contact in self.schedule.overlapping(t0, t1):
            self._contact(contact, t0, t1)
        self._deliver(t1)
        self.store.save()
        self.ground.set_meta("ground_clock", t1)

    def _contact(self, contact: Contact, t0: float, t1: float) -> None:
        a, b = max(t0, contact.rise_s), min(t1, contact.set_s)
        bits = contact.bits_between(a, b)
        if bits <= 0:
            return
        packets = self.store.downlink(a, bits / 8.0)
        self.stats["sent"] += len(packets)
        key = int(a * 1000) & 0xFFFFFFFF
        arrived = self.channel.carry(packets, key)
        # Receive times spread over the window in sending order, then the link's latency.
        sizes = np.cumsum([len(p) for p in arrived]) if arrived else np.array([])
        span = (b - a) / max(bits / 8.0, 1.0)
        for raw, done in zip(arrived, sizes):
            self.in_flight_down.append((raw, a + done * span + self.latency_s))
        # The uplink, at the end of the window: commands not yet accepted, then retrieval requests.
        up_budget = (
            (self.radio.relay_rate_bps if self.mode == "relay" else self.radio.uplink_rate_bps) * (b - a) / 8
        )
        tcs = []
        for cmd in self.ground.uplink_commands():
            body = {"id": cmd["id"], "name": cmd["name"], "args": cmd["args"]}
            if cmd.get("at_t") is not None:
                body["at"] = cmd["at_t"]
            tcs.append(P.encode_tc("timed" if "at" in body else "command", body, self._tc_seq()))
        for q in self.ground.unanswered():  # sent again each contact until the answer is down
            tcs.append(P.encode_tc("ask", q, self._tc_seq()))
        self._deliver(b)  # what has come down by now tells the ground its gaps
        hold = 2 * self.latency_s + RETRY_S  # the answer to a request is on its way meanwhile
        for request in self.ground.retrieval_requests():
            asked = (request["kind"], request["first"], request["last"])
            if b - self.requested.get(asked, -1e18) < hold:
                continue
            self.requested[asked] = b
            tcs.append(P.encode_tc("retrieve", request, self._tc_seq()))
        for ack in self.ground.files.acks():
            tcs.append(P.encode_tc("file_ack", ack, self._tc_seq()))
        for nak in self.ground.files.naks():
            asked = ("file", nak["file"], nak["first"], nak["last"])
            if b - self.requested.get(asked, -1e18) >= hold:
                self.requested[asked] = b
                tcs.append(P.encode_tc("file_nak", nak, self._tc_seq()))
        # A telecommand longer than one frame's window (a customer's image) goes up across the
        # windows of one contact: what a window leaves unused waits for it, as a radio that keeps
        # sending would; the credit ends with the contact.
        credit = self.up_credit[1] if self.up_credit[0] == contact.rise_s else 0.0
        budget = up_budget + credit
        kept, used = [], 0
        for raw in tcs:
            if used + len(raw) > budget:
                break
            kept.append(raw)
            used += len(raw)
        self.up_credit = (contact.rise_s, budget - used if len(kept) < len(tcs) else 0.0)
        self.stats["uplinked"] += len(kept)
        for raw in self.channel.carry(kept, key ^ 0x5A5A5A5A):
            self.in_flight_up.append((raw, b + self.latency_s))
        self.ground.set_meta("tc_count", self.tc_count)

    def _tc_seq(self) -> int:
        self.tc_count += 1
        return self.tc_count

    def _deliver(self, t: float) -> None:
        down = [(raw, rt) for raw, rt in self.in_flight_down if rt <= t]
        if down:
            self.in_flight_down = [(raw, rt) for raw, rt in self.in_flight_down if rt > t]
            self.ground.receive(down)
            self.stats["delivered"] += len(down)
        up = [(raw, at) for raw, at in self.in_flight_up if at <= t]
        if up:
            self.in_flight_up = [(raw, at) for raw, at in self.in_flight_up if at > t]
            for raw, at in up:
                self.store.receive_tc(raw, at)
            self._answer_questions()

    def _answer_questions(self) -> None:
        """Answer what arrived, on board, from the store as it stood when the question came."""
        from skyrack.telemetry.archive import Event

        while self.store.questions:
            qid, question, history, at = self.store.questions.pop(0)
            if self.answer is None:
                result = {
                    "answer": "I cannot answer questions on this link.",
                    "mode": "none",
                    "verified": False,
                }
            else:
                try:
                    result = self.answer(question, [tuple(h) for h in history][-6:], at)
                except Exception as exc:  # the satellite says it could not answer, and flies on
                    result = {
                        "answer": f"I could not answer: {str(exc).splitlines()[0][:200]}",
                        "mode": "error",
                        "verified": False,
                    }
            data = {
                "question_id": qid,
                "answer": str(result.get("answer", ""))[:1500],
                "mode": result.get("mode"),
                "verified": bool(result.get("verified")),
                "facts": len(result.get("facts") or []),
                "asked_on_board_t": at,
            }
            self.store.archive.write_events(at, [Event("answer", data)])

    # -- after the mission -----------------------------------------------------------------------
    def drain(self, t_end: float, say=None, max_hours: float = DRAIN_HOURS) -> float | None:
        """Keep dumping in the contacts after the mission until the ground has every frame and
        event and every job's result; returns when that happened (None: not within `max_hours`)."""
        limit = t_end + max_hours * 3600.0
        step = 10.0
        t = t_end
        while t < limit:
            if self.complete():
                return t
            contact = self.schedule.current(t) or self.schedule.next_after(t)
            if contact is None or contact.rise_s >= limit:
                break
            t = max(t, contact.rise_s)
            while t < min(contact.set_s, limit):
                self.carry(t, t + step)
                t += step
                if self.complete():
                    self.ground.set_meta("ground_complete_t", t)
                    return t
            self._deliver(t + self.latency_s)
        self._deliver(limit)
        return t if self.complete() else None

    def complete(self) -> bool:
        """The ground has every frame and event, and every customer's job result (files with a
        priority, `skyrack.link.files`) is acknowledged: a customer waits for those."""
        last = self.store.archive.last_frame()
        c = self.ground.completeness()
        results_down = all(
            f["acked"] for f in self.store.state.get("files", []) if f.get("priority", files.BACKGROUND) >= 0
        )
        return (
            c["frames_received"] == (last[0] if last else 0)
            and c["events_received"] == self.store.archive.last_event_id()
            and results_down
        )
