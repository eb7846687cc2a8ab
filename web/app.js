// app.js -- the e2 status page's logic. Reads e2d's read-only JSON API
// (the same messages as the gRPC GetJob/ListJobs/GetMetrics, proto field
// names, 64-bit integers as strings) and redraws every REFRESH_MS:
//   GET /api/v1/jobs                 jobs table
//   GET /api/v1/jobs/<id>            checkpoints, eval table, events
//   GET /api/v1/jobs/<id>/metrics    loss and tokens/s curves
// The selected job is the one named in the URL fragment (#j-000001), else
// the newest. Every value is put into the page as text, never as HTML.
// When e2d has a token file, the API answers 401 until the form's token
// (kept in this tab's sessionStorage) goes along as a Bearer token.
"use strict";

const REFRESH_MS = 3000;
let selected = decodeURIComponent(location.hash.slice(1));

function stateName(s) {
  return String(s || "").replace(/^JOB_STATE_/, "");
}

function fmtNum(v, digits) {
  if (v === undefined || v === null) return "";
  if (typeof v === "string") return v; // "NaN", "Infinity"
  return v.toFixed(digits);
}

function fmtTime(ms) {
  if (!ms || ms === "0") return "";
  return new Date(Number(ms)).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function row(cells) {
  const tr = document.createElement("tr");
  for (const c of cells) {
    const td = el("td", c.text !== undefined ? c.text : c, c.cls);
    tr.appendChild(td);
  }
  return tr;
}

async function getJSON(path) {
  const headers = {};
  const token = sessionStorage.getItem("e2-token");
  if (token) headers.Authorization = "Bearer " + token;
  const r = await fetch(path, { cache: "no-store", headers });
  document.getElementById("auth").hidden = r.status !== 401 && r.status !== 403;
  if (!r.ok) {
    const text = await r.text();
    let msg = text.trim() || r.statusText;
    try { msg = JSON.parse(text).error.message; } catch (e) { /* plain text */ }
    throw new Error(msg);
  }
  return r.json();
}

function renderJobs(jobs) {
  const tbody = document.querySelector("#jobs tbody");
  tbody.replaceChildren();
  document.getElementById("jobs-empty").hidden = jobs.length > 0;
  for (const j of jobs) {
    const st = stateName(j.state);
    const tr = row([
      j.id,
      (j.spec && j.spec.name) || "",
      { text: st, cls: "state-cell" },
      { text: `${j.step || 0}/${j.total_steps || 0}`, cls: "num" },
      { text: fmtNum(j.loss, 4), cls: "num" },
      { text: fmtNum(j.tokens_per_second, 0), cls: "num" },
      { text: String(j.restarts || 0), cls: "num" },
      fmtTime(j.created_unix_ms),
    ]);
    tr.dataset.job = j.id;
    if (j.id === selected) tr.classList.add("selected");
    tr.addEventListener("click", () => {
      selected = j.id;
      location.hash = j.id;
      refresh();
    });
    tbody.appendChild(tr);
  }
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (text !== undefined) e.textContent = text;
  return e;
}

// A line chart of (x, y) pairs: axes with min/max labels, one circle per
// point (class "point", data-x/data-y, so tests can count them).
function lineChart(box, pts, digits) {
  const W = 440, H = 220, L = 56, R = 12, T = 10, B = 28;
  const s = svg("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`,
                         class: "plot", "data-points": pts.length });
  box.replaceChildren(s);
  if (!pts.length) {
    s.appendChild(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle",
                                class: "label" }, "no points yet"));
    return;
  }
  const xs = pts.map(p => p[0]), ys = pts.map(p => p[1]);
  let x0 = Math.min(...xs), x1 = Math.max(...xs);
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (x1 === x0) { x0 -= 1; x1 += 1; }
  if (y1 === y0) { const d = Math.abs(y0) * 0.1 || 1; y0 -= d; y1 += d; }
  const px = x => L + (x - x0) / (x1 - x0) * (W - L - R);
  const py = y => H - B - (y - y0) / (y1 - y0) * (H - T - B);
  for (const f of [0, 0.5, 1]) {
    const y = y0 + f * (y1 - y0);
    s.appendChild(svg("line", { x1: L, x2: W - R, y1: py(y), y2: py(y), class: "grid" }));
    s.appendChild(svg("text", { x: L - 4, y: py(y) + 4, "text-anchor": "end",
                                class: "label" }, y.toFixed(digits)));
  }
  s.appendChild(svg("line", { x1: L, x2: L, y1: T, y2: H - B, class: "axis" }));
  s.appendChild(svg("line", { x1: L, x2: W - R, y1: H - B, y2: H - B, class: "axis" }));
  s.appendChild(svg("text", { x: L, y: H - 8, class: "label" }, String(Math.round(x0))));
  s.appendChild(svg("text", { x: W - R, y: H - 8, "text-anchor": "end",
                              class: "label" }, `step ${Math.round(x1)}`));
  s.appendChild(svg("polyline", { class: "line",
    points: pts.map(p => `${px(p[0]).toFixed(1)},${py(p[1]).toFixed(1)}`).join(" ") }));
  for (const p of pts)
    s.appendChild(svg("circle", { cx: px(p[0]).toFixed(1), cy: py(p[1]).toFixed(1),
                                  r: 3, class: "point", "data-x": p[0], "data-y": p[1] }));
}

