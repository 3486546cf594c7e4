"""PostgreSQL as the second warehouse: the same ingest as DuckDB, row for row, on a real server."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from conftest import query_rows, settings_env
from optimus.config import Settings
from optimus.warehouse import connect, schema
from optimus.warehouse.base import raw_table
from postgres_server import create_database, drop_database, with_database

pytestmark = pytest.mark.postgres

COURSES = ["UQx-BIOL1859x-1T2015", "UQx-Think101x-3T2015"]


def _esc(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def write_package(data: Path, seed: int = 7, users: int = 60) -> dict[str, Any]:
    """edX .sql dumps for two courses, with escapes, NULLs, a short line and an unparsable date.

    Returns what a correct load must give, computed here: per table the rows kept and the lines quarantined.
    """
    rnd = random.Random(seed)
    folder = data / "database_state" / "latest"
    expect: dict[str, Any] = {"rows": {}, "quarantined": {}}
    start = datetime(2015, 2, 1)
    for c, course in enumerate(COURSES):
        course_id = course.replace("-", "/")
        # auth_user: escapes in names, NULL last_login, 29-31st days (the slow cast path)
        lines = ["id\tusername\temail\tfirst_name\tis_staff\tlast_login\tdate_joined"]
        bad_lines = []
        for i in range(users):
            uid = 1000 * c + i
            name = rnd.choice(["Ann", "Bo\tb", "C\\d", "Dé\nlia", "Eve\r", "Fred"]) + str(i)
            joined = start + timedelta(days=rnd.randrange(0, 60), seconds=rnd.randrange(86400))
            login = "NULL" if i % 5 == 0 else (joined + timedelta(days=3)).strftime("%Y-%m-%d %H:%M:%S")
            lines.append(f"{uid}\tuser{uid}\tu{uid}@example.org\t{_esc(name)}\t{i % 7 == 0:d}\t{login}\t{joined:%Y-%m-%d %H:%M:%S}")
        lines.append(f"{1000 * c + 900}\tshort\tline")  # wrong number of fields
        bad_lines.append(len(lines))
        lines.append(f"{1000 * c + 901}\tuser901\tx@example.org\tX\t0\t2015-02-30 10:00:00\t2015-02-01 00:00:00")  # no such day
        bad_lines.append(len(lines))
        _write(folder / f"{course}-auth_user-prod-analytics.sql", lines)
        expect["rows"][("auth_user", course)] = users
        expect["quarantined"][("auth_user", course)] = bad_lines
        # enrollments and certificates: typed numbers and booleans
        lines = ["id\tuser_id\tcourse_id\tcreated\tis_active\tmode"]
        for i in range(users):
            lines.append(
                f"{50000 + 1000 * c + i}\t{1000 * c + i}\t{course_id}\t{start + timedelta(hours=i * 7):%Y-%m-%d %H:%M:%S}\t{i % 3 != 0:d}\t{rnd.choice(['audit', 'verified', 'honor'])}"
            )
        _write(folder / f"{course}-student_courseenrollment-prod-analytics.sql", lines)
        expect["rows"][("student_courseenrollment", course)] = users
        lines = ["id\tuser_id\tcourse_id\tgrade\tstatus\tcreated_date"]
        for i in range(0, users, 2):
            lines.append(f"{70000 + 1000 * c + i}\t{1000 * c + i}\t{course_id}\t{rnd.random():.4f}\tdownloadable\t2015-03-31 12:00:00")
        _write(folder / f"{course}-certificates_generatedcertificate-prod-analytics.sql", lines)
        expect["rows"][("certificates_generatedcertificate", course)] = users // 2
    return expect


def _write(path: Path, lines: list[str]) -> None:
    path.write_bytes(("\n".join(lines) + "\n").encode("utf-8"))


def _norm(value: Any) -> Any:
    return round(value, 6) if isinstance(value, float) else value


def dump(
    settings: Settings,
    tables: list[str],
    skip: tuple[str, ...] = ("loaded_at", "registered_at", "started_at", "finished_at", "first_seen", "reason"),
) -> dict[str, list[tuple]]:
    """Every row of each table (columns in order, floats rounded to 6 places), sorted."""
    wh = connect(settings, read_only=True)
    try:
        result = {}
        for table in tables:  # `edx.x`: the raw edX table x, in the warehouse's raw schema
            raw = table.startswith("edx.")
            name, schema = table.removeprefix("edx."), wh.raw_schema if raw else None
            cols = [c for c in wh.columns(name, schema=schema) if c not in skip]
            rows = wh.query(f"SELECT {', '.join(wh.quote(c) for c in cols)} FROM {raw_table(wh, name) if raw else wh.quote(name)}")
            result[table] = sorted((tuple(_norm(v) for v in r) for r in rows), key=repr)
        return result
    finally:
        wh.close()


DB_STATE_TABLES = [
    "edx.auth_user",
    "edx.student_courseenrollment",
    "edx.certificates_generatedcertificate",
    "db_state_loads",
    "db_state_quarantine",
]
LEDGER = ["ingest_files", "course_ids", "schema_info"]


def _others() -> list[str]:
    """Every service but DatabaseState: these tests are about the framework and the raw tables
    (the derived services' tables are compared across backends in their own tests)."""
    from optimus.services import load_services

    return [name for name in load_services() if name != "DatabaseState"]


def _extra_env(settings: Settings) -> dict[str, str]:
    """The settings conftest's settings_env leaves out."""
    return {"OPTIMUS_IGNORED_SERVICES": json.dumps(settings.ignored_services), "OPTIMUS_WAREHOUSE_SCHEMA": settings.warehouse_schema}


@pytest.fixture
def run(cli):
    """`optimus ARGS` with every setting of `settings`."""
    return lambda args, settings: cli(args, settings, env=_extra_env(settings))


def duck_settings(settings_for, data: Path) -> Settings:
    return settings_for(data, ignored_services=_others())


def pg_settings(settings_for, data: Path, url: str) -> Settings:
    return settings_for(data, warehouse=url, ignored_services=_others())


def test_database_state_on_postgres_equals_duckdb(data_path, settings_for, run, pg_url) -> None:
    expect = write_package(data_path)
    duck = duck_settings(settings_for, data_path)
    pg = pg_settings(settings_for, data_path, pg_url)
    for settings in (duck, pg):
        result = run(["ingest"], settings)
        assert result.exit_code == 0, result.output
    on_duck = dump(duck, DB_STATE_TABLES)
    on_pg = dump(pg, DB_STATE_TABLES)
    for table in DB_STATE_TABLES:
        assert on_pg[table] == on_duck[table], table
    assert on_pg["edx.auth_user"]  # not trivially equal
    # the rows and quarantined lines are the ones the package holds
    for (table, course), n in expect["rows"].items():
        key = course.replace("-", "+")
        assert query_rows(pg, f"SELECT count(*) FROM edx.{table} WHERE course_key = ?", [key]) == [(n,)]
    for (table, course), lines in expect["quarantined"].items():
        got = [
            r[0] for r in query_rows(pg, "SELECT line FROM db_state_quarantine WHERE path LIKE ? ORDER BY line", [f"%{course}-{table}-%"])
        ]
        assert got == lines
    names = {r[0] for r in query_rows(pg, "SELECT first_name FROM edx.auth_user")}
    assert any("\t" in n for n in names) and any("\n" in n for n in names) and any("\\" in n for n in names)
    assert query_rows(pg, "SELECT max(version) FROM schema_info") == [(schema.SCHEMA_VERSION,)]
    assert query_rows(pg, "SELECT count(*) FROM edx.auth_user WHERE last_login IS NULL") == [(2 * len(range(0, 60, 5)),)]
    # a second ingest does nothing
    again = run(["ingest"], pg)
    assert again.exit_code == 0, again.output
    assert "nothing to do" in again.output
    assert dump(pg, DB_STATE_TABLES) == on_pg


def test_schema_version_is_migrated_and_a_newer_one_refused(data_path, settings_for, run, pg_url, monkeypatch) -> None:
    write_package(data_path, users=5)
    pg = pg_settings(settings_for, data_path, pg_url)
    assert run(["ingest"], pg).exit_code == 0
    # an Optimus one version newer adds a table: the older warehouse is migrated, its data kept
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS + [["CREATE TABLE extra_v2 (a DOUBLE PRECISION, b JSON)"]])
    monkeypatch.setattr(schema, "SCHEMA_VERSION", schema.SCHEMA_VERSION + 1)
    wh = connect(pg)
    try:
        assert schema.current_version(wh) == schema.SCHEMA_VERSION - 1
        assert schema.ensure(wh) == schema.SCHEMA_VERSION
        assert wh.table_exists("extra_v2") and wh.columns("extra_v2") == ["a", "b"]
        assert wh.scalar("SELECT max(version) FROM schema_info") == schema.SCHEMA_VERSION
        assert wh.scalar("SELECT count(*) FROM edx.auth_user") == 10
        wh.execute("INSERT INTO schema_info (version) VALUES (?)", [schema.SCHEMA_VERSION + 5])
    finally:
        wh.close()
    monkeypatch.undo()
    refused = run(["ingest"], pg)
    assert refused.exit_code != 0
    assert "newer than this Optimus" in refused.output


