"""What a service is, and the registry that holds them. Read this first.

A service declares its name, the kinds of file it claims (see optimus.discovery), the services
it needs, and the tables it writes with their contract ('evolve': a raw table that may gain
columns; 'frozen': a derived table whose columns are fixed). It then does one of two things:

- a file service implements `ingest(wh, file, ctx)`: load one file and return what it did. The
  pipeline calls it inside a transaction that also marks the file done, so a file's rows and its
  ledger row commit together (or not at all).
- a derived service implements `run(wh, ctx)`: recompute what changed upstream (`ctx.changes()`).

Services never print, never touch the ledger, never pick a backend: the pipeline does scheduling,
state, progress, timing and errors once, for all. Built-in services register exactly as an
outside one would: with @register, or through the `optimus.services` entry-point group. The list of
every service (optimus.services.load_services) lives in the package above, which imports the built-ins:
nothing here imports back up.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, ClassVar

from optimus.config import Settings
from optimus.exports import ExportSet
from optimus.ledger import LedgerFile
from optimus.warehouse.base import Warehouse


@dataclass
class FileResult:
    """What ingesting one file did."""

    rows: int
    quarantined: int = 0
    note: str | None = None
    course_id: str | None = None  # the course read from the file, when its name was ambiguous
    coerced: int = 0  # values loaded in a changed form (e.g. a duplicate JSON key, an out-of-range id made NULL)
    damage: str | None = None  # the file is damaged: what was lost and at which byte (what could be read is loaded)


class Progress:
    """Where services report progress; the CLI shows bars, the daemon logs, tests pause here."""

    def start(self, label: str, total: int | None = None) -> None: ...

    def advance(self, amount: int = 1) -> None: ...

    def note(self, text: str) -> None: ...

    def end(self) -> None: ...


@dataclass
class RunContext:
    """What a service gets for one run: settings, progress, and the changes it should act on."""

    settings: Settings
    wh: Warehouse
    service: Service
    run_id: int
    last_run_started: datetime | None
    progress: Progress = field(default_factory=Progress)
    touched: set[tuple[str, date | None]] = field(default_factory=set)
    rows_written: int = 0
    # rows per table, for a service that writes more than one table of different things (TimeFinder's
    # learner-days and anomalies): reported apart, never added up (pipeline's ServiceOutcome.tables)
    table_rows: dict[str, int] = field(default_factory=dict)
    # the run's export files: staged here, published by the pipeline once the run commits (optimus.exports)
    exports: ExportSet | None = None

    def count_table(self, table: str, rows: int) -> None:
        """Report the rows this run wrote to one of its tables (shown per table in the run's summary)."""
        self.table_rows[table] = self.table_rows.get(table, 0) + rows

    def touch(self, course_key: str | None, day: date | None = None) -> None:
        """Record that this run changed a course (and day), so that dependants recompute only it."""
        if course_key:
            self.touched.add((course_key, day))

    def touch_many(self, pairs: Iterable[tuple[str | None, date | None]]) -> None:
        for course_key, day in pairs:
            self.touch(course_key, day)

    def changes(self, services: Iterable[str] | None = None) -> set[tuple[str, date | None]]:
        """(course_key, day) pairs that the given services (default: this one's needs) changed since this
        service last ran; day is None when a whole course changed."""
        names = list(services if services is not None else self.service.needs)
        if not names:
            return set()
        marks = ", ".join("?" for _ in names)
        sql = (
            "SELECT DISTINCT c.course_key, c.day FROM service_run_changes c JOIN service_runs r ON r.id = c.run_id "
            f"WHERE r.status = 'ok' AND r.service IN ({marks})"
        )
        params: list[Any] = list(names)
        if self.last_run_started is not None:
            sql += " AND r.finished_at >= ?"
            params.append(self.last_run_started)
        return {(key, day) for key, day in self.wh.query(sql, params)}

    def changed_courses(self, services: Iterable[str] | None = None) -> set[str]:
        return {key for key, _day in self.changes(services)}

    def wrote(self, rows: int) -> None:
        """Report rows written inside the current transaction (drives progress and the crash-test hook)."""
        self.rows_written += rows
        self.progress.advance(rows)
        _test_pause_hook(self.rows_written)


def _test_pause_hook(rows: int) -> None:
    """For crash tests: after N uncommitted rows, write a marker file and wait to be killed."""
    limit = os.environ.get("OPTIMUS_TEST_PAUSE_AFTER_ROWS")
    marker = os.environ.get("OPTIMUS_TEST_PAUSE_MARKER")
    if limit and marker and rows >= int(limit):
        Path(marker).write_text(str(rows))
        while True:
            time.sleep(1)


class Service:
    """Base of every service. Subclasses set the class attributes and implement ingest or run."""

    name: ClassVar[str]
    claims: ClassVar[tuple[str, ...]] = ()
    needs: ClassVar[tuple[str, ...]] = ()
    writes: ClassVar[dict[str, str]] = {}
    rules_version: ClassVar[int] = 1
    # set by the pipeline for one forced run (`optimus recompute`, Pipeline.recompute): "all", or the
    # course keys to rebuild whole whether or not their inputs changed; None in an ordinary run
    recompute: str | set[str] | None = None

    @classmethod
    def bytes_outside_engine(cls) -> int:
        """The most memory this service holds beside the warehouse engine while it works (data read
        in Python): the engine is opened with that much less (optimus.services.bytes_outside_engine)."""
        return 0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def setup(self, wh: Warehouse) -> None:
        """Create the tables this service writes (idempotent)."""

    def ingest(self, wh: Warehouse, file: LedgerFile, ctx: RunContext) -> FileResult:
        raise NotImplementedError(f"{self.name} claims files but does not implement ingest()")

    def read_ahead(self, now: LedgerFile | None, then: LedgerFile | None) -> None:
        """A hint before each file: `now` is ingested next, then `then` (None: nothing more). A
        service may start reading `then` while `now` is loaded."""

    def finish(self, wh: Warehouse, files: list[LedgerFile], ctx: RunContext) -> None:
        """After a run's files are ingested (e.g. to drop rows a newer package no longer has)."""

    def run(self, wh: Warehouse, ctx: RunContext) -> int:
        """A derived service's work; returns the number of rows written."""
        return 0

    @classmethod
    def is_derived(cls) -> bool:
        return cls.run is not Service.run


REGISTRY: dict[str, type[Service]] = {}


def register(cls: type[Service]) -> type[Service]:
    """Class decorator: make a service known to the pipeline by its name."""
    if cls.name in REGISTRY and REGISTRY[cls.name] is not cls:
        raise ValueError(f"two services are named {cls.name}")
    REGISTRY[cls.name] = cls
    return cls


def load_entry_points() -> None:
    """Register the services of other packages (the `optimus.services` entry-point group); the built-ins
    are registered by the `optimus.services` package itself, whose loader (load_services) lists them all."""
    for entry in entry_points(group="optimus.services"):
        entry.load()
