// The dashboard: initial state over REST, then live from the server-sent event stream.
"use strict";

const $ = (sel) => document.querySelector(sel);
const state = { channels: {}, latest: {}, cursor: null, trackAt: -Infinity, trackFetch: 0, token: "",
  commands: new Map(), severity: "info", lastT: null, mode: null };
const SEVERITIES = ["debug", "info", "warning", "error", "critical"];

async function api(path, options = {}) {
  const res = await fetch(path, options);
  let body = null;
  try { body = await res.json(); } catch (e) { body = null; }
  if (!res.ok) {
    const detail = body && body.detail;
    const text = Array.isArray(detail) ? detail.map((d) => `${d.where}: ${d.problem}`).join("; ") : detail;
    throw Object.assign(new Error(text || `HTTP ${res.status}`), { status: res.status });
  }
  return body;
}

const utc = (t) => new Date(t * 1000).toISOString().replace("T", " ").slice(0, 19);
const hhmmss = (t) => new Date(t * 1000).toISOString().slice(11, 19);
const fixed = (v, n) => (v === undefined || v === null ? "–" : (+v).toFixed(n));
// Whether `other` beside `name` says a place twice (skyrack.geo.areas.repeats: the same rule).
function repeats(name, other) {
  const a = ` ${name.replace(/^the /, "")} `, b = ` ${other.replace(/^the /, "")} `;
  return a.includes(b) || b.includes(a);
}
function esc(s) { const d = document.createElement("div"); d.textContent = String(s); return d.innerHTML; }
function latLon(lat, lon) {
  return `${Math.abs(lat).toFixed(1)}°${lat >= 0 ? "N" : "S"} ${Math.abs(lon).toFixed(1)}°${lon >= 0 ? "E" : "W"}`;
}
function limitState(name, value) {
  const c = state.channels[name];
  if (!c || typeof value !== "number") return "nominal";
  if (c.red && (value < c.red[0] || value > c.red[1])) return "red";
  if (c.yellow && (value < c.yellow[0] || value > c.yellow[1])) return "yellow";
  return "nominal";
}

// -- charts and gauges ----------------------------------------------------------------------
let charts = {};
function makeCharts() {
  const ch = state.channels;
  charts = {
    soc: new LineChart($("#c-soc"), [{ name: "power.battery_soc", color: "#3ddc97", fill: "#3ddc9733" }],
      { min: 0, max: 1, bands: limitBands(ch["power.battery_soc"], 0, 1), format: (v) => `${Math.round(v * 100)}%` }),
    power: new LineChart($("#c-power"), [{ name: "power.array_w", color: "#ffd56b", fill: "#ffd56b22" },
      { name: "power.load_w", color: "#8b7bff" }], { min: 0 }),
    temp: new LineChart($("#c-temp"), [{ name: "gpu.temp_c", color: "#ff8a5c", fill: "#ff8a5c22" }],
      { bands: limitBands(ch["gpu.temp_c"], -60, 120) }),
    loss: new LineChart($("#c-loss"), [{ name: "train.loss", color: "#4fd1ff", fill: "#4fd1ff22" },
      { name: "train.val_loss", color: "#8b7bff" }], { format: (v) => v.toFixed(2) }),
  };
}
function feedCharts(t, values) {
  for (const chart of Object.values(charts)) for (const s of chart.series) if (s.name in values) chart.push(s.name, t, values[s.name]);
}
setInterval(() => Object.values(charts).forEach((c) => c.draw()), 250);

function arc(card, fraction, limit) {
  const path = card.querySelector(".fill"), len = path.getTotalLength();
  path.style.strokeDasharray = `${Math.max(0, Math.min(1, fraction)) * len} 1000`;
  card.classList.toggle("state-yellow", limit === "yellow"); card.classList.toggle("state-red", limit === "red");
}

