"""Shared test fixtures: real data folders in tmp_path, real DuckDB files, the real CLI."""

from __future__ import annotations

import hashlib
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from typer.testing import CliRunner

from optimus.cli import app
from optimus.config import Settings

if TYPE_CHECKING:
    from optimus.pipeline import RunSummary

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("OPTIMUS_TEST_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures" / "json_to_relation"

# a real PostgreSQL server (pg_url) and the duckdb/postgres `backend` parametrisation
pytest_plugins = ["postgres_server", "spark_server", "spark_cluster"]

# Property-based (fuzz) tests, defined once for every test file: a bounded number of examples in the
# test command; derandomized under CI=true (the same examples every run: no flaky CI); more with
# `pytest --hypothesis-profile=thorough` (hypothesis' own option) or OPTIMUS_HYPOTHESIS_PROFILE=thorough.
# function-scoped fixtures (a data folder, a warehouse) are set up once per test, not per example: the examples
# of a property write their own files inside them
_FUZZ: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture],
}
hypothesis_settings.register_profile("dev", max_examples=40, **_FUZZ)
hypothesis_settings.register_profile("ci", max_examples=40, derandomize=True, print_blob=True, **_FUZZ)
hypothesis_settings.register_profile("thorough", max_examples=2000, **_FUZZ)
hypothesis_settings.load_profile(
    os.environ.get("OPTIMUS_HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI", "").lower() == "true" else "dev")
)


