"""Scheduling, ledger state, progress, timing and errors, once, for every service.

The dependency rule is the original's, with its gaps closed: a service with needs runs when
none of them has files queued or running ("complete") and at least one of them finished a run
since this service last started (or this service's rules changed). A file service runs when it
has queued files. Each file is ingested in one transaction together with its ledger row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from optimus import discovery, exports, ledger
from optimus.config import Settings
from optimus.errors import OptimusError, WarehouseError
from optimus.ledger import LedgerFile, utcnow
from optimus.services import bytes_outside_engine, load_services
from optimus.services.base import FileResult, Progress, RunContext, Service
from optimus.warehouse import connect, schema
from optimus.warehouse.base import Warehouse

log = logging.getLogger("optimus")


@dataclass
class FileOutcome:
    service: str
    path: str
    state: str  # done | damaged | failed
    rows: int = 0
    quarantined: int = 0
    seconds: float = 0.0
    error: str | None = None


@dataclass
class ServiceOutcome:
    service: str
    run_id: int
    status: str
    files: int = 0
    rows: int = 0
    seconds: float = 0.0
    error: str | None = None
    failed_files: int = 0
    damaged_files: int = 0
    tables: dict[str, int] = field(default_factory=dict)  # rows per table, where the service reported them apart

    @property
    def label(self) -> str:
        """The summary's status cell: a service whose files failed is not 'ok' (its run still is)."""
        if self.status != "ok":
            return self.status
        if self.failed_files:
            return f"{self.failed_files} of {self.files} files failed"
        if self.damaged_files:
            return f"ok, {self.damaged_files} damaged"
        return "ok"


@dataclass
class RunSummary:
    files: list[FileOutcome] = field(default_factory=list)
    services: list[ServiceOutcome] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return any(f.state == "failed" for f in self.files) or any(s.status == "failed" for s in self.services)


def order(services: dict[str, type[Service]]) -> list[str]:
    """Service names in dependency order (needs first); registration order breaks ties."""
    done: list[str] = []
    visiting: set[str] = set()

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            raise OptimusError(f"services depend on each other in a cycle through {name}")
        visiting.add(name)
        for need in services[name].needs:
            if need not in services:
                raise OptimusError(f"service {name} needs {need}, which is not registered")
            visit(need)
        visiting.discard(name)
        done.append(name)

    for name in services:
        visit(name)
    return done


def open_warehouse(settings: Settings, read_only: bool = False, also_allowed: Sequence[Path] = ()) -> Warehouse:
    """The configured warehouse, opened for the services: a writer's engine leaves room for what the
    active services hold beside it (bytes_outside_engine), which the storage layer cannot know."""
    outside = 0 if read_only else bytes_outside_engine(settings)
    return connect(settings, read_only=read_only, also_allowed=also_allowed, outside_bytes=outside)


