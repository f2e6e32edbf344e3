// altair web console: read-only pages over the JSON API (/api/v1/...), redrawn from
// the API every refresh period without reloading. No framework, no dependencies.
"use strict";

const STAGE_COLORS = {
  detect: "#8250df", verify: "#bf3989", lock: "#6e7781", fence: "#cf222e",
  choose: "#0969da", catch_up: "#1a7f37", salvage: "#9a6700", promote: "#fb8500",
  repoint: "#54aeff", publish: "#2da44e", record: "#57606a",
};
let refreshMs = 1000;
let timer = null;
let fleetFilter = { state: null, text: "", sort: "state" };

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "on") for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function svg(tag, attrs, ...children) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function ago(ms) {
  if (!ms) return "-";
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 120) return s + " s ago";
  if (s < 7200) return Math.round(s / 60) + " min ago";
  if (s < 172800) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " days ago";
}

function when(ms) {
  return ms ? new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC") : "-";
}

const badge = (cls, text) => el("span", { class: "badge " + cls }, text);
const link = (href, text) => el("a", { href }, text);
const dash = (v) => (v === null || v === undefined || v === "" ? "-" : v);

async function api(path) {
  // location.origin: a page opened with user:password@ in its address may not fetch a URL
  // relative to itself (it would carry the credentials); the browser's login applies.
  const r = await fetch(location.origin + "/api/v1/" + path, { cache: "no-store", credentials: "same-origin" });
  const body = await r.json().catch(() => ({ error: r.status + " " + r.statusText }));
  if (!r.ok) throw new Error(body.error || r.status + " " + r.statusText);
  return body;
}

function banner(text) {
  const b = document.getElementById("banner");
  b.hidden = !text;
  b.textContent = text || "";
}

function crumbs(...parts) {
  const n = document.getElementById("crumbs");
  n.replaceChildren(...parts.flatMap((p, i) => (i ? [" / ", p] : [p])));
}

function meta(fleet) {
  const m = document.getElementById("meta");
  m.textContent = `answered by ${fleet.answered_by} · leader ${fleet.leader} · read ${ago(fleet.collected_at_unix_ms)}`;
}

// ---- the fleet ----

function fleetPage(fleet) {
  const view = [];
  crumbs(el("span", {}, "fleet"));
  meta(fleet);
  banner(fleet.error ? "Reading the fleet failed: " + fleet.error + " (showing the last picture)" : "");
  for (const h of fleet.holds || []) {
    view.push(el("p", { class: "s-blocked", "data-hold": h.datacenter },
      `Failover hold on datacenter ${h.datacenter}: ${h.unreachable.length} of ${h.primaries} primaries unreachable together` +
      (h.released_by ? ` — released by ${h.released_by} (${h.released_reason || ""})` : " — altairctl release " + h.datacenter + " once it is known down")));
  }
  const counts = el("div", { class: "counts", id: "counts" });
  for (const { state, clusters: n } of fleet.counts) {
    counts.append(el("span", {
      class: "count s-" + state + (fleetFilter.state === state ? " active" : ""), "data-state": state,
      on: { click: () => { fleetFilter.state = fleetFilter.state === state ? null : state; render(); } },
    }, el("b", {}, n), state.replace("_", " ")));
  }
  view.push(el("h2", {}, `${fleet.clusters.length} clusters`), counts);
  const text = el("input", { type: "search", placeholder: "filter by name, host, datacenter", value: fleetFilter.text, "aria-label": "filter" });
  text.addEventListener("input", () => { fleetFilter.text = text.value; drawRows(); });
  const sort = el("select", { "aria-label": "sort" },
    ...["state", "name", "epoch", "datacenter"].map((k) => el("option", { value: k, selected: fleetFilter.sort === k }, "sort by " + k)));
  sort.addEventListener("change", () => { fleetFilter.sort = sort.value; drawRows(); });
  view.push(el("div", { class: "tools" }, text, sort));
  const tbody = el("tbody", { id: "clusters" });
  const order = fleet.counts.map((c) => c.state);
  function drawRows() {
    const q = fleetFilter.text.trim().toLowerCase();
    let rows = fleet.clusters.filter((c) => (!fleetFilter.state || c.state === fleetFilter.state) &&
      (!q || [c.name, c.primary, c.datacenter, c.monitor].some((v) => v && v.toLowerCase().includes(q))));
    const by = {
      state: (a, b) => order.indexOf(a.state) - order.indexOf(b.state) || a.name.localeCompare(b.name),
      name: (a, b) => a.name.localeCompare(b.name),
      epoch: (a, b) => (b.epoch || 0) - (a.epoch || 0) || a.name.localeCompare(b.name),
      datacenter: (a, b) => (a.datacenter || "").localeCompare(b.datacenter || "") || a.name.localeCompare(b.name),
    }[fleetFilter.sort];
    rows = rows.slice().sort(by);
    tbody.replaceChildren(...rows.map((c) => el("tr", { "data-cluster": c.name, "data-state": c.state },
      el("td", {}, link("#/cluster/" + encodeURIComponent(c.name), c.name)),
      el("td", {}, badge("s-" + c.state, c.state.replace("_", " "))),
      el("td", { "data-primary": c.primary || "" }, dash(c.primary)),
      el("td", {}, c.primary_health ? badge("h-" + c.primary_health, c.primary_health) : "-"),
      el("td", {}, dash(c.epoch)),
      el("td", {}, `${c.healthy_hosts}/${c.hosts}`),
      el("td", {}, c.readiness ? badge("r-" + c.readiness, c.readiness) : "-"),
      el("td", { class: "hide-narrow" }, dash(c.datacenter)),
      el("td", { class: "wrap hide-narrow" }, c.why))));
  }
  drawRows();
  view.push(el("div", { class: "scroll" }, el("table", {},
    el("thead", {}, el("tr", {}, ...["cluster", "state", "primary", "health", "epoch", "healthy", "readiness"].map((h) => el("th", {}, h)),
      el("th", { class: "hide-narrow" }, "datacenter"), el("th", { class: "hide-narrow" }, "why"))),
    tbody)));
  return view;
}

