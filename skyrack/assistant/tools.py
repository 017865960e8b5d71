"""Read-only telemetry tools: what the assistant may know, as facts.

The orbit tools ask the orbit twin (through `where_report`, the same report `skyrack where`
prints) at any instant; the bus, thermal, radiation and training tools read the latest frame of
a mission run's archive, opened read-only. Without a run they say so instead of guessing. Each
tool's description is built from the telemetry dictionary's channels, so names and units are
declared once. Nothing here writes, queues a command or opens a file other than the archive.
"""

from __future__ import annotations

import time as _time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from skyrack.assistant.facts import Fact
from skyrack.errors import UserError
from skyrack.orbit.passes import find_passes
from skyrack.orbit.stations import BUILTIN
from skyrack.orbit.timebase import iso
from skyrack.orbit.where import where_report
from skyrack.telemetry.dictionary import CHANNEL
from skyrack.telemetry.runs import ARCHIVE_NAME, RunDir, RunMeta

PASS_HORIZON_S = 24 * 3600.0
MIN_PASS_ELEVATION_DEG = 10.0


class TelemetryContext:
    """The satellite as the tools see it: the orbit twin, the region index, the instant called
    "now" (the run's latest frame, or `at`, or the wall clock) and, with a run, its archive."""

    def __init__(
        self,
        twin,
        index,
        now: float,
        *,
        latest: dict | None = None,
        events: list | None = None,
        run_dir: Path | None = None,
        status: str | None = None,
    ):
        self.twin, self.index, self.now = twin, index, now
        self.latest = latest  # channel -> value, or None without a run
        self.events = events or []
        self.run_dir = run_dir
        self.status = status
        self._where: dict[float, dict] = {}

    @property
    def has_run(self) -> bool:
        return self.latest is not None

    def where(self, t: float) -> dict:
        if t not in self._where:
            self._where[t] = where_report(self.twin, t, self.index)
        return self._where[t]

    def warnings(self) -> list[str]:
        stale = self.twin.staleness_warning(self.now)
        return [stale] if stale else []


def read_run(run_dir: Path) -> dict:
    """Latest channel values, recent events and meta of a run, read-only."""
    from skyrack.telemetry.archive import Archive

    run = RunDir(Path(run_dir))
    if not run.has_archive():
        raise UserError(f"{run_dir} is not a mission run: no {ARCHIVE_NAME}")
    with Archive(run.archive, readonly=True) as archive:
        latest = archive.latest()
        last = archive.last_frame()
        meta = RunMeta.from_archive(archive)
        events = archive.events(limit=None)[-200:]
    now = last[1] if last else meta.start_t
    if now is None:
        raise UserError(f"run {run_dir} has no telemetry frame yet")
    return {
        "latest": {name: value for name, (_, _, value) in latest.items()},
        "events": events,
        "meta": meta,
        "now": float(now),
    }


# -- tools ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tool:
    name: str
    summary: str
    channels: tuple[str, ...]
    run: Callable[[TelemetryContext, float, str], list[Fact]]
    needs_run: bool = False

    @property
    def description(self) -> str:
        parts = [f"{c} [{CHANNEL[c].unit or 'text'}]: {CHANNEL[c].description}" for c in self.channels]
        return f"{self.summary}. " + "; ".join(parts)


def _place_names(region: dict) -> tuple[str, ...]:
    names = [
        region["name"],
        region["spoken"],
        region.get("country"),
        region.get("continent"),
        region.get("ocean"),
        region.get("area"),
    ]
    return tuple(dict.fromkeys(n for n in names if n))


def _clock(t: float) -> str:
    return iso(t)[11:16] + " UTC"


def position(ctx: TelemetryContext, t: float, when: str) -> list[Fact]:
    r = ctx.where(t)
    lat, lon = r["lat_deg"], r["lon_deg"]
    facts = [
        Fact(
            "place",
            r["region"]["name"],
            "place",
            r["region"]["spoken"],
            "position",
            "orbit.region",
            when,
            _place_names(r["region"]),
        ),
        Fact(
            "area",
            r["region"]["area"],
            "place",
            r["region"]["area"],
            "position",
            "orbit.area",
            when,
            (r["region"]["area"],),
        ),
        Fact(
            "lat_deg",
            lat,
            "deg",
            f"{abs(lat):.1f}°{'N' if lat >= 0 else 'S'}",
            "position",
            "orbit.lat_deg",
            when,
        ),
        Fact(
            "lon_deg",
            lon,
            "deg",
            f"{abs(lon):.1f}°{'E' if lon >= 0 else 'W'}",
            "position",
            "orbit.lon_deg",
            when,
        ),
        Fact("alt_km", r["alt_km"], "km", f"{r['alt_km']:.0f} km", "position", "orbit.alt_km", when),
        Fact(
            "speed_km_s",
            r["speed_km_s"],
            "km/s",
            f"{r['speed_km_s']:.1f} km/s",
            "position",
            "orbit.speed_km_s",
            when,
        ),
    ]
    if when != "now":
        facts.append(Fact("time", t, "utc", _clock(t), "position", None, when))
    return facts


