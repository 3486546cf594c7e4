"""The default dialect: fragments in standard SQL where one exists, and the capabilities as data.

A fragment is a method returning SQL text from SQL text (`try_cast(expr, type)` -> an
expression). The default spelling lives here when standard SQL has one; an engine's module
overrides only what it spells otherwise (where standard SQL has no spelling, the default raises
NotImplementedError, and every engine provides one). Every fragment is checked on every engine,
over the same inputs, to give equal output (tests/test_dialect_conformance.py); docs/architecture.md
lists them ("Dialect fragments and capabilities").

Arguments named `expr`, `text`, `doc`, ... are SQL expressions; `prefix`, `suffix`, `key`, `name`,
`pattern` are Python strings that the fragment writes as SQL literals (constants of the code, never
user input).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Union

from optimus.errors import WarehouseError

# The shape of a JSON object read by `parse_json_object`: each member read is "text" (its text: a
# string's value, any other value's JSON), "json" (kept as JSON) or a shape of its own (an object).
JsonShape = Mapping[str, Union[str, "JsonShape"]]
TrimSide = Literal["both", "leading", "trailing"]


@dataclass(frozen=True)
class Capabilities:
    """What an engine can or cannot do, as data: callers branch on these, never on the engine's name."""

    scans_arrow_in_place: bool  # execute_over_arrow reads the Arrow data where it is (no copy into a table)
    # a query filtered on values that rows were appended with together reads only their blocks (min/max
    # statistics, zone maps), so counting just-inserted rows costs no scan of the whole table
    prunes_by_min_max: bool
    # statements of every kind (DDL too) commit together or not at all: the pipeline stores a file's
    # rows and its ledger state in one transaction (docs/architecture.md: the strategy without it)
    transactions: bool = True
    # the engine reads and decompresses event files itself (Warehouse.event_lines gives their lines as a
    # relation); without it the caller reads them and loads the lines with the bulk loader (COPY)
    reads_files: bool = False
    # each statement costs a job of its own (seconds, where DuckDB's cost milliseconds): work done in
    # fewer statements is worth more than what a statement more would save (Clickstream's first lines)
    costly_statements: bool = False


# try_cast's rule (docs/postgresql.md, "try_cast"): the edX TSV dumps come from MySQL, so a typed value is
# read only from the text a MySQL export writes for a value of its type (a pattern RE2 and PostgreSQL
# read alike); any other text (`2.5` or `1e3` as an integer, `inf`, `on`, `2014-3-1`, a zone) is NULL.
_MYSQL_DATE = "[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"  # years 1000-9999: MySQL's DATE range
MYSQL_TEXT = {
    "BIGINT": "-?[0-9]+",
    "INTEGER": "-?[0-9]+",
    "DOUBLE PRECISION": "-?[0-9]+(\\.[0-9]+)?([eE][-+]?[0-9]+)?",
    "DATE": _MYSQL_DATE,
    "TIMESTAMP": _MYSQL_DATE + " ([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?",  # DATETIME(0..6)
}
# BOOLEAN is MySQL's tinyint(1), written 0 or 1 (true/false, any case, read too); VARCHAR is the text itself
TRY_CAST_TYPES = (*MYSQL_TEXT, "BOOLEAN", "VARCHAR")
_TYPE_ALIASES = {
    "DOUBLE": "DOUBLE PRECISION",
    "FLOAT8": "DOUBLE PRECISION",
    "FLOAT": "DOUBLE PRECISION",
    "INT": "INTEGER",
    "INT4": "INTEGER",
    "INT8": "BIGINT",
    "BOOL": "BOOLEAN",
    "TEXT": "VARCHAR",
}


def try_cast_type(sql_type: str) -> str:
    """The type of TRY_CAST_TYPES that `sql_type` names (aliases such as DOUBLE or INT8 accepted)."""
    name = " ".join(sql_type.upper().split())
    name = _TYPE_ALIASES.get(name, name)
    if name not in TRY_CAST_TYPES:
        raise WarehouseError(f"try_cast: no rule for {sql_type} (the types with one: {', '.join(TRY_CAST_TYPES)})")
    return name


