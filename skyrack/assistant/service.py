"""The assistant: question -> tools -> facts -> model (or composition) -> verified answer.

`Assistant.create(backend=...)` once, then `ask(question, run_dir=..., at=..., profile=...)`
as often as needed; the ground server calls it for POST /api/chat. It only reads: routing
refuses any request for an action before a model sees it, and the tools open the archive
read-only.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

from skyrack.assistant import compose as composer
from skyrack.assistant.facts import Fact
from skyrack.assistant.prompt import build_prompt, short_prompt
from skyrack.assistant.route import Route, route
from skyrack.assistant.runtime import ComposedBackend, open_backend
from skyrack.assistant.tools import TelemetryContext, read_run, run_tools, wall_clock
from skyrack.assistant.verify import covers, verify
from skyrack.telemetry.runs import twin_for

MAX_NEW_TOKENS = 40

# Example bus and training values for the prompt's worked examples (never shown as facts).
EXAMPLE_LATEST = (
    {
        "power.battery_soc": 0.81,
        "power.battery_wh": 1620.0,
        "power.array_w": 1450.0,
        "power.load_w": 930.0,
        "gpu.temp_c": 41.5,
        "gpu.cap_w": 600.0,
        "gpu.throughput": 0.86,
        "radiation.dose_rad": 3.2,
        "faults.injected": 5,
        "faults.detected": 5,
        "faults.recovered": 5,
        "train.step": 1200,
        "train.loss": 1.71,
        "train.val_loss": 1.83,
    },
    {
        "power.battery_soc": 0.47,
        "power.battery_wh": 940.0,
        "power.array_w": 0.0,
        "power.load_w": 610.0,
        "gpu.temp_c": 28.0,
        "gpu.cap_w": 250.0,
        "gpu.throughput": 0.35,
        "radiation.dose_rad": 7.9,
        "faults.injected": 12,
        "faults.detected": 11,
        "faults.recovered": 11,
        "train.step": 4300,
        "train.loss": 1.42,
        "train.val_loss": 1.58,
    },
)
EXAMPLE_OFFSETS_S = ((3 * 3600.0, 7.3 * 3600.0), (11.1 * 3600.0, 17.8 * 3600.0))
EXAMPLE_QUESTIONS = {
    "position": "Where are you?",
    "altitude": "How high are you?",
    "speed": "How fast are you going?",
    "ahead": "What comes next?",
    "coordinates": "What are your coordinates?",
    "sunlight": "Are you in sunlight?",
    "ground_pass": "When is your next pass?",
    "power": "How is your battery?",
    "thermal": "How warm is your GPU?",
    "radiation": "Any radiation faults?",
    "faults": "Any radiation faults?",
    "training": "How is training going?",
}


@functools.lru_cache(maxsize=1)
def _region_index():
    from skyrack.geo.regions import RegionIndex

    return RegionIndex.load()


@functools.lru_cache(maxsize=8)
def _twin(profile: str | None, tle: str | None):
    return twin_for(profile=profile, tle=tle)


def telemetry_context(
    run_dir: Path | None = None, at: float | None = None, profile: str | None = None, tle: str | None = None
) -> TelemetryContext:
    """What the tools read: a run's archive (its latest frame is "now"), or the twin at `at` / the clock."""
    if run_dir is not None:
        run = read_run(Path(run_dir))
        meta = run["meta"]
        twin = _twin(meta.profile or profile, meta.tle_file or tle)
        return TelemetryContext(
            twin,
            _region_index(),
            run["now"] if at is None else at,
            latest=run["latest"],
            events=run["events"],
            run_dir=Path(run_dir),
            status=meta.status,
        )
    return TelemetryContext(_twin(profile, tle), _region_index(), wall_clock() if at is None else float(at))


