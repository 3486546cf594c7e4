// The Optimus dashboard: reads only aggregate endpoints of /api/v1 (no personal data), redraws
// itself every few seconds. A token, when given, is kept for this tab only (sessionStorage).
"use strict";

const params = new URLSearchParams(location.search);
const REFRESH_SECONDS = Math.max(1, Number(params.get("refresh")) || 5);
const state = { course: params.get("course") || null, loaded: {}, series: {} };

function token() { return sessionStorage.getItem("optimus-token") || ""; }

async function api(path) {
  const headers = {};
  if (token()) headers["Authorization"] = "Bearer " + token();
  const response = await fetch(path, { headers });
  if (response.status === 401 || response.status === 403) {
    throw new Error("this server requires a token for " + path + " (" + response.status + ")");
  }
  if (!response.ok) throw new Error(path + ": HTTP " + response.status);
  return response.json();
}

function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "" : String(text);
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}

function fmt(n) { return n === null || n === undefined ? "" : Number(n).toLocaleString("en"); }

function renderServices(data) {
  const body = document.querySelector("#services tbody");
  body.replaceChildren();
  for (const s of data.services) {
    const tr = document.createElement("tr");
    tr.dataset.service = s.name;
    cell(tr, s.name);
    cell(tr, s.status, "status-" + s.status);
    cell(tr, s.task);
    for (const k of ["queued", "running", "done"]) cell(tr, s[k], "num");
    cell(tr, s.failed, s.failed ? "num bad" : "num");
    const run = s.last_run || {};
    cell(tr, run.finished_at ? run.finished_at + " (" + run.status + ")" : "");
    cell(tr, run.rows === undefined ? "" : run.rows, "num");
    cell(tr, run.rows_per_second === undefined ? "" : run.rows_per_second, "num");
    cell(tr, run.error || "", "bad");
    body.appendChild(tr);
  }
  const d = data.daemon;
  document.getElementById("daemon").textContent =
    (d.mode === "daemon" ? "ingesting" : "read-only server") + (d.busy ? " · working" + (d.task ? ": " + d.task : "") : " · idle") +
    " · last scan " + (d.last_scan_at || "never");
}

function renderFailed(data) {
  const body = document.querySelector("#failed-files tbody");
  body.replaceChildren();
  document.getElementById("failed-count").textContent = "(" + data.total + ")";
  for (const f of data.files) {
    const tr = document.createElement("tr");
    tr.dataset.fileId = f.id;
    cell(tr, f.service);
    cell(tr, f.path, "path");
    cell(tr, f.error, "bad");
    cell(tr, f.finished_at);
    body.appendChild(tr);
  }
}

const HEIGHT = 320;
// the plot's toolbar (modebar) sits in the top 30 px at the right: the title goes on its own line below it, at the left
const LAYOUT = { margin: { t: 64, r: 20, b: 50, l: 60 }, height: HEIGHT, showlegend: false };
const TITLE_Y = 1 - 46 / HEIGHT;
const DAY_MS = 86400000;

// A date axis that never zooms into sub-millisecond ticks: with one day (or a few) of data, a range of whole
// days around the points and one tick per day; longer spans are left to Plotly.
function dateAxis(dates) {
  const times = dates.map(d => Date.parse(d)).filter(t => !Number.isNaN(t));
  if (!times.length) return { type: "date" };
  const lo = Math.min(...times), hi = Math.max(...times);
  if (hi - lo >= 7 * DAY_MS) return { type: "date" };
  const day = t => new Date(t).toISOString().slice(0, 10);
  return { type: "date", range: [day(lo - DAY_MS), day(hi + DAY_MS)], dtick: DAY_MS, tickformat: "%b %d, %Y" };
}

function draw(id, traces, title, empty, extra) {
  const heading = { text: title, font: { size: 14 }, x: 0.01, xanchor: "left", xref: "container", y: TITLE_Y, yanchor: "middle", yref: "container" };
  const layout = Object.assign({}, LAYOUT, { title: heading }, extra || {});
  if (empty) {
    layout.annotations = [{ text: empty, showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 }];
  }
  Plotly.react(id, traces, layout, { displaylogo: false, responsive: true });
  document.getElementById(id).dataset.drawn = String(Date.now());
}

function renderThroughput(data) {
  const x = data.series.map(p => p.time), y = data.series.map(p => p.rows);
  state.series.throughput = data;
  draw("chart-throughput", [
    { type: "bar", name: "rows", x: x, y: y, marker: { color: "#42a5f5" } },
    { type: "scatter", mode: "lines+markers", name: "files", x: x, y: data.series.map(p => p.files), yaxis: "y2" },
  ], "rows ingested per " + data.bucket, data.series.length ? null : "nothing ingested yet", {
    xaxis: { type: "category", automargin: true },
    yaxis: { title: { text: "rows" }, rangemode: "tozero" },
    yaxis2: { overlaying: "y", side: "right", title: { text: "files" }, rangemode: "tozero" },
  });
}

