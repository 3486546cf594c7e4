"""A Spark warehouse (local[2]) killed in the middle of a file and run again equals an uninterrupted run
(issue 21); a part written but never listed in the catalog's manifest (what a crash before the commit
leaves) is never read and is swept at the next start.

Every run is a real `optimus ingest` subprocess (SIGKILL needs one, and it keeps this process free of a
SparkContext); the tables compared are every data table a DuckDB run of the same package holds.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import assert_same_rows, data_tables_of, ingest_sample, kill_when_paused, optimus_process, query_rows, table_rows
from optimus.config import Settings
from spark_cluster import processes_with, spark_env
from spark_server import require_spark

MASTER = "local[2]"


def lake_settings(root: Path, name: str, data: Path) -> Settings:
    return Settings(
        data_paths=[data],
        warehouse=f"spark:///{root / name}",
        spark_master=MASTER,
        export_path=root / f"{name}-exports",
        www_path=root / f"{name}-www",
        memory_limit="1GB",
    )


def ingest_on_spark(settings: Settings, **env: str) -> Any:
    """`optimus ingest` on the Spark warehouse, in a subprocess."""
    return optimus_process(settings, **spark_env(), **env)


def finished(proc: Any) -> None:
    output = proc.communicate(timeout=900)[0].decode(errors="replace")
    assert proc.returncode == 0, output[-5000:]


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    require_spark()  # pyspark and Java, or skip (fail under CI=true)
    root = tmp_path_factory.mktemp("spark-crash")
    duck = ingest_sample(root / "duck")  # the sample package, and which tables a run makes
    settings = lake_settings(root, "clean", duck.data_paths[0])
    finished(ingest_on_spark(settings))
    return {"root": root, "data": duck.data_paths[0], "settings": settings, "tables": data_tables_of(duck)}


def gone(settings: Settings, within: float = 60) -> None:
    """Nothing of a killed run is left writing to its lake (its Spark driver's JVM exits with it)."""
    deadline = time.monotonic() + within
    while left := processes_with("OPTIMUS_WAREHOUSE", settings.warehouse):
        assert time.monotonic() < deadline, f"processes {left} of the killed run still run"
        time.sleep(0.5)


# each case: the pause points of the runs killed in a row before the last run is let finish
KILLS = {
    # in the first event file, after its rows were written and before its commit: nothing committed yet
    "mid-file": [{"OPTIMUS_TEST_PAUSE_AFTER_ROWS": "1"}],
    # then, on the rerun, with every file committed, while a derived service's export is written
    "mid-file-then-mid-export": [{"OPTIMUS_TEST_PAUSE_AFTER_ROWS": "1"}, {"OPTIMUS_TEST_PAUSE_AT": "export-writing"}],
}


@pytest.mark.parametrize("case", sorted(KILLS))
def test_killed_then_rerun_equals_a_clean_run(clean: dict[str, Any], case: str) -> None:
    root = clean["root"]
    settings = lake_settings(root, f"killed-{case}", clean["data"])
    marker = root / f"paused-{case}"
    for pause in KILLS[case]:
        proc = ingest_on_spark(settings, OPTIMUS_TEST_PAUSE_MARKER=str(marker), **pause)
        assert kill_when_paused(proc, marker, timeout=600), (
            f"never paused at {pause}: " + proc.stdout.read().decode(errors="replace")[-5000:]
        )
        gone(settings)
        if "OPTIMUS_TEST_PAUSE_AFTER_ROWS" in pause:
            # the file it was writing stays running in the ledger: the rerun takes it again
            assert query_rows(settings, "SELECT count(*) FROM ingest_files WHERE state = 'running'") == [(1,)]

    finished(ingest_on_spark(settings))
    assert query_rows(settings, "SELECT count(*) FROM ingest_files WHERE state <> 'done'") == [(0,)]
    tables = assert_same_rows(settings, clean["settings"], clean["tables"])
    assert {"main.events", "main.person_course", "edx.auth_user"} <= set(tables)


def test_a_part_never_listed_is_not_read_and_is_swept(clean: dict[str, Any]) -> None:
    """Beside each folder of committed parts, a copy under another name: what an attempt killed before the
    catalog commit leaves. Readers list only the manifest's parts, so no table changes; the next start removes it."""
    settings, tables = clean["settings"], clean["tables"]
    lake = settings.lake_path()
    before = {table: table_rows(settings, table) for table in tables}
    folders = sorted({part.parent for part in lake.rglob("*.parquet")} - {lake})
    assert folders, f"no Parquet part in {lake}"
    planted = []
    for folder in folders:
        stray = folder.with_name(f"{folder.name}-crashed")
        shutil.copytree(folder, stray)
        planted.append(stray)

    assert {table: table_rows(settings, table) for table in tables} == before
    finished(ingest_on_spark(settings))
    assert [str(p) for p in planted if p.exists()] == []
    assert {table: table_rows(settings, table) for table in tables} == before
