// mlledger report: the page's own code. Every value from the ledger goes into the
// page as text (textContent, createTextNode, setAttribute), never as HTML.
"use strict";
(function () {
  const D = JSON.parse(document.getElementById("data").textContent);
  const SVG = "http://www.w3.org/2000/svg";
  const PAGE = 50;          // rows drawn at once
  const CUT = 120;          // characters of a param shown before "more"
  const COLORS = ["#2f6fde", "#e8590c", "#2b8a3e", "#c2255c", "#7048e8", "#0c8599",
    "#a07d00", "#5c5f66", "#d6336c", "#1098ad"];
  const byId = new Map(D.runs.map((r) => [r.id, r]));
  const ticked = [];        // run ids, in the order they were ticked
  const state = { sort: "started", dir: -1, filter: "", page: 0, metric: "" };

  // -- small helpers -------------------------------------------------------------------
  function el(tag, attrs, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "text") e.textContent = String(v);
      else if (k === "cls") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, String(v));
    }
    for (const k of kids) if (k !== null && k !== undefined) e.append(k);
    return e;
  }
  function sv(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "text") e.textContent = String(v); else e.setAttribute(k, String(v));
    }
    return e;
  }
  function num(v) {         // the JSON form of a number (NaN and the infinities are strings)
    if (typeof v === "number") return v;
    if (v === "NaN") return NaN;
    if (v === "Infinity") return Infinity;
    if (v === "-Infinity") return -Infinity;
    return null;
  }
  function fmtNum(v) {
    const n = num(v);
    if (n === null) return v === undefined || v === null ? "—" : String(v);
    if (!Number.isFinite(n)) return String(n);
    if (Number.isInteger(n) && Math.abs(n) < 1e15) return n.toLocaleString("en-US");
    return String(+n.toPrecision(5));   // exponents only where JS picks them (< 1e-6, >= 1e21)
  }
  function fmtVal(v) {
    if (v === null) return "null";
    if (v === undefined) return "—";
    if (typeof v === "number") return fmtNum(v);
    return typeof v === "string" ? v : JSON.stringify(v);
  }
  function when(iso) { return iso ? iso.replace("T", " ").replace(/\.\d+/, "").replace("Z", " UTC") : ""; }
  function shortId(id) { return id ? id.slice(0, 12) : ""; }
  function shortDigest(d) { return d ? d.replace(/^([a-z0-9]+:)?(.{10}).*$/, "$2") : ""; }
  function plural(n, word) { return `${n.toLocaleString("en-US")} ${word}${n === 1 ? "" : "s"}`; }
  function runLabel(r) { return `${r.name || "(damaged)"} ${shortId(r.id)}`; }
  function color(id) { const i = ticked.indexOf(id); return COLORS[(i < 0 ? 0 : i) % COLORS.length]; }
  function cut(text) {
    // a long value: the first CUT characters and a button that shows the rest
    const s = String(text);
    if (s.length <= CUT) return document.createTextNode(s);
    const span = el("span", { text: s.slice(0, CUT) + "…" });
    const btn = el("button", { cls: "more", type: "button", text: `more (${s.length.toLocaleString("en-US")} chars)` });
    btn.addEventListener("click", (ev) => {
      ev.stopPropagation();
      const open = btn.dataset.open === "1";
      span.textContent = open ? s.slice(0, CUT) + "…" : s;
      btn.textContent = open ? `more (${s.length.toLocaleString("en-US")} chars)` : "less";
      btn.dataset.open = open ? "0" : "1";
    });
    return el("span", {}, span, " ", btn);
  }

  // -- header and tabs -----------------------------------------------------------------
  const meta = document.getElementById("meta");
  const shown = D.runs.length;
  let summary = `${D.store} · ${plural(shown, "run")}`;
  if (D.total > shown) summary += ` (newest ${shown.toLocaleString("en-US")} of ${D.total.toLocaleString("en-US")})`;
  if (D.where) summary += ` · where ${D.where}`;
  summary += ` · written ${when(D.written)}`;
  meta.textContent = summary;
  document.getElementById("foot").textContent = `mlledger ${D.version} · one self-contained file: it loads nothing from the network.`;

  const views = Array.from(document.querySelectorAll(".view"));
  const tabs = document.getElementById("tabs");
  const extensionData = { checks: Object.keys(D.checks).length, alerts: D.alerts.length, changelogs: D.changelogs.length };
  for (const v of views) {
    const key = v.dataset.key;
    if (key && !extensionData[key]) { v.classList.add("is-empty"); continue; }
    const name = v.id.slice(5);
    // "#/name", not "#name": a hash naming an element id would scroll the page to it
    const a = el("a", { href: "#/" + name, role: "tab", id: "tab-" + name, text: v.dataset.title });
    tabs.append(a);
  }
  function show(name) {
    let found = false;
    for (const v of views) {
      const on = v.id === "view-" + name && !v.classList.contains("is-empty");
      v.hidden = !on;
      found = found || on;
    }
    if (!found) { document.getElementById("view-runs").hidden = false; name = "runs"; }
    for (const a of tabs.children) {
      const on = a.id === "tab-" + name;
      a.setAttribute("aria-selected", on ? "true" : "false");
      // on a phone the tab bar scrolls sideways: keep the chosen tab in it, the page still
      if (on && tabs.scrollWidth > tabs.clientWidth) tabs.scrollLeft = Math.max(0, a.offsetLeft - 40);
    }
    if (name === "curves") drawCurves();
    if (name === "diff") drawDiff();
    if (name === "lineage") drawLineage();
  }
  const viewOfHash = () => location.hash.replace(/^#\/?/, "");
  window.addEventListener("hashchange", () => show(viewOfHash()));

  // -- the runs table ------------------------------------------------------------------
  const metricKeys = [...new Set(D.runs.flatMap((r) => Object.keys(r.metrics || {})))].sort();
  const metricSel = document.getElementById("metric-key");
  for (const k of metricKeys) metricSel.append(el("option", { value: k, text: k }));
  state.metric = metricKeys.includes("loss") ? "loss" : (metricKeys[0] || "");
  metricSel.value = state.metric;
  if (!metricKeys.length) metricSel.parentElement.hidden = true;

  const COLS = [
    ["tick", "", null],
    ["id", "id", (r) => r.id],
    ["name", "name", (r) => r.name],
    ["status", "status", (r) => r.status],
    ["started", "started", (r) => r.started || ""],
    ["user", "user", (r) => r.user || ""],
    ["message", "message", (r) => r.message || ""],
    ["params", "params", (r) => paramText(r)],
    ["metrics", "metrics", (r) => { const v = num((r.metrics || {})[state.metric]); return v === null || Number.isNaN(v) ? null : v; }],
    ["cost", "cost", (r) => (r.cost ? num(r.cost[0]) : null)],
  ];
  const hasCost = D.runs.some((r) => r.cost);
  const cols = COLS.filter((c) => c[0] !== "cost" || hasCost);
  const texts = new Map();
  function paramText(r) { return Object.entries(r.params || {}).map(([k, v]) => `${k}=${fmtVal(v)}`).join(" "); }
  function searchText(r) {
    let t = texts.get(r.id);
    if (t === undefined) {
      t = [r.id, r.name, r.status, r.user, r.host, r.message, paramText(r),
        Object.entries(r.tags || {}).map(([k, v]) => `${k}=${v}`).join(" ")].join("\n").toLowerCase();
      texts.set(r.id, t);
    }
    return t;
  }
  const head = document.getElementById("runs-head");
  for (const [key, label] of cols) {
    const th = el("th", { text: label, scope: "col", "data-key": key });
    if (key !== "tick") {
      th.classList.add("sortable");
      th.tabIndex = 0;
      const go = () => {
        state.dir = state.sort === key ? -state.dir : (key === "started" ? -1 : 1);
        state.sort = key; state.page = 0; renderRows();
      };
      th.addEventListener("click", go);
      th.addEventListener("keydown", (e) => { if (e.key === "Enter") go(); });
    }
    head.append(th);
  }
  let rows = D.runs;
  function ordered() {
    const f = state.filter;
    let out = f ? D.runs.filter((r) => searchText(r).includes(f)) : D.runs.slice();
    if (!(state.sort === "started" && state.dir === -1)) {     // D.runs is newest first already
      const get = cols.find((c) => c[0] === state.sort)[2];
      const keyed = out.map((r) => [get(r), r]);
      keyed.sort((a, b) => {
        const x = a[0], y = b[0];
        if (x === y) return 0;
        if (x === null || x === undefined) return 1;   // missing values last either way
        if (y === null || y === undefined) return -1;
        return (typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y))) * state.dir;
      });
      out = keyed.map((p) => p[1]);
    }
    return out;
  }
  function statusBadge(r) {
    const s = el("span", { cls: "status s-" + r.status, text: r.status });
    if (r.reason || r.error) s.title = r.error || r.reason;
    const checks = D.checks[r.id];
    if (!checks) return s;
    const failed = checks.filter((c) => !c.ok).length;
    const c = el("a", { href: "#/checks", cls: "checkmark " + (failed ? "fail" : "ok"),
      text: failed ? `✗ ${failed} of ${checks.length} checks` : `✓ ${plural(checks.length, "check")}` });
    return el("span", {}, s, " ", c);
  }
  function chips(entries, isMetric) {
    const box = el("div", { cls: "chips" });
    for (const [k, v] of entries) {
      const c = el("span", { cls: isMetric ? "chip metric" : "chip" }, el("b", { text: k + "=" }));
      c.append(isMetric ? document.createTextNode(fmtNum(v)) : cut(fmtVal(v)));
      box.append(c);
    }
    return box;
  }
  function row(r) {
    const tr = el("tr", { "data-id": r.id });
    if (ticked.includes(r.id)) tr.classList.add("ticked");
    if (r.damaged) tr.classList.add("damaged");
    for (const [key] of cols) {
      let td;
      if (key === "tick") {
        const box = el("input", { type: "checkbox", "aria-label": "tick run " + r.id });
        box.checked = ticked.includes(r.id);
        box.disabled = !!r.damaged;
        box.addEventListener("change", () => tick(r.id, box.checked, tr));
        td = el("td", {}, box);
      } else if (key === "id") td = el("td", { cls: "id", text: shortId(r.id), title: r.id });
      else if (key === "status") td = el("td", { cls: "status-cell" }, statusBadge(r));
      else if (key === "started") td = el("td", { cls: "when", text: when(r.started) });
      else if (key === "message") {
        td = el("td", { cls: "msg" });
        td.append(cut(r.message || (r.damaged ? r.reason : "") || ""));
      } else if (key === "params") td = el("td", { cls: "params" }, chips(Object.entries(r.params || {}), false));
      else if (key === "metrics") {
        const m = Object.entries(r.metrics || {});
        m.sort((a, b) => (a[0] === state.metric ? -1 : b[0] === state.metric ? 1 : a[0].localeCompare(b[0])));
        td = el("td", { cls: "metrics" }, chips(m, true));
      } else if (key === "cost") td = el("td", { cls: "num", text: r.cost ? `${fmtNum(r.cost[0])} ${r.cost[1]}`.trim() : "" });
      else td = el("td", { cls: key, text: r[key] || "" });
      tr.append(td);
    }
    return tr;
  }
  function renderRows() {
    rows = ordered();
    const pages = Math.max(1, Math.ceil(rows.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    const body = document.getElementById("runs-body");
    const frag = document.createDocumentFragment();
    for (const r of rows.slice(state.page * PAGE, state.page * PAGE + PAGE)) frag.append(row(r));
    body.replaceChildren(frag);
    for (const th of head.children) {
      th.removeAttribute("aria-sort");
      if (th.dataset.key === state.sort) th.setAttribute("aria-sort", state.dir > 0 ? "ascending" : "descending");
    }
    document.getElementById("page").textContent = rows.length ? `${(state.page * PAGE + 1).toLocaleString("en-US")}–${Math.min(rows.length, state.page * PAGE + PAGE).toLocaleString("en-US")} of ${rows.length.toLocaleString("en-US")}` : "";
    document.getElementById("prev").disabled = state.page === 0;
    document.getElementById("next").disabled = state.page >= pages - 1;
    document.getElementById("count").textContent = state.filter ? `${plural(rows.length, "run")} match` : "";
    const empty = document.getElementById("runs-empty");
    empty.replaceChildren();
    if (!D.runs.length) {
      empty.append(el("strong", { text: D.where ? "No run matches this filter." : "This ledger has no runs yet." }),
        el("span", { text: D.where ? `where ${D.where}` : "Record one (with ledger.run(), @tracked or mlledger run), then write the report again." }));
    } else if (!rows.length) empty.append(el("strong", { text: "No run matches the filter." }));
    empty.hidden = rows.length > 0;
    document.getElementById("runs").hidden = rows.length === 0;
  }
  function tick(id, on, tr) {
    const i = ticked.indexOf(id);
    if (on && i < 0) ticked.push(id);
    if (!on && i >= 0) ticked.splice(i, 1);
    if (tr) tr.classList.toggle("ticked", on);
    diffPick = ticked.length >= 2 ? ticked.slice(-2) : null;
    refreshSelects();
  }
  document.getElementById("filter").addEventListener("input", (e) => {
    state.filter = e.target.value.trim().toLowerCase(); state.page = 0; renderRows();
  });
  metricSel.addEventListener("change", () => { state.metric = metricSel.value; renderRows(); });
  document.getElementById("prev").addEventListener("click", () => { state.page--; renderRows(); });
  document.getElementById("next").addEventListener("click", () => { state.page++; renderRows(); });

  // -- curves --------------------------------------------------------------------------
  function niceTicks(lo, hi, n) {
    if (lo === hi) { const d = Math.abs(lo) || 1; lo -= d / 2; hi += d / 2; }
    const raw = (hi - lo) / n, mag = Math.pow(10, Math.floor(Math.log10(raw)));
    const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const out = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(+t.toPrecision(12));
    return { lo: Math.min(lo, out[0]), hi: Math.max(hi, out[out.length - 1]), ticks: out };
  }
  function chart(key, series) {
    const W = 560, H = 260, L = 54, R = 12, T = 10, B = 26;
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (const s of series) for (let i = 0; i < s.c.s.length; i++) {
      x0 = Math.min(x0, s.c.s[i]); x1 = Math.max(x1, s.c.s[i]);
      y0 = Math.min(y0, s.c.v[i]); y1 = Math.max(y1, s.c.v[i]);
    }
    if (x0 === x1) { x0 -= 1; x1 += 1; }
    const ty = niceTicks(y0, y1, 5), tx = niceTicks(x0, x1, 6);
    const X = (v) => L + (v - tx.lo) / (tx.hi - tx.lo) * (W - L - R);
    const Y = (v) => T + (1 - (v - ty.lo) / (ty.hi - ty.lo)) * (H - T - B);
    const svg = sv("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${key} by step` });
    const grid = sv("g", { class: "grid" }), axis = sv("g", { class: "axis" });
    for (const t of ty.ticks) {
      grid.append(sv("line", { x1: L, x2: W - R, y1: Y(t), y2: Y(t) }));
      axis.append(sv("text", { x: L - 6, y: Y(t) + 3, "text-anchor": "end", text: fmtNum(t) }));
    }
    for (const t of tx.ticks) axis.append(sv("text", { x: X(t), y: H - 8, "text-anchor": "middle", text: fmtNum(t) }));
    svg.append(grid, axis);
    for (const s of series) {
      let d = "";
      for (let i = 0; i < s.c.s.length; i++) d += `${i ? "L" : "M"}${X(s.c.s[i]).toFixed(1)} ${Y(s.c.v[i]).toFixed(1)}`;
      const p = sv("path", { d, class: "curve", stroke: s.color, "data-run": s.id });
      p.append(sv("title", { text: `${runLabel(s.run)} · ${key}` }));
      svg.append(p);
      if (s.c.s.length <= 3) {       // a point or two: a dot each, or nothing would show
        for (let i = 0; i < s.c.s.length; i++) svg.append(sv("circle", { cx: X(s.c.s[i]), cy: Y(s.c.v[i]), r: 3.5, fill: s.color }));
      }
    }
    return el("div", { cls: "chart" }, el("h3", { text: key }), svg);
  }
  function drawCurves() {
    const note = document.getElementById("curves-note"), legend = document.getElementById("legend");
    const charts = document.getElementById("charts");
    note.replaceChildren(); legend.replaceChildren(); charts.replaceChildren();
    let ids = ticked.filter((id) => D.curves[id]);
    const lines = [];
    if (!ticked.length) {
      ids = D.runs.filter((r) => D.curves[r.id]).slice(0, 3).map((r) => r.id);
      if (ids.length) lines.push("Showing the newest runs with curves; tick runs in the table to choose.");
    }
    const missing = ticked.filter((id) => !D.curves[id]);
    if (missing.length) lines.push(`No curve for ${plural(missing.length, "ticked run")} (${missing.map(shortId).join(", ")}): it logged no metric history, or it is past the first ${D.curve_runs.toLocaleString("en-US")} runs, whose curves this report embeds (write it with --curves N for more).`);
    if (!ids.length && !lines.length) lines.push("No run in this report logged metrics.");
    const byKey = new Map();
    ids.forEach((id, i) => {
      const run = byId.get(id), c0 = ticked.length ? color(id) : COLORS[i % COLORS.length];
      legend.append(el("span", { style: `--c:${c0}`, text: runLabel(run) }));
      const cutDown = new Map();
      for (const [key, c] of Object.entries(D.curves[id])) {
        if (!byKey.has(key)) byKey.set(key, []);
        byKey.get(key).push({ id, run, c, color: c0 });
        if (c.n > c.s.length + (c.bad || 0)) {
          const how = `downsampled from ${c.n.toLocaleString("en-US")} points to ${c.s.length}`;
          cutDown.set(how, [...(cutDown.get(how) || []), key]);
        }
        if (c.bad) lines.push(`${runLabel(run)} · ${key}: ${plural(c.bad, "NaN/inf value")} not drawn.`);
      }
      for (const [how, keys] of cutDown) lines.push(`${runLabel(run)} · ${keys.join(", ")}: ${how} for drawing (LTTB).`);
    });
    for (const line of lines) note.append(el("p", { text: line }));
    for (const key of [...byKey.keys()].sort()) {
      const series = byKey.get(key).filter((s) => s.c.s.length);
      if (series.length) charts.append(chart(key, series));
    }
  }

  // -- diff ----------------------------------------------------------------------------
  let diffPick = null;
  const selA = document.getElementById("diff-a"), selB = document.getElementById("diff-b");
  function refreshSelects() {
    const pool = ticked.length >= 2 ? ticked.map((id) => byId.get(id)) : D.runs.filter((r) => !r.damaged).slice(0, 200);
    for (const sel of [selA, selB]) {
      sel.replaceChildren(...pool.map((r) => el("option", { value: r.id, text: runLabel(r) })));
    }
    const pick = diffPick || pool.slice(0, 2).map((r) => r.id).reverse();
    if (pick.length === 2) { selA.value = pick[0]; selB.value = pick[1]; }
  }
  selA.addEventListener("change", () => { diffPick = [selA.value, selB.value]; drawDiff(); });
  selB.addEventListener("change", () => { diffPick = [selA.value, selB.value]; drawDiff(); });
  function cmp(out, section, a, b) {
    for (const k of [...new Set([...Object.keys(a || {}), ...Object.keys(b || {})])].sort()) {
      const x = (a || {})[k], y = (b || {})[k];
      if (JSON.stringify(x) !== JSON.stringify(y)) out.push([section, k, x, y]);
    }
  }
  function diffRuns(a, b) {
    const out = [];
    cmp(out, "params", a.params, b.params);
    cmp(out, "metrics", a.metrics, b.metrics);
    cmp(out, "inputs", a.in, b.in);
    cmp(out, "outputs", a.out, b.out);
    cmp(out, "code", a.code, b.code);
    cmp(out, "git", a.git, b.git);
    if (a.env !== b.env) {
      const ea = D.envs[a.env] || {}, eb = D.envs[b.env] || {};
      for (const s of ["packages", "env_vars", "python", "platform"]) cmp(out, s, ea[s], eb[s]);
    }
    return out;
  }
  function drawDiff() {
    const note = document.getElementById("diff-note"), body = document.getElementById("diff-body");
    note.replaceChildren(); body.replaceChildren();
    const a = byId.get(selA.value), b = byId.get(selB.value);
    document.getElementById("diff").hidden = true;
    if (!a || !b) { note.textContent = "A diff needs two runs: tick two in the table."; return; }
    if (a === b) { note.textContent = "Pick two different runs."; return; }
    const changes = diffRuns(a, b);
    const envNote = a.env !== b.env && (!D.envs[a.env] || !D.envs[b.env]) ? " Their environments differ, but one is not embedded in this report." : "";
    note.textContent = (changes.length ? `${plural(changes.length, "difference")} between ${runLabel(a)} (A) and ${runLabel(b)} (B).` : `${runLabel(a)} and ${runLabel(b)} differ in nothing but times and resources.`) + envNote;
    for (const [section, key, x, y] of changes) {
      const nx = num(x), ny = num(y);
      let change = "";
      if (nx !== null && ny !== null && Number.isFinite(nx) && Number.isFinite(ny)) {
        const d = ny - nx;
        change = (d > 0 ? "+" : "") + fmtNum(d);  // no colour: up is good for some metrics, bad for others
      } else if (x === undefined) change = "added";
      else if (y === undefined) change = "removed";
      else change = "changed";
      const isDigest = section === "inputs" || section === "outputs";
      const show = (v) => (v === undefined ? "—" : isDigest ? shortDigest(v) : fmtVal(v));
      const tdA = el("td", { cls: "mono" }); tdA.append(cut(show(x)));
      const tdB = el("td", { cls: "mono" }); tdB.append(cut(show(y)));
      body.append(el("tr", {}, el("td", { cls: "section", text: section }), el("td", { cls: "mono key", text: key }), tdA, tdB, el("td", { cls: "num change", text: change })));
    }
    document.getElementById("diff").hidden = changes.length === 0;
  }

  // -- lineage -------------------------------------------------------------------------
  let lineageDrawn = false;
  function drawLineage() {
    if (lineageDrawn) return;
    lineageDrawn = true;
    const G = D.lineage, wrap = document.getElementById("graph-wrap"), note = document.getElementById("lineage-note");
    const drawnRuns = G.nodes.filter((n) => n.kind === "run").length;
    if (!G.nodes.length) { note.textContent = "No runs to draw."; return; }
    note.textContent = `${plural(drawnRuns, "run")} and ${plural(G.nodes.length - drawnRuns, "artifact")}, data flowing left to right` +
      (D.runs.length > drawnRuns ? ` (the first ${D.graph_runs.toLocaleString("en-US")} runs of the table).` : ".");
    const NW = 168, NH = 38, GX = 70, GY = 14;
    const cols = new Map();
    for (const n of G.nodes) { if (!cols.has(n.layer)) cols.set(n.layer, []); cols.get(n.layer).push(n); }
    // order each layer by where what flows into its nodes sits (fewer crossings)
    const into = new Map();
    for (const [a, label, b] of G.edges) if (label !== "child_of") { if (!into.has(b)) into.set(b, []); into.get(b).push(a); }
    const rank = new Map();
    for (const layer of [...cols.keys()].sort((a, b) => a - b)) {
      const list = cols.get(layer);
      const bary = new Map(list.map((n, i) => {
        const src = (into.get(n.id) || []).filter((a) => rank.has(a));
        return [n.id, src.length ? src.reduce((t, a) => t + rank.get(a), 0) / src.length : i];
      }));
      list.sort((a, b) => bary.get(a.id) - bary.get(b.id));
      list.forEach((n, i) => rank.set(n.id, i));
    }
    const pos = new Map();
    let maxRows = 0;
    for (const [layer, list] of cols) {
      list.forEach((n, i) => pos.set(n.id, [16 + layer * (NW + GX), 16 + i * (NH + GY)]));
      maxRows = Math.max(maxRows, list.length);
    }
    const W = 32 + cols.size * (NW + GX) - GX, H = 32 + maxRows * (NH + GY) - GY;
    const svg = sv("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "lineage graph", id: "lineage" });
    const defs = sv("defs");
    const marker = sv("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
    marker.append(sv("path", { d: "M0 0L10 5L0 10z", fill: "currentColor" }));
    defs.append(marker); svg.append(defs);
    const edges = sv("g", { style: "color: var(--muted)" });
    for (const [a, label, b] of G.edges) {
      const pa = pos.get(a), pb = pos.get(b);
      if (!pa || !pb) continue;
      let d;
      if (label === "child_of" || pa[0] >= pb[0]) {
        d = `M${pa[0] + NW / 2} ${pa[1] + NH}C${pa[0] + NW / 2} ${pa[1] + NH + 30} ${pb[0] + NW / 2} ${pb[1] + NH + 30} ${pb[0] + NW / 2} ${pb[1] + NH}`;
      } else {
        const x1 = pa[0] + NW, y1 = pa[1] + NH / 2, x2 = pb[0], y2 = pb[1] + NH / 2, mx = (x1 + x2) / 2;
        d = `M${x1} ${y1}C${mx} ${y1} ${mx} ${y2} ${x2} ${y2}`;
      }
      const p = sv("path", { d, class: "edge " + label, "marker-end": "url(#arrow)" });
      p.append(sv("title", { text: label }));
      edges.append(p);
    }
    svg.append(edges);
    for (const n of G.nodes) {
      const [x, y] = pos.get(n.id);
      const g = sv("g", { class: `node ${n.kind} ${n.status || ""}`, transform: `translate(${x},${y})`, "data-id": n.id });
      g.append(sv("rect", { width: NW, height: NH, rx: n.kind === "run" ? 6 : 14 }));
      const label = n.label.length > 26 ? n.label.slice(0, 25) + "…" : n.label;
      g.append(sv("text", { x: 10, y: 16, text: label }));
      g.append(sv("text", { x: 10, y: 30, class: "sub", text: n.kind === "run" ? `${shortId(n.id)} · ${n.status}` : shortDigest(n.id) }));
      g.append(sv("title", { text: `${n.kind} ${n.id}\n${n.label}` }));
      svg.append(g);
    }
    wrap.replaceChildren(svg);
  }

  // -- refs and the extension sections -------------------------------------------------
  function table(headers, rowsIn) {
    const t = el("table", { cls: "cards" }, el("thead", {}, el("tr", {}, ...headers.map((h) => el("th", { text: h })))));
    const tb = el("tbody");
    for (const r of rowsIn) {
      tb.append(el("tr", {}, ...r.map((c, i) => (c instanceof Node
        ? el("td", { "data-label": headers[i] }, c)
        : el("td", { "data-label": headers[i], text: c === null || c === undefined ? "" : c })))));
    }
    t.append(tb);
    return el("div", { cls: "table-wrap" }, t);
  }
  function drawRefs() {
    const box = document.getElementById("refs");
    if (!D.refs.length) {
      box.append(el("div", { cls: "empty" }, el("strong", { text: "No refs yet." }), el("span", { text: "Name a run's output with: mlledger ref set model/prod RUN" })));
      return;
    }
    for (const ref of D.refs) {
      const sec = el("div", { cls: "ref" }, el("h3", { text: ref.name }));
      if (ref.error) sec.append(el("p", { cls: "fail", text: ref.error }));
      sec.append(table(["#", "when", "who", "action", "target", "run", "message"], ref.moves.map((m) => [
        String(m.seq), when(m.at), m.user, m.action, shortDigest(m.target), shortId(m.run), cut(m.message || "")])));
      box.append(sec);
    }
  }
  function drawChecks() {
    const box = document.getElementById("checks");
    for (const [rid, results] of Object.entries(D.checks)) {
      const r = byId.get(rid);
      box.append(el("h3", { cls: "mono", text: r ? runLabel(r) : shortId(rid) }));
      box.append(table(["rule", "field", "value", "baseline", "change", "result", "message"], results.map((c) => [
        c.rule, c.field, fmtNum(c.value), fmtNum(c.baseline), fmtNum(c.change),
        el("span", { cls: c.ok ? "ok" : "fail", text: c.ok ? "pass" : "fail" }), c.message])));
    }
  }
  function drawAlerts() {
    document.getElementById("alerts").append(table(["kind", "run", "rule", "when", "message"],
      D.alerts.map((a) => [a.kind, shortId(a.run_id), a.rule, when(a.at), a.message])));
  }
  function drawChangelogs() {
    const box = document.getElementById("changelogs");
    for (const c of D.changelogs) box.append(el("h3", { cls: "mono", text: c.ref }), el("pre", { cls: "changelog", text: c.text }));
  }

  renderRows();
  refreshSelects();
  drawRefs();
  if (extensionData.checks) drawChecks();
  if (extensionData.alerts) drawAlerts();
  if (extensionData.changelogs) drawChangelogs();
  show(viewOfHash() || "runs");
  if (window.matchMedia && window.matchMedia("print").addEventListener) {
    window.matchMedia("print").addEventListener("change", (e) => { if (e.matches) { drawCurves(); drawDiff(); drawLineage(); } });
  }
  window.addEventListener("beforeprint", () => { drawCurves(); drawDiff(); drawLineage(); });
})();
