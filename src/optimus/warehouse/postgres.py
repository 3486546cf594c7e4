"""A shared PostgreSQL server: the team's warehouse, read by dashboards while one daemon writes.

Everything lives in one schema (settings.warehouse_schema, default `optimus`). SQL arrives with
DuckDB-style `?` placeholders, made psycopg's `%s` (postgres_statements.py); nothing else of a
statement is rewritten: shared SQL is written in what both engines run (`DOUBLE PRECISION`,
`DROP TABLE IF EXISTS` + `CREATE TABLE`), and one PostgreSQL cannot run fails with its message.
Handled here: TRY_CAST -> `try_cast_sql` (plpgsql helpers), numeric and
JSON results returned as DuckDB returns them (int/float, str), edX TSV staging through COPY,
Arrow loading through COPY (CSV), and the single writer held by an advisory lock. Read views and
untrusted queries log in as the reader role (postgres_reader.py, postgres_query.py).
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv
from psycopg import pq
from psycopg.adapt import Loader

from optimus.config import Settings
from optimus.errors import WarehouseError, WarehouseLocked
from optimus.formats import sql_tables
from optimus.warehouse.base import NestingTransactions, QueryAnswer, raw_schema_for
from optimus.warehouse.dialects.base import Dialect, sql_string
from optimus.warehouse.dialects.postgres import HELPER_TYPES, PostgresDialect, helper_name
from optimus.warehouse.postgres_query import run_untrusted
from optimus.warehouse.postgres_reader import ReaderLogin, check_reader, ensure_reader, managed_login, reader_role_name
from optimus.warehouse.postgres_statements import check_parameters, psycopg_statement

__all__ = ["PostgresWarehouse", "lock_key", "reader_role_name", "redact"]

_BLOCK = 4 << 20  # bytes of a TSV file sent to COPY at a time

# try_cast_sql: plpgsql helpers that return NULL when the cast fails (measured faster than a regex guard).
# PARALLEL UNSAFE: the exception block starts a subtransaction, which PostgreSQL refuses anywhere in a
# parallel plan, in the workers and in the leader alike (so PARALLEL RESTRICTED fails too, issue 14 item 2).
_PARALLEL = "PARALLEL UNSAFE"


# PostgreSQL type oids -> the Arrow type DuckDB gives the same SQL type (others: inferred from the values)
_ARROW_TYPES = {
    16: pa.bool_(),
    21: pa.int16(),
    23: pa.int32(),
    20: pa.int64(),
    700: pa.float32(),
    701: pa.float64(),
    25: pa.string(),
    1042: pa.string(),
    1043: pa.string(),
    114: pa.string(),
    3802: pa.string(),
    1082: pa.date32(),
    1114: pa.timestamp("us"),
    1184: pa.timestamp("us", tz="UTC"),
}


def _helpers_sql() -> list[str]:
    return [
        f"CREATE OR REPLACE FUNCTION {helper_name(t)}(v text) RETURNS {t} LANGUAGE plpgsql IMMUTABLE STRICT {_PARALLEL} AS $f$ "
        f"BEGIN RETURN v::{t}; EXCEPTION WHEN others THEN RETURN NULL; END $f$"
        for t in sorted(set(HELPER_TYPES.values()))
    ] + [
        # DuckDB's try(url_decode(v)): %XX decoded, any other % kept, NULL when the bytes are not UTF-8
        f"CREATE OR REPLACE FUNCTION optimus_try_url_decode(v text) RETURNS text LANGUAGE plpgsql IMMUTABLE STRICT {_PARALLEL} AS $f$ "
        "BEGIN IF strpos(v, '%') = 0 THEN RETURN v; END IF; "
        "RETURN convert_from((SELECT string_agg(CASE WHEN m[1] IS NOT NULL THEN decode(substr(m[1], 2), 'hex') "
        "ELSE convert_to(m[2], 'UTF8') END, ''::bytea ORDER BY n) "
        "FROM regexp_matches(v, '(%[0-9A-Fa-f]{2})|([^%]+|%)', 'g') WITH ORDINALITY AS t(m, n)), 'UTF8'); "
        "EXCEPTION WHEN others THEN RETURN NULL; END $f$"
    ]


def _normal_url(url: str) -> str:
    return "postgresql://" + url[len("postgres://") :] if url.startswith("postgres://") else url


def _resolve_reader_login(settings: Settings, writer_url: str) -> ReaderLogin:
    """How a read-only process logs in: `warehouse_reader_url`, or the managed reader's login, read
    with the writer's login (which this process has: it is the same configuration)."""
    if settings.warehouse_reader_url:
        return ReaderLogin(_normal_url(settings.warehouse_reader_url))
    try:
        con = psycopg.connect(writer_url, autocommit=True, connect_timeout=10, application_name="optimus")
    except psycopg.Error as exc:
        raise _connect_error(writer_url, exc) from None
    try:
        login = managed_login(con, writer_url, settings.warehouse_schema, raw_schema_for(settings.warehouse_schema))
    finally:
        con.close()
    return ReaderLogin(writer_url, login.overrides)


