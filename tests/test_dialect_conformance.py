"""Every dialect fragment, on every engine, over the same inputs, gives equal output (issue 15).

Shared SQL (formats/events.py, services/) asks its warehouse's dialect (`wh.sql`) for a fragment
wherever engines disagree; a branch moved into a dialect is checked here, so it cannot drift: each
fragment runs on a real DuckDB warehouse, a real PostgreSQL warehouse and a real local Spark over the
same inputs, and the answers must be equal to DuckDB's (and to a plain-Python reference where there is
one). A public Dialect method without a case fails `test_every_fragment_has_a_case`.

The TSV escapes' fragments have more cases, fuzzed against the decoder, in test_dialect_conformance_tsv.py.
"""

from __future__ import annotations

import inspect
import json
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SparkSQL, duckdb_and_postgres, make_data_path
from optimus import courses
from optimus.config import Settings
from optimus.formats import events as rules
from optimus.warehouse.base import Warehouse
from optimus.warehouse.dialects import Dialect
from optimus.warehouse.dialects.base import JsonShape
from optimus.warehouse.dialects.duckdb import DuckDBDialect
from optimus.warehouse.dialects.postgres import PostgresDialect
from optimus.warehouse.dialects.spark import SparkDialect


@dataclass(frozen=True)
class Case:
    """A fragment's check: `expr(d, "v")` is an SQL expression over a text column `v`, run over every
    input; or `query(d, input)` is a whole SELECT of one value (for fragments that are not a row's
    expression; with `many`, its rows as a list of tuples). `reference(input)` is the answer in plain
    Python, when there is one; `read` turns an engine's answer into a comparable value (e.g. JSON text
    into its value: jsonb prints `{"a": 1}`)."""

    inputs: tuple[Any, ...]
    expr: Callable[[Dialect, str], str] | None = None
    query: Callable[[Dialect, Any], str] | None = None
    reference: Callable[[Any], Any] | None = None
    read: Callable[[Any], Any] = lambda value: value
    many: bool = False


def _run(wh: Warehouse | SparkSQL, case: Case) -> list[Any]:
    d = wh.sql
    if case.query is not None:
        if case.many:
            return [case.read(wh.query(case.query(d, value))) for value in case.inputs]
        return [case.read(wh.scalar(case.query(d, value))) for value in case.inputs]
    assert case.expr is not None
    rows = " UNION ALL ".join(f"SELECT {i} AS id, CAST(? AS {d.type_name('VARCHAR')}) AS v" for i in range(len(case.inputs)))
    got = wh.query(f"SELECT id, {case.expr(d, 'v')} FROM ({rows}) s ORDER BY id", list(case.inputs))
    return [case.read(value) for _id, value in got]


def _json(value: Any) -> Any:
    return None if value is None else json.loads(value)


# -- plain-Python references -------------------------------------------------------------------------
def _or_none(f: Callable[[str], Any]) -> Callable[[str | None], Any]:
    return lambda v: None if v is None else f(v)


def _unquote(v: str) -> str | None:
    try:
        return unquote(v, errors="strict")
    except UnicodeDecodeError:
        return None


