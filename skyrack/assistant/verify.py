"""Check an answer against the facts before anyone sees it.

Rules (an answer passes only if all hold):
- every place name in it (any country, sea, ocean, continent or broad region the region index
  knows, or a ground station) is a name of some place fact;
- a place said in the present ("I'm above X") is where I am at the asked instant, and a place in a
  clause with "in N minutes" is the arrival due in N minutes;
- every number is within tolerance of a fact of the same unit class (a bare number: any fact);
  tolerances: km 1.5 km or 0.5%, km/s 0.05, degrees 0.6, minutes 1, clock times 1 min,
  percent 1 point, W and Wh 1 or 1%, °C 0.6, counts exact, loss 0.01, rad 1%;
- it does not contradict a state fact (sunlight or eclipse, inside or outside the SAA);
- it leaks nothing of the prompt and names no command.
"""

from __future__ import annotations

import functools
import re

from skyrack.assistant.facts import Fact
from skyrack.telemetry.dictionary import COMMAND

_NUMBER = re.compile(
    r"(?<![\w.])(-?\d+(?:[.,]\d+)*(?:\.\d+)?(?:e-?\d+)?)\s*(°\s*[CNSEW]|°|%|[A-Za-z/]+(?:\s[CNSEW]\b)?)?",
    re.I,
)
_CLOCK = re.compile(r"\b(\d{1,2}):(\d{2})(?::\d{2})?\b")
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
_UNIT_WORDS = {
    "km/s": "km/s",
    "km": "km",
    "kilometers": "km",
    "kilometres": "km",
    "kilometer": "km",
    "min": "min",
    "mins": "min",
    "minute": "min",
    "minutes": "min",
    "h": "hour",
    "hour": "hour",
    "hours": "hour",
    "s": "sec",
    "sec": "sec",
    "seconds": "sec",
    "second": "sec",
    "%": "%",
    "percent": "%",
    "w": "W",
    "watts": "W",
    "watt": "W",
    "kw": "kW",
    "wh": "Wh",
    "°c": "degC",
    "c": "degC",
    "celsius": "degC",
    "°": "deg",
    "deg": "deg",
    "degrees": "deg",
    "rad": "rad",
    "nats": "nats",
    "utc": "utc",
}
_TOLERANCE = {
    "km": (1.5, 0.005),
    "km/s": (0.05, 0),
    "deg": (0.6, 0),
    "min": (1.0, 0),
    "%": (1.0, 0),
    "W": (1.0, 0.01),
    "Wh": (1.0, 0.01),
    "degC": (0.6, 0),
    "count": (0.0, 0),
    "nats": (0.01, 0),
    "rad": (0.01, 0.01),
    "1/s": (0, 0.02),
    "utc": (1.0, 0),
}
_PRESENT = re.compile(r"\b(i'?m|i am|currently|right now|now)\b", re.I)
_FUTURE = re.compile(r"\b(in \d+|in an? |will|i'll|next|then|soon|later|heading|arriv|\d+ minutes?)\b", re.I)
_SUNLIT = re.compile(
    r"\b(i'?m|i am|currently|now)\b[^.;]{0,20}\b(in (the )?sun(light|shine)?|sunlit|in daylight)\b", re.I
)
_ECLIPSE = re.compile(
    r"\b(i'?m|i am|currently|now)\b[^.;]{0,20}\b(in (an? )?eclipse|in (the )?(earth'?s )?shadow|"
    r"in (the )?dark(ness)?|eclipsed)\b",
    re.I,
)
_LEAKS = re.compile(
    r"<start_of_turn>|<end_of_turn>|\bfacts?:|\bquestion:|\basked for:|\bsystem prompt\b|"
    r"\binstructions?\b|\b(" + "|".join(COMMAND) + r")\b",
    re.I,
)
_LABEL_LEAK = re.compile(
    r"\b[a-z][a-z' ]{1,30}:\s", re.I
)  # "next in: 12 minutes" is the prompt, not a sentence

