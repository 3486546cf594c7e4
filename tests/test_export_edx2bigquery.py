"""`optimus export --format edx2bigquery`: edx2bigquery's person_course columns, order and types, read back.

The expected names, order and types are written out here from edx2bigquery's
`schemas/schema_person_course.json` (not imported from the module under test), and the expected
values come from the warehouse's own person_course rows, converted by the rules of that schema.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import person_course_data as D
from conftest import ingest, query_rows
from optimus.pipeline import open_warehouse

# schema_person_course.json (mitodl/edx2bigquery), in its order
EDX2BIGQUERY = """
course_id STRING, user_id INTEGER, username STRING, registered BOOLEAN, viewed BOOLEAN, explored BOOLEAN,
certified BOOLEAN, completed BOOLEAN, ip STRING, cc_by_ip STRING, countryLabel STRING, continent STRING,
city STRING, region STRING, subdivision STRING, postalCode STRING, un_major_region STRING,
un_economic_group STRING, un_developing_nation STRING, un_special_region STRING, latitude FLOAT,
longitude FLOAT, LoE STRING, YoB INTEGER, gender STRING, grade FLOAT, passing_grade FLOAT,
start_time TIMESTAMP, first_event TIMESTAMP, last_event TIMESTAMP, nevents INTEGER, ndays_act INTEGER,
nplay_video INTEGER, nchapters INTEGER, nforum_posts INTEGER, nforum_votes INTEGER, nforum_endorsed INTEGER,
nforum_threads INTEGER, nforum_comments INTEGER, nforum_pinned INTEGER, roles STRING, nprogcheck INTEGER,
nproblem_check INTEGER, nforum_events INTEGER, mode STRING, is_active INTEGER, cert_created_date STRING,
cert_modified_date STRING, cert_status STRING, verified_enroll_time TIMESTAMP, verified_unenroll_time TIMESTAMP,
profile_country STRING, y1_anomalous INTEGER, email_domain STRING, language STRING, language_download INTEGER,
language_nevents INTEGER, language_ndiff INTEGER, ntranscript INTEGER, nshow_answer INTEGER, nvideo INTEGER,
nvideos_unique_viewed INTEGER, nvideos_total_watched FLOAT, nseq_goto INTEGER, nseek_video INTEGER,
npause_video INTEGER, avg_dt FLOAT, sdv_dt FLOAT, max_dt FLOAT, n_dt INTEGER, sum_dt FLOAT,
roles_isBetaTester INTEGER, roles_isInstructor INTEGER, roles_isStaff INTEGER, roles_isCCX INTEGER,
roles_isFinance INTEGER, roles_isLibrary INTEGER, roles_isSales INTEGER, forumRoles_isAdmin INTEGER,
forumRoles_isCommunityTA INTEGER, forumRoles_isModerator INTEGER, forumRoles_isStudent INTEGER
"""
COLUMNS = [tuple(part.split()) for part in " ".join(EDX2BIGQUERY.split()).split(", ")]
NAMES = [name for name, _ in COLUMNS]
PARQUET_TYPES = {
    "STRING": pa.string(),
    "INTEGER": pa.int64(),
    "FLOAT": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
}


@pytest.fixture
def package_on(data_path: Path, settings_for: Any, backend: dict[str, Any]) -> Any:
    D.write_package(data_path)
    settings = settings_for(data_path, **backend)
    ingest(settings)
    return settings


def utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def expected_rows(settings: Any, course_key: str) -> list[dict[str, Any]]:
    """The warehouse's person_course rows of a course as edx2bigquery's table would hold them."""
    rows = query_rows(settings, "SELECT * FROM person_course WHERE course_key = ? ORDER BY user_id", [course_key], as_dicts=True)
    # edx2bigquery's person_course joins person_enrollment_verified (the Enrollment service's table) for these two
    verified = {
        r["user_id"]: r
        for r in query_rows(settings, "SELECT * FROM person_enrollment_verified WHERE course_key = ?", [course_key], as_dicts=True)
    }
    out = []
    for row in rows:
        row = {**row, **{k: verified.get(row["user_id"], {}).get(k) for k in ("verified_enroll_time", "verified_unenroll_time")}}
        want: dict[str, Any] = {}
        for name, kind in COLUMNS:
            value = row.get(name)
            if name == "course_id":
                value = course_key.replace("+", "/")  # org/course/run
            elif value is None:
                pass
            elif kind == "BOOLEAN":
                value = {0: False, 1: True}[value]
            elif kind == "INTEGER":
                value = int(value)
            elif kind == "FLOAT":
                value = float(value)
            elif kind == "TIMESTAMP":
                value = utc(value)
            elif kind == "STRING":
                value = str(value)  # the certificate dates: `2024-01-07 10:00:00`
            want[name] = value
        out.append(want)
    return out


def csv_value(text: str, kind: str) -> Any:
    if text == "":
        return None
    if kind == "BOOLEAN":
        return {"true": True, "false": False}[text]
    if kind == "INTEGER":
        return int(text)
    if kind == "FLOAT":
        return float(text)
    if kind == "TIMESTAMP":
        return utc(datetime.fromisoformat(text))
    return text


def read_export(folder: Path, part: str) -> tuple[list[str], list[dict[str, Any]], pa.Table]:
    """The newest CSV (header, typed rows) and Parquet table of one course."""
    csv_path = sorted(folder.glob(f"personcourse_{part}_*.csv"))[-1]
    parquet_path = sorted(folder.glob(f"personcourse_{part}_*.parquet"))[-1]
    with open(csv_path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        kinds = dict(COLUMNS)
        rows = [{name: csv_value(cell, kinds.get(name, "STRING")) for name, cell in zip(header, line, strict=True)} for line in reader]
    return header, rows, pq.read_table(parquet_path)


def test_edx2bigquery_export_has_their_columns_order_types_and_our_values(package_on: Any, cli: Any) -> None:
    settings = package_on
    result = cli(["export", "--format", "edx2bigquery"], settings)
    assert result.exit_code == 0, result.output
    folder = Path(settings.export_path) / "edx2bigquery"
    checked = 0
    for key, part in ((D.A_KEY, "UQx-Alpha-2024"), (D.B_KEY, "UQx-Beta-2024")):
        header, csv_rows, table = read_export(folder, part)
        assert header == NAMES
        assert table.column_names == NAMES
        assert [(f.name, f.type) for f in table.schema] == [(name, PARQUET_TYPES[kind]) for name, kind in COLUMNS]
        want = expected_rows(settings, key)
        assert want
        assert table.to_pylist() == want
        assert csv_rows == want
        checked += len(want)
        assert {r["course_id"] for r in want} == {key.replace("+", "/")}
        # columns we have no source for are empty; flags are booleans, not 0/1
        assert all(r["subdivision"] is None and r["y1_anomalous"] is None for r in want)
        assert {type(r["registered"]) for r in want} == {bool}
    assert checked >= 8
    assert "written empty" in result.output and "subdivision" in result.output


def test_edx2bigquery_export_fills_a_column_in_once_person_course_has_it(data_path: Path, settings_for: Any, cli: Any) -> None:
    """Found by name: a person_course column named as edx2bigquery's (here ntranscript) is exported as soon as it exists."""
    D.write_package(data_path)
    settings = settings_for(data_path)
    ingest(settings)
    wh = open_warehouse(settings)
    try:
        if "ntranscript" not in wh.columns("person_course"):
            wh.execute("ALTER TABLE person_course ADD COLUMN ntranscript BIGINT")
        wh.execute("UPDATE person_course SET ntranscript = user_id * 10")
    finally:
        wh.close()
    result = cli(["export", "--format", "edx2bigquery", "--course", D.A], settings)
    assert result.exit_code == 0, result.output
    folder = Path(settings.export_path) / "edx2bigquery"
    assert not list(folder.glob("personcourse_UQx-Beta-2024_*"))  # --course: that course only
    _, csv_rows, table = read_export(folder, "UQx-Alpha-2024")
    got = [(r["user_id"], r["ntranscript"]) for r in table.to_pylist()]
    assert got and all(n == uid * 10 for uid, n in got)
    assert [(r["user_id"], r["ntranscript"]) for r in csv_rows] == got
    assert "ntranscript" not in result.output.split("written empty")[-1]


def test_edx2bigquery_has_no_deidentified_form(package_on: Any, cli: Any) -> None:
    """--deidentified is the de-identified release (tests/test_release.py), in optimus's columns only: a copy in
    edx2bigquery's columns that only emptied the identifiers was no de-identified copy."""
    settings = package_on
    result = cli(["export", "--format", "edx2bigquery", "--deidentified"], settings)
    assert result.exit_code != 0
    assert "optimus release" in result.output
    assert not (Path(settings.export_path) / "deidentified").exists()
