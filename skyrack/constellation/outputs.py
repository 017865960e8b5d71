"""What a constellation run leaves: `summary.json`, a report, and one telemetry archive per
satellite in the mission's format (so `skyrack serve --run <id>-sat-K` shows any one of them).

The workers' logs say what happened in wall-clock order; the plan puts each round on the
simulated clock, so every curve here is against tokens and against simulated time.
"""

from __future__ import annotations

import json
import math
import time
from html import escape
from pathlib import Path

from skyrack.storage import atomic_write_text


def read_logs(run_dir: Path, n: int) -> list[list[dict]]:
    out = []
    for k in range(n):
        path = run_dir / f"sat-{k}.jsonl"
        rows = []
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill
        out.append(rows)
    return out


def curves(doc: dict, logs: list[list[dict]]) -> dict:
    """Loss against tokens (all satellites together) and simulated time, round by round."""
    rounds = doc["rounds"]
    tokens_at = [0] * len(rounds)
    train_at: list[list[float]] = [[] for _ in rounds]
    val_at: list[float | None] = [None] * len(rounds)
    last_tokens = [0] * len(logs)
    per_round_tokens = [dict() for _ in rounds]
    for k, rows in enumerate(logs):
        for row in rows:
            if row["kind"] == "round":
                r = row["round"]
                per_round_tokens[r][k] = row["tokens"]
                train_at[r].append(row["train_loss"])
                if row.get("val_loss") is not None:
                    val_at[r] = row["val_loss"]
    for r in range(len(rounds)):
        for k in range(len(logs)):
            if k in per_round_tokens[r]:
                last_tokens[k] = max(last_tokens[k], per_round_tokens[r][k])
        tokens_at[r] = sum(last_tokens)
    t0 = doc["start_t"]
    return {
        "tokens": tokens_at,
        "sim_s": [r["end_t"] - t0 for r in rounds],
        "train_loss": [sum(v) / len(v) if v else None for v in train_at],
        "val_loss": val_at,
    }


def summarize(doc: dict, logs, results, exits, wall_s: float) -> dict:
    n = len(doc["satellites"])
    sats = []
    for k in range(n):
        rows = logs[k]
        # a false alarm: a detection whose recomputation came back bitwise the same
        false_alarms = sum(r["kind"] == "false_alarm" for r in rows)
        final = next((r for r in reversed(rows) if r["kind"] == "final"), None)
        sats.append(
            {
                "name": doc["satellites"][k],
                "exit_code": exits[k],
                "final_val_loss": final and final["val_loss"],
                "tokens": final["tokens"] if final else None,
                "bytes_allreduced": final["bytes_total"] if final else None,
                "heal_bytes": final["heal_bytes"] if final else None,
                "stale_at_end": final["stale"] if final else None,
                "digest": final["digest"] if final else None,
                "faults_injected": sum(r["kind"] == "fault" for r in rows),
                "faults_detected": sum(r["kind"] == "fault_detected" for r in rows) - false_alarms,
                "false_alarms": false_alarms,
                "recomputed_steps": final.get("recomputed_steps") if final else None,
                "replayed_steps": final.get("replayed_steps") if final else None,
                "heals": sum(r["kind"] == "heal" for r in rows),
                "killed": [r["round"] for r in rows if r["kind"] == "killed"],
                "restarts": sum(r["kind"] == "restart" for r in rows),
                "absent_rounds": [r["round"] for r in rows if r["kind"] == "absent"],
            }
        )
    rounds = doc["rounds"]
    synced = [r for r, res in zip(rounds, results) if res["synced"]]
    link_bytes = 0.0
    for r, res in zip(rounds, results):
        m = len(res["members"])
        if res["synced"] and m > 1:
            link_bytes += 2.0 * (m - 1) * doc["payload_bytes"][r["fragment"] % len(doc["payload_bytes"])]
    heal_bytes = sum(s["heal_bytes"] or 0 for s in sats)  # each heal: a peer's state over the links
    digests = {s["digest"] for s in sats if s["digest"] and not s["stale_at_end"]}
    c = curves(doc, logs)
    vals = [s["final_val_loss"] for s in sats if s["final_val_loss"] is not None]
    return {
        "algo": doc["algo"],
        "satellites": n,
        "formation": doc["formation"],
        "inner_steps": doc["inner_steps"],
        "quant": doc["quant"],
        "fragments": doc["fragments"],
        "dropout_every_round": doc["dropout_every_round"],
        "outer_lr": doc["outer_lr"],
        "outer_momentum": doc["outer_momentum"],
        "kill": doc["kill"],
        "parameters": doc["parameters"],
        "rounds_planned": len(rounds),
        "rounds_settled": len(results),
        "syncs": len(synced),
        "final_val_loss": min(vals) if vals else None,
        "tokens": c["tokens"][-1] if c["tokens"] else 0,
        # what one satellite put through its terminals at most: its all-reduce share and the
        # states it received when it healed
        "bytes_per_satellite": max((s["bytes_allreduced"] or 0) + (s["heal_bytes"] or 0) for s in sats),
        "heal_bytes_total": heal_bytes,
        "link_bytes_total": link_bytes + heal_bytes,
        "simulated_s": rounds[-1]["end_t"] - doc["start_t"] if rounds else 0.0,
        "sync_wait_s": sum(r["wait_s"] for r in rounds),
        "wall_s": wall_s,
        "models_agree": len(digests) == 1,
        "per_satellite": sats,
        "curves": c,
        "rounds": [
            {
                "index": r["index"],
                "members": res["members"],
                "synced": res["synced"],
                "end_s": r["end_t"] - doc["start_t"],
            }
            for r, res in zip(rounds, results)
        ],
        "failures": [res for res in results if res.get("failed") or res.get("missing")],
    }


