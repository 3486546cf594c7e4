"""The Spark warehouse's own guarantees (warehouse/spark.py, warehouse/lake.py), on a real local Spark:
a lake table's parts are published by the catalog's commit and no other way, copy-on-write DELETE and
UPDATE give what the statements mean, and the ledger's statements never reach Spark."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import BOOKKEEPING_TABLES, VOLATILE_COLUMNS, ingest, reading
from optimus.config import Settings, load
from optimus.errors import ConfigError, WarehouseError
from optimus.warehouse import Warehouse, connect, schema
from optimus.warehouse import spark as spark_warehouse
from optimus.warehouse.spark import SparkWarehouse

pytestmark = pytest.mark.spark


@pytest.fixture
def lake_settings(spark_lake: dict[str, Any], data_path: Path, settings_for: Callable[..., Settings]) -> Settings:
    return settings_for(data_path, **spark_lake)


@pytest.fixture
def wh(lake_settings: Settings) -> Iterator[Warehouse]:
    warehouse = connect(lake_settings)
    try:
        yield warehouse
    finally:
        warehouse.close()


def part_files(settings: Settings) -> set[Path]:
    lake = settings.lake_path()
    assert lake is not None
    return {p for p in (lake / "tables").rglob("*.parquet")}


def listed_parts(wh: Warehouse, table: str | None = None) -> list[str]:
    """The parts the manifest lists (of one table, or of all)."""
    return [
        r[0] for r in wh.reader().query("SELECT path FROM lake_parts WHERE table_name = coalesce(?, table_name) ORDER BY path", [table])
    ]


ROWS = [(i, f"c{i % 3}", None if i % 4 == 0 else f"it's \\{i}") for i in range(1, 25)]


def fill(wh: Warehouse) -> None:
    """ROWS in the lake table `t`, over several parts (one INSERT per course)."""
    wh.execute("CREATE TABLE t (n BIGINT, course VARCHAR, note VARCHAR)")
    for course in ("c0", "c1", "c2"):
        wh.executemany("INSERT INTO t (n, course, note) VALUES (?, ?, ?)", [r for r in ROWS if r[1] == course])


def test_a_rolled_back_transaction_lists_no_part_and_changes_no_ledger(wh: Warehouse, lake_settings: Settings) -> None:
    schema.ensure(wh)
    fill(wh)
    before_parts, before_files = listed_parts(wh), part_files(lake_settings)
    with pytest.raises(RuntimeError), wh.transaction():
        wh.execute("INSERT INTO t SELECT n + 100, course, note FROM t")  # a Spark job writing parts
        wh.execute(
            "INSERT INTO ingest_skipped (path, data_path, reason, first_seen, last_seen) VALUES ('x', 'd', 'r', current_timestamp, current_timestamp)"
        )
        assert wh.scalar("SELECT count(*) FROM t") == 2 * len(ROWS)  # seen inside the transaction
        raise RuntimeError("the file failed")
    assert listed_parts(wh) == before_parts
    assert part_files(lake_settings) == before_files  # what it wrote is gone, not merely unlisted
    assert wh.scalar("SELECT count(*) FROM ingest_skipped") == 0
    assert sorted(wh.query("SELECT n, course, note FROM t")) == ROWS


def test_an_unlisted_part_is_swept_when_a_writer_opens(lake_settings: Settings) -> None:
    wh = connect(lake_settings)
    fill(wh)
    kept = part_files(lake_settings)
    wh.close()
    lake = lake_settings.lake_path()
    assert lake is not None
    stray = lake / "tables" / "main" / "t" / "0123-crashed.parquet"  # a crash between writing and listing
    stray.write_bytes((next(iter(kept))).read_bytes())
    wh = connect(lake_settings)
    try:
        assert not stray.exists()
        assert part_files(lake_settings) == kept
        assert wh.scalar("SELECT count(*) FROM t") == len(ROWS)
    finally:
        wh.close()


@pytest.mark.parametrize("seed", [1, 2])
def test_delete_and_update_copy_only_the_parts_with_matching_rows(wh: Warehouse, seed: int) -> None:
    fill(wh)
    rng = random.Random(seed)
    cut = rng.randint(3, 20)
    parts = set(listed_parts(wh))
    wh.execute("DELETE FROM t WHERE course = ? AND n > ?", ["c1", cut])
    expected = [r for r in ROWS if not (r[1] == "c1" and r[0] > cut)]
    assert sorted(wh.query("SELECT n, course, note FROM t")) == expected
    after = set(listed_parts(wh))
    assert len(parts - after) == 1  # only c1's part was replaced (or dropped); c0's and c2's are the same files
    wh.execute("DELETE FROM t WHERE course = 'c2'")  # every row of a part: it is unlisted, nothing written
    expected = [r for r in expected if r[1] != "c2"]
    assert set(listed_parts(wh)) < after
    wh.execute("UPDATE t SET note = upper(note), n = n * 10 WHERE n % 2 = 0 OR note IS NULL")
    expected = [
        (n * 10, c, None if note is None else note.upper()) if n % 2 == 0 or note is None else (n, c, note) for n, c, note in expected
    ]
    assert sorted(wh.query("SELECT n, course, note FROM t")) == sorted(expected)
    # the DuckDB readers see the same rows through the catalog's views
    view = wh.reader()
    try:
        assert sorted(view.query("SELECT n, course, note FROM t")) == sorted(expected)
    finally:
        view.close()


def test_update_from_sets_the_joined_rows_as_duckdb_does(wh: Warehouse, data_path: Path, settings_for: Callable[..., Settings]) -> None:
    """UPDATE ... FROM a table and from a subquery (what re-pointing a changed event file's events runs)
    gives DuckDB's rows, rewrites only the parts with a joined row, and a row joined twice is an error
    that changes nothing."""
    duck = connect(settings_for(data_path))
    statements = [
        ("UPDATE t SET note = w.label, n = t.n + w.k FROM w WHERE t.course = w.course AND t.n > ?", [4]),
        ("UPDATE t AS x SET n = -x.n FROM (SELECT course, k FROM w WHERE k = ?) AS s WHERE x.course = s.course AND x.note IS NULL", [8]),
    ]
    try:
        for each in (wh, duck):
            fill(each)
            each.execute("CREATE TABLE w (course VARCHAR, k BIGINT, label VARCHAR)")
            each.executemany("INSERT INTO w VALUES (?, ?, ?)", [("c0", 7, "seven"), ("c1", 8, "eight"), ("c9", 9, "none")])
        parts = set(listed_parts(wh, "t"))
        for sql, params in statements:
            for each in (wh, duck):
                each.execute(sql, params)
            got = sorted(wh.query("SELECT n, course, note FROM t"), key=repr)
            assert got == sorted(duck.query("SELECT n, course, note FROM t"), key=repr)
            assert got != sorted(ROWS, key=repr)
        assert len(parts - set(listed_parts(wh, "t"))) == 2  # c0's and c1's parts rewritten, c2's the same file
        before, rows = listed_parts(wh, "t"), sorted(wh.query("SELECT n, course, note FROM t"), key=repr)
        wh.execute("INSERT INTO w VALUES ('c0', 70, 'again')")
        with pytest.raises(WarehouseError, match="more than one row"):
            wh.execute("UPDATE t SET n = w.k FROM w WHERE t.course = w.course")
        assert listed_parts(wh, "t") == before
        assert sorted(wh.query("SELECT n, course, note FROM t"), key=repr) == rows
    finally:
        duck.close()


def test_parameters_are_taken_in_the_order_written(wh: Warehouse) -> None:
    """Inlined as literals for Spark: the n-th `?` of the text takes the n-th value, however deep it is
    nested, and a `?` inside a string is no parameter."""
    fill(wh)
    values = ["it's", "a\\b?", 0.1, None]
    assert wh.query("SELECT coalesce(NULL, ?), '?', ?, ? * 3, ? FROM t WHERE n = 1", values) == [("it's", "?", "a\\b?", 0.1 * 3, None)]


def test_a_column_added_reads_as_null_in_old_parts(wh: Warehouse) -> None:
    fill(wh)
    wh.execute("ALTER TABLE t ADD COLUMN IF NOT EXISTS extra DOUBLE PRECISION")
    wh.execute("ALTER TABLE t ADD COLUMN IF NOT EXISTS extra DOUBLE PRECISION")
    wh.execute("INSERT INTO t (n, course, extra) VALUES (99, 'c9', 1.5)")
    assert wh.columns("t") == ["n", "course", "note", "extra"]
    assert wh.query("SELECT count(*), count(extra), sum(extra) FROM t") == [(len(ROWS) + 1, 1, 1.5)]


def test_bookkeeping_never_starts_spark(wh: Warehouse) -> None:
    """The ledger's many small statements run on the catalog alone: no JVM for them."""
    schema.ensure(wh)
    with wh.transaction():
        wh.execute(
            "INSERT INTO service_runs (service, started_at, status, rules_version) VALUES (?, current_timestamp, 'running', 1)", ["X"]
        )
        wh.execute("UPDATE service_runs SET status = 'done' WHERE service = ?", ["X"])
    assert wh.query("SELECT service, status FROM service_runs") == [("X", "done")]
    assert isinstance(wh, SparkWarehouse) and not wh.spark_started
    fill(wh)  # literal rows into a lake table: written by the driver, still no Spark
    wh.execute("UPDATE service_runs SET files = (SELECT count(*) FROM t WHERE course = ?) WHERE service = ?", ["c1", "X"])
    assert wh.scalar("SELECT files FROM service_runs") == sum(1 for r in ROWS if r[1] == "c1")
    assert not wh.spark_started


def test_plain_statements_are_duckdbs_and_see_the_open_transaction(wh: Warehouse) -> None:
    """Reads both engines read alike (rows for the driver, an INSERT ... SELECT, a DELETE's condition)
    run on DuckDB over the catalog's views, with no Spark job: inside a transaction they see its parts
    not yet committed, TEMP tables included; a read with a Spark-only meaning (sum's type) runs on
    Spark over the same parts, and a rollback takes back what DuckDB wrote."""
    fill(wh)
    assert isinstance(wh, SparkWarehouse)
    c1 = sorted(n for n, c, _ in ROWS if c == "c1")
    with pytest.raises(RuntimeError), wh.transaction():
        wh.execute("CREATE TEMP TABLE picked (n BIGINT, course VARCHAR)")
        wh.execute("INSERT INTO picked SELECT n, course FROM t WHERE course = ?", ["c1"])
        assert wh.query("SELECT n FROM picked ORDER BY n") == [(n,) for n in c1]
        wh.execute("DELETE FROM t WHERE n IN (SELECT n FROM picked) AND n > ?", [c1[1]])
        kept = [r for r in ROWS if not (r[1] == "c1" and r[0] > c1[1])]
        assert wh.query("SELECT course, count(*) FROM t GROUP BY course ORDER BY course") == sorted(
            (c, sum(1 for r in kept if r[1] == c)) for c in ("c0", "c1", "c2")
        )
        assert wh.query_dicts("SELECT max(n) AS top FROM t WHERE course = 'c1'") == [{"top": c1[1]}]
        assert not wh.spark_started  # none of it needed Spark
        assert wh.scalar("SELECT sum(n) FROM t") == sum(r[0] for r in kept)  # Spark, over the same uncommitted parts
        assert wh.spark_started
        raise RuntimeError("roll back")
    assert sorted(wh.query("SELECT n, course, note FROM t")) == ROWS
    assert not wh.table_exists("picked")


def test_a_big_insert_select_is_sparks(wh: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    """An INSERT ... SELECT DuckDB reads alike still runs on Spark when it reads more lake rows than the
    driver should write (DRIVER_WRITE_ROWS): set work at scale is the executors'."""
    fill(wh)
    assert isinstance(wh, SparkWarehouse)
    monkeypatch.setattr(spark_warehouse, "DRIVER_WRITE_ROWS", len(ROWS) - 1)
    wh.execute("CREATE TEMP TABLE picked (n BIGINT, course VARCHAR)")
    wh.execute("INSERT INTO picked SELECT n, course FROM t WHERE course = ?", ["c1"])
    assert wh.spark_started
    assert sorted(wh.query("SELECT n FROM picked")) == sorted((n,) for n, c, _ in ROWS if c == "c1")


def test_a_temp_table_from_lake_data_joins_both_ways(wh: Warehouse) -> None:
    fill(wh)
    wh.execute("CREATE TEMP TABLE picked AS SELECT n FROM t WHERE course = 'c0'")
    assert sorted(r[0] for r in wh.query("SELECT n FROM picked")) == [r[0] for r in ROWS if r[1] == "c0"]
    assert wh.scalar("SELECT count(*) FROM t JOIN picked p ON p.n = t.n") == sum(1 for r in ROWS if r[1] == "c0")
    view = wh.reader()
    try:  # a TEMP table is its connection's alone
        with pytest.raises(Exception, match="picked"):
            view.query("SELECT count(*) FROM picked")
    finally:
        view.close()
    wh.execute("DROP TABLE picked")
    assert not wh.table_exists("picked")
    wh.execute("CREATE TEMP TABLE kept AS SELECT n FROM t")


def test_temp_tables_go_with_their_connection(lake_settings: Settings) -> None:
    wh = connect(lake_settings)
    fill(wh)
    wh.execute("CREATE TEMP TABLE picked AS SELECT n, note FROM t WHERE course = 'c0'")
    wh.execute("INSERT INTO picked SELECT n, note FROM t WHERE course = 'c1'")
    assert wh.scalar("SELECT count(*) FROM picked") == sum(1 for r in ROWS if r[1] in ("c0", "c1"))
    wh.close()
    wh = connect(lake_settings)
    try:
        assert not wh.table_exists("picked")
        wh.execute("CREATE TEMP TABLE picked AS SELECT n FROM t WHERE course = 'c2'")  # the name is free again
        assert wh.scalar("SELECT count(*) FROM picked") == sum(1 for r in ROWS if r[1] == "c2")
    finally:
        wh.close()


def test_literals_types_and_functions_read_as_the_shared_sql_means_them(wh: Warehouse) -> None:
    """A literal written by the dialect (quotes, backslashes), a parameter holding them, the shared SQL's
    type names in CASTs and the session's functions (strpos) mean on Spark what they mean on DuckDB."""
    fill(wh)
    text = "it's a \\ back\\slash, 'quoted', \\n not a line end"
    backslash_n = wh.sql.regex_matches(wh.sql.literal(text), "[\\\\]n")
    answer = wh.query(
        f"SELECT {wh.sql.literal(text)}, ?, CAST(n AS VARCHAR), CAST(n AS DOUBLE PRECISION) / 4, CAST(? AS JSON), strpos(course, 'c'), "
        f"{backslash_n} FROM t WHERE n = 2",
        [text, '{"a": 1}'],
    )
    assert answer == [(text, text, "2", 0.5, '{"a": 1}', 1, True)]


def test_nulls_sort_last_as_on_duckdb(wh: Warehouse) -> None:
    """Spark sorts NULLs first ascending; the shared SQL means DuckDB's order (last, either way), in an
    ORDER BY, a window and an ordered aggregate alike."""
    fill(wh)
    ascending = [n for _, _, n in sorted((note is None, note or "", n) for n, _, note in ROWS)]
    noted = sorted(sorted((n, note) for n, _, note in ROWS if note is not None), key=lambda r: r[1], reverse=True)  # n ascending within
    descending = [n for n, _ in noted] + sorted(n for n, _, note in ROWS if note is None)
    assert [r[0] for r in wh.query("SELECT n FROM t ORDER BY note, n")] == ascending
    assert [r[0] for r in wh.query("SELECT n FROM t ORDER BY note DESC, n")] == descending
    ranked = wh.query("SELECT n, row_number() OVER (ORDER BY note, n) FROM t")
    assert sorted(ranked, key=lambda r: r[1]) == [(n, i) for i, n in enumerate(ascending, 1)]
    first = wh.scalar(f"SELECT {wh.sql.ordered_string_agg('CAST(n AS VARCHAR)', ',', 'note, n')} FROM t")
    assert first == ",".join(str(n) for n in ascending)


def test_a_view_over_lake_tables_is_read_by_spark_and_by_readers(wh: Warehouse) -> None:
    """CREATE VIEW over a lake table: Spark statements read its definition, DuckDB readers (the API) a view."""
    fill(wh)
    wh.execute("CREATE VIEW per_course AS SELECT course, count(*) AS k FROM t GROUP BY course")
    counts = sorted({(c, sum(1 for r in ROWS if r[1] == c)) for _, c, _ in ROWS})
    assert sorted(wh.query("SELECT course, k FROM per_course")) == counts
    reader = wh.reader()
    try:
        assert sorted(reader.query("SELECT course, k FROM per_course")) == counts
    finally:
        reader.close()
    wh.execute("DROP VIEW IF EXISTS per_course")
    assert not wh.table_exists("per_course")
    assert "per_course" not in {r[0] for r in wh.reader().query("SELECT view_name FROM duckdb_views()")}


def test_a_catalog_table_changed_between_spark_statements_is_read_fresh(wh: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    """Catalog tables are sent to Spark once per change, not per statement: whatever changes one (a
    statement, executemany, load_arrow, a rollback) makes the next Spark statement see it as it is."""
    import pyarrow as pa

    fill(wh)
    assert isinstance(wh, SparkWarehouse)
    sent: list[str] = []
    real = wh._catalog_frame
    monkeypatch.setattr(wh, "_catalog_frame", lambda schema, name: sent.append(name) or real(schema, name))
    wh.execute("CREATE TABLE w (course VARCHAR PRIMARY KEY, weight BIGINT)")  # a key: a catalog table
    weighted = "SELECT sum(t.n * w.weight) FROM t JOIN w ON w.course = t.course"

    def expect(weights: dict[str, int]) -> None:
        assert wh.scalar(weighted) == sum(n * weights[c] for n, c, _ in ROWS if c in weights)

    wh.execute("INSERT INTO w VALUES ('c0', 1)")
    expect({"c0": 1})
    expect({"c0": 1})
    assert sent == ["w"]  # read twice, sent once
    wh.execute("UPDATE w SET weight = ? WHERE course = ?", [5, "c0"])
    expect({"c0": 5})
    wh.executemany("INSERT INTO w VALUES (?, ?)", [["c1", 2]])
    expect({"c0": 5, "c1": 2})
    wh.load_arrow("w", pa.table({"course": ["c2"], "weight": pa.array([3], pa.int64())}))
    expect({"c0": 5, "c1": 2, "c2": 3})
    with pytest.raises(RuntimeError), wh.transaction():
        wh.execute("DELETE FROM w WHERE course = 'c0'")
        expect({"c1": 2, "c2": 3})
        raise RuntimeError("roll back")
    expect({"c0": 5, "c1": 2, "c2": 3})
    assert len(sent) == 6


def test_the_read_only_connection_is_duckdb_over_the_lake(wh: Warehouse, lake_settings: Settings) -> None:
    fill(wh)
    wh.close()
    reader = connect(lake_settings, read_only=True)
    try:
        assert reader.sql.name == "duckdb"  # untrusted SQL never runs on Spark SQL
        answer = reader.read_only_query("SELECT count(*) FROM t", max_rows=10, max_bytes=1000, timeout=10)
        assert answer.rows == [(len(ROWS),)]
        with pytest.raises(WarehouseError):  # the lake's folder is readable, no other
            reader.read_only_query("SELECT * FROM read_text('/etc/passwd')", max_rows=10, max_bytes=1000, timeout=10)
    finally:
        reader.close()


def test_the_lake_setting(tmp_path: Path) -> None:
    config = tmp_path / "optimus.toml"
    config.write_text('warehouse = "spark:///lake"\nspark_master = "local[1]"\n')
    settings = load(config, env={})
    assert settings.lake_path() == tmp_path / "lake"
    assert settings.warehouse_path() == tmp_path / "lake" / "_catalog.duckdb"
    assert settings.spark_master == "local[1]"
    config.write_text('warehouse = "spark://"\n')
    with pytest.raises(ConfigError, match="lake folder"):
        load(config, env={})


# The services whose SQL runs on Spark with today's Spark dialect (warehouse/dialects/spark.py): the
# ones that load through the driver. The others wait for the dialect's fragments (issue 21).
DRIVER_SERVICES = ("DiscussionForums", "CourseStructure")


def test_the_sample_package_gives_duckdbs_tables(tmp_path: Path, spark_lake: dict[str, Any]) -> None:
    """`ingest` of the sample package on Spark local[2] and on DuckDB: every table the services made
    on DuckDB is on Spark with the same rows (read back through the lake's DuckDB views)."""
    from optimus.sample import generate

    generate(tmp_path / "data", courses=2, learners=30, days=3, seed=7)
    common: dict[str, Any] = {"data_paths": [tmp_path / "data"], "www_path": tmp_path / "www", "memory_limit": "1GB"}
    on_duckdb = Settings(warehouse=str(tmp_path / "wh" / "optimus.duckdb"), export_path=tmp_path / "x1", **common)
    on_spark = Settings(**spark_lake, export_path=tmp_path / "x2", **common)
    for settings in (on_duckdb, on_spark):
        ingest(settings, *DRIVER_SERVICES)
    with reading(on_duckdb) as duck, reading(on_spark) as lake:
        tables = [
            t for t in duck.query("SELECT table_name FROM duckdb_tables() WHERE schema_name = 'main'") if t[0] not in BOOKKEEPING_TABLES
        ]
        assert {"forum_posts", "courses", "course_blocks"} <= {t[0] for t in tables}
        for (table,) in tables:
            cols = [c for c in duck.columns(table) if c not in VOLATILE_COLUMNS]
            select = f"SELECT {', '.join(duck.quote(c) for c in cols)} FROM {duck.quote(table)}"
            expected = sorted(duck.query(select), key=repr)
            assert sorted(lake.query(select), key=repr) == expected, table