// ---- a cluster ----

function tree(hosts, primary) {
  // The primary on top, each host under the one it replicates from.
  const byName = Object.fromEntries(hosts.map((h) => [h.name, h]));
  const depth = {};
  const level = (h, seen = new Set()) => {
    if (depth[h.name] !== undefined) return depth[h.name];
    if (!h.replicates_from || !byName[h.replicates_from] || seen.has(h.name)) return (depth[h.name] = h.replicates_from ? 1 : 0);
    seen.add(h.name);
    return (depth[h.name] = level(byName[h.replicates_from], seen) + 1);
  };
  hosts.forEach((h) => level(h));
  const rows = [];
  for (const h of hosts) (rows[depth[h.name]] = rows[depth[h.name]] || []).push(h);
  const W = 210, H = 92, GX = 24, GY = 46;
  const widest = Math.max(1, ...rows.map((r) => (r ? r.length : 0)));
  const width = widest * (W + GX) + GX, height = rows.length * (H + GY) + GY / 2;
  const pos = {};
  rows.forEach((r, y) => (r || []).forEach((h, x) => {
    const off = (width - r.length * (W + GX) + GX) / 2;
    pos[h.name] = { x: off + x * (W + GX), y: GY / 2 + y * (H + GY) };
  }));
  const s = svg("svg", { class: "tree", width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "replication tree" },
    svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
      svg("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#656d76" }))));
  for (const h of hosts) {
    const from = pos[h.replicates_from];
    if (!from) continue;
    const to = pos[h.name];
    s.append(svg("path", { class: "edge", d: `M ${from.x + W / 2} ${from.y + H} C ${from.x + W / 2} ${from.y + H + GY / 2}, ${to.x + W / 2} ${to.y - GY / 2}, ${to.x + W / 2} ${to.y}` }));
  }
  for (const h of hosts) {
    const p = pos[h.name];
    const g = svg("g", { transform: `translate(${p.x},${p.y})`, "data-host": h.name, "data-role": h.role || "" });
    g.append(svg("rect", { class: "node" + (h.name === primary ? " primary" : ""), width: W, height: H, rx: 6 }));
    const line = (y, text, cls) => svg("text", { x: 8, y, class: cls || "" }, text);
    const health = h.health || "unknown";
    g.append(line(17, `${h.name} · ${h.role || "?"}`),
      svg("text", { x: 8, y: 34, class: "health h-" + health }, health),
      line(51, `read_only ${h.read_only === null || h.read_only === undefined ? "?" : h.read_only ? "ON" : "OFF"}` +
        (h.seconds_behind !== null && h.seconds_behind !== undefined ? ` · lag ${h.seconds_behind}s` : "")),
      line(68, (h.gtid_executed || "(no GTID)").slice(0, 30)),
      line(85, h.datacenter ? "dc " + h.datacenter : ""));
    const title = svg("title", {}, `${h.name} (${h.mysql})\n${h.gtid_executed || ""}`);
    g.append(title);
    s.append(g);
  }
  return s;
}