def write(run_dir: Path, doc: dict, sky, results, exits, wall_s: float) -> dict:
    logs = read_logs(run_dir, len(doc["satellites"]))
    summary = summarize(doc, logs, results, exits, wall_s)
    end_t = doc["rounds"][-1]["end_t"] if doc["rounds"] else doc["start_t"]
    timeline = build_timeline(doc, sky, results, logs, end_t)
    summary["timeline"] = timeline
    summary["run_id"] = run_dir.name
    summary["archives"] = write_archives(run_dir, doc, sky, logs, timeline, end_t, time.time() - wall_s)
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=1, default=str))
    atomic_write_text(
        run_dir / "report.html", report_html([summary], title=f"Constellation run {run_dir.name}")
    )
    return summary


def build_timeline(doc, sky, results, logs, end_t: float) -> list[dict]:
    """Link windows, syncs, dropouts and rejoins on the simulated clock; each entry names the
    satellites it concerns (`sats`, indices)."""
    names = doc["satellites"]
    out = []

    def add(t, kind, sats, what, end=None):
        out.append({"t": t, "kind": kind, "sats": list(sats), "what": what, **({"end": end} if end else {})})

    for w in sky.windows(end_t):
        add(w["start"], "link", (w["a"], w["b"]), f"{names[w['a']]} - {names[w['b']]}", w["end"])
    rounds = doc["rounds"]
    for rnd, res in zip(rounds, results):
        i = rnd["index"]
        if res["synced"]:
            what = f"round {i}: {len(res['members'])} satellites, waited {rnd['wait_s']:.0f} s for the links"
            add(rnd["sync_t"], "sync", res["members"], what, rnd["end_t"])
        elif rnd["sync_t"] is None:
            add(rnd["compute_end_t"], "no-sync", rnd["participants"], f"round {i}: the links never joined")
        for s in rnd["dropped"]:
            add(rnd["start_t"], "dropout", [s], f"{names[s]} drops out of round {i}")
        for s in rnd["paused"]:
            add(rnd["start_t"], "paused", [s], f"{names[s]} paused by its governor in round {i}")
        for s in res.get("missing", []):
            add(rnd["start_t"], "lost", [s], f"{names[s]} did not reach round {i}")
    for k, rows in enumerate(logs):
        for row in rows:
            if row["kind"] in ("heal", "killed", "restart"):
                r = row.get("round", row.get("rejoin_round", 0))
                t = rounds[min(r, len(rounds) - 1)]["start_t"] if rounds else doc["start_t"]
                what = {
                    "heal": f"{names[k]} rejoins, healed from {names[row.get('donor', 0)]}",
                    "killed": f"{names[k]} killed by a radiation interrupt",
                    "restart": f"{names[k]} restarted (incarnation {row.get('incarnation')})",
                }[row["kind"]]
                add(t, row["kind"], [k], what)
    out.sort(key=lambda e: e["t"])
    return out


