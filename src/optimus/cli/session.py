"""The one thing a command talks to: the local warehouse and pipeline, or the running daemon that holds them.

`open_session` chooses once: when a daemon holds the warehouse, its API client (optimus.client),
else the warehouse itself. Both answer the same methods with the same results, so a command never
asks which one it has. What the daemon's API does not offer (scan, recompute) is done on the
warehouse directly, as without a daemon: a DuckDB file the daemon holds refuses it with the lock's
message, a PostgreSQL warehouse takes it; what would race the daemon's own ingest (retry, --file,
--service) is an OptimusError that says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from optimus import config, ledger
from optimus.client import DaemonClient, remote_daemon
from optimus.errors import OptimusError, QueryRefused
from optimus.pipeline import Pipeline, RunSummary, open_warehouse
from optimus.services.base import Progress
from optimus.warehouse import Warehouse
from optimus.warehouse.base import QUERY_MAX_BYTES, QUERY_MAX_ROWS, QUERY_TIMEOUT_SECONDS, QueryAnswer

# the fields of a file worth a look, in `status --files` (ledger.attention)
FILE_FIELDS = ("service", "path", "state", "rows_loaded", "rows_quarantined", "coerced", "error", "damage")


@dataclass
class Feedback:
    """How a session shows what happens while it works (the CLI passes Rich; the default is silent)."""

    notice: Callable[[str], None] = lambda text: None
    scanned: Callable[[ledger.RegisterReport], None] = lambda report: None
    progress: Callable[[], Progress] = Progress
    running: Callable[[], AbstractContextManager[Any]] = nullcontext  # held while the services run (a live bar)


@dataclass
class IngestReport:
    """What an ingest did, and what the warehouse still lacks afterwards."""

    summary: RunSummary | None = None  # the local run; None when a daemon was asked instead
    asked_daemon: str | None = None  # the daemon's answer when it was asked to scan
    failed: int = 0  # files failed (of this run or an earlier one): the warehouse lacks them
    damaged: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed and not (self.summary is not None and self.summary.failed)


@dataclass
class StatusReport:
    """The figures of `optimus status --json`, and with --files the files worth a look."""

    data: dict[str, Any]
    files: list[dict[str, Any]] | None = None  # None without --files


class Session(Protocol):
    """What the commands ask; one method per command (`retry` is ingest with retry_failed)."""

    def scan(self) -> ledger.RegisterReport: ...

    def ingest(self, services: list[str] | None, file: Path | None, retry_failed: bool) -> IngestReport: ...

    def status(self, files: bool) -> StatusReport: ...

    def sql(self, query: str) -> QueryAnswer: ...

    def recompute(self, service: str | None, course_key: str | None) -> RunSummary: ...


def open_session(settings: config.Settings, feedback: Feedback | None = None) -> Session:
    """The daemon's client when a daemon holds this warehouse, else the warehouse; chosen here, once."""
    feedback = feedback or Feedback()
    local = LocalSession(settings, feedback)
    client = remote_daemon(settings)
    return local if client is None else DaemonSession(client, local, feedback)


