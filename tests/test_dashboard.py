"""The dashboard in a real headless Chromium, against `optimus serve` on a real ingested sample.

Each chart's data must equal the API's series, the services table must equal /api/v1/services,
and no username or email of the data may appear in the page or in what it fetched.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conftest import query_rows, settings_env
from optimus.cli import app as cli_app
from optimus.config import Settings
from optimus.sample import generate
from optimus.sample.course import course_structure, make_course

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"]
CHARTS = ["chart-throughput", "chart-enrolments", "chart-active", "chart-certificates", "chart-countries"]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    """`optimus serve` on a sample package ingested by `optimus ingest`; yields its base URL."""
    # 120 learners: enough that some problems have 5 first tries and some videos 5 viewers (the small-cell rule)
    yield from serve_sample(tmp_path_factory.mktemp("dashboard"), days=3, learners=120)


@pytest.fixture(scope="module")
def served_one_day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    """The same on a package of one day of events."""
    yield from serve_sample(tmp_path_factory.mktemp("dashboard-1day"), days=1)


def serve_sample(root: Path, days: int, learners: int = 30) -> Iterator[tuple[str, Settings]]:
    """The sample, plus a course with no learner whose key sorts first (only its course structure is delivered)."""
    manifest = generate(root / "data", courses=2, learners=learners, days=days, seed=11)
    if days == 1:
        # one day of events: leave out the mobile uploads of events of earlier days (the sample's `late` quirk)
        (entry,) = manifest["events"]["files"]
        path = root / "data" / entry["path"]
        earlier = re.compile(rb'"time": "(?!' + entry["date"].encode() + rb"T)")
        with gzip.open(path, "rb") as fh:
            lines = [line for line in fh if not earlier.search(line)]
        with gzip.open(path, "wb") as fh:
            fh.writelines(lines)
    empty = make_course(9, "AAx", dt.date(2024, 1, 1), 7, 2)
    package = root / "data" / "database_state" / "latest"
    (package / f"{empty.prefix}-course_structure-prod-analytics.json").write_text(json.dumps(course_structure(empty)))
    settings = Settings(
        data_paths=[root / "data"],
        warehouse=str(root / "wh" / "optimus.duckdb"),
        export_path=root / "exports",
        www_path=root / "www",
        memory_limit="1GB",
        api_token="dashboard-token",
    )
    CliRunner().invoke(cli_app, ["ingest"], env=settings_env(settings), catch_exceptions=False)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTIMUS_")}
    env.update(settings_env(settings), OPTIMUS_API_PORT=str(port), OPTIMUS_API_TOKEN="dashboard-token")
    log = root / "serve.log"
    proc = subprocess.Popen([sys.executable, "-m", "optimus", "serve"], env=env, stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if get(base, "/api/v1/health")["ready"]:
                break
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"optimus serve did not start:\n{log.read_text()}")
        time.sleep(0.2)
    try:
        yield base, settings
    finally:
        proc.terminate()
        proc.wait(10)


def get(base: str, path: str) -> Any:
    with urllib.request.urlopen(base + path, timeout=10) as r:
        return json.loads(r.read())


def fetch_text(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.read().decode("utf-8", errors="replace")


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/setup-env test installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


def charts(page: Any) -> dict[str, list[dict[str, Any]]]:
    return page.evaluate(
        "ids => Object.fromEntries(ids.map(id => [id, (document.getElementById(id).data || []).map(t => ({x: t.x, y: t.y}))]))",
        CHARTS,
    )


def wait_drawn(page: Any, course: str | None = None) -> None:
    page.wait_for_function(
        "([ids, course]) => document.body.dataset.refreshed && ids.every(id => document.getElementById(id).data) && "
        "(!course || document.getElementById('course').value === course)",
        arg=[CHARTS, course],
        timeout=30000,
    )


def cumulative(values: list[int]) -> list[int]:
    total, out = 0, []
    for v in values:
        total += v
        out.append(total)
    return out


def expected_charts(base: str, course_key: str, bucket: str = "hour") -> dict[str, list[dict[str, Any]]]:
    series = get(base, f"/api/v1/throughput?bucket={bucket}")["series"]
    c = get(base, f"/api/v1/courses/{course_key}")
    e, a, k = c["enrolments"]["by_day"], c["active_learners"]["by_day"], c["certificates"]["by_day"]
    countries = list(reversed(c["countries"]["by_country"]))
    return {
        "chart-throughput": [
            {"x": [p["time"] for p in series], "y": [p["rows"] for p in series]},
            {"x": [p["time"] for p in series], "y": [p["files"] for p in series]},
        ],
        "chart-enrolments": [
            {"x": [p["date"] for p in e], "y": [p["count"] for p in e]},
            {"x": [p["date"] for p in e], "y": cumulative([p["count"] for p in e])},
        ],
        "chart-active": [{"x": [p["date"] for p in a], "y": [p["learners"] for p in a]}],
        "chart-certificates": [{"x": [p["date"] for p in k], "y": [p["count"] for p in k]}],
        "chart-countries": [{"x": [p["learners"] for p in countries], "y": [p["country"] for p in countries]}],
    }


@pytest.mark.browser
def test_dashboard_charts_and_tables_equal_the_api_without_personal_data(
    served: tuple[str, Settings], browser: Any, tmp_path: Path
) -> None:
    base, settings = served
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    requested: list[str] = []
    page.on("request", lambda r: requested.append(r.url))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(base + "/ui/?refresh=2")
    wait_drawn(page)
    assert not errors, errors

    # services table = /api/v1/services
    api = get(base, "/api/v1/services")["services"]
    rows = page.eval_on_selector_all("#services tbody tr", "trs => trs.map(tr => [...tr.cells].map(td => td.textContent))")
    assert [r[:7] for r in rows] == [
        [s["name"], s["status"], s["task"] or "", str(s["queued"]), str(s["running"]), str(s["done"]), str(s["failed"])] for s in api
    ]
    assert [r[8] for r in rows] == [str(s["last_run"]["rows"]) if s["last_run"] else "" for s in api]
    failed = get(base, "/api/v1/files?state=failed&limit=50")
    assert page.eval_on_selector_all("#failed-files tbody tr", "trs => trs.length") == len(failed["files"])

    # each chart's data = the API's series, for every course
    courses = [c["course_key"] for c in get(base, "/api/v1/courses")["courses"]]
    assert len(courses) == 3 and courses[0].startswith("AAx+")  # the first by name has no learner
    first = page.eval_on_selector("#course", "s => s.value")
    listed = get(base, "/api/v1/courses")["courses"]
    largest = max(listed, key=lambda c: c["enrolments"])  # the first listed among equals, as max() takes
    assert first == largest["course_key"] != courses[0], ("the page opens on the most enrolled course", listed)
    drawn = charts(page)
    assert drawn == expected_charts(base, first)
    assert drawn["chart-enrolments"][0]["y"], ("the sample has enrolments", get(base, f"/api/v1/courses/{first}"), drawn)
    other = next(c for c in courses[1:] if c != first)  # the other course with learners
    page.select_option("#course", other)
    page.wait_for_function(
        "key => document.getElementById('course-summary').textContent.length > 0 && document.getElementById('course').value === key",
        arg=other,
    )
    page.wait_for_timeout(500)
    wait_drawn(page, other)
    assert charts(page) == expected_charts(base, other)
    page.select_option("#bucket", "minute")
    page.wait_for_function("() => (document.getElementById('chart-throughput').layout.title.text || '').endsWith('minute')")
    assert charts(page)["chart-throughput"] == expected_charts(base, other, "minute")["chart-throughput"]

    # every request stayed on this server (Plotly from the package, no CDN) and carried no token
    assert requested and all(url.startswith(base) for url in requested), requested
    assert any(url.endswith("/ui/plotly.min.js") for url in requested)

    # no username or email of the data in the page, nor in anything it fetched
    people = query_rows(settings, "SELECT username, email FROM edx.auth_user")
    assert people
    texts = [page.content(), page.inner_text("body")] + [fetch_text(url) for url in set(requested) if "/api/" in url]
    for username, email in people:
        for text in texts:
            if email:
                assert email not in text, email
            if username and len(username) > 3:
                assert not re.search(rf"(?<![\w.-]){re.escape(username)}(?![\w.-])", text), username

    shot = tmp_path / "dashboard.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    keep = os.environ.get("OPTIMUS_TEST_SCREENSHOT")
    if keep:
        Path(keep).write_bytes(shot.read_bytes())


def boxes_overlap(a: dict[str, float], b: dict[str, float]) -> bool:
    return a["x"] < b["x"] + b["width"] and b["x"] < a["x"] + a["width"] and a["y"] < b["y"] + b["height"] and b["y"] < a["y"] + a["height"]


@pytest.mark.browser
def test_chart_titles_stay_clear_of_the_plot_toolbar(served: tuple[str, Settings], browser: Any) -> None:
    base, _settings = served
    for width in (1400, 900):  # two columns of charts, and one
        page = browser.new_page(viewport={"width": width, "height": 1800})
        page.goto(base + "/ui/?refresh=30")
        wait_drawn(page)
        wait_sections(page)
        every = page.eval_on_selector_all(".chart", "cs => cs.map(c => c.id)")
        assert set(CHARTS) < set(every)
        for chart in every:
            page.hover(f"#{chart}")  # the toolbar shows on hover
            title = page.eval_on_selector(
                f"#{chart} .gtitle",
                "e => { const r = e.getBoundingClientRect(); return {x: r.x, y: r.y, width: r.width, height: r.height}; }",
            )
            bar = page.eval_on_selector(
                f"#{chart} .modebar",
                "e => { const r = e.getBoundingClientRect(); return {x: r.x, y: r.y, width: r.width, height: r.height}; }",
            )
            assert title["width"] > 0 and bar["width"] > 0, (chart, title, bar)
            assert not boxes_overlap(title, bar), (width, chart, title, bar)
        page.close()


@pytest.mark.browser
def test_one_day_of_data_gives_day_ticks_not_sub_millisecond_ones(served_one_day: tuple[str, Settings], browser: Any) -> None:
    base, _settings = served_one_day
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    page.goto(base + "/ui/")
    wait_drawn(page)
    key = page.eval_on_selector("#course", "s => s.value")
    active = get(base, f"/api/v1/courses/{key}")["active_learners"]["by_day"]
    assert len(active) == 1, active  # one day of events
    for chart in ("chart-active", "chart-enrolments"):
        ticks = page.eval_on_selector_all(f"#{chart} .xtick text", "ts => ts.map(t => t.textContent)")
        assert ticks, chart
        assert not any(":" in t or "." in t for t in ticks), (chart, ticks)  # no times of day, no milliseconds
        assert len(ticks) == len(set(ticks)), (chart, ticks)
        if chart == "chart-active":  # one point: a few whole days around it, one tick each
            assert all(re.fullmatch(r"[A-Z][a-z]{2} \d{1,2}, \d{4}", t) for t in ticks) and len(ticks) <= 5, ticks
    page.close()


@dataclass
class OfflinePage:
    """A page whose every request to a host other than 127.0.0.1 is aborted, with what it asked for."""

    page: Any
    requested: list[str] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def offline_page(browser: Any, width: int, height: int) -> OfflinePage:
    opened = OfflinePage(browser.new_page(viewport={"width": width, "height": height}))

    def only_loopback(route: Any) -> None:
        url = route.request.url
        opened.requested.append(url)
        if urllib.parse.urlsplit(url).hostname != "127.0.0.1":
            opened.aborted.append(url)
            route.abort()
        else:
            route.continue_()

    opened.page.route("**/*", only_loopback)
    opened.page.on("pageerror", lambda e: opened.errors.append(str(e)))
    return opened


@pytest.mark.browser
def test_api_docs_render_with_every_request_off_this_machine_aborted(served: tuple[str, Settings], browser: Any) -> None:
    """/docs is Swagger UI served from this server: it renders every operation with the network cut off."""
    base, _settings = served
    opened = offline_page(browser, 1400, 1800)
    page, requested, aborted, errors = opened.page, opened.requested, opened.aborted, opened.errors
    page.goto(base + "/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=30000)
    spec = get(base, "/openapi.json")
    operations = sum(1 for methods in spec["paths"].values() for m in methods if m in ("get", "post", "put", "delete", "patch"))
    page.wait_for_function("n => document.querySelectorAll('.swagger-ui .opblock').length >= n", arg=operations, timeout=30000)
    assert page.eval_on_selector_all(".swagger-ui .opblock", "els => els.length") == operations
    assert not aborted, aborted
    assert not errors, errors
    assert any(url.endswith("/docs/assets/swagger-ui-bundle.js") for url in requested), requested
    assert "Unable to render" not in page.inner_text("body")
    page.close()


# -- the course dashboard's sections (issue 20) ---------------------------------------------------------
SECTIONS = ["sec-overview", "sec-demographics", "sec-geography", "sec-engagement", "sec-performance", "sec-across"]
TOKEN = {"Authorization": "Bearer dashboard-token"}


def get_with(base: str, path: str, headers: dict[str, str]) -> Any:
    with urllib.request.urlopen(urllib.request.Request(base + path, headers=headers), timeout=10) as r:
        return json.loads(r.read())


def status_of(base: str, path: str) -> int:
    try:
        with urllib.request.urlopen(base + path, timeout=10) as r:
            return int(r.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def reference_cells(counts: list[int]) -> list[int | None]:
    """docs/dashboard.md, "Small cells", as written there: counts 1 to 4 withheld; when exactly one is, the
    smallest count of 5 or more (the first listed among equals) is withheld too."""
    small = [i for i, n in enumerate(counts) if 0 < n < 5]
    if len(small) == 1:
        rest = sorted((n, i) for i, n in enumerate(counts) if n >= 5)
        if rest:
            small.append(rest[0][1])
    return [None if i in small else n for i, n in enumerate(counts)]


def test_small_cell_rule_by_hand() -> None:
    from optimus.api.small_cells import breakdown, one, shown

    assert [shown(n) for n in (0, 1, 4, 5, 12)] == ["0", "<5", "<5", "5", "12"]
    assert [one(n) for n in (0, 3, 5)] == [0, None, 5]
    # 3 alone would follow from the total (3 + 7 + 20 = 30): 7, the next smallest, is withheld with it
    cells = breakdown([("a", 20), ("b", 3), ("c", 7), ("d", 0)])
    assert [(c["label"], c["learners"], c["shown"]) for c in cells] == [
        ("a", 20, "20"),
        ("b", None, "<5"),
        ("c", None, "<5"),
        ("d", 0, "0"),
    ]
    # two small cells: their sum (5) follows from the total, not either one; nothing else withheld
    assert [c["shown"] for c in breakdown([("a", 2), ("b", 3), ("c", 9)])] == ["<5", "<5", "9"]
    assert reference_cells([20, 3, 7, 0]) == [20, None, None, 0]


def learners_by(rows: list[dict[str, Any]], label: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        k = label(r)
        out[k] = out.get(k, 0) + 1
    return out


def test_dashboard_endpoints_equal_person_course_counted_by_hand(served: tuple[str, Settings]) -> None:
    """Every figure of /courses/{id}/dashboard recounted in Python from the learners' own rows (read with the
    token), with the small-cell rule applied as the docs write it."""
    from optimus.api.insights import AGES, EDUCATION, GENDER

    base, settings = served
    listed = get(base, "/api/v1/courses")["courses"]
    key = max(listed, key=lambda c: c["enrolments"])["course_key"]
    d = get(base, f"/api/v1/courses/{key}/dashboard")
    rows = get_with(base, f"/api/v1/courses/{key}/person_course?limit=100000", TOKEN)["rows"]
    assert len(rows) >= 50

    def flag(r: dict[str, Any], k: str) -> bool:
        return r.get(k) is not None and int(r[k]) == 1

    funnel = [sum(flag(r, s) for r in rows) for s in ("registered", "viewed", "explored", "completed", "certified")]
    assert [s["learners"] for s in d["overview"]["funnel"]] == [n if not 0 < n < 5 else None for n in funnel]
    assert funnel[0] >= 5 and d["overview"]["funnel"][0]["learners"] == funnel[0]

    # demographics: each partition of the learners, "not said" last
    said = lambda v: v is not None and str(v).strip() != ""  # noqa: E731
    gender = learners_by(rows, lambda r: GENDER.get(str(r["gender"]).lower(), "?") if said(r["gender"]) else "not said")
    got = {c["label"]: c for c in d["demographics"]["gender"]}
    assert set(got) == set(gender) and sum(gender.values()) == len(rows)
    labels = list(got)
    assert [got[k]["learners"] for k in labels] == reference_cells([gender[k] for k in labels])
    education = learners_by(rows, lambda r: EDUCATION[str(r["LoE"]).lower()] if said(r["LoE"]) else "not said")
    labels = [c["label"] for c in d["demographics"]["education"]]
    assert set(labels) == set(education)
    assert [c["learners"] for c in d["demographics"]["education"]] == reference_cells([education[k] for k in labels])
    year = d["demographics"]["age_reference_year"]
    start = get(base, f"/api/v1/courses/{key}")["start_date"]
    assert year == (int(start[:4]) if start else dt.datetime.now(dt.UTC).year)

    def age_group(r: dict[str, Any]) -> str:
        if not said(r["YoB"]):
            return "not said"
        age = year - int(float(r["YoB"]))
        return next((label for lo, hi, label in AGES if lo <= age <= hi and 5 <= age <= 100), "implausible year")

    ages = learners_by(rows, age_group)
    labels = [c["label"] for c in d["demographics"]["age"]]
    assert [c["learners"] for c in d["demographics"]["age"]] == reference_cells([ages.get(k, 0) for k in labels])
    assert sum(ages.values()) == len(rows) and "not said" in labels

    # geography: the placed learners by country code, and the unplaced as one more cell of the partition
    countries = learners_by([r for r in rows if said(r["cc_by_ip"])], lambda r: r["cc_by_ip"])
    geo = d["geography"]
    order = sorted(countries, key=lambda c: (-countries[c], c))
    assert [c["code"] for c in geo["countries"]] == order
    unplaced = len(rows) - sum(countries.values())
    assert [c["learners"] for c in geo["countries"]] + [geo["unplaced"]] == reference_cells([countries[c] for c in order] + [unplaced])
    assert sum(r["learners"] or 0 for r in geo["reasons"]) <= unplaced
    if unplaced >= 5:
        assert geo["reasons"] and all(r["why"] for r in geo["reasons"])

    # grades: tenths of person_course.grade (1.0 in the last), the pass mark
    def tenth(g: float) -> int:
        return 9 if g >= 1 else max(0, int(g * 10 // 1))

    graded = [float(r["grade"]) for r in rows if r["grade"] is not None]
    bins = [sum(1 for g in graded if tenth(g) == b) for b in range(10)]
    got_bins = [b["learners"] for b in d["performance"]["grades"]["bins"]] + [d["performance"]["grades"]["no_grade"]]
    assert got_bins == reference_cells(bins + [len(rows) - len(graded)])
    marks = {r["passing_grade"] for r in rows if r["passing_grade"] is not None}
    assert d["performance"]["grades"]["pass_mark"] == (max(marks) if marks else None)

    # engagement: per ISO week, active learners of person_course_day (weeks under 5 learners withheld)
    days = query_rows(settings, "SELECT date, user_id, nplay_video FROM person_course_day WHERE course_key = ?", [key])
    weeks: dict[str, set[int]] = {}
    plays: dict[str, int] = {}
    for day, uid, n in days:
        monday = (day - dt.timedelta(days=day.weekday())).isoformat()
        weeks.setdefault(monday, set()).add(uid)
        plays[monday] = plays.get(monday, 0) + (n or 0)
    got_weeks = d["engagement"]["weekly"]
    assert [w["week"] for w in got_weeks] == sorted(weeks)
    for w in got_weeks:
        n = len(weeks[w["week"]])
        assert w["learners"] == (n if n >= 5 else None) and w.get("video_plays") == (plays[w["week"]] if n >= 5 else None)
    assert d["overview"]["weekly"] == got_weeks

    # enrolment by mode: enrollment_day's rows, summed per mode
    eday = query_rows(settings, "SELECT mode, enrollments, unenrollments FROM enrollment_day WHERE course_key = ?", [key])
    per_mode: dict[str, list[int]] = {}
    for mode, e, u in eday:
        t = per_mode.setdefault(mode or "unknown", [0, 0])
        t[0], t[1] = t[0] + e, t[1] + u
    assert {m["mode"]: [m["enrollments"], m["unenrollments"]] for m in d["overview"]["enrolment"]["by_mode"]} == per_mode

    # per chapter: learners with a courseware_studentmodule row for the chapter or a block in it
    axis = query_rows(settings, 'SELECT category, url_name, chapter_mid, "index", module_id FROM course_axis WHERE course_key = ?', [key])
    chapter_of_mid = {
        module: url for cat, url, _mid, _i, module in axis if cat == "chapter"
    }  # a block's chapter_mid: its chapter's module_id
    chapter_of = {url: chapter_of_mid[mid] for _c, url, mid, _i, _m in axis if mid in chapter_of_mid and url}
    chapter_of.update({url: url for url in chapter_of_mid.values()})

    def url_name(module_id: str) -> str | None:
        if module_id.startswith("block-v1:"):
            return module_id.split("+block@", 1)[1] if "+block@" in module_id else None
        if module_id.startswith("i4x://"):
            parts = module_id.split("/")
            return parts[5] if len(parts) > 5 and parts[5] else None
        return None

    reached: dict[str, set[int]] = {}
    for uid, module_id in query_rows(
        settings, "SELECT student_id, module_id FROM edx.courseware_studentmodule WHERE course_key = ?", [key]
    ):
        chapter = chapter_of.get(url_name(module_id or "") or "")
        if chapter and uid is not None:
            reached.setdefault(chapter, set()).add(uid)
    chapters = sorted((i, url) for cat, url, _m, i, _n in axis if cat == "chapter")
    got_chapters = d["engagement"]["chapters"]
    assert [c["chapter"] for c in got_chapters] == [url for _i, url in chapters]
    assert [c["learners"] for c in got_chapters] == [
        (lambda n: None if 0 < n < 5 else n)(len(reached.get(url, ()))) for _i, url in chapters
    ]
    assert any(c["learners"] for c in got_chapters), got_chapters

    # across courses: registered per course, as person_course has it
    across = {c["course_key"]: c for c in get(base, "/api/v1/dashboard/courses")["courses"]}
    assert set(across) == {c["course_key"] for c in listed}
    assert across[key]["registered"] == funnel[0]


def test_dashboard_endpoints_hold_no_learner_row(served: tuple[str, Settings]) -> None:
    """The open aggregates name no learner (no username, email or user id field), while the learners' own
    rows stay behind the token."""
    base, settings = served
    people = query_rows(settings, "SELECT username, email FROM edx.auth_user")
    for c in get(base, "/api/v1/courses")["courses"]:
        key = c["course_key"]
        for path in (f"/api/v1/courses/{key}/dashboard", "/api/v1/dashboard/courses"):
            text = fetch_text(base + path)
            assert not re.search(r'"(user_id|username|email|ip)"\s*:', text), path
            for username, email in people:
                assert not (email and email in text)
                assert not (username and len(username) > 3 and re.search(rf'"{re.escape(username)}"', text)), username
        assert status_of(base, f"/api/v1/courses/{key}/person_course") == 401
        assert status_of(base, f"/api/v1/courses/{key}/tables/time_on_task") == 401


def wait_sections(page: Any) -> None:
    """Until every chart of every section is drawn, the table across courses filled and the map's shapes drawn."""
    page.wait_for_function(
        "ids => ids.every(id => [...document.querySelectorAll('#' + id + ' .chart')].every(c => c.data)) && "
        "document.querySelectorAll('#across tbody tr').length > 0 && document.querySelectorAll('#chart-map path.choroplethlocation').length > 0",
        arg=SECTIONS,
        timeout=60000,
    )
    page.wait_for_timeout(500)