def _subprocess_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTIMUS_")}
    env.update(settings_env(settings))
    env.update(_extra_env(settings))
    env.update(extra)
    return env


def _optimus(*args: str) -> list[str]:
    return [sys.executable, "-c", "from optimus.cli import app; app()", *args]


def _wait_for(path: Path, proc: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the ingest ended before pausing: {proc.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError("the ingest never reached the pause")
        time.sleep(0.1)


def test_killed_ingest_ends_like_an_uninterrupted_one(data_path, settings_for, run, pg_url, pg_server, tmp_path) -> None:
    write_package(data_path)
    pg = pg_settings(settings_for, data_path, pg_url)
    marker = tmp_path / "paused"
    proc = subprocess.Popen(
        _optimus("ingest"),
        env=_subprocess_env(pg, OPTIMUS_TEST_PAUSE_AFTER_ROWS="1", OPTIMUS_TEST_PAUSE_MARKER=str(marker)),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(marker, proc)
        # while it holds the writer's lock: a second writer is refused clearly, readers read
        second = run(["ingest"], pg)
        assert second.exit_code != 0
        assert "being written by another Optimus process" in second.output
        status = run(["status", "--json"], pg)
        assert status.exit_code == 0, status.output
        assert '"running": 1' in status.output
        wh = connect(pg, read_only=True)
        try:  # the paused file's rows are not visible: the table it is creating does not exist yet
            assert not wh.table_exists("auth_user", schema=wh.raw_schema) and not wh.table_exists(
                "student_courseenrollment", schema=wh.raw_schema
            )
        finally:
            wh.close()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    resumed = run(["ingest"], pg)
    assert resumed.exit_code == 0, resumed.output
    assert "interrupted run were queued again" in resumed.output
    # an uninterrupted ingest of the same data into a second database
    name = pg_url.rsplit("/", 1)[1][:55] + "_clean"
    clean = pg_settings(settings_for, data_path, create_database(pg_server, name))
    try:
        assert run(["ingest"], clean).exit_code == 0
        assert dump(pg, DB_STATE_TABLES) == dump(clean, DB_STATE_TABLES)
        states = dump(pg, ["ingest_files"], skip=("registered_at", "started_at", "finished_at", "attempts", "run_id", "note"))
        assert states == dump(clean, ["ingest_files"], skip=("registered_at", "started_at", "finished_at", "attempts", "run_id", "note"))
    finally:
        drop_database(pg_server, name)


def test_copy_then_ingest_ingests_nothing(data_path, settings_for, run, pg_url) -> None:
    write_package(data_path)
    duck = duck_settings(settings_for, data_path)
    assert run(["ingest"], duck).exit_code == 0
    copied = run(["copy", "--to", pg_url], duck)
    assert copied.exit_code == 0, copied.output
    pg = pg_settings(settings_for, data_path, pg_url)
    after = run(["ingest"], pg)
    assert after.exit_code == 0, after.output
    assert "nothing to do" in after.output
    tables = DB_STATE_TABLES + LEDGER + ["service_runs", "service_run_changes"]
    assert dump(pg, tables, skip=()) == dump(duck, tables, skip=())
    # ids continue after the copied ones
    wh = connect(pg)
    try:
        top = wh.scalar("SELECT max(id) FROM service_runs")
        new = wh.scalar(
            "INSERT INTO service_runs (service, started_at, status, rules_version) VALUES ('x', ?, 'ok', 1) RETURNING id",
            [datetime(2020, 1, 1)],
        )
        assert new == top + 1
    finally:
        wh.close()
    # a second copy into the same schema is refused
    again = run(["copy", "--to", pg_url], duck)
    assert again.exit_code != 0 and "already holds a warehouse" in again.output


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_connection_problems_are_clear(data_path, settings_for, run, pg_server) -> None:
    down = settings_for(data_path, warehouse=f"postgresql://postgres@127.0.0.1:{_free_port()}/optimus")
    result = run(["status"], down)
    assert result.exit_code != 0
    assert "cannot reach the server" in result.output and "Traceback" not in result.output
    missing = settings_for(data_path, warehouse=with_database(pg_server, "optimus_no_such_database_h8"))
    result = run(["ingest"], missing)
    assert result.exit_code != 0
    assert "database 'optimus_no_such_database_h8' does not exist" in result.output


def test_wrong_password_is_clear(data_path, settings_for, run, pg_server, pg_url) -> None:
    """A role with a password, on a server whose local connections trust everyone, is still refused
    when the server asks: use a role that may not log in to get a real refusal from the server."""
    name = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_server, autocommit=True) as con:
        con.execute(f'DROP ROLE IF EXISTS "{name}_nologin"')
        con.execute(f"CREATE ROLE \"{name}_nologin\" NOLOGIN PASSWORD 'secret'")
    try:
        parts = urlsplit(pg_url)
        url = urlunsplit(parts._replace(netloc=f"{name}_nologin:Pw-9f3k2@{parts.hostname}:{parts.port or 5432}"))
        result = run(["status"], settings_for(data_path, warehouse=url))
        assert result.exit_code != 0
        assert "Pw-9f3k2" not in result.output  # the password is never printed
        assert "refused the login" in result.output or "not permitted to log in" in result.output
    finally:
        with psycopg.connect(pg_server, autocommit=True) as con:
            con.execute(f'DROP ROLE IF EXISTS "{name}_nologin"')


def _sql_tables(data: Path) -> dict[str, int]:
    """Per edX table, the data lines of its .sql files, counted here in plain Python."""
    counts: dict[str, int] = {}
    for path in (data / "database_state" / "latest").rglob("*.sql"):
        table = path.name.split("-")[-3]
        lines = [ln for ln in path.read_bytes().split(b"\n")[1:] if ln]
        counts[table] = counts.get(table, 0) + len(lines)
    return counts


def test_sample_package_database_state_equal_on_both_backends(tmp_path, settings_for, run, pg_url) -> None:
    from optimus.sample import generate

    data = tmp_path / "sample"
    generate(data, courses=2, learners=25, days=2, seed=3)
    duck = duck_settings(settings_for, data)
    pg = pg_settings(settings_for, data, pg_url)
    for settings in (duck, pg):
        result = run(["ingest"], settings)
        assert result.exit_code == 0, result.output
    tables = sorted({r[0] for r in query_rows(pg, "SELECT table_name FROM db_state_loads")})
    assert "auth_user" in tables and "student_courseenrollment" in tables
    expected = _sql_tables(data)
    raw = [f"edx.{t}" for t in tables]
    on_pg = dump(pg, raw + ["db_state_loads", "db_state_quarantine", "course_ids"])
    assert on_pg == dump(duck, raw + ["db_state_loads", "db_state_quarantine", "course_ids"])
    quarantined = {t: 0 for t in tables}
    for row in on_pg["db_state_quarantine"]:
        quarantined[row[1].split("-")[-3]] += 1
    for table in tables:  # every line of every file is either a row or in quarantine
        assert len(on_pg[f"edx.{table}"]) + quarantined[table] == expected[table], table


def test_backend_fixture_gives_each_backend(backend, data_path, settings_for, run) -> None:
    """The `backend` parametrisation other tests use: the same test body, on DuckDB and on PostgreSQL."""
    write_package(data_path, users=4)
    settings = settings_for(data_path, ignored_services=_others(), **backend)
    assert run(["ingest"], settings).exit_code == 0
    wh = connect(settings, read_only=True)
    try:
        assert wh.sql.name == ("postgres" if backend else "duckdb")
        assert wh.scalar("SELECT count(*) FROM edx.auth_user") == 8
    finally:
        wh.close()


def test_shared_spellings_run_on_postgres_and_duckdb_only_ones_fail(pg_url, settings_for, data_path) -> None:
    """`?` outside quotes, `%`, DOUBLE PRECISION, DROP + CREATE TEMP TABLE and try_cast_sql, as services write
    them; DuckDB's own `DOUBLE` and `CREATE OR REPLACE TABLE` fail on PostgreSQL, never rewritten."""
    wh = connect(settings_for(data_path, warehouse=pg_url))
    try:
        wh.execute("CREATE TABLE spell (a VARCHAR, b DOUBLE PRECISION, c VARCHAR)")
        wh.execute("INSERT INTO spell VALUES (?, ?, '?%'), ('x?', CAST('2.5' AS DOUBLE PRECISION), ?)", ["50%", 0.5, "it's"])
        assert wh.query("SELECT a, b, c FROM spell WHERE a LIKE '%\\%' ESCAPE '\\' OR a = 'x?' ORDER BY b") == [
            ("50%", 0.5, "?%"),
            ("x?", 2.5, "it's"),
        ]
        for column in ("only_temp", "only_temp2"):
            wh.execute("DROP TABLE IF EXISTS pg_temp.spell")
            wh.execute(f"CREATE TEMP TABLE spell ({column} INTEGER)")
        assert wh.columns("spell") == ["only_temp2"]  # the temp table, replaced ...
        assert wh.scalar(f"SELECT count(*) FROM {wh.quote(wh.schema)}.spell") == 2  # ... the schema's table untouched
        with pytest.raises(psycopg.errors.SyntaxError):
            wh.execute("CREATE OR REPLACE TEMP TABLE spell (only_temp3 INTEGER)")
        with pytest.raises(psycopg.errors.UndefinedObject, match='type "double" does not exist'):
            wh.execute("CREATE TABLE doubled (x DOUBLE)")
        assert wh.columns("spell") == ["only_temp2"] and not wh.table_exists("doubled")
        cast = wh.try_cast_sql("v", "TIMESTAMP")
        got = wh.query(f"SELECT {cast} FROM (VALUES ('2024-02-29 10:00:00'), ('2023-02-29 10:00:00'), ('x'), (NULL)) t(v)")
        assert [r[0] for r in got] == [datetime(2024, 2, 29, 10), None, None, None]
        assert wh.scalar(f"SELECT {wh.try_cast_sql(chr(39) + '99999999999999999999' + chr(39), 'BIGINT')}") is None
        assert wh.scalar(f"SELECT {wh.try_cast_sql(chr(39) + '1e3' + chr(39), 'DOUBLE')}") == 1000.0
    finally:
        wh.close()
