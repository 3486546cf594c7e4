"""The frame of the research tables (services/course_tables.py): every table documented column by column,
declared with a course key, and served by the API only as its declaration allows."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from conftest import ingest, query_rows
from optimus.config import Settings
from optimus.services import load_services, research_tables
from optimus.services.course_tables import CourseTables

ROOT = Path(__file__).resolve().parents[1]


def test_every_research_table_column_is_in_its_services_dictionary() -> None:
    missing: list[str] = []
    for name, (service, table) in research_tables().items():
        assert service.dictionary, f"{service.name} names no data dictionary"
        text = (ROOT / service.dictionary).read_text()
        assert f"`{name}`" in text, f"{service.dictionary} does not name table {name}"
        missing += [f"{name}.{c}" for c in table.columns if not re.search(rf"`{re.escape(c)}`", text)]
    assert missing == []


def test_table_names_are_plain_identifiers_and_unique_across_services() -> None:
    tables = research_tables()
    for name, (_service, table) in tables.items():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name
        assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", c) for c in table.columns), name


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    from conftest import ingest_sample

    return ingest_sample(tmp_path_factory.mktemp("research"), api_token="tok-en")


def test_every_research_table_is_filled_by_the_sample_and_a_second_run_recomputes_nothing(sample: Settings) -> None:
    empty = [name for name in research_tables() if not query_rows(sample, f"SELECT count(*) FROM {name}")[0][0]]
    assert empty == []
    runs = query_rows(sample, "SELECT count(*) FROM service_runs")[0][0]
    ingest(sample)
    derived = [name for name, cls in load_services().items() if issubclass(cls, CourseTables)]
    marks = ", ".join("?" for _ in derived)
    again = query_rows(
        sample, f"SELECT service, rows FROM service_runs WHERE id > ? AND service IN ({marks}) AND rows > 0", [runs, *derived]
    )
    assert again == []


def test_the_api_lists_the_tables_and_serves_per_learner_rows_only_with_the_token(sample: Settings) -> None:
    from fastapi.testclient import TestClient

    from optimus.api.app import create_app
    from optimus.api.state import ReadViews
    from optimus.warehouse import connect

    declared = research_tables()
    personal = sorted(n for n, (_s, t) in declared.items() if t.personal)
    open_ = sorted(n for n, (_s, t) in declared.items() if not t.personal)
    assert personal and open_
    wh = connect(sample)
    try:
        with TestClient(create_app(sample, ReadViews(sample, wh, size=2))) as client:
            listed = {t["name"]: t for t in client.get("/api/v1/tables").json()["tables"]}
            assert set(listed) == set(declared)
            assert all(
                listed[n]["personal"] == declared[n][1].personal and listed[n]["columns"] == list(declared[n][1].columns) for n in declared
            )
            key = wh.query(f"SELECT min(course_key) FROM {personal[0]}")[0][0]
            for name in personal:
                assert client.get(f"/api/v1/courses/{key}/tables/{name}").status_code == 401, name
                assert client.get(f"/api/v1/courses/{key}/tables/{name}", headers={"Authorization": "Bearer wrong"}).status_code == 403
            for name in [*open_, *personal]:
                got = client.get(
                    f"/api/v1/courses/{key}/tables/{name}", params={"limit": 100000}, headers={"Authorization": "Bearer tok-en"}
                )
                assert got.status_code == 200, name
                want = wh.query(f"SELECT count(*) FROM {name} WHERE course_key = ?", [key])[0][0]
                assert got.json()["total"] == len(got.json()["rows"]) == want, name
            assert client.get(f"/api/v1/courses/{key}/tables/auth_user").status_code == 404  # only declared tables, never any other
            assert client.get(f"/api/v1/courses/{key}/tables/{open_[0]}", params={"format": "csv"}).text.splitlines()[0].split(",") == list(
                declared[open_[0]][1].columns
            )
    finally:
        wh.close()


def test_export_writes_each_table_per_course_and_has_no_deidentified_per_learner_copy(sample: Settings, cli: Any) -> None:
    import pyarrow.parquet as pq

    key = query_rows(sample, "SELECT min(course_key) FROM video_axis")[0][0]
    done = cli(["export", "--table", "video_axis", "--table", "user_info_combo", "--course", f"course-v1:{key}"], sample)
    assert done.exit_code == 0, done.output
    # the run's own exports (person_course, ...) are there too: only the tables asked for are new
    written = sorted(p for p in Path(sample.export_path).glob("*.parquet") if p.name.startswith(("video_axis_", "user_info_combo_")))
    assert {p.name.split("_" + key.replace("+", "-"))[0] for p in written} == {"video_axis", "user_info_combo"}
    for path in written:
        table = path.name.split("_" + key.replace("+", "-"))[0]
        want = query_rows(sample, f"SELECT count(*) FROM {table} WHERE course_key = ?", [key])[0][0]
        assert pq.read_table(path).num_rows == want and path.with_suffix(".csv").exists()
        assert path.stat().st_mode & 0o077 == 0
    refused = cli(["export", "--deidentified", "--table", "user_info_combo"], sample)
    assert refused.exit_code != 0 and "one row per learner" in refused.output
    assert cli(["export", "--table", "no_such_table"], sample).exit_code != 0


def test_edx2bigquery_export_pivots_the_grade_cutoffs_into_columns(sample: Settings, cli: Any) -> None:
    import pyarrow.parquet as pq

    from optimus.edx2bigquery import cutoff_column

    key = query_rows(sample, "SELECT min(course_key) FROM grading_policy")[0][0]
    done = cli(["export", "--format", "edx2bigquery", "--table", "grading_policy", "--course", f"course-v1:{key}"], sample)
    assert done.exit_code == 0, done.output
    (path,) = Path(sample.export_path, "edx2bigquery").glob("grading_policy_*.parquet")
    got = pq.read_table(path).to_pylist()
    graders = query_rows(sample, "SELECT assignment_type FROM grading_policy WHERE course_key = ? ORDER BY grader_index", [key])
    cutoffs = dict(query_rows(sample, "SELECT label, cutoff FROM grading_policy_cutoffs WHERE course_key = ?", [key]))
    assert [r["assignment_type"] for r in got] == [g for (g,) in graders] and len(cutoffs) >= 2
    for row in got:
        assert "course_key" not in row and row["course_id"] == key.replace("+", "/")
        # edx2bigquery's name: overall_cutoff_for_ + the label lower-cased, on every row
        assert {f"overall_cutoff_for_{label.lower()}": row[f"overall_cutoff_for_{label.lower()}"] for label in cutoffs} == {
            f"overall_cutoff_for_{label.lower()}": value for label, value in cutoffs.items()
        }
    assert cutoff_column("Pass") == "overall_cutoff_for_pass" and cutoff_column("A-") == "overall_cutoff_for_a__"
    assert cutoff_column('x"; DROP TABLE y; --') is None  # a label is data: no column from it unchecked


def test_edx2bigquery_person_course_takes_the_verified_times_from_person_enrollment_verified(sample: Settings, cli: Any) -> None:
    import pyarrow.parquet as pq

    verified = query_rows(
        sample, "SELECT course_key, user_id, verified_enroll_time, verified_unenroll_time FROM person_enrollment_verified"
    )
    assert verified, "the sample has verified enrolments"
    key = verified[0][0]
    done = cli(["export", "--format", "edx2bigquery", "--course", f"course-v1:{key}"], sample)
    assert done.exit_code == 0, done.output
    (path,) = Path(sample.export_path, "edx2bigquery").glob(f"personcourse_{key.replace('+', '-')}_*.parquet")
    got = {r["user_id"]: (r["verified_enroll_time"], r["verified_unenroll_time"]) for r in pq.read_table(path).to_pylist()}
    want = {u: (e, x) for k, u, e, x in verified if k == key}
    for user, (enrolled, unenrolled) in got.items():
        e, x = want.get(user, (None, None))
        assert (enrolled and enrolled.replace(tzinfo=None), unenrolled and unenrolled.replace(tzinfo=None)) == (e, x), user
    assert set(want) <= set(got) and "verified_enroll_time" not in done.output.split("written empty")[-1]
