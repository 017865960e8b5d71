"""The mission report: `report.html` (self-contained: inline SVG and CSS, no script, nothing
fetched), `summary.json` (the headline numbers) and `samples.txt` (Shakespeare from the final
checkpoint). Everything is read back from the archive and the checkpoints, so the report of a
resumed mission covers all its sessions, and `skyrack report RUN` can write it again."""

from __future__ import annotations

import json
from html import escape
from pathlib import Path

import numpy as np

from skyrack.mission.svg import job_timeline, time_chart, world_map
from skyrack.orbit.timebase import iso
from skyrack.storage import atomic_write_text
from skyrack.telemetry.archive import Archive
from skyrack.telemetry.dictionary import CHANNEL
from skyrack.telemetry.runs import ARCHIVE_NAME, RunDir, RunMeta, twin_for

SAMPLE_CHARS = 600
SERIES = (
    "orbit.lat_deg",
    "orbit.lon_deg",
    "orbit.sunlit",
    "orbit.in_saa",
    "power.array_w",
    "power.load_w",
    "power.battery_soc",
    "gpu.cap_w",
    "gpu.temp_c",
    "gpu.heater_w",
    "gpu.throughput",
    "radiation.upset_rate",
    "train.step",
    "train.loss",
    "train.val_loss",
    "faults.injected",
    "faults.detected",
    "faults.recovered",
    "jobs.queued",
    "jobs.running",
    "gpu.busy",
)


def read_series(archive: Archive) -> dict[str, list]:
    """Every frame's time and the report's channels, in frame order."""
    frames = archive.db.execute("SELECT seq, t FROM frames ORDER BY seq").fetchall()
    data = {"seq": [s for s, _ in frames], "t": [t for _, t in frames]}
    index = {s: i for i, s in enumerate(data["seq"])}
    for name in SERIES:
        column = [None] * len(frames)
        for seq, _, value in archive.history(name):
            column[index[seq]] = value
        data[name] = column
    return data


