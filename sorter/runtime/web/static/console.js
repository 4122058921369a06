"use strict";
// The operator console: polls /api/console (4 per second) and /frame.jpg (shared image, at most a few per second),
// draws the live image on a canvas (a placeholder when there is none or it stalls) and the belt map as SVG,
// moving tracks and shots on with the belt speed between snapshots.

const CLASS_COLOURS = { pet_bottle: "#4fc3f7", hdpe_container: "#eceff1", alu_can: "#90a4ae", cardboard: "#c8915a",
                        paper: "#fff176", film: "#ce93d8" };
const OUTCOMES = {
  planned: ["#f0a020", "planned (sent, no answer yet)"], accepted: ["#f0a020", "accepted by the controller"],
  executed: ["#2fbf71", "fired"], late: ["#e5484d", "dropped: too late"], rejected: ["#d946ef", "rejected"],
  lost: ["#e5484d", "lost (link down)"], cancelled: ["#7b8794", "cancelled"], held: ["#7b8794", "held (paused)"],
};
const STALL_MS = 2000;
const MAX_EXTRAPOLATE_S = 0.35;

const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" }[c]));
const fmt = (v, d = 0) => (v === null || v === undefined || Number.isNaN(v) ? "-" : Number(v).toFixed(d));
const pct = (v) => (v === null || v === undefined ? "-" : (100 * v).toFixed(1) + " %");
const hms = (tWallS) => new Date(tWallS * 1000).toLocaleTimeString([], { hour12: false });
const colourOf = (cls) => CLASS_COLOURS[cls] || "#bbb";
const outcomeColour = (o) => (OUTCOMES[o] || ["#f0a020"])[0];

let data = null;        // the last /api/console answer
let tData = 0;          // when it arrived (performance.now ms)
let connOk = true;

// ---------------------------------------------------------------------------------------------- console data
async function pollConsole() {
  try {
    const r = await fetch("/api/console", { cache: "no-store" });
    if (r.status === 401) { location.reload(); return; }
    if (!r.ok) throw new Error("HTTP " + r.status);
    data = await r.json();
    tData = performance.now();
    connOk = true;
    renderPanels();
  } catch (e) {
    connOk = false;
  }
  $("conn-banner").classList.toggle("hidden", connOk);
  setTimeout(pollConsole, 250);
}

function renderPanels() {
  const s = data.status || {};
  const g = data.geometry || {};
  document.title = `sorter ${s.line || ""}: ${s.state || "?"}`;
  $("belt-end").textContent = g.mode === "robot" ? "pick window" : "ejection line";
  $("line-name").textContent = s.line ? `· ${s.line} (${s.mode || ""})` : "";
  const state = s.state || "unknown";
  const badge = $("state");
  badge.textContent = state.toUpperCase();
  badge.className = "badge state-" + state;
  $("reason").textContent = s.reason || (state === "running" ? "" : state);
  const idle = data.frame_age_s !== null && data.frame_age_s !== undefined && data.frame_age_s > 1;
  $("fps").textContent = idle ? "0.0" : fmt(s.fps, 1);
  $("frames").textContent = s.frames !== undefined ? s.frames.toLocaleString() : "-";
  const total = (s.frames || 0) + (s.frames_dropped || 0);
  $("dropped").textContent = s.frames_dropped === undefined ? "-"
    : `${s.frames_dropped.toLocaleString()} (${total ? (100 * s.frames_dropped / total).toFixed(2) : "0.00"} %)`;
  $("speed").textContent = data.belt ? `${fmt(data.belt.speed_mm_s)} mm/s` : "-";
  $("uptime").textContent = s.uptime_s !== undefined ? duration(s.uptime_s) : "-";
  renderLink(s, g);
  const c = s.commands || {};
  $("commands").textContent = `sent ${c.sent ?? 0} · executed ${c.executed ?? 0} · late ${c.late_dropped ?? 0}`
    + ` · rejected ${c.rejected ?? 0}` + (c.held_while_paused ? ` · held ${c.held_while_paused}` : "");
  const rl = s.last_reload;
  $("reload").innerHTML = rl ? `${hms(rl.t_wall_s)} <span class="${rl.applied ? "ok" : "bad"}">${rl.applied ? "applied" : "refused"}</span>: ${esc(rl.message)}` : "none";
  renderLatency(s.latency_ms || {});
  renderFaults(s);
  renderClasses(s, g);
  renderQuality(data.estimates || {});
  renderValves(data.valves || {}, g);
}

