"""Copy an embedded DuckDB warehouse's tables into a PostgreSQL one (the storage half of `optimus copy`;
optimus/transfer.py adds the pipeline's DDL, so this module knows nothing of services).

The source is a DuckDB file, or a Spark warehouse read as its readers read it: DuckDB over the lake's
catalog (connect(read_only=True), no Spark), where each lake table is a view over its listed parts;
`source_tables` takes those and leaves out the lake's manifest, its own bookkeeping.

Every table is copied, in one PostgreSQL transaction: the framework's and the services' tables
are first created by their own DDL (`setup`, so keys, defaults and sequences are the real ones), tables
only the data created (edX raw tables, from DuckDB's raw schema into PostgreSQL's) are created
from DuckDB's column types, then the rows
stream through Arrow batches into COPY and the sequences move past the copied ids. The ledger
comes along, so an ingest after the copy ingests nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from optimus.errors import WarehouseError
from optimus.warehouse import lake
from optimus.warehouse.base import Warehouse
from optimus.warehouse.duckdb import DuckDBWarehouse
from optimus.warehouse.postgres import PostgresWarehouse

_SIMPLE = {
    "VARCHAR": "VARCHAR",
    "BIGINT": "BIGINT",
    "INTEGER": "INTEGER",
    "SMALLINT": "SMALLINT",
    "TINYINT": "SMALLINT",
    "UTINYINT": "SMALLINT",
    "USMALLINT": "INTEGER",
    "UINTEGER": "BIGINT",
    "UBIGINT": "NUMERIC",
    "HUGEINT": "NUMERIC",
    "UHUGEINT": "NUMERIC",
    "DOUBLE": "DOUBLE PRECISION",
    "FLOAT": "REAL",
    "BOOLEAN": "BOOLEAN",
    "DATE": "DATE",
    "TIMESTAMP": "TIMESTAMP",
    "TIMESTAMP_NS": "TIMESTAMP",
    "TIMESTAMP_MS": "TIMESTAMP",
    "TIMESTAMP_S": "TIMESTAMP",
    "TIMESTAMP WITH TIME ZONE": "TIMESTAMPTZ",
    "TIME": "TIME",
    "INTERVAL": "INTERVAL",
    "JSON": "JSON",
    "UUID": "UUID",
    "BLOB": "BYTEA",
}


def pg_type(duckdb_type: str) -> str:
    """The PostgreSQL column type for a DuckDB one (lists, structs and maps become JSON)."""
    t = duckdb_type.strip().upper()
    if t in _SIMPLE:
        return _SIMPLE[t]
    if re.fullmatch(r"DECIMAL\(\d+,\s*\d+\)", t):
        return t.replace("DECIMAL", "NUMERIC")
    if t.endswith("]") or t.startswith(("STRUCT", "MAP", "UNION")):
        return "JSON"
    return "VARCHAR"


@dataclass
class CopyReport:
    tables: dict[str, int] = field(default_factory=dict)  # table -> rows copied
    created: list[str] = field(default_factory=list)  # tables created from DuckDB's types


def copy_tables(
    src: Warehouse, dst: Warehouse, setup: Callable[[], object], progress: Callable[[str, int], None] | None = None
) -> CopyReport:
    """Copy every table of `src` (a DuckDB warehouse, or a lake's catalog) into `dst` (a PostgreSQL one, holding no warehouse
    yet); `setup` creates the destination's tables by their own DDL, inside the copy's transaction."""
    from optimus.warehouse import schema

    if not isinstance(src, DuckDBWarehouse) or not isinstance(dst, PostgresWarehouse):
        raise WarehouseError(f"a copy goes from a DuckDB warehouse into a PostgreSQL one, not from {src.url} into {dst.url}")
    if schema.current_version(dst) and dst.scalar("SELECT count(*) FROM ingest_files"):
        raise WarehouseError(
            f"{dst.url} schema {dst.schema!r} already holds a warehouse with ingested files; "
            "copy only into an empty schema (choose another with --schema, or drop this one)"
        )
    if schema.current_version(src) == 0:
        raise WarehouseError(f"{src.url} has never been ingested into; there is nothing to copy")
    version = schema.current_version(src)
    if version != schema.SCHEMA_VERSION:
        raise WarehouseError(
            f"{src.url} has schema version {version}, this Optimus writes {schema.SCHEMA_VERSION}; "
            "run 'optimus ingest' on it first (it migrates), then copy"
        )
    # (source schema, table, destination schema): Optimus's own tables, then the raw edX tables
    tables = [
        (schema_name, name, None if schema_name == "main" else dst.raw_schema)
        for schema_name, name in sorted(source_tables(src), key=lambda t: (t[0] != "main", t[1]))
    ]
    report = CopyReport()
    with dst.transaction():
        setup()  # the real DDL of the framework and every service (and the raw schema)
        for src_schema, table, dst_schema in tables:
            columns = src.query(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ? AND schema_name = ? ORDER BY column_index",
                [table, src_schema],
            )
            _ensure_table(dst, table, columns, report, dst_schema)
            target = f"{dst.quote(dst_schema)}.{dst.quote(table)}" if dst_schema else dst.quote(table)
            dst.execute(f"DELETE FROM {target}")
            names = ", ".join(src.quote(c) for c, _t in columns)
            with src._lock:
                reader = src.con.sql(f"SELECT {names} FROM {src.quote(src_schema)}.{src.quote(table)}").to_arrow_reader(65536)
                rows = dst.load_arrow(table, reader, schema=dst_schema)
            shown = table if dst_schema is None else f"{dst_schema}.{table}"
            report.tables[shown] = rows
            if progress:
                progress(shown, rows)
        _advance_sequences(dst)
    return report


def source_tables(src: DuckDBWarehouse) -> list[tuple[str, str]]:
    """(schema, table) of every table a copy takes, Optimus's own (main) and the raw edX ones. A lake's
    catalog (warehouse/lake.py) holds the ledger and the tables with keys; its lake tables are DuckDB
    views over their listed parts, and its manifest is the lake's bookkeeping, not data."""
    schemas = ("main", src.raw_schema)
    tables = src.query("SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT temporary AND schema_name IN (?, ?)", list(schemas))
    found = list(tables)
    if lake.is_catalog(src):
        found = [(s, t) for s, t in found if t not in lake.MANIFEST_TABLES]
        found += [(s, t) for s, t in lake.listed_tables(src) if s in schemas]
    return found


