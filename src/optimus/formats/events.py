"""Tracking-log events: the pure rules of reading them, separate from any warehouse.

What a line is (REFERENCE §3.3), decided here once:

- A line is the bytes between two `\\n` (a trailing `\\r` is part of the line ending). Empty and
  whitespace-only lines are not events and are skipped silently (they are not counted).
- Junk before the first `{` (a syslog prefix, a byte-order mark) is stripped, as the edX pipeline
  does; a line whose first non-blank character is `#` is a comment and is quarantined.
- The event's fingerprint (`event_id`) is the SHA-1, in hex, of the line from its first `{` to its
  end, with its line ending written as one `\n` (CRLF becomes LF; a last line without one gets
  one): the same event delivered in two files (even behind different syslog prefixes, or with
  other line endings) is one event. Hashing the `\n` too spares a copy of every line.
- A line is quarantined when it is not valid UTF-8, holds no JSON object, is not valid JSON (two
  objects on one line, a truncated line, an escape that is not valid Unicode), or has no `time`
  that parses. `time` without a zone is UTC.
- The course comes from `context.course_id`, else a top-level `course_id` (old logs), each stripped
  of white space; when both are empty, from the URL in `event_type`, else in `page`: the course of a
  `/xblock/{block_id}` usage key first, else a `/courses/{course_id}/...` id (a version segment
  skipped), percent-decoded, as `optimus.courses.from_url` finds it (`courses.event_course` is the
  Python twin). Usernames are stripped of white space.
- `event`: a JSON string holding an object becomes that object; anything else is kept as it is.

This module holds the line splitter (bytes in, Arrow batches out) and the reasons; the SQL that
applies the rules in bulk is `parse_sql` below, the one place where they are written as SQL, once
for every engine: a warehouse's dialect (`wh.sql`) spells the fragments engines disagree on.
"""

from __future__ import annotations

import array
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import pyarrow as pa
import pyarrow.compute as pc

if TYPE_CHECKING:  # the rules take the dialect that spells them; they never import an engine
    from optimus.warehouse.dialects import Dialect

_NEWLINE = re.compile(b"\n")
RAW_LIMIT = 2000  # characters of a quarantined line kept in events_quarantine.raw
LONG_HEAD = 200  # bytes of a line over max_line_bytes kept in quarantine (its head, not its text)
MAX_LINE_BYTES = 16 << 20  # the default of the max_line_bytes setting
SCAN_ROWS = 4096  # rows per Arrow record batch of a block: the unit the engine's threads share

# quarantine reasons
COMMENT = "comment line (#)"
NO_OBJECT = "no JSON object on the line"
NOT_OBJECT = "JSON value is not an object"
BAD_UTF8 = "not valid UTF-8"
INVALID_JSON = "not valid JSON"
TWO_OBJECTS = "more than one JSON object on the line"
TRUNCATED = "truncated line (the JSON ends early)"
NO_TIME = "no time"
EMPTY_FILE = "empty file: no lines"  # the note of a file with no lines at all (0 bytes, or a .gz of nothing)
BAD_TIME = "time does not parse"
TIME_RANGE = "time out of range (years 1970 to 2100)"
BAD_OFFSET = "time zone offset out of range (over 15:59)"
TOO_LONG = "line too long"  # too_long() adds the size and the limit
MAX_DEPTH = 5000  # deepest JSON nesting read; PostgreSQL's parser stops near 10,000 levels, DuckDB's does not
TOO_DEEP = f"nested too deep (over {MAX_DEPTH} levels)"

# the times an event may have (UTC, inclusive lower, exclusive upper): outside is a bad line
FIRST_TIME, END_TIME = "1970-01-01", "2101-01-01"
# a zone offset at the end of a time (±HH, ±HH:MM, ±HH:MM:SS, colons optional) and the ones read:
# up to 15:59:59, PostgreSQL's bound (real zones are -12:00 to +14:00), applied to the second
OFFSET_RE = r"[+-][0-9][0-9](:?[0-9][0-9]){0,2}$"
OFFSET_OK_RE = r"[+-](0[0-9]|1[0-5])(:?[0-5][0-9]){0,2}$"
# a time starting with a year out of range (one engine may not parse it at all: PostgreSQL has no year 0)
YEAR_OUT_RE = r"^\s*(-[0-9]|([0-9]{5,}|0[0-9]{3}|1[0-8][0-9]{2}|19[0-6][0-9]|210[1-9]|21[1-9][0-9]|2[2-9][0-9]{2}|[3-9][0-9]{3})-)"
# a time given as a number (or a string of one): not read; engines spell JSON numbers differently
NUMBER_RE = r"^\s*[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?\s*$"
# a zone name or letter after the time ('... PST', '...z'; only 'Z' is read): not read (DuckDB
# would drop a name silently, PostgreSQL reads military letters), a bad time
ZONE_NAME_RE = r"[^A-Za-z\s]\s*[A-Za-z]+$"