function cumulative(values) { let t = 0; return values.map(v => (t += v)); }

function renderCourse(c) {
  state.series.course = c;
  const e = c.enrolments.by_day;
  draw("chart-enrolments", [
    { type: "bar", name: "new", x: e.map(p => p.date), y: e.map(p => p.count), marker: { color: "#90caf9" } },
    { type: "scatter", mode: "lines", name: "total", x: e.map(p => p.date), y: cumulative(e.map(p => p.count)), line: { color: "#1565c0" } },
  ], "enrolments over time (" + fmt(c.enrolments.total) + ")", e.length ? null : "no enrolment data yet", { xaxis: dateAxis(e.map(p => p.date)) });
  const a = c.active_learners.by_day;
  draw("chart-active", [{ type: "scatter", mode: "lines+markers", x: a.map(p => p.date), y: a.map(p => p.learners), line: { color: "#2e7d32" } }],
    "daily active learners", a.length ? null : "no activity data yet (TimeFinder)", { xaxis: dateAxis(a.map(p => p.date)) });
  const k = c.certificates.by_day;
  draw("chart-certificates", [{ type: "bar", x: k.map(p => p.date), y: k.map(p => p.count), marker: { color: "#ffb300" } }],
    "certificates (" + fmt(c.certificates.total) + ")", k.length ? null : (c.certificates.total ? "dates not known" : "no certificates yet"),
    { xaxis: { type: "category", automargin: true } });
  const n = c.countries.by_country.slice().reverse();
  draw("chart-countries", [{ type: "bar", orientation: "h", x: n.map(p => p.learners), y: n.map(p => p.country), marker: { color: "#8e24aa" } }],
    "learners by country" + (c.countries.unknown ? " (" + fmt(c.countries.unknown) + " unknown)" : ""), n.length ? null : "no country data yet (PersonCourse)",
    { yaxis: { automargin: true, type: "category" } });
  document.getElementById("course-summary").textContent =
    [c.display_name, (c.course_ids || []).join(" · "), fmt(c.enrolments.total) + " enrolled"].filter(Boolean).join(" — ");
}

// the course the page opens on: the most enrolled (the first listed among equals), not the first by name
function largest(courses) {
  let best = null;
  for (const c of courses) if (best === null || (c.enrolments || 0) > (best.enrolments || 0)) best = c;
  return best ? best.course_key : null;
}

function renderCourseList(data) {
  const select = document.getElementById("course");
  const keys = data.courses.map(c => c.course_key);
  if (!state.course || !keys.includes(state.course)) state.course = largest(data.courses);
  if (select.dataset.keys !== keys.join("|")) {
    select.replaceChildren(...data.courses.map(c => {
      const o = document.createElement("option");
      o.value = c.course_key;
      o.textContent = c.display_name ? c.display_name + " (" + c.course_key + ")" : (c.course_ids[0] || c.course_key);
      return o;
    }));
    select.dataset.keys = keys.join("|");
  }
  if (state.course) select.value = state.course;
}

async function refresh() {
  const message = document.getElementById("message");
  try {
    const bucket = document.getElementById("bucket").value;
    const [services, failed, through, list] = await Promise.all([
      api("/api/v1/services"), api("/api/v1/files?state=failed&limit=50"), api("/api/v1/throughput?bucket=" + bucket), api("/api/v1/courses"),
    ]);
    renderServices(services);
    renderFailed(failed);
    renderThroughput(through);
    renderCourseList(list);
    if (state.course) renderCourse(await api("/api/v1/courses/" + encodeURIComponent(state.course)));
    message.hidden = true;
    document.getElementById("refreshed").textContent = new Date().toLocaleTimeString();
    document.body.dataset.refreshed = String(Date.now());
  } catch (err) {
    message.textContent = err.message;
    message.hidden = false;
  }
}

document.getElementById("refresh-seconds").textContent = REFRESH_SECONDS;
document.getElementById("token").value = token();
document.getElementById("token-form").addEventListener("submit", ev => {
  ev.preventDefault();
  sessionStorage.setItem("optimus-token", document.getElementById("token").value);
  refresh();
});
document.getElementById("course").addEventListener("change", ev => { state.course = ev.target.value; refresh(); });
document.getElementById("bucket").addEventListener("change", refresh);
refresh();
setInterval(refresh, REFRESH_SECONDS * 1000);
