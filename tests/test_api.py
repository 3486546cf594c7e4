"""The REST API on a real warehouse filled by `optimus ingest` from a sample package.

Every figure the API returns is checked against the same figure computed here, in Python,
from the warehouse's rows; personal-data endpoints are checked for the token rules.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import ingest_sample
from optimus.api.app import create_app
from optimus.api.sql import QueryRefused, check
from optimus.api.state import ReadViews, ServerState
from optimus.config import Settings
from optimus.warehouse import Warehouse, connect

TOKEN = "s3cret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A sample package (2 courses) ingested once by the real CLI."""
    return ingest_sample(tmp_path_factory.mktemp("api"), api_token=TOKEN)


@pytest.fixture(scope="module")
def wh(ingested: Settings) -> Iterator[Warehouse]:
    warehouse = connect(ingested)
    yield warehouse
    warehouse.close()


def make_client(settings: Settings, wh: Warehouse, state: ServerState | None = None) -> TestClient:
    return TestClient(create_app(settings, ReadViews(settings, wh, size=2), state))


@pytest.fixture(scope="module")
def client(ingested: Settings, wh: Warehouse) -> Iterator[TestClient]:
    with make_client(ingested, wh) as c:
        yield c


def course_keys(wh: Warehouse) -> list[str]:
    return sorted(k for (k,) in wh.query("SELECT DISTINCT course_key FROM course_ids"))


def ids_of(wh: Warehouse, key: str) -> list[str]:
    return [i for (i,) in wh.query("SELECT course_id FROM course_ids WHERE course_key = ?", [key])]


# -- the original's endpoints ----------------------------------------------------------------------
def test_root_answers_like_the_original_when_ingesting(ingested: Settings, wh: Warehouse) -> None:
    calls: list[int] = []
    state = ServerState(mode="daemon", request_scan=lambda: calls.append(1), ready=True)
    with make_client(ingested, wh, state) as c:
        assert c.get("/").json() == {"response": "Ingestion running", "statuscode": 200}
        answer = c.get("/newdata")
        assert answer.status_code == 200 and answer.json()["statuscode"] == 200
        assert calls == [1], "/newdata must ask the daemon to scan"


def test_status_has_the_original_fields_and_counts_queued_files(client: TestClient, wh: Warehouse) -> None:
    body = client.get("/status").json()
    assert set(body) == {"response"}
    services = body["response"]
    assert "DatabaseState" in services and "Clickstream" in services
    queued = Counter(s for (s,) in wh.query("SELECT service FROM ingest_files WHERE state = 'queued'"))
    finished = {s: t for s, t in wh.query("SELECT service, max(finished_at) FROM service_runs WHERE status = 'ok' GROUP BY service")}
    for name, entry in services.items():
        assert set(entry) == {"name", "status", "task", "file", "startdate", "lastcompletedate", "tasksleft"}
        assert entry["name"] == name
        assert entry["status"] == "stopped"  # a read-only server ingests nothing
        assert entry["tasksleft"] == queued.get(name, 0)
        expected = finished.get(name)
        assert entry["lastcompletedate"] == (expected.strftime("%Y-%m-%d %H:%M:%S") if expected else None)


def test_newdata_on_a_read_only_server_says_it_does_not_ingest(client: TestClient) -> None:
    answer = client.get("/newdata")
    assert answer.status_code == 409 and set(answer.json()) == {"response", "statuscode"}


# -- /api/v1/services, throughput, health ------------------------------------------------------------
def test_services_figures_equal_the_ledger_and_runs(client: TestClient, wh: Warehouse) -> None:
    body = client.get("/api/v1/services").json()
    states = Counter(wh.query("SELECT service, state FROM ingest_files"))
    runs = wh.query_dicts("SELECT * FROM service_runs WHERE status <> 'running' ORDER BY id")
    last = {r["service"]: r for r in runs}
    names = [s["name"] for s in body["services"]]
    assert names.index("DatabaseState") < names.index("PersonCourse")  # dependency order
    for s in body["services"]:
        for state in ("queued", "running", "done", "failed"):
            assert s[state] == states.get((s["name"], state), 0), (s["name"], state)
        run = last.get(s["name"])
        if run is None:
            assert s["last_run"] is None
            continue
        seconds = (run["finished_at"] - run["started_at"]).total_seconds()
        assert s["last_run"]["id"] == run["id"] and s["last_run"]["rows"] == run["rows"] and s["last_run"]["files"] == run["files"]
        assert s["last_run"]["rows_per_second"] == (round(run["rows"] / seconds, 1) if seconds > 0 else None)
    assert body["services"][names.index("DatabaseState")]["done"] > 0