def ahead(ctx: TelemetryContext, t: float, when: str) -> list[Fact]:
    facts = []
    for i, n in enumerate(ctx.where(t)["next"][:2], 1):
        names = tuple(x for x in (n["area"], n["detail"]) if x)
        minutes = max(1, round(n["eta_s"] / 60))
        facts += [
            Fact(f"next_{i}_place", n["area"], "place", n["region"], "ahead", "orbit.area", when, names),
            Fact(f"next_{i}_eta_min", minutes, "min", f"{minutes} minutes", "ahead", None, when),
            Fact(f"next_{i}_time", t + n["eta_s"], "utc", _clock(t + n["eta_s"]), "ahead", None, when),
        ]
    return facts


def sunlight(ctx: TelemetryContext, t: float, when: str) -> list[Fact]:
    r = ctx.where(t)
    fraction = r["sunlit_fraction"]
    state = "in sunlight" if fraction >= 0.5 else "in eclipse"
    facts = [
        Fact("sunlit", fraction >= 0.5, "state", state, "sunlight", "orbit.sunlit", when),
        Fact(
            "sunlit_pct",
            round(100 * fraction),
            "%",
            f"{100 * fraction:.0f}% of the Sun",
            "sunlight",
            "orbit.sunlit",
            when,
        ),
        Fact("beta_deg", r["beta_deg"], "deg", f"{r['beta_deg']:.0f}°", "sunlight", "orbit.beta_deg", when),
    ]
    change = r["next_light_change"]
    if change:
        minutes = max(1, round(change["eta_s"] / 60))
        word = "eclipse" if change["event"] == "eclipse entry" else "sunlight"
        facts += [
            Fact(
                "light_change",
                change["event"],
                "text",
                f"enter {word}" if word == "eclipse" else "come back into sunlight",
                "sunlight",
                None,
                when,
            ),
            Fact("light_change_eta_min", minutes, "min", f"{minutes} minutes", "sunlight", None, when),
            Fact(
                "light_change_time",
                t + change["eta_s"],
                "utc",
                _clock(t + change["eta_s"]),
                "sunlight",
                None,
                when,
            ),
        ]
    return facts


def ground_pass(ctx: TelemetryContext, t: float, when: str, station: str | None = None) -> list[Fact]:
    stations = [BUILTIN[station]] if station else list(BUILTIN.values())
    best = None
    for s in stations:
        found = find_passes(ctx.twin, s, t, t + PASS_HORIZON_S, MIN_PASS_ELEVATION_DEG)
        if found and (best is None or found[0].rise_s < best[1].rise_s):
            best = (s, found[0])
    if best is None:
        return [
            Fact(
                "pass", None, "text", "no ground-station pass within the next day", "ground_pass", None, when
            )
        ]
    s, p = best
    short = s.name.split(" (")[0]
    names = tuple(dict.fromkeys([s.name, short, *s.name.replace(")", "").split(" (")]))
    minutes = max(0, round((p.rise_s - t) / 60))
    return [
        Fact("station", s.name, "place", short, "ground_pass", None, when, names),
        Fact("pass_rise_time", p.rise_s, "utc", _clock(p.rise_s), "ground_pass", None, when),
        Fact("pass_eta_min", minutes, "min", f"{minutes} minutes", "ground_pass", None, when),
        Fact(
            "pass_max_elevation_deg",
            round(p.max_elevation_deg),
            "deg",
            f"{p.max_elevation_deg:.0f}°",
            "ground_pass",
            None,
            when,
        ),
        Fact(
            "pass_duration_min",
            round(p.duration_s / 60),
            "min",
            f"{p.duration_s / 60:.0f} minutes",
            "ground_pass",
            None,
            when,
        ),
    ]


def _channel(
    ctx: TelemetryContext,
    tool: str,
    name: str,
    channel: str,
    scale: float = 1.0,
    unit: str | None = None,
    digits: int = 0,
) -> Fact | None:
    value = ctx.latest.get(channel)
    if value is None:
        return None
    value = round(float(value) * scale, digits) if digits else round(float(value) * scale)
    unit = unit or CHANNEL[channel].unit
    shown = {"degC": "°C", "count": "", "1": ""}.get(unit, unit)
    text = f"{value:g}{' ' if shown and shown not in ('%', '°C') else ''}{shown}"
    return Fact(name, value, unit, text, tool, channel)


def _present(facts) -> list[Fact]:
    return [f for f in facts if f is not None]


def power(ctx: TelemetryContext, t: float, when: str) -> list[Fact]:
    return _present(
        [
            _channel(ctx, "power", "battery_pct", "power.battery_soc", 100, "%"),
            _channel(ctx, "power", "battery_wh", "power.battery_wh"),
            _channel(ctx, "power", "array_w", "power.array_w"),
            _channel(ctx, "power", "load_w", "power.load_w"),
        ]
    )


