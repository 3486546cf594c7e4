"""The embedded default: one DuckDB file, one writer (this process), no server."""
from __future__ import annotations

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from optimus.config import Settings
from optimus.errors import WarehouseError, WarehouseLocked
from optimus.formats import sql_tables
from optimus.warehouse.base import raw_schema_for

# A private-use character stands in for an escaped backslash while the other escapes are decoded.
_BACKSLASH = "\ue000"


def decode_escapes_sql(column: str) -> str:
    """SQL decoding edX's `\\t \\n \\r \\\\` escapes in one column; cheap for values without a backslash.

    A value whose only escapes are `\\\\` (JSON state, say) takes one replace instead of five: with
    no `\\t`, `\\n`, `\\r` (nor the stand-in) in it, the others change nothing.
    """
    inner = f"replace({column}, '\\\\', '{_BACKSLASH}')"
    for escaped, char in (("\\t", 9), ("\\n", 10), ("\\r", 13)):
        inner = f"replace({inner}, '{escaped}', chr({char}))"
    inner = f"replace({inner}, '{_BACKSLASH}', '\\')"
    others = " OR ".join(f"contains({column}, '{text}')" for text in ("\\t", "\\n", "\\r", _BACKSLASH))
    # a value that holds the stand-in itself (found by fuzzing): split at each `\\` instead (slower, rare)
    split = (f"array_to_string(list_transform(string_split({column}, '\\\\'), lambda _optimus_part: "
             f"replace(replace(replace(_optimus_part, '\\t', chr(9)), '\\n', chr(10)), '\\r', chr(13))), '\\')")
    return (f"CASE WHEN contains({column}, '\\') THEN (CASE WHEN contains({column}, '{_BACKSLASH}') THEN {split} "
            f"WHEN {others} THEN {inner} ELSE replace({column}, '\\\\', '\\') END) ELSE {column} END")