def test_throughput_sums_equal_the_ledger(client: TestClient, wh: Warehouse) -> None:
    done = wh.query("SELECT finished_at, rows_loaded FROM ingest_files WHERE state = 'done'")
    for bucket, fmt in (("minute", "%Y-%m-%d %H:%M:00"), ("hour", "%Y-%m-%d %H:00:00"), ("day", "%Y-%m-%d")):
        series = client.get("/api/v1/throughput", params={"bucket": bucket}).json()["series"]
        files = Counter(f.strftime(fmt) for f, _ in done)
        rows: Counter[str] = Counter()
        for f, r in done:
            rows[f.strftime(fmt)] += r or 0
        assert {p["time"]: p["files"] for p in series} == dict(files)
        assert {p["time"]: p["rows"] for p in series} == dict(rows)
    assert client.get("/api/v1/throughput", params={"bucket": "week"}).status_code == 422


def test_health_reports_a_reachable_warehouse(client: TestClient, wh: Warehouse) -> None:
    body = client.get("/api/v1/health").json()
    assert body["warehouse"] == "reachable" and body["ready"] is True
    assert body["schema_version"] == wh.scalar("SELECT max(version) FROM schema_info")


# -- files ----------------------------------------------------------------------------------------------
def test_files_are_filtered_and_paginated(client: TestClient, wh: Warehouse) -> None:
    all_ids = [i for (i,) in wh.query("SELECT id FROM ingest_files ORDER BY id")]
    pages: list[int] = []
    offset = 0
    while True:
        page = client.get("/api/v1/files", params={"limit": 7, "offset": offset}).json()
        assert page["total"] == len(all_ids)
        if not page["files"]:
            break
        pages.extend(f["id"] for f in page["files"])
        offset += 7
    assert pages == all_ids
    key = course_keys(wh)[0]
    expected = [i for (i,) in wh.query("SELECT id FROM ingest_files WHERE course_key = ? AND service = 'DatabaseState' ORDER BY id", [key])]
    assert expected
    for form in ids_of(wh, key) + [key]:
        page = client.get("/api/v1/files", params={"course": form, "service": "DatabaseState", "limit": 1000}).json()
        assert [f["id"] for f in page["files"]] == expected, form
    done = client.get("/api/v1/files", params={"state": "done", "limit": 1}).json()
    assert done["total"] == wh.scalar("SELECT count(*) FROM ingest_files WHERE state = 'done'")


@pytest.mark.parametrize(
    "params",
    [
        {"state": "finished"},
        {"service": "NoSuchService"},
        {"course": "not a course"},
        {"limit": 0},
        {"limit": 5000},
        {"offset": -1},
        {"limit": "many"},
    ],
)
def test_bad_file_parameters_give_422_with_the_reason(client: TestClient, params: dict[str, Any]) -> None:
    answer = client.get("/api/v1/files", params=params)
    assert answer.status_code == 422
    assert answer.json()["detail"]


