"""Untrusted SQL on PostgreSQL reaches nothing but the warehouse (issue 13, item 2).

Each attack runs as an attacker with the API token would run it, with the SQLGlot filter of
api/sql.py bypassed, so that what is tested is PostgreSQL's own refusal: the query logs in as the
reader role, which may only SELECT the Optimus schema and the raw edX schema, in a READ ONLY
transaction that is always rolled back. A canary file holding a random token sits where the
server could read it (the admin reads it, as a control); no attack may return the token, write
a file, change a table or leave anything behind on the connection.
"""

from __future__ import annotations

import os
import re
import resource
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from fastapi.testclient import TestClient

import optimus.api.sql
from optimus.api.app import create_app
from optimus.api.state import ReadViews
from optimus.config import Settings
from optimus.errors import OptimusError, QueryRefused, WarehouseError
from optimus.warehouse import connect
from optimus.warehouse.base import QUERY_MAX_BYTES
from optimus.warehouse.postgres import lock_key, reader_role_name
from postgres_server import create_database, drop_database

pytestmark = pytest.mark.postgres

TOKEN = "attack-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
KEPT_ROWS = 3
CAP = {"max_rows": 1000, "max_bytes": 1_000_000, "timeout": 10.0}


# -- the scene --------------------------------------------------------------------------------------
class Canary:
    """A random token in a file the server's own user can read, in a folder it could write to."""

    def __init__(self) -> None:
        self.token = secrets.token_hex(16)  # the file's content
        self.name_token = secrets.token_hex(16)  # in the file's name, for listings of the folder
        self.folder = Path(tempfile.mkdtemp(prefix="optimus-canary-"))
        os.chmod(self.folder, 0o777)  # the server runs as another user: let it read (and, if it may, write) here
        self.file = self.folder / f"canary-{self.name_token}.txt"
        self.file.write_text(f"secret {self.token}\n")
        os.chmod(self.file, 0o644)
        self.written = self.folder / "written-by-attack"

    def fill(self, text: str) -> str:
        return text.format(canary=self.file, folder=self.folder, out=self.written)

    def leaked(self, said: str, sql: str) -> bool:
        """The content anywhere, or the file's name where the query did not give it (an error may quote the query)."""
        return self.token in said or (self.name_token not in sql and self.name_token in said)

    def cleanup(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


@pytest.fixture
def canary() -> Iterator[Canary]:
    c = Canary()
    yield c
    c.cleanup()


@pytest.fixture
def scene(pg_url: str, pg_server: str, tmp_path: Path, canary: Canary) -> Iterator[dict[str, Any]]:
    """An Optimus warehouse on PostgreSQL (opened by its writer, which makes the reader role) with a
    table `kept` and a sequence; secrets beside it that the reader was not granted; a reader."""
    settings = Settings(
        data_paths=[tmp_path], warehouse=pg_url, api_token=TOKEN, export_path=tmp_path / "exports", www_path=tmp_path / "www"
    )
    writer = connect(settings)
    writer.execute("CREATE TABLE kept (n BIGINT)")
    writer.execute(f"INSERT INTO kept SELECT generate_series(1, {KEPT_ROWS})")
    writer.execute("CREATE SEQUENCE kept_seq")
    with psycopg.connect(pg_url, autocommit=True) as admin:  # what the reader was not granted
        admin.execute("CREATE SCHEMA other")
        admin.execute("CREATE TABLE other.secret AS SELECT %s::text AS token", [canary.token])
        admin.execute("CREATE TABLE public.secret AS SELECT %s::text AS token", [canary.token])
    reader = connect(settings, read_only=True)
    try:
        yield {"settings": settings, "writer": writer, "reader": reader, "url": pg_url}
    finally:
        reader.close()
        writer.close()


def refused_or_harmless(run: Callable[[], Any], canary: Canary, sql: str = "") -> str:
    """Run one attack (the query `sql`): it must be refused by the engine or return nothing of the
    canary. Returns what it said, for further checks."""
    try:
        said = repr(run())
    except (OptimusError, psycopg.Error) as exc:
        said = f"refused: {exc}"
    assert not canary.leaked(said, sql), said
    assert not canary.written.exists(), f"the attack wrote {canary.written}"
    return said


def nothing_changed(writer: Any, names_before: set[str]) -> None:
    assert writer.scalar("SELECT count(*) FROM kept") == KEPT_ROWS
    assert writer.scalar("SELECT last_value FROM kept_seq") == 1 and not writer.scalar("SELECT is_called FROM kept_seq")
    assert tables_of(writer) == names_before


def tables_of(wh: Any) -> set[str]:
    return {
        f"{s}.{t}"
        for s, t in wh.query("SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')")
    }


# -- the attacks ------------------------------------------------------------------------------------
READS = {
    "pg_read_file": "SELECT pg_read_file('{canary}')",
    "pg_read_file, 3-argument form": "SELECT pg_read_file('{canary}', 0, 100, true)",
    "pg_read_binary_file": "SELECT encode(pg_read_binary_file('{canary}'), 'escape')",
    "pg_ls_dir": "SELECT string_agg(f, ',') FROM pg_ls_dir('{folder}') f",
    "pg_stat_file": "SELECT pg_stat_file('{canary}')",
    "lo_import": "SELECT lo_import('{canary}')",
    "lo_get of lo_import": "SELECT encode(lo_get(lo_import('{canary}')), 'escape')",
    "COPY FROM file": "COPY kept FROM '{canary}'",
    "COPY FROM PROGRAM": "COPY kept FROM PROGRAM 'cat {canary}'",
    "query_to_xml over pg_read_file": "SELECT query_to_xml('select pg_read_file(''{canary}'') f', true, false, '')",
    "query_to_xml over pg_ls_dir": "SELECT query_to_xml('select pg_ls_dir(''{folder}'') f', true, false, '')",
    "query_to_xml over lo_import": "SELECT query_to_xml('select encode(lo_get(lo_import(''{canary}'')), ''escape'') f', true, false, '')",
    "query_to_xml over COPY FROM PROGRAM": "SELECT query_to_xml('copy kept from program ''cat {canary}''', true, false, '')",
    "table_to_xml of another schema": "SELECT table_to_xml('other.secret', true, false, '')",
    "table_to_xml of the password hashes": "SELECT table_to_xml('pg_catalog.pg_authid', true, false, '')",
    "cursor_to_xml of an unnamed portal": "SELECT cursor_to_xml('<unnamed portal 1>'::refcursor, 10, true, false, '')",
    "another schema": "SELECT token FROM other.secret",
    "the public schema": "SELECT token FROM public.secret",
    "another database": "SELECT * FROM postgres.public.secret",
    "the reader's password": "SELECT * FROM optimus_private.reader_login",
    "password hashes": "SELECT rolname, rolpassword FROM pg_authid",
    "server settings file": "SELECT pg_read_file(current_setting('config_file'))",
}

WRITES = {
    "COPY TO file": "COPY (SELECT 'owned') TO '{out}'",
    "COPY TO PROGRAM": "COPY (SELECT 1) TO PROGRAM 'touch {out}'",
    "query_to_xml over COPY TO PROGRAM": "SELECT query_to_xml('copy (select 1) to program ''touch {out}''', true, false, '')",
    "lo_from_bytea + lo_export in query_to_xml": "SELECT query_to_xml('select lo_export(lo_from_bytea(0, ''owned''), ''{out}'') f', true, false, '')",
    "lo_from_bytea + lo_export": "SELECT lo_export(lo_from_bytea(0, 'owned'), '{out}')",
    "INSERT": "INSERT INTO kept VALUES (42)",
    "INSERT in a WITH": "WITH w AS (INSERT INTO kept VALUES (42) RETURNING n) SELECT * FROM w",
    "DELETE in a WITH": "WITH w AS (DELETE FROM kept RETURNING n) SELECT * FROM w",
    "UPDATE": "UPDATE kept SET n = 0",
    "SELECT INTO": "SELECT * INTO stolen FROM kept",
    "CREATE TABLE": "CREATE TABLE stolen (n int)",
    "CREATE TABLE in public": "CREATE TABLE public.stolen (n int)",
    "CREATE TEMP TABLE": "CREATE TEMP TABLE stolen (n int)",
    "CREATE TEMP TABLE AS": "CREATE TEMP TABLE stolen AS SELECT 1",
    "nextval": "SELECT nextval('kept_seq')",
    "setval": "SELECT setval('kept_seq', 99)",
    "two statements": "SELECT 1; DELETE FROM kept",
    "commit and write": "SELECT 1; COMMIT; INSERT INTO kept VALUES (42)",
    "CREATE EXTENSION dblink": "CREATE EXTENSION IF NOT EXISTS dblink",
    "TRUNCATE": "TRUNCATE kept",
    "DROP": "DROP TABLE kept",
}

SESSION = {
    "set_config default_transaction_read_only": "SELECT set_config('default_transaction_read_only', 'off', false)",
    "set_config transaction_read_only": "SELECT set_config('transaction_read_only', 'off', false)",
    "set_config role to the writer": "SELECT set_config('role', '{writer}', false)",
    "set_config role to postgres": "SELECT set_config('role', 'postgres', false)",
    "set_config session_authorization": "SELECT set_config('session_authorization', 'postgres', false)",
    "SET ROLE": "SET ROLE postgres",
    "RESET ROLE": "RESET ROLE",
    "SET SESSION AUTHORIZATION": "SET SESSION AUTHORIZATION postgres",
    "search_path moved": "SELECT set_config('search_path', 'other', false)",
}


def attempt(reader: Any, sql: str) -> Any:
    return reader.read_only_query(sql, **CAP)


@pytest.mark.parametrize("name", sorted(READS))
def test_reads_outside_the_warehouse_are_refused(scene: dict, canary: Canary, name: str) -> None:
    sql = canary.fill(READS[name])
    refused_or_harmless(lambda: attempt(scene["reader"], sql), canary, sql)
    # the plain read view (what the API's read endpoints and `optimus status` use) is the reader too
    refused_or_harmless(lambda: scene["reader"].query(sql), canary, sql)


def test_the_canary_is_readable_by_a_superuser(scene: dict, canary: Canary) -> None:
    """The control: the server could read the canary, so a refusal above is the role's doing."""
    with psycopg.connect(scene["url"], autocommit=True) as admin:
        assert canary.token in admin.execute(f"SELECT pg_read_file('{canary.file}')").fetchone()[0]


@pytest.mark.parametrize("name", sorted(WRITES))
def test_writes_are_refused_and_change_nothing(scene: dict, canary: Canary, name: str) -> None:
    before = tables_of(scene["writer"])
    sql = canary.fill(WRITES[name])
    refused_or_harmless(lambda: attempt(scene["reader"], sql), canary, sql)
    nothing_changed(scene["writer"], before)
    assert not scene["writer"].scalar("SELECT count(*) FROM pg_extension WHERE extname = 'dblink'")
    assert not scene["writer"].scalar("SELECT count(*) FROM pg_largeobject_metadata")


def test_statements_other_than_one_select_are_refused_as_such(scene: dict) -> None:
    for sql in (
        "INSERT INTO kept VALUES (42)",
        "SELECT 1; SELECT 2",
        "SET ROLE postgres",
        "WITH w AS (DELETE FROM kept RETURNING n) SELECT * FROM w",
    ):
        with pytest.raises(QueryRefused):
            attempt(scene["reader"], sql)


@pytest.mark.parametrize("name", sorted(SESSION))
def test_session_changes_are_refused_or_do_not_last(scene: dict, canary: Canary, name: str) -> None:
    reader = scene["reader"]
    writer_role = scene["writer"].scalar("SELECT current_user")
    sql = SESSION[name].format(writer=writer_role)
    refused_or_harmless(lambda: attempt(reader, sql), canary, sql)
    # the next query on that connection runs as the reader, read only, with Optimus's session
    answer = attempt(
        reader,
        "SELECT current_user, session_user, current_setting('transaction_read_only'), "
        "current_setting('default_transaction_read_only'), current_setting('search_path')",
    )
    user, session_user, read_only, default_read_only, search_path = answer.rows[0]
    assert user == session_user == reader.scalar("SELECT current_user") != writer_role
    assert (read_only, default_read_only) == ("on", "on")
    assert search_path.strip('"') == "optimus"
    with pytest.raises((WarehouseError, psycopg.Error)):
        reader.execute("INSERT INTO kept VALUES (42)")


def test_the_reader_role_can_only_read(scene: dict) -> None:
    """What the role may do, checked in the catalogue (the test server trusts every login, so
    passwords are not what is tested): no superuser, no role or database making, no server files,
    no CREATE or write privilege anywhere in the database, SELECT on the Optimus tables."""
    reader, writer = scene["reader"], scene["writer"]
    role = reader.scalar("SELECT current_user")
    assert role == reader_role_name(writer.scalar("SELECT current_database()"), "optimus")
    assert role != writer.scalar("SELECT current_user")
    flags = writer.query(
        "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls, rolreplication, rolinherit FROM pg_roles WHERE rolname = ?", [role]
    )
    assert flags == [(False, False, False, False, False, False)]
    assert writer.scalar("SELECT count(*) FROM pg_auth_members WHERE member = ?::regrole", [role]) == 0  # member of no role
    for schema in ("optimus", writer.raw_schema, "public", "other", "optimus_private"):
        assert not writer.scalar("SELECT has_schema_privilege(?, ?, 'CREATE')", [role, schema]), schema
    assert writer.scalar("SELECT has_schema_privilege(?, ?, 'USAGE')", [role, writer.raw_schema])
    assert not writer.scalar("SELECT has_schema_privilege(?, 'optimus_private', 'USAGE')", [role])
    assert writer.scalar("SELECT has_table_privilege(?, 'optimus.kept', 'SELECT')", [role])
    for privilege in ("INSERT", "UPDATE", "DELETE", "TRUNCATE"):
        assert not writer.scalar(f"SELECT has_table_privilege(?, 'optimus.kept', '{privilege}')", [role])
    assert not writer.scalar("SELECT has_sequence_privilege(?, 'optimus.kept_seq', 'USAGE')", [role])
    assert not writer.scalar("SELECT has_database_privilege(?, current_database(), 'CREATE')", [role])
    # a table made later (the pipeline makes tables as it goes) is readable too: default privileges
    writer.execute("CREATE TABLE later (n int)")
    writer.execute(f"CREATE TABLE {writer.quote(writer.raw_schema)}.auth_user_later (n int)")
    assert reader.query("SELECT count(*) FROM later") == [(0,)]
    assert reader.query(f"SELECT count(*) FROM {reader.quote(reader.raw_schema)}.auth_user_later") == [(0,)]


def test_the_reader_cannot_read_another_database_it_logs_into(scene: dict, pg_server: str, canary: Canary) -> None:
    other = f"{scene['url'].rsplit('/', 1)[1][:40]}_other"
    other_url = create_database(pg_server, other)
    try:
        with psycopg.connect(other_url, autocommit=True) as admin:
            admin.execute("CREATE TABLE public.secret AS SELECT %s::text AS token", [canary.token])
        role = scene["reader"].scalar("SELECT current_user")
        parts = urlsplit(other_url)
        as_reader = urlunsplit(parts._replace(netloc=f"{role}@{parts.hostname}:{parts.port or 5432}"))
        with psycopg.connect(as_reader, autocommit=True) as con:
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                con.execute("SELECT token FROM public.secret")
    finally:
        drop_database(pg_server, other)


def test_dblink_cannot_log_in_elsewhere(scene: dict, canary: Canary) -> None:
    """With dblink installed by an admin, the reader still cannot open a connection with it:
    PostgreSQL refuses a non-superuser's connection that is not authenticated by a password."""
    with psycopg.connect(scene["url"], autocommit=True) as admin:
        admin.execute("CREATE EXTENSION IF NOT EXISTS dblink")
    parts = urlsplit(scene["url"])
    conninfo = f"host={parts.hostname} port={parts.port or 5432} dbname={parts.path.lstrip('/')} user=postgres"
    for sql in (
        f"SELECT * FROM dblink('{conninfo}', 'select pg_read_file(''{canary.file}'')') AS t(f text)",
        f"SELECT dblink_exec('{conninfo}', 'insert into optimus.kept values (42)')",
        f"SELECT dblink_connect('{conninfo}')",
    ):
        said = refused_or_harmless(lambda sql=sql: attempt(scene["reader"], sql), canary, sql)
        assert said.startswith("refused"), said
    nothing_changed(scene["writer"], tables_of(scene["writer"]))


def test_a_session_advisory_lock_does_not_outlive_the_query(scene: dict) -> None:
    """DISCARD ALL after each query lets go of a session lock the query took: an attacker cannot
    hold the writer's lock and so stop the next ingest."""
    key = lock_key("optimus")
    scene["writer"].close()
    attempt(scene["reader"], f"SELECT pg_advisory_lock({key})")
    writer = connect(scene["settings"])  # would raise WarehouseLocked if the lock were still held
    writer.close()


def test_the_writer_cannot_be_cancelled_or_terminated(scene: dict, canary: Canary) -> None:
    writer = scene["writer"]
    pid = writer.scalar("SELECT pg_backend_pid()")
    for sql in (f"SELECT pg_terminate_backend({pid})", f"SELECT pg_cancel_backend({pid})"):
        refused_or_harmless(lambda sql=sql: attempt(scene["reader"], sql), canary, sql)
    assert writer.scalar("SELECT pg_backend_pid()") == pid


def test_a_query_past_the_timeout_is_stopped(scene: dict) -> None:
    for sql in (
        "SELECT pg_sleep(60)",
        # a query that turns statement_timeout off for itself, then sleeps in a later fetch
        "SELECT set_config('statement_timeout', '0', false), pg_sleep(CASE WHEN n > 2 THEN 60 ELSE 0 END) FROM generate_series(1, 5) n",
        "SELECT set_config('statement_timeout', '0', true), pg_sleep(CASE WHEN n > 2 THEN 60 ELSE 0 END) FROM generate_series(1, 5) n",
    ):
        started = time.monotonic()
        with pytest.raises(WarehouseError, match="(?i)timeout|cancel"):
            scene["reader"].read_only_query(sql, max_rows=100, max_bytes=1_000_000, timeout=1.0)
        assert time.monotonic() - started < 6, sql
    assert attempt(scene["reader"], "SELECT count(*) FROM kept").rows == [(KEPT_ROWS,)]  # the connection is fine


def test_a_huge_answer_is_cut_in_bytes_and_never_fetched_whole(scene: dict) -> None:
    """2,000 rows of 1 MB: the answer stops at about max_bytes, having fetched little more."""
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    started = time.monotonic()
    answer = scene["reader"].read_only_query(
        "SELECT repeat('x', 1000000) AS big FROM generate_series(1, 2000)", max_rows=10_000, max_bytes=5_000_000, timeout=60
    )
    assert time.monotonic() - started < 20
    assert answer.truncated and answer.columns == ["big"]
    assert 1 <= len(answer.rows) <= 5 and all(len(r[0]) == 1_000_000 for r in answer.rows)
    assert re.search(r"\bbytes?\b", answer.note or ""), answer.note
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before < 400_000  # far less than 2 GB
    assert attempt(scene["reader"], "SELECT count(*) FROM kept").rows == [(KEPT_ROWS,)]


def test_an_answer_is_cut_at_max_rows_with_a_note(scene: dict) -> None:
    answer = scene["reader"].read_only_query(
        "SELECT n FROM generate_series(1, 100000) n ORDER BY n", max_rows=250, max_bytes=10_000_000, timeout=30
    )
    assert answer.truncated and [r[0] for r in answer.rows] == list(range(1, 251))
    assert "250 rows" in (answer.note or "")
    whole = scene["reader"].read_only_query("SELECT n FROM kept ORDER BY n", max_rows=250, max_bytes=10_000_000, timeout=30)
    assert not whole.truncated and whole.note is None and whole.rows == [(1,), (2,), (3,)] and whole.columns == ["n"]


def test_issue_13_item_2_exactly(scene: dict, canary: Canary) -> None:
    """The three queries of the issue, verbatim, on the reader."""
    for sql in (
        "SELECT query_to_xml('select pg_read_file(''/etc/passwd'') f', true, false, '')",
        "SELECT query_to_xml('select lo_export(lo_from_bytea(0, ''x''), ''/tmp/optimus-issue-13-item-2'') f', true, false, '')",
    ):
        with pytest.raises((WarehouseError, psycopg.Error)) as refused:
            attempt(scene["reader"], sql)
        assert "root:" not in str(refused.value)
    assert not Path("/tmp/optimus-issue-13-item-2").exists()
    said = refused_or_harmless(lambda: attempt(scene["reader"], "SELECT set_config('default_transaction_read_only','off', false)"), canary)
    with pytest.raises((WarehouseError, psycopg.Error)):
        scene["reader"].execute("INSERT INTO kept VALUES (1)")
    assert said


def test_a_writer_read_only_query_logs_in_as_the_reader(scene: dict, canary: Canary) -> None:
    """read_only_query on the writer's warehouse (the daemon's) does not run as the writer."""
    writer = scene["writer"]
    answer = writer.read_only_query("SELECT current_user", **CAP)
    assert answer.rows[0][0] == scene["reader"].scalar("SELECT current_user") != writer.scalar("SELECT current_user")
    sql = canary.fill(READS["query_to_xml over pg_read_file"])
    refused_or_harmless(lambda: writer.read_only_query(sql, **CAP), canary, sql)
    reader = writer.reader()
    try:
        assert reader.scalar("SELECT current_user") == answer.rows[0][0]
    finally:
        reader.close()


def test_role_names_are_per_database_and_schema_and_fit_postgres(scene: dict, tmp_path: Path, canary: Canary) -> None:
    names = {
        reader_role_name("db", "optimus"),
        reader_role_name("db", "other"),
        reader_role_name("db2", "optimus"),
        reader_role_name("d" * 63, "s" * 63),
        reader_role_name("d" * 63, "s" * 62 + "t"),
    }
    assert len(names) == 5 and all(len(n.encode()) <= 63 and re.fullmatch(r"[a-z0-9_]+", n) for n in names)
    # a second Optimus schema in the same database has a reader of its own, which cannot read the first
    other = Settings(data_paths=[tmp_path], warehouse=scene["url"], warehouse_schema="second")
    writer = connect(other)
    writer.execute("CREATE TABLE mine (n int)")
    reader = connect(other, read_only=True)
    try:
        assert reader.scalar("SELECT current_user") != scene["reader"].scalar("SELECT current_user")
        assert reader.read_only_query("SELECT count(*) FROM mine", **CAP).rows == [(0,)]
        with pytest.raises((WarehouseError, psycopg.Error)):
            reader.read_only_query("SELECT * FROM optimus.kept", **CAP)
        with pytest.raises((WarehouseError, psycopg.Error)):
            scene["reader"].read_only_query("SELECT * FROM second.mine", **CAP)
    finally:
        reader.close()
        writer.close()


# -- when Optimus may not create roles --------------------------------------------------------------
@pytest.fixture
def plain_writer(pg_url: str) -> Iterator[str]:
    """A writer role that owns its schema but may not create roles (as on a managed server)."""
    name = f"w_{secrets.token_hex(6)}"
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f'CREATE ROLE "{name}" LOGIN')
        admin.execute(f'GRANT CREATE ON DATABASE "{pg_url.rsplit("/", 1)[1]}" TO "{name}"')
    parts = urlsplit(pg_url)
    try:
        yield urlunsplit(parts._replace(netloc=f"{name}@{parts.hostname}:{parts.port or 5432}"))
    finally:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(f'DROP OWNED BY "{name}"')
            admin.execute(f'DROP ROLE "{name}"')


