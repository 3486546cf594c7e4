"""Clickstream: daily tracking-log files (`.log`, `.log.gz`) into `events`, each event once.

Reads event files under clickstream_logs/latest; writes `events` (one row per distinct event,
typed), `event_files` (which files hold each event, and on which line), `events_quarantine`
(lines that are not events, with line number and reason). Needs nothing.

The rules of a line (junk, fingerprint, course, time, payload) are in optimus.formats.events.
An engine that reads files (DuckDB) reads and decompresses the file itself (Warehouse.event_lines);
otherwise, or when it cannot read the file as plain lines (damage, bytes that are not UTF-8), the
file is read in blocks by a reader thread (decompression runs beside the engine, and the next
file is read while this one is settled: services/clickstream_reader.py). Each block
is parsed set-at-a-time in SQL straight into `events`, and once the file is in, its events are
compared by fingerprint only within the days it touches (docs/clickstream.md). Re-ingesting a changed file replaces what it held: events only it held and no
longer holds disappear; events another file holds stay.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa

from optimus import discovery
from optimus.config import Settings
from optimus.formats import events as rules
from optimus.ledger import LedgerFile
from optimus.services.base import FileResult, RunContext, Service, register
from optimus.services.clickstream_reader import ReadAhead, gzip_intact
from optimus.warehouse.base import Warehouse

_LINES, _BAD, _COURSES, _COERCED = "_click_lines", "_click_bad", "_click_courses", "_click_coerced"
# lines of a file the engine reads whose course values are learnt before the file is parsed: a day
# file's course values show up in its first lines, and the parse then skips the course-key regexes
# (about half of it) on every line whose value is known
_FIRST_LINES = 1 << 13


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
        self._engine_reads = False  # set by setup: the engine reads event files itself (Warehouse.event_lines)
        self._wh: Warehouse | None = None  # the warehouse of setup (read ahead is let go on it)
        self._then: Path | None = None  # the file ingested after this one (the engine reads it ahead)
        self._pool: ThreadPoolExecutor | None = None  # runs gzip_intact beside the engine's reads
        self._checks: dict[Path, Future[bool]] = {}  # gzip_intact of the files being read (this one, the next)

    @classmethod
    def _batch_bytes(cls) -> int:
        return int(os.environ.get("OPTIMUS_TEST_CLICKSTREAM_BATCH_BYTES") or cls.batch_bytes)

    @classmethod
    def bytes_outside_engine(cls) -> int:
        """The blocks read ahead wait in memory beside the engine (the engine is opened with that much less)."""
        return ReadAhead(cls._batch_bytes()).bytes_held

    def read_ahead(self, now: LedgerFile | None, then: LedgerFile | None) -> None:
        if self._engine_reads:  # the engine reads the next file once this one's lines are read (see _engine_lines)
            self._then = then.path if then else None
            if now is None:
                self._let_go()
            return
        self._reader.plan(now.path if now else None, then.path if then else None)

    def _let_go(self) -> None:
        """Nothing more follows: what the engine read ahead, and the check of it, are let go."""
        if self._wh is not None:
            self._wh.prefetch_event_lines(None, self.settings.max_line_bytes)
        self._checks.clear()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def setup(self, wh: Warehouse) -> None:
        self._engine_reads, self._wh = wh.capabilities.reads_files, wh
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
        # course values seen and their keys (exact, so kept from file to file for the connection's life)
        wh.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_COURSES} (v VARCHAR, k VARCHAR)")
        if not wh.capabilities.scans_arrow_in_place:  # each block is loaded into this table once, then read
            wh.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_LINES} (line BIGINT, raw VARCHAR, event_id VARCHAR)")
        days: set[date] = set()
        loaded = quarantined = coerced = lines = 0
        damage: str | None = None
        try:
            with ExitStack() as staged:
                engine_lines = self._engine_lines(wh, file, staged)
                if engine_lines is not None:  # the engine read the file: its lines are parsed as one block
                    lines = int(wh.scalar(f"SELECT count(*) FROM {engine_lines}") or 0)
                    # not where a statement costs more than the regexes it saves (then the rules compute each line's key)
                    if lines > _FIRST_LINES and not wh.capabilities.costly_statements:
                        self._learn_courses(wh, f"(SELECT * FROM {engine_lines} WHERE line <= {_FIRST_LINES})")
                    if lines:
                        loaded, quarantined, coerced = self._load_lines(wh, file, engine_lines, wh.execute, (1, lines), [])
                        ctx.wrote(loaded)
                else:
                    wh.hold_outside(self._reader.bytes_held)
                    reader = self._reader.batches(file.path)
                    for batch in reader:
                        good, bad, changed_values = self._load_batch(wh, file, batch)
                        loaded += good
                        quarantined += bad
                        coerced += changed_values
                        lines += batch.table.num_rows
                        ctx.wrote(good)
                    damage = reader.damage
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
            for table in (_LINES, _BAD, _COERCED):
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
        return FileResult(rows=loaded, quarantined=quarantined, note="; ".join(notes) or None, coerced=coerced, damage=damage)

    def _engine_lines(self, wh: Warehouse, file: LedgerFile, stack: ExitStack) -> str | None:
        """The file's lines as a relation the engine read itself (Warehouse.event_lines, held open by
        `stack`), or None: the engine reads no files, or not this one as plain lines, or the archive is
        damaged (checked beside the engine's read: the engine does not check CRCs). Then the reader of
        clickstream_reader reads it, which keeps what a damaged archive holds."""
        if not self._engine_reads:
            return None
        if self._pool is None:
            self._pool = ThreadPoolExecutor(2, thread_name_prefix="optimus-gzip-check")
        intact = self._checks.pop(file.path, None) or self._pool.submit(gzip_intact, file.path)
        lines = stack.enter_context(wh.event_lines(file.path, self.settings.max_line_bytes))
        then = self._then
        if then is not None and then != file.path:  # the next file is read (and checked) while this one is parsed
            self._checks = {then: self._pool.submit(gzip_intact, then)}
            wh.prefetch_event_lines(then, self.settings.max_line_bytes)
        whole = intact.result()
        if lines is None or not whole:
            stack.close()
            return None
        return lines

    def _load_batch(self, wh: Warehouse, file: LedgerFile, batch: rules.LineBatch) -> tuple[int, int, int]:
        """One block the reader made: loaded (or, where the engine reads Arrow in place, read as
        `arrow_block`), then settled by _load_lines."""
        rows = batch.table.num_rows
        if not rows:
            return 0, len(batch.bad), 0
        lo, hi = batch.table["line"][0].as_py(), batch.table["line"][-1].as_py()
        if wh.capabilities.scans_arrow_in_place:  # the block is read in place, as `arrow_block`, by each statement
            return self._load_lines(wh, file, "arrow_block", lambda sql: wh.execute_over_arrow(sql, batch.table), (lo, hi), batch.bad)
        wh.execute(f"DELETE FROM {_LINES}")
        wh.load_arrow(_LINES, batch.table)
        return self._load_lines(wh, file, _LINES, wh.execute, (lo, hi), batch.bad)

    def _load_lines(
        self, wh: Warehouse, file: LedgerFile, lines: str, run: Any, span: tuple[int, int], unread: list[tuple[int, str, str]]
    ) -> tuple[int, int, int]:
        """Lines of a file (`lines(line, raw, event_id)`, lines `span` of the file; `run` runs a
        statement that reads it): their events straight into `events` (parsed and stored in one
        statement, no copy in between), then their bad lines to quarantine, with `unread` (lines the
        reader could not give as text); returns (events, bad lines, coerced values)."""
        lo, hi = span
        block = _block(file.id, lo, hi)
        cols = ", ".join(wh.quote(c) for c in rules.EVENT_COLUMNS if c != "file_id")
        parsed = rules.parse_sql(wh.sql, lines, _COURSES)
        run(f"INSERT INTO events ({cols}, file_id) SELECT {cols}, {int(file.id)} FROM ({parsed}) p WHERE reason IS NULL")
        good = int(wh.scalar(f"SELECT count(*) FROM events WHERE {block}") or 0)
        coerced = self._coerced(wh, lines, run, block) if good else 0
        bad = len(unread)
        if good < hi - lo + 1:  # the lines that did not become events (few, and blank lines) are parsed again, alone
            rest = f"(SELECT * FROM {lines} l WHERE NOT EXISTS (SELECT 1 FROM events e WHERE {_block(file.id, lo, hi, 'e.')} AND e.line = l.line)) rest"
            wh.execute(f"DROP TABLE IF EXISTS {_BAD}")
            run(f"CREATE TEMP TABLE {_BAD} AS SELECT line, reason, raw FROM ({rules.parse_sql(wh.sql, rest)}) p WHERE reason IS NOT NULL")
            if coerced:  # keys given twice on lines not loaded were not coerced
                coerced -= int(wh.scalar(rules.duplicate_keys_sql(wh.sql, _BAD)) or 0)
            bad = self._quarantine(wh, file, unread)
        self._remember_courses(wh, f"(SELECT course_id, course_key FROM events WHERE {block}) stored")
        return good, bad, coerced

    @staticmethod
    def _learn_courses(wh: Warehouse, lines: str) -> None:
        """The course values of `lines` (a file's first lines) and their keys, into the course cache,
        before the file is parsed. Not by storing those lines first: one INSERT of a whole file writes
        its rows as it goes, where a second INSERT into the same transaction leaves rows that the
        checkpoint compresses again on one thread (0.45 CPU-s on a 164k-line day file, docs/performance.md)."""
        Clickstream._remember_courses(wh, f"({rules.parse_sql(wh.sql, lines, _COURSES)}) p")

    @staticmethod
    def _remember_courses(wh: Warehouse, rows: str) -> None:
        """The course values of `rows` (course_id, course_key) not yet in the course cache, into it:
        their keys are then looked up in the next blocks and files, not computed again."""
        wh.execute(
            f"INSERT INTO {_COURSES} SELECT DISTINCT course_id, course_key FROM {rows} "
            f"WHERE course_id IS NOT NULL AND course_id NOT IN (SELECT v FROM {_COURSES})"
        )

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

    def _quarantine(self, wh: Warehouse, file: LedgerFile, unread: list[tuple[int, str, str]]) -> int:
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
        rows += unread
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
        return int(wh.scalar(f"SELECT count(*) FROM {_BAD}") or 0) + len(unread)

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
