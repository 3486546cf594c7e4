// The Optimus dashboard: reads only aggregate endpoints of /api/v1 (no personal data), redraws
// itself every few seconds. A token, when given, is kept for this tab only (sessionStorage).
"use strict";

const params = new URLSearchParams(location.search);
const REFRESH_SECONDS = Math.max(1, Number(params.get("refresh")) || 5);
const state = { course: params.get("course") || null, loaded: {}, series: {}, dashboard: null };

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
  const height = (extra && extra.height) || HEIGHT;
  const heading = { text: title, font: { size: 14 }, x: 0.01, xanchor: "left", xref: "container", y: 1 - 46 / height, yanchor: "middle", yref: "container" };
  const layout = Object.assign({}, LAYOUT, { title: heading }, extra || {});
  if (empty) {
    layout.annotations = [{ text: empty, showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 }];
  }
  // topojsonURL: Plotly's geo base layers from this server (never its CDN); the map draws the shapes of /ui/world/
  Plotly.react(id, traces, layout, { displaylogo: false, responsive: true, topojsonURL: "/ui/world/" });
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
    "learners by country" + (c.countries.unknown ? " (" + fmt(c.countries.unknown) + " unknown)" : "") +
      (n.some(p => p.learners === null) ? " · bars of <5 learners left empty" : ""), n.length ? null : "no country data yet (PersonCourse)",
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

// -- the course dashboard's sections (GET /api/v1/courses/{id}/dashboard: aggregates, counts under 5 withheld) ----
const WITHHELD_COLOR = "#cfd8dc";
let world = null;  // the country shapes, fetched once from this server (no CDN)

async function worldShapes() {
  if (world === null) {
    const response = await fetch("/ui/world/countries-110m.geojson");
    if (!response.ok) throw new Error("the map's country shapes: HTTP " + response.status);
    world = await response.json();
  }
  return world;
}

// a bar per item: a withheld count drawn as an empty bar labelled "<5"
function counted(items, key) {
  return { values: items.map(i => i[key] === null || i[key] === undefined ? 0 : i[key]), text: items.map(i => i.shown) };
}

function bars(id, items, labelKey, title, empty, color, extra) {
  const c = counted(items, "learners");
  draw(id, [{ type: "bar", x: items.map(i => i[labelKey]), y: c.values, text: c.text, textposition: "outside", cliponaxis: false,
    marker: { color: items.map(i => i.learners === null ? WITHHELD_COLOR : color) } }],
  title, items.some(i => i.learners) ? null : empty, Object.assign({ xaxis: { type: "category", automargin: true }, yaxis: { rangemode: "tozero" } }, extra || {}));
}

function renderOverview(d) {
  const f = d.overview.funnel;
  draw("chart-funnel", [{ type: "funnel", y: f.map(s => s.stage), x: f.map(s => s.learners === null ? 0 : s.learners), text: f.map(s => s.shown),
    textinfo: "text", marker: { color: "#1565c0" } }], "learners: registered → viewed → explored → completed → certified",
  f.length ? null : "no person_course yet (PersonCourse)", { yaxis: { type: "category", automargin: true } });
  const e = d.overview.enrolment.by_day;
  const modes = [...new Set(e.map(p => p.mode))];
  const days = [...new Set(e.map(p => p.date))];
  const traces = modes.map(m => ({ type: "bar", name: m, x: days, y: days.map(day => e.filter(p => p.date === day && p.mode === m).reduce((t, p) => t + p.enrollments, 0)) }));
  traces.push({ type: "bar", name: "unenrolments", x: days, marker: { color: "#e57373" },
    y: days.map(day => -e.filter(p => p.date === day).reduce((t, p) => t + p.unenrollments, 0)) });
  draw("chart-enrolment-mode", traces, "enrolments per day by mode, unenrolments below zero", e.length ? null : "no enrollment_day yet (Enrollment)",
    { barmode: "relative", showlegend: true, legend: { orientation: "h", y: -0.2 }, xaxis: dateAxis(days) });
  const w = d.overview.weekly;
  draw("chart-weekly-active", [{ type: "bar", x: w.map(p => p.week), y: w.map(p => p.learners || 0), text: w.map(p => p.shown), textposition: "outside",
    marker: { color: "#2e7d32" } }], "active learners per week (weeks from Monday)", w.length ? null : "no activity yet (TimeFinder)", { xaxis: dateAxis(w.map(p => p.week)) });
}

