"""The lake of a Spark warehouse: tables as immutable Parquet parts, listed in a DuckDB catalog.

A lake table's rows live in files `<lake>/tables/<schema>/<table>/<uuid>...parquet` that are never
changed nor renamed once written (object stores have no atomic rename). The catalog (a DuckDB file,
`<lake>/_catalog.duckdb`) lists, in `lake_parts`, the parts each table holds, and in `lake_tables`
its declared columns and its schema part (a zero-row part written at CREATE/ALTER, so the table
always has its declared columns even with no rows). Each table is also a DuckDB view over exactly
its listed parts, re-created in the same catalog transaction that changes the list: the catalog's
commit is the atomic publish of new parts, and a part never listed (a crash, a rollback) is garbage,
removed by `sweep` when a writer opens the lake.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from optimus.warehouse.dialects.base import sql_string
from optimus.warehouse.duckdb import DuckDBWarehouse

MAIN = "main"  # the catalog's schema of Optimus's own tables (the raw edX tables have theirs)

_MANIFEST = [
    "CREATE TABLE IF NOT EXISTS lake_tables (schema_name VARCHAR NOT NULL, table_name VARCHAR NOT NULL, "
    "columns VARCHAR NOT NULL, schema_part VARCHAR NOT NULL, temporary BOOLEAN NOT NULL DEFAULT false)",
    "CREATE TABLE IF NOT EXISTS lake_parts (schema_name VARCHAR NOT NULL, table_name VARCHAR NOT NULL, "
    "path VARCHAR NOT NULL, rows BIGINT NOT NULL, added_at TIMESTAMP NOT NULL DEFAULT current_timestamp)",
    "CREATE TABLE IF NOT EXISTS lake_views (schema_name VARCHAR NOT NULL, view_name VARCHAR NOT NULL, definition VARCHAR NOT NULL)",
]
MANIFEST_TABLES = ("lake_tables", "lake_parts", "lake_views")


def is_catalog(con: DuckDBWarehouse) -> bool:
    """Whether a DuckDB file is a lake's catalog: it holds the manifest (a writer creates it at open)."""
    return con.table_exists("lake_tables")


def listed_tables(catalog: DuckDBWarehouse) -> list[tuple[str, str]]:
    """(schema, name) of every lake table but the TEMP ones: each is a DuckDB view in the catalog."""
    return [(r[0], r[1]) for r in catalog.query("SELECT schema_name, table_name FROM lake_tables WHERE NOT temporary")]


@dataclass(frozen=True)
class LakeTable:
    schema: str
    name: str
    columns: list[tuple[str, str]]  # (name, DuckDB type), in order
    schema_part: str  # relative to the lake
    temporary: bool = False  # a TEMP table of the connection that made it (dropped at its close, or at the next open)


def _safe(name: str) -> str:
    """A folder name for a table or schema name (names come from data: never a path as given)."""
    return name if re.fullmatch(r"[A-Za-z0-9_]{1,100}", name) else "_x" + name.encode().hex()[:200]