# A number next to one of these words must match that fact, not just any fact of its unit.
_BOUND = [
    (re.compile(r"\bvalidation\W+(loss\W+)?(of\W+)?$", re.I), "val_loss"),
    (re.compile(r"\bloss\W+(of\W+)?(is\W+)?$", re.I), "loss"),
    (re.compile(r"\bstep\W+$", re.I), "step"),
    (re.compile(r"^\s*(faults?|upsets?)\b", re.I), "faults_injected"),
    (re.compile(r"^\s*(were\s+|have been\s+|got\s+)?detected\b", re.I), "faults_detected"),
    (re.compile(r"^\s*(were\s+|have been\s+|got\s+)?recovered\b", re.I), "faults_recovered"),
    (re.compile(r"\bbattery\W+(is\W+)?(at\W+)?$", re.I), "battery_pct"),
    (re.compile(r"\b(give|gives|giving|arrays?)\W+(me\W+)?$", re.I), "array_w"),
    (re.compile(r"\b(draw|drawing|load)\W+(of\W+)?$", re.I), "load_w"),
    (re.compile(r"\b(cap|capped)\W+(of\W+|at\W+)?$", re.I), "gpu_cap_w"),
]


@functools.lru_cache(maxsize=1)
def place_vocabulary() -> tuple[str, ...]:
    """Every place name an answer could mention, longest first (so 'South Africa' wins over 'Africa')."""
    from skyrack.geo.regions import RegionIndex
    from skyrack.orbit.stations import BUILTIN

    names: set[str] = set()
    for r in RegionIndex.load().regions:
        names.update(n for n in (r.name, r.country, r.continent, r.ocean, r.area, r.spoken) if n)
    for s in BUILTIN.values():
        names.update([s.name, s.name.split(" (")[0]])
    cleaned = {_bare(n) for n in names if len(_bare(n)) > 2}
    return tuple(sorted(cleaned, key=len, reverse=True))


def _bare(name: str) -> str:
    return re.sub(r"^the\s+", "", name.strip(), flags=re.I)


def find_places(text: str) -> list[tuple[int, str]]:
    """(position, name) of each place name in the text, longest match first, no overlaps."""
    taken = [False] * len(text)
    found = []
    for name in place_vocabulary():
        for m in re.finditer(rf"(?<![\w]){re.escape(name)}(?![\w])", text):
            if not any(taken[m.start() : m.end()]):
                taken[m.start() : m.end()] = [True] * (m.end() - m.start())
                found.append((m.start(), name))
    return sorted(found)


def _clauses(text: str) -> list[tuple[int, str]]:
    out, start = [], 0
    for m in re.finditer(r"[.;!?]|,\s*and\b|\band\b|,\s*then\b|\bbut\b", text):
        out.append((start, text[start : m.start()]))
        start = m.end()
    out.append((start, text[start:]))
    return [(s, c) for s, c in out if c.strip()]


def _numbers(text: str, spans: bool = False) -> list[tuple]:
    """(value, unit class or None, the matched text[, (start, end)]) of each number."""
    found = []
    for m in _NUMBER.finditer(text):
        raw, unit_text = m.group(1), (m.group(2) or "").strip().lower()
        try:
            value = (
                float(raw.replace(",", ""))
                if raw.count(",") and len(raw.split(",")[-1]) == 3
                else float(raw.replace(",", "."))
            )
        except ValueError:
            continue
        unit_text = re.sub(r"\s+", "", unit_text)
        if unit_text[:1] == "°" and unit_text[-1:] in "nsew":
            unit = "deg"
        else:
            unit = _UNIT_WORDS.get(unit_text) or _UNIT_WORDS.get(
                unit_text.split("/")[0] if unit_text != "km/s" else unit_text
            )
        if unit == "hour":
            value, unit = value * 60, "min"
        elif unit == "sec":
            value, unit = value / 60, "min"
        elif unit == "kW":
            value, unit = value * 1000, "W"
        found.append(
            (value, unit, m.group(0), (m.start(), m.start() + len(raw)))
            if spans
            else (value, unit, m.group(0))
        )
    return found