def test_a_file_shows_its_first_quarantined_lines(client: TestClient, wh: Warehouse) -> None:
    rows = wh.query("SELECT id, rows_quarantined FROM ingest_files WHERE rows_quarantined > 0 ORDER BY id")
    assert rows, "the sample package has malformed lines"
    for file_id, n in rows:
        expected = []
        for table in ("events_quarantine", "db_state_quarantine", "forum_quarantine"):
            if wh.table_exists(table):
                expected += [list(r) for r in wh.query(f"SELECT line, reason, raw FROM {table} WHERE file_id = ? ORDER BY line", [file_id])]
        body = client.get(f"/api/v1/files/{file_id}", headers=AUTH).json()
        assert body["id"] == file_id and body["rows_quarantined"] == n
        assert [[q["line"], q["reason"], q["raw"]] for q in body["quarantined"]] == expected[:100]
        assert len(body["quarantined"]) == min(100, n)
    assert client.get("/api/v1/files/999999", headers=AUTH).status_code == 404
    assert client.get("/api/v1/files/abc", headers=AUTH).status_code == 422


# -- courses ----------------------------------------------------------------------------------------------
def _by_day(values: list[Any]) -> list[dict[str, Any]]:
    days = Counter((v.date() if isinstance(v, datetime) else v).isoformat() for v in values if v is not None)
    return [{"date": d, "count": n} for d, n in sorted(days.items())]


def expected_figures(wh: Warehouse, key: str) -> dict[str, Any]:
    """The course figures, computed here from the rows (Python counting, not the API's SQL)."""
    out: dict[str, Any] = {}
    if wh.table_exists("person_course"):
        cols = wh.columns("person_course")
        pc = wh.query_dicts("SELECT * FROM person_course WHERE course_key = ?", [key])
        registered = [r for r in pc if int(r["registered"] or 0) == 1]
        certified = [r for r in pc if int(r["certified"] or 0) == 1]
        out["enrolments"] = {"source": "person_course", "total": len(registered), "by_day": _by_day([r["start_time"] for r in registered])}
        out["certificates"] = {
            "source": "person_course",
            "total": len(certified),
            "by_day": _by_day([r["cert_created_date"] for r in certified]) if "cert_created_date" in cols else [],
        }
        column = next((c for c in ("countryLabel", "cc_by_ip", "final_cc_cname") if c in cols), None)
        if column:
            known = Counter(r[column] for r in pc if r[column])
            ordered = sorted(known.items(), key=lambda cn: (-cn[1], cn[0]))
            # docs/dashboard.md, "Small cells": counts 1-4 withheld; one alone withheld takes the smallest count of 5+ with it
            counts = [n for _c, n in ordered] + [sum(1 for r in pc if not r[column])]
            small = [i for i, n in enumerate(counts) if 0 < n < 5]
            if len(small) == 1 and any(n >= 5 for n in counts):
                small.append(min((n, i) for i, n in enumerate(counts) if n >= 5)[1])
            cells = [None if i in small else n for i, n in enumerate(counts)]
            out["countries"] = {
                "source": f"person_course.{column}",
                "by_country": [{"country": c, "learners": cells[i]} for i, (c, _n) in enumerate(ordered)],
                "unknown": cells[-1],
            }
    else:
        first: dict[int, datetime] = {}
        for user, created in wh.query("SELECT user_id, created FROM edx.student_courseenrollment WHERE course_key = ?", [key]):
            first[user] = min(first.get(user, created), created)
        out["enrolments"] = {"source": "student_courseenrollment", "total": len(first), "by_day": _by_day(list(first.values()))}
        certs = wh.query(
            "SELECT user_id, created_date FROM edx.certificates_generatedcertificate WHERE course_key = ? AND status = 'downloadable'",
            [key],
        )
        out["certificates"] = {
            "source": "certificates_generatedcertificate",
            "total": len({u for u, _ in certs}),
            "by_day": _by_day([d for _, d in certs]),
        }
    if wh.table_exists("person_course_day"):
        days: dict[str, set[int]] = {}
        for d, user in wh.query("SELECT date, user_id FROM person_course_day WHERE course_key = ?", [key]):
            days.setdefault(d.isoformat(), set()).add(user)
        out["active_learners"] = {
            "source": "person_course_day",
            "by_day": [{"date": d, "learners": len(u)} for d, u in sorted(days.items())],
        }
    else:
        out["active_learners"] = {"source": None, "by_day": []}
    return out


