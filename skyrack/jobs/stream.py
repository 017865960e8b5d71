"""The mission's job stream (`skyrack mission --jobs FILE|demo`): customers' jobs submitted to
the ground at their simulated times while the mission flies, through the one submission path
(`skyrack.jobs.ledger.submit`: checks, the scheduler's verdict, an id, the `submit_job`
telecommand queued where the ground queues commands).

FILE is JSON lines, one job a line (blank lines and lines starting with `#` are skipped):

    {"at_s": 900, "customer": "firewatch", "kind": "screen",
     "params": {"source": "onboard", "tiles": 16}, "deadline_in_s": 5400, "priority": 8}

- `at_s` (required): when it is submitted, in simulated seconds after the mission's start;
- `customer`, `kind` (required); `params` (the workload's, default {});
- the payload, at most one of: `payload_text` (UTF-8, e.g. the JSON list of an infer job's
  prompts) or `payload_b64` (base64, e.g. a PNG to screen);
- `deadline_in_s` (from its submission) or `deadline_t` (POSIX seconds); none: best effort;
- `priority` 0..9 (default 5), `avoid_saa` (default false).

`demo` draws a stream for the mission from its seed (`demo_stream`): Poisson arrivals, one job
every `DEMO_MEAN_GAP_S` of simulated time on average, in this mix:

- 45 % `firewatch`: wildfire screening, `screen` of 4-16 on-board tiles, priority 8, a deadline
  of 2-3 hours (an alert wants the next contact or the one after);
- 30 % `agrisat`: crop imagery, `screen` of 16-64 tiles, priority 3, a loose deadline of 6-8
  hours, half of them `avoid_saa`;
- 20 % `textlab`: batch inference, `infer` of 1-2 short prompts, `max_tokens` 24, priority 5,
  a deadline of 3-5 hours, a third `avoid_saa`;
- 5 %, and every seventh job besides: a `firewatch` job whose deadline (2 minutes) no link can
  meet, there to show refusal at submission.

The stream's position (how many have been submitted) is kept in the archive's meta
(`job_stream`), so a resumed mission goes on with the next one.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from pathlib import Path

import numpy as np

from skyrack.errors import UserError

DEMO_MEAN_GAP_S = 900.0
META_KEY = "job_stream"
KEYS = {
    "at_s",
    "customer",
    "kind",
    "params",
    "payload_text",
    "payload_b64",
    "deadline_in_s",
    "deadline_t",
    "priority",
    "avoid_saa",
}
PROMPTS = (
    "Summarise in one sentence why satellites process imagery in orbit.",
    "Name three crops that can be monitored from orbit.",
    "Write a haiku about a wildfire seen from space.",
    "What is a ground station?",
    "Explain eclipse season for a satellite in one sentence.",
    "List two uses of cloud masks.",
)


def read_stream(path: str | Path) -> list[dict]:
    """The entries of a JSON-lines job stream, checked (a clear error names the line)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"--jobs: cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UserError(f"--jobs: {path} is not UTF-8 text") from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise UserError(f"--jobs: {path}:{n}: not JSON ({exc.msg})") from None
        out.append(_checked(entry, f"{path}:{n}"))
    return sorted(out, key=lambda e: e["at_s"])


def _checked(entry, where: str) -> dict:
    if not isinstance(entry, dict):
        raise UserError(f"--jobs: {where}: a job is a JSON object")
    unknown = sorted(set(entry) - KEYS)
    if unknown:
        raise UserError(
            f"--jobs: {where}: unknown key(s) {', '.join(unknown)}; keys: {', '.join(sorted(KEYS))}"
        )
    for key in ("at_s", "customer", "kind"):
        if key not in entry:
            raise UserError(f"--jobs: {where}: {key} is required")
    at = entry["at_s"]
    if isinstance(at, bool) or not isinstance(at, (int, float)) or not math.isfinite(at) or at < 0:
        raise UserError(f"--jobs: {where}: at_s must be seconds after the mission's start, >= 0")
    if "payload_text" in entry and "payload_b64" in entry:
        raise UserError(f"--jobs: {where}: give payload_text or payload_b64, not both")
    if "payload_b64" in entry:
        try:
            base64.b64decode(str(entry["payload_b64"]), validate=True)
        except (binascii.Error, ValueError):
            raise UserError(f"--jobs: {where}: payload_b64 is not base64") from None
    if "deadline_in_s" in entry and "deadline_t" in entry:
        raise UserError(f"--jobs: {where}: give deadline_in_s or deadline_t, not both")
    return dict(entry, at_s=float(at))


