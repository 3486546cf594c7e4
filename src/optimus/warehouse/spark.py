"""The Spark warehouse: a DuckDB catalog, a Parquet lake (warehouse/lake.py), Spark for the set work.

`warehouse = "spark:///lake"`: the catalog is the DuckDB file `<lake>/_catalog.duckdb` (a
DuckDBWarehouse, by composition). It holds the bookkeeping tables (the ledger, runs, anything
declared with a PRIMARY KEY or UNIQUE, which Parquet cannot keep), the TEMP tables made from them, the staging
relations of stage_tsv, and the lake's manifest. Every other table is a lake table: Parquet parts
listed in the manifest, and a DuckDB view over them.

Routing, decided per statement by its tables (parsed with SQLGlot):
- a statement whose tables are all catalog tables runs on DuckDB as written: the ledger's many
  small statements never reach Spark (nor does a DELETE or UPDATE of a catalog table that reads
  lake tables: DuckDB reads them through their views);
- a statement that reads or writes a lake table runs on Spark (its text may hold Spark dialect
  fragments, `wh.sql`); the catalog tables it reads are handed to Spark as temporary views from
  Arrow, lake tables as `spark.read.schema(declared).parquet(parts)`. A write's result becomes new
  parts (INSERT), or a copy-on-write of only the parts holding matching rows (DELETE, UPDATE: a
  part whose rows all match is just unlisted; UPDATE ... FROM as a LEFT JOIN of those parts); a catalog table written from lake data gets the
  rows through Arrow (INSERT ... SELECT); a TEMP table (without a key) is a lake table listed as
  temporary (a TEMP view in the catalog, dropped at close or at the next open), whatever it is
  made from: what reads it holds Spark fragments. Two lake writes need no Spark job: INSERT ...
  VALUES (literals, evaluated by DuckDB, written by the driver) and finding the parts a
  DELETE/UPDATE touches when its condition is plain comparisons (DuckDB reads the Parquet files).
- a statement DuckDB reads as Spark would (_duckdb_reads: plain nodes over tables the catalog has a
  view of) needs no Spark job either: a query's rows for the driver, an INSERT ... SELECT into a lake
  table that reads at most DRIVER_WRITE_ROWS lake rows (DuckDB writes the part), a DELETE's matching and kept rows. DuckDB reads the lake tables'
  views on this connection, so within a transaction it sees the parts written in it (docs/spark.md).
Statements are SQL as the Spark dialect writes it (dialects/spark.py): its literals read backslash
escapes (a quote doubled is read as standard SQL means it), and `?` parameters are inlined as its
literals. What SQLGlot writes back for Spark spells the shared SQL's meanings: standard type names
(VARCHAR, DOUBLE PRECISION, JSON: a JSON value is its text) as Spark's, and NULLS LAST where Spark
would sort NULLs first (DuckDB sorts them last either way).

transactions=True: every change of the part lists and the ledger happens inside one DuckDB
transaction of the catalog, so a file's new parts, its replaced parts and its ledger row commit
together or not at all (docs/architecture.md, "On an engine without multi-statement transactions":
the catalog is the store with transactions). Parts written by a rolled-back transaction are removed
at once; any other unlisted file at the next writer's open.
Readers (reader(), read_only_query, connect(read_only=True)) are DuckDB over the catalog's views:
untrusted SQL never runs on Spark SQL (its `reflect` and `java_method` reach the JVM).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from functools import reduce
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot
from sqlglot import exp
from sqlglot.dialects.spark import Spark
from sqlglot.tokens import TokenType

from optimus.config import Settings
from optimus.errors import WarehouseError
from optimus.warehouse.base import NestingTransactions, QueryAnswer, raw_schema_for
from optimus.warehouse.dialects.base import Dialect, sql_string
from optimus.warehouse.dialects.spark import SESSION_SQL, SparkDialect
from optimus.warehouse.duckdb import DuckDBWarehouse
from optimus.warehouse.lake import MAIN, MANIFEST_TABLES, Lake, LakeTable

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

# the framework's bookkeeping (warehouse/schema.py) and the manifest stay in the catalog, whatever they declare
CATALOG_TABLES = frozenset(
    {"schema_info", "ingest_files", "ingest_skipped", "service_runs", "service_run_changes", "course_ids", *MANIFEST_TABLES}
)


class _Statements(Spark):
    """SQLGlot's Spark dialect reading the shared SQL as this warehouse is given it: double-quoted
    identifiers; string literals as Spark reads them (backslash escapes: SparkDialect.literal writes
    every literal that holds a backslash or a quote) and a quote doubled inside as standard SQL means
    it (Spark would read `'it''s'` as two literals); NULLs sorted last in both directions, as DuckDB
    sorts them (the generated Spark SQL says NULLS LAST where Spark would put them first); and
    TIMESTAMP without a zone (the session's spark.sql.timestampType, and DuckDB's and PostgreSQL's)."""

    NULL_ORDERING = "nulls_are_last"

    class Tokenizer(Spark.Tokenizer):
        QUOTES = ["'"]
        IDENTIFIERS = ['"', "`"]
        STRING_ESCAPES = ["\\", "'"]
        KEYWORDS = {**Spark.Tokenizer.KEYWORDS, "TIMESTAMP": TokenType.TIMESTAMP}


def lake_reader(settings: Settings) -> DuckDBWarehouse:
    """A read-only connection to a Spark warehouse: DuckDB over its catalog, the lake readable."""
    lake = settings.lake_path()
    assert lake is not None
    return DuckDBWarehouse(settings, read_only=True, lake_folders=[lake.absolute() / "tables"])


def spark_type(duckdb_type: str) -> str:
    """A declared (DuckDB) column type in Spark's DDL (JSON is kept as its text)."""
    built = exp.DataType.build(duckdb_type, dialect="duckdb")
    if built.this == exp.DataType.Type.JSON:
        return "STRING"
    return built.sql("spark")


def duckdb_type(spark_simple: str) -> str:
    """A Spark column type (simpleString) as the catalog declares it."""
    if spark_simple == "void":
        return "VARCHAR"
    return exp.DataType.build(spark_simple, dialect="spark").sql("duckdb")


class SparkWarehouse(NestingTransactions):
    """A lake of Parquet tables computed by Spark, listed in a DuckDB catalog opened by one writer."""

    sql: Dialect = SparkDialect()
    capabilities = sql.capabilities
    raw_schema = raw_schema_for(None)

    def __init__(self, settings: Settings, outside_bytes: int = 0, also_allowed: Sequence[Path] = ()) -> None:
        lake = settings.lake_path()
        assert lake is not None
        self.url = settings.warehouse_url
        self.master = settings.spark_master
        (lake / "tables").mkdir(parents=True, exist_ok=True)
        self.catalog = DuckDBWarehouse(
            settings, outside_bytes=outside_bytes, also_allowed=also_allowed, lake_folders=[lake.absolute() / "tables"]
        )
        self.lake = Lake(lake, self.catalog)
        try:
            self.lake.ensure()
            self.lake.sweep()
        except BaseException:
            self.catalog.close()
            raise
        self._spark: SparkSession | None = None  # started at the first statement that needs it
        self._lock = self.catalog._lock  # a transaction holds the catalog's (one writer)
        self._written: list[Path] = []  # parts written in the open transaction (removed if it rolls back)
        self._views: set[str] = set()
        # what each registered view holds now (_register: a view still holding it is not sent again)
        self._registered: dict[str, tuple[Any, ...]] = {}
        self._catalog_versions: dict[tuple[str, str], int] = {}  # bumped at each change of a catalog table
        self._catalog_epoch = 0  # bumped when a change cannot be told apart (a rollback, a statement not parsed)

    @property
    def spark_started(self) -> bool:
        """Whether this connection has needed Spark yet (the ledger's statements never do)."""
        return self._spark is not None

    # -- Spark ------------------------------------------------------------------------------------
    @property
    def spark(self) -> SparkSession:
        if self._spark is None:
            from optimus.warehouse.spark_session import spark_session

            session = spark_session(self.master)
            for statement in SESSION_SQL:  # functions the shared SQL calls that Spark lacks under that name
                session.sql(statement)
            self._spark = session
        return self._spark

    def _lake_frame(self, table: LakeTable, parts: Sequence[Path] | None = None, with_part: bool = False) -> DataFrame:
        """A lake table (or some of its parts) as a Spark DataFrame of the declared columns."""
        ddl = ", ".join(f"{_tick(c)} {spark_type(t)}" for c, t in table.columns)
        files = (
            [self.lake.root / table.schema_part] + [p for p, _ in self.lake.parts(table.schema, table.name)]
            if parts is None
            else list(parts)
        )
        frame = self.spark.read.schema(ddl).parquet(*[str(f) for f in files])
        if with_part:
            frame = frame.select("*", frame["_metadata.file_path"].alias("_optimus_part"))
        return frame

    def _catalog_frame(self, schema: str, name: str) -> DataFrame:
        data = self.catalog.query_arrow(f"SELECT * FROM {self._qualified(schema, name)}")
        return self.spark.createDataFrame(data) if data.num_rows else self.spark.createDataFrame([], _spark_schema(data.schema))

    def _register(self, view: str, schema: str, name: str, arrow: pa.Table | None) -> None:
        """The Spark temporary view `view` standing for a table, registered unless it already holds what
        the table holds now: a lake table's listed parts (immutable files), a catalog table's version
        (bumped by every change this connection makes to it: _catalog_changed). A catalog table is sent
        as Arrow, so each change costs one copy, not each statement reading it."""
        signature: tuple[Any, ...] | None
        table = self.lake.table(schema, name)
        if name == "arrow_block" and schema == MAIN and arrow is not None:
            frame, signature = (
                (self.spark.createDataFrame(arrow) if arrow.num_rows else self.spark.createDataFrame([], _spark_schema(arrow.schema))),
                None,
            )
        elif table is not None:
            files = [self.lake.root / table.schema_part] + [p for p, _ in self.lake.parts(schema, name)]
            signature = ("lake", tuple(table.columns), tuple(files))
            if self._registered.get(view) == signature:
                return
            frame = self._lake_frame(table, files)
        elif (definition := self.lake.view(schema, name)) is not None:
            parsed = _parse(definition)
            assert isinstance(parsed, exp.Create) and parsed.expression is not None
            frame, signature = self.spark.sql(self._for_spark(parsed.expression, arrow).sql(dialect="spark")), None
        else:
            signature = ("catalog", self._catalog_epoch, self._catalog_versions.get((schema, name), 0))
            if name in MANIFEST_TABLES or self._registered.get(view) != signature:
                frame = self._catalog_frame(schema, name)
            else:
                return
        frame.createOrReplaceTempView(view)
        self._views.add(view)
        if signature is None:
            self._registered.pop(view, None)
        else:
            self._registered[view] = signature

    def _catalog_changed(self, stmt: exp.Expression | None = None, table: tuple[str, str] | None = None) -> None:
        """A catalog table changed (`table`, or the one `stmt` writes): Spark's copy of it is stale."""
        if table is not None:
            self._catalog_versions[table] = self._catalog_versions.get(table, 0) + 1
            return
        if isinstance(stmt, exp.Query) and not any(isinstance(c.this, exp.DML) for c in stmt.find_all(exp.CTE)):
            return  # a query changes nothing
        written = [] if stmt is None else (stmt.args.get("tables") or [stmt.this]) if isinstance(stmt, exp.Drop) else [stmt.this]
        targets = [t.this if isinstance(t, exp.Schema) else t for t in written]
        if isinstance(stmt, (exp.Insert, exp.Delete, exp.Update, exp.Create, exp.Alter, exp.Drop)) and all(
            isinstance(t, exp.Table) for t in targets
        ):
            for target in targets:
                self._catalog_changed(table=(target.db or MAIN, target.name))
        else:
            self._catalog_epoch += 1

    def _for_spark(self, node: exp.Expression, arrow: pa.Table | None = None, skip: exp.Table | None = None) -> exp.Expression:
        """`node` with each table it reads replaced by a Spark temporary view of it (registered now)."""
        node = node.copy()
        ctes = {c.alias for c in node.find_all(exp.CTE)}
        for cte in node.find_all(exp.CTE):  # Spark has no [NOT] MATERIALIZED: a planner hint, not a meaning
            cte.set("materialized", None)
        for select in list(node.find_all(exp.Select)):
            _lateral_views(select)
        for kind in list(node.find_all(exp.DataType)):  # a JSON value is its text (SQLGlot would write to_json)
            if kind.this == exp.DataType.Type.JSON:
                kind.replace(exp.DataType.build("STRING", dialect="spark"))
        for table in list(node.find_all(exp.Table)):
            if not isinstance(table.this, exp.Identifier) or (table.name in ctes or table.name in self._views) and not table.db:
                continue
            schema, name = table.db or MAIN, table.name
            view = _view_name(schema, name)
            self._register(view, schema, name, arrow)
            alias = table.args.get("alias") or exp.TableAlias(this=exp.to_identifier(name))
            table.replace(exp.Table(this=exp.to_identifier(view), alias=alias))
        return node

    def _run(self, query: exp.Expression, arrow: pa.Table | None = None) -> DataFrame:
        return self.spark.sql(self._for_spark(query, arrow).sql(dialect="spark"))

    def _write(self, frame: DataFrame, table: LakeTable, given: Sequence[str] | None = None) -> list[tuple[Path, int]]:
        """The frame's rows (columns `given`, else the declared ones, by position) as new parts of the table."""
        names = list(given) if given is not None else [c for c, _ in table.columns]
        if len(frame.columns) != len(names):
            raise WarehouseError(f"{table.name}: {len(names)} columns named, {len(frame.columns)} given")
        frame = frame.toDF(*[f"_c{i}" for i in range(len(names))])
        position = {n: i for i, n in enumerate(names)}
        frame = frame.selectExpr(
            *[f"CAST({f'_c{position[c]}' if c in position else 'NULL'} AS {spark_type(t)}) AS {_tick(c)}" for c, t in table.columns]
        )
        folder = self.lake.new_part(table.schema, table.name, folder=True)
        self._written.append(folder)
        frame.write.parquet(str(folder))
        parts = []
        for file in sorted(folder.glob("*.parquet")):
            rows = pq.read_metadata(file).num_rows
            if rows:
                parts.append((file, rows))
            else:
                file.unlink()
        return parts

    # -- routing -----------------------------------------------------------------------------------
    def _kind(self, schema: str, name: str) -> str:
        if name in CATALOG_TABLES and schema == MAIN:
            return "catalog"
        if self.lake.table(schema, name) is not None:
            return "lake"
        if self.lake.view(schema, name) is not None:
            return "view"
        return "catalog"

    def _reads_lake(self, node: exp.Expression) -> bool:
        return any(self._kind(schema, name) != "catalog" for schema, name in _tables_read(node))

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self._statement(sql, params, None, rows=False)

    def _statement(self, sql: str, params: Sequence[Any], arrow: pa.Table | None, rows: bool, named: bool = True) -> pa.Table | None:
        """Run one statement where it belongs (see the module's docstring); with rows=True, its rows as
        Arrow (named=False: read by position, so its columns' names need not be Spark's)."""
        stmt = _parse(sql)
        if stmt is None or not self._needs_spark(stmt, arrow):
            self._catalog_changed(stmt)
            if arrow is not None:
                self.catalog.execute_over_arrow(sql, arrow)
                return None
            if rows:
                return self.catalog.query_arrow(sql, params)
            self.catalog.execute(sql, params)
            return None
        if params:
            stmt = _parse(_inline(sql, params))
            assert stmt is not None
        if rows and arrow is None and isinstance(stmt, exp.Query) and self._duckdb_reads(stmt, named=named):
            # rows for the driver that DuckDB reads alike: no Spark job (see the module's docstring)
            return self.catalog.query_arrow(stmt.sql(dialect="duckdb"))
        if isinstance(stmt, exp.Query) and any(isinstance(c.this, exp.Insert) for c in stmt.find_all(exp.CTE)):
            with self.transaction():
                return self._run(self._returning(stmt, arrow), arrow).toArrow()
        if isinstance(stmt, exp.Query):
            return self._run(stmt, arrow).toArrow()
        target = stmt.this
        if (
            isinstance(stmt, (exp.Delete, exp.Update))
            and isinstance(target, exp.Table)
            and self._kind(target.db or MAIN, target.name) == "catalog"
        ):
            # a bookkeeping row changed by what lake tables hold: DuckDB reads them through their views
            self._catalog_changed(stmt)
            self.catalog.execute(sql, params)
            return None
        with self.transaction():
            self._change(stmt, sql, arrow)
        return None

    def _duckdb_reads(self, node: exp.Expression, named: bool = False, columns: int | None = None) -> bool:
        """Whether DuckDB reads `node` (a query, or a condition) as Spark would: only nodes both engines
        read alike (_READABLE), over tables the catalog can read (a catalog table, a lake table's view,
        a lake view with a DuckDB view of a readable definition). named: its columns' names are Spark's
        too (each a column or an alias); columns: it gives that many columns (no `*`)."""
        for part in node.walk():
            if not isinstance(part, _READABLE):
                return False
            if isinstance(part, exp.TryCast) and not (isinstance(part.this, exp.Literal) and part.to.this in _DATES):
                return False  # (a date or time literal, as a parameter is inlined, is read as a TRY_CAST)
            if isinstance(part, exp.DataType) and part.this == exp.DataType.Type.JSON:
                return False  # a JSON value is its text on Spark, a JSON value on DuckDB
        if named or columns is not None:
            if not isinstance(node, exp.Select):
                return False
            if named and not all(isinstance(e, (exp.Column, exp.Alias)) for e in node.expressions):
                return False
            if columns is not None and (len(node.expressions) != columns or any(isinstance(e, exp.Star) for e in node.expressions)):
                return False
        for schema, name in _tables_read(node):
            if name == "arrow_block" and schema == MAIN:
                return False
            if self._kind(schema, name) == "view":
                definition = _parse(self.lake.view(schema, name) or "")
                if not (
                    isinstance(definition, exp.Create)
                    and definition.expression is not None
                    and self._duckdb_reads(definition.expression)
                    and self.catalog.scalar(
                        "SELECT count(*) FROM duckdb_views() WHERE view_name = ? AND schema_name = ? AND NOT internal", [name, schema]
                    )
                ):
                    return False
        return True

    def _lake_rows_read(self, node: exp.Expression) -> float:
        """The rows of the lake tables `node` reads, from the catalog's part counts (a lake view's: not
        counted, so unbounded)."""
        rows = 0
        for schema, name in _tables_read(node):
            kind = self._kind(schema, name)
            if kind == "view":
                return float("inf")
            if kind == "lake":
                rows += sum(n for _, n in self.lake.parts(schema, name))
        return rows

    def _needs_spark(self, stmt: exp.Expression, arrow: pa.Table | None) -> bool:
        if self._reads_lake(stmt):
            return True
        if isinstance(stmt, exp.Create) and (stmt.kind or "").upper() == "TABLE":
            return self._new_lake_table(stmt)
        return False

    def _new_lake_table(self, stmt: exp.Create) -> bool:
        target = stmt.this.this if isinstance(stmt.this, exp.Schema) else stmt.this
        assert isinstance(target, exp.Table)
        if target.name in CATALOG_TABLES and not target.db:
            return False
        return not any(isinstance(c, (exp.PrimaryKeyColumnConstraint, exp.UniqueColumnConstraint, exp.PrimaryKey)) for c in stmt.walk())

    def _change(self, stmt: exp.Expression, sql: str, arrow: pa.Table | None) -> None:
        if isinstance(stmt, exp.Insert):
            self._insert(stmt, arrow)
        elif isinstance(stmt, exp.Create):
            self._create(stmt, sql, arrow)
        elif isinstance(stmt, exp.Delete):
            self._delete(stmt, arrow)
        elif isinstance(stmt, exp.Update):
            self._update(stmt, arrow)
        elif isinstance(stmt, exp.Alter):
            self._alter(stmt)
        elif isinstance(stmt, exp.Drop):
            self._drop(stmt, sql)
        else:
            raise WarehouseError(f"the Spark warehouse cannot run this statement on a lake table: {sql[:200]}")

    # -- the statements on lake tables --------------------------------------------------------------
    def _returning(self, query: exp.Expression, arrow: pa.Table | None) -> exp.Expression:
        """`WITH x AS (INSERT ... RETURNING cols) SELECT ... FROM x`: the insert is made, and x is read
        from the parts it added (the rows it stored), as a temporary view."""
        query = query.copy()
        for cte in list(query.find_all(exp.CTE)):
            insert = cte.this
            if not isinstance(insert, exp.Insert):
                continue
            returning = insert.args.get("returning")
            insert.set("returning", None)
            target, _ = _target(insert.this)
            table = self._lake_target(target, insert)
            added = self._insert(insert, arrow)
            frame = self._lake_frame(table, [table_part for table_part, _ in added] or [self.lake.root / table.schema_part])
            if returning is not None:
                frame = frame.selectExpr(*[e.sql(dialect="spark") for e in returning.expressions])
            view = _view_name("returning", cte.alias)
            frame.createOrReplaceTempView(view)
            self._views.add(view)
            for ref in list(query.find_all(exp.Table)):
                if ref.name == cte.alias and not ref.db:
                    ref.replace(
                        exp.Table(
                            this=exp.to_identifier(view), alias=ref.args.get("alias") or exp.TableAlias(this=exp.to_identifier(cte.alias))
                        )
                    )
            cte.pop()
        with_ = query.args.get("with_") or query.args.get("with")
        if with_ is not None and not with_.expressions:
            with_.pop()
        return query

    def _insert(self, stmt: exp.Insert, arrow: pa.Table | None) -> list[tuple[Path, int]]:
        target, given = _target(stmt.this)
        source = stmt.expression
        assert source is not None
        kind = self._kind(target.db or MAIN, target.name)
        if kind != "lake":  # a catalog table filled from lake data: the rows come through Arrow
            self._catalog_changed(stmt)
            rows = self._run(source, arrow).toArrow()
            cols = f" ({', '.join(self.quote(c) for c in given)})" if given else ""
            self.catalog.execute_over_arrow(
                f"INSERT INTO {self._qualified(target.db or MAIN, target.name)}{cols} SELECT * FROM arrow_block", rows
            )
            return []
        if stmt.args.get("conflict") or stmt.args.get("alternative"):
            raise WarehouseError(f"{target.name}: a lake table has no keys (no ON CONFLICT, no INSERT OR REPLACE)")
        table = self.lake.table(target.db or MAIN, target.name)
        assert table is not None
        if isinstance(source, exp.Values):  # literals: no Spark job for a few rows
            data = self.catalog.query_arrow(source.sql(dialect="duckdb"))
            return self._load(table, data.rename_columns(given or [c for c, _ in table.columns][: data.num_columns]))
        names = list(given) if given is not None else [c for c, _ in table.columns]
        if arrow is None and self._lake_rows_read(source) <= DRIVER_WRITE_ROWS and self._duckdb_reads(source, columns=len(names)):
            return self._copy_by_catalog(table, source.sql(dialect="duckdb"), names, add=True)
        added = self._write(self._run(source, arrow), table, given)
        self.lake.change_parts(table.schema, table.name, add=added)
        return added

    def _create(self, stmt: exp.Create, sql: str, arrow: pa.Table | None) -> None:
        kind = (stmt.kind or "").upper()
        schema_node = stmt.this if isinstance(stmt.this, exp.Schema) else None
        target = schema_node.this if schema_node is not None else stmt.this
        assert isinstance(target, exp.Table)
        schema, name = target.db or MAIN, target.name
        exists = self._kind(schema, name) != "catalog" or self.catalog.table_exists(name, None if schema == MAIN else schema)
        if exists and stmt.args.get("exists"):
            return
        if kind == "VIEW":  # Spark reads it as its definition; DuckDB's readers (the API) as a view of the catalog
            assert stmt.expression is not None
            self.lake.add_view(schema, name, sql)
            self.catalog.execute(f"CREATE OR REPLACE VIEW {self._qualified(schema, name)} AS {stmt.expression.sql(dialect='duckdb')}")
            return
        if exists and stmt.args.get("replace"):
            self._drop(exp.Drop(kind="TABLE", exists=True, tables=[target]), "")
            exists = False
        if not _temporary(stmt) and not self._new_lake_table(stmt):  # a catalog table made from lake data
            assert stmt.expression is not None
            rows = self._run(stmt.expression, arrow).toArrow()
            self._catalog_changed(stmt)
            self.catalog.execute_over_arrow(f"CREATE TABLE {self._qualified(schema, name)} AS SELECT * FROM arrow_block", rows)
            return
        if exists:
            raise WarehouseError(f"table {name} already exists")
        if schema_node is not None:
            columns = [(c.name, c.args["kind"].sql("duckdb")) for c in schema_node.expressions if isinstance(c, exp.ColumnDef)]
            self.lake.create(schema, name, columns, temporary=_temporary(stmt))
            if stmt.expression is not None:
                raise WarehouseError("CREATE TABLE with both columns and AS is not supported")
            return
        assert stmt.expression is not None
        frame = self._run(stmt.expression, arrow)
        columns = [(f.name, duckdb_type(f.dataType.simpleString())) for f in frame.schema.fields]
        # a TEMP table from lake data stays in the lake (it may be as big as the events), listed as temporary
        self.lake.create(schema, name, columns, temporary=_temporary(stmt))
        created = self.lake.table(schema, name)
        assert created is not None
        self.lake.change_parts(schema, name, add=self._write(frame, created))

    def _matching_parts(
        self, table: LakeTable, alias: str, where: exp.Expression | None, arrow: pa.Table | None
    ) -> tuple[list[Path], list[Path]]:
        """The table's parts whose rows all match `where`, and those where only some do."""
        parts = self.lake.parts(table.schema, table.name)
        if not parts or where is None:
            return [p for p, _ in parts], []
        matched = self._matching_by_catalog(parts, alias, where)
        if matched is None:
            matched = self._matching_by_spark(table, parts, alias, where, arrow)
        full = [p for p, n in parts if matched.get(p.absolute()) == n]
        partial = [p for p, n in parts if 0 < matched.get(p.absolute(), 0) < n]
        return full, partial

    def _copy_by_catalog(
        self, table: LakeTable, source: str, names: Sequence[str], add: bool = False, remove: Sequence[Path] = ()
    ) -> list[tuple[Path, int]]:
        """The rows of `source` (DuckDB's SQL, columns `names` by position) written by DuckDB as a new part
        with the declared columns and types, without a Spark job (JSON as its text, as Spark keeps it);
        add=True: listed at once (and `remove` unlisted)."""
        q = self.quote
        position = {n: i for i, n in enumerate(names)}
        columns = ", ".join(
            f"CAST({f'_c{position[c]}' if c in position else 'NULL'} AS {'VARCHAR' if t.upper() == 'JSON' else t}) AS {q(c)}"
            for c, t in table.columns
        )
        aliases = ", ".join(f"_c{i}" for i in range(len(names)))
        part = self.lake.new_part(table.schema, table.name)
        self._written.append(part)
        self.catalog.execute(
            f"COPY (SELECT {columns} FROM ({source}) AS _optimus_source({aliases})) TO {sql_string(str(part))} (FORMAT parquet)"
        )
        rows = pq.read_metadata(part).num_rows
        added = [(part, rows)] if rows else []
        if not rows:
            part.unlink()
        if add:
            self.lake.change_parts(table.schema, table.name, add=added, remove=list(remove))
        return added

    def _matching_by_catalog(self, parts: list[tuple[Path, int]], alias: str, where: exp.Expression) -> dict[Path, int] | None:
        """Matching rows per part, counted by DuckDB when it reads the condition as Spark would
        (_duckdb_reads: `file_id = 7`, `line NOT IN (SELECT line FROM event_files ...)`), without a
        Spark job; None for any other condition."""
        if not self._duckdb_reads(where):
            return None
        listed = ", ".join(sql_string(str(p)) for p, _ in parts)
        rows = self.catalog.query(
            f"SELECT filename, count(*) FROM read_parquet([{listed}], union_by_name = true, filename = true) AS {self.quote(alias)} "
            f"WHERE {where.sql(dialect='duckdb')} GROUP BY filename"
        )
        return {Path(name).absolute(): int(n) for name, n in rows}

    def _matching_by_spark(
        self, table: LakeTable, parts: list[tuple[Path, int]], alias: str, where: exp.Expression, arrow: pa.Table | None
    ) -> dict[Path, int]:
        view = _view_name(table.schema, table.name) + "_target"
        self._lake_frame(table, [p for p, _ in parts], with_part=True).createOrReplaceTempView(view)
        self._views.add(view)
        cond = self._for_spark(where, arrow).sql(dialect="spark")
        return {
            _local_path(r[0]): int(r[1])
            for r in self.spark.sql(
                f"SELECT _optimus_part, count(*) FROM {view} AS {_tick(alias)} WHERE {cond} GROUP BY _optimus_part"
            ).collect()
        }

    def _delete(self, stmt: exp.Delete, arrow: pa.Table | None) -> None:
        target = stmt.this
        assert isinstance(target, exp.Table)
        table = self._lake_target(target, stmt)
        alias = target.alias or target.name
        where = stmt.args.get("where")
        cond = where.this if where is not None else None
        full, partial = self._matching_parts(table, alias, cond, arrow)
        added: list[tuple[Path, int]] = []
        if partial and cond is not None and arrow is None and self._duckdb_reads(cond):  # the rows kept, written by DuckDB
            listed = ", ".join(sql_string(str(p)) for p in [self.lake.root / table.schema_part, *partial])
            names = [c for c, _ in table.columns]
            kept = ", ".join(self.quote(c) for c in names)
            added = self._copy_by_catalog(
                table,
                f"SELECT {kept} FROM read_parquet([{listed}], union_by_name = true) AS {self.quote(alias)} "
                f"WHERE NOT coalesce(({cond.sql(dialect='duckdb')}), false)",
                names,
            )
        elif partial:
            assert cond is not None
            view = _view_name(table.schema, table.name) + "_rewrite"
            self._lake_frame(table, partial).createOrReplaceTempView(view)
            self._views.add(view)
            keep = self._for_spark(cond, arrow).sql(dialect="spark")
            columns = ", ".join(_tick(c) for c, _ in table.columns)
            added = self._write(
                self.spark.sql(f"SELECT {columns} FROM {view} AS {_tick(alias)} WHERE NOT coalesce(({keep}), false)"), table
            )
        self.lake.change_parts(table.schema, table.name, add=added, remove=full + partial)

    def _update(self, stmt: exp.Update, arrow: pa.Table | None) -> None:
        target = stmt.this
        assert isinstance(target, exp.Table)
        table = self._lake_target(target, stmt)
        alias = target.alias or target.name
        where = stmt.args.get("where")
        cond = where.this if where is not None else None
        sets = {}
        for assignment in stmt.expressions:
            assert isinstance(assignment, exp.EQ)
            sets[assignment.this.name] = self._for_spark(assignment.expression, arrow).sql(dialect="spark")
        source = stmt.args.get("from_") or stmt.args.get("from")
        if source is not None:
            self._update_from(table, alias, sets, source.this, cond, arrow)
            return
        full, partial = self._matching_parts(table, alias, cond, arrow)
        if not full and not partial:
            return
        test = f"coalesce(({self._for_spark(cond, arrow).sql(dialect='spark')}), false)" if cond is not None else "true"
        view = _view_name(table.schema, table.name) + "_rewrite"
        self._lake_frame(table, full + partial).createOrReplaceTempView(view)
        self._views.add(view)
        columns = ", ".join(
            f"CASE WHEN {test} THEN {sets[c]} ELSE {_tick(c)} END AS {_tick(c)}" if c in sets else _tick(c) for c, _ in table.columns
        )
        added = self._write(self.spark.sql(f"SELECT {columns} FROM {view} AS {_tick(alias)}"), table)
        self.lake.change_parts(table.schema, table.name, add=added, remove=full + partial)

    def _update_from(
        self,
        table: LakeTable,
        alias: str,
        sets: dict[str, str],
        relation: exp.Expression,
        cond: exp.Expression | None,
        arrow: pa.Table | None,
    ) -> None:
        """`UPDATE t SET ... FROM r WHERE cond`: the copy-on-write of the parts holding a row that joins
        `r` (found by a Spark job over the parts the condition's plain tests of t's own columns leave,
        counted by DuckDB), written as `t LEFT JOIN r ON cond`: a joined row takes the SET values, the
        rest are kept. A row that joins two rows of `r` is an error here (PostgreSQL would take one of
        them, which one unspecified): the rewrite would hold more rows than it replaces."""
        if not isinstance(relation, (exp.Table, exp.Subquery)) or relation.args.get("joins"):
            raise WarehouseError(f"{table.name}: UPDATE ... FROM on a lake table takes one table or subquery, not {relation.sql()[:100]}")
        other = relation.alias_or_name
        if isinstance(relation, exp.Table):  # as a subquery: _for_spark replaces the tables inside a node
            relation = exp.select("*").from_(relation.copy()).subquery(other)
        parts = self.lake.parts(table.schema, table.name)
        conjuncts = list(cond.flatten()) if isinstance(cond, exp.And) else [cond]
        own = [c for c in conjuncts if isinstance(c, exp.Expression) and _only_of(c, alias)]
        if parts and own:  # DuckDB narrows the parts first, by the tests of t's own columns (file_id = 7)
            counted = self._matching_by_catalog(parts, alias, reduce(lambda a, b: exp.And(this=a, expression=b), own))
            if counted is not None:
                parts = [(p, n) for p, n in parts if counted.get(p.absolute())]
        if not parts:
            return
        on = self._for_spark(cond, arrow).sql(dialect="spark") if cond is not None else "true"
        relation_sql = self._for_spark(relation, arrow).sql(dialect="spark")  # keeps its alias (and column names)
        view = _view_name(table.schema, table.name) + "_target"
        self._lake_frame(table, [p for p, _ in parts], with_part=True).createOrReplaceTempView(view)
        self._views.add(view)
        hit = {
            _local_path(r[0])
            for r in self.spark.sql(
                f"SELECT DISTINCT {_tick(alias)}._optimus_part FROM {view} AS {_tick(alias)} "
                f"JOIN (SELECT * FROM {relation_sql}) AS {_tick(other)} ON {on}"
            ).collect()
        }
        parts = [(p, n) for p, n in parts if p.absolute() in hit]
        if not parts:
            return
        view = _view_name(table.schema, table.name) + "_rewrite"
        self._lake_frame(table, [p for p, _ in parts]).createOrReplaceTempView(view)
        self._views.add(view)
        matched = f"{_tick(other)}.`_optimus_hit`"
        columns = ", ".join(
            f"CASE WHEN {matched} THEN {sets[c]} ELSE {_tick(alias)}.{_tick(c)} END AS {_tick(c)}"
            if c in sets
            else f"{_tick(alias)}.{_tick(c)}"
            for c, _ in table.columns
        )
        added = self._write(
            self.spark.sql(
                f"SELECT {columns} FROM {view} AS {_tick(alias)} "
                f"LEFT JOIN (SELECT *, true AS `_optimus_hit` FROM {relation_sql}) AS {_tick(other)} ON {on}"
            ),
            table,
        )
        if sum(n for _, n in added) != sum(n for _, n in parts):
            raise WarehouseError(
                f"{table.name}: UPDATE ... FROM joins a row to more than one row of {other}: which one sets it is undefined"
            )
        self.lake.change_parts(table.schema, table.name, add=added, remove=[p for p, _ in parts])

    def _alter(self, stmt: exp.Alter) -> None:
        target = stmt.this
        assert isinstance(target, exp.Table)
        table = self._lake_target(target, stmt)
        columns = list(table.columns)
        for action in stmt.args.get("actions") or []:
            if isinstance(action, exp.ColumnDef):
                if any(c == action.name for c, _ in columns):
                    if action.args.get("exists"):
                        continue
                    raise WarehouseError(f"{table.name}: column {action.name} already exists")
                columns.append((action.name, action.args["kind"].sql("duckdb")))
            elif isinstance(action, exp.Drop) and (action.args.get("kind") or "").upper() == "COLUMN":
                columns = [(c, t) for c, t in columns if c != action.this.name]
            else:
                raise WarehouseError(f"{table.name}: ALTER TABLE {action.sql()} is not supported on a lake table")
        if columns != table.columns:
            self.lake.set_columns(table.schema, table.name, columns)

    def _drop(self, stmt: exp.Drop, sql: str) -> None:
        kind = (stmt.kind or "TABLE").upper()
        exists = " IF EXISTS" if stmt.args.get("exists") else ""
        for target in stmt.args.get("tables") or [stmt.this]:
            assert isinstance(target, exp.Table)
            schema, name = target.db or MAIN, target.name
            where = self._kind(schema, name)
            if where == "lake":
                self.lake.drop(schema, name)
            elif where == "view":
                self.lake.drop_view(schema, name)
                self.catalog.execute(f"DROP VIEW IF EXISTS {self._qualified(schema, name)}")
            else:
                self._catalog_changed(table=(schema, name))
                self.catalog.execute(f"DROP {kind}{exists} {self._qualified(schema, name)}")

    def _lake_target(self, target: exp.Table, stmt: exp.Expression) -> LakeTable:
        table = self.lake.table(target.db or MAIN, target.name)
        if table is None:
            raise WarehouseError(f"the Spark warehouse cannot change {target.name} from lake data: {stmt.sql()[:200]}")
        return table

    def _load(self, table: LakeTable, data: pa.Table) -> list[tuple[Path, int]]:
        """Arrow rows as a new part of a lake table, by column name (missing columns NULL)."""
        schema = self.lake.arrow_schema(table.columns)
        columns = [data.column(f.name).cast(f.type) if f.name in data.column_names else pa.nulls(data.num_rows, f.type) for f in schema]
        if not data.num_rows:
            return []
        part = self.lake.write_part(table.schema, table.name, pa.Table.from_arrays(columns, schema=schema))
        self._written.append(part[0])
        self.lake.change_parts(table.schema, table.name, add=[part])
        return [part]

    # -- the protocol --------------------------------------------------------------------------------
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [list(r) for r in rows]
        if not rows:
            return
        stmt = _parse(sql)
        if stmt is None or not self._needs_spark(stmt, None):
            self._catalog_changed(stmt)
            self.catalog.executemany(sql, rows)
            return
        with self.transaction():
            if isinstance(stmt, exp.Insert) and isinstance(stmt.expression, exp.Values) and len(stmt.expression.expressions) == 1:
                target, given = _target(stmt.this)
                table = self.lake.table(target.db or MAIN, target.name)
                if table is not None:
                    names = given or [c for c, _ in table.columns][: len(rows[0])]
                    if all(isinstance(v, exp.Placeholder) for v in stmt.expression.expressions[0].expressions):
                        types = dict(
                            zip(self.lake.arrow_schema(table.columns).names, self.lake.arrow_schema(table.columns).types, strict=True)
                        )
                        self._load(table, pa.table({n: pa.array([r[i] for r in rows], types[n]) for i, n in enumerate(names)}))
                        return
            for row in rows:
                self.execute(sql, row)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        data = self._statement(sql, params, None, rows=True, named=False)  # by position: two columns may have one name
        if data is None:
            raise WarehouseError(f"not a query: {sql[:200]}")
        return list(zip(*(column.to_pylist() for column in data.columns), strict=True)) if data.num_columns else []

    def query_dicts(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self.query_arrow(sql, params).to_pylist()

    def query_arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        data = self._statement(sql, params, None, rows=True)
        if data is None:
            raise WarehouseError(f"not a query: {sql[:200]}")
        return data

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None

    @contextmanager
    def _outermost(self) -> Iterator[None]:
        self._written = []
        try:
            with self.catalog.transaction():
                yield
        except BaseException:
            self._catalog_epoch += 1  # the catalog's tables are as they were: Spark's copies are not
            for path in self._written:  # never listed: garbage now (sweep would find it later)
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            raise
        finally:
            self._written = []

    def table_exists(self, name: str, schema: str | None = None) -> bool:
        return self.catalog.table_exists(name, schema) or self.lake.view(schema or MAIN, name) is not None

    def columns(self, table: str, schema: str | None = None) -> list[str]:
        return self.catalog.columns(table, schema)

    def load_arrow(self, table: str, data: pa.Table | pa.RecordBatchReader, schema: str | None = None) -> int:
        lake_table = self.lake.table(schema or MAIN, table)
        if lake_table is None:
            self._catalog_changed(table=(schema or MAIN, table))
            return self.catalog.load_arrow(table, data, schema)
        whole = data.read_all() if isinstance(data, pa.RecordBatchReader) else data
        with self.transaction():
            return sum(n for _, n in self._load(lake_table, whole))

    def execute_over_arrow(self, sql: str, data: pa.Table | pa.RecordBatchReader) -> None:
        whole = data.read_all() if isinstance(data, pa.RecordBatchReader) else data
        self._statement(sql, (), whole, rows=False)

    def prefetch_event_lines(self, path: Path | None, max_line: int) -> None:
        """Nothing yet: Spark reads a file when event_lines asks for it."""

    @contextmanager
    def event_lines(self, path: Path, max_line: int) -> Iterator[str | None]:
        """The file read by Spark (warehouse/spark_events.py, written for a list of files: one task per
        .gz file), as a lake view of its lines; None where Spark cannot read it as plain lines."""
        from optimus.warehouse.spark_events import read_event_files

        with read_event_files(self, [path], max_line) as relations:
            yield relations[path]

    def stage_tsv(self, path: Path, staging: str, numbered: bool = True) -> tuple[list[str], list[tuple[int, str, str]]]:
        self._catalog_epoch += 1
        return self.catalog.stage_tsv(path, staging, numbered)

    def prefetch_tsv(self, path: Path | None) -> None:
        self.catalog.prefetch_tsv(path)

    def hold_outside(self, nbytes: int) -> None:
        self.catalog.hold_outside(nbytes)

    def drop_staged(self, staging: str) -> None:
        self._catalog_epoch += 1
        self.catalog.drop_staged(staging)

    def try_cast_sql(self, expr: str, sql_type: str) -> str:
        return self.sql.try_cast(expr, sql_type)

    def quote(self, identifier: str) -> str:
        return self.sql.quote(identifier)

    def read_only_query(self, sql: str, *, max_rows: int, max_bytes: int, timeout: float) -> QueryAnswer:
        """DuckDB over the catalog and the lake's views, never Spark SQL (see DuckDBWarehouse's)."""
        return self.catalog.read_only_query(sql, max_rows=max_rows, max_bytes=max_bytes, timeout=timeout)

    def reader(self) -> DuckDBWarehouse:
        """A DuckDB view of the catalog (lake tables through their views), with DuckDB's dialect."""
        return self.catalog.reader()

    def interrupt(self) -> None:
        if self._spark is not None:
            self._spark.sparkContext.cancelAllJobs()
        self.catalog.interrupt()

    def close(self) -> None:
        try:
            with self.transaction():
                for schema, name in self.lake.temporary_tables():
                    self.lake.drop(schema, name)  # their parts: swept at the next open
        except Exception:  # a closed or broken catalog: the next open drops them
            pass
        if self._spark is not None:
            for view in self._views:
                self._spark.catalog.dropTempView(view)
            self._views.clear()
            self._registered.clear()
        self.catalog.close()

    def _qualified(self, schema: str, name: str) -> str:
        return self.quote(name) if schema == MAIN else f"{self.quote(schema)}.{self.quote(name)}"


# an INSERT ... SELECT DuckDB reads alike and that reads at most this many rows of lake tables is written by
# DuckDB on the driver; a bigger one is set work for Spark's executors (what a cluster is for)
DRIVER_WRITE_ROWS = 4_000_000
_DATES = (exp.DataType.Type.DATE, exp.DataType.Type.TIMESTAMP)
# the nodes of a query both engines read alike, to the type of each value (see SparkWarehouse._duckdb_reads):
# no function but these (sum is HUGEINT on DuckDB, BIGINT on Spark), no arithmetic that may overflow otherwise
_READABLE = (
    exp.Column, exp.Identifier, exp.Literal, exp.Null, exp.Boolean, exp.Paren, exp.And, exp.Or, exp.Not,
    exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Is, exp.In, exp.Between, exp.Cast, exp.DataType,
    exp.Neg, exp.Select, exp.From, exp.Where, exp.Table, exp.TableAlias, exp.Star, exp.Distinct, exp.Limit,
    exp.Group, exp.Having, exp.Order, exp.Ordered, exp.Alias, exp.Subquery, exp.Exists, exp.Tuple, exp.Join,
    exp.With, exp.CTE, exp.Count, exp.Min, exp.Max, exp.Coalesce, exp.Case, exp.If, exp.Left, exp.Add, exp.Sub,
)  # fmt: skip


def _parse(sql: str) -> exp.Expression | None:
    """One statement as SQLGlot reads it, or None when it cannot (then it is DuckDB's to run)."""
    try:
        parsed = sqlglot.parse(sql, read=_Statements)
    except sqlglot.errors.SqlglotError:
        return None
    statement = parsed[0] if len(parsed) == 1 else None
    if not isinstance(statement, exp.Expression) or isinstance(statement, exp.Command):
        return None
    return statement


def _inline(sql: str, params: Sequence[Any]) -> str:
    """The statement's text with its `?` parameters, in the order they are written, as literals (found
    by SQLGlot's tokenizer, so a `?` inside a string or a name is left alone)."""
    if not params:
        return sql
    holes = [t for t in _Statements().tokenize(sql) if t.token_type == TokenType.PLACEHOLDER]
    if len(holes) != len(params):
        raise WarehouseError(f"{len(holes)} parameters in the statement, {len(params)} given")
    for hole, value in reversed(list(zip(holes, params, strict=True))):
        sql = sql[: hole.start] + _literal(value) + sql[hole.end + 1 :]
    return sql


def _literal(value: Any) -> str:
    """A value as a literal of the statements' spelling (the Spark dialect's: see _Statements)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):  # a double as a bound parameter is one (a bare 0.1 is a DECIMAL literal)
        return f"CAST('{value!r}' AS DOUBLE)"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime):
        return f"CAST('{value.isoformat(sep=' ')}' AS TIMESTAMP)"
    if isinstance(value, date):
        return f"CAST('{value.isoformat()}' AS DATE)"
    return SparkWarehouse.sql.literal(str(value))


def _temporary(stmt: exp.Create) -> bool:
    return stmt.find(exp.TemporaryProperty) is not None


def _target(node: exp.Expression) -> tuple[exp.Table, list[str] | None]:
    """An INSERT's table and its column list (None: all, in order)."""
    if isinstance(node, exp.Schema):
        assert isinstance(node.this, exp.Table)
        return node.this, [c.name for c in node.expressions]
    assert isinstance(node, exp.Table)
    return node, None


def _lateral_views(select: exp.Select) -> None:
    """`FROM t, LATERAL inline(...) AS a` (the dialect's json_object_entries) as Hive's `FROM t LATERAL
    VIEW inline(...) a AS key, value`: the same rows, but Spark plans a LATERAL join as a correlated
    subquery, which may not reference a VARIANT column (the parsed JSON the entries come from), while
    a LATERAL VIEW is a generator over each row. Only trailing comma joins move (a LATERAL VIEW
    applies after every join)."""
    joins = select.args.get("joins") or []
    moved: list[exp.Lateral] = []
    while joins:
        last = joins[-1]
        lateral = last.this
        if not (isinstance(lateral, exp.Lateral) and isinstance(lateral.this, exp.Inline) and not last.args.get("on")):
            break
        alias = lateral.args.get("alias")
        name = alias.this if isinstance(alias, exp.TableAlias) else exp.to_identifier("_optimus_lateral")
        view = exp.Lateral(
            this=lateral.this,
            view=True,
            alias=exp.TableAlias(this=name, columns=[exp.to_identifier("key"), exp.to_identifier("value")]),
        )
        moved.insert(0, view)
        joins.pop()
    if moved:
        select.set("joins", joins or None)
        select.set("laterals", [*(select.args.get("laterals") or []), *moved])


def _tables_read(node: exp.Expression) -> Iterator[tuple[str, str]]:
    """(schema, name) of each named table `node` reads, its CTEs' names left out."""
    ctes = {c.alias for c in node.find_all(exp.CTE)}
    for table in node.find_all(exp.Table):
        if isinstance(table.this, exp.Identifier) and not (table.name in ctes and not table.db):
            yield table.db or MAIN, table.name


def _only_of(node: exp.Expression, alias: str) -> bool:
    """A plain test (see _READABLE) of columns all qualified by `alias`: one DuckDB can count on the table alone."""
    columns = list(node.find_all(exp.Column))
    return bool(columns) and all(c.table == alias for c in columns) and all(isinstance(n, _READABLE) for n in node.walk())


def _view_name(schema: str, name: str) -> str:
    """The Spark temporary view standing for a table in one statement (a safe identifier)."""
    return "_optimus_" + (schema + "__" + name).encode().hex()


def _tick(identifier: str) -> str:
    return "`" + identifier.replace("`", "``") + "`"


def _local_path(url: str) -> Path:
    """A part's path from Spark's file URL (file:/a/b%20c.parquet)."""
    return Path(unquote(urlsplit(url).path)).absolute()


def _spark_schema(schema: pa.Schema) -> Any:
    """An Arrow schema as Spark's (for an empty DataFrame; timestamps without a zone stay so)."""
    from pyspark.sql.pandas.types import from_arrow_schema

    return from_arrow_schema(schema, prefer_timestamp_ntz=True)
