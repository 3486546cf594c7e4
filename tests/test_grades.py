"""Grades against a plain-Python reference written from docs/tables/grades.md, on a sample package
ingested into DuckDB and PostgreSQL. The reference reads the sample's own files (the grade and
studentmodule dumps, the OLX export tarball), never our derived tables; plus a crafted course whose
chapter grades are worked out by hand."""

from __future__ import annotations

import math
import re
import tarfile
import xml.etree.ElementTree as ET
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import ingest, query_rows
from optimus.config import Settings
from optimus.sample import generate


@pytest.fixture
def sample_on(tmp_path: Path, backend: dict[str, Any]) -> tuple[Settings, dict[str, Any]]:
    manifest = generate(tmp_path / "data", courses=2, learners=30, days=3, seed=7)
    settings = Settings(
        data_paths=[tmp_path / "data"],
        warehouse=backend.get("warehouse", str(tmp_path / "wh" / "optimus.duckdb")),
        export_path=tmp_path / "exports",
        www_path=tmp_path / "www",
        memory_limit="1GB",
    )
    ingest(settings)
    return settings, manifest


# -- reading the sample's files ------------------------------------------------------------------------
def read_tsv(path: Path) -> list[dict[str, str | None]]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").split("\n")
    header = lines[0].split("\t")

    def value(v: str) -> str | None:
        if v == "NULL":
            return None
        return re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}[m.group(1)], v)

    return [dict(zip(header, map(value, line.split("\t")), strict=True)) for line in lines[1:] if line]


def ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "")) if value else None


def num(value: str | None) -> float | None:
    return float(value) if value is not None else None


def edx2bq_id(course_id: str) -> str:
    """`course-v1:org+course+run` or `org/course/run` -> `org/course/run` (make_grades_persistent.fix_course_ids)."""
    return course_id.split(":")[-1].replace("+", "/")


def problem_chapters(tarball: Path, org: str, code: str, run: str) -> dict[str, tuple[str | None, datetime | None]]:
    """Every problem of the export's course tree -> (chapter module id, inherited due): url_name pointers
    followed into `{tag}/{url_name}.xml`, `due` inherited from the nearest ancestor that sets it."""
    with tarfile.open(tarball) as tar:
        files = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]
    found: dict[str, tuple[str | None, datetime | None]] = {}

    def visit(element: ET.Element, chapter: str | None, due: str | None) -> None:
        attrs, kids = dict(element.attrib), list(element)
        name = attrs.get("url_name")
        own = f"{element.tag}/{name}.xml"
        if name and not kids and own in files:
            defined = ET.fromstring(files[own])
            attrs, kids = {**defined.attrib, **attrs}, list(defined)
        due = attrs.get("due", due)
        if element.tag == "chapter":
            chapter = f"{org}/{code}/chapter/{name}"
        if element.tag == "problem":
            found[str(name)] = (chapter, ts(due))
        elif element.tag not in ("html", "video", "discussion"):
            for kid in kids:
                visit(kid, chapter, due)

    visit(ET.fromstring(files[f"course/{run}.xml"]), None, None)
    return found


def millionths(values: list[float]) -> float:
    return sum(round(v * 1_000_000) for v in values) / 1_000_000


def chapter_grades_reference(
    studentmodule: list[dict[str, str | None]], problems: dict[str, tuple[str | None, datetime | None]], key: str
) -> list[tuple[Any, ...]]:
    """make_chapter_grades_table: graded problem rows grouped by learner and chapter; per chapter the
    percentile_disc(0.5) of chgrade and the largest user_chapter_max_grade."""
    groups: dict[tuple[int, str | None], list[tuple[float, float, datetime | None]]] = defaultdict(list)
    for row in studentmodule:
        module = str(row["module_id"])
        name = module.rsplit("@", 1)[-1] if "block@" in module else module.rsplit("/", 1)[-1]
        if row["module_type"] != "problem" or row["grade"] is None or name not in problems:
            continue
        chapter, due = problems[name]
        groups[(int(str(row["student_id"])), chapter)].append((float(row["grade"]), float(str(row["max_grade"])), due))
    per_user = {
        k: (millionths([m for _, m, _ in v]), millionths([g for g, _, _ in v]), [d for _, _, d in v if d is not None])
        for k, v in groups.items()
    }
    by_chapter: dict[str | None, list[tuple[float, float]]] = defaultdict(list)
    for (_, chapter), (mx, grade, _) in per_user.items():
        by_chapter[chapter].append((grade, mx))
    out = []
    for (uid, chapter), (mx, grade, dues) in per_user.items():
        grades = sorted(g for g, _ in by_chapter[chapter])
        median = grades[math.ceil(0.5 * len(grades)) - 1]
        out.append(
            (key, edx2bq_id(key.replace("+", "/")), uid, chapter, mx, grade, max(dues, default=None), min(dues, default=None), median,
             max(m for _, m in by_chapter[chapter]))
        )  # fmt: skip
    return sorted(out, key=lambda r: (r[2], r[3] or ""))