def chart_has_data(page: Any, chart: str) -> bool:
    """A drawn Plotly chart with at least one finite non-zero value in a trace (not an empty frame)."""
    return bool(
        page.evaluate(
            """id => { const el = document.getElementById(id); if (!el || !el.data || !el.querySelector('svg')) return false;
               const nums = v => (Array.isArray(v) ? v : []).flat(2).some(x => typeof x === 'number' && Number.isFinite(x) && x !== 0);
               return el.data.some(t => nums(t.x) || nums(t.y) || nums(t.z)); }""",
            chart,
        )
    )


@pytest.mark.browser
def test_every_section_renders_with_data_offline(served: tuple[str, Settings], browser: Any, tmp_path: Path) -> None:
    """Every chart of every section drawn with data on the sample, with every request to a host other than
    127.0.0.1 aborted; the map draws every country shape; a screenshot per section (kept as test artefacts,
    and in docs/img with OPTIMUS_TEST_DOCS_SCREENSHOTS=docs/img)."""
    base, _settings = served
    opened = offline_page(browser, 1400, 1000)
    page, aborted, errors = opened.page, opened.aborted, opened.errors
    page.goto(base + "/ui/?refresh=30")
    wait_sections(page)
    assert not errors, errors
    assert not aborted, aborted
    assert page.eval_on_selector("#message", "m => m.hidden"), page.inner_text("#message")  # no section failed

    charts_by_section = page.evaluate(
        "ids => Object.fromEntries(ids.map(id => [id, [...document.querySelectorAll('#' + id + ' .chart')].map(c => c.id)]))", SECTIONS
    )
    assert all(charts_by_section[s] for s in SECTIONS if s != "sec-across"), charts_by_section
    empty = [c for s in SECTIONS for c in charts_by_section[s] if not chart_has_data(page, c)]
    assert not empty, ("charts drawn without data", empty)

    # the map: one shape per country of the vendored shapes, coloured where learners are
    shapes = json.loads(fetch_text(base + "/ui/world/countries-110m.geojson"))["features"]
    drawn = page.eval_on_selector_all("#chart-map path.choroplethlocation", "ps => ps.length")
    assert drawn == len(shapes) > 150, (drawn, len(shapes))
    key = page.eval_on_selector("#course", "s => s.value")
    geo = get(base, f"/api/v1/courses/{key}/dashboard")["geography"]
    ids = {f["id"] for f in shapes}
    coloured = page.evaluate(
        "() => document.getElementById('chart-map').data.slice(1).map(t => t.locations.length).reduce((a, b) => a + b, 0)"
    )
    assert coloured == sum(1 for c in geo["countries"] if c["code"] in ids)
    table = page.eval_on_selector_all("#countries tbody tr", "trs => trs.map(tr => tr.cells[2].textContent)")
    assert table == [c["code"] for c in geo["countries"]][:20]
    note = page.inner_text("#geo-note")
    if geo["unplaced_shown"] != "0":
        assert "No country for" in note and all(r["why"] in note for r in geo["reasons"])

    # across courses: every course, linking to it, sortable
    across = get(base, "/api/v1/dashboard/courses")["courses"]
    links = page.eval_on_selector_all("#across tbody a", "as => as.map(a => a.getAttribute('href'))")
    assert sorted(links) == sorted(f"/ui/?course={urllib.parse.quote(c['course_key'], safe='')}" for c in across)
    page.click("#across th[data-key='course_key']")
    keys = page.eval_on_selector_all("#across tbody tr", "trs => trs.map(tr => tr.dataset.course)")
    assert keys == sorted(c["course_key"] for c in across)
    page.click("#across th[data-key='course_key']")
    assert page.eval_on_selector_all("#across tbody tr", "trs => trs.map(tr => tr.dataset.course)") == sorted(keys, reverse=True)

    keep = os.environ.get("OPTIMUS_TEST_DOCS_SCREENSHOTS")
    for section in SECTIONS:
        shot = tmp_path / f"dashboard-{section.removeprefix('sec-')}.png"
        page.locator(f"#{section}").screenshot(path=str(shot))
        assert shot.stat().st_size > 5_000, shot
        if keep:
            Path(keep, shot.name).write_bytes(shot.read_bytes())
    # a learner's personal data never shown: no username or email in the page
    people = query_rows(_settings, "SELECT username, email FROM edx.auth_user")
    body = page.content()
    for username, email in people:
        assert not (email and email in body)
        assert not (username and len(username) > 3 and re.search(rf"(?<![\w.-]){re.escape(username)}(?![\w.-])", body)), username
    page.close()


def test_dashboard_docs_show_every_section() -> None:
    """docs/dashboard.md has a screenshot of every section, each a PNG kept in docs/img."""
    root = Path(__file__).resolve().parents[1]
    text = (root / "docs" / "dashboard.md").read_text()
    for section in SECTIONS:
        name = f"img/dashboard-{section.removeprefix('sec-')}.png"
        assert f"]({name})" in text, name
        assert (root / "docs" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