class Lake:
    """The manifest of a lake, kept in its catalog (a DuckDB warehouse, reached by composition)."""

    def __init__(self, root: Path, catalog: DuckDBWarehouse) -> None:
        self.root = root.absolute()
        self.catalog = catalog
        self.tables_dir = self.root / "tables"

    def ensure(self) -> None:
        """Create the manifest tables (a writer, at open)."""
        with self.catalog.transaction():
            for statement in _MANIFEST:
                self.catalog.execute(statement)

    # -- reading the manifest ---------------------------------------------------------------------
    def table(self, schema: str, name: str) -> LakeTable | None:
        rows = self.catalog.query(
            "SELECT columns, schema_part, temporary FROM lake_tables WHERE schema_name = ? AND table_name = ?", [schema, name]
        )
        if not rows:
            return None
        return LakeTable(schema, name, [(c, t) for c, t in json.loads(rows[0][0])], rows[0][1], bool(rows[0][2]))

    def view(self, schema: str, name: str) -> str | None:
        """The SQL defining a lake view (a view over lake tables), or None."""
        return self.catalog.scalar("SELECT definition FROM lake_views WHERE schema_name = ? AND view_name = ?", [schema, name])

    def parts(self, schema: str, name: str) -> list[tuple[Path, int]]:
        """The listed parts (absolute paths) and their rows."""
        rows = self.catalog.query(
            "SELECT path, rows FROM lake_parts WHERE schema_name = ? AND table_name = ? ORDER BY path", [schema, name]
        )
        return [(self.root / p, int(n)) for p, n in rows]

    def arrow_schema(self, columns: list[tuple[str, str]]) -> pa.Schema:
        """The Arrow schema of declared columns, as DuckDB types them."""
        q = self.catalog.quote
        listed = ", ".join(f"CAST(NULL AS {t}) AS {q(c)}" for c, t in columns)
        return self.catalog.query_arrow(f"SELECT {listed} LIMIT 0").schema

    # -- changing it (inside the caller's catalog transaction) -------------------------------------
    def new_part(self, schema: str, name: str, folder: bool = False) -> Path:
        """A fresh path for a part (or, folder=True, for a folder of parts a Spark job writes)."""
        path = self.tables_dir / _safe(schema) / _safe(name) / (uuid.uuid4().hex + ("" if folder else ".parquet"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def write_part(self, schema: str, name: str, data: pa.Table) -> tuple[Path, int]:
        path = self.new_part(schema, name)
        pq.write_table(data, path)
        return path, data.num_rows

    def create(self, schema: str, name: str, columns: list[tuple[str, str]], temporary: bool = False) -> None:
        part, _ = self.write_part(schema, name, self.arrow_schema(columns).empty_table())
        self.catalog.execute(
            "INSERT INTO lake_tables VALUES (?, ?, ?, ?, ?)", [schema, name, json.dumps(columns), self._relative(part), temporary]
        )
        self.refresh_view(schema, name)

    def set_columns(self, schema: str, name: str, columns: list[tuple[str, str]]) -> None:
        """ALTER: the new declared columns, with a new schema part (old parts read an added column as NULL)."""
        part, _ = self.write_part(schema, name, self.arrow_schema(columns).empty_table())
        self.catalog.execute(
            "UPDATE lake_tables SET columns = ?, schema_part = ? WHERE schema_name = ? AND table_name = ?",
            [json.dumps(columns), self._relative(part), schema, name],
        )
        self.refresh_view(schema, name)

    def change_parts(self, schema: str, name: str, add: list[tuple[Path, int]] = (), remove: list[Path] = ()) -> None:  # type: ignore[assignment]
        for path in remove:
            self.catalog.execute(
                "DELETE FROM lake_parts WHERE schema_name = ? AND table_name = ? AND path = ?", [schema, name, self._relative(path)]
            )
        added = [[schema, name, self._relative(p), n] for p, n in add if n]
        if added:
            self.catalog.executemany("INSERT INTO lake_parts (schema_name, table_name, path, rows) VALUES (?, ?, ?, ?)", added)
        if added or remove:
            self.refresh_view(schema, name)

    def temporary_tables(self) -> list[tuple[str, str]]:
        return [(r[0], r[1]) for r in self.catalog.query("SELECT schema_name, table_name FROM lake_tables WHERE temporary")]

    def drop(self, schema: str, name: str) -> None:
        for table in ("lake_tables", "lake_parts"):
            self.catalog.execute(f"DELETE FROM {table} WHERE schema_name = ? AND table_name = ?", [schema, name])
        self.catalog.execute(f"DROP VIEW IF EXISTS {self._view_name(schema, name)}")

    def add_view(self, schema: str, name: str, definition: str) -> None:
        self.catalog.execute("DELETE FROM lake_views WHERE schema_name = ? AND view_name = ?", [schema, name])
        self.catalog.execute("INSERT INTO lake_views VALUES (?, ?, ?)", [schema, name, definition])

    def drop_view(self, schema: str, name: str) -> None:
        self.catalog.execute("DELETE FROM lake_views WHERE schema_name = ? AND view_name = ?", [schema, name])

    def refresh_view(self, schema: str, name: str) -> None:
        """The table's DuckDB view over its schema part and listed parts, with the declared types."""
        table = self.table(schema, name)
        assert table is not None
        q = self.catalog.quote
        files = [self.root / table.schema_part] + [p for p, _ in self.parts(schema, name)]
        listed = ", ".join(sql_string(str(f)) for f in files)
        columns = ", ".join(f"CAST({q(c)} AS {t}) AS {q(c)}" for c, t in table.columns)
        temp = "TEMP " if table.temporary else ""  # a TEMP table's view is its connection's alone
        self.catalog.execute(
            f"CREATE OR REPLACE {temp}VIEW {self._view_name(schema, name)} AS SELECT {columns} FROM read_parquet([{listed}], union_by_name = true)"
        )

    def _view_name(self, schema: str, name: str) -> str:
        q = self.catalog.quote
        return q(name) if schema == MAIN else f"{q(schema)}.{q(name)}"

    def _relative(self, path: Path) -> str:
        return str(path.absolute().relative_to(self.root))

    # -- garbage -----------------------------------------------------------------------------------
    def sweep(self) -> int:
        """Remove every file under tables/ that no table lists (parts of a crashed or rolled-back
        write), Spark's checksums of listed parts kept; and the scratch folder. Returns files removed."""
        with self.catalog.transaction():  # TEMP tables of a connection that is gone
            for schema, name in self.temporary_tables():
                self.drop(schema, name)
        listed = {r[0] for r in self.catalog.query("SELECT path FROM lake_parts UNION ALL SELECT schema_part FROM lake_tables")}
        removed = 0
        if self.tables_dir.is_dir():
            for path in sorted(self.tables_dir.rglob("*"), reverse=True):
                if path.is_dir():
                    if not any(path.iterdir()):
                        path.rmdir()
                    continue
                rel = self._relative(path)
                crc_of = str(Path(rel).with_name(path.name[1:-4])) if path.name.startswith(".") and path.name.endswith(".crc") else None
                if rel in listed or (crc_of is not None and crc_of in listed):
                    continue
                path.unlink()
                removed += 1
        shutil.rmtree(self.root / "_tmp", ignore_errors=True)
        return removed
