"""Clickstream: daily tracking-log files (`.log`, `.log.gz`) into `events`, each event once.

Reads event files under clickstream_logs/latest; writes `events` (one row per distinct event,
typed), `event_files` (which files hold each event, and on which line), `events_quarantine`
(lines that are not events, with line number and reason). Needs nothing.

The rules of a line (junk, fingerprint, course, time, payload) are in optimus.formats.events.
A file is read in blocks by a reader thread (decompression runs beside the engine), each block
is parsed set-at-a-time in SQL, and events are compared by fingerprint only within the days the
block touches. Re-ingesting a changed file replaces what it held: events only it held and no
longer holds disappear; events another file holds stay.
"""
from __future__ import annotations

import gzip
import os
import queue
import threading
import zlib
from datetime import date
from pathlib import Path
from typing import Any, Iterator

import pyarrow as pa

from optimus import discovery
from optimus.errors import IngestError
from optimus.formats import events as rules
from optimus.ledger import LedgerFile
from optimus.services.base import FileResult, RunContext, Service, register
from optimus.warehouse.base import Warehouse

_LINES, _PARSED, _FIRST = "_click_lines", "_click_parsed", "_click_first"


@register
class Clickstream(Service):
    name = "Clickstream"
    claims = (discovery.EVENTS,)
    writes = {"events": "frozen", "event_files": "frozen", "events_quarantine": "frozen"}
    batch_bytes = 256 << 20  # decompressed bytes per block; OPTIMUS_TEST_CLICKSTREAM_BATCH_BYTES in tests

    def setup(self, wh: Warehouse) -> None:
        cols = ", ".join(f"{wh.quote(n)} {t}" for n, t in rules.EVENT_COLUMNS.items())
        wh.execute(f"CREATE TABLE IF NOT EXISTS events ({cols})")
        wh.execute("CREATE TABLE IF NOT EXISTS event_files (event_id VARCHAR NOT NULL, event_date DATE NOT NULL, file_id BIGINT NOT NULL, line BIGINT NOT NULL)")
        wh.execute("CREATE TABLE IF NOT EXISTS events_quarantine (file_id BIGINT NOT NULL, path VARCHAR NOT NULL, line BIGINT, reason VARCHAR NOT NULL, raw VARCHAR)")

    # -- one file ------------------------------------------------------------------------------
    def ingest(self, wh: Warehouse, file: LedgerFile, ctx: RunContext) -> FileResult:
        old_days = self._forget_links(wh, file.id)
        wh.execute("DELETE FROM events_quarantine WHERE file_id = ?", [file.id])
        wh.execute(f"CREATE OR REPLACE TEMP TABLE {_LINES} (line BIGINT, raw VARCHAR, event_id VARCHAR)")
        days: set[date] = set()
        loaded = quarantined = 0
        try:
            for n, batch in enumerate(self._batches(file.path)):
                wh.execute(f"DELETE FROM {_LINES}")
                wh.load_arrow(_LINES, batch.table)
                good, bad, batch_days = self._load_batch(wh, file, batch, first=n == 0)
                loaded += good
                quarantined += bad
                days |= batch_days
                ctx.wrote(good)
            changed = self._drop_orphans(wh, file.id, old_days) if old_days else set()
            all_days = sorted(days | old_days)
            if all_days:
                marks = ", ".join("?" for _ in all_days)
                changed |= {
                    (k, d) for k, d in wh.query(
                        f"SELECT DISTINCT course_key, event_date FROM events WHERE event_date IN ({marks}) AND file_id = ?",
                        [*all_days, file.id],
                    )
                }
            ctx.touch_many(changed)
        finally:
            for table in (_LINES, _PARSED, _FIRST):
                wh.execute(f"DROP TABLE IF EXISTS {table}")
        new = int(wh.scalar("SELECT count(*) FROM events WHERE file_id = ?", [file.id]) or 0) if days else 0
        note = f"{new} events stored by this file; {loaded - new} held by other files or repeated" if loaded != new else None
        return FileResult(rows=loaded, quarantined=quarantined, note=note)

    def _batches(self, path: Path) -> Iterator[rules.LineBatch]:
        """Line batches read ahead by a thread, so decompression overlaps the engine's work; at
        most two blocks are in memory (the one being loaded and the one being read)."""
        size = int(os.environ.get("OPTIMUS_TEST_CLICKSTREAM_BATCH_BYTES") or self.batch_bytes)
        ahead: queue.Queue[Any] = queue.Queue()
        slots = threading.Semaphore(2)
        stop = threading.Event()

        def read() -> None:
            try:
                opener = gzip.open if path.name.endswith(".gz") else open
                with opener(path, "rb") as fh:  # type: ignore[operator]
                    batches = rules.line_batches(fh, size)
                    while True:
                        while not slots.acquire(timeout=0.5):
                            if stop.is_set():
                                return
                        if stop.is_set():
                            return
                        batch = next(batches, None)
                        if batch is None:
                            break
                        ahead.put(batch)
            except (OSError, EOFError, zlib.error) as exc:
                ahead.put(IngestError(f"{path}: cannot read: {exc}"))
                return
            ahead.put(None)

        reader = threading.Thread(target=read, name=f"read {path.name}", daemon=True)
        reader.start()
        try:
            while (item := ahead.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                yield item
                slots.release()
        finally:
            stop.set()
            reader.join()

    def _load_batch(self, wh: Warehouse, file: LedgerFile, batch: rules.LineBatch, first: bool) -> tuple[int, int, set[date]]:
        """Parse one block, quarantine its bad lines, link its events to the file, store new events."""
        wh.execute(f"CREATE OR REPLACE TEMP TABLE {_PARSED} AS {rules.parse_sql(wh.dialect, _LINES)}")
        bad = self._quarantine(wh, file, batch)
        days = [d for (d,) in wh.query(f"SELECT DISTINCT event_date FROM {_PARSED} WHERE reason IS NULL")]
        if not days:
            return 0, bad, set()
        marks = ", ".join("?" for _ in days)
        wh.execute(
            f"CREATE OR REPLACE TEMP TABLE {_FIRST} AS SELECT event_id, event_date, min(line) AS line "
            f"FROM {_PARSED} WHERE reason IS NULL GROUP BY event_id, event_date"
        )
        good = int(wh.scalar(f"SELECT count(*) FROM {_PARSED} WHERE reason IS NULL") or 0)
        repeated = good != int(wh.scalar(f"SELECT count(*) FROM {_FIRST}") or 0)
        if not first:  # an event this file already showed in an earlier block keeps its first line
            wh.execute(
                f"DELETE FROM {_FIRST} WHERE event_id IN (SELECT event_id FROM event_files WHERE file_id = ? AND event_date IN ({marks}))",
                [file.id, *days],
            )
        wh.execute(f"INSERT INTO event_files (event_id, event_date, file_id, line) SELECT event_id, event_date, ?, line FROM {_FIRST}", [file.id])
        cols = [c for c in rules.EVENT_COLUMNS if c != "file_id"]
        # the same line twice in this block: store its first line only (a join, needed only then)
        only_first = f"JOIN {_FIRST} f ON f.event_id = p.event_id AND f.line = p.line " if repeated else ""
        wh.execute(
            f"INSERT INTO events ({', '.join(wh.quote(c) for c in cols)}, file_id) "
            f"SELECT {', '.join('p.' + wh.quote(c) for c in cols)}, ? FROM {_PARSED} p {only_first}"
            f"WHERE p.reason IS NULL AND NOT EXISTS (SELECT 1 FROM events e WHERE e.event_date IN ({marks}) AND e.event_id = p.event_id)",
            [file.id, *days],
        )
        return good, bad, set(days)

    def _quarantine(self, wh: Warehouse, file: LedgerFile, batch: rules.LineBatch) -> int:
        """Bad lines to events_quarantine; lines SQL calls 'no object' or 'invalid JSON' get a precise reason."""
        wh.execute(
            f"INSERT INTO events_quarantine (file_id, path, line, reason, raw) SELECT ?, ?, line, reason, left(raw, {rules.RAW_LIMIT}) "
            f"FROM {_PARSED} WHERE reason IS NOT NULL AND reason NOT IN (?, ?)",
            [file.id, str(file.path), rules.NO_OBJECT, rules.INVALID_JSON],
        )
        rows = [(line, rules.refine_reason(raw) if "{" in raw else rules.NO_OBJECT, raw) for line, raw in wh.query(
            f"SELECT line, raw FROM {_PARSED} WHERE reason IN (?, ?)", [rules.NO_OBJECT, rules.INVALID_JSON]
        )]
        rows = [(line, _not_object(raw) if reason == rules.NO_OBJECT else reason, raw) for line, reason, raw in rows]
        rows += batch.bad
        if rows:
            wh.load_arrow("events_quarantine", pa.table({
                "file_id": pa.array([file.id] * len(rows), pa.int64()),
                "path": pa.array([str(file.path)] * len(rows), pa.string()),
                "line": pa.array([r[0] for r in rows], pa.int64()),
                "reason": pa.array([r[1] for r in rows], pa.string()),
                "raw": pa.array([r[2][: rules.RAW_LIMIT] for r in rows], pa.string()),
            }))
        return int(wh.scalar(f"SELECT count(*) FROM {_PARSED} WHERE reason IS NOT NULL") or 0) + len(batch.bad)

    # -- what a file held before ---------------------------------------------------------------
    def _forget_links(self, wh: Warehouse, file_id: int) -> set[date]:
        """Drop a file's links to its events (before re-ingesting or removing it); returns their days."""
        days = {d for (d,) in wh.query("SELECT DISTINCT event_date FROM event_files WHERE file_id = ?", [file_id])}
        if days:
            wh.execute("DELETE FROM event_files WHERE file_id = ?", [file_id])
        return days

    def _drop_orphans(self, wh: Warehouse, file_id: int, days: set[date]) -> set[tuple[str | None, date]]:
        """Delete events of `days` no file holds any more; re-point the rest of this file's to a holder."""
        marks = ", ".join("?" for _ in days)
        params = sorted(days)
        orphan = f"e.event_date IN ({marks}) AND NOT EXISTS (SELECT 1 FROM event_files f WHERE f.event_date IN ({marks}) AND f.event_id = e.event_id)"
        changed = {(k, d) for k, d in wh.query(f"SELECT DISTINCT course_key, event_date FROM events e WHERE {orphan}", params + params)}
        if changed:
            wh.execute(f"DELETE FROM events e WHERE {orphan}", params + params)
        wh.execute(
            f"UPDATE events SET file_id = h.file_id, line = h.line FROM ("
            f"  SELECT event_id, file_id, line FROM ("
            f"    SELECT event_id, file_id, line, row_number() OVER (PARTITION BY event_id ORDER BY CASE WHEN file_id = ? THEN 0 ELSE 1 END, file_id) AS rn"
            f"    FROM event_files WHERE event_date IN ({marks})) ranked WHERE rn = 1"
            f") h WHERE events.event_date IN ({marks}) AND events.file_id = ? AND h.event_id = events.event_id "
            f"AND (events.file_id <> h.file_id OR events.line <> h.line)",
            [file_id, *params, *params, file_id],
        )
        return changed

    def remove_file(self, wh: Warehouse, file_id: int, ctx: RunContext | None = None) -> int:
        """Take a file's contribution out (its events that no other file holds, its quarantine); returns events deleted."""
        with wh.transaction():
            before = int(wh.scalar("SELECT count(*) FROM events") or 0)
            days = self._forget_links(wh, file_id)
            changed = self._drop_orphans(wh, file_id, days) if days else set()
            wh.execute("DELETE FROM events_quarantine WHERE file_id = ?", [file_id])
            if ctx is not None:
                ctx.touch_many(changed)
            return before - int(wh.scalar("SELECT count(*) FROM events") or 0)


def _not_object(raw: str) -> str:
    """A line with no `{`: a JSON value of another kind, or not JSON at all."""
    import json

    try:
        json.loads(raw)
    except ValueError:
        return rules.NO_OBJECT
    return rules.NOT_OBJECT