function stageBars(f) {
  const total = f.stages.reduce((n, s) => n + s.duration_ms, 0) || 1;
  return el("div", { class: "bars", title: f.stages.map((s) => `${s.name} ${s.duration_ms} ms`).join(", ") },
    ...f.stages.map((s) => el("span", {
      class: "bar" + (s.error ? " err" : ""), "data-stage": s.name,
      style: `width:${(100 * s.duration_ms) / total}%;background:${STAGE_COLORS[s.name] || "#999"}`,
      title: `${s.name}: ${s.duration_ms} ms${s.error ? " — " + s.error : ""}`,
    })));
}

function legend(failovers) {
  const names = [...new Set(failovers.flatMap((f) => f.stages.map((s) => s.name)))];
  return el("div", { class: "legend" }, ...names.map((n) => el("span", {}, el("i", { style: "background:" + (STAGE_COLORS[n] || "#999") }), n)));
}

function failoverRows(c, failovers) {
  return el("div", { class: "scroll" }, el("table", { id: "failovers" },
    el("thead", {}, el("tr", {}, ...["started", "kind", "outcome", "old → new", "total", "stages"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...failovers.map((f) => el("tr", { "data-failover-id": f.id, "data-outcome": f.outcome },
      el("td", {}, link(`#/failover/${encodeURIComponent(c)}/${encodeURIComponent(f.id)}`, when(f.started_at_unix_ms))),
      el("td", {}, f.kind),
      el("td", {}, f.outcome === "in_progress" ? badge("s-failing_over", "in progress: " + f.step) : f.outcome),
      el("td", {}, `${dash(f.old_primary)} → ${dash(f.new_primary)}`),
      el("td", {}, f.total_ms === null || f.total_ms === undefined ? "-" : f.total_ms + " ms"),
      el("td", {}, stageBars(f)))))));
}

function clusterPage(body) {
  const c = body.cluster, s = body.summary;
  crumbs(link("#/", "fleet"), el("span", {}, c.name));
  document.getElementById("meta").textContent = `read ${ago(body.collected_at_unix_ms)}`;
  banner("");
  const view = [el("h2", {}, `cluster ${c.name} `, badge("s-" + s.state, s.state.replace("_", " ")))];
  if (s.why) view.push(el("p", { class: "s-" + s.state }, s.why));
  const r = c.readiness;
  view.push(el("dl", { class: "kv" },
    el("dt", {}, "primary"), el("dd", { id: "primary" }, dash(c.primary)),
    el("dt", {}, "epoch"), el("dd", {}, dash(c.epoch)),
    el("dt", {}, "monitor"), el("dd", {}, `${dash(c.monitor)} (${c.source})`),
    el("dt", {}, "readiness"), el("dd", { id: "readiness" }, r ? [badge("r-" + r.verdict, r.verdict), " ",
      r.verdict === "blocked" ? r.blocked_reason : `candidate ${dash(r.candidate)}` +
        (r.missing_transactions ? `, lacks ${r.missing_transactions} transaction(s) ${r.missing_gtids}` : "") +
        (r.candidate_lag_s !== null && r.candidate_lag_s !== undefined ? `, lag ${r.candidate_lag_s}s` : "") +
        (r.unasked.length ? `; not heard: ${r.unasked.join(", ")}` : "")] : "unknown (its monitor did not answer)"),
    c.paused ? [el("dt", {}, "paused"), el("dd", {}, `by ${c.paused.by}: ${c.paused.reason}` + (c.paused.until_unix_ms ? ` until ${when(c.paused.until_unix_ms)}` : ""))] : null,
    c.failover_blocked ? [el("dt", {}, "blocked"), el("dd", { class: "s-blocked" }, c.failover_blocked)] : null,
    ...body.dns.map((d) => [el("dt", {}, "DNS " + d.name), el("dd", { "data-dns": d.name }, d.error ? "error: " + d.error : d.addresses.join(", ") || "(none)")])));
  view.push(el("h3", {}, "replication"), tree(c.hosts, c.primary));
  view.push(el("div", { class: "scroll" }, el("table", { id: "hosts" },
    el("thead", {}, el("tr", {}, ...["host", "role", "health", "read_only", "lag", "replicates from", "GTID position", "errant"].map((h) => el("th", {}, h)))),
    el("tbody", {}, ...c.hosts.map((h) => el("tr", { "data-host": h.name },
      el("td", {}, h.name, el("div", { class: "muted" }, h.mysql)),
      el("td", {}, dash(h.role)),
      el("td", {}, h.health ? badge("h-" + h.health, h.health) : "-",
        h.last_heartbeat_unix_ms ? el("div", { class: "muted" }, "heard " + ago(h.last_heartbeat_unix_ms)) : null),
      el("td", {}, h.read_only === null || h.read_only === undefined ? "-" : h.read_only ? "ON" : "OFF"),
      el("td", {}, h.seconds_behind === null || h.seconds_behind === undefined ? "-" : h.seconds_behind + "s"),
      el("td", {}, dash(h.replicates_from)),
      el("td", { class: "gtid" }, h.gtid_executed === "" ? "(none)" : dash(h.gtid_executed)),
      el("td", { class: "gtid" }, dash(c.errant[h.name] || (r && r.errant[h.name])))))))));
  view.push(el("h3", {}, "failovers"));
  if (body.failovers.length) view.push(legend(body.failovers), failoverRows(c.name, body.failovers));
  else view.push(el("p", { class: "muted" }, "none recorded"));
  return view;
}

// ---- a failover ----

function failoverPage(cluster, f) {
  crumbs(link("#/", "fleet"), link("#/cluster/" + encodeURIComponent(cluster), cluster), el("span", {}, f.id));
  document.getElementById("meta").textContent = "";
  banner("");
  const kv = (k, v, id) => [el("dt", {}, k), el("dd", { id }, dash(v))];
  return [
    el("h2", {}, `${f.kind} ${f.id} `, badge(f.outcome === "succeeded" ? "s-ok" : f.outcome === "in_progress" ? "s-failing_over" : "s-blocked", f.outcome)),
    el("dl", { class: "kv", id: "failover" },
      kv("cluster", f.cluster), kv("epoch", f.epoch), kv("reason", f.reason),
      kv("old primary", f.old_primary), kv("new primary", f.new_primary, "new-primary"),
      f.step ? kv("running step", f.step) : null,
      kv("started", when(f.started_at_unix_ms)), kv("finished", when(f.finished_at_unix_ms)),
      kv("total", f.total_ms === null || f.total_ms === undefined ? null : f.total_ms + " ms"),
      kv("GTIDs lost", f.gtids_lost === "" ? "none" : f.gtids_lost, "lost"),
      kv("GTIDs salvaged", f.gtids_salvaged === "" ? "none" : f.gtids_salvaged + ` (${f.transactions_salvaged} transactions)`),
      kv("old binlog end", f.old_binlog_end)),
    el("h3", {}, "stages"), legend([f]), stageBars(f),
    el("div", { class: "scroll" }, el("table", { id: "stages" },
      el("thead", {}, el("tr", {}, ...["stage", "started", "duration", "error"].map((h) => el("th", {}, h)))),
      el("tbody", {}, ...f.stages.map((s) => el("tr", { "data-stage": s.name },
        el("td", {}, s.name), el("td", {}, when(s.started_at_unix_ms)), el("td", {}, s.duration_ms + " ms"),
        el("td", { class: "wrap s-blocked" }, s.error)))))),
    el("h3", {}, "notes"),
    f.notes.length ? el("ul", { id: "notes" }, ...f.notes.map((n) => el("li", {}, n))) : el("p", { class: "muted" }, "none"),
  ];
}

// ---- routing and polling ----

async function render() {
  clearTimeout(timer);
  const [, page, a, b] = (location.hash || "#/").split("/").map(decodeURIComponent);
  const view = document.getElementById("view");
  try {
    let nodes;
    if (page === "cluster" && a) nodes = clusterPage(await api("clusters/" + encodeURIComponent(a)));
    else if (page === "failover" && a && b) nodes = failoverPage(a, await api(`clusters/${encodeURIComponent(a)}/failovers/${encodeURIComponent(b)}`));
    else {
      const fleet = await api("fleet");
      refreshMs = Math.max(200, fleet.refresh_ms || 1000);
      nodes = fleetPage(fleet);
    }
    // Keep the filter box focused while the table redraws under it.
    const focused = document.activeElement && document.activeElement.getAttribute("aria-label");
    view.replaceChildren(...nodes);
    if (focused) { const f = view.querySelector(`[aria-label="${focused}"]`); if (f) f.focus(); }
    document.body.dataset.updated = String(Date.now());
    // Navigation start → first page drawn, for the benchmark (make bench).
    if (!document.body.dataset.firstDrawnMs) document.body.dataset.firstDrawnMs = String(Math.round(performance.now()));
  } catch (e) {
    banner("The console could not read " + (page || "the fleet") + ": " + e.message);
  }
  timer = setTimeout(render, refreshMs);
}

fetch(location.origin + "/api/v1/whoami", { cache: "no-store" }).then((r) => r.json()).then((w) => {
  document.querySelector("header").append(el("span", { class: "muted", id: "user" }, w.user));
}).catch(() => {});
window.addEventListener("hashchange", render);
render();
