"""Event files read by Spark itself (SparkWarehouse.event_lines): one spark.read.text over a list of
files, so a `.gz` file is one task and an uncompressed file may be split across tasks.

The lines of every file are written once, as a temporary lake table of (file, split, row_id, raw,
event_id, odd): `row_id` is monotonically_increasing_id(), which counts the rows of a task in the
order it read them, so within one split (a file, or a block of an uncompressed file, each read
whole by one task) the rows are numbered in file order. DuckDB then counts the lines of each split
over the parts written (no second Spark job), and a file's line number is its row_id plus the lines of the splits before it
less the split's first row_id: exact whatever the splitting. Each file is then a lake view
`(line, raw, event_id)` of that table, which the shared parse SQL reads like any lake table (and a
TEMP view of the catalog, so DuckDB reads it too: SparkWarehouse._duckdb_reads).

The fingerprint is the SHA-1 of the line's UTF-8 bytes from its first `{`, with one `\\n` after it
(formats/events.py; DuckDB's sha1 and the Python reader hash the same bytes). A file Spark cannot
give as Optimus's reader would is None, and the caller's reader reads it: an archive that is not
whole (formats.archive.gzip_intact, run beside Spark's read: Hadoop's gzip reader fails on some damage
but stops quietly where some archives are cut, and drops a leading byte-order mark), bytes that are not
UTF-8, a CR or a NUL (the lines are split on `\\n` alone, so both stay in the text and are found), a
line too long or too deep (formats.events.beyond_limits_sql, DuckDB's check too), or a path Hadoop
would read as a glob or a URI.
"""

from __future__ import annotations

import gzip
import logging
import re
import shutil
import uuid
import zlib
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

import pyarrow.parquet as pq

from optimus.formats.archive import gzip_intact
from optimus.formats.events import beyond_limits_sql
from optimus.warehouse.dialects.base import sql_string
from optimus.warehouse.lake import MAIN

if TYPE_CHECKING:
    from optimus.warehouse.spark import SparkWarehouse

log = logging.getLogger(__name__)

# lines per Parquet part of the lines table: a day file of many parts is parsed by several tasks
ROWS_PER_PART = 1 << 15
# a path Spark reads as itself (Hadoop reads `*?[]{}\` as a glob, `:` in a name as a URI scheme)
_PLAIN_PATH = re.compile(r"[A-Za-z0-9_./+=,@ -]+")
_COLUMNS = [
    ("file", "VARCHAR"),
    ("split", "BIGINT"),
    ("row_id", "BIGINT"),
    ("raw", "VARCHAR"),
    ("event_id", "VARCHAR"),
    ("odd", "BOOLEAN"),
]


@dataclass(frozen=True)
class Split:
    """A block of a file that one task read whole, in order."""

    url: str  # the file, as Spark names it (_metadata.file_path)
    start: int  # its first byte in the file (_metadata.file_block_start; 0 for a .gz)
    lines: int
    first: int  # the row_id of its first line
    odd: bool  # it holds a line Spark does not give as Optimus's reader would


def _odd_sql(max_line: int) -> str:
    """A line Spark read that Optimus's reader would give otherwise (see the module's docstring)."""
    return (
        f"({beyond_limits_sql('value', max_line, 'octet_length')} OR instr(value, char(13)) > 0 "
        "OR instr(value, char(0)) > 0 OR NOT is_valid_utf8(value))"
    )


# the fingerprint (formats/events.py): SHA-1 of the UTF-8 bytes from the first `{`, and a `\n`
_EVENT_ID_SQL = "CASE WHEN instr(value, '{') > 0 THEN sha1(CAST(concat(substr(value, instr(value, '{')), char(10)) AS BINARY)) END"


def _local(url: str) -> Path:
    return Path(unquote(urlsplit(url).path)).absolute()


