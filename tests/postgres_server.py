"""A pytest plugin giving tests a real PostgreSQL server (never a mock, never a skip).

The server is, in order: the one in $OPTIMUS_TEST_POSTGRES (a URL to a database whose user may
create databases), one answering on 127.0.0.1:5432 (trust auth, user postgres or root), or one
this plugin starts with Debian's initdb/pg_ctl in a temporary folder on a free port and stops
at the end. Each test gets a database of its own (named after this run and the test), dropped
afterwards, so runs and tests never see each other's tables.

The reader roles Optimus makes for a test database (warehouse/postgres_reader.py) are dropped
with it. Fixtures: `pg_url` (a fresh database per test), `pg_server` (the server's admin URL), and
`backend` (parametrised over duckdb and postgres: Settings overrides for `settings_for`; `any_backend`
adds Spark, from spark_server.py).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

RUN_ID = f"{os.getpid()}_{uuid.uuid4().hex[:6]}"
_COUNTER = itertools.count(1)


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as con:
            con.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(re.findall(r"/(\d+)/bin", p)[0]))
    if found:
        return Path(found[-1]).parent
    which = shutil.which("pg_ctl")
    if which:
        return Path(which).parent
    pytest.fail(
        "no PostgreSQL server to test against: set OPTIMUS_TEST_POSTGRES, run one on 127.0.0.1:5432, "
        "or install Debian's postgresql package (scripts/test does) so the tests can start their own"
    )
    raise AssertionError  # unreachable


class OwnServer:
    """A throwaway cluster: initdb in a temporary folder, pg_ctl start on a free port, stop at the end."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="optimus-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.user: str | None = None
        if os.geteuid() == 0:  # initdb refuses to run as root: run the server as the postgres user
            try:
                pwd.getpwnam("postgres")
                self.user = "postgres"
            except KeyError:
                pytest.fail("running as root and there is no 'postgres' user to run a test PostgreSQL server as")
            shutil.chown(self.root, self.user, self.user)
            os.chmod(self.root, 0o700)

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode:
            pytest.fail(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")

    def start(self) -> str:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
        options = f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.root} -c fsync=off"
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options, "-w", "start")
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """An admin URL of a PostgreSQL server this run may create databases on."""
    given = os.environ.get("OPTIMUS_TEST_POSTGRES")
    if given:
        if not _answers(given):
            pytest.fail(f"OPTIMUS_TEST_POSTGRES={given} does not answer")
        yield given
        return
    for user in ("postgres", "root"):
        url = f"postgresql://{user}@127.0.0.1:5432/postgres"
        if _answers(url):
            yield url
            return
    server = OwnServer()
    try:
        yield server.start()
    finally:
        server.stop()


def create_database(admin_url: str, name: str) -> str:
    with psycopg.connect(admin_url, autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}"')
        con.execute(f'CREATE DATABASE "{name}"')
    return with_database(admin_url, name)


def reader_roles_of(con: psycopg.Connection, database: str) -> list[str]:
    """The reader roles Optimus made for a database: roles are cluster-wide and outlive it, so the
    plugin finds them by the comment Optimus gives them (see warehouse/postgres_reader.py)."""
    return [
        r
        for (r,) in con.execute(
            "SELECT r.rolname FROM pg_roles r JOIN pg_shdescription d ON d.objoid = r.oid AND d.classoid = 'pg_authid'::regclass "
            "WHERE d.description LIKE 'Optimus reader:%%' AND strpos(d.description, %s) > 0",
            [f'of database "{database}"'],
        ).fetchall()
    ]


def drop_database(admin_url: str, name: str) -> None:
    """Drop a test database and the reader roles Optimus made for it, so roles do not pile up on a shared server."""
    with psycopg.connect(admin_url, autocommit=True) as con:
        roles = reader_roles_of(con, name)
        for _attempt in range(20):
            try:
                con.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                break
            except psycopg.errors.ObjectInUse:  # a killed subprocess's session is still going away
                time.sleep(0.25)
        for role in roles:  # its privileges went with the database
            con.execute(f'DROP ROLE IF EXISTS "{role}"')


@pytest.fixture
def pg_url(pg_server: str, request: pytest.FixtureRequest) -> Iterator[str]:
    """A URL to a new, empty database for this test alone (dropped afterwards)."""
    name = re.sub(r"[^a-z0-9_]", "_", f"opt_{RUN_ID}_{next(_COUNTER)}_{request.node.name}".lower())[:63]
    url = create_database(pg_server, name)
    yield url
    drop_database(pg_server, name)


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """Settings overrides for one backend: `settings_for(data_path, **backend)` runs a test on both."""
    if request.param == "duckdb":
        return {}
    return {"warehouse": request.getfixturevalue("pg_url")}


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres), pytest.param("spark", marks=pytest.mark.spark)])
def any_backend(request: pytest.FixtureRequest) -> dict[str, Any]:
    """`backend`, and a Spark warehouse too (spark_server.py): for tests of the Warehouse protocol itself,
    until the services' SQL runs on Spark (issue 21)."""
    if request.param == "duckdb":
        return {}
    if request.param == "spark":
        return dict(request.getfixturevalue("spark_lake"))
    return {"warehouse": request.getfixturevalue("pg_url")}