def test_course_figures_equal_the_warehouse_in_every_id_form(client: TestClient, wh: Warehouse) -> None:
    keys = course_keys(wh)
    assert len(keys) == 2
    listing = {c["course_key"]: c for c in client.get("/api/v1/courses").json()["courses"]}
    assert set(listing) >= set(keys)
    for key in keys:
        expected = expected_figures(wh, key)
        assert expected["enrolments"]["total"] > 0
        bodies = [client.get(f"/api/v1/courses/{form}").json() for form in ids_of(wh, key) + [key, "course-v1:" + key]]
        for body in bodies:
            assert body == bodies[0]
            assert body["course_key"] == key
            for figure, value in expected.items():
                assert body[figure] == value, (key, figure)
        assert listing[key]["enrolments"] == expected["enrolments"]["total"]
        assert listing[key]["certificates"] == expected["certificates"]["total"]
        assert sorted(listing[key]["course_ids"]) == sorted(ids_of(wh, key))


def test_unknown_courses_give_404(client: TestClient) -> None:
    for path in ("/api/v1/courses/course-v1:Nobody+X+Y", "/api/v1/courses/nonsense", "/api/v1/courses/Nobody/X/Y/structure"):
        assert client.get(path).status_code == 404, path
    assert client.get("/api/v1/courses/Nobody/X/Y/person_course", headers=AUTH).status_code == 404


def test_course_structure_is_the_www_json(client: TestClient, wh: Warehouse, ingested: Settings) -> None:
    folder = ingested.www_path / "course_structure"
    written = sorted(folder.glob("*.json")) if folder.is_dir() else []
    for key in course_keys(wh):
        org, course, run = key.split("+")
        path = folder / f"{org}-{course}-{run}.json"
        answer = client.get(f"/api/v1/courses/{ids_of(wh, key)[0]}/structure")
        if path in written:
            assert answer.status_code == 200 and answer.json() == json.loads(path.read_text())
        else:
            assert answer.status_code == 404


def test_person_course_pages_as_json_and_csv(client: TestClient, wh: Warehouse) -> None:
    if not wh.table_exists("person_course"):
        for key in course_keys(wh):
            assert client.get(f"/api/v1/courses/{key}/person_course", headers=AUTH).status_code == 404
        return
    columns = wh.columns("person_course")
    for key in course_keys(wh):
        users = [u for (u,) in wh.query("SELECT user_id FROM person_course WHERE course_key = ? ORDER BY user_id", [key])]
        got: list[int] = []
        for offset in range(0, len(users) + 5, 5):
            body = client.get(f"/api/v1/courses/{key}/person_course", params={"limit": 5, "offset": offset}, headers=AUTH).json()
            assert body["total"] == len(users) and body["columns"] == columns
            got += [r["user_id"] for r in body["rows"]]
        assert got == users
        answer = client.get(f"/api/v1/courses/{ids_of(wh, key)[-1]}/person_course", params={"format": "csv"}, headers=AUTH)
        assert answer.headers["content-type"].startswith("text/csv")
        table = list(csv.reader(io.StringIO(answer.text)))
        assert table[0] == columns
        assert [int(r[columns.index("user_id")]) for r in table[1:]] == users
        names = {u for (u,) in wh.query("SELECT username FROM person_course WHERE course_key = ?", [key]) if u}
        assert names and names <= {r[columns.index("username")] for r in table[1:]}
    assert client.get(f"/api/v1/courses/{key}/person_course", params={"format": "xml"}, headers=AUTH).status_code == 422


# -- access ----------------------------------------------------------------------------------------------
def personal_paths(wh: Warehouse) -> list[tuple[str, str]]:
    key = course_keys(wh)[0]
    file_id = wh.scalar("SELECT min(id) FROM ingest_files")
    return [
        ("GET", f"/api/v1/files/{file_id}"),
        ("GET", f"/api/v1/courses/{key}/person_course"),
        ("GET", f"/api/v1/courses/{key}/person_course?format=csv"),
        ("GET", "/api/v1/sql?q=select%201"),
        ("POST", "/api/v1/sql"),
    ]


