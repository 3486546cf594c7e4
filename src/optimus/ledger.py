"""The file ledger: every claimed file registered once, ingested once, its state queryable.

States: queued -> running -> done | damaged | failed. `damaged` is done with a loss (a damaged
archive: every complete line before the damage is loaded; `damage` says why and at which byte), so
a re-delivery of the file replaces it; `failed` loaded nothing. A rescan stats files and reads a file's content
(for its fingerprint) only when its size or modification time changed; a changed fingerprint
queues the file again, and its service replaces the rows it loaded before.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from optimus import courses
from optimus.discovery import ScanResult
from optimus.warehouse.base import Warehouse

STATES = ("queued", "running", "done", "damaged", "failed")


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def stat_path(path: Path) -> tuple[int, float]:
    """Size and modification time; a folder (an extracted course export) sums its files."""
    if path.is_dir():
        size, mtime = 0, path.stat().st_mtime
        for root, _dirs, files in os.walk(path):
            for name in files:
                st = os.stat(os.path.join(root, name))
                size += st.st_size
                mtime = max(mtime, st.st_mtime)
        return size, mtime
    st = path.stat()
    return st.st_size, st.st_mtime


def fingerprint(path: Path) -> str:
    """A hash of the content (of every file, for a folder)."""
    digest = hashlib.sha1()
    if path.is_dir():
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = Path(root) / name
                digest.update(str(full.relative_to(path)).encode())
                digest.update(fingerprint(full).encode())
        return digest.hexdigest()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class LedgerFile:
    """One row of ingest_files, as services see it."""

    id: int
    path: Path
    data_path: Path
    service: str
    kind: str
    org: str | None
    course_id: str | None
    course_key: str | None
    site: str | None
    table_name: str | None
    file_date: date | None
    package_date: date | None
    size: int
    fingerprint: str

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> LedgerFile:
        return cls(
            id=row["id"],
            path=Path(row["path"]),
            data_path=Path(row["data_path"]),
            service=row["service"],
            kind=row["kind"],
            org=row["org"],
            course_id=row["course_id"],
            course_key=row["course_key"],
            site=row["site"],
            table_name=row["table_name"],
            file_date=row["file_date"],
            package_date=row["package_date"],
            size=row["size"],
            fingerprint=row["fingerprint"],
        )


@dataclass
class RegisterReport:
    new: dict[str, int] = field(default_factory=dict)  # per service
    changed: dict[str, int] = field(default_factory=dict)
    unchanged: int = 0
    unclaimed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def register(wh: Warehouse, scan: ScanResult, claims: Mapping[str, str]) -> RegisterReport:
    """Record every found file in the ledger, queueing new and changed ones.

    :param claims: file kind -> the service that claims it (services that are ignored are left out).
    """
    report = RegisterReport()
    now = utcnow()
    known = {row[0]: row[1:] for row in wh.query("SELECT path, size, mtime, fingerprint, state FROM ingest_files")}
    new_rows: list[list[Any]] = []
    with wh.transaction():
        for found in scan.found:
            service = claims.get(found.info.kind)
            if service is None:
                report.unclaimed += 1
                continue
            path = str(found.path)
            size, mtime = stat_path(found.path)
            previous = known.get(path)
            if previous and previous[0] == size and previous[1] == mtime:
                report.unchanged += 1
                continue
            digest = fingerprint(found.path)
            if previous and previous[2] == digest:
                wh.execute("UPDATE ingest_files SET size = ?, mtime = ? WHERE path = ?", [size, mtime, path])
                report.unchanged += 1
                continue
            if previous:
                wh.execute(
                    "UPDATE ingest_files SET size = ?, mtime = ?, fingerprint = ?, state = 'queued', error = NULL, "
                    "note = 'content changed; queued again', registered_at = ? WHERE path = ?",
                    [size, mtime, digest, now, path],
                )
                report.changed[service] = report.changed.get(service, 0) + 1
                continue
            info = found.info
            new_rows.append(
                [
                    path,
                    str(found.data_path),
                    service,
                    info.kind,
                    info.org,
                    info.course_id,
                    courses.course_key(info.course_id),
                    info.site,
                    info.table,
                    info.day,
                    found.package_date,
                    size,
                    mtime,
                    digest,
                    "queued",
                    now,
                ]
            )
            report.new[service] = report.new.get(service, 0) + 1
        wh.executemany(
            "INSERT INTO ingest_files (path, data_path, service, kind, org, course_id, course_key, site, table_name, "
            "file_date, package_date, size, mtime, fingerprint, state, registered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            new_rows,
        )
        seen = dict(wh.query("SELECT path, reason FROM ingest_skipped"))
        wh.executemany(
            "INSERT INTO ingest_skipped (path, data_path, reason, first_seen, last_seen) VALUES (?, ?, ?, ?, ?)",
            [[str(s.path), str(s.path.parent), s.reason, now, now] for s in scan.skipped if str(s.path) not in seen],
        )
        # seen again for another reason (a rule or the configuration changed): the reason now, and since when
        wh.executemany(
            "UPDATE ingest_skipped SET reason = ?, last_seen = ? WHERE path = ?",
            [[s.reason, now, str(s.path)] for s in scan.skipped if str(s.path) in seen and seen[str(s.path)] != s.reason],
        )
    report.skipped = [(str(s.path), s.reason) for s in scan.skipped]
    return report


def requeue_running(wh: Warehouse) -> int:
    """After a crash, files left running go back to the queue (their rows were never committed)."""
    count = int(wh.scalar("SELECT count(*) FROM ingest_files WHERE state = 'running'") or 0)
    if count:
        wh.execute("UPDATE ingest_files SET state = 'queued', note = 'requeued after an interrupted run' WHERE state = 'running'")
    return count


def requeue_failed(wh: Warehouse, services: list[str]) -> int:
    """Failed files of these services go back to the queue (`optimus retry`)."""
    if not services:
        return 0
    marks = ", ".join("?" for _ in services)
    where = f"state = 'failed' AND service IN ({marks})"
    count = int(wh.scalar(f"SELECT count(*) FROM ingest_files WHERE {where}", services) or 0)
    if count:
        wh.execute(f"UPDATE ingest_files SET state = 'queued', note = 'queued again by retry' WHERE {where}", services)
    return count


def count_in_state(wh: Warehouse, state: str, services: list[str]) -> int:
    if not services:
        return 0
    marks = ", ".join("?" for _ in services)
    return int(wh.scalar(f"SELECT count(*) FROM ingest_files WHERE state = ? AND service IN ({marks})", [state, *services]) or 0)


# Files a reader should look at: failed, damaged, or with quarantined lines or coerced values.
ATTENTION = "(state IN ('failed', 'damaged') OR rows_quarantined > 0 OR coerced > 0)"
ATTENTION_ORDER = "CASE state WHEN 'failed' THEN 0 WHEN 'damaged' THEN 1 ELSE 2 END, service, path"


def attention(wh: Warehouse) -> list[dict[str, Any]]:
    """The files worth a look (ATTENTION), failed first, then damaged, then the rest."""
    return wh.query_dicts(
        "SELECT service, path, state, rows_loaded, rows_quarantined, coalesce(coerced, 0) AS coerced, error, damage "
        f"FROM ingest_files WHERE {ATTENTION} ORDER BY {ATTENTION_ORDER}"
    )


def queued(wh: Warehouse, service: str, path: Path | None = None) -> list[LedgerFile]:
    sql = "SELECT * FROM ingest_files WHERE service = ? AND state = 'queued'"
    params: list[Any] = [service]
    if path is not None:
        sql += " AND path = ?"
        params.append(str(path.resolve()))
    return [LedgerFile.from_row(r) for r in wh.query_dicts(sql + " ORDER BY file_date NULLS FIRST, package_date NULLS FIRST, path", params)]


def mark_running(wh: Warehouse, file: LedgerFile, run_id: int) -> None:
    wh.execute(
        "UPDATE ingest_files SET state = 'running', started_at = ?, attempts = attempts + 1, run_id = ? WHERE id = ?",
        [utcnow(), run_id, file.id],
    )


def mark_done(
    wh: Warehouse,
    file: LedgerFile,
    rows: int,
    quarantined: int,
    note: str | None = None,
    course_id: str | None = None,
    coerced: int = 0,
    damage: str | None = None,
) -> None:
    """The file's rows are in; with `damage` (what was lost, and at which byte) it is `damaged`, not `done`."""
    wh.execute(
        "UPDATE ingest_files SET state = ?, finished_at = ?, rows_loaded = ?, rows_quarantined = ?, coerced = ?, damage = ?, "
        "error = NULL, note = ?, course_id = coalesce(?, course_id), course_key = coalesce(?, course_key) WHERE id = ?",
        [
            "damaged" if damage else "done",
            utcnow(),
            rows,
            quarantined,
            coerced,
            damage,
            note,
            course_id,
            courses.course_key(course_id),
            file.id,
        ],
    )


