"""A run killed in the middle of a file leaves nothing half-written; the rerun equals an uninterrupted run."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from conftest import make_data_path, settings_env
from test_database_state import HEADER, ROWS, write_tsv

BOOKKEEPING = {"ingest_files", "ingest_skipped", "service_runs", "service_run_changes", "schema_info", "course_ids", "db_state_loads"}


def build(root: Path) -> Path:
    data = make_data_path(root)
    pkg = data / "database_state" / "2024-01-07"
    write_tsv(pkg / "UQx-A-1-auth_user-prod-analytics.sql", HEADER, ROWS)
    write_tsv(pkg / "UQx-B-2-auth_user-prod-analytics.sql", HEADER, ROWS[:2])
    write_tsv(pkg / "UQx-A-1-student_courseenrollment-prod-analytics.sql", ["id", "user_id", "course_id", "created", "is_active", "mode"],
              [["1", "1", "UQx/A/1", "2015-01-01 00:00:00", "1", "honor"]])
    return data


def ingest(settings, **env: str) -> subprocess.Popen:  # type: ignore[no-untyped-def]
    full = {**{k: v for k, v in os.environ.items() if not k.startswith("OPTIMUS_")}, **settings_env(settings), **env}
    return subprocess.Popen([sys.executable, "-m", "optimus", "ingest"], env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def data_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """`schema.table` of every table of the warehouse (Optimus's own in main, the raw edX ones in edx)."""
    names = con.execute("SELECT schema_name, table_name FROM duckdb_tables() WHERE NOT temporary AND database_name = current_database()").fetchall()
    return sorted(f"{s}.{n}" for s, n in names if n not in BOOKKEEPING)


def _sql(table: str) -> str:
    return ".".join(f'"{part}"' for part in table.split("."))


def test_killed_ingest_requeues_its_file_and_leaves_no_rows(tmp_path: Path, settings_for) -> None:  # type: ignore[no-untyped-def]
    data = build(tmp_path / "a")
    settings = settings_for(data, warehouse=str(tmp_path / "killed.duckdb"))
    marker = tmp_path / "paused"
    proc = ingest(settings, OPTIMUS_TEST_PAUSE_AFTER_ROWS="1", OPTIMUS_TEST_PAUSE_MARKER=str(marker))
    deadline = time.time() + 60
    while not marker.exists():
        assert proc.poll() is None, proc.stdout.read().decode()  # type: ignore[union-attr]
        assert time.time() < deadline, "the ingest never reached the pause point"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()

    con = duckdb.connect(settings.warehouse)
    running = con.execute("SELECT path FROM ingest_files WHERE state = 'running'").fetchall()
    assert len(running) == 1
    for table in data_tables(con):
        if "file_id" not in [r[0] for r in con.execute(f'DESCRIBE {_sql(table)}').fetchall()]:
            continue
        # the paused file's rows were never committed
        assert con.execute(f'SELECT count(*) FROM {_sql(table)} WHERE file_id = (SELECT id FROM ingest_files WHERE state = \'running\')').fetchone() == (0,)
    con.close()

    rerun = ingest(settings)
    assert rerun.wait(120) == 0, rerun.stdout.read().decode()  # type: ignore[union-attr]
    reference = settings_for(build(tmp_path / "b"), warehouse=str(tmp_path / "clean.duckdb"))
    assert ingest(reference).wait(120) == 0

    con = duckdb.connect(settings.warehouse)
    con.execute(f"ATTACH '{reference.warehouse}' AS clean (READ_ONLY)")
    assert con.execute("SELECT count(*) FROM ingest_files WHERE state <> 'done'").fetchone() == (0,)
    tables = data_tables(con)
    assert "edx.auth_user" in tables and "edx.student_courseenrollment" in tables
    for table in tables:
        cols = [c for c in (r[0] for r in con.execute(f"DESCRIBE {_sql(table)}").fetchall()) if c not in ("file_id", "computed_at", "looked_up_at")]
        select = ", ".join(f'"{c}"' for c in cols)
        killed = con.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
        for a, b in ((killed, "clean"), ("clean", killed)):
            extra = con.execute(f'SELECT count(*) FROM (SELECT {select} FROM {a}.{_sql(table)} EXCEPT ALL SELECT {select} FROM {b}.{_sql(table)})').fetchone()
            assert extra == (0,), f"{table}: rows in {a} not in {b}"