def write_archives(run_dir: Path, doc, sky, logs, timeline, end_t: float, wall_started: float) -> list[str]:
    from sgp4.exporter import export_tle

    from skyrack.telemetry.archive import Archive, Event
    from skyrack.telemetry.runs import ARCHIVE_NAME, RunMeta

    paths = []
    rounds = doc["rounds"]
    tick = doc["tick_s"]
    for k, name in enumerate(doc["satellites"]):
        track = sky.tracks[k]
        track.extend_to(sky.tick_of(end_t))
        frames = [f for f in track.frames if f["t"] <= end_t + tick]
        # training as it stood at the end of each round, on the simulated clock
        marks = []
        step = 0
        for row in logs[k]:
            if row["kind"] == "round":
                step += doc["steps_per_round"] if doc["algo"] == "diloco" else 1
                marks.append(
                    (
                        rounds[row["round"]]["end_t"],
                        step,
                        row["train_loss"],
                        row.get("val_loss"),
                        row.get("faults"),
                    )
                )
        mine = [e for e in timeline if k in e["sats"]]
        path = run_dir.parent / f"{run_dir.name}-sat-{k + 1}" / ARCHIVE_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        # this satellite's own orbit, for whoever rebuilds its twin from the archive (the
        # ground station): a TLE of its elements (metre-level from the formation's)
        line1, line2 = export_tle(sky.satellites[k].satrec)
        tle = path.parent / "elements.tle"
        atomic_write_text(tle, f"{name}\n{line1}\n{line2}\n")
        with Archive(path) as archive:
            RunMeta(
                run_id=path.parent.name,
                satellite=name,
                profile=doc["profile"],
                tle_file=str(tle.resolve()),
                start_t=doc["start_t"],
                end_t=end_t,
                frame_interval_s=tick,
                preset=doc["preset"],
                status="finished",
                wall_started=wall_started,
                seed=doc["seed"],
                data=doc["data"],
            ).write(archive)
            archive.set_meta("constellation", run_dir.name)
            mi, ei = 0, 0
            cur = {
                "train.step": 0,
                "train.loss": None,
                "train.val_loss": None,
                "faults.injected": 0,
                "faults.detected": 0,
                "faults.recovered": 0,
            }
            prev_sunlit = None
            for f in frames:
                t = f["t"]
                while mi < len(marks) and marks[mi][0] <= t + tick:
                    _, st, loss, val, faults = marks[mi]
                    cur["train.step"], cur["train.loss"] = st, loss
                    if val is not None:
                        cur["train.val_loss"] = val
                    for key, n in (faults or {}).items():
                        cur[f"faults.{key}"] = n
                    mi += 1
                events = []
                if prev_sunlit is not None and (prev_sunlit >= 0.5) != (f["orbit.sunlit"] >= 0.5):
                    events.append(Event("eclipse_exit" if f["orbit.sunlit"] >= 0.5 else "eclipse_entry", {}))
                prev_sunlit = f["orbit.sunlit"]
                if f["decision"] != "hold":
                    events.append(
                        Event(
                            "governor",
                            {"action": f["decision"], "cap_w": f["gpu.cap_w"], "reason": f["reason"]},
                        )
                    )
                while ei < len(mine) and mine[ei]["t"] <= t + tick:
                    events.append(Event("mission", {"message": f"{mine[ei]['kind']}: {mine[ei]['what']}"}))
                    ei += 1
                values = {key: v for key, v in f.items() if key not in ("t", "decision", "reason")}
                # the rate the satellite's faults were drawn at, as a mission records it
                values["radiation.upset_rate"] *= doc["stress"]
                values.update(
                    {
                        "train.tokens_per_s": 0.0,
                        **{key: v for key, v in cur.items() if v is not None},
                    }
                )
                archive.write_frame(t, values, events)
        paths.append(str(path))
    return paths


# -- the report ---------------------------------------------------------------------------------------
COLOURS = ["#6cb6ff", "#f69d50", "#8ddb8c", "#dcbdfb", "#f47067", "#e0c35a"]