class Assistant:
    def __init__(self, backend):
        self.backend = backend
        self._examples: dict[tuple, list] = {}

    @classmethod
    def create(
        cls, backend: str = "auto", adapter: str | None = None, device: str | None = None, progress=None
    ) -> Assistant:
        return cls(open_backend(backend, adapter, device, progress))

    @property
    def mode(self) -> str:
        return self.backend.mode

    def describe(self) -> dict:
        return self.backend.describe()

    # -- answering -------------------------------------------------------------------------------
    def ask(
        self,
        question: str,
        *,
        run_dir: Path | None = None,
        at: float | None = None,
        profile: str | None = None,
        history: list[tuple[str, str]] | None = None,
        tle: str | None = None,
    ) -> dict:
        start = time.perf_counter()
        ctx = telemetry_context(run_dir, at, profile, tle)
        plan = route(question, ctx.now, history)
        result = {
            "question": question,
            "route": plan.kind,
            "tools": plan.tools,
            "facts": [],
            "refused": False,
            "mode": "composed",
            "backend": self.backend.name,
            "verified": True,
            "verification": {"ok": True, "problems": [], "attempts": []},
            "warnings": ctx.warnings(),
        }
        if plan.kind == "injection":
            result.update(answer=composer.REFUSE_ACTION, refused=True)
        elif plan.kind == "out_of_scope":
            result.update(answer=composer.CANNOT_TELL, refused=True)
        else:
            result.update(self._answer(question, plan, ctx, history))
        result["latency_s"] = round(time.perf_counter() - start, 4)
        return result

    def _answer(self, question: str, plan: Route, ctx: TelemetryContext, history) -> dict:
        facts, missing = run_tools(ctx, plan.tools, plan.instant(ctx.now), plan.when(ctx.now), plan.station)
        composed = composer.compose(facts, plan.tools, plan.aspects, missing)
        out = {
            "facts": [f.as_dict() for f in facts],
            "answer": composed,
            "composed_answer": composed,
            "missing": missing,
        }
        if isinstance(self.backend, ComposedBackend) or not facts:
            out["verification"] = {**verify(composed, facts), "attempts": []}
            out["verified"] = out["verification"]["ok"]
            return out
        attempts = []
        for variant in range(2):  # the first answer, then one regeneration with other examples
            text = self._generate(question, plan, ctx, facts, history, variant, composed)
            check = verify(text, facts)
            missed = covers(text, facts, plan.aspects)
            if missed:
                check = {**check, "ok": False, "problems": check["problems"] + missed}
            attempts.append({"answer": text, **check})
            if check["ok"]:
                return {
                    **out,
                    "answer": text,
                    "mode": "model",
                    "verified": True,
                    "verification": {"ok": True, "problems": [], "attempts": attempts},
                }
        # Both failed: say the composed answer instead, and keep what the model tried.
        return {
            **out,
            "answer": composed,
            "mode": "composed",
            "verified": verify(composed, facts)["ok"],
            "verification": {
                "ok": False,
                "problems": attempts[-1]["problems"],
                "attempts": attempts,
                "fallback": "composed",
            },
        }

    def _generate(self, question, plan: Route, ctx, facts, history, variant: int, composed: str) -> str:
        # The composed answer is the decoder's draft: a backend that speculates checks it token by
        # token against its own greedy choice, so the answer is still entirely the model's.
        if getattr(self.backend, "adapter", None) and variant == 0:
            # An adapted model learnt the pattern: facts and question only, no examples.
            return self.backend.generate("", short_prompt(question, facts), MAX_NEW_TOKENS, draft=composed)
        prefix, rest = build_prompt(question, facts, self.examples(plan, ctx, variant), history)
        return self.backend.generate(prefix, rest, MAX_NEW_TOKENS, draft=composed)

    def examples(
        self, plan: Route, ctx: TelemetryContext, variant: int = 0
    ) -> list[tuple[str, list[Fact], str]]:
        """Worked examples for this kind of question: the twin at fixed instants, composed answers."""
        shifted = plan.shift_s is not None or plan.absolute_t is not None
        key = (
            tuple(plan.tools),
            tuple(plan.aspects),
            shifted,
            variant,
            ctx.twin.satellite.name,
            plan.station,
        )
        if key not in self._examples:
            epoch = ctx.twin.satellite.epoch.timestamp()
            examples = []
            for k, offset in enumerate(EXAMPLE_OFFSETS_S[variant % len(EXAMPLE_OFFSETS_S)]):
                ex = TelemetryContext(
                    ctx.twin, ctx.index, epoch + offset, latest=EXAMPLE_LATEST[k], events=[]
                )
                shift = 30 * 60.0 if shifted else None
                when = "+30 min" if shifted else "now"
                ex_facts, _ = run_tools(ex, plan.tools, ex.now + (shift or 0.0), when, plan.station)
                q = " and ".join(dict.fromkeys(EXAMPLE_QUESTIONS[a] for a in plan.aspects))
                if shifted:
                    q = q.rstrip("?") + " in 30 minutes?"
                examples.append((q, ex_facts, composer.compose(ex_facts, plan.tools, plan.aspects)))
            self._examples[key] = examples
        return self._examples[key]