# columns of `events`, in order (the shared contract; see docs/clickstream.md)
EVENT_COLUMNS: dict[str, str] = {
    "event_id": "VARCHAR",
    "time": "TIMESTAMP",
    "event_date": "DATE",
    "username": "VARCHAR",
    "user_id": "BIGINT",
    "course_id": "VARCHAR",
    "course_key": "VARCHAR",
    "event_type": "VARCHAR",
    "event_source": "VARCHAR",
    "ip": "VARCHAR",
    "agent": "VARCHAR",
    "host": "VARCHAR",
    "referer": "VARCHAR",
    "accept_language": "VARCHAR",
    "session": "VARCHAR",
    "page": "VARCHAR",
    "org_id": "VARCHAR",
    "module_id": "VARCHAR",
    "event": "JSON",
    "context": "JSON",
    "file_id": "BIGINT",
    "line": "BIGINT",
}


@dataclass
class LineBatch:
    """Lines of a file as Arrow (`line` BIGINT 1-based, `raw` text with its `\\n`, `event_id` the
    fingerprint), plus the lines that are not valid UTF-8 (blanked in `raw`) as (line, reason, text)."""

    table: pa.Table
    bad: list[tuple[int, str, str]] = field(default_factory=list)
    nbytes: int = 0


def too_long(size: int, limit: int) -> str:
    """The quarantine reason of a line over the limit."""
    return f"{TOO_LONG}: {size} bytes (max_line_bytes {limit})"


def _head(line: bytes) -> str:
    return line[:LONG_HEAD].decode("utf-8", errors="replace")


def _split(block: bytes, first_line: int, end: int | None = None, max_line: int = MAX_LINE_BYTES) -> LineBatch:
    """Cut `block` (whole lines, each ending in `\\n`) into lines without copying the bytes, and
    fingerprint each line that holds a `{` (hashlib here is faster than SQL hashing, and the
    fingerprint is then the same whatever the warehouse). Lines over `max_line` bytes (without
    their `\\n`) and lines that are not UTF-8 are blanked in `raw` and listed in `bad`."""
    end = len(block) if end is None else end  # lines end at `end`; bytes after it are not read
    if block.find(b"\r", 0, end) >= 0:
        block = block[:end].replace(b"\r\n", b"\n")
        end = len(block)
    offsets = array.array("q", [0])
    offsets.extend(m.end() for m in _NEWLINE.finditer(block, 0, end))
    n = len(offsets) - 1
    view, sha1, find = memoryview(block), hashlib.sha1, block.find
    ids: list[str | None]
    if n and block[0] == 123 and block.count(b"\n{", 0, end) == n - 1:  # every line starts with "{" (the usual case)
        ids = [sha1(view[start:stop]).hexdigest() for start, stop in zip(offsets, offsets[1:], strict=False)]
    else:
        ids = []
        add = ids.append
        for k in range(n):
            start, stop = offsets[k], offsets[k + 1]
            if block[start] != 123:  # not "{": junk before it, or no object at all
                start = find(b"{", start, stop)
                if start < 0:
                    add(None)
                    continue
            add(sha1(view[start:stop]).hexdigest())
    # (Any: pyarrow-stubs have no overloads of pyarrow.compute for a LargeBinaryArray and its lengths)
    data: Any = pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(block)])
    bad: list[tuple[int, str, str]] = []
    blank: set[int] = set()
    long = min(max_line + 1, 2 * MAX_DEPTH)  # bytes (with the "\n") past which a line may be too long or too deep
    sizes: Any = pc.binary_length(data) if n else None
    if n and pc.max(sizes).as_py() > long:
        rows = cast(list[int], pc.indices_nonzero(pc.greater(sizes, pa.scalar(long))).to_pylist())  # indices: never null
        for row in rows:
            start, stop = offsets[row], offsets[row + 1]
            if stop - start - 1 > max_line:
                why = too_long(stop - start - 1, max_line)
            elif (line := block[start:stop]).count(b"[") + line.count(b"{") > MAX_DEPTH and _deeper_than(line, MAX_DEPTH):
                why = TOO_DEEP
            else:
                continue
            bad.append((first_line + row, why, _head(block[start : min(stop, start + LONG_HEAD)])))
            blank.add(row)
    try:
        if blank:
            raise pa.ArrowInvalid("lines over the limit are blanked")
        text = data.cast(pa.large_string())
    except pa.ArrowInvalid:
        for row in _bad_utf8(data, 0):
            if row not in blank:
                raw = data[row].as_py().rstrip(b"\r\n").decode("utf-8", errors="replace")
                bad.append((first_line + row, BAD_UTF8, raw[:RAW_LIMIT]))
                blank.add(row)
        for row in blank:
            ids[row] = None
        text = pa.array([b"" if r in blank else v for r, v in enumerate(data.to_pylist())], pa.large_binary()).cast(pa.large_string())
        bad.sort()
    lines = pa.array(range(first_line, first_line + n), pa.int64())
    table = pa.table({"line": lines, "raw": text, "event_id": pa.array(ids, pa.string())})
    # in slices (no copy): DuckDB scans an Arrow table one record batch per thread, so one big
    # batch would parse and store a block on a single core
    return LineBatch(pa.Table.from_batches(table.to_batches(max_chunksize=SCAN_ROWS)), bad, end)


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(rb"[\[\]{}]")