@contextmanager
def read_event_files(wh: SparkWarehouse, paths: Sequence[Path], max_line: int) -> Iterator[dict[Path, str | None]]:
    """Each of `paths` as the name of a relation `(line, raw, event_id)` (Warehouse.event_lines), or
    None where Spark cannot read it as Optimus's reader would; all read by one Spark job (a task per
    `.gz` file, per block of an uncompressed one). The relations live inside the context."""
    names: dict[Path, str | None] = {p: None for p in paths}
    plain = [p for p in paths if _PLAIN_PATH.fullmatch(str(p.absolute()))]
    if not plain:
        yield names
        return
    with ThreadPoolExecutor(min(len(plain), 4), thread_name_prefix="optimus-gzip-check") as pool:
        checks = {p: pool.submit(gzip_intact, p) for p in plain}  # beside Spark's read (zlib runs without the GIL)
        lines = _read(wh, plain, max_line)
        readable = [p for p in plain if checks[p].result()]
    if lines is None and len(readable) > 1:  # one damaged archive fails the job: each whole file alone then
        with ExitStack() as stack:
            yield {**names, **{p: stack.enter_context(read_event_files(wh, [p], max_line))[p] for p in readable}}
        return
    if lines is None:
        yield names
        return
    table, folder, splits = lines
    views: list[str] = []
    try:
        with wh.transaction():
            wh.lake.create(MAIN, table, _COLUMNS, temporary=True)
            wh.lake.change_parts(MAIN, table, add=_parts(folder))
            for path in readable:
                key = next((k for k in (path.absolute(), path.resolve()) if k in splits), None)
                file_splits = splits.get(key, []) if key is not None else []
                if any(s.odd for s in file_splits) or (key is None and _has_lines(path)):
                    continue  # (a file with lines Spark named otherwise: never taken for an empty one)
                view = f"{table}_{len(views)}"
                definition = _view_sql(view, table, file_splits)
                wh.lake.add_view(MAIN, view, definition)
                # and for DuckDB, which then reads it where it reads as Spark (SparkWarehouse._duckdb_reads)
                wh.catalog.execute(definition.replace("CREATE VIEW", "CREATE OR REPLACE TEMP VIEW", 1))
                views.append(view)
                names[path] = view
        yield names
    finally:  # (after an error the caller's transaction rolls back, and what was listed with it)
        with suppress(Exception), wh.transaction():
            for view in views:
                wh.lake.drop_view(MAIN, view)
                wh.catalog.execute(f'DROP VIEW IF EXISTS "{view}"')
            wh.lake.drop(MAIN, table)
        shutil.rmtree(folder, ignore_errors=True)


def _read(wh: SparkWarehouse, paths: Sequence[Path], max_line: int) -> tuple[str, Path, dict[Path, list[Split]]] | None:
    """The files' lines written as Parquet parts (one job), and per file its splits as (start, lines,
    first row_id, any odd line), in file order; None when Spark cannot read one of them."""
    spark = wh.spark
    table = "_optimus_event_lines_" + uuid.uuid4().hex[:12]
    folder = wh.lake.new_part(MAIN, table, folder=True)
    try:
        frame = spark.read.option("lineSep", "\n").text([str(p.absolute()) for p in paths])
        frame = frame.selectExpr(
            "_metadata.file_path AS file",
            "_metadata.file_block_start AS split",
            "monotonically_increasing_id() AS row_id",
            "nullif(value, '') AS raw",  # an empty line is NULL, as DuckDB reads it
            f"{_EVENT_ID_SQL} AS event_id",
            f"{_odd_sql(max_line)} AS odd",
        )
        frame.write.option("maxRecordsPerFile", ROWS_PER_PART).parquet(str(folder))
    except Exception as exc:  # (Py4J and Spark errors: a damaged archive, an unreadable file)
        shutil.rmtree(folder, ignore_errors=True)
        log.info("%s: read by Optimus's own reader (Spark cannot read it as plain lines: %s)", paths, str(exc).splitlines()[0][:300])
        return None
    # the lines of each split, counted by DuckDB over the parts just written (a Spark job costs seconds)
    written = [p for p, _ in _parts(folder)]
    counted = (
        wh.catalog.query(
            f"SELECT file, split, min(row_id), count(*), bool_or(odd) FROM read_parquet([{', '.join(sql_string(str(p)) for p in written)}]) "
            "GROUP BY file, split ORDER BY file, split"
        )
        if written
        else []
    )
    splits: dict[Path, list[Split]] = {}
    for url, start, first, lines, odd in counted:
        split = Split(url, int(start), int(lines), int(first), bool(odd))
        splits.setdefault(_local(split.url), []).append(split)
    return table, folder, splits


def _has_lines(path: Path) -> bool:
    """Whether the file holds any byte of text (else Spark reads no row of it)."""
    try:
        with gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb") as fh:
            return bool(fh.read(1))
    except (OSError, EOFError, zlib.error):
        return True


def _parts(folder: Path) -> list[tuple[Path, int]]:
    parts = []
    for file in sorted(folder.glob("*.parquet")):
        rows = pq.read_metadata(file).num_rows
        if rows:
            parts.append((file, rows))
    return parts


def _view_sql(view: str, table: str, splits: list[Split]) -> str:
    """One file's lines: row_id shifted, per split, to the file's line numbers."""
    if not splits:  # a file of no lines: Spark saw no row of it
        return f'CREATE VIEW "{view}" AS SELECT CAST(NULL AS BIGINT) AS line, raw, event_id FROM "{table}" WHERE false'
    before, shifts = 0, []
    for split in splits:
        shifts.append((split.start, before - split.first + 1))
        before += split.lines
    shift = f"CASE split {' '.join(f'WHEN {s} THEN {k}' for s, k in shifts)} END" if len(shifts) > 1 else str(shifts[0][1])
    return f'CREATE VIEW "{view}" AS SELECT row_id + {shift} AS line, raw, event_id FROM "{table}" WHERE file = {sql_string(splits[0].url)}'