def _object(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _member_text(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None if value is None else json.dumps(value, separators=(",", ":"))
    return value if isinstance(value, str) else json.dumps(value)


def _keys(text: str) -> list[str] | None:
    try:
        return json.loads(text, object_pairs_hook=lambda pairs: [k for k, _v in pairs] if pairs is not None else [])
    except ValueError:
        return None


def _whole_number(text: str) -> int | None:
    if not re.fullmatch(r"\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?\s*", text):
        return None
    try:
        number = int(Decimal(text.strip()).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    except InvalidOperation:
        return None
    return number if -(2**63) <= number < 2**63 else None


def _json_text(text: str, key: str) -> str | None:
    value = json.loads(text)
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        value = _object(value)
    return _member_text(value.get(key)) if isinstance(value, dict) else None


def _group(match: re.Match[str] | None, i: int) -> str | None:
    return (match.group(i) or None) if match else None


# -- inputs ------------------------------------------------------------------------------------------
TEXTS = (None, "", "abc", "{x", " {x", "é{ü", "a%b", "%", "ends with Z", "Z", "+00:00", "2014+00:00", "a'b")
TRIM = (None, "", "  x  ", "xx a xx", "x", "   ", "a x b")
URLS = (
    None,
    "",
    "a%20b",
    "%2Fcourses%2F",
    "%zz%4",
    "%ff",
    "caf%C3%A9",
    "a+b",
    "%E2%82",
    "course-v1%3AUQx%2BA%2B1",
)
COURSE_IDS = (
    "UQx/T1/2014",
    "course-v1:UQx+T1+2014",
    "ccx-v1:UQx+T1+2014+ccx@12",
    "course-v1:UQx+T1+2014+ccx@3",
    "Medicine/HRP258/Statistics_in_Medicine",
    " UQx/T2/2015 ",
    "UQx/T2/2015\n",
    "course-v1:a+b+c\n",
    "course-v1:a+b+c\nd",
    "course-v1:a+b+c\n\n",
    "course-v1:UQx+T1",
    "a/b",
    "a/b/c/d",
    "course-v1:UQx+T+1+2",
    "UQx/T 1/2014",
    "UQx+x/T1/2014",
    "UQx/T\u20031/2014",
    "\u00a0UQx/T6/2019\u3000",
    "UQx/T\x0b7/2020",
    "course-v1:Org-With-Dash+Course_1+Run.2",
    "",
    "%",
    "course-v1:a+b+c+ccx@",
    "course-v1:a+b+c+ccx@x",
)
PAGES = (
    None,
    "https://x.org/courses/course-v1:UQx+A+1/courseware/ch/",
    "/courses/course-v1:UQx+A+1/x/y/z",
    "/courses/UQx/A/1/info",
    "/courses/UQx/A/1",
    "/courses/UQx/A",
    "/COURSES/ccx-v1:UQx+A+1+ccx@5?x",
    "/courses/course-v1%3AUQx%2BA%2B1/about",
    "/courses/a/b/c/courses/course-v1:X+Y+Z",
    "no course",
    "/courses/course-v1:/a/b",
    "/api/courses/v1/courses/course-v1:UQx+A+1/",  # a version segment is skipped (courses._IN_URL's look-ahead)
    "/api/courses/V2/courses/UQx/A/1/x",
    "/courses/v1/b/c",
    "/courses/v1x/b/c",
)
JSON_OBJECTS = (
    '{"a":"x","m":{"k":"deep"},"e":{"f":1},"s":"{\\"id\\":\\"v1\\"}"}',
    '{"a":5,"m":{"k":7},"e":null,"s":"{not json"}',
    '{"a":true,"e":[1,2],"s":"plain"}',
    '{"a":null,"m":"flat","s":5}',
    '{"a":"é\\u00e9","m":{},"s":"{\\"id\\":1}"}',
    "{}",
    "{not json",
    '{"a":1}{"a":2}',
    '{"a":1.5}',
)
SHAPE: JsonShape = {"a": "text", "m": {"k": "text"}, "e": "json", "s": "json"}
TIMES = (
    "2014-03-01T10:00:00",
    "2014-03-01 10:00:00.123456",
    "2014-03-01T10:00:00.1234567",
    "2014-03-01T10:00:00Z",
    "2014-03-01T10:00:00+00:00",
    "2014-03-01T10:00",
    "2014-03-01",
    "2014-3-1 10:00:00",
    "2014-03-01T10:00:60",
    "2014-02-30T00:00:00",
    "now",
    "Jan 2 2014",
    "20140301T100000",
    "",
    "garbage",
    "epoch",
)
ZONED = (
    "2014-03-01T10:00:00+05:30",
    "2014-03-01T10:00:00-0800",
    "2014-03-01T23:30:00-01:00",
    "2014-03-01T10:00:00.1234567+01:00",
    "2014-03-01T10:00:60+01:00",
    "2014-03-01T10:00:00+15:59",
    "2014-03-01T10:00:00+00",
    "now+01:00",
)
NUMBERS = (
    "5",
    " 7 ",
    "-3",
    "+4",
    "5.0",
    "2.5",
    "-2.5",
    "1e3",
    "1.5e1",
    ".5",
    "5.",
    "9223372036854775807",
    "9223372036854775808",
    "x",
    "",
    "1 2",
)
# (`0x10` and `1_000` are left out: DuckDB reads them, 16 and 1000, PostgreSQL 15 does not (docs/postgresql.md))


# -- try_cast: the rule per type (docs/postgresql.md, "try_cast"), written here from the doc ----------
# The types Optimus casts text to (formats/sql_tables.COLUMN_TYPES through database_state._cast, and
# services/email_crm.py), and DATE.
TRY_CAST_TYPES = ("BIGINT", "INTEGER", "DOUBLE PRECISION", "BOOLEAN", "DATE", "TIMESTAMP")
_INT_RANGE = {"BIGINT": 2**63, "INTEGER": 2**31}
_DATE = r"[1-9][0-9]{3}-[0-9]{2}-[0-9]{2}"


def reference_try_cast(text: str | None, sql_type: str) -> Any:
    """What a MySQL export writes for a value of the type, read as the value; None for anything else."""
    if text is None:
        return None
    if sql_type in _INT_RANGE:  # an optional minus and decimal digits, in the type's range
        if not re.fullmatch(r"-?[0-9]+", text):
            return None
        number = int(text)
        return number if -_INT_RANGE[sql_type] <= number < _INT_RANGE[sql_type] else None
    if sql_type == "DOUBLE PRECISION":  # digits, an optional fraction and exponent; a finite double, not one rounded to zero
        if not re.fullmatch(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?", text):
            return None
        value = float(text)
        rounded_to_zero = value == 0 and re.search("[1-9]", re.split("[eE]", text)[0]) is not None
        return None if math.isinf(value) or rounded_to_zero else value
    if sql_type == "BOOLEAN":  # MySQL's tinyint(1) 0/1, or true/false in any case
        return {"1": True, "0": False, "true": True, "false": False}.get(text if text in ("0", "1") else text.lower())
    if sql_type == "DATE":
        return _or_value_error(lambda: date.fromisoformat(text)) if re.fullmatch(_DATE, text) else None
    assert sql_type == "TIMESTAMP"  # MySQL's DATETIME: a date, a space, hh:mm:ss, up to six digits of fraction
    if not re.fullmatch(_DATE + r" [0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?", text):
        return None
    return _or_value_error(lambda: datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f" if "." in text else "%Y-%m-%d %H:%M:%S"))


def _or_value_error(make: Callable[[], Any]) -> Any:
    try:
        return make()
    except ValueError:  # a day or an hour the calendar or the clock does not have
        return None


# how each engine's VARCHAR of a value reads back into Python (a double: '1000' on one, '1000.0' on the other)
_TYPED_TEXT: dict[str, Callable[[str], Any]] = {
    "BIGINT": int,
    "INTEGER": int,
    "DOUBLE PRECISION": float,
    "BOOLEAN": lambda text: {"true": True, "false": False}[text],
    "DATE": date.fromisoformat,
    "TIMESTAMP": datetime.fromisoformat,
}
TRY_CAST_TEXTS = (
    None,
    "",
    "12",
    "-3",
    "007",
    "-0",
    " 7 ",
    "+4",
    "x",
    "1 2",
    "2147483647",
    "2147483648",
    "-2147483648",
    "-2147483649",
    "9223372036854775807",
    "9223372036854775808",
    "-9223372036854775808",
    "-9223372036854775809",
    "2.5",
    "-2.5",
    "1e3",
    "1E+3",
    "1.5e-7",
    ".5",
    "5.",
    "0x10",
    "1_000",
    "0b11",
    "١٢",
    "inf",
    "-inf",
    "Infinity",
    "nan",
    "NaN",
    "1e400",
    "-1e400",
    "1e-400",
    "0e-400",
    "1e-310",
    "0.000",
    "1.7976931348623157e308",
    "true",
    "false",
    "TRUE",
    "False",
    "t",
    "f",
    "1",
    "0",
    "2",
    "yes",
    "no",
    "y",
    "on",
    "off",
    "of",
    " true",
    "2014-03-01",
    "2014-3-1",
    "2014-02-30",
    "2016-02-29",
    "0000-01-01",
    "0999-12-31",
    "10000-01-01",
    "2014-03-01 ",
    "2014-03-01 10:00:00",
    "2014-03-01T10:00:00",
    "2014-03-01 10:00",
    "2014-03-01 10:00:00.5",
    "2014-03-01 10:00:00.123456",
    "2014-03-01 10:00:00.1234567",
    "2014-03-01 10:00:00Z",
    "2014-03-01 10:00:00+02",
    "2014-03-01 24:00:00",
    "2014-03-01 23:59:60",
    "2014-03-01 10:00:00 BC",
    "0000-00-00 00:00:00",
    "2014-00-01 00:00:00",
    "epoch",
    "today",
    "now",
)


# a text of each type the shared SQL names (type_name), and the value it is
TYPED_SAMPLES: dict[str, tuple[str, Any]] = {
    "VARCHAR": ("a'b", "a'b"),
    "DOUBLE PRECISION": ("2.5", 2.5),
    "BIGINT": ("9223372036854775807", 2**63 - 1),
    "INTEGER": ("-2147483648", -(2**31)),
    "BOOLEAN": ("true", True),
    "DATE": ("2014-03-01", date(2014, 3, 1)),
    "TIMESTAMP": ("2014-03-01 10:00:00.123456", datetime(2014, 3, 1, 10, 0, 0, 123456)),
    "JSON": ('{"a":[1,"x"]}', {"a": [1, "x"]}),
}


_DOT_TO_END = re.compile(r"^/courses/(.*)/x\Z")  # RE2's `^/courses/(.*)/x$` in Python


def _timestamp(d: Dialect, text: str) -> str:
    return f"CAST({d.literal(text)} AS {d.type_name('TIMESTAMP')})"


def _course_url(d: Dialect, v: str) -> str:
    return d.regex_extract(v, rules.course_in_url_re(d))


CASES: dict[str, Case] = {
    "quote": Case(
        inputs=("time", "a b", 'say "hi"', "Mixed", "select", "back`tick"),
        query=lambda d, name: f"SELECT {d.quote(name)} FROM (SELECT 'ok' AS {d.quote(name)}) s",
        reference=lambda _name: "ok",
    ),
    "literal": Case(
        inputs=("plain", "a'b", "back\\slash", "\\", "end\\", "\\'", "\\n \\t \\u0041 %_", "é😀", "two\nlines", "", "''"),
        query=lambda d, text: f"SELECT {d.literal(text)}",
        reference=lambda text: text,
    ),
    # each type the shared SQL names, cast to from text and read back as the value
    "type_name": Case(
        inputs=tuple(TYPED_SAMPLES),
        query=lambda d, t: f"SELECT CAST({d.literal(TYPED_SAMPLES[t][0])} AS {d.type_name(t)})",
        reference=lambda t: TYPED_SAMPLES[t][1],
        read=lambda value: json.loads(value) if isinstance(value, str) and value.startswith("{") else value,
    ),
    "char": Case(
        inputs=(65, 9, 39, 92, 160, 233, 8192, 12288, 65279, 128512),
        query=lambda d, code: f"SELECT {d.char(code)}",
        reference=chr,
    ),
    # every text on every type, the inputs that once differed included (DuckDB read '2.5' and '1e3' as
    # integers and 'inf' as a date, PostgreSQL 'off' as a boolean): both follow the rule of
    # docs/postgresql.md ("try_cast"), fuzzed below (test_try_cast_fuzzed_is_equal_on_every_engine)
    "try_cast": Case(
        inputs=TRY_CAST_TEXTS,
        expr=lambda d, v: " || '|' || ".join(
            f"coalesce(CAST({d.try_cast(v, t)} AS {d.type_name('VARCHAR')}), '-')" for t in TRY_CAST_TYPES
        ),
        reference=lambda v: tuple(reference_try_cast(v, t) for t in TRY_CAST_TYPES),
        read=lambda text: tuple(
            None if part == "-" else _TYPED_TEXT[t](part) for t, part in zip(TRY_CAST_TYPES, text.split("|"), strict=True)
        ),
    ),
    "starts_with": Case(TEXTS, expr=lambda d, v: d.starts_with(v, "{"), reference=_or_none(lambda v: v.startswith("{"))),
    "ends_with": Case(
        TEXTS,
        expr=lambda d, v: (
            f"CAST({d.ends_with(v, '+00:00')} AS {d.type_name('VARCHAR')}) || '|' || CAST({d.ends_with(v, 'Z')} AS {d.type_name('VARCHAR')})"
        ),
        reference=_or_none(lambda v: f"{str(v.endswith('+00:00')).lower()}|{str(v.endswith('Z')).lower()}"),
    ),
    "contains": Case(TEXTS, expr=lambda d, v: d.contains(v, "%"), reference=_or_none(lambda v: "%" in v)),
    "trim_chars": Case(
        TRIM,
        expr=lambda d, v: " || '|' || ".join(d.trim_chars(v, "' x'", side) for side in ("both", "leading", "trailing")),
        reference=_or_none(lambda v: f"{v.strip(' x')}|{v.lstrip(' x')}|{v.rstrip(' x')}"),
    ),
    "url_decode_or_null": Case(URLS, expr=lambda d, v: d.url_decode_or_null(v), reference=_or_none(_unquote)),
    "regex_matches": Case(
        COURSE_IDS,
        expr=lambda d, v: (
            f"CASE WHEN {d.regex_matches(v, rules.COURSE_NEW_RE)} THEN 'new' WHEN {d.regex_matches(v, rules.COURSE_OLD_RE)} THEN 'old' END"
        ),
        reference=lambda v: "new" if courses._NEW.search(v) else "old" if courses._OLD.search(v) else None,
    ),
    "regex_groups": Case(
        COURSE_IDS,
        expr=lambda d, v: " || '|' || ".join(
            f"coalesce({d.regex_group(d.regex_groups(v, rules.COURSE_NEW_RE, ('o', 'c', 'r', 'x')), ('o', 'c', 'r', 'x'), g)}, '-')"
            for g in ("o", "c", "r", "x")
        ),
        reference=lambda v: "|".join(_group(courses._NEW.match(v), i) or "-" for i in range(1, 5)),
    ),
    "regex_group": Case(
        COURSE_IDS,
        expr=lambda d, v: " || '|' || ".join(
            f"coalesce({d.regex_group(d.regex_groups(v, rules.COURSE_OLD_RE, ('o', 'c', 'r')), ('o', 'c', 'r'), g)}, '-')"
            for g in ("r", "o")
        ),
        reference=lambda v: "|".join(_group(courses._OLD.match(v), i) or "-" for i in (3, 1)),
    ),
    # and a `.` (any character but a newline: Java's stops at more line ends) before a `$` (the end: Java's
    # also matches before a final line end)
    "regex_extract": Case(
        (*PAGES, "/courses/a\rb/x", "/courses/a\u2028b\x85/x", "/courses/a\nb/x", "/courses/ab/x\n"),
        expr=lambda d, v: f"coalesce({_course_url(d, v)}, '-') || '|' || coalesce({d.regex_extract(v, '^/courses/(.*)/x$')}, '-')",
        reference=lambda v: (
            "-|-" if v is None else f"{_group(courses._IN_URL.search(v), 1) or '-'}|{_group(_DOT_TO_END.search(v), 1) or '-'}"
        ),
    ),
    "first_alternative": Case(
        ("xa-b", "xa", "xab", "ya-b", "x-a", "xa-bxa"),
        expr=lambda d, v: d.regex_extract(v, d.first_alternative("x", ("a", "a-b", "ab"), "(?:-|$)")),
        reference=lambda v: _group(re.search(r"x(a|a-b|ab)(?:-|$)", v), 1),
    ),
    "parse_json_object": Case(
        JSON_OBJECTS,
        expr=lambda d, v: (
            f"CASE WHEN {d.parse_json_object(v, SHAPE)} IS NULL THEN 'invalid' "
            f"ELSE coalesce({d.json_member_text(d.parse_json_object(v, SHAPE), 'a')}, '-') END"
        ),
        reference=lambda v: "invalid" if (o := _object(v)) is None else (_member_text(o.get("a")) or "-"),
    ),
    "json_member_text": Case(
        JSON_OBJECTS,
        expr=lambda d, v: d.json_member_text(d.parse_json_object(v, SHAPE), "m", "k"),
        reference=lambda v: _member_text(m.get("k")) if isinstance(m := (_object(v) or {}).get("m"), dict) else None,
    ),
    "json_member": Case(
        JSON_OBJECTS,
        expr=lambda d, v: f"CAST({d.json_member(d.parse_json_object(v, SHAPE), 'e')} AS {d.type_name('VARCHAR')})",
        reference=lambda v: (_object(v) or {}).get("e"),
        read=_json,
    ),
    "json_document": Case(
        JSON_OBJECTS,
        expr=lambda d, v: d.json_member_text(d.json_document(d.json_member(d.parse_json_object(v, SHAPE), "e"), {"f": "text"}), "f"),
        reference=lambda v: _member_text(e.get("f")) if isinstance(e := (_object(v) or {}).get("e"), dict) else None,
    ),
    "json_string_object": Case(
        JSON_OBJECTS,
        expr=lambda d, v: d.json_string_object(d.json_member(d.parse_json_object(v, SHAPE), "s")),
        reference=lambda v: s if isinstance(s := (_object(v) or {}).get("s"), str) and s.startswith("{") else None,
    ),
    "json_or_null": Case(
        ('{"a": 1}', "[1, 2]", '"x"', "5", "{not json", "", '{"a":1}{"b":2}', '{"a":"é"}'),
        expr=lambda d, v: f"CAST({d.json_or_null(v)} AS {d.type_name('VARCHAR')})",
        reference=lambda v: json.loads(v) if _keys(v) is not None or v in ("[1, 2]", '"x"', "5") else None,
        read=_json,
    ),
    "json_text": Case(
        ('{"id":"v1"}', '{"id":5}', '"{\\"id\\":\\"v2\\"}"', '"{bad"', '"plain"', "[1]", '{"other":1}', "null", '{"id":null}'),
        expr=lambda d, v: d.json_text(f"CAST({v} AS {d.type_name('JSON')})", "id"),
        reference=lambda v: _json_text(v, "id"),
    ),
    "json_keys": Case(
        ('{"a":1,"b":2,"a":3}', "{}", '{"a":{"a":1,"a":2}}', "{not json", '{"x":1,"y":2,"x":3,"x":4}', '{"a":1}{"b":2}'),
        expr=lambda d, v: d.json_keys(v),
        reference=lambda v: _keys(v),
        read=lambda value: None if value is None else list(value),
    ),
    "repeats_in_list": Case(
        ('{"a":1,"b":2,"a":3}', "{}", '{"a":{"a":1,"a":2}}', '{"x":1,"y":2,"x":3,"x":4}', '{"a":1,"b":2}'),
        expr=lambda d, v: d.repeats_in_list(d.json_keys(v)),
        reference=lambda v: len(k) - len(set(k)) if (k := _keys(v)) is not None else None,
    ),
    "json_object_entries": Case(
        (
            '{"m": {"b_2_1": ["correct", "x"], "a_3_1": "x", "c": [], "d": null, "é": true}}',
            '{"m": {}}',
            '{"m": [1, 2]}',
            '{"m": "text"}',
            "{not json",
            '{"other": 1}',
        ),
        query=lambda d, v: (
            f"SELECT e.key, {d.json_value_text('e.value')} "
            f"FROM (SELECT {d.json_member(d.parse_json_object(d.literal(v), {'m': 'json'}), 'm')} AS m) s, {d.json_object_entries('s.m', 'e')}"
        ),
        many=True,
        read=sorted,  # the rows come in no set order
        reference=lambda v: (
            sorted((k, None if x is None else _value_text(x)) for k, x in m.items())
            if isinstance(m := (_object(v) or {}).get("m"), dict)
            else []
        ),
    ),
    "json_value_text": Case(
        (
            '{"e": "plain é \\"q\\" \\\\ \\n"}',
            '{"e": ["choice_1", "choice_2"]}',
            '{"e": []}',
            '{"e": ["a, b", "tab\\there"]}',
            '{"e": true}',
            '{"e": 7}',
            '{"e": null}',
            '{"e": ""}',
            '{"f": 1}',
        ),
        expr=lambda d, v: d.json_value_text(d.json_member(d.parse_json_object(v, SHAPE), "e")),
        reference=lambda v: None if (e := (_object(v) or {}).get("e")) is None else _value_text(e),
    ),
    "whole_number": Case(NUMBERS, expr=lambda d, v: d.whole_number(v), reference=_whole_number),
    "timestamp_from_text": Case(TIMES, expr=lambda d, v: d.timestamp_from_text(v)),
    "utc_timestamp_from_text": Case(ZONED, expr=lambda d, v: d.utc_timestamp_from_text(v)),
    "microseconds_between": Case(
        (
            ("2014-03-01 10:00:00.000001", "2014-03-01 10:00:00"),
            ("2014-03-01 10:00:00", "2014-03-01 10:00:00.5"),
            ("2014-03-02 00:00:00", "2014-02-28 23:59:59.999999"),
            ("2024-01-01 00:00:00", "2014-03-01 10:00:00.123456"),
            ("2014-03-01 10:00:00", "2014-03-01 10:00:00"),
        ),
        query=lambda d, pair: f"SELECT {d.microseconds_between(_timestamp(d, pair[0]), _timestamp(d, pair[1]))}",
        reference=lambda pair: (datetime.fromisoformat(pair[0]) - datetime.fromisoformat(pair[1])) // timedelta(microseconds=1),
    ),
    "days_between": Case(
        (("2014-03-10", "2014-03-01"), ("2014-03-01", "2014-03-10"), ("2016-03-01", "2016-02-28"), ("2014-03-01", "2014-03-01")),
        query=lambda d, pair: f"SELECT {d.days_between(*(f'CAST({d.literal(t)} AS DATE)' for t in pair))}",
        reference=lambda pair: (date.fromisoformat(pair[0]) - date.fromisoformat(pair[1])).days,
    ),
    # NULLs skipped, several ORDER BY terms with NULLS LAST (answer_order_sql's), a separator with a backslash
    "ordered_string_agg": Case(
        (",", "\\", ""),
        query=lambda d, sep: (
            f"SELECT {d.ordered_string_agg('t', sep, 'n NULLS LAST, t')} FROM (SELECT 'c' AS t, 1 AS n UNION ALL SELECT 'b', NULL "
            "UNION ALL SELECT 'a', NULL UNION ALL SELECT NULL, 0 UNION ALL SELECT 'd', 0) s"
        ),
        reference=lambda sep: sep.join(["d", "c", "a", "b"]),
    ),
    "inline_cte": Case(
        ("a", "b"), query=lambda d, v: f"WITH c AS{d.inline_cte()} (SELECT {d.literal(v)} AS x) SELECT x FROM c", reference=lambda v: v
    ),
    "compute_once": Case(
        ("a", "b"),
        query=lambda d, value: f"SELECT x FROM (SELECT {value!r} AS x{d.compute_once()}) s",
        reference=lambda value: value,
    ),
    # -- the edX TSV escapes' fragments (more cases, fuzzed, with the decoder: test_dialect_conformance_tsv.py)
    "split_map_join": Case(
        inputs=(None, "", "a", "a\\\\b", "\\\\", "x\\\\\\\\y\\\\", "no split"),
        expr=lambda d, v: d.split_map_join(v, "\\\\", lambda part: f"'<' || {part} || '>'", "/"),
        reference=_or_none(lambda v: "/".join(f"<{p}>" for p in v.split("\\\\"))),
    ),
}


def _value_text(value: Any) -> str:
    """json_value_text's rule in Python: a string's value, anything else compact JSON (UTF-8 kept)."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


@pytest.fixture(scope="module")
def warehouses(tmp_path_factory: pytest.TempPathFactory, pg_server: str) -> Iterator[dict[str, Warehouse]]:
    """A real DuckDB warehouse and a real PostgreSQL warehouse, opened once."""
    with duckdb_and_postgres(tmp_path_factory.mktemp("conformance"), pg_server, "dialect_conformance") as opened:
        yield opened


def _public_fragments(cls: type) -> set[str]:
    return {n for n, f in inspect.getmembers(cls, inspect.isfunction) if not n.startswith("_")}


def test_every_fragment_has_a_case() -> None:
    """A fragment (a public method of a dialect) without a case here fails: its engines are unchecked."""
    fragments = (
        _public_fragments(Dialect) | _public_fragments(DuckDBDialect) | _public_fragments(PostgresDialect) | _public_fragments(SparkDialect)
    )
    assert sorted(fragments - set(CASES)) == []
    assert sorted(set(CASES) - fragments) == []  # (a case of a fragment that is gone goes too)


@pytest.mark.postgres
@pytest.mark.parametrize("fragment", sorted(CASES))
def test_fragment_is_equal_on_every_engine(warehouses: dict[str, Warehouse], fragment: str) -> None:
    case = CASES[fragment]
    duck, pg = _run(warehouses["duckdb"], case), _run(warehouses["postgres"], case)
    assert list(zip(case.inputs, pg, strict=True)) == list(zip(case.inputs, duck, strict=True))
    if case.reference is not None:
        assert list(zip(case.inputs, duck, strict=True)) == [(v, case.reference(v)) for v in case.inputs]


@pytest.fixture(scope="module")
def duck(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    """A real DuckDB warehouse alone: the answers Spark's are compared with (no PostgreSQL server needed)."""
    from optimus.warehouse import connect

    root = tmp_path_factory.mktemp("conformance_spark")
    wh = connect(Settings(data_paths=[make_data_path(root / "data")], warehouse=str(root / "optimus.duckdb"), memory_limit="1GB"))
    try:
        yield wh
    finally:
        wh.close()


@pytest.mark.spark
@pytest.mark.parametrize("fragment", sorted(CASES))
def test_fragment_is_equal_on_spark(duck: Warehouse, spark: Any, fragment: str) -> None:
    case = CASES[fragment]
    want, got = _run(duck, case), _run(SparkSQL(spark), case)
    assert list(zip(case.inputs, got, strict=True)) == list(zip(case.inputs, want, strict=True))


@pytest.mark.spark
def test_spark_session_functions_are_duckdbs(duck: Warehouse, spark: Any) -> None:
    """What conftest's `spark` ran from dialects/spark.SESSION_SQL (as the Spark warehouse does) answers as DuckDB does."""
    texts = [None, "", "abc", "a{b{", "{", "é{", "x/xblock/y"]
    sql = "SELECT id, strpos(v, '{'), strpos(v, ''), strpos(v, '/xblock/'), strpos('a', v) FROM ({}) s ORDER BY id"
    for wh in (duck, SparkSQL(spark)):
        rows = " UNION ALL ".join(f"SELECT {i} AS id, CAST(? AS {wh.sql.type_name('VARCHAR')}) AS v" for i in range(len(texts)))
        got = wh.query(sql.replace("({})", f"({rows})"), texts)
        assert [tuple(r[1:]) for r in got] == [
            (None,) * 4 if v is None else (v.find("{") + 1, 1, v.find("/xblock/") + 1, "a".find(v) + 1) for v in texts
        ], type(wh.sql).__name__


# -- try_cast, fuzzed: any text, on every type, on every engine, against reference_try_cast -----------
_NEAR_VALUES = st.sampled_from(
    ["0", "1", "9", "-", "+", ".", "e", "E", " ", "\t", "\n", ":", "T", "Z", "_", "0x", "inf", "nan", "Infinity", "true", "false"]
    + ["TRUE", "on", "off", "yes", "t", "f", "2014-03-01", "10:00:00", ".123456", "1e400", "9223372036854775808", "١", "é", "BC"]
)


def _datetime_text(f: tuple[int, ...]) -> str:
    return f"{f[0]:04d}-{f[1]:02d}-{f[2]:02d} {f[3]:02d}:{f[4]:02d}:{f[5]:02d}"


_AROUND_BEFORE = st.sampled_from(["", "", "+", "-", " ", "\t", "0", "00", "0x", "0b", "."])
_AROUND_AFTER = st.sampled_from(["", "", " ", "\n", ".", ".0", ".5", "e3", "E-2", "e-400", "e400", "_0", "0" * 30])
_DATETIME_FIELDS = st.tuples(*(st.integers(0, top) for top in (10999, 13, 32, 25, 61, 61)), st.integers(0, 10**7))
TRY_CAST_FUZZ = st.one_of(
    st.lists(_NEAR_VALUES, max_size=6).map("".join),
    st.integers(-(2**70), 2**70).map(str),
    # a number with what some engine reads around it: a sign, a space, leading zeros, a fraction, an exponent
    st.tuples(_AROUND_BEFORE, st.integers(-(2**64), 2**64), _AROUND_AFTER).map(lambda t: f"{t[0]}{t[1]}{t[2]}"),
    st.tuples(_AROUND_BEFORE, st.floats(allow_nan=False).map(repr), _AROUND_AFTER).map("".join),
    st.floats().map(repr),  # '1.5', '1e-05', '5e-324', 'inf', 'nan'
    st.floats(allow_nan=False).map(lambda f: f"{f:.17e}"),
    st.dates().map(str),
    st.datetimes().map(str),  # '2014-03-01 10:00:00.123456', as MySQL writes a DATETIME(6)
    st.datetimes().map(lambda t: t.isoformat(timespec="seconds")),
    _DATETIME_FIELDS.map(lambda f: _datetime_text(f) + f".{f[6]}"),  # any field out of its range
    _DATETIME_FIELDS.map(_datetime_text),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8),  # (PostgreSQL text holds no NUL)
)


@pytest.mark.postgres
@settings(max_examples=max(200, settings.default.max_examples))  # examples are cheap (~10 ms): more than the profile's
@given(st.lists(TRY_CAST_FUZZ, min_size=10, max_size=40))
def test_try_cast_fuzzed_is_equal_on_every_engine(warehouses: dict[str, Warehouse], texts: list[str]) -> None:
    """Typed values compared (not their text): the same int, float, bool, date and datetime from both engines."""
    want = [(text, tuple(reference_try_cast(text, t) for t in TRY_CAST_TYPES)) for text in texts]
    rows = " UNION ALL ".join(f"SELECT {i} AS id, CAST(? AS VARCHAR) AS v" for i in range(len(texts)))
    for engine, wh in warehouses.items():
        got = wh.query(f"SELECT {', '.join(wh.sql.try_cast('v', t) for t in TRY_CAST_TYPES)} FROM ({rows}) s ORDER BY id", texts)
        assert [(text, tuple(row)) for text, row in zip(texts, got, strict=True)] == want, engine


@pytest.mark.spark
@settings(max_examples=max(40, settings.default.max_examples))  # a Spark query is ~50 ms: fewer than on the others
@given(st.lists(TRY_CAST_FUZZ, min_size=10, max_size=40))
def test_try_cast_fuzzed_is_equal_on_spark(spark: Any, texts: list[str]) -> None:
    want = [(text, tuple(reference_try_cast(text, t) for t in TRY_CAST_TYPES)) for text in texts]
    wh = SparkSQL(spark)
    rows = " UNION ALL ".join(f"SELECT {i} AS id, CAST(? AS STRING) AS v" for i in range(len(texts)))
    got = wh.query(f"SELECT {', '.join(wh.sql.try_cast('v', t) for t in TRY_CAST_TYPES)} FROM ({rows}) s ORDER BY id", texts)
    assert [(text, tuple(row)) for text, row in zip(texts, got, strict=True)] == want


# the lines the event rules meet beyond the real fixtures: a comment, two objects on a line, text before the
# object, a 60th second, a course id with two line ends, a number for a time, an offset, a payload sent as a string
_AWKWARD_LINES = (
    '{"time": "2014-03-01T10:00:00Z", "username": " a ", "event_type": "/courses/course-v1:UQx+A+1/courseware/x", "context": {"user_id": "12"}}',
    "# comment",
    '{"a":1}{"b":2}',
    'junk {"time": "2014-03-01 10:00:00.1234567+05:30", "page": "https://x/courses/UQx/T1/2014/info"}',
    '{"time": "2014-03-01T10:00:60", "context": {"course_id": "course-v1:a+b+c\\n\\n"}}',
    '{"time": 5}',
    '{"time": "2014-03-01T10:00:00+01:00", "event": "{\\"id\\": 1}", "name": "x", "event_type": "/courses/UQx/T1/2014/xblock/block-v1:UQx+T1+2014+type@problem+block@p1/handler/x"}',
    '{"time": "2014-03-01T10:00:00.5", "username": "b", "context": {"course_id": "", "user_id": 1e3, "module": {"usage_key": "k"}}, "page": "/courses/v1/courses/UQx/T9/2019/"}',
)


@pytest.mark.spark
def test_event_rules_on_spark_equal_duckdb_on_real_events(fixtures_dir: Any, duck: Warehouse, spark: Any) -> None:
    """formats/events.parse_sql (every event rule: JSON, times, course ids in contexts and URLs, quarantine
    reasons), built with each engine's dialect, over the real edX fixture events and awkward lines: Spark's
    rows equal DuckDB's (the JSON columns compared as values: engines space and order JSON differently)."""
    texts = [line for path in sorted(fixtures_dir.glob("*.json")) for line in path.read_text(encoding="utf-8").splitlines()]
    rows = [(n, raw, f"e{n}") for n, raw in enumerate([*texts, *_AWKWARD_LINES], 1)]
    assert len(rows) > 300
    duck.execute("CREATE OR REPLACE TEMP TABLE conformance_lines (line BIGINT, raw VARCHAR, event_id VARCHAR)")
    duck.executemany("INSERT INTO conformance_lines VALUES (?, ?, ?)", rows)
    spark.createDataFrame(rows, "line BIGINT, raw STRING, event_id STRING").createOrReplaceTempView("conformance_lines")
    got = {
        engine: [
            tuple(_json(v) if i in (len(r) - 2, len(r) - 1) and isinstance(v, str) else v for i, v in enumerate(r))
            for r in wh.query(rules.parse_sql(wh.sql, "conformance_lines") + " ORDER BY line")
        ]
        for engine, wh in (("duckdb", duck), ("spark", SparkSQL(spark)))
    }
    assert sum(r[1] is None for r in got["duckdb"]) > 100  # events, not only quarantined lines
    assert got["spark"] == got["duckdb"]
