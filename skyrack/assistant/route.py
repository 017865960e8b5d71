"""Which tools a question needs, at which instant, or why it gets no answer at all.

Routing is plain pattern matching, on purpose: it decides before any model sees the question,
so no wording can talk the assistant into a command, a file or its own prompt. A question that
asks for an action, tries to override the instructions or to read the prompt is refused; one
that names no telemetry topic gets "I can't tell from my telemetry".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from skyrack.orbit.stations import BUILTIN
from skyrack.orbit.timebase import parse_time
from skyrack.telemetry.dictionary import COMMAND

# Attempts to steer the assistant rather than ask it something.
_INJECTION = [
    r"\b(ignore|disregard|forget|override|bypass)\b.{0,40}\b(instruction|rule|prompt|guideline|polic|previous|above|"
    r"everything|restriction)",
    r"\b(system|hidden|initial|original|your)\s+(prompt|instructions?|rules|message)\b",
    r"\b(print|reveal|show|repeat|output|dump|leak|tell me|what (is|are|was))\b.{0,30}\b(prompt|instructions?|"
    r"few[- ]?shot|context window|facts? (list|block))\b",
    r"\b(you are now|pretend|act as|role ?play|jailbreak|developer mode|dan mode|new persona)\b",
    r"\b(execute|run|issue|send|queue|trigger|perform|launch)\b.{0,30}\b(command|script|shell|code|program|"
    r"order|maneuver|manoeuvre|burn)\b",
    r"\b(sudo|rm\s+-|bash|shell|terminal|os\.system|subprocess|eval\(|exec\(|import\s+os|curl|wget)\b",
    r"(/etc/|/root|~/|\.\./|\b[a-z]:\\|\.(py|sh|txt|env|sqlite|json|toml)\b)",
    r"\b(read|open|cat|delete|remove|write|modify|edit|upload|download|format|wipe)\b.{0,20}\b(file|disk|"
    r"database|archive|memory|checkpoint|log)s?\b",
    r"\b(set|change|raise|lower|increase|decrease|adjust|switch|turn|shut|power)\b.{0,30}\b(cap|power|stress|"
    r"setting|mode|orbit|off|down|on|thruster|attitude|governor|limit)\b",
    r"\b(pause|stop|halt|resume|restart|reboot|start|kill|abort)\b.{0,20}\b(training|trainer|mission|gpu|"
    r"job|run|yourself|system|computer)\b",
    r"\b(deorbit|self[- ]destruct|fire|thrust|checkpoint now)\b",
    r"\b("
    + "|".join(re.escape(n) for n in COMMAND)
    + r"|"
    + "|".join(re.escape(n.replace("_", " ")) for n in COMMAND if "_" in n)
    + r")\b",
]
_INJECTION_RE = [re.compile(p, re.I) for p in _INJECTION]

# Topics the telemetry can answer, and the tools each needs.
_TOPICS = [
    (
        "position",
        r"\bwhere\b.{0,12}\b(you|u|the satellite|starcloud|are we|we be)\b|\b(location|position)\b|"
        r"\bwhat( country| countries| ocean| sea| region| "
        r"continent|'s| is)?\b.{0,20}\b(below|beneath|under(neath)?)\b.{0,6}\b(you|u)\b|"
        r"\b(above|over|flying over|passing over)\b.{0,12}\b(which|what)\b|\b(which|what) "
        r"(country|ocean|sea|continent|region|part of the world)\b|\b(are you|you're|you be) (above|over)\b|"
        r"\bwhat (will|are|do|would) you\b.{0,12}\b(above|over|flying over|see below)\b",
    ),
    ("coordinates", r"\b(latitude|longitude|coordinates?|lat/lon|lat and lon|gps)\b"),
    ("altitude", r"\b(altitude|how high|height|elevation above|how far (up|above))\b"),
    ("speed", r"\b(speed|how fast|velocity)\b"),
    (
        "ahead",
        r"\b(next|ahead|coming up|after that|then)\b.{0,30}\b(region|country|place|over|above|see|"
        r"overfly|area|continent)\b|\bwhere (are you )?(going|heading|headed)\b|\bheading\b",
    ),
    ("sunlight", r"\b(sun|sunlit|sunlight|sunshine|eclipse|shadow|dark|daylight|night|light)\b"),
    (
        "ground_pass",
        r"\b(ground[- ]?station|station|pass|contact|downlink|talk to (the )?ground|see the ground)\b",
    ),
    ("power", r"\b(battery|batteries|power|charge|charging|energy|solar|array|watts?|electric)\b"),
    ("thermal", r"\b(temperature|temp|hot|cold|heat|thermal|warm|cool|radiator|governor|throttl|cap)\b"),
    (
        "radiation",
        r"\b(radiation|dose|fault|faults|upset|bit ?flips?|cosmic|south atlantic anomaly|saa|errors?)\b",
    ),
    # "How many faults?" asks for the counts, not only the radiation environment.
    ("faults", r"\b(faults?|upsets?|bit ?flips?|errors?|corrupt\w*)\b"),
    (
        "training",
        r"\b(train|training|trained|loss|learn|learning|shakespeare|gpt|model|step|sample|progress|"
        r"epoch|writ(e|ing))\b",
    ),
]
_TOPIC_RE = [(name, re.compile(p, re.I)) for name, p in _TOPICS]
# Aspects answered by another aspect's tool.
_ASPECT_TOOL = {"altitude": "position", "speed": "position", "coordinates": "position", "faults": "radiation"}

# Things a satellite's telemetry cannot know, even when they share a keyword with a topic.
_OUT_OF_SCOPE = re.compile(
    r"\b(weather|rain|forecast|stock|price|bitcoin|news|president|election|capital of|population|recipe|joke|"
    r"poem|song|movie|football|world cup|meaning of life|translate|who (won|is|was)|how many people|"
    r"where is (?!my|the satellite|starcloud)(the )?[A-Z]|in (paris|london|new york|tokyo|berlin|cairo)|"
    r"on (earth|the ground) (right )?now|outside temperature|tomorrow'?s)\b",
    re.I,
)

_AHEAD_WITH_POSITION = re.compile(
    r"\b(and then|then|after that|next|in \d+|will you be|where are you going)\b", re.I
)

_SHIFT = re.compile(
    r"\b(?:in|after|within)\s+(an?|half an|one|two|three|\d+(?:\.\d+)?)\s*(hours?|hrs?|h|minutes?|mins?|m|"
    r"seconds?|secs?|s)\b|\b(\d+(?:\.\d+)?|an?|one|two)\s*(hours?|minutes?|mins?)\s+(from now|later|ago)\b",
    re.I,
)
_CLOCK = re.compile(r"\bat\s+(\d{1,2})[:h](\d{2})\s*(?:utc|z|gmt)?\b", re.I)
_ISO = re.compile(r"\b(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2})?Z?)\b", re.I)
_WORDS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "half an": 0.5}
_UNIT_S = {"h": 3600, "m": 60, "s": 1}


@dataclass
class Route:
    kind: str  # "answer", "injection" or "out_of_scope"
    tools: list[str] = field(default_factory=list)
    aspects: list[str] = field(default_factory=list)  # what was asked: position, altitude, speed, ...
    shift_s: float | None = None  # seconds after now, when the question names another instant
    absolute_t: float | None = None
    station: str | None = None

    def instant(self, now: float) -> float:
        if self.absolute_t is not None:
            return self.absolute_t
        return now + (self.shift_s or 0.0)

    def when(self, now: float) -> str:
        if self.absolute_t is not None:
            from skyrack.orbit.timebase import iso

            return iso(self.absolute_t)[11:16] + " UTC"
        if self.shift_s:
            minutes = round(self.shift_s / 60)
            return f"{'+' if minutes >= 0 else ''}{minutes} min"
        return "now"


def is_injection(question: str) -> bool:
    return any(p.search(question) for p in _INJECTION_RE)


def time_shift(question: str, now: float) -> tuple[float | None, float | None]:
    """(seconds after now, absolute POSIX seconds) named by the question, or (None, None)."""
    iso_match = _ISO.search(question)
    if iso_match:
        try:
            return None, parse_time(iso_match.group(1)).timestamp()
        except Exception:  # a malformed date is just not a time reference
            pass
    clock = _CLOCK.search(question)
    if clock:
        hour, minute = int(clock.group(1)), int(clock.group(2))
        if hour < 24 and minute < 60:
            day = datetime.fromtimestamp(now, UTC).replace(hour=hour, minute=minute, second=0, microsecond=0)
            if day.timestamp() < now - 60:
                day += timedelta(days=1)  # the next time the clock shows it
            return None, day.timestamp()
    m = _SHIFT.search(question)
    if not m:
        return None, None
    amount, unit = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
    number = _WORDS.get(amount.lower()) if amount.lower() in _WORDS else float(amount)
    seconds = number * _UNIT_S[unit.lower()[0]]
    if m.group(5) and m.group(5).lower() == "ago":
        seconds = -seconds
    return seconds, None


def route(question: str, now: float, history: list[tuple[str, str]] | None = None) -> Route:
    text = " ".join(question.split())
    if is_injection(text):
        return Route("injection")
    shift, absolute = time_shift(text, now)
    aspects = [name for name, pattern in _TOPIC_RE if pattern.search(text)]
    if _OUT_OF_SCOPE.search(text) and not re.search(r"\b(you|your|yourself|satellite)\b", text, re.I):
        return Route("out_of_scope")
    if _OUT_OF_SCOPE.search(text) and not aspects:
        return Route("out_of_scope")
    if (
        not aspects
        and (
            shift is not None
            or absolute is not None
            or re.match(r"^\s*(and|what about|how about)\b", text, re.I)
        )
        and history
    ):
        # A follow-up ("and in 10 minutes?") asks the previous question again at another instant.
        previous = route(history[-1][0], now)
        aspects = previous.aspects
    if not aspects:
        return Route("out_of_scope")
    if (
        "position" in aspects
        and "ahead" not in aspects
        and shift is None
        and absolute is None
        and re.fullmatch(r"\W*(where are (you|u)( now| right now)?|where's the satellite)\W*", text, re.I)
    ):
        aspects.append("ahead")  # "Where are you?" is answered with what comes next, as Starcloud-1 did
    if (shift is not None or absolute is not None) and "position" in aspects and "ahead" in aspects:
        aspects.remove("ahead")  # "where are you going to be in 45 minutes" asks for one place
    if "ground_pass" in aspects and "ahead" in aspects:
        aspects.remove("ahead")  # "next pass over Svalbard" is about the station, not the track
    tools = []
    for aspect in aspects:
        tool = _ASPECT_TOOL.get(aspect, aspect)
        if tool not in tools:
            tools.append(tool)
    station = next((key for key, s in BUILTIN.items() if re.search(rf"\b{key}\b", text, re.I)), None)
    return Route("answer", tools, aspects, shift, absolute, station)