# -- the reference against the tables ------------------------------------------------------------------
def test_grade_tables_equal_the_reference_on_both_engines(sample_on: tuple[Settings, dict[str, Any]]) -> None:
    settings, manifest = sample_on
    pkg = Path(settings.data_paths[0]) / manifest["database_state"]["dir"]
    checked = {"grades_persistent": 0, "grades_persistent_subsection": 0, "chapter_grades": 0}
    for course in manifest["courses"]:
        prefix, key = course["prefix"], course["old_id"].replace("/", "+")
        org, code, run = course["old_id"].split("/")

        expected = [
            (key, edx2bq_id(str(r["course_id"])), int(str(r["user_id"])), r["grading_policy_hash"], num(r["percent_grade"]),
             r["letter_grade"], ts(r["passed_timestamp"]), ts(r["created"]), ts(r["modified"]))
            for r in read_tsv(pkg / f"{prefix}-grades_persistentcoursegrade-prod-analytics.sql")
        ]  # fmt: skip
        got = query_rows(
            settings,
            "SELECT course_key, course_id, user_id, grading_policy_hash, percent_grade, letter_grade, passed_timestamp, created, modified "
            "FROM grades_persistent WHERE course_key = ? ORDER BY user_id",
            [key],
        )
        assert got == sorted(expected, key=lambda r: r[2])
        checked["grades_persistent"] += len(got)

        expected = [
            (key, edx2bq_id(str(r["course_id"])), int(str(r["user_id"])), r["usage_key"], num(r["earned_all"]), num(r["possible_all"]),
             num(r["earned_graded"]), num(r["possible_graded"]), ts(r["first_attempted"]), ts(r["created"]), ts(r["modified"]))
            for r in read_tsv(pkg / f"{prefix}-grades_persistentsubsectiongrade-prod-analytics.sql")
        ]  # fmt: skip
        got = query_rows(
            settings,
            "SELECT course_key, course_id, user_id, usage_key, earned_all, possible_all, earned_graded, possible_graded, "
            "first_attempted, created, modified FROM grades_persistent_subsection WHERE course_key = ? ORDER BY user_id, usage_key",
            [key],
        )
        assert got == sorted(expected, key=lambda r: (r[2], r[3]))
        assert len(got) == manifest["grades"][course["course_id"]]["subsection_grades"]
        checked["grades_persistent_subsection"] += len(got)

        problems = problem_chapters(pkg / course["files"]["olx"], org, code, run)
        studentmodule = read_tsv(pkg / f"{prefix}-courseware_studentmodule-prod-analytics.sql")
        got = query_rows(
            settings,
            "SELECT course_key, course_id, user_id, chapter_mid, user_chapter_max_grade, chgrade, due_date_max, due_date_min, "
            "median_grade, chmax FROM chapter_grades WHERE course_key = ? ORDER BY user_id, chapter_mid",
            [key],
        )
        assert got == chapter_grades_reference(studentmodule, problems, key)
        checked["chapter_grades"] += len(got)
    # the sample fills every table (and the chapter grades see due dates)
    assert all(n > 0 for n in checked.values()), checked
    assert query_rows(settings, "SELECT count(*) FROM chapter_grades WHERE due_date_max IS NOT NULL")[0][0] > 0

    # a second ingest recomputes nothing
    runs = "SELECT count(*) FROM service_runs WHERE service IN ('Grades', 'CourseAxis')"
    before = query_rows(settings, runs)
    ingest(settings)
    assert query_rows(settings, runs) == before


# -- a crafted course, worked out by hand -----------------------------------------------------------------
SM_HEADER = "id module_type module_id student_id state grade created modified max_grade done course_id"


