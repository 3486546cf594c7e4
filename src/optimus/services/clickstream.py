"""Clickstream: daily tracking-log files (`.log`, `.log.gz`) into `events`, each event once.

Reads event files under clickstream_logs/latest; writes `events` (one row per distinct event,
typed), `event_files` (which files hold each event, and on which line), `events_quarantine`
(lines that are not events, with line number and reason). Needs nothing.

The rules of a line (junk, fingerprint, course, time, payload) are in optimus.formats.events.
A file is read in blocks by a reader thread (decompression runs beside the engine, and the next
file is read while this one is settled: services/clickstream_reader.py), each block
is parsed set-at-a-time in SQL straight into `events`, and once the file is in, its events are
compared by fingerprint only within the days it touches (docs/clickstream.md). Re-ingesting a changed file replaces what it held: events only it held and no
longer holds disappear; events another file holds stay.
"""

from __future__ import annotations

import os
from datetime import date
from typing import Any

import pyarrow as pa

from optimus import discovery
from optimus.config import Settings
from optimus.formats import events as rules
from optimus.ledger import LedgerFile
from optimus.services.base import FileResult, RunContext, Service, register
from optimus.services.clickstream_reader import ReadAhead
from optimus.warehouse.base import Warehouse

_LINES, _BAD, _COURSES, _COERCED = "_click_lines", "_click_bad", "_click_courses", "_click_coerced"


