"""Inline SVG figures for the mission report: a world map with the ground track, and time
charts with shaded eclipses and event markers. Plain strings, no dependencies, nothing fetched:
the report must open anywhere, offline."""

from __future__ import annotations

import functools
import math
from html import escape

from skyrack.geo.outlines import country_outlines
from skyrack.orbit import saa

MAP_TOLERANCE_DEG = 0.4  # 1000 px for 360 deg: 0.36 deg a pixel
MAX_POINTS = 1500  # per series: more than a chart's width in pixels


def _hour_ticks(X, t0: float, span_t: float, top: float, ph: float, height: float) -> list[str]:
    """Vertical grid lines and "+N h" labels at a round step, at most about eight of them."""
    step_h = next(s for s in (0.25, 0.5, 1, 2, 3, 6, 12, 24, 48) if span_t / 3600.0 / s <= 8)
    out, k = [], 0
    while k * step_h * 3600 <= span_t + 1e-6:
        x = X(t0 + k * step_h * 3600)
        out.append(
            f'<line x1="{_num(x)}" y1="{top}" x2="{_num(x)}" y2="{top + ph}" stroke="#222836"/>'
            f'<text x="{_num(x)}" y="{height - 8}" text-anchor="middle" class="tick">+{k * step_h:g} h</text>'
        )
        k += 1
    return out


def _num(x: float) -> str:
    return f"{x:.1f}"


# -- the map --------------------------------------------------------------------------------------
def _project(lat: float, lon: float, w: float, h: float) -> tuple[float, float]:
    return (lon + 180.0) / 360.0 * w, (90.0 - lat) / 180.0 * h


@functools.lru_cache(maxsize=2)
def country_paths(w: float, h: float) -> str:
    """Natural Earth country outlines (the region index's own data), simplified, as one path."""
    parts = []
    for _, geom in country_outlines(MAP_TOLERANCE_DEG):
        polygons = getattr(geom, "geoms", [geom])
        for poly in polygons:
            if poly.is_empty:
                continue
            ring = poly.exterior.coords
            pts = [_project(lat, lon, w, h) for lon, lat in ring]
            parts.append("M" + "L".join(f"{_num(x)},{_num(y)}" for x, y in pts) + "Z")
    return "".join(parts)


def _polyline_runs(points, w, h):
    """Split a ground track where it wraps at the antimeridian."""
    run, prev = [], None
    for lat, lon in points:
        if prev is not None and abs(lon - prev) > 180.0:
            yield run
            run = []
        run.append(_project(lat, lon, w, h))
        prev = lon
    if run:
        yield run


def world_map(
    track: list[tuple[float, float, bool]], markers: list[tuple[float, float, str, str]], width: int = 1000
) -> str:
    """track: (lat, lon, sunlit); markers: (lat, lon, colour, tooltip)."""
    w, h = float(width), width / 2.0
    out = [
        f'<svg viewBox="0 0 {width} {int(h)}" class="map" role="img" aria-label="ground track">',
        f'<rect width="{width}" height="{int(h)}" fill="#0b1f33"/>',
    ]
    for lon in range(-150, 180, 30):
        x, _ = _project(0, lon, w, h)
        out.append(
            f'<line x1="{_num(x)}" y1="0" x2="{_num(x)}" y2="{_num(h)}" stroke="#17324d" stroke-width="1"/>'
        )
    for lat in range(-60, 90, 30):
        _, y = _project(lat, 0, w, h)
        out.append(
            f'<line x1="0" y1="{_num(y)}" x2="{width}" y2="{_num(y)}" stroke="#17324d" stroke-width="1"/>'
        )
    out.append(f'<path d="{country_paths(w, h)}" fill="#2c4a3a" stroke="#4f7a62" stroke-width="0.6"/>')
    ellipse = [
        (
            saa.CENTER_LAT_DEG + saa.HALF_LAT_DEG * math.sin(a),
            saa.CENTER_LON_DEG + saa.HALF_LON_DEG * math.cos(a),
        )
        for a in (i * 2 * math.pi / 72 for i in range(73))
    ]
    pts = " ".join(f"{_num(x)},{_num(y)}" for x, y in (_project(la, lo, w, h) for la, lo in ellipse))
    out.append(
        f'<polygon points="{pts}" fill="#d9534f" fill-opacity="0.18" stroke="#d9534f" '
        f'stroke-dasharray="5 4"><title>South Atlantic Anomaly</title></polygon>'
    )
    x, y = _project(saa.CENTER_LAT_DEG, saa.CENTER_LON_DEG, w, h)
    out.append(
        f'<text x="{_num(x)}" y="{_num(y)}" fill="#f0a0a0" font-size="13" text-anchor="middle">SAA</text>'
    )
    # the track, in runs of sunlight and eclipse
    segments, current, lit_now = [], [], None
    for lat, lon, lit in _thin(track):
        if lit_now is not None and lit != lit_now:
            segments.append((lit_now, current + [(lat, lon)]))
            current = []
        current.append((lat, lon))
        lit_now = lit
    if current:
        segments.append((lit_now, current))
    for lit, points in segments:
        colour, dash = ("#ffd24d", "") if lit else ("#8fa3ff", ' stroke-dasharray="3 3"')
        for run in _polyline_runs(points, w, h):
            if len(run) > 1:
                d = "M" + "L".join(f"{_num(x)},{_num(y)}" for x, y in run)
                out.append(f'<path d="{d}" fill="none" stroke="{colour}" stroke-width="2"{dash}/>')
    for lat, lon, colour, tip in markers:
        x, y = _project(lat, lon, w, h)
        out.append(
            f'<circle cx="{_num(x)}" cy="{_num(y)}" r="4" fill="{colour}" stroke="#000" stroke-width="0.5">'
            f"<title>{escape(tip)}</title></circle>"
        )
    if track:
        x, y = _project(track[0][0], track[0][1], w, h)
        out.append(f'<circle cx="{_num(x)}" cy="{_num(y)}" r="5" fill="#fff"><title>start</title></circle>')
        x, y = _project(track[-1][0], track[-1][1], w, h)
        out.append(
            f'<rect x="{_num(x - 5)}" y="{_num(y - 5)}" width="10" height="10" fill="#fff"><title>end</title></rect>'
        )
    out.append("</svg>")
    return "".join(out)


