// The world map: equirectangular, drawn from the server's country outlines (the twin's own
// Natural Earth data), with the night side, the ground track, stations and the satellite.
"use strict";

class WorldMap {
  constructor(container) {
    this.el = container;
    this.canvas = container.querySelector("canvas");
    this.base = document.createElement("canvas"); // countries + graticule, redrawn on resize only
    this.night = document.createElement("canvas"); // 360 x 180 shading, redrawn when the Sun moves
    this.night.width = 360; this.night.height = 180;
    this.countries = null; this.stations = []; this.flown = []; this.ahead = [];
    this.sat = null; this.subsolar = null; this.nightFor = null; this.size = [0, 0];
    new ResizeObserver(() => { this.size = [0, 0]; this.draw(); }).observe(container);
  }

  x(lon, w) { return ((lon + 180) / 360) * w; }
  y(lat, h) { return ((90 - lat) / 180) * h; }

  setCountries(geojson) { this.countries = geojson; this.size = [0, 0]; this.draw(); }
  setStations(list) { this.stations = list; this.draw(); }
  setAhead(points) { this.ahead = points; this.draw(); }
  setSubsolar(lat, lon) { this.subsolar = [lat, lon]; this.draw(); }

  addFlown(t, lat, lon) {
    const f = this.flown;
    if (f.length && t <= f[f.length - 1][0]) return;
    f.push([t, lat, lon]);
    while (f.length && f[0][0] < t - 5400) f.shift(); // one orbit behind
  }

  setSatellite(t, lat, lon, sunlit, label) {
    this.sat = { t, lat, lon, sunlit, label };
    this.addFlown(t, lat, lon);
    const w = this.el.clientWidth, h = this.el.clientHeight;
    // Exposed for people inspecting the page and for the end-to-end test.
    Object.assign(this.el.dataset, { satLat: lat.toFixed(3), satLon: lon.toFixed(3),
      satX: this.x(lon, w).toFixed(1), satY: this.y(lat, h).toFixed(1), satT: String(t) });
    this.draw();
  }

  drawBase(w, h, dpr) {
    const b = this.base; b.width = w * dpr; b.height = h * dpr;
    const g = b.getContext("2d"); g.setTransform(dpr, 0, 0, dpr, 0, 0);
    const sea = g.createLinearGradient(0, 0, 0, h);
    sea.addColorStop(0, "#0b1d36"); sea.addColorStop(0.5, "#0c2444"); sea.addColorStop(1, "#0b1d36");
    g.fillStyle = sea; g.fillRect(0, 0, w, h);
    g.strokeStyle = "#ffffff10"; g.lineWidth = 1;
    for (let lon = -180; lon <= 180; lon += 30) { g.beginPath(); g.moveTo(this.x(lon, w), 0); g.lineTo(this.x(lon, w), h); g.stroke(); }
    for (let lat = -60; lat <= 60; lat += 30) { g.beginPath(); g.moveTo(0, this.y(lat, h)); g.lineTo(w, this.y(lat, h)); g.stroke(); }
    g.strokeStyle = "#ffffff22"; g.beginPath(); g.moveTo(0, h / 2); g.lineTo(w, h / 2); g.stroke();
    if (!this.countries) return;
    g.fillStyle = "#1f3350"; g.strokeStyle = "#4a6a94"; g.lineWidth = 0.6;
    for (const f of this.countries.features) {
      const geom = f.geometry;
      const polys = geom.type === "Polygon" ? [geom.coordinates] : geom.type === "MultiPolygon" ? geom.coordinates : [];
      g.beginPath();
      for (const poly of polys) for (const ring of poly) {
        ring.forEach(([lon, lat], i) => (i ? g.lineTo(this.x(lon, w), this.y(lat, h)) : g.moveTo(this.x(lon, w), this.y(lat, h))));
        g.closePath();
      }
      g.fill("evenodd"); g.stroke();
    }
  }

  drawNight() {
    // Sun elevation at each 1-degree cell; darker beyond civil, nautical, astronomical twilight.
    const [slat, slon] = this.subsolar, d = Math.PI / 180;
    const g = this.night.getContext("2d"), img = g.createImageData(360, 180), px = img.data;
    const sa = Math.sin(slat * d), ca = Math.cos(slat * d);
    for (let row = 0; row < 180; row++) {
      const lat = (89.5 - row) * d, sl = Math.sin(lat), cl = Math.cos(lat);
      for (let col = 0; col < 360; col++) {
        const lon = (col - 179.5) * d;
        const elev = Math.asin(sl * sa + cl * ca * Math.cos(lon - slon * d)) / d;
        const a = elev > 0 ? 0 : Math.min(1, 0.35 + (-elev / 18) * 0.65) * (elev > -0.8 ? 0.5 : 1);
        const k = (row * 360 + col) * 4;
        px[k] = 2; px[k + 1] = 4; px[k + 2] = 14; px[k + 3] = Math.round(a * 175);
      }
    }
    g.putImageData(img, 0, 0);
    this.nightFor = this.subsolar.join(",");
  }

