"""A fact: one value a tool read from the twin or the archive, with how it is said aloud.

The verifier checks an answer against facts only, so each fact carries what it needs: its unit
class (which numbers in an answer may be compared with it), the names a place goes by, and the
time it holds for ("now" or a shifted instant).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Fact:
    name: str  # "place", "alt_km", "next_1_place", "battery_soc", ...
    value: Any  # a number, a bool or a string
    unit: str  # "km", "min", "utc", "%", "W", "degC", "deg", "place", "state", "text", ...
    text: str  # how it is said: "505 km", "Chad, Africa", "in sunlight"
    tool: str  # the tool that read it
    channel: str | None = None  # the telemetry dictionary's channel, where there is one
    when: str = "now"  # "now", or the instant it holds for ("+20 min", "14:00 UTC")
    names: tuple[str, ...] = field(default_factory=tuple)  # every name a place fact goes by

    def as_dict(self) -> dict:
        out = {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "text": self.text,
            "tool": self.tool,
            "when": self.when,
        }
        if self.channel:
            out["channel"] = self.channel
        if self.names:
            out["names"] = list(self.names)
        return out

    @classmethod
    def from_dict(cls, d: dict) -> Fact:
        """The inverse of `as_dict` (an answer's JSON facts back into facts the verifier takes)."""
        return cls(**{k: (tuple(v) if k == "names" else v) for k, v in d.items()})


def by_name(facts: list[Fact]) -> dict[str, Fact]:
    return {f.name: f for f in facts}