def _deeper_than(line: bytes, limit: int) -> bool:
    """Whether JSON text nests deeper than `limit` (brackets inside strings do not count); run
    only on the rare long lines holding that many brackets."""
    depth = 0
    for m in _BRACKET.finditer(_STRING.sub(b"", line)):
        depth += 1 if m.group() in (b"[", b"{") else -1
        if depth > limit:
            return True
    return False


def _bad_utf8(data: pa.Array, offset: int) -> list[int]:
    """Rows of `data` that are not valid UTF-8, found by halving (cheap when there are few)."""
    try:
        data.cast(pa.large_string())
        return []
    except pa.ArrowInvalid:
        if len(data) == 1:
            return [offset]
        half = len(data) // 2
        return _bad_utf8(data.slice(0, half), offset) + _bad_utf8(data.slice(half), offset + half)


def line_batches(stream: BinaryIO, batch_bytes: int = 64 << 20, max_line: int = MAX_LINE_BYTES) -> Iterator[LineBatch]:
    """Read a (decompressed) stream in blocks of about `batch_bytes` and yield them as line batches.

    The last line gets a `\\n` when the file does not end in one, so every `raw` ends in `\\n`.
    Blocks start small and double up to `batch_bytes`, so the engine starts work early. A line
    that grows past `max_line` before its end is read is not held: it is counted to its `\\n`
    and stands in its batch as a blank row, listed as too long (so memory stays bounded).
    A stream that says it was `cut_short` (a damaged archive) loses its last, partial line.
    """
    rest = b""
    line = 1
    size = min(batch_bytes, 16 << 20)
    skipping: tuple[int, bytes, bytes] | None = None  # (bytes so far, head, last byte) of a line too long to hold
    long_lines: list[tuple[int, str, str]] = []
    while True:
        chunk = stream.read(size)
        size = min(size * 2, batch_bytes)
        if skipping is not None:
            seen, head, last = skipping
            end = chunk.find(b"\n")
            if chunk and end < 0:
                skipping = (seen + len(chunk), head, chunk[-1:])
                continue
            skipping = None
            end = max(end, 0)  # (at the end of the stream: 0)
            seen += end - ((chunk[end - 1 : end] if end else last) == b"\r")  # a CR before the "\n" is no text
            long_lines.append((line, too_long(seen, max_line), _head(head)))
            chunk = b"\n" + chunk[end + 1 :] if chunk else b"\n"  # the long line, blank
        if not chunk:
            if rest and not getattr(stream, "cut_short", False):  # a damaged archive ends inside a line: it is lost
                yield _split(rest + b"\n", line, max_line=max_line)
            return
        if rest:
            chunk = rest + chunk
        cut = chunk.rfind(b"\n") + 1
        if cut == 0:
            if len(chunk) > max_line + 1:  # (+1: a CR may end it)
                skipping, rest = (len(chunk), chunk[:LONG_HEAD], chunk[-1:]), b""
            else:
                rest = chunk
            continue
        rest = chunk[cut:]
        if len(rest) > max_line + 1:
            skipping, rest = (len(rest), rest[:LONG_HEAD], rest[-1:]), b""
        batch = _with(_split(chunk, line, cut, max_line), long_lines)
        line += batch.table.num_rows
        yield batch


