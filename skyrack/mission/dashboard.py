"""The live view: a dashboard redrawn in place on a terminal, plain log lines otherwise.

It reads the loop's `Snapshot` (no computation of its own) and redraws at most `refresh_s`
times a second on a terminal, once every `log_every_s` as a log line elsewhere; an update
between redraws costs one clock read.
"""

from __future__ import annotations

import sys
import time

from skyrack.orbit.timebase import iso


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "--:--"
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def _bar(fraction: float, width: int = 20) -> str:
    filled = max(0, min(width, round(fraction * width)))
    return "█" * filled + "░" * (width - filled)


def _latlon(lat: float, lon: float) -> str:
    return f"{abs(lat):.1f}°{'N' if lat >= 0 else 'S'} {abs(lon):.1f}°{'E' if lon >= 0 else 'W'}"


def _light(snap) -> str:
    v = snap.values
    state = "SUNLIT" if v["orbit.sunlit"] >= 0.5 else "ECLIPSE"
    if snap.light_change:
        what, eta = snap.light_change
        return f"{state}, {what} in {_minutes(eta)}"
    return state


def _f(value, fmt: str, missing: str = "-") -> str:
    return missing if value is None else format(value, fmt)


def lines(snap) -> list[str]:
    v = snap.values
    total = int(round((snap.end_t - snap.start_t) / snap.tick_s))
    steps = f"{v['train.step']}/{snap.target_steps}"
    return [
        f"\x1b[1m{snap.satellite}\x1b[0m  {snap.run_id}  {iso(snap.t)}  frame {snap.frames}"
        + (f"/{total}" if total else "")
        + f"  ETA {_clock(snap.eta_s)}",
        f"  over      {v['orbit.region']} ({v['orbit.area']})  {_latlon(v['orbit.lat_deg'], v['orbit.lon_deg'])}"
        f"  {v['orbit.alt_km']:.0f} km"
        + ("  \x1b[33mSOUTH ATLANTIC ANOMALY\x1b[0m" if v["orbit.in_saa"] else ""),
        f"  light     {_light(snap)}",
        f"  battery   {_bar(v['power.battery_soc'])} {v['power.battery_soc']:.0%}  {v['power.battery_wh']:.0f} Wh"
        f"   array {v['power.array_w']:.0f} W  load {v['power.load_w']:.0f} W",
        f"  gpu       cap {v['gpu.cap_w']:.0f} W ({v['gpu.throughput']:.0%} speed)  {v['gpu.temp_c']:.1f} °C"
        f"   dose {v['radiation.dose_rad']:.4f} rad",
        f"  upsets    injected {v['faults.injected']}  detected {v['faults.detected']}"
        f"  recovered {v['faults.recovered']}",
        f"  training  step {steps}  loss {_f(v['train.loss'], '.3f')}  val {_f(v['train.val_loss'], '.3f')}"
        f"  {v['train.tokens_per_s']:,.0f} tok/s",
        f"  last      {snap.last_event[:100]}",
    ] + ([f"  link      {snap.link}"] if getattr(snap, "link", "") else [])


def log_line(snap) -> str:
    v = snap.values
    return (
        f"[{iso(snap.t)}] frame {snap.frames} | {v['orbit.region']} | {_light(snap).lower()} | "
        f"battery {v['power.battery_soc']:.0%} | gpu {v['gpu.cap_w']:.0f} W {v['gpu.temp_c']:.0f} C | "
        f"faults {v['faults.injected']}/{v['faults.detected']}/{v['faults.recovered']} | "
        f"step {v['train.step']}/{snap.target_steps} loss {_f(v['train.loss'], '.3f')} | "
        f"{v['train.tokens_per_s']:,.0f} tok/s | ETA {_clock(snap.eta_s)}"
        + (f" | link {snap.link}" if getattr(snap, "link", "") else "")
    )


class Dashboard:
    def __init__(self, stream=None, *, live: bool = True, refresh_s: float = 0.25, log_every_s: float = 10.0):
        self.stream = stream or sys.stdout
        self.tty = live and self.stream.isatty()
        self.enabled = live
        self.every = refresh_s if self.tty else log_every_s
        self.next_at = 0.0
        self.drawn = 0
        self.snap = None
        self.closed = False

    def update(self, snap) -> None:
        self.snap = snap
        if not self.enabled:
            return
        now = time.monotonic()
        if now < self.next_at:
            return
        self.next_at = now + self.every
        self._draw()

    def _draw(self) -> None:
        snap = self.snap
        if snap is None or not snap.values:
            return
        if self.tty:
            out = (f"\x1b[{self.drawn}F" if self.drawn else "") + "".join(
                line + "\x1b[K\n" for line in lines(snap)
            )
            self.drawn = out.count("\n")
        else:
            out = log_line(snap) + "\n"
        self.stream.write(out)
        self.stream.flush()

    def message(self, text: str) -> None:
        """A line that stays (above the dashboard on a terminal)."""
        if self.tty and self.drawn and not self.closed:
            self.stream.write(f"\x1b[{self.drawn}F\x1b[J")
            self.drawn = 0
            self.stream.write(text + "\n")
            self._draw()
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and not self.closed:
            self._draw()
        self.closed = True