function duration(sec) {
  const h = Math.floor(sec / 3600), m = Math.floor((sec % 3600) / 60), x = Math.floor(sec % 60);
  return (h ? `${h} h ` : "") + (h || m ? `${m} min ` : "") + `${x} s`;
}

function renderLink(s, g) {
  const a = s.actuator || {};
  const kind = g.actuator || "";
  let text;
  if ("link_connected" in a) {
    const up = !!a.link_connected;
    const keys = ["link_acks", "link_naks", "reconnects", "watchdog_trips", "link_retransmits"].filter((k) => k in a);
    text = `<span class="${up ? "ok" : "bad"}">${up ? "connected" : "DOWN"}</span> ${esc(kind)}`
      + (keys.length ? `<br><span class="muted">${keys.map((k) => `${k.replace("link_", "")} ${a[k]}`).join(" · ")}</span>` : "");
  } else {
    text = `${esc(kind || "-")} <span class="muted">(no controller link)</span>`;
  }
  $("link").innerHTML = text;
}

function renderLatency(lat) {
  const stages = Object.keys(lat);
  $("latency").innerHTML = "<tr><th>stage</th><th>p50</th><th>p99</th></tr>" + stages.map((k) =>
    `<tr><td>${esc(k)}</td><td>${fmt(lat[k].p50, 2)}</td><td>${fmt(lat[k].p99, 2)}</td></tr>`).join("");
}

function renderFaults(s) {
  const list = s.faults_recent || [];
  const totals = s.faults || {};
  const n = Object.values(totals).reduce((a, b) => a + b, 0);
  $("fault-count").textContent = n ? `${n} since start` : "";
  const active = new Set((s.reason || "").split("; ").map((p) => p.split(":")[0]));
  $("faults").innerHTML = list.length ? list.map((f, i) => {
    const isActive = f.state === "degraded" && active.has(f.kind) && !list.slice(0, i).some((g) => g.kind === f.kind);
    return `<li class="fault ${f.state}${isActive ? " active" : ""}"><span class="t">${hms(f.t_wall_s)}</span>`
      + `<span class="kind">${esc(f.kind)}</span> ${f.state === "degraded" ? esc(f.reason) : "recovered"}</li>`;
  }).join("") : '<li class="muted">none since start</li>';
}

function renderClasses(s, g) {
  const totals = s.objects_by_class || {};
  const rates = (data.rates || {}).per_min || {};
  const targets = new Set(g.targets || s.targets || []);
  const classes = g.classes || Object.keys(totals);
  const span = (data.rates || {}).span_s || 0;
  $("rate-span").textContent = span ? `per minute over the last ${Math.round(span)} s` : "";
  const rows = classes.map((k) => `<tr><td><span class="swatch" style="background:${colourOf(k)}"></span>${esc(k)}`
    + `${targets.has(k) ? '<span class="target">target</span>' : ""}</td><td>${(totals[k] || 0).toLocaleString()}</td>`
    + `<td>${fmt(rates[k] || 0, 1)}</td></tr>`);
  const all = Object.values(totals).reduce((a, b) => a + b, 0);
  $("classes").innerHTML = "<tr><th>class</th><th>seen</th><th>per min</th></tr>" + rows.join("")
    + `<tr><td><b>all</b></td><td><b>${all.toLocaleString()}</b></td><td><b>${fmt(rates.all || 0, 1)}</b></td></tr>`;
}

function renderQuality(e) {
  $("recovery").textContent = pct(e.recovery);
  $("purity").textContent = pct(e.purity);
  $("method").textContent = e.method ? `How: ${e.method}.` : "";
}