function renderDemographics(d) {
  const g = d.demographics;
  const notSaid = items => { const n = items.find(i => i.label === "not said"); return n ? " — not said: " + n.shown : ""; };
  bars("chart-age", g.age, "label", "age in " + (g.age_reference_year || "") + notSaid(g.age), "no year of birth yet", "#6a1b9a");
  bars("chart-education", g.education, "label", "level of education" + notSaid(g.education), "no level of education yet", "#00838f",
    { xaxis: { type: "category", automargin: true, tickangle: -30 } });
  bars("chart-gender", g.gender, "label", "gender" + notSaid(g.gender), "no gender yet", "#ef6c00");
}

async function renderGeography(d) {
  const geo = d.geography;
  const shapes = await worldShapes();
  const ids = new Set(shapes.features.map(f => f.id));
  const counted = geo.countries.filter(c => c.learners !== null && ids.has(c.code));
  const withheld = geo.countries.filter(c => c.learners === null && ids.has(c.code));
  const offMap = geo.countries.filter(c => !ids.has(c.code));
  const used = new Set(geo.countries.map(c => c.code));
  const rest = shapes.features.map(f => f.id).filter(id => !used.has(id));
  const common = { type: "choropleth", geojson: shapes, featureidkey: "id", marker: { line: { color: "#ffffff", width: 0.5 } } };
  const traces = [
    Object.assign({}, common, { name: "no learners", locations: rest, z: rest.map(() => 0), showscale: false, colorscale: [[0, "#eceff1"], [1, "#eceff1"]],
      text: rest.map(id => (shapes.features.find(f => f.id === id) || {}).properties.name), hovertemplate: "%{text}: none<extra></extra>" }),
    Object.assign({}, common, { name: "<5", locations: withheld.map(c => c.code), z: withheld.map(() => 1), showscale: false,
      colorscale: [[0, "#d1c4e9"], [1, "#d1c4e9"]], text: withheld.map(c => c.name), hovertemplate: "%{text}: <5 learners<extra></extra>" }),
    Object.assign({}, common, { name: "learners", locations: counted.map(c => c.code), z: counted.map(c => c.learners), colorscale: [[0, "#b39ddb"], [1, "#311b92"]],
      zauto: false, zmin: 0, zmax: Math.max(1, ...counted.map(c => c.learners)),
      text: counted.map(c => c.name), hovertemplate: "%{text}: %{z} learners<extra></extra>", colorbar: { title: { text: "learners" }, thickness: 12 } }),
  ];
  draw("chart-map", traces, "learners by country (" + (geo.countries.length) + " countries)", geo.countries.length ? null : "no learner placed in a country", {
    height: 460, margin: { t: 64, r: 10, b: 10, l: 10 },
    geo: { showframe: false, showcoastlines: false, showland: false, showcountries: false, showocean: false, showlakes: false, showrivers: false,
      projection: { type: "natural earth" }, lataxis: { range: [-58, 84] }, bgcolor: "rgba(0,0,0,0)" },
  });
  const body = document.querySelector("#countries tbody");
  body.replaceChildren();
  geo.countries.slice(0, 20).forEach((c, i) => {
    const tr = document.createElement("tr");
    cell(tr, i + 1, "num");
    cell(tr, c.name);
    cell(tr, c.code);
    cell(tr, c.shown, "num");
    cell(tr, c.share === null ? "" : (100 * c.share).toFixed(1) + "%", "num");
    body.appendChild(tr);
  });
  const notes = [];
  if (geo.unplaced_shown && geo.unplaced_shown !== "0") {
    notes.push("No country for " + geo.unplaced_shown + " learner(s): " + geo.reasons.map(r => r.shown + " with " + r.why).join("; ") + ".");
  }
  if (offMap.length) notes.push("Too small for the 1:110m map (in the table): " + offMap.map(c => c.name).join(", ") + ".");
  const note = document.getElementById("geo-note");
  note.textContent = notes.join(" ");
  note.hidden = !notes.length;
}