def _thin(points: list, limit: int = MAX_POINTS * 2) -> list:
    if len(points) <= limit:
        return points
    stride = math.ceil(len(points) / limit)
    return points[::stride] + [points[-1]]


# -- time charts -------------------------------------------------------------------------------------
def time_chart(
    series: list[dict],
    *,
    t0: float,
    t1: float,
    y_label: str,
    y_range: tuple[float, float] | None = None,
    bands: list[tuple[float, float]] = (),
    markers: list[dict] = (),
    height: int = 220,
    width: int = 1000,
    hlines: list[tuple[float, str, str]] = (),
) -> str:
    """series: {label, colour, t: [...], y: [...], step?: bool}; bands: shaded (eclipses);
    markers: {t, colour, label, row?} drawn as ticks on the top edge with a tooltip;
    hlines: (value, colour, label) reference lines."""
    left, right, top, bottom = 58, 12, 18, 26
    pw, ph = width - left - right, height - top - bottom
    ys = [y for s in series for y in s["y"] if y is not None and math.isfinite(y)]
    lo, hi = y_range if y_range else ((min(ys), max(ys)) if ys else (0.0, 1.0))
    if hi - lo < 1e-12:
        lo, hi = lo - 1.0, hi + 1.0
    span_t = max(t1 - t0, 1e-9)

    def X(t):
        return left + (t - t0) / span_t * pw

    def Y(v):
        return top + (1.0 - (v - lo) / (hi - lo)) * ph

    out = [f'<svg viewBox="0 0 {width} {height}" class="chart" role="img" aria-label="{escape(y_label)}">']
    for a, b in bands:
        a, b = max(a, t0), min(b, t1)
        if b > a:
            out.append(
                f'<rect x="{_num(X(a))}" y="{top}" width="{_num(X(b) - X(a))}" height="{ph}" fill="#1d2547"/>'
            )
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        y = Y(v)
        out.append(
            f'<line x1="{left}" y1="{_num(y)}" x2="{width - right}" y2="{_num(y)}" stroke="#2a3140"/>'
            f'<text x="{left - 6}" y="{_num(y + 4)}" text-anchor="end" class="tick">{_fmt(v)}</text>'
        )
    out += _hour_ticks(X, t0, span_t, top, ph, height)
    for value, colour, label in hlines:
        if lo <= value <= hi:
            y = Y(value)
            out.append(
                f'<line x1="{left}" y1="{_num(y)}" x2="{width - right}" y2="{_num(y)}" stroke="{colour}" '
                f'stroke-dasharray="6 4"><title>{escape(label)}</title></line>'
            )
    for s in series:
        pts = [(t, y) for t, y in zip(s["t"], s["y"]) if y is not None and math.isfinite(y)]
        pts = _thin(pts, MAX_POINTS)
        if not pts:
            continue
        if s.get("step"):
            d, prev = [], None
            for t, y in pts:
                if prev is not None:
                    d.append(f"L{_num(X(t))},{_num(Y(prev))}")
                d.append(("M" if prev is None else "L") + f"{_num(X(t))},{_num(Y(y))}")
                prev = y
            path = "".join(d)
        else:
            path = "M" + "L".join(f"{_num(X(t))},{_num(Y(y))}" for t, y in pts)
        out.append(f'<path d="{path}" fill="none" stroke="{s["colour"]}" stroke-width="1.6"/>')
    for m in markers:
        if t0 <= m["t"] <= t1:
            x = X(m["t"])
            row = m.get("row", 0)
            out.append(
                f'<line x1="{_num(x)}" y1="{top + row * 7}" x2="{_num(x)}" y2="{top + ph}" stroke="{m["colour"]}" '
                f'stroke-opacity="0.35"/><circle cx="{_num(x)}" cy="{top + 3 + row * 7}" r="3.2" '
                f'fill="{m["colour"]}"><title>{escape(m["label"])}</title></circle>'
            )
    out.append(f'<text x="{left}" y="12" class="label">{escape(y_label)}</text>')
    lx = width - right
    for s in reversed(series):
        text = escape(s["label"])
        lx -= 12 + 7 * len(s["label"])
        out.append(
            f'<rect x="{lx}" y="4" width="9" height="9" fill="{s["colour"]}"/>'
            f'<text x="{lx + 13}" y="12" class="legend">{text}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def job_timeline(
    jobs: list[dict],
    *,
    t0: float,
    t1: float,
    eclipses: list[tuple[float, float]] = (),
    saa: list[tuple[float, float]] = (),
    contacts: list[tuple[float, float]] = (),
    width: int = 1000,
) -> str:
    """The queue and the schedule: a row per job (thin: waiting from submission, thick: on the
    GPU, a dot when its result is on the ground, a tick at its deadline; a refused job is a
    cross at its submission), over eclipses (shaded), contacts (green strips at the foot) and
    the SAA (red strips at the head)."""
    left, right, top, row_h = 58, 12, 24, 14
    rows = max(1, len(jobs))
    ph = rows * row_h
    height = top + ph + 44
    span_t = max(t1 - t0, 1e-9)
    colour = {"screen": "#7ab8ff", "infer": "#ffd24d"}

    def X(t):
        return left + (min(max(t, t0), t1) - t0) / span_t * (width - left - right)

    out = [f'<svg viewBox="0 0 {width} {height}" class="chart" role="img" aria-label="jobs timeline">']
    for a, b in eclipses:
        if b > t0 and a < t1:
            out.append(
                f'<rect x="{_num(X(a))}" y="{top}" width="{_num(X(b) - X(a))}" height="{ph}" fill="#1d2547"/>'
            )
    for a, b in saa:
        if b > t0 and a < t1:
            out.append(
                f'<rect x="{_num(X(a))}" y="{top - 6}" width="{_num(max(X(b) - X(a), 1))}" height="4" fill="#d9534f"/>'
            )
    for a, b in contacts:
        if b > t0 and a < t1:
            out.append(
                f'<rect x="{_num(X(a))}" y="{top + ph + 3}" width="{_num(max(X(b) - X(a), 1.5))}" height="6" '
                f'fill="#8fd19e"/>'
            )
    out += _hour_ticks(X, t0, span_t, top, ph, height)
    for i, j in enumerate(jobs):
        y = top + i * row_h + row_h / 2
        c = colour.get(j["kind"], "#c8cfdb")
        tip = escape(j.get("label", ""))
        out.append(f'<text x="{left - 6}" y="{_num(y + 4)}" text-anchor="end" class="tick">#{j["id"]}</text>')
        if j["state"] == "refused":
            x = X(j["submitted_t"])
            out.append(
                f'<path d="M{_num(x - 4)},{_num(y - 4)}L{_num(x + 4)},{_num(y + 4)}M{_num(x - 4)},{_num(y + 4)}'
                f'L{_num(x + 4)},{_num(y - 4)}" stroke="#ff6b5e" stroke-width="2"><title>{tip}</title></path>'
            )
            continue
        end = j.get("delivered_t") or j.get("ended_t") or t1
        out.append(
            f'<line x1="{_num(X(j["submitted_t"]))}" y1="{_num(y)}" x2="{_num(X(end))}" y2="{_num(y)}" '
            f'stroke="{c}" stroke-opacity="0.4"><title>{tip}</title></line>'
        )
        if j.get("started_t") is not None:
            a, b = X(j["started_t"]), X(j.get("ended_t") or t1)
            out.append(
                f'<rect x="{_num(a)}" y="{_num(y - 4)}" width="{_num(max(b - a, 2))}" height="8" fill="{c}">'
                f"<title>{tip}</title></rect>"
            )
        if j.get("deadline_t") is not None and t0 <= j["deadline_t"] <= t1:
            x = X(j["deadline_t"])
            out.append(
                f'<line x1="{_num(x)}" y1="{_num(y - 6)}" x2="{_num(x)}" y2="{_num(y + 6)}" stroke="#e05a4a"/>'
            )
        if j.get("delivered_t") is not None:
            fill = "#8fd19e" if j.get("deadline_met") is not False else "#ff6b5e"
            out.append(
                f'<circle cx="{_num(X(j["delivered_t"]))}" cy="{_num(y)}" r="3.5" fill="{fill}"><title>{tip}</title></circle>'
            )
        elif j["state"] == "failed":
            out.append(
                f'<circle cx="{_num(X(end))}" cy="{_num(y)}" r="3.5" fill="#ff6b5e"><title>{tip}</title></circle>'
            )
    out.append(f'<text x="{left}" y="12" class="label">Jobs: waiting, on the GPU, on the ground</text>')
    out.append("</svg>")
    return "".join(out)


def _fmt(v: float) -> str:
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:.0f}"
    if a >= 1:
        return f"{v:.1f}"
    return f"{v:.2f}"