@register
class Clickstream(Service):
    name = "Clickstream"
    claims = (discovery.EVENTS,)
    writes = {"events": "frozen", "event_files": "frozen", "events_quarantine": "frozen"}
    # 2 (issue 16): /xblock/ and versioned-API course URLs, a top-level course_id, stripped course ids and
    # usernames. Recorded in service_runs; events already stored are not re-parsed (docs/clickstream.md)
    rules_version = 2
    batch_bytes = 128 << 20  # decompressed bytes per block; OPTIMUS_TEST_CLICKSTREAM_BATCH_BYTES in tests

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._reader = ReadAhead(self._batch_bytes(), settings.max_line_bytes)

    @classmethod
    def _batch_bytes(cls) -> int:
        return int(os.environ.get("OPTIMUS_TEST_CLICKSTREAM_BATCH_BYTES") or cls.batch_bytes)

    @classmethod
    def bytes_outside_engine(cls) -> int:
        """The blocks read ahead wait in memory beside the engine (the engine is opened with that much less)."""
        return ReadAhead(cls._batch_bytes()).bytes_held

    def read_ahead(self, now: LedgerFile | None, then: LedgerFile | None) -> None:
        self._reader.plan(now.path if now else None, then.path if then else None)

    def setup(self, wh: Warehouse) -> None:
        cols = ", ".join(f"{wh.quote(n)} {t}" for n, t in rules.EVENT_COLUMNS.items())
        wh.execute(f"CREATE TABLE IF NOT EXISTS events ({cols})")
        wh.execute(
            "CREATE TABLE IF NOT EXISTS event_files (event_id VARCHAR NOT NULL, event_date DATE NOT NULL, file_id BIGINT NOT NULL, line BIGINT NOT NULL)"
        )
        wh.execute(
            "CREATE TABLE IF NOT EXISTS events_quarantine (file_id BIGINT NOT NULL, path VARCHAR NOT NULL, line BIGINT, reason VARCHAR NOT NULL, raw VARCHAR)"
        )

    # -- one file ------------------------------------------------------------------------------
    def ingest(self, wh: Warehouse, file: LedgerFile, ctx: RunContext) -> FileResult:
        old_days = self._forget_links(wh, file.id)
        wh.execute("DELETE FROM events_quarantine WHERE file_id = ?", [file.id])
        if old_days:  # the rows this file stored before stand aside (as -id) until its new reading is settled
            wh.execute(
                f"UPDATE events SET file_id = ? WHERE event_date IN ({', '.join('?' for _ in old_days)}) AND file_id = ?",
                [-file.id, *sorted(old_days), file.id],
            )
        wh.execute(f"DROP TABLE IF EXISTS {_COURSES}")
        wh.execute(f"CREATE TEMP TABLE {_COURSES} (v VARCHAR, k VARCHAR)")
        if not wh.capabilities.scans_arrow_in_place:  # each block is loaded into this table once, then read
            wh.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_LINES} (line BIGINT, raw VARCHAR, event_id VARCHAR)")
        days: set[date] = set()
        loaded = quarantined = coerced = lines = 0
        wh.hold_outside(self._reader.bytes_held)
        try:
            reader = self._reader.batches(file.path)
            for batch in reader:
                good, bad, changed_values = self._load_batch(wh, file, batch)
                loaded += good
                quarantined += bad
                coerced += changed_values
                lines += batch.table.num_rows
                ctx.wrote(good)
            days = self._settle(wh, file.id, loaded) if loaded else set()
            changed = self._drop_orphans(wh, file.id, old_days) if old_days else set()
            all_days = sorted(days | old_days)
            if all_days:
                marks = ", ".join("?" for _ in all_days)
                changed |= {
                    (k, d)
                    for k, d in wh.query(
                        f"SELECT DISTINCT course_key, event_date FROM events WHERE event_date IN ({marks}) AND file_id = ?",
                        [*all_days, file.id],
                    )
                }
            ctx.touch_many(changed)
        finally:
            wh.hold_outside(0)
            for table in (_LINES, _BAD, _COURSES, _COERCED):
                wh.execute(f"DROP TABLE IF EXISTS {table}")
        new = int(wh.scalar("SELECT count(*) FROM events WHERE file_id = ?", [file.id]) or 0) if days else 0
        notes = []
        if not lines:
            notes.append(rules.EMPTY_FILE)
        elif not loaded and not quarantined:
            notes.append(f"no events: {lines} blank lines")
        if loaded != new:
            notes.append(f"{new} events stored by this file; {loaded - new} held by other files or repeated")
        if coerced:
            notes.append(f"{coerced} values coerced (a key given twice, a user_id that is not a 64-bit whole number)")
        return FileResult(rows=loaded, quarantined=quarantined, note="; ".join(notes) or None, coerced=coerced, damage=reader.damage)

    def _load_batch(self, wh: Warehouse, file: LedgerFile, batch: rules.LineBatch) -> tuple[int, int, int]:
        """One block: its events straight into `events` (parsed and stored in one statement, no
        copy of the block in between), then its bad lines to quarantine; returns (events, bad
        lines, coerced values)."""
        rows = batch.table.num_rows
        if not rows:
            return 0, len(batch.bad), 0
        lo, hi = batch.table["line"][0].as_py(), batch.table["line"][-1].as_py()
        block = _block(file.id, lo, hi)
        if wh.capabilities.scans_arrow_in_place:  # the block is read in place, as `arrow_block`, by each statement
            lines, run = "arrow_block", lambda sql: wh.execute_over_arrow(sql, batch.table)
        else:
            wh.execute(f"DELETE FROM {_LINES}")
            wh.load_arrow(_LINES, batch.table)
            lines, run = _LINES, wh.execute
        cols = ", ".join(wh.quote(c) for c in rules.EVENT_COLUMNS if c != "file_id")
        parsed = rules.parse_sql(wh.sql, lines, _COURSES)
        run(f"INSERT INTO events ({cols}, file_id) SELECT {cols}, {int(file.id)} FROM ({parsed}) p WHERE reason IS NULL")
        good = int(wh.scalar(f"SELECT count(*) FROM events WHERE {block}") or 0)
        coerced = self._coerced(wh, lines, run, block) if good else 0
        bad = len(batch.bad)
        if good < rows:  # the lines that did not become events (few) are parsed again, alone
            rest = f"(SELECT * FROM {lines} l WHERE NOT EXISTS (SELECT 1 FROM events e WHERE {_block(file.id, lo, hi, 'e.')} AND e.line = l.line)) rest"
            wh.execute(f"DROP TABLE IF EXISTS {_BAD}")
            run(f"CREATE TEMP TABLE {_BAD} AS SELECT line, reason, raw FROM ({rules.parse_sql(wh.sql, rest)}) p WHERE reason IS NOT NULL")
            if coerced:  # keys given twice on lines not loaded were not coerced
                coerced -= int(wh.scalar(rules.duplicate_keys_sql(wh.sql, _BAD)) or 0)
            bad = self._quarantine(wh, file, batch)
        # course values seen: their keys are looked up in the next blocks, not computed again
        wh.execute(
            f"INSERT INTO {_COURSES} SELECT DISTINCT course_id, course_key FROM events WHERE {block} "
            f"AND course_id IS NOT NULL AND course_id NOT IN (SELECT v FROM {_COURSES})"
        )
        return good, bad, coerced

    @staticmethod
    def _coerced(wh: Warehouse, lines: str, run: Any, block: str) -> int:
        """Values of the block's stored events that the line gave otherwise: extra copies of a
        key (the engine keeps one; counted over the block, less its quarantined lines) and user
        ids that are not 64-bit whole numbers (stored NULL)."""
        wh.execute(f"DROP TABLE IF EXISTS {_COERCED}")
        run(f"CREATE TEMP TABLE {_COERCED} AS {rules.duplicate_keys_sql(wh.sql, lines)}")
        return int(wh.scalar(f"SELECT * FROM {_COERCED}") or 0) + int(wh.scalar(rules.lost_user_ids_sql(wh.sql, block)) or 0)

    def _settle(self, wh: Warehouse, file_id: int, loaded: int) -> set[date]:
        """Once the whole file is in `events`: link each of its events to it (at its first line),
        then keep each event once: its repeats within the file go, and so do its rows of events
        already stored on the same day by another file (or by this one before a re-ingest, -id).
        Done once per file, not per block, so a day's events are compared once. Returns its days."""
        days = sorted(d for (d,) in wh.query("SELECT DISTINCT event_date FROM events WHERE file_id = ?", [file_id]))
        if not days:
            return set()
        marks = ", ".join("?" for _ in days)
        wh.execute(
            "INSERT INTO event_files (event_id, event_date, file_id, line) SELECT event_id, event_date, ?, min(line) "
            "FROM events WHERE file_id = ? GROUP BY event_id, event_date",
            [file_id, file_id],
        )
        if int(wh.scalar("SELECT count(*) FROM event_files WHERE file_id = ?", [file_id]) or 0) < loaded:
            wh.execute(
                "DELETE FROM events WHERE file_id = ? AND line NOT IN (SELECT line FROM event_files WHERE file_id = ?)", [file_id, file_id]
            )
        others = f"event_date IN ({marks}) AND file_id <> ?"
        if wh.scalar(f"SELECT 1 FROM events WHERE {others} LIMIT 1", [*days, file_id]):
            wh.execute(
                f"DELETE FROM events WHERE file_id = ? AND event_date IN ({marks}) AND event_id IN (SELECT event_id FROM events WHERE {others})",
                [file_id, *days, *days, file_id],
            )
        return set(days)

    def _quarantine(self, wh: Warehouse, file: LedgerFile, batch: rules.LineBatch) -> int:
        """Bad lines (in `_BAD`) to events_quarantine; lines SQL calls 'no object' or 'invalid JSON' get a precise reason."""
        wh.execute(
            f"INSERT INTO events_quarantine (file_id, path, line, reason, raw) SELECT ?, ?, line, reason, left(raw, {rules.RAW_LIMIT}) "
            f"FROM {_BAD} WHERE reason NOT IN (?, ?)",
            [file.id, str(file.path), rules.NO_OBJECT, rules.INVALID_JSON],
        )
        rows = [
            (line, rules.refine_reason(raw) if "{" in raw else rules.NO_OBJECT, raw)
            for line, raw in wh.query(f"SELECT line, raw FROM {_BAD} WHERE reason IN (?, ?)", [rules.NO_OBJECT, rules.INVALID_JSON])
        ]
        rows = [(line, _not_object(raw) if reason == rules.NO_OBJECT else reason, raw) for line, reason, raw in rows]
        rows += batch.bad
        if rows:
            wh.load_arrow(
                "events_quarantine",
                pa.table(
                    {
                        "file_id": pa.array([file.id] * len(rows), pa.int64()),
                        "path": pa.array([str(file.path)] * len(rows), pa.string()),
                        "line": pa.array([r[0] for r in rows], pa.int64()),
                        "reason": pa.array([r[1] for r in rows], pa.string()),
                        "raw": pa.array([r[2][: rules.RAW_LIMIT] for r in rows], pa.string()),
                    }
                ),
            )
        return int(wh.scalar(f"SELECT count(*) FROM {_BAD}") or 0) + len(batch.bad)

    # -- what a file held before ---------------------------------------------------------------
    def _forget_links(self, wh: Warehouse, file_id: int) -> set[date]:
        """Drop a file's links to its events (before re-ingesting or removing it); returns their days."""
        days = {d for (d,) in wh.query("SELECT DISTINCT event_date FROM event_files WHERE file_id = ?", [file_id])}
        if days:
            wh.execute("DELETE FROM event_files WHERE file_id = ?", [file_id])
        return days

    def _drop_orphans(self, wh: Warehouse, file_id: int, days: set[date]) -> set[tuple[str | None, date]]:
        """Delete events of `days` no file holds any more; re-point the rest of this file's (and its
        rows from before a re-ingest, -id) to a holder."""
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
            f") h WHERE events.event_date IN ({marks}) AND events.file_id IN (?, ?) AND h.event_id = events.event_id "
            f"AND (events.file_id <> h.file_id OR events.line <> h.line)",
            [file_id, *params, *params, file_id, -file_id],
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


def _block(file_id: int, lo: int, hi: int, alias: str = "") -> str:
    """The rows of `events` a block of a file stored (numbers inlined: they are ints)."""
    return f"{alias}file_id = {int(file_id)} AND {alias}line BETWEEN {int(lo)} AND {int(hi)}"


def _not_object(raw: str) -> str:
    """A line with no `{`: a JSON value of another kind, or not JSON at all."""
    import json

    try:
        json.loads(raw)
    except ValueError:
        return rules.NO_OBJECT
    return rules.NOT_OBJECT