def test_without_createrole_the_error_gives_the_statement_a_dba_runs(
    plain_writer: str, pg_url: str, tmp_path: Path, canary: Canary
) -> None:
    settings = Settings(data_paths=[tmp_path], warehouse=plain_writer)
    writer = connect(settings)  # ingest works without a reader
    writer.execute("CREATE TABLE kept (n BIGINT)")
    try:
        with pytest.raises(WarehouseError) as missing:
            connect(settings, read_only=True)
        message = str(missing.value)
        assert "warehouse_reader_url" in message and "CREATE ROLE" in message
        statement = message[message.index("CREATE ROLE") :].split("\n\n")[0]
        role = reader_role_name(pg_url.rsplit("/", 1)[1], "optimus")
        assert role in statement
        with psycopg.connect(pg_url, autocommit=True) as admin:  # the DBA runs it, choosing a password
            admin.execute(statement.replace("<password>", "Dba-chosen-1"))
        parts = urlsplit(pg_url)
        reader_url = urlunsplit(parts._replace(netloc=f"{role}:Dba-chosen-1@{parts.hostname}:{parts.port or 5432}"))
        settings.warehouse_reader_url = reader_url
        writer.close()
        writer = connect(settings)  # the writer grants what the reader may read
        reader = connect(settings, read_only=True)
        try:
            assert reader.scalar("SELECT current_user") == role
            assert reader.read_only_query("SELECT count(*) FROM kept", **CAP).rows == [(0,)]
            sql = canary.fill(READS["pg_read_file"])
            refused_or_harmless(lambda: reader.read_only_query(sql, **CAP), canary, sql)
        finally:
            reader.close()
    finally:
        writer.close()


