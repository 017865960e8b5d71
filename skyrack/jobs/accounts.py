"""The day's commercial work in figures: every job as the ground saw it (the ledger: submitted,
refused, delivered, latency, deadline met) joined with what the satellite did (the service's
state: when it ran, its wall time here, its result's size), and the totals the mission report,
its summary.json and `bench/jobs.py` show.

Definitions:
- deadline hit-rate: accepted jobs with a deadline whose result was on the ground by it, over
  all accepted jobs with a deadline (a job failed by a crash or an upset counts as a miss; the
  rate without those is given too, as `hit_rate_not_failed`);
- latency: from submission to the result complete on the ground (the ideal link: to `done`);
- GPU utilisation: the share of the GPU compute the bus allowed that jobs and training used
  (`gpu_busy`), and the GPU's idle share while work was waiting and power allowed
  (`idle_while_work`);
- the screening downlink reduction: 1 - result bytes / raw bytes of the tiles, over done
  `screen` jobs (what would have come down without screening).
"""

from __future__ import annotations

import numpy as np

from skyrack.jobs.service import META_KEY


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def ground_records(run) -> list[dict]:
    """The ledger's records of every job (none where the run has no ledger)."""
    from skyrack.errors import UserError
    from skyrack.jobs import ledger

    try:
        return sorted(ledger.jobs_of(run, None), key=lambda r: r["id"])
    except (UserError, OSError, LookupError, ValueError):
        return []
    except Exception as exc:  # an archive without the ledger's table
        if "no such table" in str(exc):
            return []
        raise


def commercial(run, archive) -> dict | None:
    """The jobs and their totals (None: a mission without jobs)."""
    board = archive.meta(META_KEY) or {}
    records = ground_records(run)
    if not records and not board.get("jobs"):
        return None
    onboard = {int(k): v for k, v in (board.get("jobs") or {}).items()}
    jobs = []
    for r in records:
        b = onboard.get(r["id"], {})
        summary = b.get("summary") or {}
        jobs.append(
            {
                "id": r["id"],
                "customer": r["customer"],
                "kind": r["kind"],
                "priority": r["priority"],
                "avoid_saa": r["avoid_saa"],
                "submitted_t": r["submitted_t"],
                "deadline_t": r["deadline_t"],
                "state": r["state"],
                "reason": (r.get("refused") or {}).get("reason") or (b.get("reason") if b else None),
                "queued_t": b.get("queued_t"),
                "started_t": b.get("started_t"),
                "ended_t": b.get("ended_t"),
                "delivered_t": r.get("delivered_t"),
                "latency_s": r.get("latency_s"),
                "deadline_met": r.get("deadline_met"),
                "energy_wh": b.get("energy_wh", r.get("energy_wh")),
                "gpu_s": b.get("used_s", b.get("paid_s", r.get("gpu_s"))),
                "attempts": b.get("attempt", 1),
                "wall_s": b.get("wall_s"),
                "price_usd": b.get("price_usd", r.get("price_usd")),
                "result_bytes": b.get("result_bytes"),
                "raw_bytes": summary.get("raw_bytes"),
                "radiation": "radiation" in str(b.get("reason") or ""),
            }
        )
    return {"jobs": jobs, "totals": totals(jobs, board)}


def totals(jobs: list[dict], board: dict) -> dict:
    accepted = [j for j in jobs if j["state"] != "refused"]
    timed = [j for j in accepted if j["deadline_t"] is not None]
    met = [j for j in timed if j["deadline_met"]]
    timed_ok = [j for j in timed if j["state"] != "failed"]
    latencies = [j["latency_s"] for j in jobs if j["latency_s"] is not None]
    done = [j for j in accepted if j["state"] in ("done", "delivered")]
    screens = [j for j in done if j["kind"] == "screen" and j["raw_bytes"] and j["result_bytes"] is not None]
    raw = sum(j["raw_bytes"] for j in screens)
    t = board.get("totals") or {}
    granted = None
    energy = {k: round(t.get(k, 0.0), 3) for k in ("jobs_wh", "training_wh", "idle_wh", "gpu_wh")}
    powered_work = t.get("work_powered_s", 0.0)
    revenue = [j["price_usd"] for j in done if j["price_usd"] is not None]
    return {
        "submitted": len(jobs),
        "refused": len(jobs) - len(accepted),
        "accepted": len(accepted),
        "done": len(done),
        "delivered": sum(1 for j in accepted if j["state"] == "delivered"),
        "failed": sum(1 for j in accepted if j["state"] == "failed"),
        "failed_radiation": sum(1 for j in accepted if j["state"] == "failed" and j["radiation"]),
        "with_deadline": len(timed),
        "deadlines_met": len(met),
        "hit_rate": round(len(met) / len(timed), 4) if timed else None,
        "hit_rate_not_failed": round(sum(1 for j in timed_ok if j["deadline_met"]) / len(timed_ok), 4)
        if timed_ok
        else None,
        "latency_p50_s": _pct(latencies, 50),
        "latency_p95_s": _pct(latencies, 95),
        "energy_wh": energy,
        "energy_per_job_wh": round(sum(j["energy_wh"] or 0.0 for j in done) / len(done), 3) if done else None,
        "gpu_s_per_job": round(sum(j["gpu_s"] or 0.0 for j in done) / len(done), 1) if done else None,
        "jobs_gpu_s": round(t.get("jobs_gpu_s", 0.0), 1),
        "idle_while_work": round(t.get("work_idle_s", 0.0) / powered_work, 4) if powered_work else granted,
        "revenue_usd": round(sum(revenue), 4) if revenue else None,
        "screen_raw_bytes": raw,
        "screen_result_bytes": sum(j["result_bytes"] for j in screens),
        "screen_downlink_reduction": round(1.0 - sum(j["result_bytes"] for j in screens) / raw, 4)
        if raw
        else None,
    }