def demo_stream(seed: int, duration_s: float, mean_gap_s: float = DEMO_MEAN_GAP_S) -> list[dict]:
    """The demo's jobs over a mission of `duration_s` (see the module's mix)."""
    rng = np.random.default_rng([seed, 17])
    out, t, n = [], 0.0, 0
    while True:
        t += float(rng.exponential(mean_gap_s))
        if t >= duration_s:
            break
        n += 1
        u = float(rng.random())
        if u < 0.05 or n % 7 == 0:
            entry = _screen("firewatch", int(rng.integers(4, 17)), 8, 120.0, False)
        elif u < 0.50:
            entry = _screen("firewatch", int(rng.integers(4, 17)), 8, float(rng.uniform(7200, 10800)), False)
        elif u < 0.80:
            tiles = int(rng.integers(16, 65))
            entry = _screen("agrisat", tiles, 3, float(rng.uniform(21600, 28800)), bool(rng.random() < 0.5))
        else:
            k = int(rng.integers(1, 3))
            prompts = [PROMPTS[int(i)] for i in rng.choice(len(PROMPTS), size=k, replace=False)]
            entry = {
                "customer": "textlab",
                "kind": "infer",
                "params": {"max_tokens": 24},
                "payload_text": json.dumps(prompts),
                "deadline_in_s": round(float(rng.uniform(10800, 18000))),
                "priority": 5,
                "avoid_saa": bool(rng.random() < 1 / 3),
            }
        out.append({"at_s": round(t, 1), **entry})
    return out


def _screen(customer: str, tiles: int, priority: int, deadline_in_s: float, avoid_saa: bool) -> dict:
    return {
        "customer": customer,
        "kind": "screen",
        "params": {"source": "onboard", "tiles": tiles},
        "deadline_in_s": round(deadline_in_s),
        "priority": priority,
        "avoid_saa": avoid_saa,
    }


def fields_of(entry: dict) -> dict:
    """An entry as the ledger's submission fields (the payload as bytes)."""
    fields = {
        k: entry[k]
        for k in ("kind", "params", "deadline_in_s", "deadline_t", "priority", "avoid_saa")
        if k in entry
    }
    if "payload_text" in entry:
        fields["payload"] = str(entry["payload_text"]).encode("utf-8")
    elif "payload_b64" in entry:
        fields["payload"] = base64.b64decode(str(entry["payload_b64"]))
    return fields


class Stream:
    """The stream of one mission: `stream(t)` submits every entry due by simulated time t."""

    def __init__(self, entries: list[dict], start_t: float, archive, submit, say=None):
        """`submit(fields, customer, now_t) -> dict` (the ledger's record); raises on refusal."""
        self.entries, self.start_t, self.archive, self.submit = entries, start_t, archive, submit
        self.say = say
        self.state = {"next": 0, "submitted": 0, "refused": 0, **(archive.meta(META_KEY) or {})}

    def __call__(self, t: float) -> None:
        changed = False
        while (
            self.state["next"] < len(self.entries)
            and self.start_t + self.entries[self.state["next"]]["at_s"] <= t
        ):
            entry = self.entries[self.state["next"]]
            self.state["next"] += 1
            changed = True
            try:
                self.submit(fields_of(entry), entry["customer"], t)
                self.state["submitted"] += 1
            except UserError as exc:  # refused: the ledger keeps the reason; the stream goes on
                self.state["refused"] += 1
                if self.say is not None:
                    self.say(f"job stream: a {entry['kind']} job of {entry['customer']} refused: {exc}")
        if changed:
            self.archive.set_meta(META_KEY, self.state)


def submitter(run):
    """`submit(fields, customer, now_t)` for the stream: the ground's ledger, the one submission
    path (checks, the scheduler's verdict, the id, the telecommand where the ground queues it)."""
    from skyrack.jobs import ledger

    def submit(fields: dict, customer: str, now_t: float) -> dict:
        return ledger.submit(run, fields, customer, now_t)

    return submit
