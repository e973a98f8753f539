// The live topology view: the server lays the graph out (SVG) and streams the job's
// topology every second (server-sent events); this script colours nodes by health, sizes
// edges by throughput, colours them by backpressure, and shows a node's details on click.
"use strict";

const COLOURS = { ok: "#c8e6c9", busy: "#ffe0b2", backpressured: "#ef9a9a", failed: "#9e9e9e" };
const EDGE_COLOURS = { ok: "#607d8b", busy: "#fb8c00", backpressured: "#d32f2f" };
let current = null;
let source = null;
let latest = null;
let selected = null;

function el(tag, text) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  return e;
}

async function jobs() {
  const r = await fetch("/api/v1/jobs");
  const body = await r.json();
  return body.jobs.map((j) => j.name);
}

async function open(job) {
  if (source) source.close();
  current = job;
  selected = null;
  const r = await fetch(`/api/v1/jobs/${encodeURIComponent(job)}/topology.svg`);
  document.getElementById("graph").innerHTML = await r.text();
  document.querySelectorAll("#graph g.node").forEach((g) => {
    g.addEventListener("click", () => select(g.dataset.id));
  });
  source = new EventSource(`/api/v1/jobs/${encodeURIComponent(job)}/topology/stream`);
  source.addEventListener("topology", (ev) => update(JSON.parse(ev.data)));
  source.onerror = () => { document.getElementById("status").textContent = "disconnected: retrying…"; };
}

function update(t) {
  latest = t;
  const status = document.getElementById("status");
  status.textContent = `${t.job}: ${t.state}, up ${t.uptime_seconds.toFixed(0)} s, ${t.run.rows_written} rows written`;
  status.dataset.updates = String(Number(status.dataset.updates || "0") + 1);
  for (const [id, n] of Object.entries(t.nodes)) {
    const g = document.querySelector(`#graph g.node[data-id="${CSS.escape(id)}"]`);
    if (!g) continue;
    g.dataset.health = n.health;
    g.querySelector("rect").setAttribute("fill", COLOURS[n.health] || COLOURS.ok);
  }
  for (const [id, e] of Object.entries(t.edges)) {
    const line = document.querySelector(`#graph line.edge[data-id="${CSS.escape(id)}"]`);
    if (!line) continue;
    const width = 1 + Math.min(5, Math.log10(1 + e.messages_per_sec));
    line.setAttribute("stroke-width", width.toFixed(2));
    line.setAttribute("stroke", EDGE_COLOURS[e.level] || EDGE_COLOURS.ok);
    line.dataset.level = e.level;
  }
  const f = t.run.findings;
  const analysis = document.getElementById("analysis");
  analysis.textContent = "";
  analysis.append(el("h3", "Analysis"));
  const ul = el("ul");
  ul.append(el("li", f.bottleneck ? `Bottleneck: ${f.bottleneck.node}: ${f.bottleneck.reason}` : "Bottleneck: none detected"));
  for (const s of f.skew) ul.append(el("li", `Skew: ${s}`));
  for (const s of f.state_growth) ul.append(el("li", `State growth: ${s}`));
  for (const s of f.idle_sources) ul.append(el("li", `Idle: ${s}`));
  ul.append(el("li", `Recommendation: ${f.recommendation}`));
  analysis.append(ul);
  if (selected) show(selected);
}

async function select(id) {
  selected = id;
  await show(id, true);
}

async function show(id, withLogs) {
  if (!latest) return;
  const panel = document.getElementById("panel");
  const n = latest.nodes[id];
  const m = latest.run.nodes.find((x) => x.id === id) || {};
  if (!withLogs && panel.dataset.node === id) {
    const metrics = panel.querySelector(".metrics");
    if (metrics) metrics.textContent = metricsText(n, m);
    return;
  }
  panel.textContent = "";
  panel.dataset.node = id;
  panel.append(el("h3", id));
  const metrics = el("pre", metricsText(n, m));
  metrics.className = "metrics";
  panel.append(el("h4", "Metrics"), metrics);
  panel.append(el("h4", `SQL (line ${n.line})`), el("pre", n.sql || "(none)"));
  panel.append(el("h4", "Operators"), el("pre", (n.operators || []).join("\n") || "(none)"));
  panel.append(el("h4", "Recent errors"));
  const errors = el("pre", "loading…");
  errors.className = "errors";
  panel.append(errors);
  const r = await fetch(`/api/v1/jobs/${encodeURIComponent(current)}/logs`);
  const body = await r.json();
  const mine = body.lines.filter((l) => (l.level === "ERROR" || l.level === "WARN") &&
    JSON.stringify(l).includes(n.query || id)).slice(-5);
  errors.textContent = mine.length ? mine.map((l) => `${l.timestamp} ${l.level} ${l.message}`).join("\n") : "none";
}

function metricsText(n, m) {
  const lines = [`kind: ${n.kind}`, `health: ${n.health}`];
  if (m.rows_in !== undefined) lines.push(`rows in: ${m.rows_in}`, `rows out: ${m.rows_out}`);
  if (m.busy_ms !== null && m.busy_ms !== undefined) lines.push(`busy: ${m.busy_ms.toFixed(1)} ms`);
  return lines.join("\n");
}

async function main() {
  const names = await jobs();
  const select = document.getElementById("job");
  for (const n of names) {
    const o = el("option", n);
    o.value = n;
    select.append(o);
  }
  const wanted = new URLSearchParams(location.search).get("job");
  const first = names.includes(wanted) ? wanted : names[0];
  if (!first) {
    document.getElementById("status").textContent = "no job";
    return;
  }
  select.value = first;
  select.addEventListener("change", () => open(select.value));
  await open(first);
}

main();
