// The py3sidecar dashboard: polls /api/dashboard every second and redraws. No libraries:
// the charts are SVG drawn here, so nothing is fetched from the internet at run time.
"use strict";
const REFRESH_MS = 1000;
const $ = (id) => document.getElementById(id);

function text(el, value) { el.textContent = value === null || value === undefined ? "-" : String(value); }

function mib(bytes) { return bytes ? (bytes / 1048576).toFixed(1) + " MiB" : "-"; }

function ago(seconds) {
  if (seconds === null || seconds === undefined) return "never";
  if (seconds < 60) return seconds.toFixed(1) + " s ago";
  if (seconds < 3600) return Math.round(seconds / 60) + " min ago";
  return Math.round(seconds / 3600) + " h ago";
}

function ms(seconds) { return seconds === null ? "-" : (seconds * 1000).toFixed(seconds < 0.01 ? 2 : 1) + " ms"; }

function cell(row, value, cls) {
  const td = row.insertCell();
  td.textContent = value;
  if (cls) td.className = cls;
}

function drawWorkers(workers) {
  const body = $("workers").tBodies[0];
  body.replaceChildren();
  for (const w of workers) {
    const row = body.insertRow();
    row.dataset.pid = w.pid;
    row.dataset.status = w.status;
    cell(row, w.slot); cell(row, w.id); cell(row, w.pid); cell(row, w.role); cell(row, w.state);
    cell(row, w.status, "s-" + w.status); cell(row, w.score, "num"); cell(row, w.calls, "num");
    cell(row, mib(w.rss), "num"); cell(row, ago(w.last_used_ago));
  }
}

function drawList(el, items, render) {
  el.replaceChildren();
  if (!items.length) {
    const li = document.createElement("li");
    li.className = "muted"; li.textContent = "none"; el.appendChild(li);
    return;
  }
  for (const item of items.slice(0, 10)) {
    const li = document.createElement("li");
    render(li, item);
    el.appendChild(li);
  }
}

// A line chart of several series over the last hour; ys are numbers or null (no calls).
function drawChart(svg, minutes, series, format) {
  const W = 600, H = 160, L = 60, B = 20, T = 10;
  const NS = "http://www.w3.org/2000/svg";
  svg.replaceChildren();
  const now = Date.now() / 1000, from = now - 3600;
  const values = series.flatMap((s) => minutes.map(s.value)).filter((v) => v !== null);
  const max = Math.max(...values, 0) || 1;
  const x = (t) => L + ((t - from) / 3600) * (W - L - 5);
  const y = (v) => H - B - (v / max) * (H - B - T);
  const add = (tag, attrs, content) => {
    const el = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (content !== undefined) el.textContent = content;
    svg.appendChild(el);
    return el;
  };
  add("line", { x1: L, y1: H - B, x2: W - 5, y2: H - B, stroke: "#999" });
  add("text", { x: L - 4, y: T + 8, "text-anchor": "end", "font-size": 10 }, format(max));
  add("text", { x: L - 4, y: H - B, "text-anchor": "end", "font-size": 10 }, format(0));
  add("text", { x: L, y: H - 4, "font-size": 10 }, "-60 min");
  add("text", { x: W - 5, y: H - 4, "text-anchor": "end", "font-size": 10 }, "now");
  series.forEach((s, i) => {
    // each minute drawn at its middle, the running minute at "now"
    const shown = minutes.filter((m) => s.value(m) !== null && m.at >= from - 60);
    const xy = shown.map((m) => [x(Math.min(m.at + 30, now)), y(s.value(m))]);
    add("polyline", { points: xy.map(([a, b]) => `${a.toFixed(1)},${b.toFixed(1)}`).join(" "),
      fill: "none", stroke: s.color, "stroke-width": 2 });
    for (const [a, b] of xy) add("circle", { cx: a.toFixed(1), cy: b.toFixed(1), r: 3, fill: s.color });
    add("text", { x: L + 8 + i * 60, y: T + 8, fill: s.color, "font-size": 11 }, s.name);
  });
}

function draw(d) {
  const status = $("status");
  text(status, d.status);
  status.className = "badge " + d.status;
  text($("reason"), d.reason);
  text($("updated"), "updated " + new Date(d.generated_at * 1000).toLocaleTimeString());
  text($("score"), d.score);
  text($("healthy"), `${d.pool.healthy} / ${d.pool.size}`);
  text($("available"), d.pool.available);
  text($("queued"), `${d.pool.queued} / ${d.pool.capacity}`);
  text($("breakers"), Object.entries(d.breakers).map(([n, b]) => `${n}: ${b.state}`).join(", ") || "none");
  text($("fallback"), d.fallback.strategies.map((s) => `${s}: ${d.fallback.served[s] || 0} served`).join(", ")
    + (d.fallback.exhausted ? `, ${d.fallback.exhausted} unserved` : ""));
  drawWorkers(d.workers);
  if (d.pools) drawPools(d.pools); // a card per pool with its actions (console.js)
  drawChart($("latency-chart"), d.minutes, [
    { name: "p50", color: "#1565c0", value: (m) => m.p50 },
    { name: "p99", color: "#c62828", value: (m) => m.p99 }], ms);
  drawChart($("throughput-chart"), d.minutes, [
    { name: "calls/s", color: "#2e7d32", value: (m) => m.per_second }], (v) => v.toFixed(2));
  drawList($("failures"), d.failures, (li, f) => {
    li.textContent = `${ago(f.seconds_ago)}: ${f.type} worker ${f.worker ?? "-"} (pid ${f.pid ?? "-"}): ${f.detail}`
      + (f.action ? ` -> ${f.action}` : "");
  });
  drawList($("alerts"), d.alerts, (li, a) => {
    li.className = a.resolved ? "resolved" : (a.level || ""); // resolved: not styled CRITICAL
    const at = a.at ? new Date(a.at * 1000).toLocaleTimeString() + ": " : "";
    let title = a.title || a.message || JSON.stringify(a);
    if (a.resolved) title = title.replace(/^\[(CRITICAL|WARNING|INFO)\]\s*/, "");
    // titles carry their level already ("[CRITICAL] Python3 Module: ...")
    const level = a.level && !a.resolved && !title.includes(`[${a.level}]`) ? `${a.level} ` : "";
    li.textContent = `${at}${a.resolved ? "resolved: " : ""}${level}${title}`;
  });
}

async function refresh() {
  try {
    // Beyond loopback the page needs a session (the login form, console.js): its cookie
    // goes with every request of this origin.
    const response = await fetch("/api/dashboard", { cache: "no-store" });
    if (response.status === 401) {
      $("login-form").hidden = false;
      throw new Error("this sidecar needs its token: log in (python3.bridge.token / the token file)");
    }
    if (!response.ok) throw new Error(`${response.status}: ${await response.text()}`);
    draw(await response.json());
    $("error").hidden = true;
  } catch (err) {
    $("error").hidden = false;
    text($("error"), "cannot refresh: " + err.message);
  } finally {
    setTimeout(refresh, REFRESH_MS);
  }
}

refresh();
