// The operator's console: log in (the token once -> a session cookie + a CSRF token), a card per
// pool with its actions, the console (run code in a pool), packages per pool, the logs panel.
// Every POST carries the CSRF token; the cookie is HttpOnly, so this script never sees it.
"use strict";
const LOGS_MS = 2000;
const op = { csrf: null, cards: new Map(), logsAfter: 0, logLines: [], pools: [] };
const el = (id) => document.getElementById(id);

function make(tag, attrs = {}, content) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else if (k.startsWith("data-")) node.setAttribute(k, v);
    else node[k] = v;
  }
  if (content !== undefined) node.textContent = content;
  return node;
}

function say(message, ok) {
  const box = el("action-result");
  box.textContent = message;
  box.className = ok ? "ok" : "error";
  box.hidden = false;
}

async function session() {
  const response = await fetch("/api/session", { cache: "no-store" });
  const value = await response.json();
  op.csrf = value.authenticated ? value.csrf : null;
  el("login-form").hidden = !!op.csrf;
  el("session").hidden = !op.csrf;
  document.body.classList.toggle("operator", !!op.csrf);
  if (op.csrf) followLogs();
}

async function act(path, body) {
  if (!op.csrf) { say("log in first (the sidecar's token)", false); return [401, {}]; }
  const response = await fetch(path, {
    method: "POST", cache: "no-store", body: JSON.stringify(body || {}),
    headers: { "Content-Type": "application/json", "X-CSRF-Token": op.csrf } });
  let value = {};
  try { value = await response.json(); } catch (err) { value = {}; }
  if (response.status === 401) await session();
  return [response.status, value];
}

function errorOf(value) { return (value.error && value.error.message) || JSON.stringify(value); }

async function action(label, path, body) {
  const [status, value] = await act(path, body);
  say(status === 200 ? `${label}: done` : `${label}: ${errorOf(value)}`, status === 200);
  return [status, value];
}

// ------------------------------------------------------------------ a card per pool
function poolCard(pool) {
  let card = op.cards.get(pool.name);
  if (card) return card;
  card = make("div", { class: "card", "data-pool": pool.name });
  card.append(make("h3", {}, `${pool.name} (${pool.kind})`), make("div", { class: "summary" }));
  const actions = make("div", { class: "actions" });
  const path = `/api/pools/${encodeURIComponent(pool.name)}`;
  if (pool.kind === "local") {
    const recycle = make("button", { type: "button", class: "recycle" }, "Recycle all");
    recycle.onclick = () => action(`recycle ${pool.name}`, `${path}/recycle`);
    const size = make("input", { type: "number", class: "size", min: pool.size.min, max: pool.size.max,
      value: pool.size.target });
    const set = make("button", { type: "button", class: "set-size" }, "Set size");
    set.onclick = () => action(`size of ${pool.name}`, `${path}/size`, { target: Number(size.value) });
    actions.append(recycle, make("label", {}, " size "), size, set);
  }
  const open = make("button", { type: "button", class: "breaker-open" }, "Open breaker");
  open.onclick = () => action(`breaker of ${pool.name}`, `${path}/breaker`, { state: "open" });
  const close = make("button", { type: "button", class: "breaker-close" }, "Close breaker");
  close.onclick = () => action(`breaker of ${pool.name}`, `${path}/breaker`, { state: "closed" });
  actions.append(open, close);
  card.append(actions);
  if (pool.kind === "local") {
    const table = make("table", { class: "pool-workers" });
    table.createTHead().insertRow().append(...["Worker", "PID", "Role", "State", "Status", "Score",
      "Calls", "RSS", ""].map((h) => make("th", {}, h)));
    table.createTBody();
    card.append(table);
  }
  el("pools").append(card);
  op.cards.set(pool.name, card);
  return card;
}

function drawPoolWorkers(card, pool) {
  const body = card.querySelector("tbody");
  const key = JSON.stringify(pool.workers.map((w) => [w.id, w.pid, w.role, w.state, w.status, w.score, w.calls]));
  if (body.dataset.key === key) return; // redraw only on change: buttons stay clickable
  body.dataset.key = key;
  body.replaceChildren();
  for (const w of pool.workers) {
    const row = body.insertRow();
    row.dataset.pid = w.pid; row.dataset.worker = w.id;
    for (const [v, cls] of [[w.id], [w.pid], [w.role], [w.state], [w.status, "s-" + w.status],
      [w.score, "num"], [w.calls, "num"], [mib(w.rss), "num"]]) cell(row, v, cls);
    const restart = make("button", { type: "button", class: "restart", "data-worker": w.id }, "Restart");
    restart.onclick = () => action(`restart worker ${w.id} of ${pool.name}`,
      `/api/pools/${encodeURIComponent(pool.name)}/workers/${w.id}/restart`);
    row.insertCell().append(restart);
  }
}

