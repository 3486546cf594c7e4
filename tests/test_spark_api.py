"""The daemon's API, the dashboard and the CLI's `status` and `sql` on a Spark warehouse (issue 21).

One sample package is ingested twice by the services that run on Spark today (SPARK_SERVICES): into a
Spark lake (local[2], in this process) and into DuckDB, the reference. The API reads a lake through
DuckDB readers over its catalog (warehouse/spark.py), so every /api/v1 route (taken from the app's
own OpenAPI schema, which FastAPI builds from its routes) must answer as on DuckDB: never a 5xx, the
same status, the same figures. Untrusted SQL never reaches Spark SQL: `reflect`, `java_method` and
Spark's `text.`path`` are answered as DuckDB answers them, and no Spark job is started by them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import SPARK_SERVICES, ingest, serve_on_loopback, settings_env
from optimus.api.app import create_app
from optimus.api.state import ReadViews, ServerState
from optimus.config import Settings
from optimus.sample import generate
from optimus.warehouse import connect

TOKEN = "spark-api-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
# what says when or how fast something ran, or where this run's files are: not the same on two runs
VOLATILE = {
    "startdate",
    "lastcompletedate",
    "started_at",
    "finished_at",
    "last_run",
    "last_run_at",
    "registered_at",
    "updated_at",
    "computed_at",
    "loaded_at",
}
VOLATILE_PARTS = ("seconds", "per_second", "duration", "_at", "uptime", "warehouse", "path")
# Spark's own ways to reach the JVM and the host's files: never run on the SQL endpoint
SPARK_ONLY = [
    "SELECT reflect('java.lang.System', 'getProperty', 'user.home') AS h",
    "SELECT java_method('java.lang.System', 'getenv', 'HOME') AS h",
    "SELECT * FROM text.`/etc/passwd`",
    "SELECT value FROM text.`{lake}/_catalog.duckdb`",
]


@pytest.fixture(scope="module")
def engines(spark_master: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Settings]:
    """The same package ingested by SPARK_SERVICES into a Spark lake and into DuckDB."""
    root = tmp_path_factory.mktemp("spark-api")
    generate(root / "data", courses=2, learners=12, days=1, seed=11)
    common: dict[str, Any] = {"data_paths": [root / "data"], "memory_limit": "1GB", "api_token": TOKEN, "spark_master": spark_master}
    engines = {
        "duckdb": Settings(
            warehouse=str(root / "wh" / "optimus.duckdb"), export_path=root / "duck-exports", www_path=root / "duck-www", **common
        ),
        "spark": Settings(warehouse=f"spark:///{root / 'lake'}", export_path=root / "lake-exports", www_path=root / "lake-www", **common),
    }
    for settings in engines.values():
        ingest(settings, *SPARK_SERVICES)
    return engines


def daemon_state() -> ServerState:
    return ServerState(mode="daemon", ready=True, request_scan=lambda: None)


@pytest.fixture(params=["daemon", "serve"])
def served(request: pytest.FixtureRequest, engines: dict[str, Settings]) -> Iterator[dict[str, Any]]:
    """Both warehouses served by the real API on loopback: as the daemon serves them (read views of its
    writer) or as `optimus serve` does (an instance opened read-only)."""
    opened = {name: connect(settings, read_only=request.param == "serve") for name, settings in engines.items()}
    views = {name: ReadViews(engines[name], wh) for name, wh in opened.items()}
    state = daemon_state if request.param == "daemon" else lambda: None
    try:
        with serve_on_loopback(create_app(engines["spark"], views["spark"], state())) as spark_url:
            with serve_on_loopback(create_app(engines["duckdb"], views["duckdb"], state())) as duck_url:
                yield {"spark": spark_url, "duckdb": duck_url, "writer": opened["spark"]}
    finally:
        for name in opened:
            views[name].close()
            opened[name].close()


def steady(value: Any) -> Any:
    """An answer without what differs between two runs of the same ingest (times, rates, paths)."""
    if isinstance(value, dict):
        return {k: steady(v) for k, v in value.items() if k not in VOLATILE and not any(p in k for p in VOLATILE_PARTS)}
    if isinstance(value, list):
        return [steady(v) for v in value]
    return value


def difference(got: Any, want: Any, where: str = "") -> list[str]:
    """Where two JSON answers differ (the first few places), for a failure message."""
    if isinstance(got, dict) and isinstance(want, dict):
        keys = sorted(set(got) | set(want))
        return [d for k in keys for d in difference(got.get(k), want.get(k), f"{where}.{k}")][:8]
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        return [d for i, (g, w) in enumerate(zip(got, want, strict=True)) for d in difference(g, w, f"{where}[{i}]")][:8]
    return [] if got == want else [f"{where}: spark {str(got)[:150]} != duckdb {str(want)[:150]}"]


def routes(base: str) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """Every /api/v1 operation of the app (method, path template, parameters), from its OpenAPI schema."""
    paths = httpx.get(f"{base}/openapi.json", timeout=30).json()["paths"]
    found = [
        (method, template, operation.get("parameters", []))
        for template, operations in paths.items()
        if template.startswith("/api/v1/")
        for method, operation in operations.items()
    ]
    assert len(found) >= 15, found
    return found


def concrete(template: str, known: dict[str, str]) -> str:
    """A path template with each parameter given a value the warehouse knows."""
    for name, value in known.items():
        template = template.replace("{" + name + "}", value)
    assert "{" not in template, f"no value for a parameter of {template}"
    return template


def ask(base: str, method: str, path: str) -> httpx.Response:
    if method == "post":  # the one body the API takes: a query
        return httpx.post(f"{base}{path}", json={"sql": "SELECT count(*) AS n FROM course_ids"}, headers=AUTH, timeout=120)
    query = {"sql": "SELECT count(*) AS n FROM course_ids"} if path.endswith("/sql") else None
    return httpx.get(f"{base}{path}", params=query, headers=AUTH, timeout=120)


def test_every_api_route_answers_on_spark_as_on_duckdb(served: dict[str, Any], engines: dict[str, Settings]) -> None:
    spark, duck = served["spark"], served["duckdb"]
    courses = httpx.get(f"{duck}/api/v1/courses", headers=AUTH, timeout=60).json()["courses"]
    assert len(courses) == 2, courses
    course = courses[0]["course_key"]
    file_id = str(httpx.get(f"{duck}/api/v1/files", params={"limit": 1}, headers=AUTH, timeout=60).json()["files"][0]["id"])
    known = {"course_id": course, "file_id": file_id, "table": "person_course"}
    compared, differ = [], {}
    for method, template, _parameters in routes(spark):
        path = concrete(template, known)
        got, want = ask(spark, method, path), ask(duck, method, path)
        assert got.status_code < 500, (method, path, got.status_code, got.text[:500])
        assert got.status_code == want.status_code, (method, path, got.status_code, want.status_code, got.text[:300])
        if got.headers.get("content-type", "").startswith("application/json") and steady(got.json()) != steady(want.json()):
            differ[f"{method} {path}"] = difference(steady(got.json()), steady(want.json()))
        compared.append(path)
    assert "/api/v1/health" in compared and f"/api/v1/courses/{course}" in compared
    # the dashboard: its page, and the figures it draws
    page = httpx.get(f"{spark}/ui/", timeout=30)
    assert page.status_code == 200 and "<html" in page.text.lower()
    assert httpx.get(f"{spark}/api/v1/dashboard/courses", headers=AUTH, timeout=60).json()
    # nothing the API did needed Spark: its readers are DuckDB over the lake's catalog
    assert not getattr(served["writer"], "spark_started", False)
    # and the same answers as DuckDB's (checked last, so that a difference does not hide the checks above)
    assert not differ, json.dumps(differ, indent=1, default=str)[:6000]


def test_the_sql_endpoint_answers_spark_only_sql_as_duckdb_and_never_starts_spark(
    served: dict[str, Any], engines: dict[str, Settings]
) -> None:
    lake = engines["spark"].lake_path()
    for attack in SPARK_ONLY:
        query = attack.format(lake=lake)
        got = httpx.post(f"{served['spark']}/api/v1/sql", json={"sql": query}, headers=AUTH, timeout=60)
        want = httpx.post(f"{served['duckdb']}/api/v1/sql", json={"sql": query}, headers=AUTH, timeout=60)
        assert got.status_code in (400, 422) and got.status_code == want.status_code, (query, got.status_code, got.text)
        assert str(Path.home()) not in got.text and "root:x:0:0" not in got.text, (query, got.text)
    assert not getattr(served["writer"], "spark_started", False)


# -- the real CLI --------------------------------------------------------------------------------------------
SQL_PROBE = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('pyspark imported' if 'pyspark' in sys.modules else 'no pyspark', file=sys.stderr))\n"
    "from optimus.cli import app\n"
    "app()\n"
)


def optimus(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    """`optimus ARGS` in a process of its own (one that says at its exit whether it ever imported pyspark)."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("OPTIMUS_")}, **settings_env(settings)}
    return subprocess.run([sys.executable, "-c", SQL_PROBE, *args], env=env, capture_output=True, text=True, timeout=300)


