"""What the API shares with the process serving it: the daemon's state, and the read views."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

import anyio
import anyio.to_thread
from anyio.lowlevel import RunVar
from fastapi import Request

from optimus.config import Settings
from optimus.errors import OptimusError
from optimus.ledger import utcnow
from optimus.warehouse import Warehouse

API_THREADS = 4  # reads are quick; a small pool keeps them from crowding the ingest
VIEW_WAIT_SECONDS = 10.0  # no read view given back for this long while a request waits: it gets a 503
VIEW_QUEUE_SECONDS = 20.0  # the longest a request waits in a queue that moves (under the load test's 30 s)
MAX_ID = 2**63 - 1  # ids and offsets are BIGINT in both engines: a bigger number is a 422, not an engine error


@dataclass
class ServerState:
    """Set by the daemon's worker, read by the API. `mode` is 'daemon' (ingesting) or 'serve' (read only)."""

    mode: str = "serve"
    request_scan: Callable[[], None] | None = None
    started_at: datetime = field(default_factory=utcnow)
    ready: bool = False
    busy: bool = False
    task: str | None = None
    last_scan_at: datetime | None = None
    scans: int = 0
    last_scan: dict[str, Any] = field(default_factory=dict)
    last_run_at: datetime | None = None
    local_token: str | None = None


class ViewsBusy(OptimusError):
    """No read view came free in time (or the server is shutting down): answered 503 with Retry-After."""

    retry_after = 2  # seconds


class ReadViews:
    """A fixed pool of read views on the warehouse.

    DuckDB: cursors of the daemon's own database (made once, up front, so that no API thread
    touches the writer's connection); they see committed data and never wait for the writer.
    A server warehouse: its own connections.

    Requests borrow a view with `borrow()` on the event loop: waiting for one holds no worker
    thread of the API's limiter (the freeze of issue 14 was requests waiting for views inside
    worker threads while the requests holding the views waited for a worker thread), and a view
    is given back on every path, including a client gone while it waited. Waiters are served first
    come, first served; a 503 (ViewsBusy) is for a pool that is stuck (no view given back for
    `wait_seconds`) or a wait past `queue_seconds`, not for a long queue that moves. Threads
    outside the event loop (the daemon at shutdown) use `open()`.
    """

    def __init__(
        self,
        settings: Settings,
        wh: Warehouse,
        size: int = API_THREADS,
        wait_seconds: float = VIEW_WAIT_SECONDS,
        queue_seconds: float = VIEW_QUEUE_SECONDS,
    ) -> None:
        self._pool: queue.Queue[Warehouse] = queue.Queue()
        self._all: list[Warehouse] = []
        self.dialect = wh.sql.name
        self.wait_seconds = wait_seconds
        self.queue_seconds = max(queue_seconds, wait_seconds)
        self._given_back = time.monotonic()  # when a view last came back: a queue that moves is not stuck
        self._closed = False
        self._queued = 0  # requests waiting for a view; while there are any, newcomers queue behind them
        self._count = threading.Lock()
        for _ in range(size):
            view = wh.reader()
            self._all.append(view)
            self._pool.put(view)

    @property
    def size(self) -> int:
        return len(self._all)

    @property
    def free(self) -> int:
        """Views not borrowed right now."""
        return self._pool.qsize()

    def _take_now(self) -> Warehouse | None:
        """A free view, unless requests are already waiting (then None, and this one joins them)."""
        with self._count:
            if not self._queued:
                try:
                    return self._pool.get_nowait()
                except queue.Empty:
                    pass
            self._queued += 1
            return None

    def _take(self, taken: list[Warehouse], since: float) -> None:
        """Wait (in a thread) for a free view; the view goes into `taken`, so that it is given back even
        when the request was cancelled meanwhile. Gives up when no view has come back for `wait_seconds`
        (the pool is stuck: this request cannot be served) or after `queue_seconds` in all."""
        while True:
            try:
                taken.append(self._pool.get(timeout=0.2))
                return
            except queue.Empty:
                now = time.monotonic()
                if now - max(self._given_back, since) > self.wait_seconds or now - since > self.queue_seconds:
                    return

    def _give_back(self, view: Warehouse) -> None:
        self._given_back = time.monotonic()
        self._pool.put(view)

    def _busy(self) -> ViewsBusy:
        if self._closed:
            return ViewsBusy("the server is shutting down; try again shortly")
        return ViewsBusy(
            f"the warehouse is busy: no read view came free (none given back for {self.wait_seconds:g}s, "
            f"or {self.queue_seconds:g}s in the queue); try again shortly"
        )

    @asynccontextmanager
    async def borrow(self) -> AsyncIterator[Warehouse]:
        """A view for one request, waited for on the event loop; ViewsBusy when the pool is stuck."""
        if self._closed:
            raise self._busy()
        taken: list[Warehouse] = []
        try:
            first = self._take_now()
            if first is not None:
                taken.append(first)
            else:
                try:
                    # one thread at a time waits on the pool, on a limiter of its own (first come, first
                    # served); the other waiters queue on that limiter, on the event loop, holding no thread
                    since = time.monotonic()
                    with anyio.move_on_after(self.queue_seconds):
                        await anyio.to_thread.run_sync(self._take, taken, since, limiter=_waiter(self))
                finally:
                    with self._count:
                        self._queued -= 1
            if not taken:
                raise self._busy()
            yield taken[0]
        finally:
            for view in taken:
                self._give_back(view)

    @contextmanager
    def open(self) -> Iterator[Warehouse]:
        """A view for a thread outside the API's event loop; ViewsBusy after `wait_seconds`."""
        try:
            view = self._pool.get(timeout=self.wait_seconds)
        except queue.Empty:
            raise self._busy() from None
        try:
            yield view
        finally:
            self._give_back(view)

    def interrupt_all(self) -> None:
        for view in self._all:
            view.interrupt()

    def close(self) -> None:
        self._closed = True
        for view in self._all:
            try:
                view.close()
            except Exception:  # closing at shutdown: nothing useful to do with an error
                pass


_WAITERS: RunVar[WeakKeyDictionary[ReadViews, anyio.CapacityLimiter]] = RunVar("optimus_view_waiters")


def _waiter(views: ReadViews) -> anyio.CapacityLimiter:
    """The one-thread limiter of a pool's waiter, per event loop (a limiter belongs to one loop)."""
    waiters = _WAITERS.get(None)
    if waiters is None:
        waiters = WeakKeyDictionary()
        _WAITERS.set(waiters)
    limiter = waiters.get(views)
    if limiter is None:
        limiter = waiters[views] = anyio.CapacityLimiter(1)
    return limiter


async def warehouse_view(request: Request) -> AsyncIterator[Warehouse]:
    """FastAPI dependency: borrow a read view for one request (async, so that its wait and its
    return happen on the event loop, never in a worker thread the endpoint itself needs)."""
    async with request.app.state.views.borrow() as view:
        yield view


def iso(value: Any) -> str | None:
    """Dates and times as ISO text (a space between date and time, as the original wrote them)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