def test_personal_data_needs_the_token(client: TestClient, wh: Warehouse) -> None:
    for method, path in personal_paths(wh):
        body = {"sql": "select 1"} if method == "POST" else None
        assert client.request(method, path, json=body).status_code == 401, path
        assert client.request(method, path, json=body, headers={"Authorization": "Bearer wrong"}).status_code == 403, path
        assert client.request(method, path, json=body, headers={"Authorization": "Basic " + TOKEN}).status_code == 401, path
        good = client.request(method, path, json=body, headers=AUTH).status_code
        assert good in (200, 404) if "person_course" in path and not wh.table_exists("person_course") else good == 200, path
    # aggregates stay open
    for path in ("/", "/status", "/api/v1/services", "/api/v1/courses", "/api/v1/health", "/api/v1/files"):
        assert client.get(path).status_code == 200, path


def test_without_a_configured_token_personal_data_is_refused(ingested: Settings, wh: Warehouse) -> None:
    settings = dataclasses.replace(ingested, api_token=None)
    with make_client(settings, wh) as c:
        for method, path in personal_paths(wh):
            body = {"sql": "select 1"} if method == "POST" else None
            assert c.request(method, path, json=body, headers=AUTH).status_code == 403, path


def test_require_token_for_all_closes_every_endpoint(ingested: Settings, wh: Warehouse) -> None:
    settings = Settings(**{**ingested.__dict__, "require_token_for_all": True})
    with make_client(settings, wh) as c:
        for path in ("/", "/status", "/newdata", "/api/v1/services", "/api/v1/courses", "/api/v1/files", "/api/v1/throughput"):
            assert c.get(path).status_code == 401, path
            assert c.get(path, headers={"Authorization": "Bearer nope"}).status_code == 403, path
            assert c.get(path, headers=AUTH).status_code in (200, 409), path


# -- sql ----------------------------------------------------------------------------------------------------
def test_sql_returns_the_rows_of_one_query(client: TestClient, wh: Warehouse) -> None:
    query = "WITH u AS (SELECT course_key, count(*) AS n FROM edx.auth_user GROUP BY course_key) SELECT * FROM u ORDER BY course_key"
    body = client.post("/api/v1/sql", json={"sql": query}, headers=AUTH).json()
    assert body["columns"] == ["course_key", "n"]
    assert body["rows"] == [list(r) for r in wh.query(query)]
    limited = client.get("/api/v1/sql", params={"q": "SELECT id FROM edx.auth_user ORDER BY id", "limit": 3}, headers=AUTH).json()
    assert limited["rows"] == [[i] for (i,) in wh.query("SELECT id FROM edx.auth_user ORDER BY id LIMIT 3")] and limited["truncated"]
    failed = client.get("/api/v1/sql", params={"q": "SELECT nope FROM edx.auth_user"}, headers=AUTH)
    assert failed.status_code == 400 and "nope" in failed.json()["detail"]


REFUSED = [
    "INSERT INTO edx.auth_user (id) VALUES (1)",
    "DELETE FROM edx.auth_user",
    "UPDATE edx.auth_user SET username = 'x'",
    "DROP TABLE edx.auth_user",
    "CREATE TABLE x AS SELECT 1",
    "SELECT * INTO copy_of_users FROM edx.auth_user",
    "COPY auth_user TO '/tmp/users.csv'",
    "ATTACH '/tmp/other.duckdb' AS other",
    "PRAGMA version",
    "SET memory_limit = '10GB'",
    "INSTALL httpfs",
    "SELECT 1; SELECT 2",
    "SELECT 1; DELETE FROM edx.auth_user",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM read_csv_auto('/etc/passwd')",
    "SELECT * FROM read_json('/etc/x.json')",
    "SELECT * FROM read_parquet('s3://bucket/x.parquet')",
    "SELECT * FROM glob('/etc/*')",
    "SELECT read_text('/etc/passwd')",
    "SELECT * FROM '/etc/passwd.csv'",
    'SELECT * FROM "https://example.org/x.parquet"',
    "SELECT * FROM sqlite_scan('/tmp/x.db', 't')",
    "SELECT getenv('HOME')",
    "SELECT nextval('ingest_files_id')",
    "WITH a AS (SELECT * FROM read_json_auto('x.json')) SELECT * FROM a",
    "SELECT * FROM edx.auth_user WHERE id IN (SELECT * FROM read_parquet('x.parquet'))",
    "SELECT * FROM duckdb_secrets()",
    "",
]


