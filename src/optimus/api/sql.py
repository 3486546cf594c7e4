"""One read-only query (needs the token), run by `Warehouse.read_only_query`: the engine itself
keeps it inside the warehouse (docs/security.md), one SELECT, stopped after QUERY_TIMEOUT_SECONDS,
its answer capped in rows and bytes.

Before that, a first, friendly refusal (not the defence), parsing the query with sqlglot.
Refused: several statements; anything but a query (INSERT, COPY, ATTACH, PRAGMA, SET, ...);
SELECT ... INTO; row locks; tables named like files (`FROM 'x.csv'`); table functions other
than a few harmless ones; and the engines' file, network, secret and sequence functions.
"""

from __future__ import annotations

import re
from typing import Any

import sqlglot
from fastapi import APIRouter, Body, Depends, HTTPException, Query
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, Field
from sqlglot import exp

from optimus.api.auth import require_token
from optimus.api.state import warehouse_view
from optimus.errors import QueryRefused
from optimus.warehouse import Warehouse
from optimus.warehouse.base import QUERY_MAX_BYTES, QUERY_MAX_ROWS, QUERY_TIMEOUT_SECONDS

router = APIRouter(tags=["sql"])

MAX_ROWS = QUERY_MAX_ROWS
TIMEOUT_SECONDS = QUERY_TIMEOUT_SECONDS

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")
_TABLE_FUNCTIONS = {
    "range",
    "generate_series",
    "unnest",
    "duckdb_tables",
    "duckdb_columns",
    "duckdb_views",
    "duckdb_schemas",
    "duckdb_types",
    "duckdb_functions",
    "duckdb_constraints",
    "duckdb_indexes",
}
_DENIED = {
    "glob",
    "getenv",
    "query",
    "query_table",
    "nextval",
    "setval",
    "set_config",
    "load",
    "install",
    "checkpoint",
    "force_checkpoint",
    "copy",
    "export_database",
    "import_database",
    "sleep",
    "pg_sleep",
    "current_setting",
}
_DENIED_PREFIXES = (
    "read_",
    "readcsv",
    "readjson",
    "readparquet",
    "pg_read",
    "pg_ls",
    "pg_stat_file",
    "pg_file",
    "pg_advisory",
    "pg_terminate",
    "pg_cancel",
    "pg_reload",
    "pg_rotate",
    "lo_",
    "dblink",
    "sqlite_",
    "postgres_",
    "mysql_",
    "iceberg_",
    "delta_",
    "parquet_",
    "sniff_",
    "duckdb_secret",
    "which_secret",
    "http",
    "s3",
    "gcs",
    "azure",
    "pragma_",
    "load_",
    "ducklake",
)
_DENIED_SUFFIXES = ("_scan", "_attach", "_query", "_execute")
_STATEMENTS = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.Command,
    exp.Copy,
    exp.Attach,
    exp.Detach,
    exp.Pragma,
    exp.Set,
    exp.Use,
    exp.Transaction,
    exp.Commit,
    exp.Rollback,
    exp.Lock,
)


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return node.sql_name().lower()


def _denied(name: str) -> bool:
    plain = name.rsplit(".", 1)[-1]
    return plain in _DENIED or plain.startswith(_DENIED_PREFIXES) or plain.endswith(_DENIED_SUFFIXES)


def check(sql: str, dialect: str = "duckdb") -> str:
    """Return the query unchanged when it is one read-only SELECT/WITH; raise QueryRefused otherwise."""
    if not sql or not sql.strip():
        raise QueryRefused("empty query")
    try:
        statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]  # Dialect.name is SQLGlot's name
    except sqlglot.errors.SqlglotError as exc:
        raise QueryRefused(f"cannot parse the query: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1:
        raise QueryRefused(f"one statement only, not {len(statements)}")
    root = statements[0]
    if not isinstance(root, (exp.Select, exp.Union, exp.Intersect, exp.Except)):
        raise QueryRefused(f"only a SELECT or WITH query is allowed, not {root.key.upper()}")
    for node in root.walk():
        if isinstance(node, _STATEMENTS):
            raise QueryRefused(f"only reading is allowed: {node.key.upper()} refused")
        if isinstance(node, exp.Select) and node.args.get("into") is not None:
            raise QueryRefused("SELECT ... INTO writes a table; refused")
        if isinstance(node, exp.Select) and node.args.get("locks"):
            raise QueryRefused("row locks (FOR UPDATE/SHARE) refused")
        if isinstance(node, exp.Table):
            target = node.this
            if isinstance(target, (exp.Func, exp.Anonymous)):
                name = _function_name(target)
                if name not in _TABLE_FUNCTIONS:
                    raise QueryRefused(f"table function {name}() refused (only {', '.join(sorted(_TABLE_FUNCTIONS))})")
            elif isinstance(target, exp.Literal) or (node.name and not _IDENTIFIER.match(node.name)):
                raise QueryRefused(f"table {node.name!r} refused: name tables, not files")
            for part in ("db", "catalog"):
                value = node.args.get(part)
                if value is not None and not _IDENTIFIER.match(value.name or ""):
                    raise QueryRefused(f"table {node.sql()!r} refused")
        if isinstance(node, (exp.Func, exp.Anonymous)):
            name = _function_name(node)
            if _denied(name):
                raise QueryRefused(f"function {name}() refused: files, network, secrets and sequences are off limits")
    return sql


class SqlRequest(BaseModel):
    sql: str = Field(..., description="One read-only SELECT or WITH query.")
    limit: int = Field(10_000, ge=1, le=MAX_ROWS)


def run(wh: Warehouse, sql: str, limit: int) -> dict[str, Any]:
    """Run a checked query on a read view through the engine's read-only path, capped."""
    check(sql, wh.sql.name)
    try:
        answer = wh.read_only_query(sql, max_rows=limit, max_bytes=QUERY_MAX_BYTES, timeout=TIMEOUT_SECONDS)
    except QueryRefused:
        raise
    except Exception as exc:  # the engine's message says what is wrong with the query
        raise HTTPException(400, f"query failed: {str(exc).strip()}") from None
    return jsonable_encoder(
        {
            "columns": answer.columns,
            "rows": [list(r) for r in answer.rows],
            "row_count": len(answer.rows),
            "truncated": answer.truncated,
            "note": answer.note,
        }
    )


@router.get("/sql", summary="Run one read-only query (needs the token)", dependencies=[Depends(require_token)])
def sql_get(
    sql: str | None = Query(None, description="One read-only SELECT or WITH query (the same name as POST's body field)."),
    q: str | None = Query(None, description="The former name of `sql`, still accepted.", deprecated=True),
    limit: int = Query(10_000, ge=1, le=MAX_ROWS),
    wh: Warehouse = Depends(warehouse_view),
) -> dict[str, Any]:
    query = sql if sql is not None else q
    if query is None:
        raise HTTPException(422, "sql: field required (the query, as ?sql=SELECT ...)")
    if sql is not None and q is not None and sql != q:
        raise HTTPException(422, "give the query once, as sql (q is its former name)")
    try:
        return run(wh, query, limit)
    except QueryRefused as exc:
        raise HTTPException(422, str(exc)) from None


@router.post("/sql", summary="Run one read-only query (needs the token)", dependencies=[Depends(require_token)])
def sql_post(body: SqlRequest = Body(...), wh: Warehouse = Depends(warehouse_view)) -> dict[str, Any]:
    try:
        return run(wh, body.sql, body.limit)
    except QueryRefused as exc:
        raise HTTPException(422, str(exc)) from None
