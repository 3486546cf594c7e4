"""PostgreSQL's spelling of the fragments that differ from the default (dialects/base.py).

What PostgreSQL lacks is done with helper functions the warehouse creates on connect
(warehouse/postgres.py: `optimus_try_<type>`, `optimus_try_url_decode`), each returning NULL where
DuckDB's `try`/TRY_CAST does, so one bad line never aborts a statement. Where PostgreSQL reads more
than DuckDB (words and other layouts as times, a 60th second), the fragments refuse it, so both
engines give DuckDB's answer.
"""

from __future__ import annotations

from collections.abc import Callable

from optimus.warehouse.dialects.base import Capabilities, Dialect, JsonShape, _member, sql_string

# The types with a helper `optimus_try_<type>` (warehouse/postgres.py creates them): try_cast's last
# step (base.MYSQL_TEXT's types) and the fragments below (jsonb, numeric, timestamptz)
HELPER_TYPES = {
    "BIGINT": "bigint",
    "INTEGER": "integer",
    "DOUBLE PRECISION": "double precision",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
    "JSONB": "jsonb",
    "TIMESTAMPTZ": "timestamptz",
    "NUMERIC": "numeric",
}


def _re2_dot(pattern: str) -> str:
    """An RE2 pattern with each `.` outside brackets as `[^\n]`: RE2's `.` takes any character but a
    newline, PostgreSQL's takes a newline too (its newline-sensitive flags would change `[^...]` as well)."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = c != "]" or out[-1] in ("[", "[^")
        elif c == "[":
            in_class = True
            if pattern.startswith("[^", i):
                c, i = "[^", i + 1
        elif c == ".":
            c = "[^\\n]"
        out.append(c)
        i += 1
    return "".join(out)


def helper_name(pg_type: str) -> str:
    """The try-cast helper function for a PostgreSQL type."""
    return "optimus_try_" + pg_type.replace(" ", "_")


class PostgresDialect(Dialect):
    name = "postgres"
    # Arrow reaches the server only through COPY; a heap table has no min/max statistics to skip by
    capabilities = Capabilities(scans_arrow_in_place=False, prunes_by_min_max=False, transactions=True)

    def _cast_or_null(self, text: str, target: str) -> str:
        # the helper's exception block gives NULL where the cast fails (out of range, no such day)
        return f"{helper_name(HELPER_TYPES[target])}(CAST({text} AS text))"

    def url_decode_or_null(self, expr: str) -> str:
        return f"optimus_try_url_decode({expr})"

    def regex_matches(self, expr: str, pattern: str) -> str:
        return f"({expr} ~ {sql_string(_re2_dot(pattern))})"

    def regex_groups(self, expr: str, pattern: str, groups: tuple[str, ...]) -> str:
        return f"regexp_match({expr}, {sql_string(_re2_dot(pattern))})"  # text[], NULL on no match

    def regex_group(self, matched: str, groups: tuple[str, ...], group: str) -> str:
        return f"nullif({_member(matched)}[{groups.index(group) + 1}], '')"

    def regex_extract(self, expr: str, pattern: str) -> str:
        return f"nullif((regexp_match({expr}, {sql_string(_re2_dot(pattern))}))[1], '')"

    def first_alternative(self, prefix: str, alternatives: tuple[str, ...], suffix: str) -> str:
        # PostgreSQL's alternation takes the longest match: each alternative is kept from matching
        # where an earlier one does (a negative look-ahead), so at most one can, and it is RE2's pick
        picked = []
        for i, alt in enumerate(alternatives):
            earlier = "".join(f"(?!(?:{a})(?:{suffix}))" for a in alternatives[:i])
            picked.append(f"{earlier}(?:{alt})(?={suffix})")
        return f"{prefix}({'|'.join(picked)})"

    def parse_json_object(self, text: str, shape: JsonShape) -> str:
        return f"optimus_try_jsonb({text})"  # jsonb: members are read by operators, the shape is not needed

    def json_document(self, value: str, shape: JsonShape) -> str:
        return value

    def json_member_text(self, doc: str, *path: str) -> str:
        steps = "".join(f" -> {sql_string(p)}" for p in path[:-1])
        return f"{_member(doc)}{steps} ->> {sql_string(path[-1])}"

    def json_member(self, doc: str, name: str) -> str:
        return f"nullif({_member(doc)} -> {sql_string(name)}, 'null')"  # a JSON null is SQL NULL, as DuckDB's json_transform gives

    def json_string_object(self, value: str) -> str:
        return f"CASE WHEN jsonb_typeof({value}) = 'string' AND left({value} #>> '{{}}', 1) = '{{' THEN {value} #>> '{{}}' END"

    def json_or_null(self, text: str) -> str:
        return f"optimus_try_jsonb({text})"

    def json_text(self, expr: str, key: str) -> str:
        # a string payload is parsed only when it looks like an object, and without failing
        j = f"CAST({expr} AS jsonb)"
        return (
            f"(CASE WHEN jsonb_typeof({j}) = 'object' THEN {j} ->> '{key}' "
            f"WHEN jsonb_typeof({j}) = 'string' AND ({j} #>> '{{}}') LIKE '{{%}}' "
            f"THEN optimus_try_jsonb({j} #>> '{{}}') ->> '{key}' END)"
        )

    def json_keys(self, text: str) -> str:
        # json (not jsonb) keeps every copy of a key; the text is read only when it parses (as jsonb, the rules' test)
        return f"CASE WHEN jsonb_typeof(optimus_try_jsonb({text})) = 'object' THEN ARRAY(SELECT json_object_keys(CAST({text} AS json))) END"

    def json_object_entries(self, doc: str, alias: str) -> str:
        return f"jsonb_each(CASE WHEN jsonb_typeof({doc}) = 'object' THEN {doc} END) AS {alias}(key, value)"

    def json_value_text(self, value: str) -> str:
        # jsonb prints `["a", "b"]`: an array is joined element by element, compact, as DuckDB writes it
        elements = (
            f"(SELECT '[' || coalesce(string_agg(CAST(_optimus_e AS text), ',' ORDER BY _optimus_n), '') || ']' "
            f"FROM jsonb_array_elements({value}) WITH ORDINALITY AS _optimus_a(_optimus_e, _optimus_n))"
        )
        return (
            f"(CASE jsonb_typeof({value}) WHEN 'string' THEN {value} #>> '{{}}' WHEN 'null' THEN NULL "
            f"WHEN 'array' THEN {elements} ELSE CAST({value} AS text) END)"
        )

    def repeats_in_list(self, items: str) -> str:
        return f"(SELECT count(*) - count(DISTINCT k) FROM unnest({items}) k)"

    def whole_number(self, text: str) -> str:
        # DuckDB's TRY_CAST(text AS BIGINT): whole-number text, or a decimal rounded; NULL otherwise
        return (
            f"CASE WHEN {text} ~ '^[0-9]{{1,18}}$' THEN CAST({text} AS bigint) "
            f"ELSE optimus_try_bigint(CAST(round(optimus_try_numeric({text})) AS text)) END"
        )

    def _as_duckdb_reads(self, text: str, cast: str) -> str:
        """`cast` of `text` where DuckDB would read it: PostgreSQL reads words and other layouts as
        times ('now', 'Jan 2 2014', '20140301T100000') and rolls a 60th second over; only text starting
        like a date is cast, and digits past the microsecond are cut (not rounded), as DuckDB does."""
        cut = f"CASE WHEN {text} ~ '\\.[0-9]{{7}}' THEN regexp_replace({text}, '(\\.[0-9]{{6}})[0-9]+', '\\1') ELSE {text} END"
        return (
            f"CASE WHEN {text} ~ '[0-9]:60' THEN NULL "
            f"WHEN {text} !~* '^\\s*([0-9]{{4}}[-/][0-9]{{1,2}}[-/][0-9]{{1,2}}|epoch\\s*$)' THEN NULL "
            f"ELSE {cast.format(cut)} END"
        )

    def timestamp_from_text(self, text: str) -> str:
        return self._as_duckdb_reads(text, "optimus_try_timestamp({})")

    def utc_timestamp_from_text(self, text: str) -> str:
        return self._as_duckdb_reads(text, "timezone('UTC', optimus_try_timestamptz({}))")

    def compute_once(self) -> str:
        return " OFFSET 0"  # a subquery with OFFSET is not flattened into the query above it

    def split_map_join(self, text: str, separator: str, part: Callable[[str], str], joiner: str) -> str:
        # regexp_split_to_table, not string_to_array: '' is one empty piece (an empty array there), as on DuckDB
        pattern = "".join(c if c.isalnum() else "\\" + c for c in separator)  # the separator, literally, as a regex
        return (
            f"(SELECT string_agg({part('_optimus_part')}, {sql_string(joiner)} ORDER BY _optimus_n) "
            f"FROM regexp_split_to_table({text}, {sql_string(pattern)}) WITH ORDINALITY AS _optimus_split(_optimus_part, _optimus_n))"
        )
