"""The daemon (`optimus run`): watch the data paths, ingest what arrives, serve the API.

One process owns the warehouse (DuckDB lets one process open a file for writing). A worker
thread scans and runs the pipeline; the API is served from the same process on its own read
cursor; the main thread only waits for signals, so that SIGTERM is handled even while a long
query runs. A lock file beside the warehouse says which daemon holds it and where its API
listens, so that other commands can talk to it instead of opening the warehouse.

The warehouse is opened shut off from the host for the whole process (`warehouse.connect`: DuckDB's
external access off, only the data paths and the spill folder allowed, its configuration locked),
so the API's queries, on cursors of the same instance, reach nothing else (docs/security.md).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import secrets
import signal
import socket
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from optimus import discovery, ledger
from optimus.config import Settings, check_data_paths, lock_path  # lock_path: also imported from here
from optimus.errors import OptimusError
from optimus.ledger import utcnow
from optimus.pipeline import Pipeline, open_warehouse
from optimus.services.base import Progress
from optimus.warehouse import Warehouse

if TYPE_CHECKING:
    from optimus.api.state import ReadViews, ServerState

log = logging.getLogger("optimus")

GRACE_SECONDS = 3.0  # how long the current file may run on after SIGTERM before it is interrupted
DEBOUNCE_SECONDS = 0.3  # file-system events come in bursts; scan once after the burst


class DaemonRunning(OptimusError):
    """Another daemon holds this warehouse."""


# -- the lock file ------------------------------------------------------------------------------
@dataclass
class LockInfo:
    """What the lock file holds: who has the warehouse and how to reach its API."""

    pid: int
    hostname: str
    host: str
    port: int
    warehouse: str
    started: str
    local_token: str  # lets a local `optimus sql` through; the file is readable by its owner only

    @property
    def base_url(self) -> str:
        host = self.host
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"


class DaemonLock:
    """An exclusive flock on the lock file, held for the daemon's life; the kernel drops it when the
    process dies, so a lock left by a killed daemon is recognised as stale without guessing from pids."""

    def __init__(self, settings: Settings) -> None:
        self.path = lock_path(settings)
        self.settings = settings
        self.fd: int | None = None
        self.info: LockInfo | None = None

    def acquire(self, host: str, port: int) -> LockInfo:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = _read_info(self.path)
            where = f" (pid {holder.pid}, API at {holder.base_url})" if holder else ""
            raise DaemonRunning(
                f"another Optimus daemon{where} holds the warehouse {self.settings.warehouse_url}; stop it first (lock file {self.path})"
            ) from None
        old = os.read(fd, 4096)
        if old.strip():
            try:
                stale = json.loads(old)
                log.warning("replacing the stale lock of daemon pid %s (it is no longer running)", stale.get("pid"))
            except ValueError:
                log.warning("replacing an unreadable stale lock file %s", self.path)
        self.info = LockInfo(
            pid=os.getpid(),
            hostname=socket.gethostname(),
            host=host,
            port=port,
            warehouse=self.settings.warehouse_url,
            started=utcnow().isoformat(),
            local_token=secrets.token_urlsafe(32),
        )
        os.fchmod(fd, 0o600)
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(asdict(self.info)).encode())
        os.fsync(fd)
        self.fd = fd
        return self.info

    def release(self) -> None:
        if self.fd is None:
            return
        os.ftruncate(self.fd, 0)
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)
        self.fd = None


def _read_info(path: Path) -> LockInfo | None:
    try:
        data = json.loads(path.read_text() or "null")
        return LockInfo(**data) if isinstance(data, dict) else None
    except (OSError, ValueError, TypeError):
        return None


def running_daemon(settings: Settings) -> LockInfo | None:
    """The live daemon holding this warehouse, or None (no lock file, or a stale one)."""
    path = lock_path(settings)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _read_info(path)
            return info if info and info.hostname == socket.gethostname() else None
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None  # nobody holds it: stale
    finally:
        os.close(fd)


# -- files still being written ------------------------------------------------------------------
class StabilityFilter:
    """A file is taken only when two looks at least `settle` seconds apart saw the same size and
    modification time; a file being written keeps changing and waits."""

    def __init__(self, settle: float) -> None:
        self.settle = settle
        self.seen: dict[str, tuple[tuple[int, float], float]] = {}  # path -> (size, mtime), since

    def split(self, found: list[discovery.Found], known: dict[str, tuple[int, float]]) -> tuple[list[discovery.Found], list[str]]:
        """(files ready to register, paths still settling)."""
        now = time.monotonic()
        ready: list[discovery.Found] = []
        waiting: list[str] = []
        seen: dict[str, tuple[tuple[int, float], float]] = {}
        for f in found:
            path = str(f.path)
            try:
                stat = ledger.stat_path(f.path)
            except OSError:
                continue  # vanished between the walk and the look
            if known.get(path) == stat:
                ready.append(f)  # unchanged since it was registered: the ledger skips it cheaply
                seen[path] = (stat, now)
                continue
            before = self.seen.get(path)
            since = before[1] if before and before[0] == stat else now
            seen[path] = (stat, since)
            if now - since >= self.settle:
                ready.append(f)
            else:
                waiting.append(path)
                if before and before[0] != stat:
                    log.info("scan: %s is still being written; waiting until it stops changing", path)
        self.seen = seen
        return ready, waiting


class _StateProgress(Progress):
    """Tells the API what the pipeline is doing now."""

    def __init__(self, state: ServerState) -> None:
        self.state = state

    def start(self, label: str, total: int | None = None) -> None:
        self.state.task = label

    def end(self) -> None:
        self.state.task = None


# -- the daemon -----------------------------------------------------------------------------------
class Daemon:
    """Scan, ingest and serve until SIGTERM or SIGINT."""

    def __init__(self, settings: Settings, settle: float = 2.0, watch: bool = True) -> None:
        from optimus.api.state import ServerState  # the API is loaded only by the daemon, not by every command

        self.settings = settings
        self.settle = min(settle, float(settings.rescan_interval))
        self.watch = watch
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self.state = ServerState(mode="daemon", request_scan=self.request_scan)
        self.stability = StabilityFilter(self.settle)
        self.wh: Warehouse | None = None
        self.views: ReadViews | None = None
        self.pipeline: Pipeline | None = None

    def request_scan(self) -> None:
        self.wake.set()

    # -- the worker ---------------------------------------------------------------------------
    def scan(self) -> list[str]:
        """Register the new and changed files that are stable; returns the paths still settling."""
        assert self.wh is not None and self.pipeline is not None
        check_data_paths(self.settings)
        self._intake()
        result = discovery.scan(self.settings)
        known = {p: (int(s), float(m)) for p, s, m in self.wh.query("SELECT path, size, mtime FROM ingest_files")}
        ready, waiting = self.stability.split(result.found, known)
        report = ledger.register(self.wh, discovery.ScanResult(found=ready, skipped=result.skipped), self.pipeline.claims())
        new, changed = sum(report.new.values()), sum(report.changed.values())
        if new or changed:
            log.info("scan: %d new and %d changed file(s) queued", new, changed)
        self.state.last_scan_at = utcnow()
        self.state.scans += 1
        self.state.last_scan = {"new": report.new, "changed": report.changed, "settling": waiting}
        return waiting

    def _intake(self) -> None:
        """Take in new edX deliveries first, when an intake folder is configured."""
        if self.settings.intake_path is None:
            return
        from optimus.intake import take_in_folder

        assert self.wh is not None  # scan, the one caller, asserts it too
        try:
            report = take_in_folder(self.settings, self.settings.intake_path, self.wh)
        except OptimusError as exc:
            log.error("intake: %s", exc)
            return
        for delivered, target in report.taken:
            log.info("intake: took in %s -> %s", delivered, target)
        for source, message in report.failed:
            log.error("intake: %s: %s", source, message)
        for path in report.failed_exports:
            log.warning("intake: edX could not export %s", path)
        for link, points_at in report.latest:
            log.info("intake: %s now points at %s", link, points_at)

    def _work(self) -> None:
        assert self.pipeline is not None
        next_due = 0.0
        while not self.stopping.is_set():
            woke = self.wake.wait(max(0.0, next_due - time.monotonic()))
            if self.stopping.is_set():
                break
            if woke:
                self.wake.clear()
                if self.stopping.wait(DEBOUNCE_SECONDS):
                    break
            waiting: list[str] = []
            self.state.busy = True
            try:
                waiting = self.scan()
                if self.stopping.is_set():
                    break
                summary = self.pipeline.run_once()
                if summary.services:
                    self.state.last_run_at = utcnow()
            except OptimusError as exc:
                log.error("%s", exc)
            except Exception:  # keep the daemon alive; the next scan tries again
                log.exception("unexpected error in the scan loop")
            finally:
                self.state.busy = False
                self.state.task = None
            interval = float(self.settings.rescan_interval)
            next_due = time.monotonic() + (min(interval, self.settle) if waiting else interval)

    # -- start and stop ------------------------------------------------------------------------
    def _watch(self) -> Any:
        """A file-system watch on each data path (and where its `latest` links point)."""
        try:
            from watchdog.events import FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:  # pragma: no cover - watchdog is a dependency
            return None
        daemon = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: Any) -> None:
                if event.event_type in ("created", "modified", "moved", "deleted", "closed"):
                    daemon.wake.set()

        roots: set[Path] = set()
        for data_path in self.settings.data_paths:
            roots.add(data_path.resolve())
            for sub in ("clickstream_logs", "database_state"):
                latest = discovery.latest_folder(data_path / sub)
                if latest is not None:
                    roots.add(latest)
        observer = Observer()
        for root in sorted(roots):
            if root.is_dir() and not any(root != other and root.is_relative_to(other) for other in roots):
                observer.schedule(Handler(), str(root), recursive=True)
        observer.daemon = True
        observer.start()
        return observer

    def _serve(self, lock: LockInfo) -> tuple[Any, threading.Thread]:
        import uvicorn

        from optimus.api.app import create_app

        assert self.views is not None
        self.state.local_token = lock.local_token
        app = create_app(self.settings, self.views, self.state)
        server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=self.settings.api_host,
                port=self.settings.api_port,
                log_level="warning",
                access_log=False,
                lifespan="on",
                timeout_graceful_shutdown=2,
            )
        )
        thread = threading.Thread(target=server.run, name="optimus-api", daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not server.started:
            server.should_exit = True
            raise OptimusError(f"the API cannot listen on {self.settings.api_host}:{self.settings.api_port} (is the port in use?)")
        return server, thread

    def run(self) -> int:
        """Run until a signal; returns the exit code."""
        lock = DaemonLock(self.settings)
        info = lock.acquire(self.settings.api_host, self.settings.api_port)
        server = observer = api_thread = None
        stopped_cleanly = True
        try:
            check_data_paths(self.settings)
            self.wh = open_warehouse(self.settings)
            self.pipeline = Pipeline(self.settings, self.wh, progress=lambda: _StateProgress(self.state))
            self.pipeline.stop_requested = self.stopping.is_set
            requeued = self.pipeline.setup()
            if requeued:
                log.info("%d file(s) left running by an interrupted run were queued again", requeued)
            from optimus.api.state import ReadViews

            self.views = ReadViews(self.settings, self.wh)  # before the worker starts using the connection
            server, api_thread = self._serve(info)
            log.info("optimus daemon (pid %d) serving %s; scanning every %ds", os.getpid(), info.base_url, self.settings.rescan_interval)
            previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
            try:
                worker = threading.Thread(target=self._work, name="optimus-worker", daemon=True)
                worker.start()
                if self.watch:
                    observer = self._watch()
                self.state.ready = True
                while not self.stopping.wait(0.5):
                    if not worker.is_alive():
                        log.error("the scan loop stopped unexpectedly")
                        self.stopping.set()
                self.state.ready = False
                stopped_cleanly = self._stop_worker(worker)
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)
            return 0
        finally:
            self.state.ready = False
            if observer is not None:
                observer.stop()
            if server is not None:
                server.should_exit = True
                if api_thread is not None:
                    api_thread.join(5)
            if stopped_cleanly:
                # a worker stuck outside the warehouse still holds its lock: leave the connection to the exit
                if self.views is not None:
                    self.views.close()
                if self.wh is not None:
                    self.wh.close()
            lock.release()
            log.info("optimus daemon stopped")

    def _on_signal(self, signum: int, _frame: Any) -> None:
        if not self.stopping.is_set():
            log.info("received %s: finishing the current file, then stopping", signal.Signals(signum).name)
        self.stopping.set()
        self.wake.set()

    def _stop_worker(self, worker: threading.Thread) -> bool:
        """Let the current file finish; past the grace time, interrupt its query (its transaction rolls
        back), then put the ledger in order: nothing left running, the interrupted file queued again.
        Returns False when the worker could not be stopped (the process then exits without it)."""
        assert self.wh is not None and self.views is not None
        worker.join(GRACE_SECONDS)
        if worker.is_alive():
            with self.views.open() as view:
                running = [int(r[0]) for r in view.query("SELECT id FROM ingest_files WHERE state = 'running'")]
            log.info("interrupting the current file %s: its transaction is rolled back and it is queued again", running or "")
            deadline = time.monotonic() + 2.0
            while worker.is_alive() and time.monotonic() < deadline:
                self.wh.interrupt()
                worker.join(0.2)
        if worker.is_alive():
            # busy in Python, not in a query: its transaction never commits once the process ends, so the
            # ledger is set right from a read view (the writer's open transaction has not touched the ledger)
            log.warning("the current file did not stop; exiting without it (its rows are never committed)")
            with self.views.open() as view:
                self._settle_ledger(view)
            return False
        self._settle_ledger(self.wh)
        return True

    @staticmethod
    def _settle_ledger(wh: Warehouse) -> None:
        """Files left running (rolled back or never committed) and files failed by the interrupt go back to
        the queue; runs left running are marked interrupted."""
        with wh.transaction():
            wh.execute(
                "UPDATE ingest_files SET state = 'queued', error = NULL, note = 'requeued: interrupted by shutdown' "
                "WHERE state = 'running' OR (state = 'failed' AND error LIKE '%Interrupt%')"
            )
            wh.execute("UPDATE service_runs SET status = 'interrupted', finished_at = ? WHERE status = 'running'", [utcnow()])