def mark_failed(wh: Warehouse, file: LedgerFile, error: str) -> None:
    wh.execute("UPDATE ingest_files SET state = 'failed', finished_at = ?, error = ? WHERE id = ?", [utcnow(), error, file.id])


def counts(wh: Warehouse) -> dict[str, dict[str, int]]:
    """Per service, the number of files in each state."""
    result: dict[str, dict[str, int]] = {}
    for service, state, n in wh.query("SELECT service, state, count(*) FROM ingest_files GROUP BY service, state"):
        result.setdefault(service, {s: 0 for s in STATES})[state] = int(n)
    return result


def note_course_id(wh: Warehouse, course_id: str | None) -> None:
    """Remember a course id form in `course_ids` (both forms map to one course_key)."""
    parsed = courses.parse(course_id)
    if not parsed or not course_id:
        return
    form = "new" if course_id.startswith("course-v1:") else "ccx" if course_id.startswith("ccx-v1:") else "old"
    wh.execute(
        "INSERT INTO course_ids (course_key, course_id, form, first_seen) SELECT ?, ?, ?, ? "
        "WHERE NOT EXISTS (SELECT 1 FROM course_ids WHERE course_key = ? AND course_id = ?)",
        [parsed.key, course_id, form, utcnow(), parsed.key, course_id],
    )
