"""DuckDB's spelling of the fragments that differ from the default (dialects/base.py)."""

from __future__ import annotations

from optimus.warehouse.dialects.base import Capabilities, Dialect


class DuckDBDialect(Dialect):
    name = "duckdb"
    # Arrow is scanned where it lies; row groups carry min/max statistics
    capabilities = Capabilities(scans_arrow_in_place=True, prunes_by_min_max=True, transactions=True)

    def try_cast(self, expr: str, sql_type: str) -> str:
        return f"TRY_CAST({expr} AS {sql_type})"
