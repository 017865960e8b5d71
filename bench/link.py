"""Benchmark: the space-ground link of the default mission.

1. Packets: housekeeping frames encoded and decoded per second (spacepackets + the ground's
   checks), against what a mission needs: its frame rate in wall time (the default mission flies
   ~1,200 frames in 300 s) and the peak, a contact's first frame dumping the whole backlog
   within one frame's wall time.
2. Per link mode, the default mission's frames and events (real times, synthetic values; the
   link does not care what the values are) flown through the real link with its loss: the
   ground archive's completeness at the mission's end and after the dump that follows, the
   median and p99 latency from generation to ground, and the link's wall cost per frame.
3. Contact minutes per day over ten days, for Wallops alone and for the profile's network,
   against an analytic estimate: the density of the sub-satellite point of a circular inclined
   orbit, 1 / (2 pi^2 sqrt(sin^2 i - sin^2 lat)) per steradian, integrated over each station's
   visibility cap (Earth central angle arccos(R cos e / (R + h)) - e at mask e).

    python3 bench/link.py [--loss 0.02] [--days 10] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skyrack.link import packets as P  # noqa: E402
from skyrack.link.contacts import contact_minutes_per_day, station_contacts  # noqa: E402
from skyrack.link.radio import radio_of  # noqa: E402
from skyrack.link.session import Link  # noqa: E402
from skyrack.mission.runner import DEFAULT_ORBITS, DEFAULT_WALL_S, default_start  # noqa: E402
from skyrack.orbit.stations import resolve_station  # noqa: E402
from skyrack.orbit.twin import OrbitTwin  # noqa: E402
from skyrack.profile import load_profile  # noqa: E402
from skyrack.telemetry.archive import Archive, Event  # noqa: E402
from skyrack.telemetry.dictionary import CHANNELS  # noqa: E402

TICK_S = 10.0
EARTH_R_KM = 6378.137


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def frame_values(k: int) -> dict:
    values = {}
    for c in CHANNELS:
        values[c.name] = {"float": 1.0 + k * 1e-3, "int": k, "bool": k % 2 == 0, "str": "Atlantic Ocean"}[
            c.type
        ]
    return values


def packet_rates(n: int) -> dict:
    values = [frame_values(k) for k in range(64)]
    t0 = time.perf_counter()
    raws = [P.encode_frame(k + 1, 1.7e9 + k * TICK_S, values[k % 64], k) for k in range(n)]
    encode_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for raw in raws:
        P.decode(raw)
    decode_s = time.perf_counter() - t0
    return {"encode_per_s": n / encode_s, "decode_per_s": n / decode_s, "bytes": len(raws[0])}


def fly_link(mode: str, twin, radio, start: float, frames: int, loss: float, workdir: Path) -> dict:
    store = Archive(workdir / f"{mode}-telemetry.sqlite")
    end = start + frames * TICK_S
    link = Link.build(
        mode, radio, twin, store, workdir / f"{mode}-ground.sqlite", start=start, end=end, seed=1, loss=loss
    )
    carry_s, in_contact = [], []
    for k in range(frames):
        t = start + k * TICK_S
        events = [Event("eclipse_entry", {})] if k % 50 == 0 else []
        store.write_frame(t, frame_values(k), events)
        c0 = time.perf_counter()
        link.carry(t, t + TICK_S)
        carry_s.append(time.perf_counter() - c0)
        in_contact.append(bool(link.schedule.overlapping(t, t + TICK_S)))
    at_end = link.ground.completeness()
    done = link.drain(end)
    latency = link.ground.latencies()
    carry = np.array(carry_s)
    inside = np.array(in_contact)
    out = {
        "frames": frames,
        "contacts_in_mission": sum(1 for c in link.schedule.contacts if c.rise_s < end),
        "complete_at_end": at_end["frames_received"] / frames,
        "complete_after_dump": link.ground.received_ids("hk").size / frames,
        "complete_after_s": None if done is None else done - end,
        "latency_median_s": float(np.median(latency)),
        "latency_p99_s": float(np.percentile(latency, 99)),
        "rejected": link.ground.completeness()["rejected"],
        "carry_ms_out_of_contact": float(carry[~inside].mean() * 1e3) if (~inside).any() else None,
        "carry_ms_in_contact": float(carry[inside].mean() * 1e3) if inside.any() else None,
        "carry_ms_max": float(carry.max() * 1e3),
    }
    link.close()
    store.close()
    return out


def analytic_minutes_per_day(twin, station, min_elevation_deg: float) -> float:
    alt = float(np.mean(twin.state(twin.satellite.epoch.timestamp() + np.arange(0, 6000, 60.0)).alt_km))
    inc = twin.satellite.satrec.inclo
    eps = np.radians(min_elevation_deg)
    lam = np.arccos(EARTH_R_KM * np.cos(eps) / (EARTH_R_KM + alt)) - eps
    # Integrate the sub-satellite density over the cap, on a polar grid around the station.
    lat0, lon0 = np.radians(station.lat_deg), np.radians(station.lon_deg)
    r = np.linspace(0, lam, 400)[1:]
    az = np.linspace(0, 2 * np.pi, 720, endpoint=False)
    R, A = np.meshgrid(r, az, indexing="ij")
    lat = np.arcsin(np.sin(lat0) * np.cos(R) + np.cos(lat0) * np.sin(R) * np.cos(A))
    gap = np.sin(inc) ** 2 - np.sin(lat) ** 2
    density = np.where(gap > 1e-9, 1.0 / (2 * np.pi**2 * np.sqrt(np.clip(gap, 1e-9, None))), 0.0)
    d_area = np.sin(R) * (r[1] - r[0]) * (az[1] - az[0])
    _ = lon0  # the density does not depend on longitude
    return float((density * d_area).sum() * 1440.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loss", type=float, default=None, help="packet loss (default: the profile's)")
    parser.add_argument("--days", type=float, default=10.0, help="days of contacts to count (default 10)")
    parser.add_argument("--packets", type=int, default=20000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    profile = load_profile("starcloud-1")
    radio = radio_of(profile)
    twin = OrbitTwin(profile.satellite)
    start = default_start(twin, profile.satellite.epoch.timestamp())
    frames = int(round(DEFAULT_ORBITS * twin.period_s / TICK_S))
    loss = radio.packet_loss if args.loss is None else args.loss

    rates = packet_rates(args.packets)
    needed_mean = frames / DEFAULT_WALL_S
    needed_peak = frames / (DEFAULT_WALL_S / frames)  # a whole mission's backlog within one frame's wall time
    with tempfile.TemporaryDirectory() as tmp:
        modes = {m: fly_link(m, twin, radio, start, frames, loss, Path(tmp)) for m in ("ground", "relay")}
    modes["ideal"] = {
        "complete_at_end": 1.0,
        "latency_median_s": 0.0,
        "latency_p99_s": 0.0,
        "note": "the ground reads the on-board store",
    }

    t0 = twin.satellite.epoch.timestamp()
    span = args.days * 86400.0
    wallops = resolve_station("wallops")
    from dataclasses import replace

    only_wallops = replace(radio, stations=("wallops",))
    contacts = {
        "wallops": contact_minutes_per_day(station_contacts(twin, only_wallops, t0, t0 + span), args.days),
        "network": contact_minutes_per_day(station_contacts(twin, radio, t0, t0 + span), args.days),
    }
    analytic = {
        "wallops": analytic_minutes_per_day(twin, wallops, radio.min_elevation_deg),
        "network": sum(
            analytic_minutes_per_day(twin, resolve_station(s), radio.min_elevation_deg)
            for s in radio.stations
        ),
    }
    result = {
        "machine": {"cpu": cpu_model(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "packets": {**rates, "needed_mean_per_s": needed_mean, "needed_peak_per_s": needed_peak},
        "modes": modes,
        "loss": loss,
        "contact_minutes_per_day": {"twin": contacts, "analytic": analytic, "days": args.days},
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    m = result["machine"]
    print(f"link benchmark ({m['cpu']}, {m['cpus']} cpus, Python {m['python']})")
    print(
        f"packets ({rates['bytes']} B housekeeping): encode {rates['encode_per_s']:,.0f}/s, decode "
        f"{rates['decode_per_s']:,.0f}/s; the mission needs {needed_mean:.1f}/s on average, "
        f"{needed_peak:,.0f}/s at a contact's first frame (its whole backlog in one frame's wall time)"
    )
    print(f"default mission, {frames} frames, {loss:.0%} packet loss:")
    for name, r in modes.items():
        if name == "ideal":
            print("  ideal   complete 100% at the end, latency 0 (the ground reads the on-board store)")
            continue
        after = "never" if r["complete_after_s"] is None else f"{r['complete_after_s'] / 60:.0f} min after"
        print(
            f"  {name:<7} {r['contacts_in_mission']} contacts; complete {r['complete_at_end']:.1%} at the end, "
            f"100% {after}; latency median {r['latency_median_s']:.0f} s, p99 {r['latency_p99_s']:.0f} s; "
            f"{r['rejected']} rejected; link cost per frame {r['carry_ms_out_of_contact'] or 0:.3f} ms out of contact, "
            f"{r['carry_ms_in_contact'] or 0:.2f} ms in contact (max {r['carry_ms_max']:.0f} ms)"
        )
    c = result["contact_minutes_per_day"]
    print(
        f"contact minutes per day over {args.days:g} days above {radio.min_elevation_deg:g} deg: Wallops "
        f"{c['twin']['wallops']:.1f} (analytic {c['analytic']['wallops']:.1f}); the network "
        f"{c['twin']['network']:.1f} (analytic, stations summed {c['analytic']['network']:.1f})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