def _intervals(t: list[float], flags: list, tick: float) -> list[tuple[float, float]]:
    """Time spans where `flags` holds (each frame held over its tick)."""
    spans, begin = [], None
    for ti, f in zip(t, flags):
        if f and begin is None:
            begin = ti
        elif not f and begin is not None:
            spans.append((begin, ti))
            begin = None
    if begin is not None:
        spans.append((begin, t[-1] + tick))
    return spans


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def summarize(run: RunDir, archive: Archive, data: dict, events: list[dict]) -> dict:
    meta = RunMeta.from_archive(archive)
    tick = float(meta.frame_interval_s or 10.0)
    t, seq = data["t"], data["seq"]
    n = len(t)
    expected = [round((ti - meta.start_t) / tick) for ti in t]
    counts: dict[str, int] = {}
    for e in events:
        counts[e["name"]] = counts.get(e["name"], 0) + 1
    governor = [e for e in events if e["name"] == "governor"]
    injected = [e for e in events if e["name"] == "fault_injected"]
    by_kind: dict[str, dict[str, int]] = {}
    for e in injected + [e for e in events if e["name"] == "fault_recovered"]:
        row = by_kind.setdefault(e["data"].get("kind", "?"), {"injected": 0, "recovered": 0})
        row["injected" if e["name"] == "fault_injected" else "recovered"] += 1
    sessions = meta.sessions
    commands = archive.commands()
    hours = tick / 3600.0
    losses = [v for v in data["train.loss"] if v is not None]
    period = None
    try:
        period = twin_for(meta).period_s
    except Exception:  # the report still stands without the orbit count
        pass
    last = {name: (data[name][-1] if n else None) for name in SERIES}
    return {
        "run_id": meta.run_id or run.run_id,
        "satellite": meta.satellite,
        "status": meta.status,
        "start": iso(meta.start_t) if meta.start_t else None,
        "end": iso(t[-1] + tick) if n else None,
        "simulated_hours": round(n * tick / 3600.0, 3),
        "orbits": round(n * tick / period, 2) if period else None,
        "frames": n,
        "frame_interval_s": tick,
        "frames_missing": (expected[-1] + 1 - n) if n else 0,
        "frames_duplicated": n - len(set(expected)),
        "frames_contiguous": expected == list(range(n)) and seq == list(range(seq[0], seq[0] + n))
        if n
        else True,
        "sessions": len(sessions),
        "resumes": max(0, len(sessions) - 1),
        "wall_s": round(sum(s.get("wall_s", 0.0) for s in sessions), 1),
        "train_wall_s": round(sum(s.get("train_wall_s", 0.0) for s in sessions), 1),
        "warp": meta.warp,
        "preset": meta.preset,
        "stress": meta.stress,
        "eclipses": counts.get("eclipse_entry", 0),
        "saa_crossings": counts.get("saa_entry", 0),
        "energy_in_wh": round(sum(v or 0.0 for v in data["power.array_w"]) * hours, 1),
        "energy_used_wh": round(sum(v or 0.0 for v in data["power.load_w"]) * hours, 1),
        "battery_min_soc": round(
            min((v for v in data["power.battery_soc"] if v is not None), default=0.0), 4
        ),
        "battery_end_soc": round(last["power.battery_soc"] or 0.0, 4),
        "gpu_max_temp_c": round(max((v for v in data["gpu.temp_c"] if v is not None), default=0.0), 2),
        "gpu_min_temp_c": round(min((v for v in data["gpu.temp_c"] if v is not None), default=0.0), 2),
        "heater_energy_wh": round(sum(v or 0.0 for v in data["gpu.heater_w"]) * hours, 1),
        "heater_max_w": round(max((v for v in data["gpu.heater_w"] if v is not None), default=0.0), 1),
        "gpu_duty": round(sum(1 for v in data["gpu.cap_w"] if v and v > 0) / n, 4) if n else 0.0,
        "mean_throughput": round(_mean(data["gpu.throughput"]) or 0.0, 4),
        "governor_decisions": len(governor),
        "governor_pauses": sum(1 for e in governor if e["data"].get("action") == "pause"),
        "training_steps": last["train.step"],
        "target_steps": meta.steps,
        "first_loss": round(losses[0], 4) if losses else None,
        "final_loss": round(losses[-1], 4) if losses else None,
        "final_val_loss": round(last["train.val_loss"], 4) if last["train.val_loss"] is not None else None,
        "faults": {
            "injected": last["faults.injected"] or 0,
            "detected": last["faults.detected"] or 0,
            "recovered": last["faults.recovered"] or 0,
            "by_kind": by_kind,
        },
        "checkpoints": counts.get("checkpoint", 0),
        "commands": {
            state: sum(1 for c in commands if c["status"] == state)
            for state in ("queued", "dispatched", "completed", "failed")
        },
        "limit_events": counts.get("limit", 0),
        "events": counts,
        "report": str(run.report),
    }


def shakespeare_sample(run: RunDir) -> tuple[str | None, str]:
    """(text, where from) sampled from the newest verified checkpoint."""
    from skyrack.train import checkpoint

    if not checkpoint.list_checkpoints(run.checkpoints):
        return None, "no checkpoint was written"
    from skyrack.train.sample import generate_text, load_model

    try:
        model, tokenizer, ckpt = load_model(str(run.checkpoints), device="cpu", fallback=True)
        prompt = "ROMEO:" if all(c in tokenizer.index for c in "ROMEO:\n") else None
        return generate_text(model, tokenizer, prompt and "\n" + prompt, SAMPLE_CHARS, seed=1337), ckpt.name
    except Exception as exc:  # a report without a sample beats no report
        return None, f"sampling failed: {str(exc).splitlines()[0]}"


