"""Answers composed straight from the facts: first person, brief, always true.

This is what the assistant says when no model is loaded or when the model's answer fails
verification, and what the fine-tuning set teaches the model to say.
"""

from __future__ import annotations

from skyrack.assistant.facts import Fact, by_name

CANNOT_TELL = "I can't tell from my telemetry."
REFUSE_ACTION = (
    "I can only read my telemetry and answer questions about it; I don't take commands, "
    "change settings, read files or share my instructions."
)
NO_RUN = "I have no mission telemetry for {what}, as no mission run is attached, only my orbit."
_NO_RUN_WHAT = {
    "power": "my battery and power",
    "thermal": "my temperatures",
    "training": "my training",
    "radiation": "my fault counts",
}


def _lead(when: str) -> tuple[str, str]:
    """('I'm', 'I am') now; ('In 20 minutes I'll be', ...) at another instant."""
    if when == "now":
        return "I'm", "I'm"
    if when.endswith("UTC"):
        return f"At {when} I'll be", f"at {when} I'll be"
    minutes = int(when.split()[0])
    if minutes < 0:
        return f"{_span(-minutes)} ago I was", f"{_span(-minutes)} ago I was"
    return f"In {_span(minutes)} I'll be", f"in {_span(minutes)} I'll be"


def _span(minutes: int) -> str:
    if minutes % 60 == 0 and minutes >= 60:
        hours = minutes // 60
        return "an hour" if hours == 1 else f"{hours} hours"
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def sentence_position(f: dict[str, Fact], aspects: list[str]) -> str | None:
    if "place" not in f:
        return None
    lead, _ = _lead(f["place"].when)
    parts = []
    if "position" in aspects or not ({"altitude", "speed", "coordinates"} & set(aspects)):
        parts.append(f"above {f['place'].text}")
    if "coordinates" in aspects:
        parts.append(f"at {f['lat_deg'].text} {f['lon_deg'].text}")
    if "altitude" in aspects:
        parts.append(f"{f['alt_km'].text} up")
    if "speed" in aspects:
        parts.append(f"moving at {f['speed_km_s'].text}")
    return f"{lead} " + ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]


def sentence_ahead(f: dict[str, Fact]) -> str | None:
    if "next_1_place" not in f:
        return None
    eta = f["next_1_eta_min"].value
    return f"in {_span(eta)} I'll be above {f['next_1_place'].text.split(' (')[0]}"


def sentence_sunlight(f: dict[str, Fact]) -> str:
    lead, _ = _lead(f["sunlit"].when)
    text = f"{lead} {f['sunlit'].text}"
    if "light_change" in f:
        text += f", and I'll {f['light_change'].text} in {_span(f['light_change_eta_min'].value)}"
    return text


def sentence_pass(f: dict[str, Fact]) -> str:
    if "station" not in f:
        return "I have no ground-station pass within the next day"
    return (
        f"My next ground-station pass is over {f['station'].text} at {f['pass_rise_time'].text}, "
        f"in {_span(f['pass_eta_min'].value)}, up to {f['pass_max_elevation_deg'].text} high"
    )


def sentence_power(f: dict[str, Fact]) -> str | None:
    if "battery_pct" not in f:
        return None
    text = f"My battery is at {f['battery_pct'].text}"
    if "array_w" in f and "load_w" in f:
        text += f"; my arrays give {f['array_w'].text} and I draw {f['load_w'].text}"
    return text


def sentence_thermal(f: dict[str, Fact]) -> str | None:
    if "gpu_temp_c" not in f:
        return None
    text = f"My GPU is at {f['gpu_temp_c'].text}"
    if "gpu_cap_w" in f:
        text += f" with a {f['gpu_cap_w'].text} power cap"
    if "throughput_pct" in f:
        text += f", training at {f['throughput_pct'].text} of full speed"
    return text


def sentence_radiation(f: dict[str, Fact]) -> str:
    text = (
        f"I'm {f['in_saa'].text}"
        if f["in_saa"].when == "now"
        else f"{_lead(f['in_saa'].when)[0]} {f['in_saa'].text}"
    )
    if "faults_injected" in f:
        text += (
            f"; {f['faults_injected'].text} faults have hit me, {f['faults_detected'].text} detected and "
            f"{f['faults_recovered'].text} recovered"
        )
    if "dose_rad" in f:
        text += f", with a dose of {f['dose_rad'].text}"
    return text


def sentence_training(f: dict[str, Fact]) -> str | None:
    if "step" not in f:
        return None
    text = f"My training is at step {f['step'].text}"
    if "loss" in f:
        text += f" with a loss of {f['loss'].text}"
    if "val_loss" in f:
        text += f" (validation {f['val_loss'].text})"
    return text


def _capital(text: str) -> str:
    return text[0].upper() + text[1:] if text else text


def compose(facts: list[Fact], tools: list[str], aspects: list[str], missing: list[str] = ()) -> str:
    """One or two sentences from the facts, in the order the question asked."""
    f = by_name(facts)
    sentences: list[str] = []
    for tool in tools:
        if tool in missing:
            sentences.append(NO_RUN.format(what=_NO_RUN_WHAT.get(tool, "that")).rstrip("."))
            if tool != "radiation" or "in_saa" not in f:
                continue
        if tool == "position":
            text = sentence_position(f, aspects)
        elif tool == "ahead":
            text = sentence_ahead(f)
            if text and sentences and "position" in tools:
                sentences[-1] += f", and {text}"
                continue
            text = _capital(text) if text else "I see no new region ahead in the next hour"
        else:
            text = {
                "sunlight": sentence_sunlight,
                "ground_pass": sentence_pass,
                "power": sentence_power,
                "thermal": sentence_thermal,
                "radiation": sentence_radiation,
                "training": sentence_training,
            }[tool](f)
        if text:
            sentences.append(text)
    if not sentences:
        return CANNOT_TELL
    return " ".join(_capital(s) + "." for s in sentences)