class LocalSession:
    """The warehouse opened by this process, for one method at a time (read-only where that is enough)."""

    def __init__(self, settings: config.Settings, feedback: Feedback) -> None:
        self.settings = settings
        self.feedback = feedback

    def _open(self, read_only: bool = False, also_allowed: list[Path] | None = None) -> Warehouse:
        return open_warehouse(self.settings, read_only=read_only, also_allowed=also_allowed or [])

    def _pipeline(self, wh: Warehouse, progress: Callable[[], Progress] = Progress) -> tuple[Pipeline, int]:
        """The pipeline, set up; and how many files an interrupted run had left running (queued again)."""
        pipeline = Pipeline(self.settings, wh, progress=progress)
        return pipeline, pipeline.setup()

    def scan(self) -> ledger.RegisterReport:
        wh = self._open()
        try:
            return self._pipeline(wh)[0].scan()
        finally:
            wh.close()

    def ingest(self, services: list[str] | None, file: Path | None, retry_failed: bool) -> IngestReport:
        from optimus.logs import configure

        configure(self.settings.log_file, level=logging.WARNING)  # warnings and errors only; the table says the rest
        named = [file.resolve()] if file is not None else []  # a file named here may lie outside the data paths
        wh = self._open(also_allowed=named)
        try:
            pipeline, requeued = self._pipeline(wh, self.feedback.progress)
            if requeued:
                self.feedback.notice(f"{requeued} file(s) left running by an interrupted run were queued again")
            if retry_failed:
                self.feedback.notice(f"{pipeline.retry_failed(services or None)} failed file(s) queued again")
            if file is not None:
                if services and len(services) > 1:
                    raise OptimusError("--file takes at most one --service")
                pipeline.register_file(file, services[0] if services else None)
            else:
                self.feedback.scanned(pipeline.scan())
            with self.feedback.running():
                summary = pipeline.run_once(only=services or None)
            return IngestReport(summary=summary, failed=pipeline.failed_files(), damaged=pipeline.damaged_files())
        finally:
            wh.close()

    def status(self, files: bool) -> StatusReport:
        from optimus.warehouse import schema

        wh = self._open(read_only=True)
        try:
            if schema.current_version(wh) == 0:
                raise OptimusError("the warehouse has never been ingested into; run 'optimus ingest' first")
            return StatusReport(status_data(wh), ledger.attention(wh) if files else None)
        finally:
            wh.close()

    def sql(self, query: str) -> QueryAnswer:
        wh = self._open(read_only=True)  # an instance of its own, shut off from the host
        try:
            answer = wh.read_only_query(query, max_rows=QUERY_MAX_ROWS, max_bytes=QUERY_MAX_BYTES, timeout=QUERY_TIMEOUT_SECONDS)
        except QueryRefused as exc:
            raise OptimusError(f"query refused: {exc}") from None
        except Exception as exc:  # the engine's own message says what is wrong with the query
            raise OptimusError(f"query failed: {exc}") from None
        finally:
            wh.close()
        return answer

    def recompute(self, service: str | None, course_key: str | None) -> RunSummary:
        wh = self._open()
        try:
            return self._pipeline(wh)[0].recompute([service] if service else None, {course_key} if course_key else None)
        finally:
            wh.close()


def status_data(wh: Warehouse) -> dict[str, Any]:
    """The figures behind `optimus status --json`."""
    from optimus.geo import staleness_warning
    from optimus.pipeline import order
    from optimus.services import load_services

    counts = ledger.counts(wh)
    last = dict(wh.query("SELECT service, max(finished_at) FROM service_runs WHERE status = 'ok' GROUP BY service"))
    services = {}
    for name in order(load_services()):
        c = counts.get(name, {s: 0 for s in ledger.STATES})
        finished = last.get(name)
        services[name] = {**c, "last_run": finished.isoformat() if finished else None}
    return {"services": services, "warnings": [w for w in [staleness_warning(wh)] if w]}


class DaemonSession:
    """A running daemon, through its API: what it can answer for a command that cannot open the warehouse."""

    def __init__(self, client: DaemonClient, local: LocalSession, feedback: Feedback) -> None:
        self.client = client
        self.local = local  # for what the API does not offer
        self.feedback = feedback

    def _asking(self) -> None:
        """Say that the answer comes from the daemon (before anything it answers)."""
        self.feedback.notice(f"a daemon holds the warehouse; asking it at {self.client.base_url}")

    def scan(self) -> ledger.RegisterReport:
        return self.local.scan()

    def ingest(self, services: list[str] | None, file: Path | None, retry_failed: bool) -> IngestReport:
        self._asking()
        if retry_failed:
            raise OptimusError(
                "a daemon is ingesting this warehouse: stop it to retry failed files (or re-deliver them: a changed file is queued)"
            )
        if services or file is not None:
            raise OptimusError(
                "a daemon is ingesting this warehouse: --service and --file are not available; "
                "put the file in a data path (the daemon takes it) or stop the daemon first"
            )
        answer = self.client.newdata()
        figures = self.client.status().get("services", {})
        failed = sum(int(s.get("failed") or 0) for s in figures.values())
        return IngestReport(asked_daemon=answer, failed=failed)

    def status(self, files: bool) -> StatusReport:
        self._asking()
        data = self.client.status()
        listed = [{k: f.get(k) for k in FILE_FIELDS} for f in self.client.files_worth_a_look()] if files else None
        return StatusReport(data, listed)

    def sql(self, query: str) -> QueryAnswer:
        """The daemon runs it through its API: the same rules and caps as a local query."""
        self._asking()
        columns, rows, note = self.client.sql(query)
        return QueryAnswer(columns, [tuple(r) for r in rows], truncated=note is not None, note=note)

    def recompute(self, service: str | None, course_key: str | None) -> RunSummary:
        return self.local.recompute(service, course_key)
