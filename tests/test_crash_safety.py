"""A run killed in the middle of a file leaves nothing half-written; the rerun equals an uninterrupted run."""

from __future__ import annotations

from pathlib import Path

import duckdb

from conftest import assert_same_tables, data_tables, kill_when_paused, make_data_path, optimus_process, query_rows, quoted
from test_database_state import HEADER, ROWS, write_tsv


def build(root: Path) -> Path:
    data = make_data_path(root)
    pkg = data / "database_state" / "2024-01-07"
    write_tsv(pkg / "UQx-A-1-auth_user-prod-analytics.sql", HEADER, ROWS)
    write_tsv(pkg / "UQx-B-2-auth_user-prod-analytics.sql", HEADER, ROWS[:2])
    write_tsv(
        pkg / "UQx-A-1-student_courseenrollment-prod-analytics.sql",
        ["id", "user_id", "course_id", "created", "is_active", "mode"],
        [["1", "1", "UQx/A/1", "2015-01-01 00:00:00", "1", "honor"]],
    )
    return data


def test_killed_ingest_requeues_its_file_and_leaves_no_rows(tmp_path: Path, settings_for) -> None:
    data = build(tmp_path / "a")
    settings = settings_for(data, warehouse=str(tmp_path / "killed.duckdb"))
    marker = tmp_path / "paused"
    proc = optimus_process(settings, OPTIMUS_TEST_PAUSE_AFTER_ROWS="1", OPTIMUS_TEST_PAUSE_MARKER=str(marker))
    assert kill_when_paused(proc, marker), proc.stdout.read().decode()

    con = duckdb.connect(settings.warehouse)
    running = con.execute("SELECT path FROM ingest_files WHERE state = 'running'").fetchall()
    assert len(running) == 1
    for table in data_tables(con):
        if "file_id" not in [r[0] for r in con.execute(f"DESCRIBE {quoted(table)}").fetchall()]:
            continue
        # the paused file's rows were never committed
        assert con.execute(
            f"SELECT count(*) FROM {quoted(table)} WHERE file_id = (SELECT id FROM ingest_files WHERE state = 'running')"
        ).fetchone() == (0,)
    con.close()

    rerun = optimus_process(settings)
    assert rerun.wait(120) == 0, rerun.stdout.read().decode()
    reference = settings_for(build(tmp_path / "b"), warehouse=str(tmp_path / "clean.duckdb"))
    assert optimus_process(reference).wait(120) == 0

    assert query_rows(settings, "SELECT count(*) FROM ingest_files WHERE state <> 'done'") == [(0,)]
    tables = assert_same_tables(settings.warehouse, reference.warehouse)
    assert "edx.auth_user" in tables and "edx.student_courseenrollment" in tables