def _with(batch: LineBatch, long_lines: list[tuple[int, str, str]]) -> LineBatch:
    """The batch with the lines too long to hold (blank rows in it) listed as bad; empties the list."""
    if long_lines:
        batch.bad = sorted(batch.bad + long_lines)
        long_lines.clear()
    return batch


def beyond_limits_sql(raw: str, max_line: int, byte_length: str) -> str:
    """SQL true for a line, read by an engine, that the reader of this module would quarantine alone:
    over `max_line` bytes, or possibly nested deeper than MAX_DEPTH (brackets counted: a cheap bound).
    An engine that reads event files gives a file holding one to that reader instead
    (Warehouse.event_lines). `byte_length` names the engine's function giving a text's UTF-8 bytes."""
    size = f"{byte_length}({raw})"
    brackets = f"{size} - {byte_length}(replace(replace({raw}, '[', ''), '{{', ''))"
    return f"({size} > {int(max_line)} OR ({size} >= {2 * MAX_DEPTH} AND {brackets} > {MAX_DEPTH}))"


def refine_reason(raw: str) -> str:
    """Why a line that holds a `{` is not valid JSON: two objects, truncated, or plain invalid."""
    text = raw[raw.find("{") :].rstrip("\r\n")
    decoder = json.JSONDecoder()
    try:
        value, end = decoder.raw_decode(text)
    except RecursionError:
        return TOO_DEEP
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()) - 1 or "Unterminated" in exc.msg:
            return TRUNCATED
        return f"{INVALID_JSON}: {exc.msg} at character {exc.pos + 1}"
    if text[end:].lstrip().startswith("{"):
        return TWO_OBJECTS
    if text[end:].strip():
        return f"{INVALID_JSON}: text after the object at character {end + 1}"
    if not isinstance(value, dict):
        return NOT_OBJECT
    return f"{INVALID_JSON}: a string escape is not valid Unicode"


# the JSON members read from an event and from its context (dialects.base.JsonShape)
EVENT_SHAPE: dict[str, Any] = {
    **{k: "text" for k in ("username", "event_type", "name", "event_source", "ip", "agent", "host", "referer")},
    **{k: "text" for k in ("accept_language", "session", "page", "time", "course_id")},
    "event": "json",
    "context": "json",
}
CONTEXT_SHAPE: dict[str, Any] = {"course_id": "text", "user_id": "text", "org_id": "text", "module": {"usage_key": "text"}}
_TEXT_MEMBERS = [k for k, v in EVENT_SHAPE.items() if v == "text"]
_EOL = (13, 10)
_BLANK = (32, 9, 65279)  # what may stand before a comment's `#`
# what Python's str.strip() and `\s` take for white space (courses.parse strips and matches with them)
_SPACE_CHARS = [9, 10, 11, 12, 13, 28, 29, 30, 31, 32, 133, 160, 5760, *range(8192, 8203), 8232, 8233, 8239, 8287, 12288]


def _chars(d: Dialect, codes: tuple[int, ...] | list[int]) -> str:
    """SQL text of these characters, each written by the dialect (Spark's chr(n) is chr(n % 256))."""
    return " || ".join(d.char(c) for c in codes)