function renderEngagement(d) {
  const w = d.engagement.weekly;
  const x = w.map(p => p.week);
  const axis = { xaxis: dateAxis(x), yaxis: { rangemode: "tozero" } };
  const series = (key, title, color, empty) => {
    const id = "chart-week-" + key;
    const field = { videos: "video_plays", problems: "problem_checks", forum: "forum_posts", time: "time_on_task_hours" }[key];
    draw(id, [{ type: "bar", x: x, y: w.map(p => p.withheld ? null : p[field]), text: w.map(p => p.withheld ? "<5 learners" : ""),
      marker: { color: color } }], title, w.length ? null : empty, axis);
  };
  series("videos", "video plays per week", "#1e88e5", "no activity yet (TimeFinder)");
  series("problems", "problem checks per week", "#43a047", "no activity yet (TimeFinder)");
  series("forum", "forum posts per week", "#fb8c00", "no activity yet (TimeFinder)");
  series("time", "time on task per week (hours, gaps under 30 min)", "#8e24aa", "no activity yet (TimeFinder)");
  const ch = d.engagement.chapters;
  const c = counted(ch, "learners");
  draw("chart-chapters", [{ type: "bar", x: ch.map((p, i) => (i + 1) + ". " + p.name), y: c.values, text: c.text, textposition: "outside", cliponaxis: false,
    marker: { color: "#5e35b1" } }], "learners who reached each chapter", ch.length ? null : "no course_axis yet (CourseAxis)",
  { xaxis: { type: "category", automargin: true }, yaxis: { rangemode: "tozero" } });
}

function renderPerformance(d) {
  const g = d.performance.grades;
  const c = counted(g.bins, "learners");
  const extra = { xaxis: { range: [0, 100], dtick: 10, ticksuffix: "%" }, yaxis: { rangemode: "tozero" }, bargap: 0.05 };
  if (g.pass_mark !== null && g.pass_mark !== undefined) {
    extra.shapes = [{ type: "line", xref: "x", yref: "paper", x0: 100 * g.pass_mark, x1: 100 * g.pass_mark, y0: 0, y1: 1, line: { color: "#c62828", width: 2, dash: "dash" } }];
    extra.annotations = [{ xref: "x", yref: "paper", x: 100 * g.pass_mark, y: 1, text: "pass " + Math.round(100 * g.pass_mark) + "%", showarrow: false, xanchor: "left", font: { color: "#c62828" } }];
  }
  draw("chart-grades", [{ type: "bar", x: g.bins.map(b => 100 * b.from + 5), y: c.values, width: 9.5, text: c.text, textposition: "outside", cliponaxis: false,
    marker: { color: g.bins.map(b => b.learners === null ? WITHHELD_COLOR : "#3949ab") }, hovertemplate: "%{x}: %{text}<extra></extra>" }],
  "grade distribution" + (g.no_grade_shown && g.no_grade_shown !== "0" ? " (no grade: " + g.no_grade_shown + ")" : ""), g.bins.length ? null : "no grades yet", extra);
  const p = d.performance.problems.filter(q => q.first_try_correct !== null).sort((a, b) => a.first_try_correct - b.first_try_correct);
  const hidden = d.performance.problems.length - p.length;
  draw("chart-problems", [{ type: "bar", orientation: "h", y: p.map(q => q.name), x: p.map(q => 100 * q.first_try_correct), marker: { color: "#00897b" },
    hovertemplate: "%{y}: %{x:.0f}% of %{customdata} learners<extra></extra>", customdata: p.map(q => q.learners) }],
  "problems, hardest first: % right on the first try" + (hidden ? " (" + hidden + " of <5 left out)" : ""),
  p.length ? null : "no problem with 5 or more learners' first tries", { xaxis: { range: [0, 100], ticksuffix: "%" }, yaxis: { type: "category", automargin: true } });
  const v = d.performance.videos.filter(q => q.still_watching !== null);
  const deciles = [0, 10, 20, 30, 40, 50, 60, 70, 80, 90];
  draw("chart-videos", v.map(q => ({ type: "scatter", mode: "lines+markers", name: q.name, x: deciles, y: q.still_watching.map(s => 100 * s) })),
    "video drop-off: % of viewers still watching", v.length ? null : "no video with 5 or more viewers",
    { xaxis: { title: { text: "% of the video" }, ticksuffix: "%" }, yaxis: { range: [0, 105], ticksuffix: "%" }, showlegend: v.length <= 8 });
  const m = d.overview.enrolment.by_mode;
  draw("chart-modes", [
    { type: "bar", name: "enrolments", x: m.map(r => r.mode), y: m.map(r => r.enrollments), marker: { color: "#42a5f5" } },
    { type: "bar", name: "unenrolments", x: m.map(r => r.mode), y: m.map(r => r.unenrollments), marker: { color: "#e57373" } },
  ], "enrolment by mode (enrollment_day)", m.length ? null : "no enrollment_day yet (Enrollment)",
  { barmode: "group", showlegend: true, legend: { orientation: "h", y: -0.2 }, xaxis: { type: "category" } });
}