function renderValves(v, g) {
  const svg = $("valves");
  if (g.mode !== "airjet") {
    $("valves-title").innerHTML = 'Robot picks <span class="muted">outcomes since start</span>';
    svg.style.display = "none";
    $("valves-note").textContent = Object.entries(data.outcomes || {}).map(([k, n]) => `${k} ${n}`).join(" · ") || "no picks yet";
    return;
  }
  const per = v.per_min || [], open = new Set(v.open || []);
  const n = per.length || 1;
  const max = Math.max(1, ...per);
  svg.setAttribute("viewBox", `0 0 ${n} 100`);
  svg.innerHTML = per.map((r, i) => {
    const h = 96 * r / max;
    const lit = open.has(i);
    return `<rect class="valve${lit ? " open" : ""}" x="${i + 0.1}" y="${lit ? 0 : 100 - Math.max(h, 1)}" width="0.8" `
      + `height="${lit ? 100 : Math.max(h, 1)}" fill="${lit ? "#f0a020" : r > 0 ? "#3b8eea" : "#2c3640"}"/>`;
  }).join("");
  const busiest = per.reduce((b, r, i) => (r > per[b] ? i : b), 0);
  $("valves-note").textContent = `${n} valves · busiest #${busiest} at ${fmt(per[busiest] || 0, 1)}/min · `
    + `open now: ${open.size ? [...open].join(", ") : "none"} · fired since start: `
    + `${(v.fires || []).reduce((a, b) => a + b, 0).toLocaleString()} valve-shots`;
}