# the same characters inside a regex bracket, in the syntax RE2 and PostgreSQL share (`\xHH`, or the character itself)
_S = "".join(f"\\x{c:02x}" if c < 0x100 else chr(c) for c in _SPACE_CHARS)
# courses._NEW and courses._OLD (Python's `$` also matches before a final newline: `\n?$`)
COURSE_NEW_RE = r"^(?:course-v1|ccx-v1):([^+/]+)\+([^+/]+)\+([^+/]+?)(?:\+ccx@([0-9]+))?\n?$"
COURSE_OLD_RE = rf"^([^/+{_S}]+)/([^/+{_S}]+)/([^/+{_S}]+)\n?$"
_NEW_GROUPS, _OLD_GROUPS = ("o", "c", "r", "x"), ("o", "c", "r")
# `/courses/{course_id}` in a URL: courses._IN_URL, its id forms tried in order where a match starts
# (the look-ahead there always holds after the greedy segments, so a plain group is the same). RE2 has
# no look-ahead: _IN_URL's `(?!v[0-9]+/[^/]+)` (skip a version segment) is the old form's first
# segment not being `v{digits}` (the new form cannot start so; an old form starting `v1/` then needs
# a second segment, which the look-ahead refuses), case-insensitive like the rest
_NOT_VERSION = "(?:[^vV/?#][^/?#]*|[vV]|[vV][0-9]*[^0-9/?#][^/?#]*)"
COURSE_IN_URL = ("(?i)/courses/", ("(?:course-v1|ccx-v1)(?::|%3A)[^/?#]+", f"{_NOT_VERSION}/[^/?#]+/[^/?#]+"), "(?:[/?#]|$)")
# the same without the version rule: a simpler regex (about 10% of a context-less event's parse less); its
# answer is COURSE_IN_URL's unless it starts with a version segment (`v1/courses/...`), then that one runs
_ANY_COURSE_IN_URL = (COURSE_IN_URL[0], (COURSE_IN_URL[1][0], "[^/?#]+/[^/?#]+/[^/?#]+"), COURSE_IN_URL[2])
_VERSION_FIRST_RE = "^[vV][0-9]+/"
# `/xblock/{block_id}` (courses._XBLOCK) and the usage key of a course's block (courses._BLOCK_KEY)
XBLOCK_IN_URL_RE = "/xblock/([^/+]+[/+][^/+]+[/+][^/?#]+)"
BLOCK_KEY_RE = (
    r"^(block-v1|ccx-block-v1):([^+/]+)\+([^+/]+)\+([^+/]+)(?:\+ccx@([0-9]+))?"
    r"(?:\+branch@[^+/]+)?(?:\+version@[0-9a-fA-F]+)?\+type@[^+/]+\+block@[^+/]+$"
)
_BLOCK_GROUPS = ("kind", "o", "c", "r", "x")


def stripped(d: Dialect, text: str) -> str:
    """`text` without white space at either end (Python's str.strip()). Trimming a set of characters
    is slow (DuckDB: ~0.8 µs a value, a quarter of an event's parse), so only a value whose first or
    last character may be white space (a code point under 33 or over 132: every one of _SPACE_CHARS) is trimmed."""
    return (
        f"CASE WHEN ascii({text}) BETWEEN 33 AND 132 AND ascii(substr({text}, length({text}))) BETWEEN 33 AND 132 "
        f"THEN {text} ELSE {d.trim_chars(text, _chars(d, _SPACE_CHARS))} END"
    )


def course_in_url_re(d: Dialect) -> str:
    """The pattern whose group 1 is the course id in a `/courses/{id}` URL, as courses._IN_URL finds it."""
    prefix, forms, suffix = COURSE_IN_URL
    return d.first_alternative(prefix, forms, suffix)


