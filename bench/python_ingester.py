"""A well-written pure-Python clickstream ingester: the baseline a user might write instead.

json.loads per line, the same fields Optimus keeps, the course from context or URL, a fingerprint
per line, rows written to DuckDB in Arrow batches of 100k. No de-duplication (Python would need
all fingerprints in memory); malformed lines are counted, not kept.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from optimus import courses

FIELDS = [
    "event_id",
    "time",
    "username",
    "user_id",
    "course_id",
    "course_key",
    "event_type",
    "event_source",
    "ip",
    "agent",
    "host",
    "referer",
    "accept_language",
    "session",
    "page",
    "event",
    "context",
    "line",
]
BATCH = 100_000


def parse_time(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value.astimezone(UTC).replace(tzinfo=None) if value.tzinfo else value


def rows(path: Path):
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            text = raw.rstrip(b"\r\n")
            start = text.find(b"{")
            if start < 0:
                continue
            try:
                event = json.loads(text[start:])
                when = parse_time(event["time"])
            except (ValueError, KeyError, TypeError):
                continue
            if not isinstance(event, dict):
                continue
            context = event.get("context") if isinstance(event.get("context"), dict) else {}
            course_id = context.get("course_id") or courses.from_url(event.get("event_type")) or courses.from_url(event.get("page"))
            payload = event.get("event")
            if isinstance(payload, str) and payload.startswith("{"):
                try:
                    payload = json.loads(payload)
                except ValueError:
                    pass
            user_id = context.get("user_id")
            yield (
                hashlib.md5(text).hexdigest(),
                when,
                event.get("username"),
                user_id if isinstance(user_id, int) else None,
                course_id,
                courses.course_key(course_id),
                event.get("name") or event.get("event_type"),
                event.get("event_source"),
                event.get("ip"),
                event.get("agent"),
                event.get("host"),
                event.get("referer"),
                event.get("accept_language"),
                event.get("session"),
                event.get("page"),
                json.dumps(payload),
                json.dumps(context),
                number,
            )


def ingest(files: list[Path], database: Path) -> int:
    con = duckdb.connect(str(database))
    con.execute(
        "CREATE TABLE IF NOT EXISTS events (event_id VARCHAR, time TIMESTAMP, username VARCHAR, user_id BIGINT, course_id VARCHAR, "
        "course_key VARCHAR, event_type VARCHAR, event_source VARCHAR, ip VARCHAR, agent VARCHAR, host VARCHAR, referer VARCHAR, "
        "accept_language VARCHAR, session VARCHAR, page VARCHAR, event JSON, context JSON, line BIGINT)"
    )
    total = 0
    for path in files:
        batch: list[tuple] = []
        for row in rows(path):
            batch.append(row)
            if len(batch) >= BATCH:
                total += _write(con, batch)
                batch = []
        total += _write(con, batch)
    con.close()
    return total


def _write(con: duckdb.DuckDBPyConnection, batch: list[tuple]) -> int:
    if not batch:
        return 0
    columns = list(zip(*batch, strict=True))
    table = pa.table({name: pa.array(values) for name, values in zip(FIELDS, columns, strict=True)})
    con.register("batch", table)
    con.execute("INSERT INTO events SELECT * FROM batch")
    con.unregister("batch")
    return len(batch)


if __name__ == "__main__":
    print(ingest([Path(p) for p in sys.argv[2:]], Path(sys.argv[1])))
