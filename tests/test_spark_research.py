"""The research tables (every CourseTables service) on Spark equal DuckDB's, row for row (issue 21).

One small sample package goes through the same services into a DuckDB warehouse and into a Spark lake
(`local[2]`); each research table is compared as the engine-equality test compares tables
(conftest.assert_same_rows). Clickstream is left out on both sides for now: on Spark it fails every
event file until the Spark warehouse reads event files (the backend's work, issue 22), so the tables
are built from the database dumps, the forums and the course structure, with no events on either side.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import assert_same_rows, ingest, table_rows
from optimus.config import Settings
from optimus.pipeline import RunSummary
from optimus.services import load_services
from optimus.services.course_tables import CourseTables

pytestmark = pytest.mark.spark

SOURCES = ("DatabaseState", "DiscussionForums", "CourseStructure")
RESEARCH = tuple(name for name, cls in load_services().items() if issubclass(cls, CourseTables))
# What keeps a service's tables from equalling DuckDB's on Spark today, outside the research SQL (strict
# xfail: the day a cause is fixed, its services pass and their mark must go).
JSON_PATH_LITERAL = (
    "dialects/spark.literal writes Spark literals (backslash escapes) but warehouse/spark.py parses statements "
    "with standard literals: a JSON path '$[\\'id\\']' ends at its escaped quote, the statement falls to DuckDB "
    "and fails (and a regex's backslash is escaped twice)"
)
DUMPS_EMPTY = "DatabaseState marks each SQL dump done with 0 rows on Spark: the raw edx.* lake tables are empty"
BLOCKED = {
    "Enrollment": JSON_PATH_LITERAL,
    "ForumActivity": JSON_PATH_LITERAL,
    "VideoAnalysis": JSON_PATH_LITERAL,
    "TimeOnAsset": JSON_PATH_LITERAL,
    "ShowAnswer": JSON_PATH_LITERAL,
    "ProblemAnalysis": JSON_PATH_LITERAL,
    "ProblemEvents": JSON_PATH_LITERAL,
    "Grades": DUMPS_EMPTY,
    "UserInfoCombo": DUMPS_EMPTY,
}
# tables that are not empty on this sample without events (so equal tables are not trivially equal)
FILLED = ("course_axis", "grading_policy", "user_info_combo")


def _settings(root: Path, data: Path, warehouse: str, spark_master: str) -> Settings:
    return Settings(
        data_paths=[data],
        warehouse=warehouse,
        spark_master=spark_master,
        export_path=root / "exports",
        www_path=root / "www",
        memory_limit="1GB",
    )


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory, spark_master: str) -> tuple[Settings, Settings, RunSummary]:
    """The sample ingested by the same services on DuckDB and on Spark; the Spark run's summary."""
    from optimus.sample import generate

    root = tmp_path_factory.mktemp("spark_research")
    generate(root / "data", courses=2, learners=12, days=2, seed=7)
    duck = _settings(root / "duck", root / "data", str(root / "duck" / "optimus.duckdb"), spark_master)
    lake = _settings(root / "spark", root / "data", f"spark:///{root / 'lake'}", spark_master)
    ingest(duck, *SOURCES, *RESEARCH, force=True)
    summary = ingest(lake, *SOURCES, *RESEARCH, force=True, ok=None)
    return duck, lake, summary


def test_the_research_services_are_all_compared() -> None:
    assert set(RESEARCH) >= {*BLOCKED, "CourseAxis", "TimeOnTask"}
    assert len(RESEARCH) >= 11


def test_the_sources_load_on_spark(engines: tuple[Settings, Settings, RunSummary]) -> None:
    _duck, _lake, summary = engines
    outcome = {s.service: s for s in summary.services}
    assert all(outcome[name].status == "ok" for name in SOURCES), {n: outcome[n].error for n in SOURCES}
    assert not [f for f in summary.files if f.error]


@pytest.mark.parametrize(
    "service",
    [pytest.param(name, marks=pytest.mark.xfail(strict=True, reason=BLOCKED[name])) if name in BLOCKED else name for name in RESEARCH],
)
def test_research_tables_on_spark_equal_duckdb(engines: tuple[Settings, Settings, RunSummary], service: str) -> None:
    duck, lake, summary = engines
    outcome = {s.service: s for s in summary.services}[service]
    assert outcome.status == "ok", outcome.error
    cls = load_services()[service]
    assert issubclass(cls, CourseTables)
    compared = assert_same_rows(lake, duck, [f"main.{t.name}" for t in cls.tables])
    assert len(compared) == len(cls.tables)


def test_the_compared_tables_are_not_empty(engines: tuple[Settings, Settings, RunSummary]) -> None:
    duck, _lake, _summary = engines
    for table in FILLED:
        _cols, rows = table_rows(duck, f"main.{table}")
        assert rows, f"{table} is empty on DuckDB: the comparison would prove nothing"