@pytest.fixture
def fixtures_dir() -> Path:
    """The real edX events of ../shared/fixtures/json_to_relation (read there, never copied).

    Without them a test that reads them is skipped, saying where they were looked for; under CI=true it fails."""
    if not FIXTURES.is_dir():
        message = (
            f"the real edX event fixtures are not at {FIXTURES}: tests that read them need the project's ../shared folder "
            "beside the checkout (or OPTIMUS_TEST_SHARED=/path/to/shared)"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return FIXTURES


def python_event_lines(data: bytes) -> list[tuple[int, str | None, str | None]]:
    """A plain Python reading of a tracking log's (decompressed) bytes, what Warehouse.event_lines must
    give: (line number, text without its `\\n` or None when empty, SHA-1 hex of the line from its first
    `{` plus one `\\n`, or None without a `{`); a last line without `\\n` is a line."""
    parts = data.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    out = []
    for n, line in enumerate(parts, start=1):
        at = line.find(b"{")
        out.append((n, line.decode() or None, hashlib.sha1(line[at:] + b"\n").hexdigest() if at >= 0 else None))
    return out


def make_data_path(root: Path, package: str = "2024-01-07") -> Path:
    """An empty data path in the original's layout, with `latest` links."""
    (root / "clickstream_logs" / "events").mkdir(parents=True, exist_ok=True)
    (root / "database_state" / package).mkdir(parents=True, exist_ok=True)
    for link, target in (("clickstream_logs/latest", "events"), ("database_state/latest", package)):
        path = root / link
        if path.is_symlink() or path.exists():
            path.unlink()
        path.symlink_to(target)
    return root


@pytest.fixture
def data_path(tmp_path: Path) -> Path:
    return make_data_path(tmp_path / "data")


@pytest.fixture
def settings_for(tmp_path: Path) -> Callable[..., Settings]:
    """Settings for a data path, with the warehouse, exports and www inside tmp_path."""

    def make(data: Path, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_paths": [data],
            "warehouse": str(tmp_path / "wh" / "optimus.duckdb"),
            "export_path": tmp_path / "exports",
            "www_path": tmp_path / "www",
            "memory_limit": "1GB",
            "release_secret_file": tmp_path / "secret" / "release-secret",
        }
        values.update(overrides)
        return Settings(**values)

    return make


# the services whose SQL runs on Spark today (issue 21): what the Spark API and attack tests ingest into a lake
SPARK_SERVICES = ("DatabaseState", "DiscussionForums", "CourseStructure")


@contextmanager
def reading(settings: Settings) -> Iterator[Any]:
    """The settings' warehouse opened read-only for the length of a `with`."""
    from optimus.warehouse import connect

    wh = connect(settings, read_only=True)
    try:
        yield wh
    finally:
        wh.close()


# -- the one way tests ingest and the one way they read rows back ---------------------------------------
@overload
def query_rows(settings: Settings, sql: str, params: Sequence[Any] | None = None, *, as_dicts: Literal[False] = False) -> list[tuple]: ...


@overload
def query_rows(settings: Settings, sql: str, params: Sequence[Any] | None = None, *, as_dicts: Literal[True]) -> list[dict[str, Any]]: ...


def query_rows(
    settings: Settings, sql: str, params: Sequence[Any] | None = None, *, as_dicts: bool = False
) -> list[tuple] | list[dict[str, Any]]:
    """One query's rows on the settings' warehouse (either engine, opened read-only for this query alone):
    tuples, or dicts keyed by column name with `as_dicts`."""
    with reading(settings) as wh:
        if as_dicts:
            return wh.query_dicts(sql, list(params or []))
        return [tuple(r) for r in wh.query(sql, list(params or []))]


def ingest(settings: Settings, *services: str, force: bool = False, ok: bool | None = True) -> RunSummary:
    """One run of the real pipeline in this process, as `optimus ingest [--service S ...]` runs it: set up,
    scan the data paths, run the named services (every due one when none; `force` runs named derived ones
    even when nothing changed). Returns the run's summary.

    `ok=True` asserts what makes the CLI exit 0 (no failed file, of this run or an earlier one, and no
    failed service); `ok=False` asserts the opposite; `ok=None` leaves the outcome to the test."""
    from optimus.pipeline import Pipeline, open_warehouse

    wh = open_warehouse(settings)
    try:
        pipeline = Pipeline(settings, wh)
        pipeline.setup()
        pipeline.scan()
        summary = pipeline.run_once(only=list(services) or None, force=force)
        if ok is not None:
            failed = pipeline.failed_files()
            problems = [f"{f.path}: {f.error}" for f in summary.files if f.error] + [
                f"{s.service}: {s.error}" for s in summary.services if s.error
            ]
            assert (not failed and not summary.failed) == ok, f"{failed} failed file(s); {problems}"
        return summary
    finally:
        wh.close()


def settings_env(settings: Settings) -> dict[str, str]:
    """The same settings as OPTIMUS_* variables, for the CLI and for subprocesses."""
    import json

    return {
        "OPTIMUS_DATA_PATHS": json.dumps([str(p) for p in settings.data_paths]),
        "OPTIMUS_WAREHOUSE": settings.warehouse,
        "OPTIMUS_EXPORT_PATH": str(settings.export_path),
        "OPTIMUS_WWW_PATH": str(settings.www_path),
        "OPTIMUS_MEMORY_LIMIT": settings.memory_limit,
        "OPTIMUS_SPARK_MASTER": settings.spark_master,
        **({"OPTIMUS_RELEASE_SECRET_FILE": str(settings.release_secret_file)} if settings.release_secret_file else {}),
    }


@pytest.fixture
def cli() -> Callable[..., Any]:
    """Run `optimus ARGS` in-process through Click's runner, with settings from `settings` as env."""
    runner = CliRunner()

    def invoke(args: list[str], settings: Settings | None = None, env: dict[str, str] | None = None) -> Any:
        # the runner overlays env on os.environ: unset any OPTIMUS_* setting the test did not give
        full_env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("OPTIMUS_") and not k.startswith("OPTIMUS_TEST")}
        if settings is not None:
            full_env.update(settings_env(settings))
        full_env.update(env or {})
        return runner.invoke(app, args, env=full_env, catch_exceptions=False)

    return invoke