def test_chapter_grades_by_hand(data_path: Path, settings_for: Any) -> None:
    """The Studio export of test_course_axis (chapter c1; p_num, p_b and p_choice due 2020-02-01, p_mc no due;
    hp under the hidden chapter) and studentmodule rows:
    u1: p_mc 1.5/2, p_num 0.25/1, hp 1/1 (not in the axis) -> max 3, chgrade 1.75
    u2: p_mc 2/2, p_str NULL (not graded: left out), p_b 0.5/1 -> max 3, chgrade 2.5
    u3: p_choice 0/1, by its block-v1 key -> max 1, chgrade 0
    median of (0, 1.75, 2.5): the 2nd of 3 = 1.75; chmax 3; due dates from the due problems only."""
    from test_course_axis import STUDIO, _tarball

    package = data_path / "database_state" / "latest"
    _tarball(package / "T-AX1-2020-course-prod-analytics.xml.tar.gz", STUDIO, "ax1")
    rows = [
        (1, "i4x://T/AX1/problem/p_mc", 1, "1.5", "2"),
        (2, "i4x://T/AX1/problem/p_num", 1, "0.25", "1"),
        (3, "i4x://T/AX1/problem/hp", 1, "1", "1"),
        (4, "i4x://T/AX1/problem/p_mc", 2, "2", "2"),
        (5, "i4x://T/AX1/problem/p_str", 2, "NULL", "1"),
        (6, "i4x://T/AX1/problem/p_b", 2, "0.5", "1"),
        (7, "block-v1:T+AX1+2020+type@problem+block@p_choice", 3, "0", "1"),
        (8, "i4x://T/AX1/chapter/c1", 3, "NULL", "NULL"),
    ]
    lines = ["\t".join(SM_HEADER.split())] + [
        "\t".join([str(i), "chapter" if "chapter" in m else "problem", m, str(u), "{}", g, "2020-01-05 10:00:00", "2020-01-05 10:00:00", mx, "na", "T/AX1/2020"])
        for i, m, u, g, mx in rows
    ]  # fmt: skip
    (package / "T-AX1-2020-courseware_studentmodule-prod-analytics.sql").write_text("\n".join(lines) + "\n")
    settings = settings_for(data_path)
    ingest(settings)
    due = datetime(2020, 2, 1)
    assert query_rows(
        settings,
        "SELECT user_id, chapter_mid, user_chapter_max_grade, chgrade, due_date_max, due_date_min, median_grade, chmax "
        "FROM chapter_grades ORDER BY user_id",
    ) == [
        (1, "T/AX1/chapter/c1", 3.0, 1.75, due, due, 1.75, 3.0),
        (2, "T/AX1/chapter/c1", 3.0, 2.5, due, due, 1.75, 3.0),
        (3, "T/AX1/chapter/c1", 1.0, 0.0, due, due, 1.75, 3.0),
    ]
    # no grade dumps in this package: no persistent grade rows
    assert query_rows(settings, "SELECT count(*) FROM grades_persistent") == [(0,)]


def test_the_api_serves_chapter_grades_only_with_the_token(data_path: Path, settings_for: Any) -> None:
    """The generic table endpoint: per-learner grade tables need the token; course_axis does not."""
    from fastapi.testclient import TestClient

    from optimus.api.app import create_app
    from optimus.api.state import ReadViews
    from optimus.warehouse import connect
    from test_course_axis import STUDIO, _tarball

    _tarball(data_path / "database_state" / "latest" / "T-AX1-2020-course-prod-analytics.xml.tar.gz", STUDIO, "ax1")
    settings = settings_for(data_path, api_token="s3cret")
    ingest(settings)
    wh = connect(settings, read_only=True)
    try:
        with TestClient(create_app(settings, ReadViews(settings, wh, size=2))) as client:
            for table in ("chapter_grades", "grades_persistent", "grades_persistent_subsection"):
                path = f"/api/v1/courses/T+AX1+2020/tables/{table}"
                assert client.get(path).status_code == 401, table
                assert client.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 403, table
                assert client.get(path, headers={"Authorization": "Bearer s3cret"}).status_code == 200, table
            assert client.get("/api/v1/courses/T+AX1+2020/tables/course_axis").status_code == 200
    finally:
        wh.close()
