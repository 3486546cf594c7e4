"""Export files: CSV and Parquet written under a temporary name, then renamed, mode 0600.

Exports hold personal data, so they are created readable by the owner only, and a failed
export never leaves a partial file under the final name (the temporary file is removed).
File names carry a UTC timestamp that sorts by time (`20240107T153000Z`).

Use:
    stamp = exports.timestamp()
    exports.write_csv(path, columns, rows)           # rows: iterable of sequences
    exports.write_parquet(path, arrow_table)
    exports.export_query(wh, sql, params, base)      # base.csv and base.parquet from one query
"""
from __future__ import annotations

import csv
import os
import tempfile
from contextlib import contextmanager
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from optimus.errors import OptimusError

FILE_MODE = 0o600


class ExportError(OptimusError):
    """An export could not be written; the message names the file."""


def timestamp(now: datetime | None = None) -> str:
    """A UTC timestamp for file names that sorts by time: `YYYYMMDDTHHMMSSffffffZ`."""
    now = now or datetime.now(timezone.utc)
    if now.tzinfo is not None:
        now = now.astimezone(timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S%fZ")


@contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path (mode 0600) in the final folder; rename it to `final` on success."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, FILE_MODE)
    try:
        yield tmp_path
        os.chmod(tmp_path, FILE_MODE)
        os.replace(tmp_path, final)
    except BaseException as exc:
        tmp_path.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ExportError(f"{final}: cannot write export: {exc}") from None
        raise


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, date):
        return value.isoformat()
    return value


def write_csv(path: Path, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Write a CSV with a header row (always, even with no rows); NULL is written empty. Returns rows."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(list(columns))
        for row in rows:
            writer.writerow([_cell(v) for v in row])
            n += 1
    return n


def write_parquet(path: Path, table: pa.Table) -> int:
    """Write an Arrow table as Parquet. Returns rows."""
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return table.num_rows


def query_table(wh: Any, sql: str, params: Sequence[Any] = ()) -> pa.Table:
    """A query's result as an Arrow table, on any warehouse (query_arrow when it has one)."""
    if hasattr(wh, "query_arrow"):
        return wh.query_arrow(sql, params)
    rows = wh.query_dicts(sql, params)
    return pa.Table.from_pylist(rows)


def export_query(wh: Any, sql: str, params: Sequence[Any], base: Path, parquet: bool = True) -> list[Path]:
    """Write one query's result to `base`.csv (and `base`.parquet); returns the paths written."""
    table = query_table(wh, sql, params)
    csv_path = base.with_name(base.name + ".csv")
    write_csv(csv_path, table.column_names, zip(*[c.to_pylist() for c in table.columns]) if table.num_columns else [])
    written = [csv_path]
    if parquet:
        pq_path = base.with_name(base.name + ".parquet")
        write_parquet(pq_path, table)
        written.append(pq_path)
    return written


def safe_name(text: str) -> str:
    """A course id as a file-name part: `course-v1:A+B+C` -> `course-v1_A+B+C`, `A/B/C` -> `A-B-C`."""
    return "".join(c if (c.isalnum() or c in "+-._") else ("-" if c == "/" else "_") for c in text)
