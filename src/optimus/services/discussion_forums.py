"""DiscussionForums: forum `.mongo` dumps into `forum_posts`, one row per thread or comment.

Reads `{org}-{course}-{run}-{prod|edge}.mongo` (and the very old `{course}.mongo`), parsed by
formats/mongo.py; writes `forum_posts` (typed columns plus the whole document as JSON) and
`forum_quarantine` (lines that could not be loaded, with line number and reason). Needs nothing.

Posts are keyed by `id` (the document's `_id`): a re-ingested file first takes back the rows it
loaded, and a post already loaded from an older package is replaced by the newer one, never
duplicated; a post from an older package never replaces a newer one. The course is the
documents' own `course_id` (file names are ambiguous when a part has a '-').
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import date
from typing import Any, BinaryIO

import pyarrow as pa

from optimus import discovery
from optimus.formats import events as rules
from optimus.formats import mongo
from optimus.ledger import LedgerFile
from optimus.services.base import FileResult, RunContext, Service, register
from optimus.warehouse.base import Warehouse

_SQL_TYPES = {pa.string(): "VARCHAR", pa.int64(): "BIGINT", pa.int32(): "INTEGER", pa.bool_(): "BOOLEAN", pa.timestamp("us"): "TIMESTAMP"}
# package_date and site say which dump a row came from, so an older dump never wins
_EXTRA = {"site": ("VARCHAR", pa.string()), "package_date": ("DATE", pa.date32()), "file_id": ("BIGINT", pa.int64())}


def _column_sql(name: str, kind: pa.DataType) -> str:
    return "JSON" if name == "doc" else _SQL_TYPES[kind]


@register
class DiscussionForums(Service):
    name = "DiscussionForums"
    claims = (discovery.FORUM,)
    writes = {"forum_posts": "frozen", "forum_quarantine": "frozen"}

    def setup(self, wh: Warehouse) -> None:
        q = wh.quote
        cols = [f"{q(n)} {_column_sql(n, t)}" for n, t in mongo.COLUMNS.items()] + [f"{q(n)} {t}" for n, (t, _a) in _EXTRA.items()]
        wh.execute(f"CREATE TABLE IF NOT EXISTS forum_posts ({', '.join(cols)})")
        wh.execute(
            "CREATE TABLE IF NOT EXISTS forum_quarantine (file_id BIGINT NOT NULL, path VARCHAR NOT NULL, "
            "line BIGINT NOT NULL, reason VARCHAR NOT NULL, raw VARCHAR)"
        )

    def ingest(self, wh: Warehouse, file: LedgerFile, ctx: RunContext) -> FileResult:
        posts, bad, lines = self._parse(file)
        wh.execute("DELETE FROM forum_quarantine WHERE file_id = ?", [file.id])
        wh.executemany(
            "INSERT INTO forum_quarantine (file_id, path, line, reason, raw) VALUES (?, ?, ?, ?, ?)",
            [
                [file.id, str(file.path), line, reason, raw.replace("\x00", "\ufffd")] for line, reason, raw in bad
            ],  # PostgreSQL text holds no NUL
        )
        # a re-ingest takes back what this file loaded before
        wh.execute("DELETE FROM forum_posts WHERE file_id = ?", [file.id])
        rows = self._load(wh, file, list(posts.values()))
        ctx.wrote(rows)
        keys = Counter(p["course_key"] for p in posts.values())
        for key in keys:
            ctx.touch(key)
        course_ids = Counter(p["course_id"] for p in posts.values())
        course_id = course_ids.most_common(1)[0][0] if course_ids else file.course_id
        note = rules.EMPTY_FILE if not lines else f"{lines} lines: {rows} posts loaded"
        if len(posts) > rows:
            note += f", {len(posts) - rows} kept from a newer package"
        if bad:
            note += f", {len(bad)} lines quarantined (first: line {bad[0][0]}: {bad[0][1]})"
        coerced = sum(p[mongo.COERCED] for p in posts.values())
        if coerced:
            note += f", {coerced} values coerced (a NUL character in a string, a number out of its column's range)"
        return FileResult(rows, len(bad), note, course_id, coerced=coerced)

    def _parse(self, file: LedgerFile) -> tuple[dict[str, dict[str, Any]], list[tuple[int, str, str]], int]:
        """Every line parsed; the last copy of an id in one file wins."""
        posts: dict[str, dict[str, Any]] = {}
        bad: list[tuple[int, str, str]] = []
        number = 0
        limit = self.settings.max_line_bytes
        with open(file.path, "rb") as fh:
            for number, raw in enumerate(_bounded_lines(fh, limit), start=1):
                if isinstance(raw, tuple):
                    size, head = raw
                    bad.append((number, rules.too_long(size, limit), head.decode("utf-8", errors="replace")))
                    continue
                line = raw.rstrip(b"\r\n")
                if number == 1 and line.startswith(b"\xef\xbb\xbf"):
                    line = line[3:]
                if not line.strip():
                    continue
                try:
                    row = mongo.parse_line(line, file.course_id)
                except mongo.BadLine as exc:
                    bad.append((number, str(exc), line[: mongo.MAX_RAW].decode("utf-8", errors="replace")))
                    continue
                posts.pop(row["id"], None)
                posts[row["id"]] = row
        return posts, bad, number

    def _load(self, wh: Warehouse, file: LedgerFile, posts: list[dict[str, Any]]) -> int:
        """Stage the posts (Arrow, one bulk insert), replace older copies by id, insert the rest."""
        if not posts:
            return 0
        site = file.site or "prod"
        table = mongo.to_arrow(
            posts, {"site": (pa.string(), site), "package_date": (pa.date32(), file.package_date), "file_id": (pa.int64(), file.id)}
        )
        stage = f"_forum_stage_{file.id}"
        q = wh.quote
        wh.execute(f"DROP TABLE IF EXISTS {q(stage)}")
        wh.execute(f"CREATE TEMP TABLE {q(stage)} AS SELECT * FROM forum_posts WHERE false")
        try:
            wh.load_arrow(stage, table)
            # a missing package date (a file named on the command line) counts as the newest
            newest = file.package_date or date.max
            wh.execute(
                f"DELETE FROM forum_posts WHERE id IN (SELECT id FROM {q(stage)}) AND coalesce(package_date, DATE '0001-01-01') <= ?",
                [newest],
            )
            cols = ", ".join(q(c) for c in wh.columns("forum_posts"))
            before = int(wh.scalar("SELECT count(*) FROM forum_posts WHERE file_id = ?", [file.id]))
            wh.execute(
                f"INSERT INTO forum_posts ({cols}) SELECT {cols} FROM {q(stage)} s "
                "WHERE NOT EXISTS (SELECT 1 FROM forum_posts f WHERE f.id = s.id)"
            )
            return int(wh.scalar("SELECT count(*) FROM forum_posts WHERE file_id = ?", [file.id])) - before
        finally:
            wh.execute(f"DROP TABLE IF EXISTS {q(stage)}")


def _bounded_lines(fh: BinaryIO, limit: int) -> Iterator[bytes | tuple[int, bytes]]:
    """The lines of `fh` (with their `\\n`); a line over `limit` bytes comes as (its size, its
    first rules.LONG_HEAD bytes), read past in pieces, never held whole."""
    while line := fh.readline(limit + 2):
        if len(line.rstrip(b"\r\n")) <= limit:
            yield line
            continue
        head, size = line[: rules.LONG_HEAD], len(line.rstrip(b"\r\n"))
        while not line.endswith(b"\n") and (line := fh.readline(1 << 20)):
            size += len(line.rstrip(b"\r\n"))
        yield size, head