@pytest.mark.parametrize("query", REFUSED)
def test_sql_refuses_writes_several_statements_and_file_functions(client: TestClient, wh: Warehouse, query: str) -> None:
    users = wh.scalar("SELECT count(*) FROM edx.auth_user")
    with pytest.raises(QueryRefused):
        check(query)
    answer = client.post("/api/v1/sql", json={"sql": query}, headers=AUTH)
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"]
    assert wh.scalar("SELECT count(*) FROM edx.auth_user") == users
    assert not wh.table_exists("copy_of_users")


def test_sql_accepts_plain_reads() -> None:
    for query in (
        "SELECT 1",
        "select count(*) from auth_user u join auth_userprofile p on p.user_id = u.id",
        "WITH x AS (SELECT 1 AS a) SELECT a FROM x UNION ALL SELECT 2",
        "SELECT * FROM range(3)",
        "SELECT table_name FROM information_schema.tables",
    ):
        assert check(query) == query


# -- the dashboard's files ---------------------------------------------------------------------------------
def test_dashboard_is_served_with_plotly_from_the_installed_package(client: TestClient) -> None:
    import plotly

    page = client.get("/ui/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script src="plotly.min.js">' in page.text and "http://" not in page.text and "https://" not in page.text
    bundle = client.get("/ui/plotly.min.js")
    assert bundle.content == (Path(plotly.__file__).parent / "package_data" / "plotly.min.js").read_bytes()
    assert client.get("/ui/app.js").status_code == 200
    assert client.get("/ui/../app.py").status_code == 404
    assert client.get("/ui/nothing.js").status_code == 404
    assert "/api/v1/services" in client.get("/openapi.json").json()["paths"]


def test_get_and_post_sql_take_the_same_parameter_name_and_q_still_works(client: TestClient, wh: Warehouse) -> None:
    query = "SELECT id FROM edx.auth_user ORDER BY id"
    expected = [[i] for (i,) in wh.query(query + " LIMIT 2")]
    posted = client.post("/api/v1/sql", json={"sql": query, "limit": 2}, headers=AUTH).json()
    by_name = client.get("/api/v1/sql", params={"sql": query, "limit": 2}, headers=AUTH).json()
    by_alias = client.get("/api/v1/sql", params={"q": query, "limit": 2}, headers=AUTH).json()
    assert posted["rows"] == by_name["rows"] == by_alias["rows"] == expected
    missing = client.get("/api/v1/sql", headers=AUTH)
    assert missing.status_code == 422 and "sql" in missing.json()["detail"]
    both = client.get("/api/v1/sql", params={"sql": query, "q": "SELECT 1"}, headers=AUTH)
    assert both.status_code == 422
    spec = client.get("/openapi.json").json()["paths"]["/api/v1/sql"]
    names = {p["name"]: p for p in spec["get"]["parameters"]}
    assert "sql" in names and names["q"].get("deprecated") is True


def test_without_a_configured_token_the_refusal_says_personal_data_is_off_until_api_token_is_set(ingested: Settings, wh: Warehouse) -> None:
    settings = dataclasses.replace(ingested, api_token=None)
    open_client = make_client(settings, wh)
    for headers in ({}, AUTH):
        answer = open_client.post("/api/v1/sql", json={"sql": "SELECT 1"}, headers=headers)
        assert answer.status_code in (401, 403)
        assert "personal data is off" in answer.json()["detail"] and "api_token" in answer.json()["detail"], answer.json()
    configured = make_client(ingested, wh).get("/api/v1/sql", params={"sql": "SELECT 1"})
    assert configured.status_code == 401 and "Bearer" in configured.json()["detail"] and "is off" not in configured.json()["detail"]