// ---------------------------------------------------------------------------------------------- belt map
// The belt map is a schematic strip: along the belt (left to right, the travel) and across it have their own scales,
// so a belt as wide as the map is long still fits a short panel; text is drawn in screen pixels.
function renderBelt() {
  requestAnimationFrame(renderBelt);
  if (!data || !data.geometry) return;
  const now = performance.now();
  if (renderBelt.last && now - renderBelt.last < 66) return; // ~15 redraws per second
  renderBelt.last = now;
  const svg = $("belt");
  const G = data.geometry, B = data.belt || {};
  const W = G.belt_width_mm, y0 = G.y_start_mm, y1 = G.y_end_mm, L = y1 - y0;
  const PW = Math.max(300, svg.clientWidth || 800), PH = 300, top = 34, bottom = 26, left = 8, right = 8;
  const bh = PH - top - bottom;
  const X = (ymm) => left + (ymm - y0) * (PW - left - right) / L;   // along the belt -> screen x
  const Y = (xmm) => top + xmm * bh / W;                              // across the belt -> screen y
  // belt travel since the snapshot, for at most a poll period and a bit: older data stays put (and says so)
  const dt = (now - tData) / 1000;
  const dy = (B.speed_mm_s || 0) * Math.min(MAX_EXTRAPOLATE_S, dt);
  const p = [];
  p.push(`<rect x="${X(y0)}" y="${Y(0)}" width="${X(y1) - X(y0)}" height="${bh}" fill="#262e36" stroke="#3c4853"/>`);
  const v = G.view;
  p.push(`<rect x="${X(v.y0)}" y="${Y(Math.max(0, v.x0))}" width="${X(v.y1) - X(v.y0)}" height="${Y(Math.min(W, v.x1)) - Y(Math.max(0, v.x0))}" `
    + `fill="rgba(59,142,234,0.13)" stroke="#3b8eea" stroke-dasharray="6"/>`);
  p.push(`<text x="${X(v.y0) + 4}" y="${top - 10}" fill="#7fb3f0" font-size="14">camera view</text>`);
  if (G.mode === "airjet") {
    const ye = G.y_eject_mm, vv = G.valves;
    const open = new Set((data.valves || {}).open || []);
    p.push(`<line x1="${X(ye)}" y1="${top - 6}" x2="${X(ye)}" y2="${PH - bottom + 4}" stroke="#e5484d" stroke-width="3"/>`);
    p.push(`<text x="${X(ye)}" y="${top - 10}" fill="#ff8a8d" font-size="14" text-anchor="middle">ejection line</text>`);
    for (let i = 0; i < vv.count; i++) {
      const a = Y(vv.x_first_mm + vv.pitch_mm * i), b = Y(vv.x_first_mm + vv.pitch_mm * (i + 1));
      p.push(`<rect x="${X(ye) - 5}" y="${a + 0.5}" width="10" height="${Math.max(1, b - a - 1)}" fill="${open.has(i) ? "#f0a020" : "#4b1d20"}"/>`);
    }
  } else if (G.robot) {
    const r = G.robot;
    p.push(`<rect x="${X(r.y0)}" y="${Y(r.x0)}" width="${X(r.y1) - X(r.y0)}" height="${Y(r.x1) - Y(r.x0)}" `
      + `fill="rgba(240,160,32,0.08)" stroke="#f0a020" stroke-dasharray="6"/>`);
    p.push(`<text x="${X((r.y0 + r.y1) / 2)}" y="${top - 10}" fill="#f0c060" font-size="14" text-anchor="middle">pick window</text>`);
  }
  for (const s of B.shots || []) {
    const c = outcomeColour(s.outcome);
    const pending = s.outcome === "planned" || s.outcome === "accepted";
    if (s.kind === "fire") {
      const a = s.y0 + dy, b = Math.max(s.y1 + dy, a + 2);
      if (a > y1 || b < y0) continue;
      p.push(`<rect class="shot" data-outcome="${esc(s.outcome)}" data-track="${s.track}" x="${X(a)}" y="${Y(s.x0)}" `
        + `width="${Math.max(3, X(b) - X(a))}" height="${Math.max(3, Y(s.x1) - Y(s.x0))}" fill="${c}" fill-opacity="0.4" `
        + `stroke="${c}" stroke-width="2"${pending ? ' stroke-dasharray="5 3"' : ""}>`
        + `<title>shot ${s.id} for #${s.track} (${esc(s.cls)}): valves ${s.valves[0]}-${s.valves[1]}, ${esc(s.outcome)}</title></rect>`);
    } else {
      const cx = X(s.y), cy = Y(s.x);
      p.push(`<g class="shot" data-outcome="${esc(s.outcome)}" data-track="${s.track}" stroke="${c}" stroke-width="2.5">`
        + `<circle cx="${cx}" cy="${cy}" r="9" fill="none"/><line x1="${cx - 14}" y1="${cy}" x2="${cx + 14}" y2="${cy}"/>`
        + `<line x1="${cx}" y1="${cy - 14}" x2="${cx}" y2="${cy + 14}"/><title>pick ${s.id} for #${s.track}: ${esc(s.outcome)}</title></g>`);
    }
  }
  for (const t of B.tracks || []) {
    const y = t.y + dy;
    if (y - t.l / 2 > y1 || y + t.l / 2 < y0) continue;
    const shot = t.action === "eject" || t.action === "pick";
    const x0 = X(y - t.l / 2), w = Math.max(4, X(y + t.l / 2) - x0), yy = Y(t.x - t.w / 2), h = Math.max(4, Y(t.x + t.w / 2) - yy);
    p.push(`<rect class="track" x="${x0}" y="${yy}" width="${w}" height="${h}" rx="3" fill="${colourOf(t.cls)}" `
      + `fill-opacity="${t.confirmed ? 0.9 : 0.4}" stroke="${shot ? "#ffffff" : "#11161b"}" stroke-width="${shot ? 2.5 : 1}">`
      + `<title>#${t.id} ${esc(t.cls)} ${esc(t.action || "undecided")}</title></rect>`);
    p.push(`<text x="${x0 + w / 2}" y="${yy - 3}" fill="#e8edf2" font-size="12" text-anchor="middle">#${t.id}</text>`);
  }
  for (let m = Math.ceil(y0 / 200) * 200; m <= y1; m += 200) {
    p.push(`<line x1="${X(m)}" y1="${PH - bottom}" x2="${X(m)}" y2="${PH - bottom + 5}" stroke="#8d9aa6"/>`);
    p.push(`<text x="${X(m)}" y="${PH - 6}" fill="#8d9aa6" font-size="12" text-anchor="middle">${m} mm</text>`);
  }
  $("belt-note").textContent = (dt > 2 ? `map data ${dt.toFixed(0)} s old · ` : "")
    + `belt ${W} mm wide, across-belt scale compressed`;
  $("belt-note").className = dt > 2 ? "warn" : "muted";
  svg.setAttribute("viewBox", `0 0 ${PW} ${PH}`);
  svg.setAttribute("height", PH);
  svg.innerHTML = p.join("");
}