function drawPools(pools) {
  op.pools = pools;
  for (const pool of pools) {
    const card = poolCard(pool);
    card.dataset.status = pool.status;
    const breaker = pool.breaker ? `, breaker ${pool.breaker}` : "";
    card.querySelector(".summary").textContent = pool.kind === "local"
      ? `${pool.status}: ${pool.healthy} / ${pool.members} members healthy, ${pool.healthy_spares} / ${pool.spares} spares`
        + ` (size ${pool.size.target}, ${pool.size.min}-${pool.size.max}), ${pool.queued} queued${breaker}`
      : `${pool.status}: ${pool.address}, ${pool.connected ? "connected" : "not connected"}, `
        + `${pool.dask_workers ?? 0} Dask workers, ${pool.in_flight ?? 0} in flight${breaker}`;
    if (pool.kind === "local") drawPoolWorkers(card, pool);
  }
  fillPicker(el("console-pool"), pools.map((p) => p.name));
  fillPicker(el("packages-pool"), pools.filter((p) => p.kind === "local").map((p) => p.name));
}

function fillPicker(select, names) {
  const now = [...select.options].map((o) => o.value);
  if (JSON.stringify(now) === JSON.stringify(names)) return;
  const chosen = select.value;
  select.replaceChildren(...names.map((n) => make("option", { value: n }, n)));
  if (names.includes(chosen)) select.value = chosen;
}

// ------------------------------------------------------------------ console
async function runConsole() {
  el("console-run").disabled = true;
  el("console-state").textContent = "running...";
  try {
    const [status, v] = await act("/api/console", { pool: el("console-pool").value,
      code: el("console-code").value, timeout: Number(el("console-timeout").value) || undefined });
    el("console-state").textContent = status === 200 ? (v.ok ? `ok (worker ${v.worker}, ${(v.ms || 0).toFixed(1)} ms)` : "raised") : `refused (${status})`;
    el("console-output").textContent = status === 200
      ? (v.stdout || "") + (v.stderr ? v.stderr : "") + (v.ok ? "=> " + JSON.stringify(v.value) : "")
      : errorOf(v);
    el("console-error").textContent = v.error ? `${v.error.kind}: ${v.error.type || ""} ${v.error.message || ""}\n${v.error.traceback || ""}` : "";
  } finally {
    el("console-run").disabled = false;
  }
}

// ------------------------------------------------------------------ packages
async function listPackages() {
  const pool = el("packages-pool").value;
  if (!pool || !op.csrf) return;
  const response = await fetch(`/api/pools/${encodeURIComponent(pool)}/packages`, { cache: "no-store" });
  const value = await response.json();
  const body = el("packages-list").tBodies[0];
  body.replaceChildren();
  if (!response.ok) { el("packages-output").textContent = errorOf(value); return; }
  for (const p of value.packages) {
    const row = body.insertRow();
    row.dataset.name = p.name;
    cell(row, p.name); cell(row, p.version);
  }
}

async function installPackage() {
  const pool = el("packages-pool").value;
  const args = ["--no-index", "--find-links", el("packages-wheelhouse").value.trim(),
    ...el("packages-requirement").value.trim().split(/\s+/)];
  el("packages-install").disabled = true;
  el("packages-output").textContent = `pip install ${args.join(" ")} in pool ${pool}...`;
  try {
    const [status, v] = await act(`/api/pools/${encodeURIComponent(pool)}/packages`, { action: "install", args });
    el("packages-output").textContent = status === 200 || status === 422
      ? [...(v.output || []), v.message, v.renewing !== undefined ? `${v.renewing} workers renewed` : ""].join("\n")
      : errorOf(v);
    say(status === 200 ? `installed in ${pool}` : `install in ${pool}: ${v.message || errorOf(v)}`, status === 200);
    await listPackages();
  } finally {
    el("packages-install").disabled = false;
  }
}

// ------------------------------------------------------------------ logs (followed)
async function followLogs() {
  if (op.following) return;
  op.following = true;
  const poll = async () => {
    try {
      if (op.csrf && el("logs-follow").checked) {
        const level = el("logs-level").value;
        const response = await fetch(`/api/logs?lines=500&level=${level}&after=${op.logsAfter}`, { cache: "no-store" });
        if (response.ok) {
          const value = await response.json();
          op.logsAfter = value.last;
          op.logLines.push(...value.lines.map((l) => l.line));
          op.logLines = op.logLines.slice(-500);
          const box = el("logs");
          const atEnd = box.scrollTop + box.clientHeight >= box.scrollHeight - 4;
          box.textContent = op.logLines.join("\n");
          if (atEnd) box.scrollTop = box.scrollHeight;
        }
      }
    } finally {
      setTimeout(poll, LOGS_MS);
    }
  };
  poll();
}

el("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const response = await fetch("/api/session", { method: "POST", cache: "no-store",
    headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token: el("login-token").value.trim() }) });
  el("login-token").value = "";
  if (!response.ok) { say("login refused: " + errorOf(await response.json()), false); return; }
  say("logged in", true);
  await session();
});
el("logout").addEventListener("click", async () => {
  await fetch("/api/session/logout", { method: "POST", headers: { "X-CSRF-Token": op.csrf || "" } });
  await session();
});
el("console-run").addEventListener("click", runConsole);
el("packages-refresh").addEventListener("click", listPackages);
el("packages-pool").addEventListener("change", listPackages);
el("packages-install").addEventListener("click", installPackage);
el("quarantine-clear").addEventListener("click", () => action("clear the quarantine", "/api/quarantine/clear"));
el("logs-level").addEventListener("change", () => { op.logsAfter = 0; op.logLines = []; });
session();