# -- crash tests: a real `optimus` subprocess, killed at a pause point, and tables compared both ways ----
BOOKKEEPING_TABLES = {
    "ingest_files",
    "ingest_skipped",
    "service_runs",
    "service_run_changes",
    "schema_info",
    "course_ids",
    "db_state_loads",
}
VOLATILE_COLUMNS = ("file_id", "computed_at", "looked_up_at", "loaded_at", "first_used", "last_used")


def optimus_process(settings: Settings, *args: str, **env: str) -> subprocess.Popen[bytes]:
    """`optimus ARGS` (default: ingest) in a subprocess with these settings and extra variables."""
    import sys

    full = {**{k: v for k, v in os.environ.items() if not k.startswith("OPTIMUS_")}, **settings_env(settings), **env}
    return subprocess.Popen(
        [sys.executable, "-m", "optimus", *(args or ("ingest",))], env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )


def kill_when_paused(proc: subprocess.Popen[bytes], marker: Path, timeout: float = 60) -> bool:
    """SIGKILL the process once it writes `marker` (a pause point); False when it ended first, without pausing."""
    import signal
    import time

    deadline = time.time() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            return False
        assert time.time() < deadline, "the process never reached the pause point"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    marker.unlink()
    return True


def data_tables(con: Any, database: str | None = None) -> list[str]:
    """`schema.table` of every table of a DuckDB warehouse that holds data (Optimus's own in main, the
    raw edX ones in edx; not the ledger and run records)."""
    names = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT temporary AND database_name = coalesce(?, current_database())",
        [database],
    ).fetchall()
    return sorted(f"{schema}.{name}" for schema, name in names if name not in BOOKKEEPING_TABLES)


def quoted(table: str) -> str:
    """`schema.table` as quoted SQL."""
    return ".".join(f'"{part}"' for part in table.split("."))


def assert_same_tables(warehouse: str, clean: str, ignore: dict[str, tuple[str, ...]] | None = None) -> list[str]:
    """Every data table of `warehouse` equals the one in `clean` both ways (EXCEPT ALL), leaving out the
    columns that record when or by which file id a row came (and `ignore`'s columns of a table, e.g.
    RUN_RECORDS); returns the tables compared."""
    import duckdb

    con = duckdb.connect(warehouse, read_only=True)
    try:
        con.execute(f"ATTACH '{clean}' AS clean (READ_ONLY)")
        tables = data_tables(con)
        assert tables == data_tables(con, "clean")
        for table in tables:
            skip = (*VOLATILE_COLUMNS, *(ignore or {}).get(table.split(".")[-1], ()))
            cols = [r[0] for r in con.execute(f"DESCRIBE {quoted(table)}").fetchall() if r[0] not in skip]
            select = ", ".join(f'"{c}"' for c in cols)
            for a, b in (("", "clean."), ("clean.", "")):
                ((extra,),) = con.execute(
                    f"SELECT count(*) FROM (SELECT {select} FROM {a}{quoted(table)} EXCEPT ALL SELECT {select} FROM {b}{quoted(table)})"
                ).fetchall()
                assert extra == 0, f"{table}: {extra} row(s) in {a or 'the warehouse'} not in {b or 'the warehouse'}"
        return tables
    finally:
        con.close()


# -- the same tables on two engines: values compared as the engine-equality test compares them -----------
ENGINE_BOOKKEEPING = ("computed_at", "looked_up_at", "loaded_at", "file_id")  # when or by which file id a row came
JSON_COLUMNS = ("event", "context", "doc")
EXACT_FLOATS = ("sum_dt", "sum_dt2", "max_dt", "avg_dt", "sdv_dt")  # exact integer sums: no tolerance between engines


def comparable(value: Any, column: str) -> Any:
    """A value as engines are compared: floats to 6 places (but the exact time-on-task sums), JSON by its
    value (engines space it differently), NUL as PostgreSQL must store it (text cannot hold one)."""
    import json

    if isinstance(value, float) and column not in EXACT_FLOATS:
        return round(value, 6)
    if column == "raw" and isinstance(value, str):
        return value.replace("\x00", "\x01")
    if column in JSON_COLUMNS and isinstance(value, str):
        return json.dumps(json.loads(value), sort_keys=True)
    return value