// each section on its own: one that fails (say, the map's shapes not fetched) leaves the others drawn; the failures are returned
async function renderDashboard(d) {
  const failed = [];
  const sections = [["overview", renderOverview], ["demographics", renderDemographics], ["geography", renderGeography],
    ["engagement", renderEngagement], ["performance", renderPerformance]];
  for (const [name, render] of sections) {
    try {
      await render(d);
    } catch (err) {
      failed.push(name + ": " + err.message);
    }
  }
  return failed;
}

const sorting = { key: "registered", desc: true };

function renderAcross(data) {
  const body = document.querySelector("#across tbody");
  const heads = [...document.querySelectorAll("#across th")];
  const head = heads.find(h => h.dataset.key === sorting.key);
  const text = head && head.dataset.type === "text";
  const value = c => { const v = c[sorting.key]; return v === null || v === undefined ? (text ? "" : -1) : v; };
  const rows = data.courses.slice().sort((a, b) => {
    const x = value(a), y = value(b);
    const order = text ? String(x).localeCompare(String(y)) : x - y;
    return (sorting.desc ? -order : order) || a.course_key.localeCompare(b.course_key);
  });
  heads.forEach(h => { h.className = h.dataset.key === sorting.key ? (sorting.desc ? "sorted-desc" : "sorted-asc") : ""; });
  body.replaceChildren();
  for (const c of rows) {
    const tr = document.createElement("tr");
    tr.dataset.course = c.course_key;
    const name = cell(tr, "");
    const a = document.createElement("a");
    a.href = "/ui/?course=" + encodeURIComponent(c.course_key);
    a.textContent = c.display_name || c.course_key;
    name.appendChild(a);
    cell(tr, c.course_key);
    for (const k of ["registered", "viewed", "explored", "completed", "certified"]) cell(tr, c.shown[k], "num");
    cell(tr, c.mean_grade === null || c.mean_grade === undefined ? "" : (100 * c.mean_grade).toFixed(1) + "%", "num");
    for (const k of ["countries", "nplay_video", "nproblem_check", "nforum_posts"]) cell(tr, c[k] === null || c[k] === undefined ? "" : fmt(c[k]), "num");
    cell(tr, c.first_activity);
    cell(tr, c.last_activity);
    body.appendChild(tr);
  }
  state.series.across = data;
}

document.querySelectorAll("#across th").forEach(h => h.addEventListener("click", () => {
  sorting.desc = sorting.key === h.dataset.key ? !sorting.desc : h.dataset.type !== "text";
  sorting.key = h.dataset.key;
  if (state.series.across) renderAcross(state.series.across);
}));

async function refresh() {
  const message = document.getElementById("message");
  let problems = [];
  try {
    const bucket = document.getElementById("bucket").value;
    const [services, failed, through, list] = await Promise.all([
      api("/api/v1/services"), api("/api/v1/files?state=failed&limit=50"), api("/api/v1/throughput?bucket=" + bucket), api("/api/v1/courses"),
    ]);
    renderServices(services);
    renderFailed(failed);
    renderThroughput(through);
    renderCourseList(list);
    renderAcross(await api("/api/v1/dashboard/courses"));
    if (state.course) {
      const course = encodeURIComponent(state.course);
      const [c, d] = await Promise.all([api("/api/v1/courses/" + course), api("/api/v1/courses/" + course + "/dashboard")]);
      renderCourse(c);
      const seen = JSON.stringify(d);  // the map is costly to redraw: only when the figures changed
      if (seen !== state.dashboard) {
        problems = await renderDashboard(d);
        state.dashboard = problems.length ? null : seen;
      }
    }
    message.textContent = problems.join(" · ");
    message.hidden = !problems.length;
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
