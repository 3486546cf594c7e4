"""`optimus copy` from a Spark warehouse (a lake) into PostgreSQL (issue 21).

The copy reads the lake through DuckDB over its catalog (no Spark): every table the lake holds, the
raw edX ones included, and the ledger come across; the lake's manifest (lake_tables, lake_parts,
lake_views) does not, and its views are views on PostgreSQL too (made by the services' own DDL).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from conftest import BOOKKEEPING_TABLES, SPARK_SERVICES, assert_same_rows, ingest, reading
from optimus.config import Settings
from optimus.sample import generate
from optimus.warehouse import connect

pytestmark = [pytest.mark.spark, pytest.mark.postgres]

MANIFEST = {"lake_tables", "lake_parts", "lake_views"}


def lake_tables(settings: Settings) -> list[str]:
    """`schema.table` of every table a lake holds: its listed lake tables and its catalog tables (not the manifest)."""
    with reading(settings) as wh:
        listed = wh.query("SELECT schema_name, table_name FROM lake_tables WHERE NOT temporary")
        catalog = wh.query("SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT temporary")
    names = {("main" if s == "main" else "edx", t) for s, t in listed} | {(s, t) for s, t in catalog if t not in MANIFEST}
    return sorted(f"{s}.{t}" for s, t in names)


def test_copy_of_a_lake_gives_its_tables_and_ledger_then_ingest_ingests_nothing(
    tmp_path: Path, spark_lake: dict[str, Any], pg_url: str, cli: Any
) -> None:
    from optimus.services import load_services

    generate(tmp_path / "data", courses=2, learners=12, days=1, seed=11)
    common: dict[str, Any] = {
        "data_paths": [tmp_path / "data"],
        "export_path": tmp_path / "exports",
        "www_path": tmp_path / "www",
        "memory_limit": "1GB",
        "spark_master": spark_lake["spark_master"],
        "ignored_services": [name for name in load_services() if name not in SPARK_SERVICES],
    }
    lake = Settings(warehouse=spark_lake["warehouse"], **common)
    pg = Settings(warehouse=pg_url, **common)
    ingest(lake)
    env = {"OPTIMUS_IGNORED_SERVICES": json.dumps(common["ignored_services"])}

    copied = cli(["copy", "--to", pg_url], lake, env=env)
    assert copied.exit_code == 0, copied.output

    tables = lake_tables(lake)
    assert any(t.startswith("edx.") for t in tables), tables  # the raw edX tables
    assert {"main.forum_posts", "main.course_blocks", "main.ingest_files"} <= set(tables), tables
    assert_same_rows(pg, lake, tables)
    assert {t.split(".")[1] for t in tables if t.startswith("main.")} & BOOKKEEPING_TABLES >= {"ingest_files", "service_runs"}

    wh = connect(pg, read_only=True)
    try:
        on_pg = {r[0] for r in wh.query("SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [wh.schema])}
        assert not MANIFEST & on_pg  # the lake's bookkeeping is not data
        views = {r[0] for r in wh.query("SELECT table_name FROM information_schema.views WHERE table_schema = ?", [wh.schema])}
    finally:
        wh.close()
    with reading(lake) as catalog:
        lake_views = {r[0] for r in catalog.query("SELECT view_name FROM lake_views")}
    assert lake_views <= views, lake_views - views  # the lake's views are views, not tables

    after = cli(["ingest"], pg, env=env)
    assert after.exit_code == 0, after.output
    assert "nothing to do" in after.output
