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
    yield from serve_sample(tmp_path_factory.mktemp("dashboard"), days=3)


@pytest.fixture(scope="module")
def served_one_day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Settings]]:
    """The same on a package of one day of events."""
    yield from serve_sample(tmp_path_factory.mktemp("dashboard-1day"), days=1)


def serve_sample(root: Path, days: int) -> Iterator[tuple[str, Settings]]:
    """The sample, plus a course with no learner whose key sorts first (only its course structure is delivered)."""
    manifest = generate(root / "data", courses=2, learners=30, days=days, seed=11)
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
        page.goto(base + "/ui/")
        wait_drawn(page)
        for chart in CHARTS:
            page.hover(f"#{chart} .nsewdrag")  # the toolbar shows on hover
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


@pytest.mark.browser
def test_api_docs_render_with_every_request_off_this_machine_aborted(served: tuple[str, Settings], browser: Any) -> None:
    """/docs is Swagger UI served from this server: it renders every operation with the network cut off."""
    base, _settings = served
    page = browser.new_page(viewport={"width": 1400, "height": 1800})
    aborted: list[str] = []
    requested: list[str] = []

    def only_loopback(route: Any) -> None:
        url = route.request.url
        requested.append(url)
        if urllib.parse.urlsplit(url).hostname != "127.0.0.1":
            aborted.append(url)
            route.abort()
        else:
            route.continue_()

    page.route("**/*", only_loopback)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
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