def xy_chart(series: list[dict], x_label: str, y_label: str, width: int = 900, height: int = 260) -> str:
    """A plain line chart: series of {label, x, y}."""
    left, right, top, bottom = 60, 14, 22, 34
    pts = [(x, y) for s in series for x, y in zip(s["x"], s["y"]) if y is not None and math.isfinite(y)]
    if not pts:
        return "<p>(no data)</p>"
    x0, x1 = 0.0, max(x for x, _ in pts) or 1.0
    y0, y1 = min(y for _, y in pts), max(y for _, y in pts)
    if y1 - y0 < 1e-9:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pw, ph = width - left - right, height - top - bottom

    def X(x):
        return left + (x - x0) / (x1 - x0) * pw

    def Y(y):
        return top + (1 - (y - y0) / (y1 - y0)) * ph

    out = [f'<svg viewBox="0 0 {width} {height}" class="chart">']
    for i in range(5):
        v = y0 + (y1 - y0) * i / 4
        out.append(
            f'<line x1="{left}" y1="{Y(v):.1f}" x2="{width - right}" y2="{Y(v):.1f}" stroke="#2a3140"/>'
            f'<text x="{left - 6}" y="{Y(v) + 4:.1f}" text-anchor="end" class="tick">{v:.2f}</text>'
        )
        xv = x0 + (x1 - x0) * i / 4
        out.append(
            f'<text x="{X(xv):.1f}" y="{height - 14}" text-anchor="middle" class="tick">{_short(xv)}</text>'
        )
    for i, s in enumerate(series):
        p = [(x, y) for x, y in zip(s["x"], s["y"]) if y is not None and math.isfinite(y)]
        if not p:
            continue
        colour = COLOURS[i % len(COLOURS)]
        d = "M" + "L".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in p)
        out.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="1.8"/>')
        out.append(
            f'<rect x="{left + 10 + 200 * i}" y="4" width="9" height="9" fill="{colour}"/>'
            f'<text x="{left + 23 + 200 * i}" y="12" class="legend">{escape(s["label"])}</text>'
        )
    out.append(
        f'<text x="{width / 2}" y="{height - 2}" text-anchor="middle" class="label">{escape(x_label)}</text>'
    )
    out.append(f'<text x="4" y="12" class="label">{escape(y_label)}</text></svg>')
    return "".join(out)


def _short(v: float) -> str:
    for div, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{unit}"
    return f"{v:.3g}"