function renderLegend() {
  const cls = Object.entries(CLASS_COLOURS).map(([k, c]) => `<span><span class="box" style="background:${c}"></span>${k}</span>`);
  const outs = ["planned", "executed", "late", "rejected", "held"].map((k) =>
    `<span><span class="box" style="border:2px solid ${OUTCOMES[k][0]};background:${OUTCOMES[k][0]}55"></span>shot ${OUTCOMES[k][1]}</span>`);
  $("belt-legend").innerHTML = cls.concat(['<span>white outline: object to be shot</span>'], outs).join("");
}

// ---------------------------------------------------------------------------------------------- live image
let etag = null, bitmap = null, ageMs = null, frameIndex = null, frameErr = "waiting for the first image";

async function frameLoop() {
  try {
    const r = await fetch("/frame.jpg", { cache: "no-store", headers: etag ? { "If-None-Match": etag } : {} });
    const age = r.headers.get("X-Frame-Age-Ms");
    ageMs = age === null ? null : Number(age);
    if (r.status === 200) {
      const bmp = await createImageBitmap(await r.blob());
      if (bitmap) bitmap.close();
      bitmap = bmp;
      etag = r.headers.get("ETag");
      frameIndex = r.headers.get("X-Frame-Index");
      frameErr = null;
    } else if (r.status === 304) {
      frameErr = null;
    } else if (r.status === 503) {
      frameErr = data && data.geometry && data.geometry.renders_pixels === false
        ? "this line processes no pixels (a simulation without rendering)" : "no image yet: the line has not processed a frame";
    } else {
      frameErr = `image not available (HTTP ${r.status})`;
    }
  } catch (e) {
    frameErr = "no answer from the web server";
  }
  drawFrame();
  setTimeout(frameLoop, 250);
}

function drawFrame() {
  const c = $("frame"), g = c.getContext("2d");
  // stalled: the line itself has processed no frame lately (camera lost); delayed: the line runs, the image lags behind
  const lineAge = data && data.frame_age_s !== null && data.frame_age_s !== undefined ? data.frame_age_s * 1000 : null;
  const stalled = lineAge !== null ? lineAge > STALL_MS : ageMs !== null && ageMs > STALL_MS;
  const delayed = !stalled && ageMs !== null && ageMs > STALL_MS;
  if (bitmap) {
    if (c.width !== bitmap.width || c.height !== bitmap.height) { c.width = bitmap.width; c.height = bitmap.height; }
    g.drawImage(bitmap, 0, 0);
  } else {
    g.fillStyle = "#1b2128"; g.fillRect(0, 0, c.width, c.height);
    g.strokeStyle = "#232b33"; g.lineWidth = 18;
    for (let x = -c.height; x < c.width; x += 60) { g.beginPath(); g.moveTo(x, c.height); g.lineTo(x + c.height, 0); g.stroke(); }
  }
  const live = bitmap && !stalled && !frameErr;
  c.dataset.live = live ? "1" : "0";
  if (!live) {
    const reason = (data && data.status && data.status.reason) || "";
    const title = !bitmap ? "NO LIVE IMAGE" : stalled ? "IMAGE STALLED" : "NO LIVE IMAGE";
    const detail = frameErr || `no new frame for ${((lineAge ?? ageMs) / 1000).toFixed(1)} s${reason ? ": " + reason : ""}`;
    g.fillStyle = "rgba(0,0,0,0.55)"; g.fillRect(0, c.height * 0.36, c.width, c.height * 0.28);
    g.textAlign = "center"; g.fillStyle = "#f0a020";
    g.font = `bold ${Math.round(c.height * 0.075)}px sans-serif`;
    g.fillText(title, c.width / 2, c.height * 0.47);
    g.fillStyle = "#e8edf2"; g.font = `${Math.round(c.height * 0.04)}px sans-serif`;
    g.fillText(detail.length > 90 ? detail.slice(0, 87) + "..." : detail, c.width / 2, c.height * 0.56);
  }
  $("frame-info").textContent = live ? `frame ${frameIndex}, ${Math.round(ageMs || 0)} ms old`
    + (delayed ? " (the web server is busy: the image lags behind the line)" : "") : (stalled ? "stalled" : "");
}

function tickClock() {
  $("clock").textContent = new Date().toLocaleTimeString([], { hour12: false });
  setTimeout(tickClock, 1000);
}

renderLegend();
drawFrame();
tickClock();
pollConsole();
frameLoop();
requestAnimationFrame(renderBelt);
