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
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

from optimus.errors import IngestError
from optimus.formats import events as rules
from optimus.formats.archive import gzip_intact

__all__ = ["BlockReader", "ReadAhead", "SalvagingGzip", "gzip_intact"]  # gzip_intact: formats/archive.py, shared with the engines

SLOTS = 2  # blocks a reader may have waiting beside the one being loaded
GZIP_INPUT = 256 << 10  # compressed bytes fed to zlib at a time
_PROBE = 1024  # after a deflate error, the stream is fed again in steps this small to keep what precedes it


class SalvagingGzip:
    """A `.gz` (one or more members) read as a stream that ends at the first damage instead of
    raising: everything decompressed before it is given out, and `damage` says what and where
    (the compressed byte offset). `cut_short` says the text may end inside a line (truncation,
    a broken deflate stream), so the reader drops that last partial line.

    Python's gzip module raises on any damage and loses the block being read; this parses the
    header and trailer itself (RFC 1952) and checks CRC-32 and length like it does.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._input = b""  # compressed bytes read, not yet consumed
        self._at = 0  # file offset of self._input[0]
        self._inflate: Any = None  # the current member's decompressor, None between members
        self._crc = self._size = 0
        self._members = 0
        self._out: list[bytes] = []  # decompressed, not yet given out
        self._held = 0  # their bytes
        self.damage: str | None = None
        self.cut_short = False
        self._ended = False

    def _fill(self, need: int) -> bool:
        """At least `need` bytes in the input buffer (False at the end of the file)."""
        while len(self._input) < need:
            more = self._raw.read(max(GZIP_INPUT, need - len(self._input)))
            if not more:
                return False
            self._input += more
        return True

    def _consume(self, n: int) -> None:
        self._input = self._input[n:]
        self._at += n

    def _stop(self, why: str, at: int, cut: bool) -> None:
        self.damage, self.cut_short, self._ended = f"{why} at byte {at}", cut, True

    def _header(self) -> None:
        """Read a member's header, or end: at the end of the file (after zero padding, as gzip
        allows), or at junk."""
        while True:
            if not self._fill(1):
                self._ended = True  # the end (or an empty file: no lines)
                return
            if not self._members:
                break
            zeros = len(self._input) - len(self._input.lstrip(b"\0"))
            if zeros < len(self._input):
                self._consume(zeros)
                break
            self._consume(zeros)
        if not self._fill(10):
            if not self._members and self._input[:3] != b"\x1f\x8b\x08"[: len(self._input)]:
                raise gzip.BadGzipFile("not a gzip file (it does not start with a gzip header)")
            return self._stop("truncated gzip header", self._at + len(self._input), False)
        head = self._input
        if head[:3] != b"\x1f\x8b\x08":
            if not self._members:  # nothing of it is readable: a file error, not a damaged file
                raise gzip.BadGzipFile("not a gzip file (it does not start with a gzip header)")
            return self._stop("junk after the gzip stream", self._at, False)
        flags, pos = head[3], 10
        try:
            if flags & 4:  # FEXTRA
                if not self._fill(pos + 2):
                    raise EOFError
                pos += 2 + int.from_bytes(self._input[pos : pos + 2], "little")
            for bit in (8, 16):  # FNAME, FCOMMENT: zero-terminated
                if flags & bit:
                    while (end := self._input.find(b"\0", pos)) < 0:
                        if not self._fill(len(self._input) + 1):
                            raise EOFError
                    pos = end + 1
            if flags & 2:  # FHCRC
                pos += 2
            if not self._fill(pos):
                raise EOFError
        except EOFError:
            return self._stop("truncated gzip header", self._at + len(self._input), False)
        self._consume(pos)
        self._inflate, self._crc, self._size = zlib.decompressobj(-zlib.MAX_WBITS), 0, 0
        self._members += 1

    def _emit(self, data: bytes) -> None:
        if data:
            self._crc = zlib.crc32(data, self._crc)
            self._size += len(data)
            self._out.append(data)
            self._held += len(data)

    def _body(self, want: int) -> None:
        """Inflate some of the current member; at its end check the trailer."""
        if not self._input and not self._fill(1):
            return self._stop("truncated (the gzip stream ends early)", self._at, True)
        chunk = self._input[:GZIP_INPUT]
        saved = self._inflate.copy()
        try:
            data = self._inflate.decompress(chunk, max(want, 1 << 16))
        except zlib.error as exc:
            return self._salvage(saved, chunk, exc)
        used = len(chunk) - len(self._inflate.unconsumed_tail) - len(self._inflate.unused_data)
        self._emit(data)
        self._consume(used)
        if self._inflate.eof:
            self._inflate = None
            if not self._fill(8):
                return self._stop("truncated (no gzip trailer)", self._at, False)
            crc, size = int.from_bytes(self._input[:4], "little"), int.from_bytes(self._input[4:8], "little")
            if crc != self._crc:
                return self._stop("CRC check failed (the lines read may differ from those written)", self._at, False)
            if size != self._size & 0xFFFFFFFF:
                return self._stop("length check failed (the lines read may differ from those written)", self._at + 4, False)
            self._consume(8)

    def _salvage(self, inflate: Any, chunk: bytes, exc: zlib.error) -> None:
        """The deflate stream is broken inside `chunk`: keep all it decompresses before the
        broken byte (fed again from a copy in small steps, then the failing step byte by byte)."""
        at, step = 0, _PROBE
        while at < len(chunk):
            saved = inflate.copy()
            try:
                self._emit(inflate.decompress(chunk[at : at + step]))
            except zlib.error:
                if step == 1:
                    break
                inflate, step = saved, 1
                continue
            at += step
        self._stop(f"broken deflate data ({exc})", self._at + at, True)

    def read(self, size: int = -1) -> bytes:
        want = size if size >= 0 else 1 << 62
        while self._held < want and not self._ended:
            if self._inflate is None:
                self._header()
            else:
                self._body(want - self._held)
        data = b"".join(self._out)
        self._out = [data[want:]] if len(data) > want else []
        self._held = len(data) - min(want, len(data))
        return data[:want] if len(data) > want else data

    def close(self) -> None:
        self._raw.close()

    def __enter__(self) -> SalvagingGzip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class BlockReader:
    """Line batches of one file, read by a thread; `start()` begins reading, iterating consumes."""

    def __init__(self, path: Path, batch_bytes: int, max_line: int = rules.MAX_LINE_BYTES, slots: int = SLOTS) -> None:
        self.path = path
        self.batch_bytes = batch_bytes
        self.max_line = max_line
        self.on_end: Callable[[], None] | None = None  # called on the reader thread once the file is read
        self._ahead: queue.Queue[Any] = queue.Queue()
        self._slots = threading.Semaphore(slots)
        self._stop = threading.Event()
        self.finished = threading.Event()  # the whole file is read
        self.damage: str | None = None  # set once the file is read: a damaged archive's loss, and where
        self._thread = threading.Thread(target=self._read, name=f"read {path.name}", daemon=True)

    def start(self) -> BlockReader:
        if not self._thread.is_alive() and self._thread.ident is None:
            self._thread.start()
        return self

    def _read(self) -> None:
        try:
            raw = open(self.path, "rb")
            with SalvagingGzip(raw) if self.path.name.endswith(".gz") else raw as fh:
                # line_batches reads with read(n) (and asks cut_short), which SalvagingGzip provides
                batches = rules.line_batches(cast(BinaryIO, fh), self.batch_bytes, self.max_line)
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
                self.damage = getattr(fh, "damage", None)
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

    def __init__(self, batch_bytes: int, max_line: int = rules.MAX_LINE_BYTES) -> None:
        self.batch_bytes = batch_bytes
        self.max_line = max_line
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
            reader = BlockReader(path, self.batch_bytes, self.max_line)
        reader.on_end = self._start_then
        if reader.finished.is_set():  # read to its end before it had someone to tell
            self._start_then()
        return reader.start()

    def _start_then(self) -> None:
        with self._lock:
            if self._then is not None and self._ready is None:
                self._ready, self._then = BlockReader(self._then, self.batch_bytes, self.max_line).start(), None
