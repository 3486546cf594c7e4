"""The one narrow interface every warehouse backend implements.

Services and the pipeline speak only to this; the backend is chosen from the URL in config,
never inside a service. SQL uses `?` placeholders on every backend. Every method a caller uses is
declared here (no hasattr probing); what an engine can or cannot do is its `capabilities`, which
callers branch on instead of the engine's name (tests/test_import_contract.py checks both).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa

from optimus.warehouse.dialects import Capabilities, Dialect

# The schema the raw edX tables of Database State live in, apart from every table Optimus computes,
# so that no dump's name can ever reach an Optimus table (`SELECT ... FROM edx.auth_user`).
RAW_SCHEMA = "edx"


def raw_schema_for(warehouse_schema: str | None) -> str:
    """The raw tables' schema beside an Optimus schema: `edx` beside the default one (and on DuckDB),
    `<schema>_edx` beside any other, so two Optimus schemas in one database never share raw tables."""
    return RAW_SCHEMA if warehouse_schema in (None, "optimus") else f"{warehouse_schema}_{RAW_SCHEMA}"


class NestingTransactions:
    """`transaction()` for a backend whose transactions nest by joining: one opened inside another is
    part of it, and only the outermost commits or rolls back (a service's rows and the ledger's mark of
    the file commit together). The backend gives `_lock` (re-entrant, held for the whole transaction)
    and `_outermost()`, its real transaction."""

    _depth = 0
    _lock: AbstractContextManager[Any]

    def _outermost(self) -> AbstractContextManager[None]:
        raise NotImplementedError

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
            self._depth = 1
            try:
                with self._outermost():
                    yield
            finally:
                self._depth = 0


# The caps of an untrusted query (the API's /sql and `optimus sql`, on every backend), in one place.
QUERY_MAX_ROWS = 100_000  # rows an answer may hold at most
QUERY_MAX_BYTES = 64 << 20  # about this many bytes of values, then the answer is cut
QUERY_TIMEOUT_SECONDS = 60.0  # the engine stops the query after this long


def raw_table(wh: Warehouse, table: str) -> str:
    """SQL naming the raw edX table `table` in the warehouse's raw schema (`"edx"."auth_user"`),
    both quoted: whatever a dump is called, it can only name a table of that schema."""
    return f"{wh.quote(wh.raw_schema)}.{wh.quote(table)}"


@dataclass(frozen=True)
class QueryAnswer:
    """What an untrusted read-only query returned, capped (see Warehouse.read_only_query)."""

    columns: list[str]
    rows: list[tuple]
    truncated: bool  # True when the cap in rows or bytes cut the answer short
    note: str | None = None  # says where and why it was cut ("truncated at 10000 rows")


class Warehouse(Protocol):
    capabilities: Capabilities  # the same as sql.capabilities
    sql: Dialect  # the fragments shared SQL asks for where engines disagree (warehouse/dialects/)
    url: str
    raw_schema: str  # where Database State's raw edX tables live (RAW_SCHEMA, see raw_schema_for)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement."""

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement for a few rows (bookkeeping only; bulk data goes through the loaders)."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Run a query and return all rows."""

    def query_dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run a query and return rows as dicts keyed by column name."""

    def query_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        """Run a query and return its result as Arrow, typed from the columns' SQL types (exports)."""

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row, or None."""

    def transaction(self) -> AbstractContextManager[None]:
        """Everything inside commits together or not at all; nested use joins the outer one."""

    def table_exists(self, name: str, schema: str | None = None) -> bool:
        """Whether table (or view) `name` exists in `schema`: by default Optimus's own schema, never
        another (a raw table in `raw_schema` is not one of Optimus's)."""

    def columns(self, table: str, schema: str | None = None) -> list[str]:
        """Column names of a table of `schema` (default: Optimus's own), in order."""

    def load_arrow(self, table: str, data: pa.Table | pa.RecordBatchReader, schema: str | None = None) -> int:
        """Append Arrow data to an existing table (of `schema`, default Optimus's own) by column name
        (the bulk path); returns rows."""

    def execute_over_arrow(self, sql: str, data: pa.Table | pa.RecordBatchReader) -> None:
        """Run `sql`, in which the relation `arrow_block` is `data`; nothing named arrow_block outlives
        the statement. In place when capabilities.scans_arrow_in_place, else through a temporary table
        (one copy per call: a caller running several statements over one block loads it once instead)."""

    def stage_tsv(self, path: Path, staging: str, numbered: bool = True) -> tuple[list[str], list[tuple[int, str, str]]]:
        """Load an edX TSV dump (header row, literal NULL, backslash escapes decoded) into a new
        all-text temporary table `staging` with an extra `_line` column (the row's line in the file;
        with numbered=False it may be NULL, where numbering costs a slower read).
        Returns the header's column names and the rejected lines as (line, reason, raw text)."""

    def prefetch_tsv(self, path: Path | None) -> None:
        """A hint: an unnumbered stage_tsv of `path` follows the current file (a backend may start
        reading it now); None: nothing follows, let go of what was read."""

    def event_lines(self, path: Path, max_line: int) -> AbstractContextManager[str | None]:
        """The lines of a tracking-log file (`.log` or `.log.gz`), read and decompressed by the engine
        itself, as the name of a relation `(line, raw, event_id)` valid inside the context: `line` the
        1-based line number in the file, `raw` the line's text without its `\\n` (NULL or blank for an
        empty line), `event_id` the fingerprint of optimus.formats.events (the SHA-1 hex of the line
        from its first `{`, with one `\\n` after it; NULL without a `{`). The shared SQL of
        Clickstream (formats.events.parse_sql) then parses, resolves and quarantines from it.

        None when the engine does not read files (capabilities.reads_files False: PostgreSQL, where
        the caller reads the file in Python and loads its lines by COPY) or cannot read this file as
        plain lines: an archive it cannot read to the end, bytes that are not UTF-8, a carriage
        return, a NUL, a line over `max_line` bytes or nested too deep. The caller then reads the
        file with its own reader, which keeps what a damaged archive holds and quarantines each odd
        line alone (docs/clickstream.md). A reading never fails the caller's transaction.
        An engine that reads files in parallel (Spark: spark.read.text) implements this alone."""

    def prefetch_event_lines(self, path: Path | None, max_line: int) -> None:
        """A hint: event_lines(path, max_line) follows the current file's; an engine that reads files may
        start reading this one now, beside the work on the current one. None: nothing follows, let go
        of what was read ahead. A no-op where the engine reads no files."""

    def hold_outside(self, nbytes: int) -> None:
        """The process now holds `nbytes` of data outside the engine (0: none again); an engine with
        a memory limit lowers it by as much, so that the process as a whole keeps to the setting."""

    def drop_staged(self, staging: str) -> None:
        """Remove what stage_tsv created."""

    def try_cast_sql(self, expr: str, sql_type: str) -> str:
        """SQL that casts `expr` to `sql_type`, giving NULL (not an error) when it does not fit."""

    def quote(self, identifier: str) -> str:
        """Quote an identifier for this dialect."""

    def read_only_query(self, sql: str, *, max_rows: int, max_bytes: int, timeout: float) -> QueryAnswer:
        """Run one untrusted query (the API's and `optimus sql`'s) so that the engine itself can
        reach nothing but the warehouse: exactly one SELECT, read only, stopped after `timeout`
        seconds, its answer cut at `max_rows` rows or about `max_bytes` bytes (streamed, never
        fetched whole). Raises QueryRefused (not a SELECT) or WarehouseError (the engine's error)."""

    def reader(self) -> Warehouse:
        """A read-only view of the same warehouse for reads on another thread (the API's views): it
        sees committed data and never waits for this connection; close it when done."""

    def interrupt(self) -> None:
        """Stop the statement running on this connection (called from another thread); its
        transaction rolls back."""

    def close(self) -> None: ...