function finite(v) {
  return typeof v === "number" && isFinite(v);
}

function renderJob(job, metrics) {
  document.getElementById("job").hidden = false;
  document.getElementById("job-id").textContent = job.id;
  const st = stateName(job.state);
  const badge = document.getElementById("job-state");
  badge.textContent = st;
  badge.className = "state " + st;
  document.getElementById("job-reason").textContent = job.reason || "";

  const points = metrics.points || [];
  lineChart(document.getElementById("chart-loss"),
            points.filter(p => finite(p.loss)).map(p => [p.step || 0, p.loss]), 3);
  lineChart(document.getElementById("chart-tps"),
            points.filter(p => finite(p.tokens_per_second))
                  .map(p => [p.step || 0, p.tokens_per_second]), 0);

  const ck = document.querySelector("#ckpts tbody");
  ck.replaceChildren();
  for (const c of job.checkpoints || [])
    ck.appendChild(row([{ text: String(c.step || 0), cls: "num" },
                        { text: String(c.attempt || 0), cls: "num" },
                        fmtTime(c.committed_unix_ms),
                        { text: c.path || "", cls: "path" }]));
  if (!(job.checkpoints || []).length)
    ck.appendChild(row([{ text: "none committed yet", cls: "muted" }, "", "", ""]));

  const ev = document.querySelector("#eval tbody");
  ev.replaceChildren();
  for (const e of metrics.eval || job.eval || []) {
    const pk = e.passkey_trials ? `${e.passkey_correct || 0}/${e.passkey_trials}` : "-";
    ev.appendChild(row([e.before_training ? "base" : "trained",
                        { text: String(e.window || 0), cls: "num" },
                        { text: fmtNum(e.scale, 2), cls: "num" },
                        { text: fmtNum(e.loss, 4), cls: "num" },
                        { text: fmtNum(e.perplexity, 3), cls: "num" },
                        { text: pk, cls: "num" }]));
  }
  if (!(metrics.eval || job.eval || []).length)
    ev.appendChild(row([{ text: "no evaluation yet", cls: "muted" }, "", "", "", "", ""]));

  const evs = document.querySelector("#events tbody");
  evs.replaceChildren();
  for (const e of job.events || [])
    evs.appendChild(row([fmtTime(e.time_unix_ms), stateName(e.state), e.reason || ""]));
}

async function refresh() {
  const err = document.getElementById("jobs-error");
  try {
    const list = await getJSON("api/v1/jobs?page_size=100");
    const jobs = list.jobs || [];
    if (!selected && jobs.length) selected = jobs[0].id;
    renderJobs(jobs);
    err.hidden = true;
    if (selected) {
      const id = encodeURIComponent(selected);
      const [job, metrics] = await Promise.all([
        getJSON(`api/v1/jobs/${id}`), getJSON(`api/v1/jobs/${id}/metrics`)]);
      renderJob(job.job, metrics);
    }
    document.getElementById("updated").textContent =
      "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    err.textContent = "e2d: " + e.message;
    err.hidden = false;
  }
}

document.getElementById("auth").addEventListener("submit", ev => {
  ev.preventDefault();
  sessionStorage.setItem("e2-token", document.getElementById("token").value.trim());
  refresh();
});

window.addEventListener("hashchange", () => {
  selected = decodeURIComponent(location.hash.slice(1));
  refresh();
});
refresh();
setInterval(refresh, REFRESH_MS);
