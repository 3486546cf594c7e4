"""Export files: CSV and Parquet, mode 0600, and a run's files published all at once.

Exports hold personal data, so they are created readable by the owner only. File names carry a
UTC timestamp that sorts by time (`20240107T153000123456Z`).

All or nothing per run: a run writes its files into its own staging folder inside the export
folder (`EXPORT_PATH/.staging/<set>/`), seals the set (a manifest written last) before the
warehouse commits the run, and renames each file into place after the commit. So what a reader of
the export folder can rely on: a file under its final name is complete and belongs to a run the
warehouse committed; `.staging/` is never to be read. A run killed before its commit leaves a
staging folder that the next start removes (its files are written again by the rerun, once); a
run killed after its commit but before every rename is finished by the next start (`recover`).
Every path written is resolved and checked to be inside the export folder.

Use:
    stamp = exports.timestamp()
    staged = export_set.path(f"emailcrm_{stamp}.csv")  # where to write; published as EXPORT_PATH/emailcrm_...
    exports.write_csv(staged, columns, rows)           # rows: iterable of sequences
    exports.export_query(wh, sql, params, export_set.path(f"personcourse_x_{stamp}"))  # .csv and .parquet
    export_set.seal(); <commit>; export_set.publish()  # the pipeline does this for a service run
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from optimus import paths
from optimus.errors import OptimusError, UnsafeName
from optimus.warehouse.base import Warehouse

FILE_MODE = 0o600
STAGING = ".staging"  # EXPORT_PATH/.staging/<set>/: a run's files until the warehouse has committed the run
MANIFEST = "manifest.json"  # written last into a staging folder: the set is whole


class ExportError(OptimusError):
    """An export could not be written; the message names the file."""


_pauses: dict[str, int] = {}


def pause_for_tests(point: str) -> None:
    """For crash tests: at the k-th time `point` is reached (OPTIMUS_TEST_PAUSE_AT=point or point#k), write
    the marker file (OPTIMUS_TEST_PAUSE_MARKER) and wait to be killed."""
    wanted = os.environ.get("OPTIMUS_TEST_PAUSE_AT", "")
    marker = os.environ.get("OPTIMUS_TEST_PAUSE_MARKER")
    if not wanted or not marker or wanted.split("#")[0] != point:
        return
    _pauses[point] = _pauses.get(point, 0) + 1
    if _pauses[point] == int(wanted.split("#")[1] if "#" in wanted else 1):
        Path(marker).write_text(point)
        while True:
            time.sleep(1)


def timestamp(now: datetime | None = None) -> str:
    """A UTC timestamp for file names that sorts by time: `YYYYMMDDTHHMMSSffffffZ`."""
    now = now or datetime.now(UTC)
    if now.tzinfo is not None:
        now = now.astimezone(UTC)
    return now.strftime("%Y%m%dT%H%M%S%fZ")


def _inside(folder: Path | str, *parts: str) -> Path:
    return paths.inside(folder, *parts, what="an export file name")


class ExportSet:
    """One run's export files: staged in EXPORT_PATH/.staging/<name>/, then renamed into place together."""

    def __init__(self, export_path: Path | str, name: str, **meta: Any) -> None:
        self.root = Path(export_path)
        self.name = name
        self.meta = meta  # recorded in the manifest: what `recover` needs to decide (run_id, warehouse)
        self.files: list[str] = []  # final names, relative to the export folder

    @property
    def folder(self) -> Path:
        return _inside(self.root, STAGING, self.name)

    def path(self, relative: str) -> Path:
        """Where to write the file that will be published as EXPORT_PATH/relative."""
        final = _inside(self.root, relative)
        rel = os.path.relpath(os.path.realpath(final), os.path.realpath(self.root))
        if rel.split(os.sep)[0] == STAGING:
            raise UnsafeName(f"{relative!r}: the staging folder is not an export")
        staged = _inside(self.folder, rel)
        try:
            staged.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ExportError(f"{staged.parent}: cannot make the export folder: {exc}") from None
        self.files.append(rel)
        return staged

    def seal(self) -> None:
        """Write the manifest, last: from now on the set is whole (published if its run commits)."""
        if not self.files:
            return
        for rel in self.files:
            _fsync(self.folder / rel)
        with atomic_path(self.folder / MANIFEST) as tmp:
            tmp.write_text(json.dumps({**self.meta, "files": self.files}, default=str), encoding="utf-8")
        _fsync_dir(self.folder)

    def publish(self) -> list[Path]:
        """Rename every file into place (a file already moved by an interrupted publish is kept), then drop the folder."""
        published = []
        for rel in self.files:
            staged, final = _inside(self.folder, rel), _inside(self.root, rel)
            final.parent.mkdir(parents=True, exist_ok=True)
            if staged.exists():
                os.replace(staged, final)
                pause_for_tests("export-publishing")
            published.append(final)
        for folder in {_inside(self.root, rel).parent for rel in self.files}:
            _fsync_dir(folder)
        self.discard()
        return published

    def discard(self) -> None:
        """Remove the staging folder and whatever is in it (a run that did not commit exports nothing)."""
        folder = self.root / STAGING / self.name
        if folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)
        _remove_if_empty(self.root / STAGING)

    @classmethod
    def sealed(cls, export_path: Path, name: str) -> ExportSet | None:
        """The set of a staging folder from its manifest; None when it was never sealed."""
        manifest = Path(export_path) / STAGING / name / MANIFEST
        try:
            meta = json.loads(manifest.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        files = meta.pop("files", [])
        found = cls(export_path, name, **meta)
        found.files = [str(f) for f in files]
        return found


def recover(export_path: Path | str, committed: Callable[[dict[str, Any]], bool | None]) -> tuple[int, int]:
    """Leftovers of killed runs: a sealed set whose run committed is published; any other set is removed,
    and so are temporary files beside the exports. Returns (sets published, sets removed).

    :param committed: True when the warehouse committed the run of a manifest, False when it did not,
        None when the set is not this warehouse's (another warehouse writing to the same folder) and is left.
    """
    root = Path(export_path)
    published = removed = 0
    staging = root / STAGING
    for folder in sorted(staging.iterdir()) if staging.is_dir() else []:
        if _owner_alive(folder.name):
            continue  # another process is writing this set now
        found = ExportSet.sealed(root, folder.name)
        verdict = committed(found.meta) if found is not None else False
        if verdict is None:
            continue
        if verdict and found is not None:
            found.publish()
            published += 1
        else:
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    _remove_if_empty(staging)
    for tmp in root.rglob(".*.tmp") if root.is_dir() else []:
        if STAGING not in tmp.relative_to(root).parts:
            tmp.unlink(missing_ok=True)  # a half-written file of an older version's writer
    return published, removed


def set_name(kind: str) -> str:
    """A staging folder name that says which process owns it: `<kind>-<pid>-<timestamp>`."""
    return f"{kind}-{os.getpid()}-{timestamp()}"


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # not there, or another set is staged in it


def _owner_alive(name: str) -> bool:
    parts = name.split("-")
    if len(parts) < 3 or not parts[1].isdigit() or int(parts[1]) == os.getpid():
        return False
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        _fsync(path)
    except OSError:
        pass  # not every file system syncs a folder; the rename is still atomic


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
        pause_for_tests("export-writing")
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


def query_table(wh: Warehouse, sql: str, params: Sequence[Any] = ()) -> pa.Table:
    """A query's result as an Arrow table, typed by the engine."""
    return wh.query_arrow(sql, params)


def export_query(wh: Any, sql: str, params: Sequence[Any], into: ExportSet, base: str, parquet: bool = True) -> list[str]:
    """Stage one query's result as `base`.csv (and `base`.parquet) in a set; returns the final names."""
    table = query_table(wh, sql, params)
    if parquet:
        return write_both(into, base, table)
    write_csv(
        into.path(base + ".csv"), table.column_names, zip(*[c.to_pylist() for c in table.columns], strict=True) if table.num_columns else []
    )
    return [base + ".csv"]


def publish_together(export_path: Path | str, write: Callable[[ExportSet], list[str]]) -> list[Path]:
    """Files staged by `write` (which returns their names) in one set of their own, published all together
    once every one is written, and discarded on any error: an export is seen whole or not at all."""
    staged = ExportSet(export_path, set_name("export"))
    try:
        names = write(staged)
        staged.seal()
        staged.publish()
    except BaseException:
        staged.discard()
        raise
    return [Path(export_path) / n for n in names]


def write_both(into: ExportSet, base: str, table: pa.Table, csv_rows: Iterable[Sequence[Any]] | None = None) -> list[str]:
    """Stage an Arrow table as `base`.csv (its rows, or `csv_rows` when the CSV writes them otherwise) and
    `base`.parquet; returns the two names."""
    rows = csv_rows if csv_rows is not None else (zip(*[c.to_pylist() for c in table.columns], strict=True) if table.num_columns else [])
    write_csv(into.path(base + ".csv"), table.column_names, rows)
    write_parquet(into.path(base + ".parquet"), table)
    return [base + ".csv", base + ".parquet"]


def safe_name(text: str) -> str:
    """A course id as a file-name part: `course-v1:A+B+C` -> `course-v1_A+B+C`, `A/B/C` -> `A-B-C`."""
    return "".join(c if (c.isalnum() or c in "+-._") else ("-" if c == "/" else "_") for c in text)
