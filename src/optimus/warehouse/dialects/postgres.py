"""PostgreSQL's spelling of the fragments that differ from the default (dialects/base.py).

What PostgreSQL lacks is done with helper functions the warehouse creates on connect
(warehouse/postgres.py: `optimus_try_<type>`, `optimus_try_url_decode`).
"""

from __future__ import annotations

from collections.abc import Callable

from optimus.errors import WarehouseError
from optimus.warehouse.dialects.base import Capabilities, Dialect, literal

# try_cast: the types with a helper `optimus_try_<type>` (warehouse/postgres.py creates them)
HELPER_TYPES = {
    "BIGINT": "bigint",
    "INTEGER": "integer",
    "DOUBLE PRECISION": "double precision",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
    "BOOLEAN": "boolean",
    "JSON": "json",
    "SMALLINT": "smallint",
    "JSONB": "jsonb",
    "TIMESTAMPTZ": "timestamptz",
    "NUMERIC": "numeric",
}
_ALIASES = {
    "DOUBLE": "DOUBLE PRECISION",
    "FLOAT8": "DOUBLE PRECISION",
    "FLOAT": "DOUBLE PRECISION",
    "INT": "INTEGER",
    "INT8": "BIGINT",
    "INT4": "INTEGER",
    "BOOL": "BOOLEAN",
    "VARCHAR": "VARCHAR",
    "TEXT": "VARCHAR",
}


def helper_name(pg_type: str) -> str:
    """The try-cast helper function for a PostgreSQL type."""
    return "optimus_try_" + pg_type.replace(" ", "_")


class PostgresDialect(Dialect):
    name = "postgres"
    # Arrow reaches the server only through COPY; a heap table has no min/max statistics to skip by
    capabilities = Capabilities(scans_arrow_in_place=False, prunes_by_min_max=False, transactions=True)

    def try_cast(self, expr: str, sql_type: str) -> str:
        pg_type = _ALIASES.get(sql_type.strip().upper(), sql_type.strip().upper())
        if pg_type == "VARCHAR":
            return f"CAST({expr} AS VARCHAR)"
        helper = HELPER_TYPES.get(pg_type)
        if helper is None:
            raise WarehouseError(f"try_cast: no safe cast to {sql_type} on PostgreSQL")
        return f"{helper_name(helper)}(CAST({expr} AS text))"

    # -- text fragments for the edX TSV escapes (h2's block) -------------------------------------------
    def split_map_join(self, text: str, separator: str, part: Callable[[str], str], joiner: str) -> str:
        # regexp_split_to_table, not string_to_array: '' is one empty piece (an empty array there), as on DuckDB
        pattern = "".join(c if c.isalnum() else "\\" + c for c in separator)  # the separator, literally, as a regex
        return (
            f"(SELECT string_agg({part('_optimus_part')}, {literal(joiner)} ORDER BY _optimus_n) "
            f"FROM regexp_split_to_table({text}, {literal(pattern)}) WITH ORDINALITY AS _optimus_split(_optimus_part, _optimus_n))"
        )
