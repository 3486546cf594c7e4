"""PostgreSQL ingests event files with parallel plans too (issue 14, item 2).

The `optimus_try_*` helpers catch cast errors in an exception block, which starts a subtransaction;
PostgreSQL forbids that during a parallel operation, so helpers declared PARALLEL SAFE failed
ordinary event files of a bigger package ("cannot start subtransactions during a parallel
operation"). A small package shows it when the session makes every plan parallel.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest

from optimus.warehouse import connect
from test_backends_equal import dump

pytestmark = pytest.mark.postgres

# every plan that can be parallel is: costs nothing to start workers, any table is big enough
PARALLEL_EVERYWHERE = (
    "-c parallel_setup_cost=0 -c parallel_tuple_cost=0 -c min_parallel_table_scan_size=0 "
    "-c min_parallel_index_scan_size=0 -c max_parallel_workers_per_gather=2"
)


def test_events_ingest_with_parallel_plans_forced_and_equal_duckdb(tmp_path: Path, settings_for, cli, pg_url) -> None:
    from optimus.sample import generate

    data = tmp_path / "sample"
    generate(data, courses=2, learners=80, days=3, seed=5)
    parallel_url = f"{pg_url}?options={quote(PARALLEL_EVERYWHERE)}"
    duck = settings_for(data, export_path=tmp_path / "exports_duckdb")
    pg = settings_for(data, warehouse=parallel_url, export_path=tmp_path / "exports_postgres")
    for settings in (duck, pg):
        result = cli(["ingest"], settings)
        assert result.exit_code == 0, result.output

    wh = connect(pg)
    try:
        assert wh.scalar("SELECT current_setting('parallel_setup_cost')") == "0"  # the options reached the session
        failed = wh.query("SELECT path, error FROM ingest_files WHERE state = 'failed'")
        assert failed == []
        # a parallel plan is what the events go through: a try-cast over a scan of a staged table
        wh.execute("CREATE TABLE probe AS SELECT g::text AS v FROM generate_series(1, 20000) g")  # not TEMP: never scanned in parallel
        wh.execute("ANALYZE probe")
        plan = "\n".join(r[0] for r in wh.query(f"EXPLAIN SELECT count({wh.try_cast_sql('v', 'BIGINT')}) FROM probe"))
        plain = "\n".join(r[0] for r in wh.query("EXPLAIN SELECT count(v::bigint) FROM probe"))
        assert "Gather" in plain  # the session does plan in parallel...
        assert wh.scalar(f"SELECT count({wh.try_cast_sql('v', 'BIGINT')}) FROM probe") == 20000, plan  # ...and the helpers run
    finally:
        wh.close()
    for table in ("events", "events_quarantine", "person_course_day", "person_course"):
        duck_cols, on_duck = dump(duck, table)
        pg_cols, on_pg = dump(pg, table)
        assert pg_cols == duck_cols and on_pg == on_duck and on_duck, table
