"""Forum `.mongo` dumps (REFERENCE §3.4): mongoexport Extended JSON, one document per line.

Pure parsing: bytes of one line in, one typed `forum_posts` row out (or a `BadLine` with the
reason). `$oid` becomes its hex string, `$date` (epoch milliseconds, possibly as `$numberLong`,
or an ISO string) a naive UTC datetime, `$numberLong`/`$numberInt`/`$numberDouble` numbers. The
whole converted document is kept as JSON, so fields added over the years are never lost.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from optimus import courses

TYPES = ("CommentThread", "Comment")
MAX_RAW = 2000
# the row key (not a column) counting values stored otherwise than given: a NUL character in a
# string (PostgreSQL text cannot hold it; U+FFFD on both engines) or a number out of its
# column's range (NULL)
COERCED = "_coerced"
TOO_DEEP = "nested too deep (over Python's recursion limit, about 1,000 levels)"
_EPOCH = datetime(1970, 1, 1)

# forum_posts columns (REFERENCE §3.4 fields, typed) in table order, with their Arrow types
COLUMNS: dict[str, pa.DataType] = {
    "id": pa.string(),
    "type": pa.string(),
    "course_id": pa.string(),
    "course_key": pa.string(),
    "author_id": pa.int64(),
    "author_username": pa.string(),
    "created_at": pa.timestamp("us"),
    "updated_at": pa.timestamp("us"),
    "thread_id": pa.string(),
    "parent_id": pa.string(),
    "title": pa.string(),
    "body": pa.string(),
    "commentable_id": pa.string(),
    "thread_type": pa.string(),
    "votes_up": pa.int32(),
    "votes_count": pa.int32(),
    "votes_point": pa.int32(),
    "endorsed": pa.bool_(),
    "pinned": pa.bool_(),
    "anonymous": pa.bool_(),
    "comment_count": pa.int32(),
    "doc": pa.string(),
}


class BadLine(ValueError):
    """A line that cannot be loaded; the message is the quarantine reason."""


def convert(value: Any) -> Any:
    """Extended JSON -> plain values: {$oid} -> str, {$date} -> datetime, {$numberLong} -> int, ..."""
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, inner),) = value.items()
            if key == "$oid":
                return str(inner)
            if key == "$date":
                return parse_date(inner)
            if key in ("$numberLong", "$numberInt"):
                return int(inner)
            if key == "$numberDouble":
                return float(inner)
            if key == "$numberDecimal":
                return float(inner)
        return {k: convert(v) for k, v in value.items()}
    if isinstance(value, list):
        return [convert(v) for v in value]
    return value


def parse_date(value: Any) -> datetime:
    """A `$date` value: epoch milliseconds (a number or {$numberLong}) or an ISO-8601 string; naive UTC."""
    if isinstance(value, dict) and len(value) == 1 and ("$numberLong" in value or "$numberInt" in value):
        value = int(next(iter(value.values())))
    if isinstance(value, bool):
        raise BadLine(f"$date is not a date: {value!r}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise BadLine(f"$date is not a date: {value!r}")
        try:
            return _EPOCH + timedelta(milliseconds=value)
        except OverflowError:
            raise BadLine(f"$date out of range: {value!r}") from None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise BadLine(f"$date is not an ISO date: {value!r}") from None
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC).replace(tzinfo=None)
        return parsed
    raise BadLine(f"$date is not a date: {value!r}")


def _without_nul(value: Any) -> tuple[Any, int]:
    """`value` with every NUL character in its strings and keys made U+FFFD, and how many strings changed."""
    if isinstance(value, str):
        return (value.replace("\x00", "\ufffd"), 1) if "\x00" in value else (value, 0)
    if isinstance(value, list):
        pairs = [_without_nul(v) for v in value]
        return [v for v, _n in pairs], sum(n for _v, n in pairs)
    if isinstance(value, dict):
        out, count = {}, 0
        for k, v in value.items():
            (k2, n1), (v2, n2) = _without_nul(k), _without_nul(v)
            out[k2] = v2
            count += n1 + n2
        return out, count
    return value, 0


def _text(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _int(value: Any, bits: int = 32) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return number if -(2 ** (bits - 1)) <= number < 2 ** (bits - 1) else None


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if value in ("true", "True", 1):
        return True
    if value in ("false", "False", 0):
        return False
    return None


def _date(doc: dict[str, Any], key: str) -> datetime | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, datetime):
        # a plain string or number where a $date was expected: read it the same way
        value = parse_date(value)
    return value


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat(timespec="milliseconds") + "Z"
    return str(value)


def parse_line(raw: bytes, fallback_course_id: str | None = None) -> dict[str, Any]:
    """One line of a `.mongo` file -> a forum_posts row; raises BadLine."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadLine(f"not valid UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadLine(f"not valid JSON: {exc.msg} at column {exc.colno}") from None
    except RecursionError:  # Python's parser stops at its recursion limit (about 1,000 levels)
        raise BadLine(TOO_DEEP) from None
    if not isinstance(value, dict):
        raise BadLine(f"a JSON {type(value).__name__}, not a document")
    try:
        doc = convert(value)
        if not isinstance(doc, dict):  # the whole line is one Extended JSON value ({"$oid": ...})
            raise BadLine(f"an Extended JSON {type(doc).__name__}, not a document")
        doc, nuls = _without_nul(doc)
        whole = json.dumps(doc, default=_json_default, ensure_ascii=False)
    except (TypeError, ValueError, OverflowError) as exc:
        if isinstance(exc, BadLine):
            raise
        raise BadLine(f"bad Extended JSON value: {exc}") from None
    except RecursionError:
        raise BadLine(TOO_DEEP) from None
    post_id = doc.get("_id")
    if not isinstance(post_id, str) or not post_id:
        raise BadLine("no _id")
    kind = doc.get("_type")
    if kind not in TYPES:
        raise BadLine(f"_type is {kind!r}, not CommentThread or Comment")
    course_id = doc.get("course_id") or fallback_course_id
    if not isinstance(course_id, str) or not course_id:
        raise BadLine("no course_id")
    key = courses.course_key(course_id)
    if key is None:
        raise BadLine(f"course_id {course_id!r} is not a course id")
    votes = doc.get("votes") if isinstance(doc.get("votes"), dict) else {}
    thread_id = post_id if kind == "CommentThread" else doc.get("comment_thread_id")
    numbers = {
        "author_id": (doc.get("author_id"), 64),
        "votes_up": (votes.get("up_count"), 32),
        "votes_count": (votes.get("count"), 32),
        "votes_point": (votes.get("point"), 32),
        "comment_count": (doc.get("comment_count"), 32),
    }
    ints = {name: _int(given, bits) for name, (given, bits) in numbers.items()}
    lost = sum(ints[name] is None and given not in (None, "") for name, (given, _bits) in numbers.items())
    return {
        COERCED: nuls + lost,
        "id": post_id,
        "type": kind,
        "course_id": course_id,
        "course_key": key,
        "author_id": ints["author_id"],
        "author_username": _text(doc.get("author_username")),
        "created_at": _date(doc, "created_at"),
        "updated_at": _date(doc, "updated_at"),
        "thread_id": _text(thread_id),
        "parent_id": _text(doc.get("parent_id")),
        "title": _text(doc.get("title")),
        "body": _text(doc.get("body")),
        "commentable_id": _text(doc.get("commentable_id")),
        "thread_type": _text(doc.get("thread_type")),
        "votes_up": ints["votes_up"],
        "votes_count": ints["votes_count"],
        "votes_point": ints["votes_point"],
        "endorsed": _bool(doc.get("endorsed")),
        "pinned": _bool(doc.get("pinned")),
        "anonymous": _bool(doc.get("anonymous")),
        "comment_count": ints["comment_count"],
        "doc": whole,
    }


def to_arrow(rows: list[dict[str, Any]], extra: dict[str, tuple[pa.DataType, Any]]) -> pa.Table:
    """Rows -> an Arrow table with the forum_posts types, plus constant columns `extra` (name -> (type, value))."""
    arrays = {name: pa.array([r.get(name) for r in rows], type=kind) for name, kind in COLUMNS.items()}
    for name, (kind, value) in extra.items():
        arrays[name] = pa.array([value] * len(rows), type=kind)
    return pa.table(arrays)
