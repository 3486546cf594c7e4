"""What the API shares with the process serving it: the daemon's state, and the read views."""
from __future__ import annotations

import queue
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterator

from fastapi import Request

from optimus.config import Settings
from optimus.ledger import utcnow
from optimus.warehouse import Warehouse, connect

API_THREADS = 4  # reads are quick; a small pool keeps them from crowding the ingest


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


class ReadViews:
    """A fixed pool of read views on the warehouse, one per API thread.

    DuckDB: cursors of the daemon's own database (made once, up front, so that no API thread
    touches the writer's connection); they see committed data and never wait for the writer.
    A server warehouse: its own connections.
    """

    def __init__(self, settings: Settings, wh: Warehouse, size: int = API_THREADS) -> None:
        self._pool: "queue.Queue[Warehouse]" = queue.Queue()
        self._all: list[Warehouse] = []
        self.dialect = wh.dialect
        reader = getattr(wh, "reader", None)
        for _ in range(size):
            view = reader() if reader is not None else connect(settings, read_only=True)
            self._all.append(view)
            self._pool.put(view)
        self._closed = threading.Event()

    @contextmanager
    def open(self) -> Iterator[Warehouse]:
        view = self._pool.get(timeout=60)
        try:
            yield view
        finally:
            self._pool.put(view)

    def interrupt_all(self) -> None:
        for view in self._all:
            stop = getattr(view, "interrupt", None)
            if stop is not None:
                stop()

    def close(self) -> None:
        for view in self._all:
            try:
                view.close()
            except Exception:  # closing at shutdown: nothing useful to do with an error
                pass


def warehouse_view(request: Request) -> Iterator[Warehouse]:
    """FastAPI dependency: borrow a read view for one request."""
    with request.app.state.views.open() as view:
        yield view


def iso(value: Any) -> str | None:
    """Dates and times as ISO text (a space between date and time, as the original wrote them)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat(sep=" ", timespec="seconds")
    return value.isoformat() if hasattr(value, "isoformat") else str(value)
