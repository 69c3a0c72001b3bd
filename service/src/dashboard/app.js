// The collex-db dashboard: reads /dashboard/data every 2 s and draws the numbers, tables and SVG charts.
// Served as its own route so the page's Content-Security-Policy allows no inline script. Sets
// <body data-state="ready"> once real numbers are shown ("error" with the reason when something failed).
"use strict";

(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const $ = (id) => document.getElementById(id);
  const text = (id, v) => { const e = $(id); if (e) e.textContent = v; };
  const fmtMs = (ms) => ms == null ? "–" : ms < 1 ? ms.toFixed(2) + " ms" : ms < 100 ? ms.toFixed(1) + " ms" : Math.round(ms) + " ms";
  const fmtSecs = (s) => s < 1 ? fmtMs(s * 1000) : s.toFixed(2) + " s";
  const fmtN = (n) => n == null ? "–" : Number(n).toLocaleString("en-US");

  function fail(reason) {
    document.body.dataset.state = "error";
    document.body.dataset.error = String(reason);
    text("status", "error: " + reason);
    $("status").className = "badge crit";
  }
  window.addEventListener("error", (e) => fail(e.message || "script error"));

  // Per-second rates between consecutive samples of a counter.
  function rates(history, key) {
    const out = [];
    for (let i = 1; i < history.length; i++) {
      const dt = history[i].t - history[i - 1].t;
      if (dt > 0) out.push([history[i].t, Math.max(0, history[i][key] - history[i - 1][key]) / dt]);
    }
    return out;
  }

  function el(name, attrs, parent) {
    const e = document.createElementNS(SVG, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(e);
    return e;
  }

  // A line chart of `series` ([{name, points: [[t, v]]}]) into the element `id`, scaled to the data.
  function chart(id, series, fixedMax) {
    const box = $(id);
    const W = 600, H = 160, L = 40, R = 8, T = 18, B = 18;
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img" });
    const all = series.flatMap((s) => s.points);
    const t0 = all.length ? Math.min(...all.map((p) => p[0])) : 0;
    const t1 = all.length ? Math.max(...all.map((p) => p[0])) : 1;
    let max = fixedMax || Math.max(1e-9, ...all.map((p) => p[1]));
    if (!fixedMax) max = niceMax(max);
    for (let i = 0; i <= 4; i++) {
      const y = T + (H - T - B) * (1 - i / 4);
      el("line", { x1: L, x2: W - R, y1: y, y2: y, class: "grid" }, svg);
      el("text", { x: L - 4, y: y + 3, "text-anchor": "end", class: "axis" }, svg).textContent = short(max * i / 4);
    }
    const span = Math.max(1, t1 - t0);
    el("text", { x: L, y: H - 4, class: "axis" }, svg).textContent = all.length ? ago(t1 - t0) : "no data yet";
    el("text", { x: W - R, y: H - 4, "text-anchor": "end", class: "axis" }, svg).textContent = "now";
    series.forEach((s, i) => {
      const pts = s.points.map(([t, v]) =>
        `${(L + (W - L - R) * (t - t0) / span).toFixed(1)},${(T + (H - T - B) * (1 - Math.min(v, max) / max)).toFixed(1)}`);
      el("polyline", { points: pts.join(" "), class: "s" + i }, svg);
      const last = s.points.length ? s.points[s.points.length - 1][1] : null;
      el("text", { x: L + 4 + i * 150, y: 12, class: "legend" }, svg).textContent =
        `${s.name}: ${last == null ? "–" : short(last)}`;
    });
    box.replaceChildren(svg);
  }

  function niceMax(v) {
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
    return 10 * p;
  }
  function short(v) {
    if (v >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (v >= 1e3) return (v / 1e3).toFixed(1) + "k";
    if (v >= 10 || v === 0) return String(Math.round(v));
    return v.toFixed(v >= 1 ? 1 : 2);
  }
  function ago(s) { return s >= 120 ? Math.round(s / 60) + " min ago" : Math.round(s) + " s ago"; }

  function row(cells, classes) {
    const tr = document.createElement("tr");
    cells.forEach((c, i) => {
      const td = document.createElement("td");
      td.textContent = c;
      if (classes && classes[i]) td.className = classes[i];
      tr.appendChild(td);
    });
    return tr;
  }

  function table(id, rows, empty, cols) {
    const body = $(id).tBodies[0];
    if (!rows.length) {
      body.replaceChildren(row([empty], ["muted"]));
      body.rows[0].cells[0].colSpan = cols;
      return;
    }
    body.replaceChildren(...rows);
  }

  function render(d) {
    const p = d.pool;
    text("engine", p.engine);
    text("in-use", p.in_use); text("idle", p.idle); text("open", p.open);
    text("max-open", p.max_open); text("max-idle", p.max_idle);
    const use = p.max_open ? p.in_use / p.max_open : 0;
    const bar = $("use-bar");
    bar.style.width = (use * 100).toFixed(1) + "%";
    bar.className = use >= 0.9 ? "crit" : use >= 0.75 ? "warn" : "";
    text("waits", fmtN(p.waits)); text("wait-time", fmtSecs(p.wait_seconds)); text("pending", p.pending);
    text("timeouts", fmtN(p.timeouts)); text("acquire-timeout", fmtSecs(p.acquire_timeout_seconds));
    text("ping", d.ping_ms == null ? "down" : fmtMs(d.ping_ms));
    text("ping-error", d.ping_error || "");
    const statements = d.queries.reduce((a, q) => a + q.count, 0);
    text("statements", fmtN(statements));
    text("slow-total", fmtN(d.slow_total));
    text("slow-threshold", d.slow_threshold_ms > 0 ? fmtMs(d.slow_threshold_ms) : "off");
    const m = d.migrations;
    text("mig-applied", m.latest_applied_version == null ? "–" : "v" + m.latest_applied_version);
    text("mig-pending", m.pending == null ? "?" : m.pending);
    text("mig-problems", m.history_problems == null ? "?" : m.history_problems);
    text("mig-drift", m.drift);
    text("replica", d.replicas.length === 0 ? "no replica configured" : d.replicas.map((r) =>
      `${r.pool_name}: ${r.status}, ${fmtSecs(r.lag_seconds)} behind (${fmtN(r.lag_bytes)} bytes)`).join(" · "));
    $("closed").replaceChildren(...p.closed.map(([reason, n]) => {
      const li = document.createElement("li");
      const k = document.createElement("span"); k.textContent = reason;
      const v = document.createElement("b"); v.textContent = fmtN(n);
      li.append(k, v);
      return li;
    }));

    table("queries", d.queries.map((q) => row(
      [q.entity, q.operation, fmtN(q.count), q.rate.toFixed(2), fmtMs(q.p50_ms), fmtMs(q.p95_ms), fmtMs(q.p99_ms), fmtN(q.errors), fmtN(q.stale)],
      ["", "", "num", "num", "num", "num", "num", "num", "num"])), "no statements yet", 9);
    table("slowest", d.slowest.map((s) => row(
      [s.duration_ms.toFixed(1), s.entity, s.operation, fmtN(s.rows), s.outcome, s.sql],
      ["num", "", "", "num", "", "sql"])), "none yet", 6);

    const h = d.history;
    chart("chart-conns", [
      { name: "in use", points: h.map((s) => [s.t, s.in_use]) },
      { name: "idle", points: h.map((s) => [s.t, s.idle]) },
      { name: "max", points: h.map((s) => [s.t, p.max_open]) },
    ]);
    chart("chart-waits", [
      { name: "waits/s", points: rates(h, "waits") },
      { name: "timeouts/s", points: rates(h, "timeouts") },
    ]);
    chart("chart-statements", [
      { name: "statements/s", points: rates(h, "statements") },
      { name: "slow/s", points: rates(h, "slow") },
    ]);
    chart("chart-ping", [
      { name: "ping ms", points: h.filter((s) => s.ping_ms != null).map((s) => [s.t, s.ping_ms]) },
    ]);

    const problems = (m.pending || 0) + (m.history_problems || 0) + (m.drift === "yes" ? 1 : 0);
    const status = d.ping_ms == null ? ["database down", "crit"] : use >= 0.9 || p.pending > 0 ? ["saturated", "warn"]
      : problems ? ["migrations need attention", "warn"] : ["healthy", "ok"];
    text("status", status[0]);
    $("status").className = "badge " + status[1];
    text("updated", "updated " + new Date(d.now * 1000).toLocaleTimeString());
    document.body.dataset.state = "ready";
  }

  async function refresh() {
    try {
      const r = await fetch("/dashboard/data", { cache: "no-store" });
      if (!r.ok) throw new Error("/dashboard/data answered " + r.status);
      render(await r.json());
    } catch (e) {
      fail(e.message || String(e));
    }
  }

  refresh();
  setInterval(refresh, 2000);
})();