  line(g, pts, w, h) {
    g.beginPath();
    let prev = null;
    for (const [, lat, lon] of pts) {
      const X = this.x(lon, w), Y = this.y(lat, h);
      if (prev === null || Math.abs(lon - prev) > 180) g.moveTo(X, Y); else g.lineTo(X, Y);
      prev = lon;
    }
    g.stroke();
  }

  draw() {
    if (this._queued) return;
    this._queued = true;
    requestAnimationFrame(() => { this._queued = false; this.render(); });
  }

  render() {
    const w = this.el.clientWidth, h = this.el.clientHeight, dpr = window.devicePixelRatio || 1;
    if (!w || !h) return;
    if (this.size[0] !== w || this.size[1] !== h) {
      this.canvas.width = w * dpr; this.canvas.height = h * dpr; this.drawBase(w, h, dpr); this.size = [w, h];
    }
    const g = this.canvas.getContext("2d");
    g.setTransform(1, 0, 0, 1, 0, 0); g.drawImage(this.base, 0, 0);
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    if (this.subsolar) {
      if (this.nightFor !== this.subsolar.join(",")) this.drawNight();
      g.imageSmoothingEnabled = true; g.drawImage(this.night, 0, 0, w, h);
      const sx = this.x(this.subsolar[1], w), sy = this.y(this.subsolar[0], h);
      const glow = g.createRadialGradient(sx, sy, 0, sx, sy, 26);
      glow.addColorStop(0, "#ffd56bcc"); glow.addColorStop(1, "#ffd56b00");
      g.fillStyle = glow; g.beginPath(); g.arc(sx, sy, 26, 0, 7); g.fill();
      g.fillStyle = "#ffe7a3"; g.beginPath(); g.arc(sx, sy, 5, 0, 7); g.fill();
    }
    // Next orbit: dashed, from the twin's prediction.
    const t = this.sat ? this.sat.t : -Infinity;
    g.setLineDash([4, 5]); g.strokeStyle = "#b9c6ffaa"; g.lineWidth = 1.4;
    this.line(g, this.ahead.filter((p) => p[0] >= t), w, h);
    g.setLineDash([]);
    g.strokeStyle = "#4fd1ff"; g.lineWidth = 2.2; g.shadowColor = "#4fd1ff"; g.shadowBlur = 6;
    this.line(g, this.flown, w, h);
    g.shadowBlur = 0;
    g.font = "10px system-ui, sans-serif";
    for (const s of this.stations) {
      const X = this.x(s.lon_deg, w), Y = this.y(s.lat_deg, h);
      g.fillStyle = "#ffc83d"; g.beginPath(); g.moveTo(X, Y - 5); g.lineTo(X + 4.5, Y + 3.5); g.lineTo(X - 4.5, Y + 3.5); g.closePath(); g.fill();
      g.fillStyle = "#ffc83d99"; g.fillText(s.name.split(" (")[0], X + 6, Y + 3);
    }
    if (this.sat) {
      const X = this.x(this.sat.lon, w), Y = this.y(this.sat.lat, h);
      const phase = (performance.now() / 1400) % 1;
      g.strokeStyle = `rgba(79,209,255,${1 - phase})`; g.lineWidth = 1.5;
      g.beginPath(); g.arc(X, Y, 6 + phase * 16, 0, 7); g.stroke();
      g.fillStyle = "#fff"; g.shadowColor = this.sat.sunlit >= 0.5 ? "#ffd56b" : "#4fd1ff"; g.shadowBlur = 14;
      g.beginPath(); g.arc(X, Y, 5.5, 0, 7); g.fill(); g.shadowBlur = 0;
      g.fillStyle = "#4fd1ff"; g.fillRect(X - 13, Y - 1.5, 7, 3); g.fillRect(X + 6, Y - 1.5, 7, 3); // solar wings
      if (this.sat.label) {
        g.font = "600 12px system-ui, sans-serif";
        const tw = g.measureText(this.sat.label).width, lx = Math.min(w - tw - 12, X + 14), ly = Math.max(16, Y - 12);
        g.fillStyle = "#070b14cc"; g.fillRect(lx - 5, ly - 12, tw + 10, 17);
        g.fillStyle = "#fff"; g.fillText(this.sat.label, lx, ly);
      }
      clearTimeout(this._pulse); // keep the pulse going, at 10 frames a second
      this._pulse = setTimeout(() => this.draw(), 100);
    }
  }
}

window.WorldMap = WorldMap;
