"""DuckDB's spelling of the fragments that differ from the default (dialects/base.py)."""

from __future__ import annotations

from collections.abc import Callable

from optimus.warehouse.dialects.base import Capabilities, Dialect, literal


class DuckDBDialect(Dialect):
    name = "duckdb"
    # Arrow is scanned where it lies; row groups carry min/max statistics
    capabilities = Capabilities(scans_arrow_in_place=True, prunes_by_min_max=True, transactions=True)

    def try_cast(self, expr: str, sql_type: str) -> str:
        return f"TRY_CAST({expr} AS {sql_type})"

    # -- text fragments for the edX TSV escapes (h2's block) -------------------------------------------
    def contains(self, text: str, fragment: str) -> str:
        return f"contains({text}, {fragment})"

    def split_map_join(self, text: str, separator: str, part: Callable[[str], str], joiner: str) -> str:
        piece = "_optimus_part"
        return (
            f"array_to_string(list_transform(string_split({text}, {literal(separator)}), lambda {piece}: {part(piece)}), {literal(joiner)})"
        )
