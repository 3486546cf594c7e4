"""The embedded default: one DuckDB file, one writer (this process), no server."""
from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import duckdb
import pyarrow as pa

from optimus.config import Settings
from optimus.errors import WarehouseError, WarehouseLocked

# A private-use character stands in for an escaped backslash while the other escapes are decoded.
_BACKSLASH = "\ue000"


def decode_escapes_sql(column: str) -> str:
    """SQL decoding edX's `\\t \\n \\r \\\\` escapes in one column; cheap for values without a backslash."""
    inner = f"replace({column}, '\\\\', '{_BACKSLASH}')"
    for escaped, char in (("\\t", 9), ("\\n", 10), ("\\r", 13)):
        inner = f"replace({inner}, '{escaped}', chr({char}))"
    inner = f"replace({inner}, '{_BACKSLASH}', '\\')"
    return f"CASE WHEN strpos({column}, '\\') > 0 THEN {inner} ELSE {column} END"


class DuckDBWarehouse:
    """A DuckDB file opened read-write by one process (DuckDB locks the file for others)."""

    dialect = "duckdb"

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
    def table_exists(self, name: str) -> bool:
        return bool(self.scalar("SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND NOT temporary", [name])) or bool(
            self.scalar("SELECT count(*) FROM duckdb_views() WHERE view_name = ? AND NOT internal", [name])
        )

    def columns(self, table: str) -> list[str]:
        return [r[0] for r in self.query("SELECT column_name FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index", [table])]

    def try_cast_sql(self, expr: str, sql_type: str) -> str:
        return f"TRY_CAST({expr} AS {sql_type})"

    def quote(self, identifier: str) -> str:
        return '"' + identifier.replace('"', '""') + '"'

    # -- bulk loaders -----------------------------------------------------------------------
    def load_arrow(self, table: str, data: pa.Table | pa.RecordBatchReader) -> int:
        with self._lock:
            self.con.register("_optimus_arrow_in", data)
            try:
                names = data.schema.names
                cols = ", ".join(self.quote(n) for n in names)
                before = self.con.execute(f"SELECT count(*) FROM {self.quote(table)}").fetchall()[0][0]  # fetchall: DuckDB 2.0 refuses work on an unfinished result
                self.con.execute(f"INSERT INTO {self.quote(table)} ({cols}) SELECT {cols} FROM _optimus_arrow_in")
                return self.con.execute(f"SELECT count(*) FROM {self.quote(table)}").fetchall()[0][0] - before
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

    def stage_tsv(self, path: Path, staging: str) -> tuple[list[str], list[tuple[int, str, str]]]:
        """Stage an edX TSV dump as a temporary all-text relation with escapes decoded (see drop_staged).

        Returns the header's column names and the rejected lines as (line, reason, raw text).
        """
        self._staged += 1
        rejects = f"_rejects_{self._staged}"
        scans = f"_reject_scans_{self._staged}"
        q = self.quote
        with self._lock:
            try:
                # Insertion order is kept for this one read, so rowid follows the file's line order.
                self.con.execute("SET preserve_insertion_order = true")
                self.con.execute(
                    f"CREATE OR REPLACE TEMP TABLE {q(staging + '_raw')} AS SELECT * FROM read_csv(?, delim='\t', quote='', escape='', "
                    f"header=true, all_varchar=true, nullstr='NULL', store_rejects=true, rejects_table='{rejects}', "
                    f"rejects_scan='{scans}', auto_detect=false, columns=?)",
                    [str(path), self._header_columns(path)],
                )
            except duckdb.Error as exc:
                raise WarehouseError(f"{path}: cannot read as an edX TSV dump: {exc}") from None
            finally:
                self.con.execute("SET preserve_insertion_order = false")
            names = [r[0] for r in self.con.execute(f"DESCRIBE {q(staging + '_raw')}").fetchall()]
            # DuckDB 2.0 may record one line several times (once per missing column): one entry per line
            bad = self.con.execute(
                f"SELECT line, min(error_type || ': ' || error_message), min(csv_line) FROM {rejects} GROUP BY line ORDER BY line"
            ).fetchall()
            # A view, not a copy: escapes are decoded while the rows are read, once, by the insert.
            raw = q(staging + "_raw")
            base = self.con.execute(f"SELECT coalesce(min(rowid), 0) FROM {raw}").fetchall()[0][0]
            # a row's line = 2 (after the header) + its position + the rejected lines before it; with
            # rejects at lines r_1 < r_2 < ..., row p comes after r_i exactly when r_i - 1 - i <= p
            shift = ""
            if bad:
                self.con.execute(f"CREATE OR REPLACE TEMP TABLE {q(staging + '_shift')} (t BIGINT)")
                self.con.executemany(f"INSERT INTO {q(staging + '_shift')} VALUES (?)", [[line - 1 - i] for i, (line, _r, _t) in enumerate(bad, start=1)])
                shift = f" + (SELECT count(*) FROM {q(staging + '_shift')} s WHERE s.t <= r.rowid - {int(base)})"
            decoded = ", ".join(f"{decode_escapes_sql(q(n))} AS {q(n)}" for n in names)
            self.con.execute(
                f"CREATE OR REPLACE TEMP VIEW {q(staging)} AS SELECT {decoded}, (r.rowid - {int(base)} + 2){shift} AS _line FROM {raw} r"
            )
            self.con.execute(f"DROP TABLE IF EXISTS {rejects}")
            self.con.execute(f"DROP TABLE IF EXISTS {scans}")
        return names, [(int(line), str(reason), str(raw)[:2000]) for line, reason, raw in bad]

    def drop_staged(self, staging: str) -> None:
        """Remove what stage_tsv created."""
        q = self.quote
        with self._lock:
            self.con.execute(f"DROP VIEW IF EXISTS {q(staging)}")
            self.con.execute(f"DROP TABLE IF EXISTS {q(staging + '_raw')}")
            self.con.execute(f"DROP TABLE IF EXISTS {q(staging + '_shift')}")

    @staticmethod
    def _header_columns(path: Path) -> dict[str, str]:
        """The header row, read by us: DuckDB's sniffer must not guess types or names."""
        import gzip

        opener = gzip.open if path.name.endswith(".gz") else open
        with opener(path, "rb") as fh:  # type: ignore[operator]
            header = fh.readline().decode("utf-8", errors="replace").rstrip("\r\n")
        if not header:
            raise WarehouseError(f"{path}: empty file, no header row")
        names: dict[str, str] = {}
        for i, name in enumerate(header.split("\t")):
            key = name.strip() or f"column{i}"
            while key in names:
                key += "_"
            names[key] = "VARCHAR"
        return names

    def reader(self) -> "DuckDBWarehouse":
        """A view of the same database through its own cursor and lock, for reads on another thread
        (the API in the daemon): it sees committed data and never waits for the writer's lock."""
        view = object.__new__(DuckDBWarehouse)
        view.url, view.path = self.url, self.path
        view.con = self.con.cursor()
        view._depth, view._lock, view._staged = 0, threading.RLock(), 0
        return view

    def interrupt(self) -> None:
        """Stop the query running on this connection (from another thread); its transaction rolls back."""
        self.con.interrupt()

    def close(self) -> None:
        with self._lock:
            self.con.close()