class Pipeline:
    """Runs the registered services against one warehouse."""

    def __init__(self, settings: Settings, wh: Warehouse, progress: Callable[[], Progress] = Progress) -> None:
        if not wh.capabilities.transactions:
            # exactly-once here rests on one transaction per file (rows + ledger row); an engine without
            # one needs the staged-parts strategy of docs/architecture.md ("Exactly once"), not built yet
            raise WarehouseError(
                f"warehouse {wh.url}: its engine ({wh.sql.name}) has no multi-statement transactions, which this pipeline "
                "needs for exactly-once ingest (docs/architecture.md, 'On an engine without multi-statement transactions')"
            )
        self.settings = settings
        self.wh = wh
        self.progress = progress
        registry = load_services()
        self.order = order(registry)
        self.services = {name: registry[name](settings) for name in self.order}
        self.active = [n for n in self.order if n not in settings.ignored_services]
        # the daemon sets this on SIGTERM: the current file finishes, the rest waits for the next start
        self.stop_requested: Callable[[], bool] = lambda: False

    def setup(self) -> int:
        """Migrate the warehouse, create service tables, requeue files a crash left running, and finish or
        remove the exports a crash left staged."""
        schema.ensure(self.wh)
        for name in self.order:
            self.services[name].setup(self.wh)
        published, removed = exports.recover(self.settings.export_path, self._export_committed)
        if published or removed:
            log.warning("exports left by an interrupted run: %d set(s) published (their run had committed), %d removed", published, removed)
        return ledger.requeue_running(self.wh)

    def _export_committed(self, manifest: dict) -> bool | None:
        """Whether the run that sealed an export set committed: its service_runs row is 'ok' (the same
        transaction as the run's tables and records). None: another warehouse's set."""
        if manifest.get("run_id") is None:
            return True  # an `optimus export` set: no run to commit; sealed means whole
        if manifest.get("warehouse") != self.settings.warehouse_url:
            return None  # its run ids are another warehouse's
        return bool(self.wh.scalar("SELECT count(*) FROM service_runs WHERE id = ? AND status = 'ok'", [int(manifest["run_id"])]))

    def claims(self) -> dict[str, str]:
        """File kind -> the active service that claims it."""
        result: dict[str, str] = {}
        for name in self.active:
            for kind in self.services[name].claims:
                result[kind] = name
        return result

    def scan(self) -> ledger.RegisterReport:
        """Register new and changed files of every data path."""
        from optimus.config import check_data_paths

        check_data_paths(self.settings)
        return ledger.register(self.wh, discovery.scan(self.settings), self.claims())

    def retry_failed(self, services: list[str] | None = None) -> int:
        """Queue failed files again (of these services, default all active); returns how many.

        Damaged files are left alone: their file is broken, and reading it again loses the same lines;
        a re-delivery changes its content, and the next scan queues it by itself."""
        names = list(services or self.active)
        unknown = [n for n in names if n not in self.services]
        if unknown:
            raise OptimusError(f"unknown service(s) {', '.join(unknown)} (known: {', '.join(self.order)})")
        return ledger.requeue_failed(self.wh, names)

    def failed_files(self) -> int:
        """Files of active services that are failed now, whichever run failed them."""
        return ledger.count_in_state(self.wh, "failed", self.active)

    def damaged_files(self) -> int:
        return ledger.count_in_state(self.wh, "damaged", self.active)

    def register_file(self, path: Path, service: str | None = None) -> None:
        """Register one file given on the command line, by the service that claims its name or `service`."""
        path = path.resolve()
        if not path.exists():
            raise OptimusError(f"{path}: no such file")
        info = discovery.classify(path.name)
        if service is not None:
            if service not in self.services:
                raise OptimusError(f"unknown service {service!r} (known: {', '.join(self.order)})")
            kinds = self.services[service].claims
            if not kinds:
                raise OptimusError(f"service {service} claims no files")
            if not isinstance(info, discovery.Classified) or info.kind not in kinds:
                info = discovery.Classified(kinds[0])
        elif not isinstance(info, discovery.Classified):
            raise OptimusError(f"{path}: no service claims a file of this name; name one with --service")
        data_path = next((p for p in self.settings.data_paths if str(path).startswith(str(p.resolve()))), path.parent)
        found = discovery.Found(path, data_path, info, None)
        claims = self.claims() if service is None else {info.kind: service}
        report = ledger.register(self.wh, discovery.ScanResult(found=[found]), claims)
        if not report.new and not report.changed:
            # an explicit request ingests the file again even when it is unchanged
            self.wh.execute("UPDATE ingest_files SET state = 'queued' WHERE path = ? AND state <> 'running'", [str(path)])

    # -- the dependency rule -------------------------------------------------------------------
    def _last_run(self, name: str) -> tuple[datetime | None, int | None]:
        row = self.wh.query(
            "SELECT started_at, rules_version FROM service_runs WHERE service = ? AND status = 'ok' ORDER BY id DESC LIMIT 1", [name]
        )
        return (row[0][0], row[0][1]) if row else (None, None)

    def _complete(self, name: str) -> bool:
        return not self.wh.scalar("SELECT count(*) FROM ingest_files WHERE service = ? AND state IN ('queued', 'running')", [name])

    def _upstream_changed(self, service: Service, since: datetime | None) -> bool:
        marks = ", ".join("?" for _ in service.needs)
        sql = f"SELECT count(*) FROM service_runs WHERE status = 'ok' AND service IN ({marks})"
        params: list[object] = list(service.needs)
        if since is not None:
            sql += " AND finished_at >= ?"
            params.append(since)
        return bool(self.wh.scalar(sql, params))

    def _upstream(self, name: str) -> list[str]:
        """Every service `name` needs, directly or through another (a derived input is only complete
        when its own inputs are: Person Course waits while Clickstream has queued files)."""
        found: list[str] = []
        for need in self.services[name].needs:
            for n in [*self._upstream(need), need]:
                if n not in found:
                    found.append(n)
        return found

    def due(self, name: str) -> tuple[bool, str]:
        """Whether a service should run now, and why (or why not)."""
        service = self.services[name]
        waiting = [n for n in self._upstream(name) if not self._complete(n)]
        if waiting:
            return False, f"waiting for {', '.join(waiting)}"
        has_files = bool(service.claims) and bool(
            self.wh.scalar("SELECT count(*) FROM ingest_files WHERE service = ? AND state = 'queued'", [name])
        )
        if has_files:
            return True, "files queued"
        if service.is_derived():
            last, version = self._last_run(name)
            if last is not None and version != service.rules_version:
                return True, "rules changed"
            if service.needs and self._upstream_changed(service, last):
                return True, "inputs changed"
        return False, "nothing to do"

    # -- running -------------------------------------------------------------------------------
    def recompute(self, names: list[str] | None = None, course_keys: set[str] | None = None) -> RunSummary:
        """Rebuild derived tables now, whole (or only these courses), whether or not their inputs changed.

        :param names: the derived services to run (default: every active one, in dependency order).
        """
        names = list(names) if names else [n for n in self.active if self.services[n].is_derived()]
        for name in names:
            if name not in self.services:
                raise OptimusError(f"unknown service {name!r} (known: {', '.join(self.order)})")
            if not self.services[name].is_derived():
                raise OptimusError(f"{name} is not a derived service; re-ingest its files with 'optimus ingest --file'")
        return self.run_once(only=names, force=True, recompute=course_keys or "all")

    def run_once(self, only: list[str] | None = None, force: bool = False, recompute: str | set[str] | None = None) -> RunSummary:
        """Run every due service once, in dependency order.

        :param only: run just these services (their needs are not run).
        :param force: run the named derived services even if nothing changed.
        :param recompute: with force, what each named derived service rebuilds whole, for this run
            only ("all" or course keys; see Service.recompute).
        """
        if only:
            unknown = [n for n in only if n not in self.services]
            if unknown:
                raise OptimusError(f"unknown service(s) {', '.join(unknown)} (known: {', '.join(self.order)})")
        summary = RunSummary()
        for name in self.active:
            if only and name not in only:
                continue
            if self.stop_requested():
                break
            is_due, _why = self.due(name)
            forced = bool(force and only and self.services[name].is_derived())
            if not is_due and not forced:
                continue
            service = self.services[name]
            service.recompute = recompute if forced else None
            try:
                summary.services.append(self._run_service(name, summary))
            finally:
                service.recompute = None  # a request to recompute is for one run only
        return summary

    def _run_service(self, name: str, summary: RunSummary) -> ServiceOutcome:
        service = self.services[name]
        last_started, _ = self._last_run(name)
        started = utcnow()
        run_id = int(
            self.wh.scalar(
                "INSERT INTO service_runs (service, started_at, status, rules_version) VALUES (?, ?, 'running', ?) RETURNING id",
                [name, started, service.rules_version],
            )
        )
        ctx = RunContext(self.settings, self.wh, service, run_id, last_started, self.progress())
        ctx.exports = exports.ExportSet(
            self.settings.export_path, exports.set_name(f"run{run_id}"), warehouse=self.settings.warehouse_url, run_id=run_id, service=name
        )
        clock = time.monotonic()
        outcome = ServiceOutcome(name, run_id, "ok")
        files = ledger.queued(self.wh, name) if service.claims else []
        try:
            done_files: list[LedgerFile] = []
            try:
                for i, file in enumerate(files):
                    if self.stop_requested():
                        break
                    service.read_ahead(file, files[i + 1] if i + 1 < len(files) else None)
                    result = self._ingest_file(service, file, ctx)
                    summary.files.append(result)
                    outcome.files += 1
                    outcome.rows += result.rows
                    outcome.failed_files += result.state == "failed"
                    outcome.damaged_files += result.state == "damaged"
                    if result.state == "done":
                        done_files.append(file)
            finally:
                service.read_ahead(None, None)  # nothing more: a file read ahead (after a stop) is let go
            with self.wh.transaction():
                if done_files:
                    service.finish(self.wh, done_files, ctx)
                if service.is_derived():
                    ctx.progress.start(f"{name}")
                    outcome.rows += service.run(self.wh, ctx)
                    outcome.tables = dict(ctx.table_rows)
                    ctx.progress.end()
                self._record_changes(ctx)
                self.wh.execute(
                    "UPDATE service_runs SET finished_at = ?, status = 'ok', files = ?, rows = ? WHERE id = ?",
                    [utcnow(), outcome.files, outcome.rows, run_id],
                )
                # the exports are whole on disk before the warehouse says the run happened
                ctx.exports.seal()
                if ctx.exports.files:
                    exports.pause_for_tests("export-written")
        except Exception as exc:  # a service failure is recorded, and the others go on
            ctx.exports.discard()  # the run did not commit: it exported nothing
            outcome.status, outcome.error = "failed", _describe(exc)
            log.error("%s failed: %s", name, outcome.error)
            self.wh.execute(
                "UPDATE service_runs SET finished_at = ?, status = 'failed', files = ?, rows = ?, error = ? WHERE id = ?",
                [utcnow(), outcome.files, outcome.rows, outcome.error, run_id],
            )
        else:
            self._publish(ctx.exports)
        outcome.seconds = time.monotonic() - clock
        return outcome

    @staticmethod
    def _publish(staged: exports.ExportSet) -> None:
        """Rename a committed run's exports into place; a failure leaves them staged for the next start."""
        if not staged.files:
            return
        exports.pause_for_tests("export-committed")
        try:
            staged.publish()
        except OSError as exc:
            log.error("exports of a committed run stay in %s (published at the next start): %s", staged.folder, exc)

    def _record_changes(self, ctx: RunContext) -> None:
        self.wh.executemany(
            "INSERT INTO service_run_changes (run_id, course_key, day) VALUES (?, ?, ?)",
            [[ctx.run_id, key, day] for key, day in sorted(ctx.touched, key=lambda kd: (kd[0], str(kd[1])))],
        )

    def _ingest_file(self, service: Service, file: LedgerFile, ctx: RunContext) -> FileOutcome:
        ledger.mark_running(self.wh, file, ctx.run_id)
        ctx.progress.start(f"{service.name}: {file.path.name}", total=None)
        ctx.rows_written = 0
        clock = time.monotonic()
        touched_before = set(ctx.touched)
        try:
            with self.wh.transaction():
                result: FileResult = service.ingest(self.wh, file, ctx)
                ledger.mark_done(
                    self.wh, file, result.rows, result.quarantined, result.note, result.course_id, result.coerced, result.damage
                )
                ledger.note_course_id(self.wh, result.course_id or file.course_id)
        except Exception as exc:
            ctx.touched = touched_before
            error = _describe(exc)
            ledger.mark_failed(self.wh, file, error)
            ctx.progress.end()
            seconds = time.monotonic() - clock
            log.warning("%s failed after %.2fs: %s", service.name, seconds, file_message(str(file.path), error))
            return FileOutcome(service.name, str(file.path), "failed", seconds=seconds, error=error)
        ctx.progress.end()
        seconds = time.monotonic() - clock
        log.info("%s ingested %s: %d rows, %d quarantined, %.2fs", service.name, file.path, result.rows, result.quarantined, seconds)
        state = "damaged" if result.damage else "done"
        return FileOutcome(service.name, str(file.path), state, result.rows, result.quarantined, seconds, error=result.damage)


def file_message(path: str, message: str | None) -> str:
    """`path: message`, without the path twice when the message names it already (most errors do)."""
    message = message or ""
    return message if path in message else f"{path}: {message}"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OptimusError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"