function showValues(t, values) {
  Object.assign(state.latest, values);
  const v = state.latest;
  state.lastT = t;
  if (!state.link || state.link.mode === "ideal") $("#clock").textContent = utc(t); // else the ground's clock
  if (v["orbit.region"] !== undefined) {
    const area = v["orbit.area"] && !repeats(v["orbit.region"], v["orbit.area"]) ? ` · ${v["orbit.area"]}` : "";
    $("#beneath").textContent = `${v["orbit.region"]}${area}`;
  }
  const lit = v["orbit.sunlit"];
  $("#pos").textContent = v["orbit.lat_deg"] !== undefined ? latLon(v["orbit.lat_deg"], v["orbit.lon_deg"]) : "–";
  $("#sunlit").textContent = lit === undefined ? "–" : lit >= 0.999 ? "☀ sunlit" : lit <= 0.001 ? "☾ in eclipse" : `◐ penumbra ${Math.round(lit * 100)}%`;
  $("#alt").textContent = `${fixed(v["orbit.alt_km"], 0)} km · ${fixed(v["orbit.speed_km_s"], 2)} km/s${v["orbit.in_saa"] ? " · in SAA" : ""}`;

  const soc = v["power.battery_soc"];
  const gb = $("#g-battery");
  arc(gb, soc, limitState("power.battery_soc", soc));
  gb.querySelector(".v").textContent = fixed(soc * 100, 0);
  $("#battery-sub").textContent = `${fixed(v["power.battery_wh"], 0)} Wh · ${(v["power.array_w"] || 0) >= (v["power.load_w"] || 0) ? "charging" : "draining"}`;

  const maxW = Math.max(100, v["power.array_w"] || 0, v["power.load_w"] || 0, 800);
  $("#bar-array").style.width = `${(100 * (v["power.array_w"] || 0)) / maxW}%`;
  $("#bar-load").style.width = `${(100 * (v["power.load_w"] || 0)) / maxW}%`;
  $("#bar-cap").style.width = `${(100 * (v["gpu.cap_w"] || 0)) / maxW}%`;
  $("#v-array").textContent = `${fixed(v["power.array_w"], 0)} W`;
  $("#v-load").textContent = `${fixed(v["power.load_w"], 0)} W`;
  $("#v-cap").textContent = (v["gpu.cap_w"] || 0) > 0 ? `${fixed(v["gpu.cap_w"], 0)} W` : "paused";

  const temp = v["gpu.temp_c"], gt = $("#g-temp"), red = (state.channels["gpu.temp_c"] || {}).red || [-40, 85];
  arc(gt, (temp - red[0]) / (red[1] - red[0]), limitState("gpu.temp_c", temp));
  gt.querySelector(".v").textContent = fixed(temp, 1);
  $("#temp-sub").textContent = `limit ${red[1]} °C · throughput ${fixed((v["gpu.throughput"] || 0) * 100, 0)}%`;

  $("#v-loss").textContent = fixed(v["train.loss"], 3);
  $("#train-sub").textContent = `step ${v["train.step"] ?? "–"} · val ${fixed(v["train.val_loss"], 3)} · ${fixed(v["train.tokens_per_s"], 0)} char/s`;
  $("#fault-sub").textContent = `faults ${v["faults.injected"] ?? 0} injected · ${v["faults.detected"] ?? 0} detected · ${v["faults.recovered"] ?? 0} recovered`;

  if (v["orbit.lat_deg"] !== undefined) map.setSatellite(t, v["orbit.lat_deg"], v["orbit.lon_deg"], lit, v["orbit.region"]);
  if (Math.abs(t - state.trackAt) > 600 && Date.now() - state.trackFetch > 2000) refreshTrack(t);
}

async function refreshTrack(t) {
  state.trackFetch = Date.now();
  try {
    const track = await api(`/api/track?at=${t}&before_s=0&after_s=6000&step_s=30`);
    state.trackAt = track.at;
    map.setAhead(track.points.map((p) => [p[0], p[1], p[2]]));
    map.setSubsolar(track.subsolar.lat_deg, track.subsolar.lon_deg);
  } catch (e) { /* the track is decoration; the stream goes on */ }
}

// -- events and commands --------------------------------------------------------------------
function addEvent(e, fresh) {
  if (SEVERITIES.indexOf(e.severity) < SEVERITIES.indexOf(state.severity)) return;
  const li = document.createElement("li");
  li.innerHTML = `<time>${hhmmss(e.t)}</time><span class="sev ${esc(e.severity)}">${esc(e.severity)}</span><span>${esc(e.message)}</span>`;
  if (fresh) li.className = "fresh";
  const log = $("#event-log");
  log.prepend(li);
  while (log.children.length > 300) log.lastChild.remove();
  if (e.name === "command" && e.data && e.data.id) loadCommand(e.data.id);
}

