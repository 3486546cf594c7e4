"""Failed files are visible: in the summary, in the exit status of every later ingest, in `status --files`,
and `optimus retry` queues them again (issue 14, "Failed files are visible")."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import duckdb

from conftest import query_rows
from test_database_state import HEADER, ROWS, write_tsv

PKG = Path("database_state") / "2024-01-07"


def good_bytes(tmp: Path) -> bytes:
    write_tsv(tmp, HEADER, ROWS)
    return tmp.read_bytes()


def broken_in_place(path: Path, good: bytes) -> None:
    """A file of the good file's size whose content cannot load (no header line)."""
    path.write_bytes(b"\n" * len(good))
    os.utime(path, (1_700_000_000, 1_700_000_000))


def fixed_in_place(path: Path, good: bytes) -> None:
    """The fix an operator makes with `cp -p`: same size, same modification time, so a scan sees no change."""
    path.write_bytes(good)
    os.utime(path, (1_700_000_000, 1_700_000_000))


def three_files(data_path: Path, tmp_path: Path) -> tuple[bytes, list[Path]]:
    good = good_bytes(tmp_path / "good.sql")
    pkg = data_path / PKG
    paths = [pkg / f"UQx-{c}-1-auth_user-prod-analytics.sql" for c in "ABC"]
    paths[0].write_bytes(good)
    broken_in_place(paths[1], good)
    broken_in_place(paths[2], good)
    return good, paths


def states(settings: Any) -> dict[str, str]:
    return {Path(p).name: s for p, s in query_rows(settings, "SELECT path, state FROM ingest_files")}


def test_summary_says_files_failed_and_names_each_path_once(data_path: Path, tmp_path: Path, settings_for: Any, cli: Any) -> None:
    _good, paths = three_files(data_path, tmp_path)
    settings = settings_for(data_path)
    result = cli(["ingest"], settings, env={"COLUMNS": "1000"})  # no wrapped lines
    assert result.exit_code == 1, result.output
    row = [line for line in result.output.splitlines() if "DatabaseState" in line][-1]  # the ingest table, after the scan table
    assert "2 of 3 files failed" in row and " ok " not in row, row
    for path in paths[1:]:
        lines = [line for line in result.output.splitlines() if path.name in line]
        assert any(line.startswith("failed ") and "no header" in line for line in lines), result.output
        assert all(line.count(path.name) == 1 for line in lines), lines  # each message names the file once


def test_a_later_ingest_fails_while_files_are_failed_and_retry_loads_them(
    data_path: Path, tmp_path: Path, settings_for: Any, cli: Any
) -> None:
    good, paths = three_files(data_path, tmp_path)
    settings = settings_for(data_path)
    assert cli(["ingest"], settings).exit_code == 1
    for path in paths[1:]:
        fixed_in_place(path, good)
    later = cli(["ingest"], settings)
    assert later.exit_code == 1, later.output  # nothing new ran, but the warehouse still lacks two files
    assert "2 file(s) failed" in later.output and "optimus retry" in later.output, later.output
    assert list(states(settings).values()).count("failed") == 2

    retried = cli(["retry", "--service", "DatabaseState"], settings)
    assert retried.exit_code == 0, retried.output
    assert set(states(settings).values()) == {"done"}
    assert cli(["ingest"], settings).exit_code == 0


def test_ingest_retry_failed_flag_and_an_unknown_service(data_path: Path, tmp_path: Path, settings_for: Any, cli: Any) -> None:
    good, paths = three_files(data_path, tmp_path)
    settings = settings_for(data_path)
    assert cli(["ingest"], settings).exit_code == 1
    fixed_in_place(paths[1], good)
    result = cli(["ingest", "--retry-failed"], settings)
    assert result.exit_code == 1, result.output  # paths[2] is still broken: it failed again
    assert states(settings) == {paths[0].name: "done", paths[1].name: "done", paths[2].name: "failed"}
    assert cli(["retry", "--service", "NoSuchService"], settings).exit_code == 2


def test_status_files_lists_failed_damaged_and_quarantined_files(data_path: Path, tmp_path: Path, settings_for: Any, cli: Any) -> None:
    _good, paths = three_files(data_path, tmp_path)
    noisy = data_path / PKG / "UQx-D-1-auth_user-prod-analytics.sql"
    write_tsv(noisy, HEADER, [*ROWS, ["9", "only", "three"]])  # one line with too few fields: quarantined
    settings = settings_for(data_path)
    assert cli(["ingest"], settings).exit_code == 1
    # A damaged file (a truncated archive; its loaders are another change) is a ledger state: set it here.
    con = duckdb.connect(settings.warehouse)
    con.execute(
        "UPDATE ingest_files SET state = 'damaged', coerced = 3, damage = 'gzip stream ends early at byte 1234' WHERE path = ?",
        [str(paths[0].resolve())],
    )
    con.close()

    text = cli(["status", "--files"], settings, env={"COLUMNS": "1000"})
    assert text.exit_code == 0, text.output
    assert "gzip stream ends early at byte 1234" in text.output
    for path in (*paths, noisy):
        assert path.name in text.output, text.output
    assert "header" in text.output  # the failed files' error

    listed = json.loads(cli(["status", "--files", "--json"], settings).stdout)
    by_name = {Path(f["path"]).name: f for f in listed["files"]}
    assert set(by_name) == {p.name for p in (*paths, noisy)}
    assert by_name[paths[0].name]["state"] == "damaged" and by_name[paths[0].name]["coerced"] == 3
    assert by_name[paths[0].name]["damage"] == "gzip stream ends early at byte 1234"
    assert by_name[paths[1].name]["state"] == "failed" and "header" in by_name[paths[1].name]["error"]
    assert by_name[noisy.name]["rows_quarantined"] == 1 and by_name[noisy.name]["rows_loaded"] == len(ROWS)
    assert listed["services"]["DatabaseState"]["damaged"] == 1 and listed["services"]["DatabaseState"]["failed"] == 2


def test_damaged_files_are_reported_but_ingest_exits_0(data_path: Path, settings_for: Any, cli: Any) -> None:
    write_tsv(data_path / PKG / "UQx-A-1-auth_user-prod-analytics.sql", HEADER, ROWS)
    settings = settings_for(data_path)
    assert cli(["ingest"], settings).exit_code == 0
    con = duckdb.connect(settings.warehouse)
    con.execute("UPDATE ingest_files SET state = 'damaged', damage = 'CRC error at byte 99'")
    con.close()
    result = cli(["ingest"], settings)
    assert result.exit_code == 0, result.output
    assert "1 damaged file(s)" in result.output, result.output