def test_optimus_status_on_spark_equals_duckdb(engines: dict[str, Settings], cli: Callable[..., Any]) -> None:
    answers = {}
    for name, settings in engines.items():
        result = cli(["status", "--json"], settings)
        assert result.exit_code == 0, result.output
        answers[name] = json.loads(result.stdout)
    assert answers["spark"]["services"].keys() == answers["duckdb"]["services"].keys()
    for service, figures in answers["duckdb"]["services"].items():
        assert {k: v for k, v in answers["spark"]["services"][service].items() if k != "last_run"} == {
            k: v for k, v in figures.items() if k != "last_run"
        }, service
    assert all(answers["spark"]["services"][s]["done"] > 0 for s in SPARK_SERVICES), answers["spark"]


def test_optimus_sql_on_spark_answers_as_on_duckdb_without_spark(engines: dict[str, Settings]) -> None:
    spark, duck = engines["spark"], engines["duckdb"]
    query = "SELECT count(*) AS n, count(DISTINCT course_id) AS c FROM edx.student_courseenrollment"
    got, want = optimus(spark, "sql", "--csv", query), optimus(duck, "sql", "--csv", query)
    assert got.returncode == 0, got.stderr
    assert "no pyspark" in got.stderr, got.stderr
    assert got.stdout == want.stdout and int(want.stdout.split()[1].split(",")[0]) > 0, (got.stdout, want.stdout)


def test_optimus_sql_never_runs_spark_sql(engines: dict[str, Settings]) -> None:
    """Spark SQL's own reach, through `optimus sql` on the lake: a DuckDB error as on DuckDB, and the process
    never imported pyspark."""
    spark, duck = engines["spark"], engines["duckdb"]
    for attack in SPARK_ONLY:
        query = attack.format(lake=spark.lake_path())
        got, want = optimus(spark, "sql", query), optimus(duck, "sql", query)
        assert got.returncode == want.returncode != 0, (query, got.stdout, got.stderr)
        assert str(Path.home()) not in got.stdout + got.stderr and "root:x:0:0" not in got.stdout
        assert "no pyspark" in got.stderr, (query, got.stderr)