def _course_key_layers(d: Dialect, names: list[str], known: bool = False) -> tuple[str, str, str]:
    """Three SELECT-list layers computing `{name}_key` for each column, exactly as courses.course_key.

    With `known`, a column `{name}_hit` says the key was looked up already (in `{name}_k`), and
    the regexes run only for the other rows.
    """
    norm, match, key = [], [], []
    for n in names:
        skip = f"WHEN {n}_hit THEN NULL " if known else ""
        trimmed = d.trim_chars(n, _chars(d, _SPACE_CHARS))
        norm.append(f"CASE {skip}WHEN {d.contains(n, '%')} THEN {d.url_decode_or_null(trimmed)} ELSE {trimmed} END AS {n}_t")
        match.append(
            f"CASE WHEN {n}_t IS NOT NULL THEN {d.regex_groups(f'{n}_t', COURSE_NEW_RE, _NEW_GROUPS)} END AS {n}_n, "
            f"CASE WHEN {n}_t IS NOT NULL AND NOT {d.regex_matches(f'{n}_t', COURSE_NEW_RE)} "
            f"THEN {d.regex_groups(f'{n}_t', COURSE_OLD_RE, _OLD_GROUPS)} END AS {n}_o"
        )
        new = {g: d.regex_group(f"{n}_n", _NEW_GROUPS, g) for g in _NEW_GROUPS}
        old = {g: d.regex_group(f"{n}_o", _OLD_GROUPS, g) for g in _OLD_GROUPS}
        key.append(
            f"CASE {'WHEN ' + n + '_hit THEN ' + n + '_k ' if known else ''}"
            f"WHEN {new['o']} IS NOT NULL THEN {new['o']} || '+' || {new['c']} || '+' || {new['r']} "
            f"|| CASE WHEN {new['x']} IS NOT NULL THEN '+ccx@' || {new['x']} ELSE '' END "
            f"WHEN {old['o']} IS NOT NULL THEN {old['o']} || '+' || {old['c']} || '+' || {old['r']} END AS {n}_key"
        )
    return ", ".join(norm), ", ".join(match), ", ".join(key)


def course_key_sql(d: Dialect, values: str, column: str) -> str:
    """SELECT {column}, {column}_key FROM {values}: the SQL twin of courses.course_key (tested against it)."""
    norm, match, key = _course_key_layers(d, [column])
    once = d.compute_once()
    return f"SELECT {column}, {column}_key FROM (SELECT *, {key} FROM (SELECT *, {match} FROM (SELECT *, {norm} FROM {values}{once}) a{once}) b) c"


