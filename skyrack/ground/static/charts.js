// Small hand-written canvas line charts: time on x, one or more series, limit bands.
"use strict";

class LineChart {
  // series: [{name, color, fill}], opts: {min, max, bands: [{lo, hi, color}], format}
  constructor(canvas, series, opts = {}) {
    this.canvas = canvas;
    this.series = series.map((s) => ({ ...s, points: [] }));
    this.opts = opts;
    this.window = opts.window || 2 * 3600; // simulated seconds shown
    this.dirty = true;
  }

  push(name, t, v) {
    const s = this.series.find((x) => x.name === name);
    if (!s || v === null || v === undefined || !Number.isFinite(+v)) return;
    const pts = s.points;
    // Over a real link frames arrive late and out of order (dumps, retransmissions): keep time order.
    let i = pts.length;
    while (i > 0 && pts[i - 1][0] > t) i--;
    if (i > 0 && pts[i - 1][0] === t) return; // already have it (history + stream overlap)
    pts.splice(i, 0, [t, +v]);
    const cut = pts[pts.length - 1][0] - this.window * 1.5;
    while (pts.length > 2 && pts[0][0] < cut) pts.shift();
    this.dirty = true;
  }

  draw() {
    if (!this.dirty) return;
    this.dirty = false;
    const c = this.canvas, dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth, h = c.clientHeight;
    if (!w || !h) return;
    if (c.width !== Math.round(w * dpr)) { c.width = Math.round(w * dpr); c.height = Math.round(h * dpr); }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const all = this.series.flatMap((s) => s.points);
    if (!all.length) {
      g.fillStyle = "#4b5873"; g.font = "12px system-ui"; g.fillText("waiting for telemetry…", 8, h / 2);
      return;
    }
    const tMax = Math.max(...all.map((p) => p[0]));
    const tMin = Math.max(Math.min(...all.map((p) => p[0])), tMax - this.window);
    const shown = all.filter((p) => p[0] >= tMin);
    let lo = this.opts.min ?? Math.min(...shown.map((p) => p[1]));
    let hi = this.opts.max ?? Math.max(...shown.map((p) => p[1]));
    if (hi - lo < 1e-9) { hi += 1; lo -= 1; }
    const pad = { l: 38, r: 6, t: 6, b: 16 };
    const X = (t) => pad.l + ((t - tMin) / Math.max(1, tMax - tMin)) * (w - pad.l - pad.r);
    const Y = (v) => pad.t + (1 - (v - lo) / (hi - lo)) * (h - pad.t - pad.b);

    for (const band of this.opts.bands || []) { // limit zones, drawn under the data
      const top = Y(Math.min(hi, band.hi)), bottom = Y(Math.max(lo, band.lo));
      if (bottom > top) { g.fillStyle = band.color; g.fillRect(pad.l, top, w - pad.l - pad.r, bottom - top); }
    }
    g.strokeStyle = "#1a2540"; g.lineWidth = 1; g.fillStyle = "#5c6a88"; g.font = "10px ui-monospace, monospace";
    const fmt = this.opts.format || ((v) => (Math.abs(hi - lo) < 5 ? v.toFixed(2) : v.toFixed(0)));
    for (let k = 0; k <= 3; k++) {
      const v = lo + (k / 3) * (hi - lo), y = Y(v);
      g.beginPath(); g.moveTo(pad.l, y); g.lineTo(w - pad.r, y); g.stroke();
      g.fillText(fmt(v), 2, y + 3);
    }
    for (let k = 0; k <= 3; k++) {
      const t = tMin + (k / 3) * (tMax - tMin);
      const label = new Date(t * 1000).toISOString().slice(11, 16);
      g.fillText(label, Math.min(w - 30, Math.max(pad.l, X(t) - 14)), h - 3);
    }
    for (const s of this.series) {
      const pts = s.points.filter((p) => p[0] >= tMin);
      if (pts.length < 2) continue;
      // A gap (frames not received) stays a gap: the line breaks, nothing is interpolated.
      const gap = this.opts.gap || Infinity;
      const trace = () => pts.forEach((p, i) => (i && p[0] - pts[i - 1][0] <= gap ? g.lineTo(X(p[0]), Y(p[1])) : g.moveTo(X(p[0]), Y(p[1]))));
      g.beginPath();
      trace();
      if (s.fill && gap === Infinity) {
        const grad = g.createLinearGradient(0, pad.t, 0, h - pad.b);
        grad.addColorStop(0, s.fill); grad.addColorStop(1, "transparent");
        g.save(); g.lineTo(X(pts[pts.length - 1][0]), h - pad.b); g.lineTo(X(pts[0][0]), h - pad.b); g.closePath();
        g.fillStyle = grad; g.fill(); g.restore();
        g.beginPath(); trace();
      }
      g.strokeStyle = s.color; g.lineWidth = 1.6; g.stroke();
      const last = pts[pts.length - 1];
      g.fillStyle = s.color; g.beginPath(); g.arc(X(last[0]), Y(last[1]), 2.5, 0, 7); g.fill();
    }
  }
}

// Limit bands of a dictionary channel as chart zones: red outside red, yellow between.
function limitBands(channel, lo, hi) {
  const bands = [];
  if (!channel) return bands;
  const add = (a, b, color) => { if (b > a) bands.push({ lo: a, hi: b, color }); };
  if (channel.red) { add(lo - 1e9, channel.red[0], "#ff5d6c22"); add(channel.red[1], hi + 1e9, "#ff5d6c22"); }
  if (channel.yellow) {
    add(channel.red ? channel.red[0] : lo - 1e9, channel.yellow[0], "#ffc83d1c");
    add(channel.yellow[1], channel.red ? channel.red[1] : hi + 1e9, "#ffc83d1c");
  }
  return bands;
}

window.LineChart = LineChart;
window.limitBands = limitBands;
