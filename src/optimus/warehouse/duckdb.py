"""The embedded default: one DuckDB file, one writer (this process), no server."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from optimus.config import Settings, check_allowed_folders
from optimus.errors import QueryRefused, WarehouseError, WarehouseLocked
from optimus.formats import sql_tables
from optimus.formats.events import beyond_limits_sql
from optimus.warehouse.base import QUERY_TIMEOUT_SECONDS, NestingTransactions, QueryAnswer, raw_schema_for
from optimus.warehouse.dialects.base import Dialect, sql_string
from optimus.warehouse.dialects.duckdb import DuckDBDialect


class DuckDBWarehouse(NestingTransactions):
    """A DuckDB file opened read-write by one process (DuckDB locks the file for others)."""

    sql: Dialect = DuckDBDialect()
    capabilities = sql.capabilities
    raw_schema = raw_schema_for(None)

    def __init__(
        self,
        settings: Settings,
        read_only: bool = False,
        outside_bytes: int = 0,
        also_allowed: Sequence[Path] = (),
        lake_folders: Sequence[Path] = (),
    ) -> None:
        """Open the file and shut the engine off from the rest of the host (see _lock_down).

        :param outside_bytes: the most this process holds beside the engine while ingesting (Clickstream's
            blocks): the engine gets memory_limit less that much (never under half of it), since its
            settings are locked once open and cannot give way later.
        :param also_allowed: files the engine may read besides those in the data paths (a file named on
            the command line), writable only.
        :param lake_folders: folders of Parquet parts the engine may read, reader or writer (the lake
            of a Spark warehouse, whose catalog this file is: warehouse/lake.py).
        """
        self.url = settings.warehouse_url
        path = settings.warehouse_path()
        assert path is not None
        self.path = path
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.exists():
            raise WarehouseError(f"warehouse {path} does not exist yet (run 'optimus ingest' first)")
        spill = settings.spill_path or path.parent / f"{path.name}.spill"
        folders = {} if read_only else allowed_folders(settings, spill)
        for folder in lake_folders:
            folders.setdefault(folder.absolute(), "the lake's folder")
        files = [] if read_only else [*(f.absolute() for f in also_allowed), *linked_event_files(settings, folders)]
        check_allowed_folders(settings, folders, files)
        config: dict[str, Any] = {
            "memory_limit": settings.memory_limit,
            "temp_directory": str(spill),
            "preserve_insertion_order": False,
        }
        if settings.threads:
            config["threads"] = settings.threads
        try:
            self.con = duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise WarehouseLocked(
                    f"warehouse {path} is in use by another Optimus process ({exc}); talk to it through its API, or stop it first"
                ) from None
            raise WarehouseError(f"cannot open warehouse {path}: {exc}") from None
        except duckdb.Error as exc:
            raise WarehouseError(f"cannot open warehouse {path}: {exc}") from None
        self._depth = 0
        self._lock = threading.RLock()
        self._staged = 0
        self._outside = outside_bytes
        if outside_bytes:  # before the lock: the engine's share for good
            full = _bytes(self.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])
            self.con.execute(f"SET memory_limit = '{max(full - outside_bytes, full // 2) >> 20}MiB'")
        self._memory_limit = _bytes(self.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])
        self._ahead: tuple[Path, Future] | None = None  # a file being read ahead (see prefetch_tsv)
        self._ahead_pool: ThreadPoolExecutor | None = None
        self._registered: set[str] = set()
        self._parent: DuckDBWarehouse | None = None  # where a reader's prepared cursor goes back (see reader)
        self._spare: list[duckdb.DuckDBPyConnection] = []
        self._reads = 0  # event files read by event_lines (each into a table of its own)
        # an event file being read ahead: (path, table, cursor, the read's future giving its first rowid or None)
        self._lines_ahead: tuple[Path, str, duckdb.DuckDBPyConnection, Future] | None = None
        self._lock_down(folders, files, lines_db=not read_only)

    def _lock_down(self, folders: dict[Path, str], files: Sequence[Path] = (), lines_db: bool = False) -> None:
        """Shut the engine off from the host for the rest of the process, before any other statement.

        DuckDB's settings are instance-wide and a cursor shares them, so this holds for every query
        of the process, the API's included: files only in `folders` and `files` (a reader: none),
        no extension loaded, and the configuration locked so that no statement can turn it back.
        A cursor's own time limit cannot be set once locked (a cursor does not inherit its parent's),
        so the readers' cursors are made first, each with max_execution_time (see reader). Not in the
        connect config: DuckDB refuses a temp_directory there once external access is off; here the
        instance is still private to this constructor, no query of anyone else has run on it.
        """
        try:
            if lines_db:  # where event_lines stages a file's lines (ATTACH is refused once external access is off)
                self.con.execute(f"ATTACH ':memory:' AS {_LINES_DB}")
            for _ in range(READER_CURSORS):
                cursor = self.con.cursor()
                cursor.execute(f"SET SESSION max_execution_time = {int(QUERY_TIMEOUT_SECONDS * 1000)}")
                self._spare.append(cursor)
            if folders:
                listed = ", ".join("'" + _as_prefix(f).replace("'", "''") + "'" for f in folders)
                self.con.execute(f"SET allowed_directories = [{listed}]")
            if files:
                listed = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
                self.con.execute(f"SET allowed_paths = [{listed}]")
            self.con.execute("SET enable_external_access = false")
            self.con.execute("SET lock_configuration = true")
        except BaseException:
            self.close()
            raise

    # -- statements -------------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        with self._lock:
            self.con.execute(sql, list(params))

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [list(r) for r in rows]
        if rows:
            with self._lock:
                self.con.executemany(sql, rows)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._lock:
            return self.con.execute(sql, list(params)).fetchall()

    def query_dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            cur = self.con.execute(sql, list(params))
            names = [d[0] for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def query_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        with self._lock:
            rel = self.con.sql(sql, params=list(params) or None)
            # DuckDB 2.0 renamed fetch_arrow_table to to_arrow_table
            return rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.fetch_arrow_table()

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    @contextmanager
    def _outermost(self) -> Iterator[None]:
        self.con.execute("BEGIN TRANSACTION")
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    # -- catalogue --------------------------------------------------------------------------
    # the catalogue of one schema only (default: Optimus's own, main): a raw edX table of the same
    # name in the raw schema is another table
    _IN_SCHEMA = "database_name = current_database() AND schema_name = coalesce(?, current_schema())"

    def table_exists(self, name: str, schema: str | None = None) -> bool:
        return bool(
            self.scalar(f"SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND {self._IN_SCHEMA}", [name, schema])
        ) or bool(
            self.scalar(f"SELECT count(*) FROM duckdb_views() WHERE view_name = ? AND NOT internal AND {self._IN_SCHEMA}", [name, schema])
        )

    def columns(self, table: str, schema: str | None = None) -> list[str]:
        return [
            r[0]
            for r in self.query(
                f"SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND {self._IN_SCHEMA} ORDER BY column_index",
                [table, schema],
            )
        ]

    def try_cast_sql(self, expr: str, sql_type: str) -> str:
        return self.sql.try_cast(expr, sql_type)

    def quote(self, identifier: str) -> str:
        return self.sql.quote(identifier)

    # -- bulk loaders -----------------------------------------------------------------------
    def load_arrow(self, table: str, data: pa.Table | pa.RecordBatchReader, schema: str | None = None) -> int:
        target = f"{self.quote(schema)}.{self.quote(table)}" if schema else self.quote(table)
        names = data.schema.names
        cols = ", ".join(self.quote(n) for n in names)
        with self._lock:
            before = self.con.execute(f"SELECT count(*) FROM {target}").fetchall()[0][
                0
            ]  # fetchall: DuckDB 2.0 refuses work on an unfinished result
            self.execute_over_arrow(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM arrow_block", data)
            return self.con.execute(f"SELECT count(*) FROM {target}").fetchall()[0][0] - before

    def execute_over_arrow(self, sql: str, data: pa.Table | pa.RecordBatchReader) -> None:
        """Run `sql`, in which the relation `arrow_block` is `data`, read in place (scans_arrow_in_place).

        A relation over the Arrow data, named for this one statement: no copy, and nothing of it
        outlives the statement. Not a view registered on the connection (a view registered inside a
        transaction keeps its table in memory until the commit, so a big file's blocks would pile
        up), nor a Python variable found by name (replacement scans are off with external access).
        """
        with self._lock:
            self.con.from_arrow(data).query("arrow_block", sql)

    def stage_tsv(self, path: Path, staging: str, numbered: bool = True) -> tuple[list[str], list[tuple[int, str, str]]]:
        """Stage an edX TSV dump as a temporary all-text relation with escapes decoded (see drop_staged).

        Returns the header's column names and the rejected lines as (line, reason, raw text).
        Unnumbered (`_line` NULL), the file is read in parallel, in any order (numbering costs a read
        that keeps the file's order), or taken as read ahead by prefetch_tsv.
        """
        q = self.quote
        raw = q(staging + "_raw")
        with self._lock:
            ahead = None if numbered else self._read_ahead(path)
            escaped: Sequence[bool | None] | None = None
            if ahead is not None:
                names, table, bad, escaped = ahead
                self.con.register(staging + "_raw", table)
                self._registered.add(staging + "_raw")
            else:
                names, bad = self._read_tsv(path, raw, numbered)
            numbering = "NULL::BIGINT"
            if numbered:
                base = self.con.execute(f"SELECT coalesce(min(rowid), 0) FROM {raw}").fetchall()[0][0]
                # a row's line = 2 (after the header) + its position + the rejected lines before it; with
                # rejects at lines r_1 < r_2 < ..., row p comes after r_i exactly when r_i - 1 - i <= p
                shift = ""
                if bad:
                    self.con.execute(f"CREATE OR REPLACE TEMP TABLE {q(staging + '_shift')} (t BIGINT)")
                    self.con.executemany(
                        f"INSERT INTO {q(staging + '_shift')} VALUES (?)", [[line - 1 - i] for i, (line, _r, _t) in enumerate(bad, start=1)]
                    )
                    shift = f" + (SELECT count(*) FROM {q(staging + '_shift')} s WHERE s.t <= r.rowid - {int(base)})"
                numbering = f"(r.rowid - {int(base)} + 2){shift}"
            # A view, not a copy: escapes are decoded while the rows are read, in the columns that hold a
            # backslash (the decoding of every column would cost each query over the view time to plan).
            if escaped is None:
                escaped = self.con.execute(
                    f"SELECT {', '.join(f'bool_or(contains({q(n)}, chr(92)))' for n in names)} FROM {raw}"
                ).fetchall()[0]
            decoded = ", ".join(
                f"{sql_tables.decode_escapes_sql(q(n), self.sql) if has else q(n)} AS {q(n)}" for n, has in zip(names, escaped, strict=True)
            )
            self.con.execute(f"CREATE OR REPLACE TEMP VIEW {q(staging)} AS SELECT {decoded}, {numbering} AS _line FROM {raw} r")
        return names, [(int(line), str(reason), str(text)[:2000]) for line, reason, text in bad]

    def _read_tsv(self, path: Path, raw: str, numbered: bool) -> tuple[list[str], list[tuple]]:
        """Read the dump into the temporary table `raw`; returns its column names and rejected lines."""
        self._staged += 1
        rejects, scans = f"_rejects_{self._staged}", f"_reject_scans_{self._staged}"
        columns = self._header_columns(path)
        try:
            # numbered: the file is read by one thread, so rows are stored (and rowid follows) in the file's
            # line order even with preserve_insertion_order off (the setting cannot change once locked)
            self.con.execute(
                f"CREATE OR REPLACE TEMP TABLE {raw} AS SELECT * FROM {_read_csv_sql(rejects, scans, parallel=not numbered)}",
                [str(path), columns],
            )
        except duckdb.Error as exc:
            raise WarehouseError(f"{path}: cannot read as an edX TSV dump: {exc}") from None
        return list(columns), _rejected_lines(self.con, rejects, scans)

    def prefetch_tsv(self, path: Path | None) -> None:
        """Start reading an edX TSV dump on another thread, for an unnumbered stage_tsv of it soon after
        (so it is read while this connection loads the file before); None lets go of what was read.

        Only files up to _READ_AHEAD_BYTES: what is read waits in memory, outside DuckDB's limit.
        """
        with self._lock:
            self._ahead = None
            try:
                if path is None or path.stat().st_size > _READ_AHEAD_BYTES:
                    return
            except OSError:  # gone or unreadable: its own stage_tsv says so
                return
            if self._ahead_pool is None:
                self._ahead_pool = ThreadPoolExecutor(1, thread_name_prefix="optimus-read-ahead")
            cursor = self.con.cursor()  # a connection of its own: its reads do not wait for this one's statements
            self._staged += 1
            self._ahead = (path, self._ahead_pool.submit(self._read_tsv_apart, cursor, path, self._staged))

    def _read_tsv_apart(
        self, cursor: duckdb.DuckDBPyConnection, path: Path, n: int
    ) -> tuple[list[str], pa.Table, list[tuple], list[bool | None]]:
        """On the read-ahead thread: the dump as an Arrow table, with its rejected lines and which
        columns hold a backslash."""
        try:
            columns = self._header_columns(path)
            rejects, scans = f"_rejects_{n}", f"_reject_scans_{n}"
            rel = cursor.sql(f"SELECT * FROM {_read_csv_sql(rejects, scans)}", params=[str(path), columns])
            table = rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.fetch_arrow_table()  # renamed in DuckDB 2.0
            escaped: list[bool | None] = [pc.any(pc.match_substring(column, "\\")).as_py() for column in table.columns]
            return list(columns), table, _rejected_lines(cursor, rejects, scans), escaped
        finally:
            cursor.close()

    def _read_ahead(self, path: Path) -> tuple[list[str], pa.Table, list[tuple], list[bool | None]] | None:
        """What prefetch_tsv read of `path`, or None (not read ahead, or the read failed: it is read
        again here, and fails with the usual message)."""
        ahead, self._ahead = self._ahead, None
        if ahead is None or ahead[0] != path:
            return None
        try:
            return ahead[1].result()
        except Exception:
            return None

    def hold_outside(self, nbytes: int) -> None:
        """Nothing to change: DuckDB fills its memory_limit as a cache, so the engine was opened with the
        setting less what the process may hold beside it (`outside_bytes`), its settings being locked
        from then on. Holding more than that is a caller's mistake, said at once."""
        if nbytes > self._outside:
            raise WarehouseError(
                f"{nbytes} bytes held beside the engine, but it was opened leaving room for {self._outside} "
                "(open it through optimus.pipeline.open_warehouse, which leaves room for what the services hold)"
            )

    def prefetch_event_lines(self, path: Path | None, max_line: int) -> None:
        """Start reading the event file `path` (event_lines of it follows the current file's) on a cursor and
        thread of its own, so that its read (one thread: gzip is serial) runs beside the parse of the file
        before instead of after it. None lets go of what was read ahead (its table is dropped)."""
        with self._lock:
            ahead, self._lines_ahead = self._lines_ahead, None
        if ahead is not None:
            self._release_lines(*ahead)
        if path is None or not self._reads_lines():
            return
        if self._ahead_pool is None:
            self._ahead_pool = ThreadPoolExecutor(1, thread_name_prefix="optimus-read-ahead")
        with self._lock:
            self._reads += 1
            table, cursor = f"{_LINES_DB}.lines_{self._reads}", self.con.cursor()
            self._lines_ahead = (path, table, cursor, self._ahead_pool.submit(self._stage_lines, cursor, table, path, max_line))

    def _reads_lines(self) -> bool:
        """Whether this connection reads event files (a writer; a read-only one or a reader view does not)."""
        with self._lock:
            return self._parent is None and bool(
                self.con.execute("SELECT count(*) FROM duckdb_databases() WHERE database_name = ?", [_LINES_DB]).fetchall()[0][0]
            )

    def _release_lines(self, path: Path, table: str, cursor: duckdb.DuckDBPyConnection, staged: Future | None) -> None:
        """Drop a staged file's table (once its read, if still running, is over) and close its cursor."""
        if staged is not None:
            with suppress(Exception):
                staged.result()
        with suppress(duckdb.Error):
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.close()

    @staticmethod
    def _stage_lines(cursor: duckdb.DuckDBPyConnection, table: str, path: Path, max_line: int) -> int | None:
        """Read the file's lines into `table` on `cursor` (its own transaction); returns the rowid of its
        first line, or None when it cannot be read as plain lines (see event_lines)."""
        try:
            cursor.execute(
                f"CREATE OR REPLACE TABLE {table} AS SELECT raw FROM read_csv(?, columns = {{'raw': 'VARCHAR'}}, header = false, "
                "auto_detect = false, delim = chr(0), quote = '', escape = '', new_line = '\\n', strict_mode = true, parallel = false)",
                [str(path)],
            )
            odd, base = cursor.execute(
                f"SELECT count(*) FILTER (WHERE {beyond_limits_sql('raw', max_line, 'strlen')}), coalesce(min(rowid), 0) FROM {table}"
            ).fetchall()[0]
        except duckdb.Error as exc:
            log.info("%s: read by Optimus's own reader (DuckDB cannot read it as plain lines: %s)", path, str(exc).splitlines()[0])
            return None
        return None if odd else int(base)  # lines too long or too deep: the reader that quarantines them one by one reads it

    @contextmanager
    def event_lines(self, path: Path, max_line: int) -> Iterator[str | None]:
        """The file's lines read by DuckDB itself: read_csv with one VARCHAR column and no quote, escape
        or delimiter (the delimiter is NUL: a line holding one is an error), read by one thread so that
        rows are stored in the file's order and rowid numbers them (row_number() would cost a window).

        The lines go to a table of an in-memory database attached at open (`optimus_lines`), written on
        a cursor of its own: a read that fails (an archive cut short, bytes that are not UTF-8, a CR)
        fails there, in the cursor's own transaction, never in the caller's (DuckDB has no savepoints),
        and the caller's transaction sees the table at its first read of that database. The table is
        buffer-managed like any other: past memory_limit it goes to the temp directory, so a day file
        of many gigabytes streams through, it is not held. DuckDB does not check a gzip member's CRC,
        so the caller checks the archive (Clickstream: clickstream_reader.gzip_intact) beside this.
        A file named by prefetch_event_lines is taken as read ahead (waiting for the end of its read).
        The fingerprint is DuckDB's sha1() (the same bytes hashed as hashlib.sha1: stable across versions).
        """
        if not self._reads_lines():
            yield None  # a read-only warehouse reads no files
            return
        with self._lock:
            ahead, self._lines_ahead = self._lines_ahead, None
        if ahead is not None and ahead[0] != path:
            self._release_lines(*ahead)
            ahead = None
        if ahead is not None:
            _path, table, cursor, staged = ahead
            base = staged.result()
        else:
            with self._lock:
                self._reads += 1
                table, cursor = f"{_LINES_DB}.lines_{self._reads}", self.con.cursor()
            base = self._stage_lines(cursor, table, path, max_line)
        view = f"_optimus_event_lines_{table.rsplit('_', 1)[1]}"
        try:
            if base is None:
                yield None
                return
            with self._lock:
                self.con.execute(
                    f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT rowid - {int(base)} + 1 AS line, raw, "
                    f"CASE WHEN strpos(raw, '{{') > 0 THEN sha1(substr(raw, strpos(raw, '{{')) || chr(10)) END AS event_id FROM {table}"
                )
            yield view
        finally:  # (after an error the caller's transaction may refuse statements: it rolls back, the view with it)
            with self._lock, suppress(duckdb.Error):
                self.con.execute(f"DROP VIEW IF EXISTS {view}")
            self._release_lines(path, table, cursor, None)

    def drop_staged(self, staging: str) -> None:
        """Remove what stage_tsv created."""
        q = self.quote
        with self._lock:
            self.con.execute(f"DROP VIEW IF EXISTS {q(staging)}")
            if staging + "_raw" in self._registered:
                self._registered.discard(staging + "_raw")
                self.con.unregister(staging + "_raw")
            else:
                self.con.execute(f"DROP TABLE IF EXISTS {q(staging + '_raw')}")
            self.con.execute(f"DROP TABLE IF EXISTS {q(staging + '_shift')}")

    @staticmethod
    def _header_columns(path: Path) -> dict[str, str]:
        """The header row, read by us (formats.sql_tables' one rule): DuckDB's sniffer must not guess types or names."""
        return {name: "VARCHAR" for name in sql_tables.read_header(path)}

    def reader(self) -> DuckDBWarehouse:
        """A view of the same database through its own cursor and lock, for reads on another thread
        (the API in the daemon): it sees committed data and never waits for the writer's lock.

        Its cursor is one made before the configuration was locked, with the engine's time limit
        (QUERY_TIMEOUT_SECONDS) on it; closing the view hands the cursor back. Past READER_CURSORS
        open views, a plain cursor: read_only_query's own timer then stops its queries.
        """
        view = object.__new__(DuckDBWarehouse)
        view.url, view.path = self.url, self.path
        with self._lock:
            pooled = bool(self._spare)
            view.con = self._spare.pop() if pooled else self.con.cursor()
        view._depth, view._lock, view._staged = 0, threading.RLock(), 0
        view._ahead, view._ahead_pool, view._registered = None, None, set()
        view._lines_ahead, view._reads = None, 0
        view._memory_limit, view._outside = self._memory_limit, 0
        view._parent, view._spare = (self if pooled else None), []
        return view

    def read_only_query(self, sql: str, *, max_rows: int, max_bytes: int, timeout: float) -> QueryAnswer:
        """One untrusted query: the engine itself keeps it inside the warehouse (external access is off
        and locked for the instance, see _lock_down); here it must be exactly one SELECT by DuckDB's own
        parser, it runs in a read-only transaction that is always rolled back, it is stopped after
        `timeout` seconds (and by the cursor's max_execution_time), and its rows are fetched in chunks,
        cut at `max_rows` rows or once they pass about `max_bytes` bytes."""
        with self._lock:
            try:
                statements = self.con.extract_statements(sql)
            except duckdb.Error as exc:
                raise QueryRefused(f"cannot parse the query: {str(exc).splitlines()[0]}") from None
            if len(statements) != 1:
                raise QueryRefused(f"one statement only, not {len(statements)}")
            kind = statements[0].type
            if kind != duckdb.StatementType.SELECT:
                raise QueryRefused(f"only a SELECT query is allowed, not {kind.name}")
            timer = threading.Timer(timeout, self.con.interrupt)
            self.con.execute("BEGIN TRANSACTION READ ONLY")
            timer.start()
            try:
                cursor = self.con.execute(sql)
                columns = [d[0] for d in cursor.description or []]
                rows, note = _fetch_capped(cursor, max_rows, max_bytes)
            except duckdb.InterruptException:
                raise WarehouseError(f"the query was stopped after {min(timeout, QUERY_TIMEOUT_SECONDS):g} seconds") from None
            except duckdb.Error as exc:
                raise WarehouseError(str(exc).strip()) from None
            finally:
                timer.cancel()
                self.con.execute("ROLLBACK")
        return QueryAnswer(columns, rows, note is not None, note)

    def interrupt(self) -> None:
        """Stop the query running on this connection (from another thread); its transaction rolls back."""
        self.con.interrupt()

    def close(self) -> None:
        parent = self._parent
        if parent is not None:  # a reader with a prepared cursor: it goes back for the next reader
            with parent._lock:
                if not parent._closed():
                    parent._spare.append(self.con)
                    return
        with self._lock:
            self._ahead = None
            ahead, self._lines_ahead = self._lines_ahead, None
            if ahead is not None:
                self._release_lines(*ahead)
            if self._ahead_pool is not None:
                self._ahead_pool.shutdown(wait=True)  # the read-ahead thread's cursor must close first
            for cursor in self._spare:
                cursor.close()
            self._spare = []
            self.con.close()

    def _closed(self) -> bool:
        try:
            self.con.execute("SELECT 1").fetchall()
            return False
        except duckdb.Error:
            return True


log = logging.getLogger(__name__)

# The in-memory database where event_lines stages an event file's lines (see there).
_LINES_DB = "optimus_lines"

# A file read ahead waits in memory as Arrow (about its size again) until it is staged.
_READ_AHEAD_BYTES = 64 << 20

# Cursors made, before the configuration is locked, for the readers (the API's views): more than the
# API's threads, so a view closed and opened again (or a second pool) still gets one.
READER_CURSORS = 8
_FETCH_ROWS = 256  # rows fetched at a time by read_only_query


def allowed_folders(settings: Settings, spill: Path) -> dict[Path, str]:
    """The only folders a writing engine may touch, by what they are: each data path (as given and
    resolved, and where its `latest` links point, since files are read through them) and the spill
    folder. Every other file of the host is out of its reach (see DuckDBWarehouse._lock_down)."""
    from optimus.discovery import latest_folder

    folders: dict[Path, str] = {}
    for data_path in settings.data_paths:
        for path in (data_path.absolute(), data_path.resolve()):
            folders.setdefault(path, "data path")
        for sub in ("clickstream_logs", "database_state"):
            latest = latest_folder(data_path / sub)
            if latest is not None:
                folders.setdefault(latest, f"the folder {data_path / sub / 'latest'} points at, in data path")
    folders.setdefault(spill.absolute(), "the spill folder")
    return folders


def linked_event_files(settings: Settings, folders: dict[Path, str]) -> list[Path]:
    """The files that links under clickstream_logs/latest point at, outside `folders`: discovery
    ledgers an event file by its resolved path (a package whose day files are links to a store, as
    the benchmark makes), and without these the engine could not read them (event_lines), so every
    such file would go to the slower Python reader. Each file exactly, not its folder: nothing
    beside a linked file becomes readable. Links made after the warehouse opened are not in the
    list; their files are read by the Python reader."""
    from optimus.discovery import latest_folder

    prefixes = [_as_prefix(f) for f in folders]
    found: list[Path] = []
    for data_path in settings.data_paths:
        latest = latest_folder(data_path / "clickstream_logs")
        if latest is None:
            continue
        for root, _dirs, names in os.walk(latest, followlinks=False):
            for name in names:
                path = Path(root) / name
                if path.is_symlink() and (target := path.resolve()).is_file() and not str(target).startswith(tuple(prefixes)):
                    found.append(target)
    return found


def _as_prefix(folder: Path) -> str:
    """A folder as DuckDB's allowed_directories takes it: a prefix, so with its final slash
    (`/data/uqx` alone would let `/data/uqx-old/...` through too)."""
    return str(folder).rstrip("/") + "/"


def _fetch_capped(cursor: duckdb.DuckDBPyConnection, max_rows: int, max_bytes: int) -> tuple[list[tuple], str | None]:
    """The rows of a running query, fetched a chunk at a time and never more than the caps; with
    the note saying where the answer was cut (None: it is whole)."""
    rows: list[tuple] = []
    size = 0
    while True:
        chunk = cursor.fetchmany(min(_FETCH_ROWS, max_rows + 1 - len(rows)))
        if not chunk:
            return rows, None
        for row in chunk:
            if len(rows) >= max_rows:
                return rows, f"truncated at {max_rows} rows"
            size += sum(_value_bytes(v) for v in row)
            if size > max_bytes:
                return rows, f"truncated at {len(rows)} rows: the answer passed {max_bytes} bytes"
            rows.append(row)


def _value_bytes(value: Any) -> int:
    """About the bytes a value takes in an answer (text by its length; numbers and dates a few)."""
    if isinstance(value, (str, bytes, bytearray)):
        return len(value)
    if value is None or isinstance(value, (int, float, bool)):
        return 8
    return len(str(value))


def _bytes(size: str) -> int:
    """DuckDB's rendering of a size ('953.6 MiB', '2.3 GiB') in bytes."""
    number, _, unit = size.partition(" ")
    scale = {
        "": 1,
        "bytes": 1,
        "b": 1,
        "kib": 1 << 10,
        "mib": 1 << 20,
        "gib": 1 << 30,
        "tib": 1 << 40,
        "kb": 10**3,
        "mb": 10**6,
        "gb": 10**9,
        "tb": 10**12,
    }
    return int(float(number) * scale[unit.strip().lower()])


def _read_csv_sql(rejects: str, scans: str, parallel: bool = True) -> str:
    """read_csv of an edX TSV dump (parameters: path, columns), its rejected lines kept in `rejects`;
    parallel=False: read by one thread, in the file's order."""
    return (
        f"read_csv(?, delim={sql_string(sql_tables.FIELD_SEPARATOR)}, quote='', escape='', header=true, all_varchar=true, "
        f"nullstr={sql_string(sql_tables.NULL_TOKEN)}, store_rejects=true, "
        f"rejects_table='{rejects}', rejects_scan='{scans}', auto_detect=false, columns=?{'' if parallel else ', parallel=false'})"
    )


def _rejected_lines(con: duckdb.DuckDBPyConnection, rejects: str, scans: str) -> list[tuple]:
    """The lines read_csv rejected, as (line, reason, raw), one entry per line (DuckDB 2.0 may record
    a line several times, once per missing column); the rejects tables are dropped."""
    bad = con.execute(
        f"SELECT line, min(error_type || ': ' || error_message), min(csv_line) FROM {rejects} GROUP BY line ORDER BY line"
    ).fetchall()
    con.execute(f"DROP TABLE IF EXISTS {rejects}")
    con.execute(f"DROP TABLE IF EXISTS {scans}")
    return bad