def data_tables_of(settings: Settings) -> list[str]:
    """`schema.table` of every data table of a DuckDB warehouse (see data_tables), or of a Spark
    warehouse: its catalog's tables and its lake tables (not the manifest, not a TEMP table)."""
    import duckdb

    lake = settings.lake_path()
    con = duckdb.connect(str(lake / "_catalog.duckdb") if lake else settings.warehouse_path() or settings.warehouse, read_only=True)
    try:
        if lake is None:
            return data_tables(con)
        listed = con.execute("SELECT schema_name, table_name FROM lake_tables WHERE NOT temporary").fetchall()
        manifest = {"lake_tables", "lake_parts", "lake_views"}
        in_lake = [f"{schema}.{name}" for schema, name in listed if name not in BOOKKEEPING_TABLES]
        return sorted([t for t in data_tables(con) if t.split(".", 1)[1] not in manifest] + in_lake)
    finally:
        con.close()


def table_rows(settings: Settings, table: str, skip: Sequence[str] = ()) -> tuple[list[str], list[tuple]]:
    """A table's columns and rows (comparable, sorted) on any warehouse, through the Warehouse protocol, without
    the bookkeeping columns and `skip`. `table` is `schema.name` as data_tables gives it: `main` is Optimus's
    own schema, `edx` the raw one."""
    schema, name = table.split(".", 1)
    with reading(settings) as wh:
        in_schema = None if schema == "main" else wh.raw_schema
        cols = [c for c in wh.columns(name, in_schema) if c not in ENGINE_BOOKKEEPING and c not in skip]
        target = f"{wh.quote(in_schema)}.{wh.quote(name)}" if in_schema else wh.quote(name)
        rows = wh.query(f"SELECT {', '.join(wh.quote(c) for c in cols)} FROM {target}")
    return cols, sorted((tuple(comparable(v, c) for v, c in zip(r, cols, strict=True)) for r in rows), key=repr)


def assert_same_rows(settings: Settings, reference: Settings, tables: Sequence[str]) -> list[str]:
    """Each of `tables` holds the same columns and rows on both warehouses (any engines, values comparable),
    leaving out what records when or by which file or run a row came (VOLATILE_COLUMNS, RUN_RECORDS);
    returns the tables compared."""
    assert tables, "no table to compare"
    for table in tables:
        skip = (*VOLATILE_COLUMNS, *RUN_RECORDS.get(table.split(".")[-1], ()))
        cols, rows = table_rows(settings, table, skip)
        want_cols, want = table_rows(reference, table, skip)
        assert cols == want_cols, f"{table}: columns {cols} != {want_cols}"
        if rows != want:
            extra, missing = [r for r in rows if r not in want], [r for r in want if r not in rows]
            raise AssertionError(f"{table}: {len(rows)} rows, {len(want)} wanted; extra {extra[:3]}, missing {missing[:3]}")
    return list(tables)


RUN_RECORDS = {"email_crm_exports": ("id", "path", "exported_at", "run_id"), "email_crm_last": ("export_id",)}


def export_files(folder: Path) -> dict[str, list[Path]]:
    """Every file under an export folder by its kind: the name without its timestamp (`personcourse_X_.csv`)."""
    import re

    kinds: dict[str, list[Path]] = {}
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        kind = re.sub(r"\d{8}T\d{12}Z", "", str(path.relative_to(folder)))
        kinds.setdefault(kind, []).append(path)
    return kinds


