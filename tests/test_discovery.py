"""Discovery: the real edX file names of REFERENCE §3.1 are classified as the reference says."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path
from typing import Any

from conftest import make_data_path, query_rows
from optimus import discovery
from optimus.discovery import COURSE_EXPORT, COURSE_STRUCTURE, EMAIL_OPT_IN, EVENTS, FORUM, SQL, Classified, Skipped


def test_names_of_the_research_package_are_classified() -> None:
    cases: dict[str, tuple] = {
        "UQx-BIOL1859x-1T2015-auth_user-prod-analytics.sql": (SQL, "auth_user", "prod", "UQx/BIOL1859x/1T2015"),
        "UQx-BIOL1859x-1T2015-courseware_studentmodule-edge-analytics.sql": (
            SQL,
            "courseware_studentmodule",
            "edge",
            "UQx/BIOL1859x/1T2015",
        ),
        "UQx-Think-101x-3T2015-student_courseenrollment-prod-analytics.sql": (SQL, "student_courseenrollment", "prod", None),
        "UQx-BIOL1859x-1T2015-prod.mongo": (FORUM, None, "prod", "UQx/BIOL1859x/1T2015"),
        "UQx-BIOL1859x-1T2015-edge.mongo": (FORUM, None, "edge", "UQx/BIOL1859x/1T2015"),
        "BIOL1859x.mongo": (FORUM, None, "prod", None),
        "UQx-BIOL1859x-1T2015-course-prod-analytics.xml.tar.gz": (COURSE_EXPORT, None, "prod", "UQx/BIOL1859x/1T2015"),
        "UQx-BIOL1859x-1T2015-course_structure-prod-analytics.json": (COURSE_STRUCTURE, None, "prod", "UQx/BIOL1859x/1T2015"),
        "UQx-email_opt_in-prod-analytics.csv": (EMAIL_OPT_IN, None, "prod", None),
        "uqx-edx-events-2014-03-24.log.gz": (EVENTS, None, "prod", None),
        "uqx-edge-events-2014-03-24.log.gz": (EVENTS, None, "edge", None),
        "uqx-prod-events-2016-01-02.log": (EVENTS, None, "prod", None),
        "tracking.log-20130609.gz": (EVENTS, None, "prod", None),
        "tracking.log-20140324-1395670621.gz": (EVENTS, None, "prod", None),
        "edX_DemoX_Demo_Course-events-2015-10-01.log": (EVENTS, None, "prod", None),
        "ora/UQx-BIOL1859x-1T2015-assessment_assessment-prod-analytics.sql": (SQL, "assessment_assessment", "prod", "UQx/BIOL1859x/1T2015"),
    }
    for name, (kind, table, site, course_id) in cases.items():
        info = discovery.classify(Path(name).name)
        assert isinstance(info, Classified), name
        assert (info.kind, info.table, info.site, info.course_id) == (kind, table, site, course_id), name
    assert discovery.classify("tracking.log-20140324-1395670621.gz").day == date(2014, 3, 24)
    assert discovery.classify("uqx-edx-events-2014-03-24.log.gz").org == "uqx"


def test_shortened_failed_encrypted_and_unknown_names() -> None:
    short = discovery.classify("UQx-AVeryLongCourseNameThatWasCut-courseware_stu-" + "0123456789abcdef" * 2 + ".sql")
    assert isinstance(short, Classified) and short.kind == SQL and short.shortened and short.course_id is None
    failed = discovery.classify("UQx-BIOL1859x-1T2015-wiki_article-prod-analytics.sql.failed")
    assert isinstance(failed, Skipped) and failed.reason.startswith("failed export")
    encrypted = discovery.classify("UQx-BIOL1859x-1T2015-auth_user-prod-analytics.sql.gpg")
    assert isinstance(encrypted, Skipped) and encrypted.reason.startswith("encrypted")
    assert discovery.classify("README.txt") is None
    assert discovery.classify("notes.sql") is None


def test_scan_follows_latest_and_lists_what_it_does_not_take(tmp_path: Path, settings_for) -> None:
    data = make_data_path(tmp_path / "data", package="2024-01-07")
    pkg = data / "database_state" / "2024-01-07"
    (pkg / "ora").mkdir()
    for name in (
        "UQx-A-1-auth_user-prod-analytics.sql",
        "ora/UQx-A-1-assessment_assessment-prod-analytics.sql",
        "UQx-A-1-prod.mongo",
        "UQx-A-1-wiki_article-prod-analytics.sql.failed",
        "x.sql.gpg",
        "notes.txt",
    ):
        (pkg / name).write_text("id\n")
    course = pkg / "UQx-A-1" / "export"
    course.mkdir(parents=True)
    (course / "course.xml").write_text("<course/>")
    (data / "clickstream_logs" / "events" / "uqx-edx-events-2024-01-01.log.gz").write_bytes(b"")
    # an older package that is not `latest` is not scanned
    (data / "database_state" / "2023-12-31").mkdir()
    (data / "database_state" / "2023-12-31" / "UQx-A-1-auth_user-prod-analytics.sql").write_text("id\n")
    result = discovery.scan(settings_for(data))
    kinds = sorted((f.info.kind, f.path.name) for f in result.found)
    assert kinds == [
        (COURSE_EXPORT, "UQx-A-1"),
        (EVENTS, "uqx-edx-events-2024-01-01.log.gz"),
        (FORUM, "UQx-A-1-prod.mongo"),
        (SQL, "UQx-A-1-assessment_assessment-prod-analytics.sql"),
        (SQL, "UQx-A-1-auth_user-prod-analytics.sql"),
    ]
    assert all(f.package_date == date(2024, 1, 7) for f in result.found if f.info.kind != EVENTS)
    assert sorted((s.path.name, s.reason.split(" ")[0]) for s in result.skipped) == [
        ("UQx-A-1-wiki_article-prod-analytics.sql.failed", "failed"),
        ("notes.txt", "unknown"),
        ("x.sql.gpg", "encrypted"),
    ]
    # registered by real path: the files live in the dated folder, not under `latest`
    assert all("/latest/" not in str(f.path) for f in result.found)


def test_without_latest_the_newest_dated_folder_is_taken_by_date(tmp_path: Path) -> None:
    base = tmp_path / "database_state"
    for name in ("2014-01-07", "2014-1-9-extra", "2013-12-31", "notes"):
        (base / name).mkdir(parents=True)
    # listing order must not matter: name order would pick "notes" or "2014-1-9-extra"
    assert discovery.latest_folder(base) == (base / "2014-01-07").resolve()
    os.symlink("2013-12-31", base / "latest")
    assert discovery.latest_folder(base) == (base / "2013-12-31").resolve()


def test_orgs_edge_and_course_patterns_filter(tmp_path: Path, settings_for) -> None:
    data = make_data_path(tmp_path / "data")
    pkg = data / "database_state" / "2024-01-07"
    for name in ("UQx-A-1-auth_user-prod-analytics.sql", "UQx-A-1-auth_user-edge-analytics.sql", "MITx-B-2-auth_user-prod-analytics.sql"):
        (pkg / name).write_text("id\n")
    names = lambda **kw: sorted(f.path.name for f in discovery.scan(settings_for(data, **kw)).found)  # noqa: E731
    assert names(include_orgs=["UQx"], edge=False) == ["UQx-A-1-auth_user-prod-analytics.sql"]
    assert names(exclude_courses=["UQx/*"]) == ["MITx-B-2-auth_user-prod-analytics.sql"]


def test_files_no_rule_takes_are_named_with_the_rule_they_missed(tmp_path: Path, cli: Any, settings_for: Any) -> None:
    """A real re-delivery named `...-events-2015-03-01-redelivered.log` is named in the scan with the events rule it
    missed, and kept in ingest_skipped with that reason; a failed export says it is edX's and left alone."""
    data = tmp_path / "data"
    (data / "clickstream_logs" / "events").mkdir(parents=True)
    (data / "clickstream_logs" / "latest").symlink_to("events")
    (data / "clickstream_logs" / "events" / "uqx-edx-events-2015-03-01-redelivered.log").write_text("{}\n")
    (data / "clickstream_logs" / "events" / "uqx-edx-events-2015-03-01.log").write_text("")
    package = data / "database_state" / "2015-03-02"
    package.mkdir(parents=True)
    (data / "database_state" / "latest").symlink_to("2015-03-02")
    (package / "UQx-A-1-auth_user-prod.sql").write_text("id\n")
    (package / "UQx-A-1-wiki_article-prod-analytics.sql.failed").write_text("Traceback\n")
    settings = settings_for(data)
    result = cli(["scan"], settings)
    assert result.exit_code == 0, result.output
    redelivered = str((data / "clickstream_logs" / "events" / "uqx-edx-events-2015-03-01-redelivered.log").resolve())
    text = result.stdout
    assert f"  {redelivered}" in text.splitlines()
    assert "looks like an event file but does not match {org}-{edx|edge|prod}-events-{YYYY-MM-DD}.log[.gz]" in text
    assert "looks like a database dump but does not match {org}-{course}-{run}-{table}-{prod|edge}-analytics.sql" in text
    assert "left alone" in text and "edX could not export" in text
    reasons = dict(query_rows(settings, "SELECT path, reason FROM ingest_skipped"))
    assert reasons[redelivered].startswith("unknown name: looks like an event file")
    assert len(reasons) == 3
