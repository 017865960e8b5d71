"""The prompt the model sees: Gemma's turn format, the facts, and worked examples.

Gemma 3's GGUF carries no chat template, so the turns are written out:
`<start_of_turn>user\\n...<end_of_turn>\\n<start_of_turn>model\\n`. A 270M base model copies a
pattern far better than it follows an instruction, so the prompt is mostly examples: the same
kind of question at other instants, with the facts in the same layout and the composed answer as
the reply. Examples are drawn from the twin at fixed instants, so the prompt for one kind of
question is always the same text and its key/value cache can be reused.
"""

from __future__ import annotations

from skyrack.assistant.facts import Fact

TURN = "<start_of_turn>{role}\n{text}<end_of_turn>\n"
INSTRUCTION = (
    "You are the satellite. Answer in one or two sentences, in the first person, using only the facts."
)

_LABELS = {
    "place": "I'm above",
    "lat_deg": "latitude",
    "lon_deg": "longitude",
    "alt_km": "altitude",
    "speed_km_s": "speed",
    "time": "time",
    "next_1_place": "next I'll be above",
    "next_1_eta_min": "next in",
    "sunlit": "light",
    "light_change": "next change",
    "light_change_eta_min": "change in",
    "station": "next pass over",
    "pass_rise_time": "pass starts",
    "pass_eta_min": "pass in",
    "pass_max_elevation_deg": "pass max elevation",
    "battery_pct": "battery",
    "array_w": "solar arrays",
    "load_w": "load",
    "gpu_temp_c": "GPU temperature",
    "gpu_cap_w": "GPU power cap",
    "throughput_pct": "training speed",
    "in_saa": "radiation zone",
    "faults_injected": "faults",
    "faults_detected": "detected",
    "faults_recovered": "recovered",
    "dose_rad": "dose",
    "step": "training step",
    "loss": "loss",
    "val_loss": "validation loss",
}


def render_facts(facts: list[Fact]) -> str:
    """One fact per line, as 'label: text', only those a sentence would use."""
    lines = [f"{_LABELS[f.name]}: {f.text}" for f in facts if f.name in _LABELS]
    when = next((f.when for f in facts if f.when != "now"), None)
    if when:
        lines.insert(0, f"asked for: {when}")
    return "\n".join(lines)


def user_turn(question: str, facts: list[Fact]) -> str:
    return TURN.format(role="user", text=f"Facts:\n{render_facts(facts)}\nQuestion: {question.strip()}")


def build_prompt(
    question: str,
    facts: list[Fact],
    examples: list[tuple[str, list[Fact], str]],
    history: list[tuple[str, str]] | None = None,
) -> tuple[str, str]:
    """(prefix, rest): the reusable part (instruction + examples) and this question's part."""
    prefix = TURN.format(role="user", text=INSTRUCTION) + TURN.format(role="model", text="Understood.")
    for q, f, a in examples:
        prefix += user_turn(q, f) + TURN.format(role="model", text=a)
    rest = ""
    for q, a in (history or [])[-1:]:
        rest += TURN.format(role="user", text=q.strip()) + TURN.format(role="model", text=a.strip())
    rest += user_turn(question, facts) + "<start_of_turn>model\n"
    return prefix, rest


def short_prompt(question: str, facts: list[Fact]) -> str:
    """The prompt a fine-tuned model gets: no examples, it has learnt the pattern."""
    return user_turn(question, facts) + "<start_of_turn>model\n"