def sql_string(value: str) -> str:
    """A standard SQL string literal (single quotes, doubled inside)."""
    return "'" + value.replace("'", "''") + "'"


def _member(doc: str) -> str:
    """`doc` ready for a member access after it: a bare name as is, anything else in parentheses."""
    return doc if doc.replace("_", "a").isalnum() else f"({doc})"


class Dialect:
    """Fragments of SQL in the default (standard) spelling; an engine's dialect overrides some."""

    name: str  # the dialect as SQLGlot names it ('duckdb', 'postgres'): for SQLGlot and messages, never to branch on
    capabilities: Capabilities

    def quote(self, identifier: str) -> str:
        """An identifier, quoted (standard double quotes, doubled inside)."""
        return '"' + identifier.replace('"', '""') + '"'

    def literal(self, value: str) -> str:
        """A string literal holding exactly `value` (standard: single quotes, doubled inside; an engine
        whose literals read backslash escapes doubles those too). Shared SQL writes a literal holding a
        backslash through this."""
        return sql_string(value)

    def type_name(self, sql_type: str) -> str:
        """The engine's name for a type the shared SQL names (`VARCHAR`, `DOUBLE PRECISION`, `JSON`,
        `TIMESTAMP` (naive), `BIGINT`, ...), for CAST and column definitions."""
        return sql_type

    def char(self, code: int) -> str:
        """The text of the one character with Unicode code point `code` (standard enough: `chr`)."""
        return f"chr({code})"

    def try_cast(self, expr: str, sql_type: str) -> str:
        """The text `expr` as a value of `sql_type` (one of TRY_CAST_TYPES), NULL (not an error) when it
        is not the text a MySQL export writes for a value of the type (MYSQL_TEXT) or the value does
        not fit (a number out of range, a day the calendar lacks). The same on every engine: each
        engine's own cast reads more (DuckDB `2.5` as the integer 3, `inf` as a date; PostgreSQL `on`
        as true), so only text of the type's shape reaches it."""
        target = try_cast_type(sql_type)
        if target == "VARCHAR":
            return f"CAST({expr} AS VARCHAR)"
        if target == "BOOLEAN":
            return (
                f"CASE {expr} WHEN '1' THEN TRUE WHEN '0' THEN FALSE "
                f"ELSE CASE lower({expr}) WHEN 'true' THEN TRUE WHEN 'false' THEN FALSE END END"
            )
        return f"CASE WHEN {self.regex_matches(expr, '^(' + MYSQL_TEXT[target] + ')$')} THEN {self._cast_or_null(expr, target)} END"

    def _cast_or_null(self, text: str, target: str) -> str:
        """try_cast's last step: text already of the type's shape (MYSQL_TEXT) cast to `target`, NULL
        when the value does not fit: an integer out of range, a date the calendar lacks, a double
        that overflows or that is not zero but rounds to zero (must)."""
        raise NotImplementedError(f"{type(self).__name__} has no try_cast")

    # -- text ------------------------------------------------------------------------------------
    def starts_with(self, expr: str, prefix: str) -> str:
        """Whether the text `expr` starts with `prefix` (NULL for NULL)."""
        return f"SUBSTRING({expr} FROM 1 FOR {len(prefix)}) = {sql_string(prefix)}"

    def ends_with(self, expr: str, suffix: str) -> str:
        """Whether the text `expr` ends with `suffix` (NULL for NULL)."""
        back = f" - {len(suffix) - 1}" if len(suffix) > 1 else ""
        return f"SUBSTRING({expr} FROM CHAR_LENGTH({expr}){back}) = {sql_string(suffix)}"

    def contains(self, expr: str, needle: str) -> str:
        """Whether the text `expr` holds `needle` (NULL for NULL)."""
        return f"POSITION({sql_string(needle)} IN {expr}) > 0"

    def trim_chars(self, expr: str, chars: str, side: TrimSide = "both") -> str:
        """`expr` without the characters of the text `chars` (an SQL expression) at its start, end or both."""
        return f"TRIM({side.upper()} {chars} FROM {expr})"

    def url_decode_or_null(self, expr: str) -> str:
        """`%XX` escapes decoded as UTF-8 (any other `%` and `+` kept), NULL when the bytes are not UTF-8:
        urllib.parse.unquote(errors='strict')."""
        raise NotImplementedError(f"{type(self).__name__} has no url_decode_or_null")

    # -- regular expressions (the patterns are written in the syntax RE2 and PostgreSQL share) -------
    def regex_matches(self, expr: str, pattern: str) -> str:
        """Whether `pattern` matches somewhere in `expr`."""
        raise NotImplementedError(f"{type(self).__name__} has no regex_matches")

    def regex_groups(self, expr: str, pattern: str, groups: tuple[str, ...]) -> str:
        """The capture groups of the first match of `pattern` in `expr`, as one value read by
        `regex_group` (the regex runs once for all its groups); `groups` names them in order."""
        raise NotImplementedError(f"{type(self).__name__} has no regex_groups")

    def regex_group(self, matched: str, groups: tuple[str, ...], group: str) -> str:
        """One group of a `regex_groups` value: its text, NULL when there was no match or the group
        took no part (or matched nothing)."""
        raise NotImplementedError(f"{type(self).__name__} has no regex_group")

    def regex_extract(self, expr: str, pattern: str) -> str:
        """The text of the first capture group of the first match of `pattern` in `expr`; NULL when
        there is none (or it is empty)."""
        raise NotImplementedError(f"{type(self).__name__} has no regex_extract")

    def first_alternative(self, prefix: str, alternatives: tuple[str, ...], suffix: str) -> str:
        """A pattern (text, not SQL) for `prefix(alt1|alt2|...)suffix` whose group 1 is the first
        alternative that matches where a match starts, as RE2 and Perl choose (a POSIX engine takes
        the longest instead; its dialect spells the choice out)."""
        return f"{prefix}({'|'.join(alternatives)}){suffix}"

    # -- JSON ------------------------------------------------------------------------------------
    def parse_json_object(self, text: str, shape: JsonShape) -> str:
        """The JSON object in `text` parsed once, for `json_member_text`/`json_member` to read the
        members `shape` names; NULL (never an error) when the text is not valid JSON."""
        raise NotImplementedError(f"{type(self).__name__} has no parse_json_object")

    def json_document(self, value: str, shape: JsonShape) -> str:
        """A JSON value taken by `json_member` (an object, or anything), readable by `json_member_text`
        like a `parse_json_object` of `shape`."""
        raise NotImplementedError(f"{type(self).__name__} has no json_document")

    def json_member_text(self, doc: str, *path: str) -> str:
        """The text of the member at `path` of a parsed object: a string's value, any other value's
        JSON; NULL when absent or null."""
        raise NotImplementedError(f"{type(self).__name__} has no json_member_text")

    def json_member(self, doc: str, name: str) -> str:
        """The member `name` of a parsed object as JSON (for json_document, json_string_object,
        or storing in a JSON column); NULL when absent or null."""
        raise NotImplementedError(f"{type(self).__name__} has no json_member")

    def json_string_object(self, value: str) -> str:
        """For a JSON value (from json_member) that is a string whose text starts with `{` (a payload
        sent as a string), that text; NULL for any other value."""
        raise NotImplementedError(f"{type(self).__name__} has no json_string_object")

    def json_or_null(self, text: str) -> str:
        """The text as a JSON value (as json_member gives), NULL when it is not valid JSON."""
        raise NotImplementedError(f"{type(self).__name__} has no json_or_null")

    def json_text(self, expr: str, key: str) -> str:
        """The text of `key` in a stored JSON value (a JSON column) that is an object, or a string
        holding an object (browser events carry their payload so); NULL when absent or unparsable."""
        raise NotImplementedError(f"{type(self).__name__} has no json_text")

    def json_keys(self, text: str) -> str:
        """The keys at the top of the JSON object in `text`, in order, repeats included (a list);
        NULL when the text is not a valid JSON object."""
        raise NotImplementedError(f"{type(self).__name__} has no json_keys")

    def json_object_entries(self, doc: str, alias: str) -> str:
        """A FROM item (after a comma: it may read the items before it) with one row per member of the
        JSON object `doc` (a JSON value, as json_member gives): `{alias}.key` (text) and `{alias}.value`
        (JSON, read by json_text or json_value_text); no rows when `doc` is NULL or not an object. Rows
        come in no set order (ORDER BY the key); a key given twice is the caller's to avoid."""
        raise NotImplementedError(f"{type(self).__name__} has no json_object_entries")

    def json_value_text(self, value: str) -> str:
        """The text of a JSON value (as json_member or json_object_entries give): a string's value; an
        array of strings as compact JSON (`["a","b"]`: no space between elements, each string JSON-quoted,
        as both engines write it); true/false/whole numbers their JSON; NULL for null. (A fraction or an
        object inside is written as each engine writes it; edX writes answers as strings and lists of them.)"""
        raise NotImplementedError(f"{type(self).__name__} has no json_value_text")

    def repeats_in_list(self, items: str) -> str:
        """How many elements of a list (json_keys) repeat an earlier one."""
        raise NotImplementedError(f"{type(self).__name__} has no repeats_in_list")

    # -- numbers and times -----------------------------------------------------------------------
    def whole_number(self, text: str) -> str:
        """The text as a BIGINT: a whole number, or a decimal rounded half away from zero (`5.0`,
        `1e3`, ` 7 `); NULL when it is neither or does not fit 64 bits."""
        raise NotImplementedError(f"{type(self).__name__} has no whole_number")

    def timestamp_from_text(self, text: str) -> str:
        """A time written `YYYY-MM-DD[ T]HH:MM[:SS[.ffffff...]]` (a trailing `Z` or `+00:00` ignored) as a
        TIMESTAMP, digits past the microsecond cut; NULL when it does not parse (second 60 included)."""
        raise NotImplementedError(f"{type(self).__name__} has no timestamp_from_text")

    def utc_timestamp_from_text(self, text: str) -> str:
        """A time written with a zone offset (`+05:30`, `-0800`) as the TIMESTAMP of that instant in UTC;
        NULL when it does not parse."""
        raise NotImplementedError(f"{type(self).__name__} has no utc_timestamp_from_text")

    def microseconds_between(self, later: str, earlier: str) -> str:
        """`later - earlier` (two TIMESTAMPs) in whole microseconds, a BIGINT (NULL when either is NULL)."""
        return f"CAST(round(EXTRACT(EPOCH FROM ({later} - {earlier})) * 1000000) AS BIGINT)"

    def days_between(self, later: str, earlier: str) -> str:
        """`later - earlier` (two DATEs) in days, an integer (NULL when either is NULL)."""
        return f"({later} - {earlier})"

    # -- aggregates ------------------------------------------------------------------------------
    def ordered_string_agg(self, expr: str, separator: str, order: str) -> str:
        """The texts `expr` of a group joined by `separator` (a plain string) in the order of the ORDER BY
        terms `order`; NULLs skipped, NULL for a group of none."""
        return f"string_agg({expr}, {self.literal(separator)} ORDER BY {order})"

    # -- plans -----------------------------------------------------------------------------------
    def inline_cte(self) -> str:
        """Text after a CTE's `AS` asking that it be computed where used, not once and kept (PostgreSQL
        and DuckDB: `NOT MATERIALIZED`); nothing where the engine inlines CTEs anyway."""
        return " NOT MATERIALIZED"

    def compute_once(self) -> str:
        """Text ending a subquery so its SELECT-list expressions are computed once per row, not once
        per use above it (a planner fence); nothing where the engine does so anyway."""
        return ""

    # -- the edX TSV escapes (formats/sql_tables.decode_escapes_sql) ------------------------------
    def split_map_join(self, text: str, separator: str, part: Callable[[str], str], joiner: str) -> str:
        """`text` split at each `separator` (left to right, not overlapping), each piece mapped by `part`
        (SQL of the piece from the SQL naming it), the pieces joined with `joiner` (separator and
        joiner: plain strings, not SQL). NULL stays NULL; '' is one empty piece."""
        raise NotImplementedError(f"{type(self).__name__} has no split_map_join")