CSS = """
body{background:#0e1117;color:#d7dce5;font:15px/1.5 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0}
main{max-width:1040px;margin:0 auto;padding:28px 20px 60px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:18px;margin:34px 0 8px;color:#fff}
.sub{color:#8d96a8;margin:0 0 18px}.muted{color:#8d96a8;font-size:13px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(150px,1fr));gap:10px}
.card{background:#161b25;border:1px solid #232a38;border-radius:8px;padding:10px 12px}
.card b{display:block;font-size:21px;color:#fff}.card span{font-size:12px;color:#8d96a8}
svg{width:100%;height:auto;display:block;background:#121722;border-radius:6px;margin:6px 0}
svg .tick{fill:#7d8799;font-size:11px}svg .label{fill:#c8cfdb;font-size:12px;font-weight:600}
svg .legend{fill:#aab3c2;font-size:11px}
table{border-collapse:collapse;width:100%;font-size:13px}td,th{padding:4px 8px;border-bottom:1px solid #232a38;text-align:left}
th{color:#8d96a8;font-weight:600}tr.rec td{color:#8fd19e}tr.inj td{color:#f0b07a}
pre{background:#161b25;border:1px solid #232a38;border-radius:8px;padding:14px;white-space:pre-wrap;font:14px/1.45 Georgia,serif;color:#e9e2cf}
.key span{display:inline-block;margin-right:16px}.dot{display:inline-block;width:10px;height:10px;border-radius:5px;margin-right:5px}
"""


def _card(value, label: str) -> str:
    return f'<div class="card"><b>{escape(str(value))}</b><span>{escape(label)}</span></div>'


