"""DuckDB's spelling of the fragments that differ from the default (dialects/base.py)."""

from __future__ import annotations

import json
from collections.abc import Callable

from optimus.warehouse.dialects.base import Capabilities, Dialect, JsonShape, TrimSide, _member, sql_string

_TRIM = {"both": "trim", "leading": "ltrim", "trailing": "rtrim"}


def _struct(shape: JsonShape) -> dict[str, object]:
    """json_transform's structure for a shape: text -> VARCHAR, json -> JSON, an object -> its own."""
    return {k: _struct(v) if isinstance(v, dict) else {"text": "VARCHAR", "json": "JSON"}[str(v)] for k, v in shape.items()}


class DuckDBDialect(Dialect):
    name = "duckdb"
    # Arrow is scanned where it lies; row groups carry min/max statistics; read_csv reads .gz files itself
    capabilities = Capabilities(scans_arrow_in_place=True, prunes_by_min_max=True, transactions=True, reads_files=True)

    def _cast_or_null(self, text: str, target: str) -> str:
        cast = f"TRY_CAST({text} AS {target})"
        if target != "DOUBLE PRECISION":
            return cast
        # DuckDB reads an overflow as infinity and a value below the smallest double as 0: both NULL
        # (PostgreSQL's out-of-range error); a mantissa with a digit other than 0 is not zero
        return (
            f"CASE WHEN NOT isfinite({cast}) THEN NULL WHEN {cast} = 0 AND regexp_matches({text}, '^[^eE]*[1-9]') THEN NULL ELSE {cast} END"
        )

    def starts_with(self, expr: str, prefix: str) -> str:
        return f"starts_with({expr}, {sql_string(prefix)})"

    def ends_with(self, expr: str, suffix: str) -> str:
        return f"ends_with({expr}, {sql_string(suffix)})"

    def contains(self, expr: str, needle: str) -> str:
        return f"contains({expr}, {sql_string(needle)})"

    def trim_chars(self, expr: str, chars: str, side: TrimSide = "both") -> str:
        return f"{_TRIM[side]}({expr}, {chars})"

    def url_decode_or_null(self, expr: str) -> str:
        return f"try(url_decode({expr}))"

    def regex_matches(self, expr: str, pattern: str) -> str:
        return f"regexp_matches({expr}, {sql_string(pattern)})"

    def regex_groups(self, expr: str, pattern: str, groups: tuple[str, ...]) -> str:
        names = ", ".join(sql_string(g) for g in groups)
        return f"regexp_extract({expr}, {sql_string(pattern)}, [{names}])"  # a STRUCT, '' for each group on no match

    def regex_group(self, matched: str, groups: tuple[str, ...], group: str) -> str:
        return f"nullif({_member(matched)}.{group}, '')"

    def regex_extract(self, expr: str, pattern: str) -> str:
        return f"nullif(regexp_extract({expr}, {sql_string(pattern)}, 1), '')"

    def parse_json_object(self, text: str, shape: JsonShape) -> str:
        # a STRUCT of the members named (each read once, here): the fastest way DuckDB reads JSON
        return f"try(json_transform({text}, {sql_string(json.dumps(_struct(shape), separators=(',', ':')))}))"

    def json_document(self, value: str, shape: JsonShape) -> str:
        return self.parse_json_object(value, shape)

    def json_member_text(self, doc: str, *path: str) -> str:
        return ".".join([_member(doc), *path])

    def json_member(self, doc: str, name: str) -> str:
        return f"{_member(doc)}.{name}"

    def json_string_object(self, value: str) -> str:
        return f"CASE WHEN starts_with({value}, '\"{{') THEN {value} ->> '$' END"

    def json_or_null(self, text: str) -> str:
        return f"CASE WHEN json_valid({text}) THEN CAST({text} AS JSON) END"

    def json_text(self, expr: str, key: str) -> str:
        return (
            f"(CASE WHEN json_type({expr}) = 'VARCHAR' "
            f"THEN json_extract_string(TRY_CAST(json_extract_string({expr}, '$') AS JSON), '$.{key}') "
            f"ELSE json_extract_string({expr}, '$.{key}') END)"
        )

    def json_keys(self, text: str) -> str:
        return f"try(json_keys({text}))"

    def json_object_entries(self, doc: str, alias: str) -> str:
        return f"json_each(CASE WHEN json_type({doc}) = 'OBJECT' THEN {doc} END) AS {alias}"

    def json_value_text(self, value: str) -> str:
        # a slice of JSON is written compact (no space between tokens), as the PostgreSQL spelling builds it
        return f"(CASE json_type({value}) WHEN 'VARCHAR' THEN json_extract_string({value}, '$') WHEN 'NULL' THEN NULL ELSE CAST({value} AS VARCHAR) END)"

    def repeats_in_list(self, items: str) -> str:
        return f"(len({items}) - list_unique({items}))"

    def whole_number(self, text: str) -> str:
        return f"TRY_CAST({text} AS BIGINT)"

    def timestamp_from_text(self, text: str) -> str:
        return f"TRY_CAST({text} AS TIMESTAMP)"

    def utc_timestamp_from_text(self, text: str) -> str:
        return f"timezone('UTC', TRY_CAST({text} AS TIMESTAMPTZ))"

    def split_map_join(self, text: str, separator: str, part: Callable[[str], str], joiner: str) -> str:
        piece = "_optimus_part"
        return (
            f"array_to_string(list_transform(string_split({text}, {sql_string(separator)}), lambda {piece}: {part(piece)}), "
            f"{sql_string(joiner)})"
        )