def test_a_reader_url_that_logs_in_as_a_writer_is_refused(scene: dict) -> None:
    """warehouse_reader_url pointing at the writer (or any role that may write) defeats the point: refused."""
    settings = scene["settings"]
    settings.warehouse_reader_url = scene["url"]  # the superuser postgres
    with pytest.raises(WarehouseError, match="warehouse_reader_url"):
        connect(settings, read_only=True)


# -- the same through the API and the CLI ------------------------------------------------------------
@pytest.fixture
def api(scene: dict, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The real app over the reader views, with the SQLGlot filter bypassed."""
    monkeypatch.setattr(optimus.api.sql, "check", lambda sql, *args, **kwargs: sql)
    views = ReadViews(scene["settings"], scene["writer"], size=2)
    try:
        with TestClient(create_app(scene["settings"], views)) as client:
            yield client
    finally:
        views.close()


@pytest.mark.parametrize("name", sorted(READS) + sorted(WRITES))
def test_api_attacks_are_refused(scene: dict, api: TestClient, canary: Canary, name: str) -> None:
    before = tables_of(scene["writer"])
    sql = canary.fill({**READS, **WRITES}[name])
    answer = api.post("/api/v1/sql", json={"sql": sql, "limit": 100}, headers=AUTH)
    assert not canary.leaked(answer.text, sql) and answer.status_code in (400, 422), answer.text
    assert not canary.written.exists()
    nothing_changed(scene["writer"], before)


@pytest.mark.parametrize("name", sorted(SESSION))
def test_api_session_changes_do_not_last(scene: dict, api: TestClient, name: str) -> None:
    """Needs api/sql.py to call read_only_query (helper h1's change) for the settings a query may
    change for its own session (search_path, default_transaction_read_only): they must be rolled back."""
    writer_role = scene["writer"].scalar("SELECT current_user")
    answer = api.post("/api/v1/sql", json={"sql": SESSION[name].format(writer=writer_role)}, headers=AUTH)
    assert answer.status_code in (200, 400, 422), answer.text
    reader_role = scene["reader"].scalar("SELECT current_user")
    for _ in range(2):  # both read views of the pool
        state = api.post(
            "/api/v1/sql",
            headers=AUTH,
            json={
                "sql": "SELECT current_user AS u, current_setting('default_transaction_read_only') AS r, current_setting('search_path') AS p"
            },
        )
        assert state.json()["rows"] == [[reader_role, "on", "optimus"]], state.text


def test_api_issue_13_item_2_exactly(scene: dict, api: TestClient) -> None:
    answer = api.post(
        "/api/v1/sql", headers=AUTH, json={"sql": "SELECT query_to_xml('select pg_read_file(''/etc/passwd'') f', true, false, '')"}
    )
    assert answer.status_code == 400 and "root:" not in answer.text
    answer = api.get("/api/v1/sql", headers=AUTH, params={"q": "SELECT set_config('default_transaction_read_only','off', false)"})
    assert answer.status_code in (200, 400)
    assert api.get("/api/v1/sql", headers=AUTH, params={"q": "SELECT current_setting('default_transaction_read_only') r"}).json()[
        "rows"
    ] == [["on"]]


def test_api_huge_answer_is_capped(scene: dict, api: TestClient) -> None:
    """2,000 values of 1 MB: the answer stops at the byte cap (not the 10,000-row limit), in time."""
    started = time.monotonic()
    answer = api.post("/api/v1/sql", headers=AUTH, json={"sql": "SELECT repeat('x', 1000000) AS big FROM generate_series(1, 2000)"})
    assert answer.status_code == 200 and answer.json()["truncated"] and "byte" in answer.json()["note"]
    assert len(answer.content) < QUERY_MAX_BYTES + 2_000_000 and time.monotonic() - started < 30


def test_cli_sql_attacks_are_refused(scene: dict, canary: Canary, cli: Any) -> None:
    before = tables_of(scene["writer"])
    env = {"OPTIMUS_WAREHOUSE": scene["url"]}
    for sql in (
        READS["query_to_xml over pg_read_file"],
        READS["pg_read_file"],
        WRITES["lo_from_bytea + lo_export in query_to_xml"],
        WRITES["INSERT in a WITH"],
        SESSION["set_config role to postgres"],
    ):
        result = cli(["sql", canary.fill(sql)], env=env)
        assert result.exit_code != 0 and not canary.leaked(result.output, canary.fill(sql)), result.output
        assert not canary.written.exists()
    nothing_changed(scene["writer"], before)
    result = cli(["sql", "SELECT current_user AS who"], env=env)
    assert result.exit_code == 0 and scene["reader"].scalar("SELECT current_user") in result.output


def test_a_reader_url_must_name_a_postgresql_role(tmp_path: Path) -> None:
    from optimus.config import load
    from optimus.errors import ConfigError

    for bad in ("duckdb:///x.duckdb", "postgresql://db.example.org/optimus"):
        with pytest.raises(ConfigError, match="warehouse_reader_url"):
            load(env={"OPTIMUS_WAREHOUSE_READER_URL": bad})
    good = load(env={"OPTIMUS_WAREHOUSE_READER_URL": "postgresql://reader:pw@db.example.org/optimus"})
    assert good.warehouse_reader_url == "postgresql://reader:pw@db.example.org/optimus"