function showCommand(c) {
  state.commands.set(c.id, c);
  let li = document.querySelector(`#command-log li[data-id="${c.id}"]`);
  if (!li) {
    li = document.createElement("li"); li.dataset.id = c.id; $("#command-log").prepend(li);
  }
  const args = Object.entries(c.args || {}).map(([k, v]) => `${k}=${v}`).join(" ");
  li.dataset.status = c.status;
  li.innerHTML = `<span>#${c.id}</span><span>${esc(c.name)} ${esc(args)}</span><span class="st ${esc(c.status)}">${esc(c.status)}</span>`;
}
async function loadCommand(id) { try { showCommand(await api(`/api/commands/${id}`)); } catch (e) { /* next event will retry */ } }

async function sendCommand(button) {
  $("#cmd-error").textContent = "";
  if (!state.token) { $("#cmd-error").textContent = "Enter the ground token first."; $("#token").focus(); return; }
  const args = {};
  if (button.dataset.arg) args[button.dataset.arg] = parseFloat($(`#${button.dataset.input}`).value);
  const key = (crypto.randomUUID ? crypto.randomUUID() : `${Date.now()}-${Math.random()}`).replace(/[^A-Za-z0-9-]/g, "");
  button.disabled = true;
  try {
    // A retry with the same Idempotency-Key is executed once; one retry on a network error.
    const send = () => api("/api/commands", { method: "POST", body: JSON.stringify({ name: button.dataset.command, args }),
      headers: { "content-type": "application/json", authorization: `Bearer ${state.token}`, "idempotency-key": key } });
    let cmd;
    try { cmd = await send(); } catch (e) { if (e.status) throw e; cmd = await send(); }
    showCommand(cmd);
  } catch (e) {
    $("#cmd-error").textContent = e.status === 401 ? "The token was refused." : e.message;
    if (e.status === 401) setToken("");
  } finally { button.disabled = false; }
}

function setToken(token) {
  state.token = token;
  if (token) sessionStorage.setItem("skyrack-ground-token", token); else sessionStorage.removeItem("skyrack-ground-token");
  $("#token-state").textContent = token ? "token set for this tab" : "token needed";
}

// -- chat -------------------------------------------------------------------------------------
const chatHistory = [];
async function ask(question) {
  const log = $("#chat-log");
  const me = document.createElement("li"); me.className = "msg me"; me.textContent = question; log.append(me);
  const sat = document.createElement("li"); sat.className = "msg sat pending"; sat.textContent = "…"; log.append(sat);
  log.scrollTop = log.scrollHeight;
  try {
    let r = await api("/api/chat", { method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ question, history: chatHistory.slice(-6) }) });
    if (r.status === "queued") r = await overTheLink(r, sat); // the satellite answers on board, in contact
    sat.innerHTML = `${esc(r.answer)}<small>${esc(r.mode)}${r.verified ? " · verified against telemetry" : ""}${r.latency_s !== undefined ? ` · ${fixed(r.latency_s, 1)} s` : " · over the link"}</small>`;
    chatHistory.push([question, r.answer]);
  } catch (e) {
    sat.className = "msg sat err"; sat.textContent = e.message;
  }
  sat.classList.remove("pending");
  log.scrollTop = log.scrollHeight;
}

async function overTheLink(q, sat) {
  for (;;) {
    const e = q.expected;
    if (e) {
      sat.textContent = e.in_contact ? `sent to the satellite (in contact with ${e.station}); the answer comes down in this contact`
        : e.next_station ? `the question goes up in the next contact: ${e.next_station} in ${span(e.next_in_s)}; the answer comes down then`
        : "no contact planned: the question waits on the ground";
    }
    await new Promise((ok) => setTimeout(ok, 1500));
    q = await api(`/api/chat/${q.id}`);
    if (q.status === "answered") return q.result;
  }
}