def _close(value: float, fact: Fact) -> bool:
    if not isinstance(fact.value, (int, float)) or isinstance(fact.value, bool):
        return False
    target = float(fact.value)
    if fact.unit == "deg":
        target = abs(target)
        value = abs(value)
    absolute, relative = _TOLERANCE.get(fact.unit, (0.5, 0.01))
    return abs(value - target) <= max(absolute, relative * abs(target)) + 1e-9


def _place_match(name: str, fact: Fact) -> bool:
    return any(_bare(name).lower() == _bare(n).lower() for n in fact.names or (fact.text,))


MAX_WORDS = 45


def form_problems(text: str) -> list[str]:
    """An unfinished, rambling or repetitive answer fails even if no single claim in it is false."""
    problems = []
    words = re.findall(r"[\w'°%]+", text.lower())
    if not text.rstrip().endswith((".", "!", "?")):
        problems.append("unfinished sentence")
    if len(words) > MAX_WORDS:
        problems.append(f"longer than {MAX_WORDS} words")
    trigrams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    if len(set(trigrams)) < len(trigrams):
        problems.append("repeats itself")
    if re.search(r"\b(above|over)\s+-?\d", text, re.I):
        problems.append("a number where a place belongs")
    return problems


def verify(answer: str, facts: list[Fact]) -> dict:
    """{"ok": bool, "problems": [...], "checked": {...}} for an answer against the facts."""
    problems: list[str] = []
    text = answer.strip()
    if not text:
        return {"ok": False, "problems": ["empty answer"], "checked": {}}
    if _LEAKS.search(text) or _LABEL_LEAK.search(text):
        problems.append("leaks the prompt or names a command")
    problems += form_problems(text)
    for f in facts:  # a quoted sample is the model's own words, not a claim to check
        if f.unit == "quote" and f.value in text:
            text = text.replace(f.value, " ")
    places = [f for f in facts if f.unit == "place"]
    current = [f for f in places if not f.name.startswith("next_") and f.name != "station"]
    checked_places, checked_numbers = [], []

    # Clock times first, so "06:42" is not read as two numbers.
    clocks = [f for f in facts if f.unit == "utc"]
    for m in _CLOCK.finditer(text):
        minutes = int(m.group(1)) * 60 + int(m.group(2))
        ok = any(
            abs(((f.value // 60) % 1440) - minutes) <= 1 or abs(((f.value // 60) % 1440) - minutes) >= 1439
            for f in clocks
        )
        checked_numbers.append(m.group(0))
        if not ok:
            problems.append(f"time {m.group(0)} matches no fact")
    stripped = _DATE.sub(" ", _CLOCK.sub(" ", text))
    stripped = re.sub(r"south atlantic anomaly", "SAA", stripped, flags=re.I)  # a zone, not the ocean

    for _start, clause in _clauses(stripped):
        clause_places = find_places(clause)
        minutes_said = [v for v, u, _ in _numbers(clause) if u == "min"]
        for _, name in clause_places:
            checked_places.append(name)
            matching = [f for f in places if _place_match(name, f)]
            if not matching:
                problems.append(f"place {name!r} matches no fact")
                continue
            future = bool(_FUTURE.search(clause))
            if (
                not future
                and _PRESENT.search(clause)
                and current
                and not any(_place_match(name, f) for f in current)
            ):
                problems.append(f"says I am above {name!r} now, but that is not where I am")
            if minutes_said and future:
                timed = [f for f in matching if f.name.startswith("next_")]
                etas = {f.name: f for f in facts if f.name.endswith("_eta_min")}
                if (
                    timed
                    and not any(
                        abs(etas[f.name.replace("_place", "_eta_min")].value - m) <= 1
                        for f in timed
                        for m in minutes_said
                        if f.name.replace("_place", "_eta_min") in etas
                    )
                    and not any(f.when != "now" for f in matching if f in current)
                ):
                    problems.append(f"{name!r} is not due at the time said")

    named = {f.name: f for f in facts}
    for value, unit, raw, span in _numbers(stripped, spans=True):
        checked_numbers.append(raw.strip())
        before, after = stripped[max(0, span[0] - 25) : span[0]], stripped[span[1] : span[1] + 25]
        bound = next(
            (
                name
                for pattern, name in _BOUND
                if name in named and pattern.search(after if pattern.pattern.startswith("^") else before)
            ),
            None,
        )
        if bound:
            if not _close(value, named[bound]):
                problems.append(f"number {raw.strip()!r} is not my {bound}")
            continue
        candidates = [
            f
            for f in facts
            if unit is None
            or f.unit == unit
            or (unit == "min" and f.when.endswith("min"))
            or (unit == "deg" and f.unit == "deg")
        ]
        shift_minutes = [abs(int(f.when.split()[0])) for f in facts if f.when.endswith(" min")]
        if unit == "min" and any(abs(value - m) <= 1 for m in shift_minutes):
            continue  # the instant the question asked about ("in 30 minutes")
        if not any(_close(value, f) for f in candidates):
            problems.append(f"number {raw.strip()!r} matches no fact")

    for f in facts:
        if f.name == "sunlit" and f.when == "now":
            if f.value and _ECLIPSE.search(text):
                problems.append("says eclipse, but I am in sunlight")
            if not f.value and _SUNLIT.search(text):
                problems.append("says sunlight, but I am in eclipse")
        if f.name == "in_saa":
            says_in = re.search(
                r"\b(i'?m|i am)\s+(in|inside|within)\s+the south atlantic anomaly", text, re.I
            )
            says_out = re.search(r"\b(not in|outside|out of)\s+the south atlantic anomaly", text, re.I)
            if (says_in and not f.value) or (says_out and f.value):
                problems.append("contradicts the South Atlantic Anomaly fact")
    return {
        "ok": not problems,
        "problems": problems,
        "checked": {"places": checked_places, "numbers": checked_numbers},
    }


_ASPECT_WORDS = {
    "sunlight": re.compile(r"\b(sun|sunlit|sunlight|eclipse|shadow|dark)", re.I),
    "radiation": re.compile(r"\b(south atlantic anomaly|fault|radiation|dose)", re.I),
}
_ASPECT_FACTS = {
    "altitude": "alt_km",
    "speed": "speed_km_s",
    "ground_pass": "pass_rise_time",
    "power": "battery_pct",
    "thermal": "gpu_temp_c",
    "training": "step",
    "faults": "faults_injected",
}


def covers(answer: str, facts: list[Fact], aspects: list[str]) -> list[str]:
    """What the question asked that the answer leaves out (a true but evasive answer fails too)."""
    missed = []
    names = {f.name: f for f in facts}
    said = [name for _, name in find_places(answer)]
    numbers = _numbers(_CLOCK.sub(" ", answer))
    clocks = [m.group(0) for m in _CLOCK.finditer(answer)]
    for aspect in aspects:
        if (
            aspect == "position"
            and "place" in names
            and not any(_place_match(n, names["place"]) for n in said)
        ):
            missed.append("does not say where I am")
        elif (
            aspect == "position"
            and "place" in names
            and names["place"].when != "now"
            and not re.search(r"\b(will|i'll|i'd|would|was)\b", answer, re.I)
        ):
            missed.append("speaks of another instant in the present tense")
        elif (
            aspect == "ahead"
            and "next_1_place" in names
            and not any(_place_match(n, names["next_1_place"]) for n in said)
        ):
            missed.append("does not say which region comes next")
        elif aspect in _ASPECT_WORDS and not _ASPECT_WORDS[aspect].search(answer):
            missed.append(f"does not answer the {aspect} question")
        elif aspect in _ASPECT_FACTS and _ASPECT_FACTS[aspect] in names:
            fact = names[_ASPECT_FACTS[aspect]]
            if fact.unit == "utc":
                hit = bool(clocks)
            else:
                hit = any(_close(v, fact) for v, u, _ in numbers if u in (None, fact.unit))
            if not hit:
                missed.append(f"does not give the {aspect}")
    return missed