def redact(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def lock_key(schema: str) -> int:
    """The advisory-lock number that stands for 'the writer of this schema'."""
    return 0x0F7100000000 + zlib.crc32(f"optimus:{schema}".encode())


class _NumericLoader(Loader):
    """numeric results as DuckDB gives them: int when whole (sum of BIGINT), else float (avg)."""

    def load(self, data: Any) -> Any:
        text = bytes(data).decode()
        if "." not in text and text.lstrip("-").isdigit():
            return int(text)
        return float(text)


class _TextLoader(Loader):
    """JSON values as text, as DuckDB returns them."""

    def load(self, data: Any) -> str:
        return bytes(data).decode()


def _connect_error(url: str, exc: Exception) -> WarehouseError:
    """A connection failure said plainly: which server, what went wrong, what to do."""
    text = str(exc).strip()
    parts = urlsplit(url)
    where = f"PostgreSQL warehouse {redact(url)}"
    low = text.lower()
    if "does not exist" in low and "database" in low:
        db = parts.path.lstrip("/") or "?"
        return WarehouseError(f"{where}: database {db!r} does not exist on the server; create it first (createdb {db})")
    if (
        "password authentication failed" in low
        or "no password supplied" in low
        or "authentication failed" in low
        or "not permitted to log in" in low
    ):
        return WarehouseError(f"{where}: the server refused the login ({text.splitlines()[-1].strip()}); check the user and password")
    if "role" in low and "does not exist" in low:
        return WarehouseError(f"{where}: {text.splitlines()[-1].strip()}; check the user name")
    if (
        "connection refused" in low
        or "could not connect" in low
        or "timeout" in low
        or "no such file" in low
        or "could not translate host name" in low
        or "network is unreachable" in low
    ):
        return WarehouseError(
            f"{where}: cannot reach the server ({text.splitlines()[0].strip()}); is PostgreSQL running and listening there?"
        )
    return WarehouseError(f"{where}: cannot connect: {text}")


class PostgresWarehouse(NestingTransactions):
    """One connection to a PostgreSQL server; a writer also holds the schema's advisory lock."""

    sql: Dialect = PostgresDialect()
    capabilities = sql.capabilities

    def __init__(self, settings: Settings, read_only: bool = False, login: ReaderLogin | None = None) -> None:
        """A writer logs in with `warehouse`; a reader (read_only) as the reader role, never as the writer.

        :param login: the reader's login, when already known (reader() passes its own).
        """
        raw_url = _normal_url(settings.warehouse_url)
        self.url = redact(raw_url)
        self._settings = settings
        self.schema = settings.warehouse_schema
        self.raw_schema = raw_schema_for(self.schema)
        self.read_only = read_only
        self._lock = threading.RLock()
        self._depth = 0
        self._staged = 0
        self._failure: str | None = None  # what aborted the current transaction
        self._reader_login: ReaderLogin | None = login
        self._reader_problem: WarehouseError | None = None  # why no reader login could be had (the writer's)
        self._query_view: PostgresWarehouse | None = None  # the writer's reader for read_only_query
        if read_only and login is None:
            self._reader_login = _resolve_reader_login(settings, raw_url)
        self.con = self._connect(raw_url)
        try:
            self._prepare_session()
        except BaseException:
            self.con.close()
            raise

    def _connect(self, raw_url: str) -> psycopg.Connection:
        try:
            if self.read_only:
                assert self._reader_login is not None
                return self._reader_login.connect(autocommit=True, connect_timeout=10, application_name="optimus-reader")
            return psycopg.connect(raw_url, autocommit=True, connect_timeout=10, application_name="optimus")
        except psycopg.Error as exc:
            raise _connect_error(self._reader_login.url if self.read_only and self._reader_login else raw_url, exc) from None

    def _prepare_session(self) -> None:
        self.con.adapters.register_loader("numeric", _NumericLoader)
        self.con.adapters.register_loader("json", _TextLoader)
        self.con.adapters.register_loader("jsonb", _TextLoader)
        q = self.quote(self.schema)
        self._session_settings()
        if self.read_only:
            where = "setting 'warehouse_reader_url'" if self._settings.warehouse_reader_url else "the reader role"
            check_reader(self.con, self.schema, self.raw_schema, where)
            return
        key = lock_key(self.schema)
        # a killed writer's session may take a moment to end on the server: wait briefly before refusing
        deadline = time.monotonic() + 2
        while not (locked := self.con.execute("SELECT pg_try_advisory_lock(%s)", [key]).fetchone()[0]) and time.monotonic() < deadline:  # type: ignore[index]
            time.sleep(0.2)
        if not locked:
            holder = self.con.execute(
                "SELECT a.pid, a.client_addr, a.application_name, a.backend_start FROM pg_locks l "
                "JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted "
                "AND (l.classid::bigint << 32) + l.objid::bigint = %s LIMIT 1",
                [key],
            ).fetchone()
            who = (
                f" (server process {holder[0]}, client {holder[1] or 'local socket'}, connected {holder[3]:%Y-%m-%d %H:%M:%S})"
                if holder
                else ""
            )
            raise WarehouseLocked(
                f"warehouse {self.url} schema {self.schema!r} is being written by another Optimus process{who}; "
                "only one daemon or ingest may write at a time: stop it first, or read through its API"
            )
        self.con.execute(f"CREATE SCHEMA IF NOT EXISTS {q}")
        for statement in _helpers_sql():
            self.con.execute(statement)
        self._make_reader()

    def _session_settings(self) -> None:
        """What every statement of this connection assumes (set again after DISCARD ALL)."""
        self.con.execute("SET TIME ZONE 'UTC'")
        # Optimus's statements are large (Person Course: ~17 CTEs): JIT compiling them cost ~11 of the
        # 11.3 s of that statement on a small package, far more than it saves on any size seen so far
        self.con.execute("SET jit = off")
        self.con.execute(f"SET search_path TO {self.quote(self.schema)}")
        if self.read_only:
            self.con.execute("SET default_transaction_read_only = on")

    def _make_reader(self) -> None:
        """Make (when it may) the reader role and grant it SELECT on this schema and the raw one;
        without it ingest still works, and what needs the reader says what a DBA must run."""
        configured = self._settings.warehouse_reader_url
        if configured:
            parts = urlsplit(_normal_url(configured))
            ensure_reader(
                self.con, self.schema, self.raw_schema, unquote(parts.username or ""), unquote(parts.password) if parts.password else None
            )
            self._reader_login = ReaderLogin(_normal_url(configured))
            return
        ensure_reader(self.con, self.schema, self.raw_schema)  # grants again on every start: tables others made too
        try:
            login = managed_login(self.con, self.url, self.schema, self.raw_schema)
            self._reader_login = ReaderLogin(_normal_url(self._settings.warehouse_url), login.overrides)
        except WarehouseError as exc:
            self._reader_problem = exc

    # -- statements -------------------------------------------------------------------------
    def _run(self, sql: str, params: Sequence[Any]) -> psycopg.Cursor:
        if self._failure is not None and self.con.info.transaction_status == pq.TransactionStatus.INERROR:
            raise WarehouseError(f"the transaction was aborted by an earlier error: {self._failure}")
        args = list(params)
        statement = psycopg_statement(sql)
        check_parameters(sql, statement, len(args))
        try:
            # without parameters the statement goes as written: psycopg then reads no `%` in it
            return self.con.execute(statement.text if args else sql, args or None)
        except psycopg.Error as exc:
            if self.con.broken or self.con.closed:
                raise WarehouseError(f"lost the connection to the PostgreSQL warehouse {self.url}: {exc}") from exc
            if self._depth:
                self._failure = f"{type(exc).__name__}: {exc}"
            raise

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self._lock:
            self._run(sql, params)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [list(r) for r in rows]
        if rows:
            with self._lock, self.con.cursor() as cur:
                statement = psycopg_statement(sql)
                check_parameters(sql, statement, len(rows[0]))
                cur.executemany(statement.text, rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            cur = self._run(sql, params)
            return cur.fetchall() if cur.description else []

    def query_dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._run(sql, params)
            if not cur.description:
                return []
            names = [d.name for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def query_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """The result as Arrow, typed from the columns' SQL types (as DuckDB types it), not guessed from values."""
        with self._lock:
            cur = self._run(sql, params)
            desc = list(cur.description or [])
            rows = cur.fetchall() if desc else []
        return pa.table({d.name: pa.array([r[i] for r in rows], _ARROW_TYPES.get(d.type_code)) for i, d in enumerate(desc)})

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    @contextmanager
    def _outermost(self) -> Iterator[None]:
        self.con.execute("BEGIN")
        self._failure = None
        try:
            yield
        except BaseException:
            self._failure = None
            if not self.con.closed and not self.con.broken:
                self.con.execute("ROLLBACK")
            raise
        if self.con.info.transaction_status == pq.TransactionStatus.INERROR:
            failure, self._failure = self._failure, None
            self.con.execute("ROLLBACK")
            raise WarehouseError(f"the transaction was rolled back after an error: {failure}")
        self.con.execute("COMMIT")

    # -- catalogue --------------------------------------------------------------------------
    def table_exists(self, name: str, schema: str | None = None) -> bool:
        return bool(
            self.scalar(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = ? AND c.relname = ? AND c.relkind IN ('r', 'v', 'm', 'p', 'f')",
                [schema or self.schema, name],
            )
        )

    def columns(self, table: str, schema: str | None = None) -> list[str]:
        return [
            r[0]
            for r in self.query(
                "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(?) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                [
                    f"{self.quote(schema)}.{self.quote(table)}" if schema else self.quote(table)
                ],  # unqualified: a temp table first, as in SQL
            )
        ]

    def try_cast_sql(self, expr: str, sql_type: str) -> str:
        return self.sql.try_cast(expr, sql_type)

    def quote(self, identifier: str) -> str:
        return self.sql.quote(identifier)

    # -- bulk loaders -----------------------------------------------------------------------
    def load_arrow(self, table: str, data: pa.Table | pa.RecordBatchReader, schema: str | None = None) -> int:
        """Append Arrow data through COPY (CSV written by Arrow itself: no per-row Python)."""
        names = data.schema.names
        cols = ", ".join(self.quote(n) for n in names)
        batches = data.to_batches(max_chunksize=65536) if isinstance(data, pa.Table) else data
        total = 0
        options = pacsv.WriteOptions(include_header=False, batch_size=65536, quoting_style="needed")
        with self._lock, self.con.cursor() as cur:
            target = f"{self.quote(schema)}.{self.quote(table)}" if schema else self.quote(table)  # unqualified: a temp table too
            with cur.copy(f"COPY {target} ({cols}) FROM STDIN (FORMAT csv)") as copy:
                for batch in batches:
                    if batch.num_rows == 0:
                        continue
                    sink = pa.BufferOutputStream()
                    pacsv.write_csv(_csv_ready(batch), sink, write_options=options)
                    copy.write(sink.getvalue().to_pybytes())
                    total += batch.num_rows
        return total

    def execute_over_arrow(self, sql: str, data: pa.Table | pa.RecordBatchReader) -> None:
        """Run `sql` over `data` as the relation `arrow_block`: a temporary table loaded through COPY
        (load_arrow) and dropped after the statement, in a transaction of its own (or the caller's)."""
        q = self.quote
        columns = ", ".join(f"{q(f.name)} {_pg_type(f.type)}" for f in data.schema)
        with self._lock, self.transaction():
            self._run("DROP TABLE IF EXISTS pg_temp.arrow_block", [])
            self._run(f"CREATE TEMP TABLE arrow_block ({columns})", [])
            try:
                self.load_arrow("arrow_block", data, schema="pg_temp")
                self.execute(sql)
            finally:
                if self.con.info.transaction_status != pq.TransactionStatus.INERROR:
                    self._run("DROP TABLE IF EXISTS pg_temp.arrow_block", [])

    def prefetch_tsv(self, path: Path | None) -> None:
        """Nothing is read ahead here: COPY runs on the server, one statement at a time per connection."""

    def hold_outside(self, nbytes: int) -> None:
        """Nothing to do: the server's memory is not this process's."""

    def prefetch_event_lines(self, path: Path | None, max_line: int) -> None:
        """Nothing to do: the server reads no files of this process (see event_lines)."""

    @contextmanager
    def event_lines(self, path: Path, max_line: int) -> Iterator[str | None]:
        """None: the server cannot read this process's files (capabilities.reads_files is False); the
        caller reads them and loads the lines by COPY, then runs the same SQL over them."""
        yield None

    def drop_staged(self, staging: str) -> None:
        """Remove what stage_tsv created."""
        self.execute(f"DROP TABLE IF EXISTS pg_temp.{self.quote(staging)}")

    def stage_tsv(self, path: Path, staging: str, numbered: bool = True) -> tuple[list[str], list[tuple[int, str, str]]]:
        """Load an edX TSV dump into a temporary all-text table with escapes decoded (always numbered: it costs nothing here).

        Each line goes to COPY whole (its tabs and backslashes escaped, so COPY splits nothing) into a
        one-column table numbered by line; SQL then splits the lines, so a line with the wrong number
        of fields is rejected with its number instead of failing the file.
        """
        header = _header_columns(path)
        q = self.quote
        raw = q(f"{staging}_lines")
        bad_utf8: list[int] = []
        with self._lock:
            self._run(f"DROP TABLE IF EXISTS {raw}", [])
            self._run(f"CREATE TEMP TABLE {raw} (_line BIGINT GENERATED ALWAYS AS IDENTITY (START WITH 2), raw TEXT)", [])
            try:
                with self.con.cursor() as cur, cur.copy(f"COPY {raw} (raw) FROM STDIN") as copy:
                    for block in _tsv_blocks(path, bad_utf8):
                        copy.write(block)
            except psycopg.Error as exc:
                if self._depth:
                    self._failure = f"{type(exc).__name__}: {exc}"
                raise WarehouseError(f"{path}: cannot read as an edX TSV dump: {exc}") from None
            n = len(header)
            fields = ", ".join(f"{sql_tables.decode_escapes_sql(f'f[{i + 1}]', self.sql)} AS {q(name)}" for i, name in enumerate(header))
            tab, null = f"chr({ord(sql_tables.FIELD_SEPARATOR)})", sql_string(sql_tables.NULL_TOKEN)
            # the line numbers written in (whole numbers): a statement with no `?` is sent without being tokenized
            not_utf8 = f"ARRAY[{', '.join(str(int(line)) for line in bad_utf8)}]::bigint[]"
            self._run(f"DROP TABLE IF EXISTS {q(staging)}", [])
            self._run(
                f"CREATE TEMP TABLE {q(staging)} AS SELECT {fields}, _line FROM "
                f"(SELECT _line, string_to_array(raw, {tab}, {null}) AS f FROM {raw} WHERE raw <> '' OFFSET 0) s "  # OFFSET 0: split once per line
                f"WHERE cardinality(f) = {n} AND NOT (_line = ANY({not_utf8}))",
                [],
            )
            bad = self._run(
                f"SELECT _line, raw, cardinality(string_to_array(raw, {tab})) FROM {raw} WHERE raw <> '' AND "
                f"(cardinality(string_to_array(raw, {tab})) <> {n} OR _line = ANY(?::bigint[])) ORDER BY _line",
                [bad_utf8],
            ).fetchall()
            self._run(f"DROP TABLE {raw}", [])
        invalid = set(bad_utf8)
        rejected = [
            (int(line), "not valid UTF-8" if line in invalid else f"expected {n} fields (tab-separated), found {found}", str(text)[:2000])
            for line, text, found in bad
        ]
        return header, rejected

    def reader(self) -> PostgresWarehouse:
        """A read-only connection of its own, logged in as the reader role, for reads on another
        thread (the API in the daemon): it sees committed data and never waits for the writer."""
        if self._reader_problem is not None:
            raise self._reader_problem
        return PostgresWarehouse(self._settings, read_only=True, login=self._reader_login)

    def read_only_query(self, sql: str, *, max_rows: int, max_bytes: int, timeout: float) -> QueryAnswer:
        """Run one untrusted query as the reader role (see postgres_query.run_untrusted); the writer
        hands it to a reader connection of its own, never runs it itself."""
        if not self.read_only:
            if self._query_view is None:
                self._query_view = self.reader()
            return self._query_view.read_only_query(sql, max_rows=max_rows, max_bytes=max_bytes, timeout=timeout)
        with self._lock:
            try:
                return run_untrusted(self.con, sql, max_rows=max_rows, max_bytes=max_bytes, timeout=timeout)
            finally:
                self._after_untrusted()

    def _after_untrusted(self) -> None:
        """Whatever the query did to the session goes: rolled back, DISCARD ALL (session locks,
        settings, prepared statements, temporary tables), Optimus's session settings again."""
        if self.con.broken or self.con.closed:
            self.con = self._connect(_normal_url(self._settings.warehouse_url))
            self._prepare_session()
            return
        if self.con.info.transaction_status != pq.TransactionStatus.IDLE:
            self.con.execute("ROLLBACK")
        self.con.execute("DISCARD ALL")
        self._session_settings()

    def interrupt(self) -> None:
        """Cancel the statement running on this connection (from another thread); its transaction rolls back."""
        self.con.cancel()

    def close(self) -> None:
        if self._query_view is not None:
            self._query_view.close()
        with self._lock:
            if not self.con.closed:
                self.con.close()


def _pg_type(arrow_type: pa.DataType) -> str:
    """The PostgreSQL column type holding an Arrow type as load_arrow writes it (nested types as JSON text)."""
    t = arrow_type
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        bits = t.bit_width if pa.types.is_signed_integer(t) else t.bit_width * 2  # room for an unsigned one
        return "smallint" if bits <= 16 else "integer" if bits <= 32 else "bigint" if bits <= 64 else "numeric"
    if pa.types.is_floating(t):
        return "real" if t.bit_width == 32 else "double precision"
    if pa.types.is_timestamp(t):
        return "timestamptz" if t.tz else "timestamp"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_nested(t):
        return "json"
    return "text"


def _open(path: Path) -> Any:
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def _header_columns(path: Path) -> list[str]:
    """The header row's names, by formats.sql_tables' one rule (as the DuckDB backend reads them)."""
    return sql_tables.read_header(path)


def _tsv_blocks(path: Path, bad_utf8: list[int]) -> Iterator[bytes]:
    """The file after its header, as COPY text-format data with one column per line.

    Whole blocks are transformed at C speed: backslashes doubled and tabs escaped (so COPY splits and
    decodes nothing), CRLF endings made LF, NUL bytes dropped. Lines that are not UTF-8 are sent with
    replacement characters and their numbers noted in `bad_utf8`, so they can be rejected by number.
    """
    with _open(path) as fh:
        fh.readline()
        line = 2  # the number of the first line of the next block
        rest = b""
        while True:
            chunk = fh.read(_BLOCK)
            if chunk:
                data = rest + chunk
                cut = data.rfind(b"\n") + 1
                if cut == 0:
                    rest = data
                    continue
                data, rest = data[:cut], data[cut:]
            else:
                data, rest = rest, b""
                if not data:
                    break
                data += b"\n"
            data = data.replace(b"\r\n", b"\n").replace(b"\x00", b"")
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:
                lines = data.split(b"\n")
                for i, text in enumerate(lines[:-1]):
                    try:
                        text.decode("utf-8")
                    except UnicodeDecodeError:
                        bad_utf8.append(line + i)
                        lines[i] = text.decode("utf-8", errors="replace").encode()
                data = b"\n".join(lines)
            line += data.count(b"\n")
            yield data.replace(b"\\", b"\\\\").replace(b"\t", b"\\t").replace(b"\r", b"\\r")


def _csv_ready(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Columns Arrow's CSV writer cannot write (lists, structs, maps) become JSON text.

    PostgreSQL text cannot hold NUL: each becomes U+0001, a control character too, so a line of
    events that held one is still invalid JSON (quarantined, as on DuckDB) instead of failing COPY.
    """
    import json

    import pyarrow.compute as pc

    arrays, changed = [], False
    for column, field in zip(batch.columns, batch.schema, strict=True):
        t = field.type
        if (pa.types.is_string(t) or pa.types.is_large_string(t)) and pc.any(pc.match_substring(column, "\x00")).as_py():
            arrays.append(pc.replace_substring(column, "\x00", "\x01"))
            changed = True
        elif pa.types.is_nested(t):
            arrays.append(pa.array([None if v is None else json.dumps(v, default=str) for v in column.to_pylist()], pa.string()))
            changed = True
        elif pa.types.is_dictionary(t):
            arrays.append(column.cast(t.value_type))
            changed = True
        else:
            arrays.append(column)
    return pa.RecordBatch.from_arrays(arrays, names=batch.schema.names) if changed else batch