// -- the link ---------------------------------------------------------------------------------
const span = (s) => (s < 90 ? `${Math.round(s)} s` : s < 5400 ? `${Math.round(s / 60)} min` : `${(s / 3600).toFixed(1)} h`);
async function pollLink() {
  try {
    const l = await api("/api/link");
    const before = state.link ? state.link.frames_received : undefined;
    state.link = l;
    showLink(l);
    // Dumps and retransmissions land behind the stream's cursor: read the charts' window again.
    if (l.mode !== "ideal" && before !== undefined && l.frames_received !== before) loadHistory(l.latest_frame_t);
  } catch (e) { /* the next poll tries again */ }
}
function showLink(l) {
  const el = $("#contact");
  if (l.mode === "ideal") {
    el.textContent = "ideal link: every frame reaches the ground as it is written"; el.className = "contact up";
    $("#heard").textContent = ""; return;
  }
  if (l.in_contact) el.textContent = l.left_s === null ? `in contact with ${l.station}` : `in contact with ${l.station}, ${span(l.left_s)} left`;
  else el.textContent = l.next_station ? `no contact · next contact: ${l.next_station} in ${span(l.next_in_s)}` : "no contact · none planned";
  el.className = `contact ${l.in_contact ? "up" : "down"}`;
  const rejected = Object.values(l.rejects || {}).reduce((a, b) => a + b, 0);
  $("#heard").textContent = l.latest_age_s === null ? "nothing received yet"
    : `latest frame ${span(Math.max(0, l.latest_age_s))} old · ${l.frames_received} frames received · ${rejected} packets rejected`;
  if (l.now) $("#clock").textContent = utc(l.now);
  drawTimeline(l);
}
function drawTimeline(l) {
  // Four hours around now (within the mission): a 7-minute pass stays a visible band.
  const meta = state.meta || {}, box = $("#timeline");
  if (!meta.start_t || !l.now) return;
  const t0 = Math.max(meta.start_t, l.now - 3600), t1 = t0 + 4 * 3600;
  const x = (t) => `${(100 * (Math.min(Math.max(t, t0), t1) - t0)) / (t1 - t0)}%`;
  // Styles set through the DOM: the page's Content-Security-Policy refuses inline style attributes.
  box.replaceChildren();
  for (const c of (l.contacts || []).filter((c) => c.set_t > t0 && c.rise_t < t1)) {
    const band = document.createElement("span");
    band.className = "pass"; band.title = `${c.station} ${utc(c.rise_t).slice(11, 16)} UTC`;
    band.style.left = x(c.rise_t); band.style.width = `calc(${x(c.set_t)} - ${x(c.rise_t)})`;
    box.append(band);
  }
  const mark = document.createElement("span");
  mark.className = "now"; mark.style.left = x(l.now);
  box.append(mark);
}
const HISTORY = ["power.battery_soc", "power.array_w", "power.load_w", "gpu.temp_c", "train.loss", "train.val_loss",
  "orbit.lat_deg", "orbit.lon_deg"];
async function loadHistory(until) {
  if (until === null || until === undefined) return;
  const since = until - 2 * 3600;
  const hist = await Promise.all(HISTORY.map((n) => api(`/api/history/${n}?since=${since}&until=${until}&limit=5000`)));
  const byName = Object.fromEntries(hist.map((h) => [h.channel, h.points]));
  byName["power.battery_soc"].forEach((p, i) => {
    const values = {};
    for (const n of HISTORY) if (byName[n][i] && byName[n][i][0] === p[0]) values[n] = byName[n][i][2];
    feedCharts(p[1], values);
    if ("orbit.lat_deg" in values) map.addFlown(p[1], values["orbit.lat_deg"], values["orbit.lon_deg"]);
  });
}

// -- the stream -------------------------------------------------------------------------------
function connect() {
  // EventSource sends the last `id` back as Last-Event-ID when it reconnects: nothing is missed.
  const source = new EventSource(`/api/stream?after=${encodeURIComponent(state.cursor)}`);
  source.onopen = () => { $("#link").className = "dot on"; $("#link-text").textContent = "live link"; };
  source.onerror = () => { $("#link").className = "dot off"; $("#link-text").textContent = "reconnecting…"; };
  source.addEventListener("frame", (m) => {
    const f = JSON.parse(m.data);
    state.cursor = m.lastEventId;
    feedCharts(f.t, f.values);
    showValues(f.t, f.values);
  });
  source.addEventListener("event", (m) => { state.cursor = m.lastEventId; addEvent(JSON.parse(m.data), true); });
}

