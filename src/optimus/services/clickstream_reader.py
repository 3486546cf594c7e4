"""Reading event files ahead of the engine: a thread per file turns bytes into line batches.

Decompression, fingerprinting and line splitting run on a thread beside the engine's work on the
block before, and, when the pipeline says which file comes next, the next file's reader starts as
soon as this one reaches its end, so the core that read does not idle while a file is settled and
committed. At most SLOTS blocks of a file wait in memory.
"""
from __future__ import annotations

import gzip
import queue
import threading
import zlib
from pathlib import Path
from typing import Any, Callable, Iterator

from optimus.errors import IngestError
from optimus.formats import events as rules

SLOTS = 2  # blocks a reader may have waiting beside the one being loaded


class BlockReader:
    """Line batches of one file, read by a thread; `start()` begins reading, iterating consumes."""

    def __init__(self, path: Path, batch_bytes: int, slots: int = SLOTS) -> None:
        self.path = path
        self.batch_bytes = batch_bytes
        self.on_end: Callable[[], None] | None = None  # called on the reader thread once the file is read
        self._ahead: queue.Queue[Any] = queue.Queue()
        self._slots = threading.Semaphore(slots)
        self._stop = threading.Event()
        self.finished = threading.Event()  # the whole file is read
        self._thread = threading.Thread(target=self._read, name=f"read {path.name}", daemon=True)

    def start(self) -> "BlockReader":
        if not self._thread.is_alive() and self._thread.ident is None:
            self._thread.start()
        return self

    def _read(self) -> None:
        try:
            opener = gzip.open if self.path.name.endswith(".gz") else open
            with opener(self.path, "rb") as fh:  # type: ignore[operator]
                batches = rules.line_batches(fh, self.batch_bytes)
                while True:
                    while not self._slots.acquire(timeout=0.5):
                        if self._stop.is_set():
                            return
                    if self._stop.is_set():
                        return
                    batch = next(batches, None)
                    if batch is None:
                        break
                    self._ahead.put(batch)
        except (OSError, EOFError, zlib.error) as exc:
            self._ahead.put(IngestError(f"{self.path}: cannot read: {exc}"))
            return
        self._ahead.put(None)
        self.finished.set()
        if self.on_end is not None:
            self.on_end()

    def __iter__(self) -> Iterator[rules.LineBatch]:
        self.start()
        try:
            while (item := self._ahead.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                yield item
                self._slots.release()
        finally:
            self.close()

    def close(self) -> None:
        """Stop reading (a no-op once the file is read) and wait for the thread."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join()


class ReadAhead:
    """The reader of the file being ingested and, when known, of the one after it."""

    def __init__(self, batch_bytes: int) -> None:
        self.batch_bytes = batch_bytes
        self._ready: BlockReader | None = None  # started ahead, for the file ingested next
        self._then: Path | None = None  # the file after the current one
        self._lock = threading.Lock()

    @property
    def bytes_held(self) -> int:
        """Most bytes of blocks in memory at a time: the one being loaded and those waiting."""
        return (1 + SLOTS) * self.batch_bytes

    def plan(self, now: Path | None, then: Path | None) -> None:
        """`now` is ingested next and `then` after it (None: nothing); a reader of another file stops."""
        with self._lock:
            self._then = then
            stale = self._ready if self._ready is not None and self._ready.path != now else None
            if stale is not None:
                self._ready = None
        if stale is not None:
            stale.close()

    def batches(self, path: Path) -> BlockReader:
        """The reader of `path` (the one read ahead, when it is that file); the next file's reader
        starts once this one has read its last block."""
        with self._lock:
            reader, self._ready = self._ready, None
        if reader is None or reader.path != path:
            if reader is not None:
                reader.close()
            reader = BlockReader(path, self.batch_bytes)
        reader.on_end = self._start_then
        if reader.finished.is_set():  # read to its end before it had someone to tell
            self._start_then()
        return reader.start()

    def _start_then(self) -> None:
        with self._lock:
            if self._then is not None and self._ready is None:
                self._ready, self._then = BlockReader(self._then, self.batch_bytes).start(), None