def _bytes(b: float | None) -> str:
    if b is None:
        return "-"
    for div, unit in ((1e12, "TB"), (1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if b >= div:
            return f"{b / div:.3g} {unit}"
    return f"{b:.0f} B"


def _loss(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


def _label(s: dict) -> str:
    if s["algo"] == "ddp":
        return "DDP"
    q = "" if s["quant"] == "none" else f" {s['quant']}"
    f = "" if s["fragments"] == 1 else f" {s['fragments']} fragments"
    d = " dropout/round" if s.get("dropout_every_round") else ""
    o = "" if (s.get("outer_lr"), s.get("outer_momentum")) in ((0.7, 0.9), (None, None)) else " averaging"
    if o and (s["outer_lr"], s["outer_momentum"]) != (1.0, 0.0):
        o = f" outer lr {s['outer_lr']:g} m {s['outer_momentum']:g}"
    return f"DiLoCo H={s['inner_steps']}{q}{f}{d}{o}"


def report_html(summaries: list[dict], title: str) -> str:
    """One page: the algorithms side by side, the curves, the bytes, the timeline."""
    rows = []
    base = next((s for s in summaries if s["algo"] == "ddp"), None)
    for s in summaries:
        ratio = ""
        if base and s is not base and s["bytes_per_satellite"]:
            ratio = f"{base['bytes_per_satellite'] / s['bytes_per_satellite']:,.0f}x fewer"
        rows.append(
            f"<tr><td>{escape(_label(s))}</td><td>{_loss(s['final_val_loss'])}</td>"
            f"<td>{s['tokens']:,}</td><td>{_bytes(s['bytes_per_satellite'])}</td><td>{ratio}</td>"
            f"<td>{_bytes(s['link_bytes_total'])}</td><td>{s['syncs']}/{s['rounds_planned']}</td>"
            f"<td>{s['simulated_s'] / 3600:.2f} h</td><td>{s['sync_wait_s']:.0f} s</td>"
            f"<td>{'yes' if s['models_agree'] else 'no'}</td></tr>"
        )
    val_tokens = [
        {"label": _label(s), "x": s["curves"]["tokens"], "y": s["curves"]["val_loss"]} for s in summaries
    ]
    val_time = [
        {"label": _label(s), "x": [t / 3600 for t in s["curves"]["sim_s"]], "y": s["curves"]["val_loss"]}
        for s in summaries
    ]
    train_tokens = [
        {"label": _label(s), "x": s["curves"]["tokens"], "y": s["curves"]["train_loss"]} for s in summaries
    ]
    parts = [
        f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title><style>",
        "body{background:#11141b;color:#d7dce5;font:14px system-ui,sans-serif;margin:2em;max-width:1000px}",
        "table{border-collapse:collapse}td,th{border-bottom:1px solid #2a3140;padding:4px 8px;text-align:right}",
        "td:first-child,th:first-child{text-align:left}.chart{width:100%;background:#161a23}",
        ".tick,.legend,.label{fill:#aab2c0;font-size:11px}h2{margin-top:1.6em}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
    ]
    s0 = summaries[0]
    parts.append(
        f"<p>{s0['satellites']} satellites in a {escape(s0['formation'])} formation train one model of "
        f"{s0['parameters']:,} parameters. Satellites talk only over optical inter-satellite links while they "
        "see each other; a synchronization waits for the link graph to join its members, and takes its wire "
        "bytes over the slowest hop of the ring.</p>"
    )
    parts.append(
        "<h2>Results</h2><table><tr><th>algorithm</th><th>final val loss</th><th>tokens</th>"
        "<th>all-reduced per satellite</th><th>vs DDP</th><th>over the links</th><th>syncs</th>"
        "<th>simulated time</th><th>waiting for links</th><th>models agree</th></tr>"
        + "".join(rows)
        + "</table>"
    )
    parts.append(
        "<h2>Validation loss against tokens</h2>" + xy_chart(val_tokens, "tokens (all satellites)", "nats")
    )
    parts.append(
        "<h2>Validation loss against simulated time</h2>" + xy_chart(val_time, "simulated hours", "nats")
    )
    parts.append(
        "<h2>Training loss against tokens</h2>" + xy_chart(train_tokens, "tokens (all satellites)", "nats")
    )
    for s in summaries:
        parts.append(f"<h2>Timeline: {escape(_label(s))}</h2>")
        events = [e for e in s.get("timeline", []) if e["kind"] != "link"]
        syncs = [e for e in events if e["kind"] == "sync"]
        if len(syncs) > 40:  # a DDP run syncs every step: say so once
            events = [e for e in events if e["kind"] != "sync"]
            parts.append(
                f"<p>{len(syncs)} syncs, one every {(syncs[-1]['t'] - syncs[0]['t']) / (len(syncs) - 1):.1f} "
                "simulated seconds (not listed one by one).</p>"
            )
        links = [e for e in s.get("timeline", []) if e["kind"] == "link"]
        parts.append(
            f"<p>{len(links)} link windows; "
            + ", ".join(
                f"{escape(e['what'])} {(e['t'] - s['timeline'][0]['t']) / 60:.0f}-"
                f"{(e['end'] - s['timeline'][0]['t']) / 60:.0f} min"
                for e in links[:12]
            )
            + ("..." if len(links) > 12 else "")
            + "</p><table><tr><th>+min</th><th>event</th></tr>"
        )
        t0 = s["timeline"][0]["t"] if s.get("timeline") else 0.0
        for e in events[:200]:
            parts.append(
                f"<tr><td>{(e['t'] - t0) / 60:.1f}</td><td style='text-align:left'>{escape(e['kind'])}: {escape(e['what'])}</td></tr>"
            )
        parts.append("</table>")
        per = s["per_satellite"]
        parts.append(
            "<table><tr><th>satellite</th><th>exit</th><th>val loss</th><th>tokens</th><th>all-reduced</th>"
            "<th>heals</th><th>killed in round</th><th>restarts</th>"
            "<th>faults injected / detected</th><th>false alarms</th><th>steps recomputed / replayed</th>"
            "<th>heal bytes</th></tr>"
            + "".join(
                f"<tr><td>{escape(p['name'])}</td><td>{p['exit_code']}</td>"
                f"<td>{_loss(p['final_val_loss'])}</td>"
                f"<td>{p['tokens'] or 0:,}</td><td>{_bytes(p['bytes_allreduced'])}</td><td>{p['heals']}</td>"
                f"<td>{', '.join(map(str, p['killed'])) or '-'}</td><td>{p['restarts']}</td>"
                f"<td>{p['faults_injected']} / {p['faults_detected']}</td><td>{p.get('false_alarms', 0)}</td>"
                f"<td>{p['recomputed_steps'] or 0} / {p['replayed_steps'] or 0}</td>"
                f"<td>{_bytes(p['heal_bytes'] or 0)}</td></tr>"
                for p in per
            )
            + "</table>"
        )
    parts.append("</body></html>")
    return "".join(parts)