def assert_same_exports(folder: Path, clean: Path) -> None:
    """The export folder holds exactly the clean run's files, once each, with the same content, and nothing else
    (no temporary file, no staging folder, no file of a run that never committed)."""
    import pyarrow.parquet as pq

    got, want = export_files(folder), export_files(clean)
    assert sorted(got) == sorted(want), f"export files differ: extra {sorted(set(got) - set(want))}, missing {sorted(set(want) - set(got))}"
    for kind, paths in got.items():
        assert len(paths) == len(want[kind]), f"{kind}: {len(paths)} file(s), a clean run writes {len(want[kind])}"
        for mine, theirs in zip(paths, want[kind], strict=True):
            if mine.suffix == ".parquet":
                assert pq.read_table(mine).equals(pq.read_table(theirs)), kind
            elif mine.suffix == ".csv":
                assert mine.read_bytes() == theirs.read_bytes(), kind


def ingest_sample(root: Path, **settings: Any) -> Settings:
    """A sample package (2 courses) in root/data, ingested once (by `ingest`) into root/wh."""
    from optimus.sample import generate

    generate(root / "data", courses=2, learners=30, days=3, seed=7)
    values: dict[str, Any] = {
        "data_paths": [root / "data"],
        "warehouse": str(root / "wh" / "optimus.duckdb"),
        "export_path": root / "exports",
        "www_path": root / "www",
        "memory_limit": "1GB",
    }
    sample = Settings(**{**values, **settings})
    summary = ingest(sample)
    assert "DatabaseState" in {f.service for f in summary.files}, summary
    return sample


@contextmanager
def serve_on_loopback(asgi_app: Any) -> Iterator[str]:
    """The app served by a real uvicorn server on 127.0.0.1 (a thread of this process); yields its base URL."""
    import uvicorn
    from bench.api_load import free_port

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            asgi_app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=2
        )
    )
    thread = threading.Thread(target=server.run, name="test-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def duckdb_and_postgres(root: Path, pg_server: str, label: str) -> Iterator[dict[str, Any]]:
    """A real DuckDB warehouse and a real PostgreSQL warehouse (a database of its own, dropped after),
    open side by side: for tests that run the same SQL on both engines."""
    from optimus.warehouse import connect
    from postgres_server import RUN_ID, create_database, drop_database

    data = make_data_path(root / "data")
    common: dict[str, Any] = {"data_paths": [data], "export_path": root / "exports", "www_path": root / "www", "memory_limit": "1GB"}
    name = f"opt_{RUN_ID}_{label}"
    url = create_database(pg_server, name)
    opened = {
        "duckdb": connect(Settings(warehouse=str(root / "wh" / "optimus.duckdb"), **common)),
        "postgres": connect(Settings(warehouse=url, **common)),
    }
    try:
        yield opened
    finally:
        for wh in opened.values():
            wh.close()
        drop_database(pg_server, name)


def required_part_missing(message: str) -> None:
    """A part a test needs is not on this machine: fail under CI=true (never skipped there), skip otherwise."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One real local Spark session (`local[2]`, the settings of warehouse/spark_session.py) for the
    whole test session: one JVM. Without pyspark or Java a test using it is skipped, saying why; under
    CI=true it fails."""
    from spark_server import require_spark

    require_spark()
    from optimus.warehouse.dialects.spark import SESSION_SQL
    from optimus.warehouse.spark_session import spark_session

    session = spark_session("local[2]", app_name="optimus-tests")
    for statement in SESSION_SQL:  # as the Spark warehouse does on a new session
        session.sql(statement)
    try:
        yield session
    finally:
        session.stop()


class SparkSQL:
    """The one place tests run SQL on Spark: plain `spark.sql` with `?` parameters, answering like a
    Warehouse's `sql`/`query`/`scalar` (until the Spark warehouse lands and takes its place)."""

    def __init__(self, session: Any) -> None:
        from optimus.warehouse.dialects.spark import SparkDialect

        self.session = session
        self.sql = SparkDialect()

    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.session.sql(sql, args=list(params or [])).collect()]

    def scalar(self, sql: str) -> Any:
        return self.query(sql)[0][0]