// summary.json (the report's headline numbers), once the mission has written it.
const SUMMARY_ROWS = [
  ["status", (s) => s.status],
  ["simulated", (s) => `${fixed(s.simulated_hours, 2)} h · ${s.orbits ?? "–"} orbits`],
  ["frames", (s) => `${s.frames}${s.frames_contiguous ? "" : " (gaps)"}`],
  ["sessions", (s) => `${s.sessions} (${s.resumes} resumed)`],
  ["eclipses · SAA", (s) => `${s.eclipses} · ${s.saa_crossings}`],
  ["battery", (s) => `min ${fixed(100 * s.battery_min_soc, 0)}% · end ${fixed(100 * s.battery_end_soc, 0)}%`],
  ["GPU", (s) => `max ${fixed(s.gpu_max_temp_c, 1)} °C · duty ${fixed(100 * s.gpu_duty, 0)}%`],
  ["governor", (s) => `${s.governor_decisions} decisions · ${s.governor_pauses} pauses`],
  ["training", (s) => `${s.training_steps ?? "–"} steps · loss ${fixed(s.first_loss, 3)} → ${fixed(s.final_loss, 3)}`],
  ["validation loss", (s) => fixed(s.final_val_loss, 4)],
  ["faults", (s) => `${s.faults.injected} injected · ${s.faults.detected} detected · ${s.faults.recovered} recovered`],
  ["commands", (s) => Object.entries(s.commands).filter(([, n]) => n).map(([k, n]) => `${n} ${k}`).join(" · ") || "none"],
];
function showSummary(report) {
  if (!report) return false;
  $("#summary-list").innerHTML = SUMMARY_ROWS.map(([label, text]) => {
    let value;
    try { value = text(report); } catch (e) { value = "–"; }
    return `<div><dt>${esc(label)}</dt><dd>${esc(value ?? "–")}</dd></div>`;
  }).join("");
  $("#summary").hidden = false;
  return true;
}
function watchSummary(report) {
  if (showSummary(report)) return;
  const timer = setInterval(async () => {
    try { if (showSummary((await api("/api/summary")).summary)) clearInterval(timer); } catch (e) { /* next time */ }
  }, 20000);
}

let map;
async function main() {
  map = new WorldMap($("#map"));
  const [dict, summary] = await Promise.all([api("/api/channels"), api("/api/summary")]);
  dict.channels.forEach((c) => (state.channels[c.name] = c));
  makeCharts();
  state.cursor = summary.cursor;
  state.mode = summary.mode;
  $("#run-id").textContent = summary.run_id;
  const badge = $("#mode");
  badge.textContent = summary.mode === "live" ? "live" : `replay ${summary.replay_speed}×`;
  badge.className = `badge ${summary.mode}`;
  watchSummary(summary.summary);
  api("/api/map/countries").then((g) => map.setCountries(g));
  api("/api/stations").then((s) => map.setStations(s.stations));
  state.meta = summary.meta;
  const gap = 3 * (summary.meta.frame_interval_s || 10);
  Object.values(charts).forEach((c) => (c.opts.gap = gap));
  await pollLink();
  setInterval(pollLink, 2000);
  const latest = summary.latest;
  if (latest.t !== null) {
    await loadHistory(latest.t);
    showValues(latest.t, Object.fromEntries(Object.entries(latest.values).map(([k, v]) => [k, v.value])));
  }
  const events = await api(`/api/events?last=true&limit=100`);
  events.events.forEach((e) => addEvent(e, false));
  (await api("/api/commands?limit=50")).commands.forEach(showCommand);
  connect();
  api(`/api/passes?station=dubai&hours=24`).then((p) => {
    $("#next-pass").textContent = p.passes.length ? `next Dubai pass ${utc(p.passes[0].rise_t).slice(11, 16)} UTC, max ${p.passes[0].max_elevation_deg.toFixed(0)}°` : "no Dubai pass in 24 h";
  }).catch(() => {});
}

document.addEventListener("DOMContentLoaded", () => {
  setToken(sessionStorage.getItem("skyrack-ground-token") || "");
  $("#token-form").addEventListener("submit", (e) => { e.preventDefault(); setToken($("#token").value.trim()); $("#token").value = ""; });
  $("#chat-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const q = $("#chat-input").value.trim();
    if (q) { $("#chat-input").value = ""; ask(q); }
  });
  document.querySelectorAll("[data-command]").forEach((b) => b.addEventListener("click", () => sendCommand(b)));
  $("#severity").addEventListener("change", async (e) => {
    state.severity = e.target.value;
    $("#event-log").innerHTML = "";
    (await api(`/api/events?last=true&limit=100&severity=${state.severity}`)).events.forEach((ev) => addEvent(ev, false));
  });
  main().catch((e) => { $("#link-text").textContent = `error: ${e.message}`; });
});