def parse_sql(d: Dialect, lines: str, courses: str | None = None) -> str:
    """A SELECT that applies the rules above to a table `lines(line, raw, event_id)` in bulk.

    Its columns: line, reason (NULL for an event; NO_OBJECT and INVALID_JSON are refined by
    `refine_reason`), raw (bad lines only), then every column of `events` but file_id.
    This is the one place where the rules are SQL; the dialect `d` spells what engines spell
    differently (docs/architecture.md lists its fragments). Each JSON text is parsed once.

    `courses` (optional) names a table `(v, k)` of course values whose key is known (`k`, NULL
    when `v` is not a course id): those rows skip the course-key regexes, which otherwise cost
    more than the JSON parse (a day holds a few dozen distinct course values).
    """
    url = course_in_url_re(d)
    any_url = d.first_alternative(*_ANY_COURSE_IN_URL)
    norm, match, key = _course_key_layers(d, ["ctx", "etc", "pgc"], known=courses is not None)
    once = d.compute_once()
    looked_up = (
        (
            "SELECT u.*, lc.v IS NOT NULL AS ctx_hit, lc.k AS ctx_k, le.v IS NOT NULL AS etc_hit, le.k AS etc_k, "
            f"lp.v IS NOT NULL AS pgc_hit, lp.k AS pgc_k FROM u LEFT JOIN {courses} lc ON lc.v = u.ctx "
            f"LEFT JOIN {courses} le ON le.v = u.etc LEFT JOIN {courses} lp ON lp.v = u.pgc"
        )
        if courses
        else "SELECT * FROM u"
    )
    members = ", ".join(f"{d.json_member_text('j', m)} AS j_{m}" for m in _TEXT_MEMBERS)
    starts = d.starts_with("raw", "{")
    comment = d.starts_with(d.trim_chars("raw", _chars(d, _BLANK), "leading"), "#")

    def time_re(pattern: str) -> str:
        return d.regex_matches("j_time", pattern)

    def block_in_url(col: str) -> str:
        """The block id after `/xblock/` in `col` (not decoded), when the context names no course."""
        return (
            f"CASE WHEN reason IS NULL AND ctx IS NULL AND {d.contains(col, '/xblock/')} THEN {d.regex_extract(col, XBLOCK_IN_URL_RE)} END"
        )

    def block_key(block: str) -> str:
        """The groups of the usage key `block` (decoded), for block_course."""
        return f"CASE WHEN {block} IS NOT NULL THEN {d.regex_groups(d.url_decode_or_null(block), BLOCK_KEY_RE, _BLOCK_GROUPS)} END"

    def any_in_url(col: str, block: str) -> str:
        """The id in a `/courses/{id}` URL in `col` (not decoded; a version segment not yet skipped),
        when the context names no course and there is no `/xblock/` block id."""
        return f"CASE WHEN {block} IS NULL AND reason IS NULL AND ctx IS NULL AND {d.contains(col, '/courses/')} THEN {d.regex_extract(col, any_url)} END"

    def in_url(col: str, block: str, found: str) -> str:
        """The course of the URL in `col` when the context names no course: the course of its `/xblock/`
        block id (none when that is no usage key: no other rule is tried), else the id in a `/courses/{id}`
        URL (`found`, or, when that is a version segment, the id after it), decoded."""
        g = {n: d.regex_group(f"{block}_g", _BLOCK_GROUPS, n) for n in _BLOCK_GROUPS}
        return (
            f"CASE WHEN {block} IS NOT NULL THEN "
            f"CASE WHEN {g['kind']} = 'block-v1' AND {g['x']} IS NULL THEN 'course-v1:' || {g['o']} || '+' || {g['c']} || '+' || {g['r']} "
            f"WHEN {g['kind']} = 'ccx-block-v1' AND {g['x']} IS NOT NULL "
            f"THEN 'ccx-v1:' || {g['o']} || '+' || {g['c']} || '+' || {g['r']} || '+ccx@' || {g['x']} END "
            f"WHEN ascii({found}) IN (86, 118) AND {d.regex_matches(found, _VERSION_FIRST_RE)} "
            f"THEN nullif({d.url_decode_or_null(d.regex_extract(col, url))}, '') "
            f"ELSE nullif({d.url_decode_or_null(found)}, '') END"
        )

    return f"""
    WITH s AS (
        SELECT line, raw, event_id,
               CASE WHEN {starts} THEN raw
                    WHEN {comment} THEN NULL
                    WHEN strpos(raw, '{{') > 0 THEN substr(raw, strpos(raw, '{{')) END AS js
        FROM {lines}
        WHERE {starts} OR {d.trim_chars("raw", _chars(d, (32, 9, *_EOL)))} <> ''
    ), j AS (
        SELECT line, raw, event_id, js, {d.parse_json_object("js", EVENT_SHAPE)} AS j FROM s{once}
    ), f AS (
        SELECT line, raw, event_id, js, j, {members},
               {d.json_member("j", "event")} AS j_event, {d.json_member("j", "context")} AS j_context
        FROM j
    ), t AS (
        SELECT *,
               CASE WHEN j_time IS NULL THEN NULL
                    WHEN {d.ends_with("j_time", "+00:00")} OR {d.ends_with("j_time", "Z")} THEN {d.timestamp_from_text("j_time")}
                    WHEN {time_re(NUMBER_RE)} THEN NULL
                    WHEN {time_re(OFFSET_RE)} AND length(j_time) > 16
                        THEN CASE WHEN {time_re(OFFSET_OK_RE)} THEN {d.utc_timestamp_from_text("j_time")} END
                    WHEN {time_re(ZONE_NAME_RE)} THEN NULL
                    ELSE {d.timestamp_from_text("j_time")} END AS ts,
               {d.json_string_object("j_event")} AS event_inner,
               {d.json_document("j_context", CONTEXT_SHAPE)} AS c
        FROM f{once}
    ), r AS (
        SELECT *,
               CASE WHEN js IS NULL AND strpos(raw, '{{') = 0 AND {comment} THEN '{COMMENT}'
                    WHEN js IS NULL THEN '{NO_OBJECT}'
                    WHEN j IS NULL THEN '{INVALID_JSON}'
                    WHEN j_time IS NULL THEN '{NO_TIME}'
                    WHEN ts IS NULL AND {time_re(NUMBER_RE)} THEN '{BAD_TIME}'
                    WHEN ts IS NULL AND length(j_time) > 16 AND {time_re(OFFSET_RE)}
                         AND NOT {time_re(OFFSET_OK_RE)} THEN '{BAD_OFFSET}'
                    WHEN ts IS NULL AND {time_re(YEAR_OUT_RE)} THEN '{TIME_RANGE}'
                    WHEN ts IS NULL OR NOT isfinite(ts) THEN '{BAD_TIME}'
                    WHEN ts < TIMESTAMP '{FIRST_TIME}' OR ts >= TIMESTAMP '{END_TIME}' THEN '{TIME_RANGE}' END AS reason,
               coalesce(nullif({stripped(d, d.json_member_text("c", "course_id"))}, ''), nullif({stripped(d, "j_course_id")}, '')) AS ctx
        FROM t
    ), ub AS (
        SELECT *, {block_in_url("j_event_type")} AS etb, {block_in_url("j_page")} AS pgb FROM r{once}
    ), ug AS (
        SELECT *, {block_key("etb")} AS etb_g, {block_key("pgb")} AS pgb_g,
               {any_in_url("j_event_type", "etb")} AS etu, {any_in_url("j_page", "pgb")} AS pgu FROM ub{once}
    ), u AS (
        SELECT *, {in_url("j_event_type", "etb", "etu")} AS etc, {in_url("j_page", "pgb", "pgu")} AS pgc FROM ug{once}
    ), h AS (
        {looked_up}
    ), k AS (
        SELECT *, {key} FROM (SELECT *, {match} FROM (SELECT *, {norm} FROM h{once}) k1{once}) k2
    )
    SELECT line, reason,
           CASE WHEN reason IS NOT NULL THEN {d.trim_chars("raw", _chars(d, _EOL), "trailing")} END AS raw,
           CASE WHEN reason IS NULL THEN event_id END AS event_id,
           ts AS {d.quote("time")}, CAST(ts AS DATE) AS event_date,
           {stripped(d, "j_username")} AS username, {d.whole_number(d.json_member_text("c", "user_id"))} AS user_id,
           CASE WHEN ctx IS NOT NULL THEN ctx WHEN etc_key IS NOT NULL THEN etc WHEN pgc_key IS NOT NULL THEN pgc END AS course_id,
           CASE WHEN ctx IS NOT NULL THEN ctx_key ELSE coalesce(etc_key, pgc_key) END AS course_key,
           coalesce(nullif(j_name, ''), j_event_type) AS event_type,
           j_event_source AS event_source, j_ip AS ip, j_agent AS agent, j_host AS host, j_referer AS referer,
           j_accept_language AS accept_language, j_session AS session, j_page AS page,
           {d.json_member_text("c", "org_id")} AS org_id, {d.json_member_text("c", "module", "usage_key")} AS module_id,
           CAST(coalesce({d.json_or_null("event_inner")}, j_event) AS {d.type_name("JSON")}) AS event,
           CAST(j_context AS {d.type_name("JSON")}) AS context
    FROM k
    """


