"""The check that a tracking-log archive is whole, shared by Optimus's reader (services/clickstream_reader.py,
whose SalvagingGzip checks the same) and the engines that read event files themselves (Warehouse.event_lines):
an engine's gzip reader may skip a CRC or stop quietly where an archive is cut, so the lines it read are
the reader's only when this says the file is whole."""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import cast

from isal import isal_zlib  # ISA-L's inflate: zlib's API and checks at about 2.4x its speed (every event file is checked)

# what a broken archive raises (isal's stub calls its error an instance, not the class it is)
_BROKEN: tuple[type[BaseException], ...] = (OSError, zlib.error, cast(type[BaseException], isal_zlib.error))

_BOM = b"\xef\xbb\xbf"


def gzip_intact(path: Path, chunk: int = 1 << 20) -> bool:
    """Whether the file reads to its end with nothing damaged (each gzip member's CRC-32 and length
    checked, as SalvagingGzip does) and its text does not start with a byte-order mark: then the
    lines an engine reads of it (Warehouse.event_lines) are this reader's lines. DuckDB's read_csv
    checks no CRC and drops a leading BOM, so a file failing this is read here instead. ISA-L runs
    without the GIL, like zlib, so this runs on a thread beside the engine's read. Any doubt is False."""
    try:
        with open(path, "rb") as fh:
            if not path.name.endswith(".gz"):
                return fh.read(len(_BOM)) != _BOM
            inflate, head, done = isal_zlib.decompressobj(16 + zlib.MAX_WBITS), b"", False
            while data := fh.read(chunk):
                while data:
                    if done:  # after a member: zero padding, or another member
                        data = data.lstrip(b"\0")
                        if not data:
                            break
                        inflate, done = isal_zlib.decompressobj(16 + zlib.MAX_WBITS), False
                    out = inflate.decompress(data, chunk << 4)
                    if len(head) < len(_BOM):
                        head += out[: len(_BOM)]
                    data = inflate.unconsumed_tail
                    if inflate.eof:
                        data, done = inflate.unused_data, True
            return done and (not head or not _BOM.startswith(head[: len(_BOM)]))
    except _BROKEN:
        return False
