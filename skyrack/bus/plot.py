"""A self-contained SVG of a bus timeline: state of charge, power in and out, GPU temperature and
power cap against time, with eclipses shaded. No plotting library: a few hundred lines of SVG."""

from __future__ import annotations

from html import escape

import numpy as np

WIDTH, PANEL_H, LEFT, RIGHT, TOP, GAP = 960, 130, 70, 20, 40, 34
MAX_POINTS = 1500


def _bands(sunlit: np.ndarray) -> list[tuple[int, int]]:
    dark = np.concatenate(([False], sunlit < 0.5, [False]))
    edges = np.flatnonzero(dark[1:] != dark[:-1])
    return list(zip(edges[::2], edges[1::2]))


def timeline_svg(timeline, title: str) -> str:
    t_h = (timeline.time - timeline.time[0]) / 3600.0
    span = max(float(t_h[-1]), 1e-9)
    stride = max(1, len(t_h) // MAX_POINTS)
    spec = timeline.spec
    panels = [
        (
            "state of charge (%)",
            0.0,
            100.0,
            [("SoC", timeline.soc * 100.0, "#2b7bba")],
            [(spec.battery_reserve_fraction * 100.0, "reserve")],
        ),
        (
            "power (W)",
            0.0,
            None,
            [
                ("array", timeline.array_w, "#e69f00"),
                ("loads", timeline.load_w, "#0072b2"),
                ("shed", timeline.shed_w, "#999999"),
                ("heaters", timeline.heater_w, "#cc79a7"),
            ],
            [],
        ),
        (
            "GPU temperature (C)",
            None,
            None,
            [("GPU", timeline.temp_c, "#d55e00"), ("radiator", timeline.radiator_c, "#cc79a7")],
            [(spec.gpu_temp_limit_c, "limit"), (spec.gpu_min_operating_temp_c, "min operating")],
        ),
        (
            "GPU power cap (W)",
            0.0,
            spec.gpu_max_power_w * 1.05,
            [("cap", timeline.gpu_cap_w, "#009e73")],
            [(spec.gpu_min_power_w, "min")],
        ),
    ]
    height = TOP + len(panels) * (PANEL_H + GAP) + 10
    plot_w = WIDTH - LEFT - RIGHT
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">',
        '<rect width="100%" height="100%" fill="white"/>',
        f'<text x="{LEFT}" y="20" font-size="14">{escape(title)}</text>',
    ]

    def x_of(hours):
        return LEFT + plot_w * hours / span

    for k, (name, lo, hi, series, marks) in enumerate(panels):
        y0 = TOP + k * (PANEL_H + GAP)
        values = np.concatenate([s[1] for s in series] + [np.array([m[0] for m in marks], dtype=float)])
        lo = float(np.min(values)) - 2.0 if lo is None else lo
        hi = float(np.max(values)) + 2.0 if hi is None else hi
        hi = hi if hi > lo else lo + 1.0

        def y_of(v, y0=y0, lo=lo, hi=hi):
            return y0 + PANEL_H * (1.0 - (np.asarray(v) - lo) / (hi - lo))

        for a, b in _bands(timeline.sunlit):
            xa, xb = x_of(t_h[a]), x_of(t_h[min(b, len(t_h) - 1)])
            out.append(
                f'<rect x="{xa:.1f}" y="{y0}" width="{max(xb - xa, 0.5):.1f}" height="{PANEL_H}" '
                f'fill="#e8e8f0"/>'
            )
        out.append(
            f'<rect x="{LEFT}" y="{y0}" width="{plot_w}" height="{PANEL_H}" fill="none" stroke="#888"/>'
        )
        out.append(f'<text x="{LEFT}" y="{y0 - 5}">{escape(name)}</text>')
        out.append(f'<text x="{LEFT - 5}" y="{y0 + 10}" text-anchor="end">{hi:.0f}</text>')
        out.append(f'<text x="{LEFT - 5}" y="{y0 + PANEL_H}" text-anchor="end">{lo:.0f}</text>')
        for value, label in marks:
            y = float(y_of(value))
            out.append(
                f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y:.1f}" y2="{y:.1f}" stroke="#c00" '
                f'stroke-dasharray="4 3"/><text x="{LEFT + plot_w - 2}" y="{y - 3:.1f}" text-anchor="end" '
                f'fill="#c00">{escape(label)}</text>'
            )
        legend_x = LEFT + 200
        for label, values_s, color in series:
            xs, ys = x_of(t_h[::stride]), y_of(values_s[::stride])
            points = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(xs, ys))
            out.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.3" points="{points}"/>')
            out.append(f'<text x="{legend_x}" y="{y0 - 5}" fill="{color}">{escape(label)}</text>')
            legend_x += 70
    axis_y = TOP + len(panels) * (PANEL_H + GAP) - GAP + 14
    step = max(1, int(np.ceil(span / 12)))
    for h in range(0, int(span) + 1, step):
        out.append(f'<text x="{x_of(h):.1f}" y="{axis_y}" text-anchor="middle">{h} h</text>')
    out.append(
        f'<text x="{LEFT + plot_w}" y="{axis_y + 14}" text-anchor="end">hours from start; '
        f"shaded: eclipse</text>"
    )
    out.append("</svg>")
    return "\n".join(out) + "\n"