def _ensure_table(dst: PostgresWarehouse, table: str, columns: list[tuple[str, str]], report: CopyReport, schema: str | None) -> None:
    q = dst.quote
    target = f"{q(schema)}.{q(table)}" if schema else q(table)
    if not dst.table_exists(table, schema=schema):
        dst.execute(f"CREATE TABLE {target} ({', '.join(f'{q(c)} {pg_type(t)}' for c, t in columns)})")
        report.created.append(table if schema is None else f"{schema}.{table}")
        return
    existing = set(dst.columns(table, schema=schema))
    for name, duck_type in columns:
        if name not in existing:
            dst.execute(f"ALTER TABLE {target} ADD COLUMN {q(name)} {pg_type(duck_type)}")


def _advance_sequences(dst: PostgresWarehouse) -> None:
    """Each column defaulting to nextval(...) continues after the largest id copied."""
    for table, column, default in dst.query(
        "SELECT table_name, column_name, column_default FROM information_schema.columns "
        "WHERE table_schema = ? AND column_default LIKE 'nextval(%'",
        [dst.schema],
    ):
        sequence = re.search(r"nextval\('([^']+)'", default)
        if not sequence:
            continue
        top = dst.scalar(f"SELECT max({dst.quote(column)}) FROM {dst.quote(table)}")
        if top is not None:
            dst.execute("SELECT setval(CAST(? AS regclass), ?)", [sequence.group(1), int(top)])