def render(summary: dict, data: dict, events: list[dict], sample: str | None, sample_from: str) -> str:
    t = data["t"]
    tick = summary["frame_interval_s"]
    t0, t1 = (t[0], t[-1] + tick) if t else (0.0, 1.0)
    eclipses = _intervals(t, [s is not None and s < 0.5 for s in data["orbit.sunlit"]], tick)
    in_saa = _intervals(t, [bool(s) for s in data["orbit.in_saa"]], tick)
    track = [
        (la, lo, (s or 0) >= 0.5)
        for la, lo, s in zip(data["orbit.lat_deg"], data["orbit.lon_deg"], data["orbit.sunlit"])
        if la is not None
    ]
    position = {}
    for ti, la, lo in zip(t, data["orbit.lat_deg"], data["orbit.lon_deg"]):
        position[ti] = (la, lo)
    faults = [e for e in events if e["name"] in ("fault_injected", "fault_recovered")]
    fault_markers = [
        (position[e["t"]][0], position[e["t"]][1], "#ff6b5e", f"{iso(e['t'])} {e['message']}")
        for e in faults
        if e["name"] == "fault_injected" and e["t"] in position
    ]
    governor = [e for e in events if e["name"] == "governor"]
    gov_colour = {
        "pause": "#ff6b5e",
        "resume": "#8fd19e",
        "set-cap": "#7ab8ff",
        "checkpoint-before-pause": "#ffd24d",
    }
    gov_markers = [
        {
            "t": e["t"],
            "colour": gov_colour.get(e["data"].get("action"), "#aaa"),
            "label": f"{iso(e['t'])} {e['message']}",
        }
        for e in governor
    ]
    fault_ticks = [
        {
            "t": e["t"],
            "colour": "#ff6b5e" if e["name"] == "fault_injected" else "#8fd19e",
            "row": 0 if e["name"] == "fault_injected" else 1,
            "label": f"{iso(e['t'])} {e['message']}",
        }
        for e in faults
    ]
    ckpt_ticks = [
        {"t": e["t"], "colour": "#ffd24d", "row": 2, "label": f"{iso(e['t'])} {e['message']}"}
        for e in events
        if e["name"] == "checkpoint"
    ]
    soc_limits = CHANNEL["power.battery_soc"]
    temp_limits = CHANNEL["gpu.temp_c"]
    charts = {
        "power": time_chart(
            [
                {"label": "array W", "colour": "#ffd24d", "t": t, "y": data["power.array_w"]},
                {"label": "load W", "colour": "#ff8c5a", "t": t, "y": data["power.load_w"]},
                {"label": "GPU cap W", "colour": "#7ab8ff", "t": t, "y": data["gpu.cap_w"], "step": True},
                {"label": "heaters W", "colour": "#cc79a7", "t": t, "y": data["gpu.heater_w"]},
            ],
            t0=t0,
            t1=t1,
            y_label="Power (W)",
            bands=eclipses,
        ),
        "battery": time_chart(
            [
                {
                    "label": "state of charge %",
                    "colour": "#8fd19e",
                    "t": t,
                    "y": [None if v is None else 100 * v for v in data["power.battery_soc"]],
                }
            ],
            t0=t0,
            t1=t1,
            y_label="Battery (%)",
            y_range=(0, 100),
            bands=eclipses,
            hlines=[
                (100 * soc_limits.yellow[0], "#e0b84a", "yellow limit"),
                (100 * soc_limits.red[0], "#e05a4a", "red limit"),
            ],
        ),
        "thermal": time_chart(
            [{"label": "GPU die °C", "colour": "#ff8c5a", "t": t, "y": data["gpu.temp_c"]}],
            t0=t0,
            t1=t1,
            y_label="GPU temperature (°C) and the governor's decisions",
            bands=eclipses,
            markers=gov_markers,
            hlines=[
                (temp_limits.yellow[1], "#e0b84a", "yellow limit"),
                (temp_limits.red[1], "#e05a4a", "red limit"),
            ],
        ),
        "radiation": time_chart(
            [
                {
                    "label": "upsets/s x stress",
                    "colour": "#d98cff",
                    "t": t,
                    "y": data["radiation.upset_rate"],
                    "step": True,
                }
            ],
            t0=t0,
            t1=t1,
            y_label="Expected memory upsets a second (whole GPU)",
            bands=in_saa,
        ),
        "loss": time_chart(
            [
                {"label": "train loss", "colour": "#7ab8ff", "t": t, "y": data["train.loss"]},
                {
                    "label": "validation loss",
                    "colour": "#8fd19e",
                    "t": t,
                    "y": data["train.val_loss"],
                    "step": True,
                },
            ],
            t0=t0,
            t1=t1,
            y_label="Loss (nats per character) with faults, recoveries and checkpoints",
            bands=eclipses,
            markers=fault_ticks + ckpt_ticks,
            height=260,
        ),
        "steps": time_chart(
            [{"label": "training step", "colour": "#c8cfdb", "t": t, "y": data["train.step"], "step": True}],
            t0=t0,
            t1=t1,
            y_label="Training step (drops are restarts from a checkpoint)",
            bands=eclipses,
            height=160,
        ),
    }
    s = summary
    f = s["faults"]
    cards = "".join(
        [
            _card(f"{s['orbits']}" if s["orbits"] is not None else "-", "orbits flown"),
            _card(f"{s['simulated_hours']} h", "simulated"),
            _card(s["eclipses"], "eclipses"),
            _card(s["saa_crossings"], "SAA crossings"),
            _card(f"{s['training_steps']}", "training steps"),
            _card(s["final_val_loss"] if s["final_val_loss"] is not None else "-", "final validation loss"),
            _card(f"{f['injected']}", "faults injected"),
            _card(f"{f['recovered']}", "recovered"),
            _card(f"{s['battery_min_soc']:.0%}", "lowest battery"),
            _card(f"{s['gpu_max_temp_c']:.0f} °C", "hottest GPU"),
            _card(f"{s['heater_energy_wh']:.0f} Wh", f"heaters (peak {s['heater_max_w']:.0f} W)"),
            _card(f"{s['mean_throughput']:.0%}", "mean GPU speed"),
            _card(s["governor_decisions"], "governor decisions"),
        ]
    )
    fault_rows = "".join(
        f'<tr class="{"inj" if e["name"] == "fault_injected" else "rec"}"><td>{iso(e["t"])}</td>'
        f"<td>{escape(e['data'].get('kind', ''))}</td><td>{'injected' if e['name'] == 'fault_injected' else 'recovered'}</td>"
        f"<td>{escape(str(e['data'].get('step', '')))}</td>"
        f"<td>{escape(e['data'].get('where') or e['data'].get('how') or '')}</td></tr>"
        for e in faults[:400]
    )
    more = (
        f'<p class="muted">{len(faults) - 400} more in the archive (skyrack events).</p>'
        if len(faults) > 400
        else ""
    )
    kinds = "".join(
        f"<tr><td>{escape(k)}</td><td>{v['injected']}</td><td>{v['recovered']}</td></tr>"
        for k, v in sorted(f["by_kind"].items())
    )
    gov_rows = "".join(
        f"<tr><td>{iso(e['t'])}</td><td>{escape(e['data'].get('action', ''))}</td>"
        f"<td>{e['data'].get('cap_w', 0):.0f} W</td><td>{escape(e['data'].get('reason', ''))}</td></tr>"
        for e in governor[:200]
    )
    sample_html = (
        f"<pre>{escape(sample)}</pre><p class='muted'>Sampled from {escape(sample_from)} "
        f"(temperature 0.8, seed 1337).</p>"
        if sample
        else f"<p class='muted'>No sample: {escape(sample_from)}.</p>"
    )
    integrity = (
        "every frame present, none duplicated"
        if s["frames_contiguous"]
        else f"{s['frames_missing']} missing, {s['frames_duplicated']} duplicated"
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{escape(s["satellite"] or "Mission")} - {escape(s["run_id"])}</title><style>{CSS}</style></head>
<body><main>
<h1>{escape(s["satellite"] or "Satellite")}: mission {escape(s["run_id"])}</h1>
<p class="sub">{escape(s["start"] or "")} to {escape(s["end"] or "")} (simulated) · {s["frames"]} telemetry frames of {tick:g} s ({integrity})
· {s["sessions"]} session{"s" if s["sessions"] != 1 else ""} · {s["wall_s"]} s of wall time · preset {escape(str(s["preset"]))} · stress x{s["stress"]:g} · status {escape(str(s["status"]))}</p>
<div class="cards">{cards}</div>
{_link_html(s)}
{_jobs_html(s, data, t0, t1, eclipses, in_saa)}
<h2>Ground track</h2>
<p class="key muted"><span><i class="dot" style="background:#ffd24d"></i>sunlit</span><span><i class="dot" style="background:#8fa3ff"></i>eclipse</span>
<span><i class="dot" style="background:#d9534f"></i>South Atlantic Anomaly</span><span><i class="dot" style="background:#ff6b5e"></i>fault injected</span>
<span>○ start ▢ end</span></p>
{world_map(track, fault_markers)}
<h2>Power and battery</h2><p class="muted">Shaded: eclipse. The governor holds the battery above its reserve through each eclipse.</p>
{charts["power"]}{charts["battery"]}
<h2>Temperature and the governor</h2>{charts["thermal"]}
<table><tr><th>time</th><th>decision</th><th>cap</th><th>reason</th></tr>{gov_rows}</table>
<h2>Radiation</h2><p class="muted">Shaded: inside the South Atlantic Anomaly.</p>{charts["radiation"]}
<h2>Training</h2><p class="muted">Markers: <span style="color:#ff6b5e">fault injected</span>, <span style="color:#8fd19e">recovered</span>, <span style="color:#ffd24d">checkpoint</span>. First loss {s["first_loss"]}, last {s["final_loss"]}.</p>
{charts["loss"]}{charts["steps"]}
<h2>Faults</h2>
<p>{f["injected"]} injected, {f["detected"]} detected, {f["recovered"]} recovered.</p>
<table><tr><th>kind</th><th>injected</th><th>recovered</th></tr>{kinds}</table>
<table><tr><th>time</th><th>kind</th><th>what</th><th>step</th><th>where / how</th></tr>{fault_rows}</table>{more}
<h2>What the satellite learned to write</h2>{sample_html}
<p class="muted">Written by skyrack from {escape(Path(s["report"]).parent.name)}/{ARCHIVE_NAME}. Every figure is drawn from the archive; nothing on this page is fetched from the network.</p>
</main></body></html>
"""


def _link_html(s: dict) -> str:
    link = s.get("link")
    if not link:
        return ""
    done = (
        f"every frame on the ground {link['complete_after_end_s'] / 60:.0f} min after the mission's end"
        if link["complete_after_end_s"] is not None
        else f"{link['frames_received']} of {s['frames']} frames on the ground so far"
    )
    rejected = ", ".join(f"{n} {why}" for why, n in sorted(link["rejected"].items())) or "none"
    return (
        f"<h2>The link</h2><p>{escape(str(link['mode']))} link, {link['contacts']} contacts in the mission, "
        f"{link['loss']:.0%} packet loss. <b>The ground had {link['frames_at_mission_end']} of {s['frames']} frames "
        f"at the mission's end</b>; {done}. Generation to ground: median {link['latency_median_s']} s, "
        f"p99 {link['latency_p99_s']} s. Packets rejected: {escape(rejected)}.</p>"
    )


def jobs_summary(run: RunDir, archive: Archive, data: dict) -> dict | None:
    """The commercial work (skyrack.jobs.accounts) and the GPU's use while powered."""
    from skyrack.jobs.accounts import commercial

    out = commercial(run, archive)
    if out is None:
        return None
    busy = [b for b, c in zip(data["gpu.busy"], data["gpu.cap_w"]) if b is not None and c]
    out["totals"]["gpu_busy"] = round(sum(busy) / len(busy), 4) if busy else None
    return out


def _maybe(value, fmt: str) -> str:
    return "" if value is None else fmt.format(value)


def _jobs_html(s: dict, data: dict, t0: float, t1: float, eclipses, in_saa) -> str:
    jobs = s.get("jobs")
    if not jobs:
        return ""
    tot = jobs["totals"]
    contacts = []
    try:
        from skyrack.jobs.schedule import load_forecast

        contacts = [(c["rise_t"], c["set_t"]) for c in load_forecast(Path(s["report"]).parent).contacts]
    except Exception:  # the timeline stands without its contacts
        pass

    def when(t):
        return iso(t)[11:16] if t else "-"

    rows, shown = [], []
    for j in jobs["jobs"]:
        label = f"#{j['id']} {j['kind']} for {j['customer']}, priority {j['priority']}: {j['state']}" + (
            f" ({j['reason']})" if j["reason"] else ""
        )
        shown.append({**j, "label": label})
        latency = f"{j['latency_s'] / 60:.0f} min" if j["latency_s"] is not None else "-"
        met = {True: "met", False: "missed", None: "-"}[j["deadline_met"]]
        rows.append(
            f"<tr><td>{j['id']}</td><td>{escape(j['customer'])}</td><td>{escape(j['kind'])}</td>"
            f"<td>{j['priority']}{' (no SAA)' if j['avoid_saa'] else ''}</td><td>{escape(j['state'])}</td>"
            f"<td>{when(j['submitted_t'])}</td><td>{when(j['deadline_t'])}</td><td>{when(j['delivered_t'])}</td>"
            f"<td>{latency}</td><td>{met}</td>"
            f"<td>{_maybe(j['energy_wh'], '{:.2f}')}</td><td>{_maybe(j['gpu_s'], '{:.0f}')}</td>"
            f"<td>{_maybe(j['price_usd'], '${:.4f}')}</td>"
            f"<td>{escape(j['reason'] or '')}</td></tr>"
        )
    e = tot["energy_wh"]
    pct = lambda x: "-" if x is None else f"{x:.0%}"  # noqa: E731
    cards = "".join(
        [
            _card(tot["submitted"], "jobs submitted"),
            _card(tot["refused"], "refused at submission"),
            _card(tot["delivered"] or tot["done"], "results on the ground"),
            _card(f"{tot['deadlines_met']}/{tot['with_deadline']}", "deadlines met"),
            _card(tot["failed"], f"failed ({tot['failed_radiation']} by radiation)"),
            _card(
                "-" if tot["latency_p50_s"] is None else f"{tot['latency_p50_s'] / 60:.0f} min", "latency p50"
            ),
            _card(
                "-" if tot["latency_p95_s"] is None else f"{tot['latency_p95_s'] / 60:.0f} min", "latency p95"
            ),
            _card(
                f"{e['jobs_wh']:.0f} Wh",
                f"GPU energy to jobs (training {e['training_wh']:.0f}, idle {e['idle_wh']:.0f})",
            ),
            _card(pct(tot.get("gpu_busy")), "GPU busy while powered"),
            _card("-" if tot["revenue_usd"] is None else f"${tot['revenue_usd']:.2f}", "revenue"),
            _card(pct(tot["screen_downlink_reduction"]), "screening downlink saved"),
        ]
    )
    queue = time_chart(
        [
            {"label": "queued", "colour": "#ffd24d", "t": data["t"], "y": data["jobs.queued"], "step": True},
            {
                "label": "running",
                "colour": "#7ab8ff",
                "t": data["t"],
                "y": data["jobs.running"],
                "step": True,
            },
        ],
        t0=t0,
        t1=t1,
        y_label="Jobs on board",
        bands=eclipses,
        height=150,
    )
    return (
        "<h2>Commercial work</h2><p class='muted'>Customers' jobs beside the training: earliest deadline "
        "first within the power budget, before the training's steps (skyrack.jobs.schedule). Shaded: "
        "eclipse; red at the head: the SAA; green at the foot: contacts. A dot is a result on the ground "
        "(red: after its deadline), a red tick the deadline, a cross a job refused at submission.</p>"
        f"<div class='cards'>{cards}</div>"
        + job_timeline(shown, t0=t0, t1=t1, eclipses=eclipses, saa=in_saa, contacts=contacts)
        + queue
        + "<table><tr><th>job</th><th>customer</th><th>kind</th><th>priority</th><th>state</th><th>submitted</th>"
        "<th>deadline</th><th>on the ground</th><th>latency</th><th>deadline</th><th>Wh</th><th>GPU-s</th>"
        f"<th>price</th><th>reason</th></tr>{''.join(rows)}</table>"
    )


def link_summary(run: RunDir) -> dict | None:
    """What the ground had received by the mission's end, and when it had everything (None:
    the ideal link, where the ground read the on-board archive)."""
    if not run.ground_archive.is_file():
        return None
    from skyrack.link.ground import GroundArchive

    with GroundArchive(run.ground_archive, readonly=True) as ground:
        link = ground.meta("link") or {}
        at_end = ground.meta("at_mission_end") or {}
        latency = ground.latencies()
        rejects = dict(ground.db.execute("SELECT reason, COUNT(*) FROM rejects GROUP BY reason").fetchall())
        return {
            "mode": link.get("mode"),
            "loss": link.get("loss"),
            "contacts": len(ground.meta("contacts") or []),
            "frames_at_mission_end": at_end.get("frames_received"),
            "frames_received": int(ground.received_ids("hk").size),
            "complete_after_end_s": (ground.meta("complete_t") - at_end["t"])
            if ground.meta("complete_t") and at_end.get("t")
            else None,
            "latency_median_s": round(float(np.median(latency)), 1) if latency.size else None,
            "latency_p99_s": round(float(np.percentile(latency, 99)), 1) if latency.size else None,
            "rejected": rejects,
        }


def write_report(run: RunDir, say=None) -> dict:
    with Archive(run.archive, readonly=True) as archive:
        data = read_series(archive)
        events = archive.events()
        summary = summarize(run, archive, data, events)
        summary["jobs"] = jobs_summary(run, archive, data)
    summary["link"] = link_summary(run)
    sample, sample_from = shakespeare_sample(run)
    summary["sample"] = sample
    html = render(summary, data, events, sample, sample_from)
    if sample:
        atomic_write_text(run.samples, sample + "\n")
    atomic_write_text(run.summary, json.dumps(summary, indent=1, default=str) + "\n")
    atomic_write_text(run.report, html)
    if say:
        say(f"summary: {run.summary}")
    return summary