class DuckDBWarehouse:
    """A DuckDB file opened read-write by one process (DuckDB locks the file for others)."""

    dialect = "duckdb"
    raw_schema = raw_schema_for(None)

    def __init__(self, settings: Settings, read_only: bool = False) -> None:
        self.url = settings.warehouse_url
        path = settings.warehouse_path()
        assert path is not None
        self.path = path
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        elif not path.exists():
            raise WarehouseError(f"warehouse {path} does not exist yet (run 'optimus ingest' first)")
        spill = settings.spill_path or path.parent / f"{path.name}.spill"
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
                    f"warehouse {path} is in use by another Optimus process ({exc}); "
                    "talk to it through its API, or stop it first"
                ) from None
            raise WarehouseError(f"cannot open warehouse {path}: {exc}") from None
        self._depth = 0
        self._lock = threading.RLock()
        self._staged = 0
        self._memory_limit = _bytes(self.con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])
        self._ahead: tuple[Path, Future] | None = None  # a file being read ahead (see prefetch_tsv)
        self._ahead_pool: ThreadPoolExecutor | None = None
        self._registered: set[str] = set()

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
            return [dict(zip(names, row)) for row in cur.fetchall()]

    def query_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        with self._lock:
            rel = self.con.sql(sql, params=list(params) or None)
            # DuckDB 2.0 renamed fetch_arrow_table to to_arrow_table
            return rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.fetch_arrow_table()

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self.con.execute("BEGIN TRANSACTION")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                self.con.execute("ROLLBACK")
                raise
            self._depth = 0
            self.con.execute("COMMIT")

    # -- catalogue --------------------------------------------------------------------------
    # the catalogue of one schema only (default: Optimus's own, main): a raw edX table of the same
    # name in the raw schema is another table
    _IN_SCHEMA = "database_name = current_database() AND schema_name = coalesce(?, current_schema())"

    def table_exists(self, name: str, schema: str | None = None) -> bool:
        return bool(self.scalar(f"SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND {self._IN_SCHEMA}", [name, schema])) or bool(
            self.scalar(f"SELECT count(*) FROM duckdb_views() WHERE view_name = ? AND NOT internal AND {self._IN_SCHEMA}", [name, schema])
        )

    def columns(self, table: str, schema: str | None = None) -> list[str]:
        return [r[0] for r in self.query(
            f"SELECT column_name FROM duckdb_columns() WHERE table_name = ? AND {self._IN_SCHEMA} ORDER BY column_index", [table, schema]
        )]

    def try_cast_sql(self, expr: str, sql_type: str) -> str:
        return f"TRY_CAST({expr} AS {sql_type})"

    def quote(self, identifier: str) -> str:
        return '"' + identifier.replace('"', '""') + '"'

    # -- bulk loaders -----------------------------------------------------------------------
    def load_arrow(self, table: str, data: pa.Table | pa.RecordBatchReader, schema: str | None = None) -> int:
        target = f"{self.quote(schema)}.{self.quote(table)}" if schema else self.quote(table)
        with self._lock:
            self.con.register("_optimus_arrow_in", data)
            try:
                names = data.schema.names
                cols = ", ".join(self.quote(n) for n in names)
                before = self.con.execute(f"SELECT count(*) FROM {target}").fetchall()[0][0]  # fetchall: DuckDB 2.0 refuses work on an unfinished result
                self.con.execute(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM _optimus_arrow_in")
                return self.con.execute(f"SELECT count(*) FROM {target}").fetchall()[0][0] - before
            finally:
                self.con.unregister("_optimus_arrow_in")

    def execute_over_arrow(self, sql: str, data: pa.Table, params: Sequence[Any] = ()) -> None:
        """Run `sql`, in which the relation `arrow_block` is `data`, read in place (DuckDB only).

        DuckDB's scan of a Python variable: no copy, and nothing of it outlives the statement
        (a view registered inside a transaction keeps its table in memory until the commit, so a
        big file's blocks would pile up).
        """
        arrow_block = data  # noqa: F841  (read by name by DuckDB's replacement scan)
        with self._lock:
            self.con.execute(sql, list(params))

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
                    self.con.executemany(f"INSERT INTO {q(staging + '_shift')} VALUES (?)", [[line - 1 - i] for i, (line, _r, _t) in enumerate(bad, start=1)])
                    shift = f" + (SELECT count(*) FROM {q(staging + '_shift')} s WHERE s.t <= r.rowid - {int(base)})"
                numbering = f"(r.rowid - {int(base)} + 2){shift}"
            # A view, not a copy: escapes are decoded while the rows are read, in the columns that hold a
            # backslash (the decoding of every column would cost each query over the view time to plan).
            if escaped is None:
                escaped = self.con.execute(f"SELECT {', '.join(f'bool_or(contains({q(n)}, chr(92)))' for n in names)} FROM {raw}").fetchall()[0]
            decoded = ", ".join(f"{decode_escapes_sql(q(n)) if has else q(n)} AS {q(n)}" for n, has in zip(names, escaped))
            self.con.execute(f"CREATE OR REPLACE TEMP VIEW {q(staging)} AS SELECT {decoded}, {numbering} AS _line FROM {raw} r")
        return names, [(int(line), str(reason), str(text)[:2000]) for line, reason, text in bad]

    def _read_tsv(self, path: Path, raw: str, numbered: bool) -> tuple[list[str], list[tuple]]:
        """Read the dump into the temporary table `raw`; returns its column names and rejected lines."""
        self._staged += 1
        rejects, scans = f"_rejects_{self._staged}", f"_reject_scans_{self._staged}"
        columns = self._header_columns(path)
        try:
            if numbered:  # insertion order is kept for this one read, so rowid follows the file's line order
                self.con.execute("SET preserve_insertion_order = true")
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {raw} AS SELECT * FROM {_read_csv_sql(rejects, scans)}", [str(path), columns])
        except duckdb.Error as exc:
            raise WarehouseError(f"{path}: cannot read as an edX TSV dump: {exc}") from None
        finally:
            if numbered:
                self.con.execute("SET preserve_insertion_order = false")
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

    def _read_tsv_apart(self, cursor: duckdb.DuckDBPyConnection, path: Path, n: int) -> tuple[list[str], pa.Table, list[tuple], list[bool | None]]:
        """On the read-ahead thread: the dump as an Arrow table, with its rejected lines and which
        columns hold a backslash."""
        try:
            columns = self._header_columns(path)
            rejects, scans = f"_rejects_{n}", f"_reject_scans_{n}"
            rel = cursor.sql(f"SELECT * FROM {_read_csv_sql(rejects, scans)}", params=[str(path), columns])
            table = rel.to_arrow_table() if hasattr(rel, "to_arrow_table") else rel.fetch_arrow_table()  # renamed in DuckDB 2.0
            escaped = [pc.any(pc.match_substring(column, "\\")).as_py() for column in table.columns]
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
        """DuckDB fills its memory_limit as a cache: while the process holds `nbytes` elsewhere, the
        engine gets the setting less that much (never less than half of it)."""
        share = max(self._memory_limit - nbytes, self._memory_limit // 2)
        with self._lock:
            self.con.execute(f"SET memory_limit = '{share >> 20}MiB'")

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

    def reader(self) -> "DuckDBWarehouse":
        """A view of the same database through its own cursor and lock, for reads on another thread
        (the API in the daemon): it sees committed data and never waits for the writer's lock."""
        view = object.__new__(DuckDBWarehouse)
        view.url, view.path = self.url, self.path
        view.con = self.con.cursor()
        view._depth, view._lock, view._staged = 0, threading.RLock(), 0
        view._ahead, view._ahead_pool, view._registered = None, None, set()
        view._memory_limit = self._memory_limit
        return view

    def interrupt(self) -> None:
        """Stop the query running on this connection (from another thread); its transaction rolls back."""
        self.con.interrupt()

    def close(self) -> None:
        with self._lock:
            self._ahead = None
            if self._ahead_pool is not None:
                self._ahead_pool.shutdown(wait=True)  # the read-ahead thread's cursor must close first
            self.con.close()


# A file read ahead waits in memory as Arrow (about its size again) until it is staged.
_READ_AHEAD_BYTES = 64 << 20


def _bytes(size: str) -> int:
    """DuckDB's rendering of a size ('953.6 MiB', '2.3 GiB') in bytes."""
    number, _, unit = size.partition(" ")
    scale = {"": 1, "bytes": 1, "b": 1, "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40,
             "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
    return int(float(number) * scale[unit.strip().lower()])


def _read_csv_sql(rejects: str, scans: str) -> str:
    """read_csv of an edX TSV dump (parameters: path, columns), its rejected lines kept in `rejects`."""
    return (
        "read_csv(?, delim='\t', quote='', escape='', header=true, all_varchar=true, nullstr='NULL', store_rejects=true, "
        f"rejects_table='{rejects}', rejects_scan='{scans}', auto_detect=false, columns=?)"
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