def _last_event(ctx: TelemetryContext, name: str) -> dict | None:
    found = [e for e in ctx.events if e["name"] == name]
    return found[-1] if found else None


def thermal(ctx: TelemetryContext, t: float, when: str) -> list[Fact]:
    facts = _present(
        [
            _channel(ctx, "thermal", "gpu_temp_c", "gpu.temp_c"),
            _channel(ctx, "thermal", "gpu_cap_w", "gpu.cap_w"),
            _channel(ctx, "thermal", "throughput_pct", "gpu.throughput", 100, "%"),
        ]
    )
    event = _last_event(ctx, "governor")
    if event:
        facts.append(Fact("governor", event["data"].get("action", ""), "text", event["message"], "thermal"))
    return facts


def radiation(ctx: TelemetryContext, t: float, when: str) -> list[Fact]:
    in_saa = ctx.where(t)["in_saa"]
    facts = [
        Fact(
            "in_saa",
            in_saa,
            "state",
            "inside the South Atlantic Anomaly" if in_saa else "outside the South Atlantic Anomaly",
            "radiation",
            "orbit.in_saa",
            when,
            ("South Atlantic Anomaly",),
        )
    ]
    if ctx.has_run:
        facts += _present(
            [
                _channel(ctx, "radiation", "dose_rad", "radiation.dose_rad", digits=2),
                _channel(ctx, "radiation", "faults_injected", "faults.injected"),
                _channel(ctx, "radiation", "faults_detected", "faults.detected"),
                _channel(ctx, "radiation", "faults_recovered", "faults.recovered"),
            ]
        )
    return facts


def training(ctx: TelemetryContext, t: float, when: str) -> list[Fact]:
    facts = _present(
        [
            _channel(ctx, "training", "step", "train.step"),
            _channel(ctx, "training", "loss", "train.loss", digits=2),
            _channel(ctx, "training", "val_loss", "train.val_loss", digits=2),
        ]
    )
    if ctx.status:
        facts.append(Fact("run_status", ctx.status, "text", ctx.status, "training"))
    sample = _latest_sample(ctx.run_dir)
    if sample:
        facts.append(Fact("sample", sample, "quote", sample, "training"))
    return facts


def _latest_sample(run_dir: Path | None) -> str | None:
    if run_dir is None:
        return None
    try:
        text = RunDir(Path(run_dir)).samples.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:120] if lines else None


TOOLS: dict[str, Tool] = {
    t.name: t
    for t in (
        Tool(
            "position",
            "where I am: the country or sea beneath, latitude, longitude, altitude, speed",
            (
                "orbit.region",
                "orbit.area",
                "orbit.lat_deg",
                "orbit.lon_deg",
                "orbit.alt_km",
                "orbit.speed_km_s",
            ),
            position,
        ),
        Tool("ahead", "the regions my ground track reaches next, with arrival times", ("orbit.area",), ahead),
        Tool(
            "sunlight",
            "whether I am in sunlight and when that changes",
            ("orbit.sunlit", "orbit.beta_deg"),
            sunlight,
        ),
        Tool(
            "ground_pass",
            "my next pass over a ground station (10° mask, next 24 h)",
            ("orbit.lat_deg",),
            ground_pass,
        ),
        Tool(
            "power",
            "battery and electrical power",
            ("power.battery_soc", "power.battery_wh", "power.array_w", "power.load_w"),
            power,
            needs_run=True,
        ),
        Tool(
            "thermal",
            "GPU temperature and the governor's power cap",
            ("gpu.temp_c", "gpu.cap_w", "gpu.throughput"),
            thermal,
            needs_run=True,
        ),
        Tool(
            "radiation",
            "radiation and faults",
            ("orbit.in_saa", "radiation.dose_rad", "faults.injected", "faults.detected", "faults.recovered"),
            radiation,
        ),
        Tool(
            "training",
            "training progress and the latest Shakespeare sample",
            ("train.step", "train.loss", "train.val_loss"),
            training,
            needs_run=True,
        ),
    )
}


def run_tools(
    ctx: TelemetryContext, names: list[str], t: float, when: str, station: str | None = None
) -> tuple[list[Fact], list[str]]:
    """Facts from the named tools at instant `t`, and the tools that had no telemetry to read."""
    facts: list[Fact] = []
    missing: list[str] = []
    for name in names:
        tool = TOOLS[name]
        if name == "radiation" and not ctx.has_run:
            missing.append(name)  # the zone comes from the orbit; the fault counts need a run
        if tool.needs_run and not ctx.has_run:
            missing.append(name)
            continue
        # Bus and training values exist only for the latest frame: they are read "now".
        at, label = (ctx.now, "now") if tool.needs_run else (t, when)
        if name == "ground_pass":
            facts += ground_pass(ctx, at, label, station)
        else:
            facts += tool.run(ctx, at, label)
    return facts, missing


def wall_clock() -> float:
    return _time.time()
