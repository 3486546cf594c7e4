"""The ledger and the warehouse's schema version."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import make_data_path, query_rows
from optimus.errors import SchemaVersionError
from optimus.warehouse import connect, schema
from test_database_state import HEADER, ROWS, write_tsv


def test_relinked_latest_queues_every_file(tmp_path: Path, settings_for, cli) -> None:
    data = make_data_path(tmp_path / "data", "2024-01-07")
    for package in ("2024-01-07", "2024-01-14"):
        pkg = data / "database_state" / package
        pkg.mkdir(exist_ok=True)
        write_tsv(pkg / "UQx-A-1-auth_user-prod-analytics.sql", HEADER, ROWS)
        write_tsv(pkg / "UQx-B-2-auth_user-prod-analytics.sql", HEADER, ROWS)
    settings = settings_for(data)
    assert cli(["scan"], settings).exit_code == 0
    make_data_path(data, "2024-01-14")
    result = cli(["scan"], settings)
    assert "DatabaseState" in result.output
    rows = query_rows(settings, "SELECT package_date::VARCHAR, count(*) FROM ingest_files WHERE state = 'queued' GROUP BY 1 ORDER BY 1")
    assert rows == [("2024-01-07", 2), ("2024-01-14", 2)]


def test_ingest_one_file_by_name_or_by_service(tmp_path: Path, data_path: Path, settings_for, cli) -> None:
    odd = tmp_path / "export-of-users.tsv"  # a name no rule knows
    write_tsv(odd, HEADER, ROWS)
    settings = settings_for(data_path)
    refused = cli(["ingest", "--file", str(odd)], settings)
    assert refused.exit_code == 2 and "--service" in refused.output
    # a non-standard name needs the service, and its table from the name: fails clearly, names the file
    result = cli(["ingest", "--file", str(odd), "--service", "DatabaseState"], settings)
    assert result.exit_code == 1 and "export-of-users.tsv" in result.output
    good = data_path / "database_state" / "2024-01-07" / "UQx-A-1-auth_user-prod-analytics.sql"
    write_tsv(good, HEADER, ROWS)
    # the good file loads; the exit status still says the odd file failed (it is not in the warehouse)
    loaded = cli(["ingest", "--file", str(good)], settings)
    assert loaded.exit_code == 1 and "1 file(s) failed" in loaded.output, loaded.output
    assert query_rows(settings, "SELECT count(*) FROM edx.auth_user") == [(len(ROWS),)]


def test_schema_version_is_recorded_migrated_and_a_newer_one_refused(data_path: Path, settings_for, cli) -> None:
    settings = settings_for(data_path)
    assert cli(["ingest"], settings).exit_code == 0
    wh = connect(settings)
    assert schema.current_version(wh) == schema.SCHEMA_VERSION
    # an older warehouse (here: one that predates the version table) is brought up to date
    wh.execute("DROP TABLE schema_info")
    assert schema.ensure(wh) == schema.SCHEMA_VERSION and schema.current_version(wh) == schema.SCHEMA_VERSION
    wh.execute("INSERT INTO schema_info (version) VALUES (?)", [schema.SCHEMA_VERSION + 1])
    with pytest.raises(SchemaVersionError):
        schema.ensure(wh)
    wh.close()
    result = cli(["ingest"], settings)
    assert result.exit_code == 2 and "newer" in result.output and "upgrade" in result.output