def duplicate_keys_sql(d: Dialect, lines: str) -> str:
    """A SELECT of one number: the keys given more than once at the top of the JSON objects of
    `lines(raw)` (from the first `{`; invalid JSON counts 0). Each extra copy is one value
    dropped: DuckDB keeps the first, PostgreSQL the last. A second parse of each line, the price
    of counting (see docs/clickstream.md). The repeats are counted once per distinct list of keys
    (a day's events share a few dozen), not per line: on DuckDB that halves the count's cost."""
    js = f"CASE WHEN {d.starts_with('raw', '{')} THEN raw ELSE substr(raw, strpos(raw, '{{')) END"
    return (
        f"SELECT coalesce(sum({d.repeats_in_list('k')} * n), 0) FROM (SELECT k, count(*) AS n FROM "
        f"(SELECT {d.json_keys(js)} AS k FROM {lines} WHERE strpos(raw, '{{') > 0) d GROUP BY k) g"
    )


def lost_user_ids_sql(d: Dialect, where: str) -> str:
    """A SELECT of one number: stored events whose `context.user_id` was given (not empty, not
    null) but is not a whole number that fits 64 bits, so `user_id` is NULL."""
    return f"SELECT count(*) FROM events WHERE {where} AND user_id IS NULL AND coalesce({d.json_text('context', 'user_id')}, '') <> ''"


def first_brace_text(raw: str) -> str | None:
    """The JSON part of a line (from the first `{`), or None when it has none; for reference and tests."""
    at = raw.find("{")
    return None if at < 0 else raw[at:].rstrip("\r\n")
