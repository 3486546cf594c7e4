"""Database State: the TSV dumps land typed, with NULLs and escapes decoded, one package replacing another."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import duckdb
import pytest

from conftest import make_data_path, query_rows, reading

HEADER = ["id", "username", "first_name", "last_name", "email", "is_staff", "is_active", "last_login", "date_joined"]
ROWS = [
    ["1", "ann", "Ann\\tMarie", "O\\\\Neil", "ann@example.org", "0", "1", "2015-08-12 23:13:03", "2015-01-02 03:04:05.250000"],
    ["2", "bob", "", "NULL", "NULL", "1", "1", "NULL", "2015-01-02 03:04:05"],
    ["3", "cyd", "line\\nbreak", "cr\\rhere", "c@example.org", "0", "0", "2016-02-29 12:00:00.000001", "2014-12-31 23:59:59"],
    ["4", "dee", "back\\\\tslash", "x", "d@example.org", "0", "1", "NULL", "2014-12-31 23:59:59"],
]


def write_tsv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")


def decode(value: str) -> str | None:
    """The edX escape rules, written independently of the loader: one pass, left to right."""
    if value == "NULL":
        return None
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\" and i + 1 < len(value):
            out.append({"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}.get(value[i + 1], value[i + 1]))
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def test_values_types_nulls_and_escapes_match_the_tsv(data_path: Path, settings_for, cli) -> None:
    pkg = data_path / "database_state" / "2024-01-07"
    write_tsv(pkg / "UQx-BIO101-1T2015-auth_user-prod-analytics.sql", HEADER, ROWS)
    settings = settings_for(data_path)
    result = cli(["ingest"], settings)
    assert result.exit_code == 0, result.output
    got = query_rows(settings, f"SELECT {', '.join(HEADER)} FROM edx.auth_user ORDER BY id")
    for row, expected in zip(got, ROWS, strict=True):
        want = [decode(v) for v in expected]
        assert row[0] == int(want[0])
        assert list(row[1:5]) == want[1:5]
        assert row[5] is (want[5] == "1") and row[6] is (want[6] == "1")
        for value, text in zip(row[7:], want[7:], strict=True):
            assert value == (None if text is None else datetime.fromisoformat(text))
    assert len(got) == len(ROWS)
    # an empty string stays an empty string; only the literal NULL is SQL NULL
    assert query_rows(settings, "SELECT first_name IS NULL, last_name IS NULL FROM edx.auth_user WHERE id = 2") == [(False, True)]
    assert query_rows(settings, "SELECT DISTINCT course_id, course_key, site, package_date::VARCHAR FROM edx.auth_user") == [
        ("UQx/BIO101/1T2015", "UQx+BIO101+1T2015", "prod", "2024-01-07")
    ]
    types = dict(query_rows(settings, "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = 'auth_user'"))
    assert (types["id"], types["is_staff"], types["date_joined"], types["email"]) == ("BIGINT", "BOOLEAN", "TIMESTAMP", "VARCHAR")


def test_bad_lines_are_quarantined_with_their_line_and_the_rest_loads(data_path: Path, settings_for, cli) -> None:
    pkg = data_path / "database_state" / "2024-01-07"
    rows = [ROWS[0], ["x", "bad", "a", "b", "c", "0", "1", "NULL", "2015-01-01 00:00:00"], ROWS[1] + ["extra"], ROWS[2]]
    write_tsv(pkg / "UQx-BIO101-1T2015-auth_user-prod-analytics.sql", HEADER, rows)
    settings = settings_for(data_path)
    assert cli(["ingest"], settings).exit_code == 0
    assert [r[0] for r in query_rows(settings, "SELECT id FROM edx.auth_user ORDER BY id")] == [1, 3]
    bad = query_rows(settings, "SELECT line, reason FROM db_state_quarantine ORDER BY line")
    assert [line for line, _ in bad] == [3, 4]
    assert "column type" in bad[0][1] and "COLUMNS" in bad[1][1].upper()
    assert query_rows(settings, "SELECT rows_loaded, rows_quarantined, state FROM ingest_files") == [(2, 2, "done")]


def test_columns_are_matched_by_header_name_across_exports(data_path: Path, settings_for, cli) -> None:
    pkg = data_path / "database_state" / "2024-01-07"
    write_tsv(
        pkg / "UQx-A-1-student_courseenrollment-prod-analytics.sql",
        ["user_id", "id", "course_id", "created", "is_active", "mode"],
        [["7", "1", "UQx/A/1", "2015-01-01 00:00:00", "1", "honor"]],
    )
    # a newer export with one more column and the columns in another order
    write_tsv(
        pkg / "UQx-B-2-student_courseenrollment-prod-analytics.sql",
        ["id", "course_id", "user_id", "created", "is_active", "mode", "new_col"],
        [["2", "course-v1:UQx+B+2", "8", "2016-01-01 00:00:00", "0", "verified", "v"]],
    )
    settings = settings_for(data_path)
    assert cli(["ingest"], settings).exit_code == 0
    got = query_rows(
        settings, "SELECT id, user_id, course_id, course_key, is_active, mode, new_col FROM edx.student_courseenrollment ORDER BY id"
    )
    assert got == [(1, 7, "UQx/A/1", "UQx+A+1", True, "honor", None), (2, 8, "course-v1:UQx+B+2", "UQx+B+2", False, "verified", "v")]


def test_an_ambiguous_file_name_takes_its_course_from_the_course_id_column(data_path: Path, settings_for, cli) -> None:
    pkg = data_path / "database_state" / "2024-01-07"
    write_tsv(
        pkg / "UQx-Think-101x-3T2015-student_courseenrollment-prod-analytics.sql",
        ["id", "user_id", "course_id", "created", "is_active", "mode"],
        [["1", "7", "course-v1:UQx+Think-101x+3T2015", "2015-01-01 00:00:00", "1", "honor"]],
    )
    settings = settings_for(data_path)
    assert cli(["ingest"], settings).exit_code == 0
    assert query_rows(settings, "SELECT course_id, course_key FROM ingest_files") == [
        ("course-v1:UQx+Think-101x+3T2015", "UQx+Think-101x+3T2015")
    ]
    assert ("UQx+Think-101x+3T2015", "course-v1:UQx+Think-101x+3T2015") in query_rows(
        settings, "SELECT course_key, course_id FROM course_ids"
    )


def test_newer_package_replaces_and_older_never_does(tmp_path: Path, settings_for, cli) -> None:
    data = make_data_path(tmp_path / "data", "2024-01-07")
    first = data / "database_state" / "2024-01-07"
    write_tsv(first / "UQx-A-1-auth_user-prod-analytics.sql", HEADER, ROWS)
    write_tsv(
        first / "UQx-A-1-student_courseaccessrole-prod-analytics.sql",
        ["org", "course_id", "user_id", "role"],
        [["UQx", "UQx/A/1", "1", "staff"]],
    )
    settings = settings_for(data)
    assert cli(["ingest"], settings).exit_code == 0

    make_data_path(data, "2024-01-14")  # relink latest to a newer package with fewer learners and no role file
    write_tsv(data / "database_state" / "2024-01-14" / "UQx-A-1-auth_user-prod-analytics.sql", HEADER, ROWS[:2])
    assert cli(["ingest"], settings).exit_code == 0
    assert [r[0] for r in query_rows(settings, "SELECT id FROM edx.auth_user ORDER BY id")] == [1, 2]
    assert query_rows(settings, "SELECT DISTINCT package_date::VARCHAR FROM edx.auth_user") == [("2024-01-14",)]
    # edX writes no file for an empty table: the newer package empties the course's roles, and says so
    assert query_rows(settings, "SELECT count(*) FROM edx.student_courseaccessrole") == [(0,)]
    assert query_rows(
        settings, "SELECT empty, package_date::VARCHAR FROM db_state_loads WHERE table_name = 'student_courseaccessrole'"
    ) == [(True, "2024-01-14")]

    make_data_path(data, "2024-01-01")  # an older package becomes `latest`: it must not replace newer rows
    write_tsv(data / "database_state" / "2024-01-01" / "UQx-A-1-auth_user-prod-analytics.sql", HEADER, ROWS[:1])
    assert cli(["ingest"], settings).exit_code == 0
    assert [r[0] for r in query_rows(settings, "SELECT id FROM edx.auth_user ORDER BY id")] == [1, 2]
    note = query_rows(settings, "SELECT note FROM ingest_files WHERE path LIKE '%2024-01-01%'")[0][0]
    assert "older" in note


def test_second_ingest_does_nothing_and_a_changed_file_replaces_its_rows(data_path: Path, settings_for, cli) -> None:
    pkg = data_path / "database_state" / "2024-01-07"
    target = pkg / "UQx-A-1-auth_user-prod-analytics.sql"
    write_tsv(target, HEADER, ROWS)
    settings = settings_for(data_path)
    assert cli(["ingest"], settings).exit_code == 0
    runs = query_rows(settings, "SELECT count(*) FROM service_runs")[0][0]
    again = cli(["ingest"], settings)
    assert again.exit_code == 0 and "nothing to do" in again.output
    assert query_rows(settings, "SELECT count(*) FROM service_runs")[0][0] == runs

    write_tsv(target, HEADER, ROWS[1:3])
    assert cli(["ingest"], settings).exit_code == 0
    assert [r[0] for r in query_rows(settings, "SELECT id FROM edx.auth_user ORDER BY id")] == [2, 3]
    status = json.loads(cli(["status", "--json"], settings).stdout)
    assert status["services"]["DatabaseState"]["done"] == 1 and status["services"]["DatabaseState"]["last_run"]


def test_a_rescan_of_an_unchanged_tree_reads_no_file(data_path: Path, settings_for, cli, monkeypatch) -> None:
    from optimus import ledger

    pkg = data_path / "database_state" / "2024-01-07"
    write_tsv(pkg / "UQx-A-1-auth_user-prod-analytics.sql", HEADER, ROWS)
    settings = settings_for(data_path)
    assert cli(["ingest"], settings).exit_code == 0
    reads: list[Path] = []
    original = ledger.fingerprint
    monkeypatch.setattr(ledger, "fingerprint", lambda path: reads.append(path) or original(path))
    assert cli(["scan"], settings).exit_code == 0
    assert reads == []
    # touching the file (same content) reads it once and queues nothing
    (pkg / "UQx-A-1-auth_user-prod-analytics.sql").touch()
    assert cli(["scan"], settings).exit_code == 0
    assert len(reads) == 1
    assert query_rows(settings, "SELECT state FROM ingest_files") == [("done",)]


def test_a_failing_file_is_marked_failed_and_the_others_load(data_path: Path, settings_for, cli) -> None:
    pkg = data_path / "database_state" / "2024-01-07"
    write_tsv(pkg / "UQx-A-1-auth_user-prod-analytics.sql", HEADER, ROWS)
    (pkg / "UQx-B-2-auth_userprofile-prod-analytics.sql").write_bytes(b"")  # no header row at all
    settings = settings_for(data_path)
    result = cli(["ingest"], settings)
    assert result.exit_code == 1
    assert "auth_userprofile" in result.output
    states = dict(query_rows(settings, "SELECT table_name, state FROM ingest_files"))
    assert states == {"auth_user": "done", "auth_userprofile": "failed"}
    error = query_rows(settings, "SELECT error FROM ingest_files WHERE state = 'failed'")[0][0]
    assert "UQx-B-2-auth_userprofile-prod-analytics.sql" in error and "header" in error


def test_a_file_read_ahead_loads_as_one_read_on_its_own(data_path: Path, settings_for, cli) -> None:
    """The second file is read while the first is loaded: its rejected lines, misfits and escapes come out the same."""
    pkg = data_path / "database_state" / "2024-01-07"
    write_tsv(pkg / "UQx-A-1-auth_user-prod-analytics.sql", HEADER, ROWS)
    escaped = ["5", "eve", "a\\\\b", "\\\\t\\t", "x\\\\\\\\y", "0", "1", "NULL", "2014-12-31 23:59:59"]
    rows = [ROWS[0], ["short"], ["x", "bad", "a", "b", "c", "0", "1", "NULL", "2015-01-01 00:00:00"], escaped, ROWS[2][:8] + ["not a time"]]
    write_tsv(pkg / "UQx-B-2-auth_user-prod-analytics.sql", HEADER, rows)
    settings = settings_for(data_path)
    assert cli(["ingest"], settings).exit_code == 0
    assert [r[0] for r in query_rows(settings, "SELECT id FROM edx.auth_user WHERE course_key = 'UQx+B+2' ORDER BY id")] == [1, 5]
    got = query_rows(settings, "SELECT first_name, last_name, email FROM edx.auth_user WHERE id = 5")
    assert got == [tuple(decode(v) for v in escaped[2:5])]
    bad = query_rows(
        settings,
        "SELECT line, reason FROM db_state_quarantine q JOIN ingest_files f ON f.id = q.file_id WHERE f.course_key = 'UQx+B+2' ORDER BY line",
    )
    assert [line for line, _ in bad] == [3, 4, 6]
    assert "COLUMNS" in bad[0][1].upper() and "column type" in bad[1][1] and "column type" in bad[2][1]
    assert query_rows(settings, "SELECT rows_loaded, rows_quarantined FROM ingest_files WHERE course_key = 'UQx+B+2'") == [(2, 3)]


def test_escape_decoding_matches_the_edx_rules() -> None:
    """The SQL decoding (with its shortcut for values whose only escape is `\\\\`) against the reference rules."""
    from optimus.formats.sql_tables import decode_escapes_sql
    from optimus.warehouse.dialects.duckdb import DuckDBDialect

    values = ["plain", "", "a\\\\b", "\\\\t", "\\t", "\\\\\\t", "x\\\\\\\\y\\\\n", "end\\\\", "\\r\\n", "\\\\\\\\"]
    con = duckdb.connect()
    got = [con.execute(f"SELECT {decode_escapes_sql('v', DuckDBDialect())} FROM (SELECT ? AS v)", [v]).fetchall()[0][0] for v in values]
    assert got == [decode(v) for v in values]


def test_misfits_of_a_big_dump_keep_their_line_numbers(data_path: Path, settings_for, cli) -> None:
    """The misfit re-read numbers lines by the order rows are stored in; the engine's settings are locked
    (no `SET preserve_insertion_order`), so that read is one thread's, in the file's order."""
    pkg = data_path / "database_state" / "2024-01-07"
    bad_at = {7, 150_001, 299_998}  # lines (the header is line 1)
    rows = [
        [("x" if n + 2 in bad_at else str(n)), f"u{n}", "a", "b", f"u{n}@example.org", "0", "1", "NULL", "2015-01-01 00:00:00"]
        for n in range(300_000)
    ]
    write_tsv(pkg / "UQx-BIG-1T2015-auth_user-prod-analytics.sql", HEADER, rows)
    settings = settings_for(data_path)
    assert cli(["ingest"], settings).exit_code == 0
    assert [line for (line,) in query_rows(settings, "SELECT line FROM db_state_quarantine ORDER BY line")] == sorted(bad_at)
    assert query_rows(settings, "SELECT count(*) FROM edx.auth_user")[0][0] == 300_000 - len(bad_at)


# -- raw edX tables live apart (issue 13 items 4, 5) -------------------------------------------
def test_raw_tables_live_in_the_edx_schema(data_path: Path, settings_for, cli, backend) -> None:
    pkg = data_path / "database_state" / "2024-01-07"
    write_tsv(pkg / "UQx-BIO101-1T2015-auth_user-prod-analytics.sql", HEADER, ROWS)
    settings = settings_for(data_path, **backend)
    result = cli(["ingest"], settings)
    assert result.exit_code == 0, result.output
    assert query_rows(settings, "SELECT id FROM edx.auth_user ORDER BY id") == [(1,), (2,), (3,), (4,)]
    with reading(settings) as wh:
        assert not wh.table_exists("auth_user"), "a raw table must not be among Optimus's own tables"
        assert wh.table_exists("auth_user", schema=wh.raw_schema)


OPTIMUS_TABLES = ["forum_posts", "events", "ingest_files", "person_course", "schema_info", "db_state_loads", "courses", "course_ids"]


@pytest.mark.parametrize("table", OPTIMUS_TABLES)
def test_a_dump_named_after_an_optimus_table_never_reaches_it(data_path: Path, settings_for, cli, backend, table: str) -> None:
    pkg = data_path / "database_state" / "2024-01-07"
    write_tsv(pkg / "UQx-BIO101-1T2015-auth_user-prod-analytics.sql", HEADER, ROWS)
    settings = settings_for(data_path, **backend)
    assert cli(["ingest"], settings).exit_code == 0
    with reading(settings) as wh:
        before = wh.query(f"SELECT * FROM {wh.quote(table)}") if wh.table_exists(table) else None
        columns_before = wh.columns(table) if before is not None else None
    # a dump that shares the table's name and looks like it (some of its columns)
    write_tsv(
        pkg / f"UQx-BIO101-1T2015-{table}-prod-analytics.sql",
        ["id", "course_key", "version", "path", "x"],
        [["1", "evil", "99", "/evil", "y"]],
    )
    cli(["ingest"], settings)
    with reading(settings) as wh:
        if before is not None:
            after = wh.query(f"SELECT * FROM {wh.quote(table)}")
            if table not in ("ingest_files", "schema_info", "db_state_loads", "course_ids"):  # the bookkeeping moves on
                assert after == before, f"{table} changed"
            assert wh.columns(table) == columns_before, f"{table} got new columns"
        assert wh.query(f"SELECT x FROM {wh.quote(wh.raw_schema)}.{wh.quote(table)}") == [("y",)]


def test_a_dump_whose_first_row_is_data_fails_and_creates_no_column(data_path: Path, settings_for, cli, backend) -> None:
    pkg = data_path / "database_state" / "2024-01-07"
    write_tsv(pkg / "UQx-BIO101-1T2015-auth_user-prod-analytics.sql", HEADER, ROWS)
    settings = settings_for(data_path, **backend)
    assert cli(["ingest"], settings).exit_code == 0
    name = "UQx-CHEM-1T2015-auth_user-prod-analytics.sql"
    write_tsv(pkg / name, ROWS[0], ROWS[1:])  # no header: its first row is a learner
    cli(["ingest"], settings)
    ((state, error),) = query_rows(settings, "SELECT state, error FROM ingest_files WHERE path LIKE ?", [f"%{name}"])
    assert state == "failed" and name in error and "header" in error, error
    with reading(settings) as wh:
        columns = wh.columns("auth_user", schema=wh.raw_schema)
    assert not {"ann", "ann@example.org", "1"} & set(columns), columns
    assert query_rows(settings, "SELECT count(*) FROM edx.auth_user WHERE course_key = 'UQx+CHEM+1T2015'") == [(0,)]


@pytest.mark.parametrize(
    "header,why",
    [
        (["id", "user name", "email"], "identifier"),  # a space: a value, not a column name
        (["id", "email"], "username"),  # a known table without its key columns
        (["1", "username"], "identifier"),
        (["id", "username", "ann@example.org"], "identifier"),
    ],
)
def test_a_header_must_be_identifiers_with_the_key_columns(data_path: Path, settings_for, cli, header: list[str], why: str) -> None:
    name = "UQx-BIO101-1T2015-auth_user-prod-analytics.sql"
    write_tsv(data_path / "database_state" / "2024-01-07" / name, header, [["1"] * len(header)])
    settings = settings_for(data_path)
    cli(["ingest"], settings)
    ((state, error),) = query_rows(settings, "SELECT state, error FROM ingest_files")
    assert state == "failed" and name in error and why in error, error


def test_new_header_columns_of_a_known_table_are_accepted(data_path: Path, settings_for, cli) -> None:
    write_tsv(
        data_path / "database_state" / "2024-01-07" / "UQx-BIO101-1T2015-auth_user-prod-analytics.sql",
        HEADER + ["newer_column"],
        [r + ["v"] for r in ROWS],
    )
    settings = settings_for(data_path)
    assert cli(["ingest"], settings).exit_code == 0
    assert query_rows(settings, "SELECT DISTINCT newer_column FROM edx.auth_user") == [("v",)]


@pytest.mark.parametrize("table", ["Auth-User", "1table", "auth_usér", "a b"])
def test_a_table_name_from_a_file_name_must_be_an_identifier(table: str) -> None:
    from optimus.errors import UnsafeName
    from optimus.formats import sql_tables

    with pytest.raises(UnsafeName):
        sql_tables.safe_table_name(table, "x.sql")


def test_a_warehouse_from_before_the_edx_schema_moves_its_raw_tables(data_path: Path, settings_for, cli, backend) -> None:
    from optimus.warehouse import connect

    pkg = data_path / "database_state" / "2024-01-07"
    write_tsv(pkg / "UQx-BIO101-1T2015-auth_user-prod-analytics.sql", HEADER, ROWS)
    settings = settings_for(data_path, **backend)
    assert cli(["ingest"], settings).exit_code == 0
    wh = connect(settings)
    try:  # the old layout: the raw table beside Optimus's own, and a dump that once replaced an Optimus table
        wh.execute(f"CREATE TABLE {wh.quote('auth_user')} AS SELECT * FROM edx.auth_user")
        wh.execute("DROP TABLE edx.auth_user")
        wh.execute(
            "INSERT INTO db_state_loads SELECT course_key, site, 'courses', course_id, package_date, file_id, 1, false, loaded_at "
            "FROM db_state_loads WHERE table_name = 'auth_user'"
        )
        wh.execute("UPDATE ingest_files SET table_name = 'courses' WHERE table_name = 'auth_user'")
    finally:
        wh.close()
    result = cli(["ingest"], settings)
    assert result.exit_code == 0, result.output
    with reading(settings) as wh:
        assert not wh.table_exists("auth_user")
        assert wh.query("SELECT id FROM edx.auth_user ORDER BY id") == [(1,), (2,), (3,), (4,)]
        assert "display_name" in wh.columns("courses") and "id" not in wh.columns("courses")  # Optimus's own table stays ...
        assert wh.query("SELECT count(*) FROM edx.courses") == [(4,)]  # ... and the dump that reached it loaded again, apart


def test_db_state_loads_names_each_course_in_one_form(tmp_path: Path) -> None:
    """A course-v1 course's dumps without a course_id column (auth_user) are named by the file name's
    org/course/run form; its dumps with one say course-v1: db_state_loads uses the course's own id for all its
    tables (the sample's manifest says which form each course has)."""
    from conftest import ingest_sample

    settings = ingest_sample(tmp_path)
    manifest = json.loads((tmp_path / "data" / "sample_manifest.json").read_text())
    expected = {c["old_id"].replace("/", "+"): c["course_id"] for c in manifest["courses"]}
    assert "new" in {c["id_form"] for c in manifest["courses"]}, "the sample has a course-v1 course"
    got: dict[str, set[str]] = {}
    for key, course_id in query_rows(settings, "SELECT course_key, course_id FROM db_state_loads"):
        got.setdefault(key, set()).add(course_id)
    assert got == {key: {course_id} for key, course_id in expected.items() if key in got}
    assert len(got) == len(expected)
