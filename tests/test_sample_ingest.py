"""The whole pipeline on a generated sample package: every count in the warehouse matches the package.

The manifest is what the generator wrote, counted as it wrote it; the warehouse is read back here.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from conftest import query_rows, settings_env
from optimus import courses, discovery
from optimus.cli import app
from optimus.config import Settings
from optimus.sample import generate


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("sample-ingest")
    manifest = generate(root / "data", courses=3, learners=60, days=4, seed=11)
    settings = Settings(
        data_paths=[root / "data"],
        warehouse=str(root / "wh.duckdb"),
        export_path=root / "exports",
        www_path=root / "www",
        memory_limit="1GB",
    )
    env = {
        **{k: None for k in __import__("os").environ if k.startswith("OPTIMUS_") and not k.startswith("OPTIMUS_TEST")},
        **settings_env(settings),
    }
    runner = CliRunner()
    first = runner.invoke(app, ["ingest"], env=env, catch_exceptions=False)
    runs_after_first = query_rows(settings, "SELECT count(*) FROM service_runs")[0][0]
    second = runner.invoke(app, ["ingest"], env=env, catch_exceptions=False)
    status = runner.invoke(app, ["status", "--json"], env=env, catch_exceptions=False)
    return {
        "root": root,
        "manifest": manifest,
        "settings": settings,
        "first": first,
        "second": second,
        "status": json.loads(status.stdout),
        "runs_after_first": runs_after_first,
    }


def rel(ingested: dict[str, Any], path: str) -> str:
    return str(Path(path).relative_to(ingested["root"] / "data"))


def test_discovery_finds_every_file_of_the_package(ingested: dict[str, Any]) -> None:
    m, data = ingested["manifest"], ingested["root"] / "data"
    found = discovery.scan(ingested["settings"])
    got = {str(f.path.relative_to(data.resolve())) for f in found.found}
    want = (
        {f["path"] for f in m["events"]["files"]}
        | set(m["database_state"]["sql"])
        | set(m["forums"])
        | set(m["database_state"]["olx"])
        | set(m["database_state"]["course_structure"])
        | {m["email_opt_in"]["path"]}
    )
    assert got == want
    assert {str(s.path.relative_to(data.resolve())) for s in found.skipped if s.reason.startswith("failed export")} == set(
        m["database_state"]["failed"]
    )


def test_every_file_is_done_and_a_second_run_does_nothing(ingested: dict[str, Any]) -> None:
    assert ingested["first"].exit_code == 0, ingested["first"].output
    assert query_rows(ingested["settings"], "SELECT state, count(*) FROM ingest_files GROUP BY 1") == [
        ("done", len(ingested["status"]["services"]) and query_rows(ingested["settings"], "SELECT count(*) FROM ingest_files")[0][0])
    ]
    assert ingested["second"].exit_code == 0 and "nothing to do" in ingested["second"].output
    assert query_rows(ingested["settings"], "SELECT count(*) FROM service_runs")[0][0] == ingested["runs_after_first"]
    services = ingested["status"]["services"]
    assert all(s["queued"] == 0 and s["failed"] == 0 and s["last_run"] for s in services.values())


def test_events_and_quarantine_match_the_package(ingested: dict[str, Any]) -> None:
    m = ingested["manifest"]["events"]
    assert query_rows(ingested["settings"], "SELECT count(*) FROM events")[0][0] == m["distinct"]
    assert query_rows(ingested["settings"], "SELECT count(*) FROM events_quarantine")[0][0] == m["malformed"]
    per_file = {
        rel(ingested, p): (loaded, bad)
        for p, loaded, bad in query_rows(
            ingested["settings"], "SELECT path, rows_loaded, rows_quarantined FROM ingest_files WHERE service = 'Clickstream'"
        )
    }
    assert per_file == {f["path"]: (f["valid"], sum(f["malformed"].values())) for f in m["files"]}
    lines = {(rel(ingested, p), line) for p, line in query_rows(ingested["settings"], "SELECT path, line FROM events_quarantine")}
    assert lines == {(f["path"], bad["line"]) for f in m["files"] for bad in f["malformed_lines"]}
    # events per course, by the course resolved from context, URL or page; the duplicate is stored once
    want: Counter[str] = Counter()
    for f in m["files"]:
        for course_id, n in f["by_course"].items():
            if course_id:
                want[courses.course_key(course_id)] += n
        for course_id, n in f["by_block_course"].items():  # the course only in an /xblock/ block id (get_course_id's rule)
            want[courses.course_key(course_id)] += n
    if m["duplicate"] and m["duplicate"]["course_id"]:
        want[courses.course_key(m["duplicate"]["course_id"])] -= 1
    got = dict(query_rows(ingested["settings"], "SELECT course_key, count(*) FROM events WHERE course_key IS NOT NULL GROUP BY 1"))
    assert got == dict(want)


def test_database_state_rows_match_every_sql_file(ingested: dict[str, Any]) -> None:
    m = ingested["manifest"]["database_state"]["sql"]
    got = {
        rel(ingested, p): (loaded, bad)
        for p, loaded, bad in query_rows(
            ingested["settings"], "SELECT path, rows_loaded, rows_quarantined FROM ingest_files WHERE service = 'DatabaseState'"
        )
    }
    assert got == {path: (rows, 0) for path, rows in m.items()}
    by_table: Counter[str] = Counter()
    for path, rows in m.items():
        by_table[discovery.classify(Path(path).name).table] += rows
    for table, rows in by_table.items():
        assert query_rows(ingested["settings"], f'SELECT count(*) FROM edx."{table}"')[0][0] == rows, table


def test_forums_courses_and_structure_match_the_package(ingested: dict[str, Any]) -> None:
    manifest = ingested["manifest"]
    for path, counts in manifest["forums"].items():
        got = dict(
            query_rows(
                ingested["settings"],
                "SELECT type, count(*) FROM forum_posts WHERE file_id = (SELECT id FROM ingest_files WHERE path LIKE ?) GROUP BY 1",
                [f"%{Path(path).name}"],
            )
        )
        assert got == {"CommentThread": counts["threads"], "Comment": counts["comments"]}, path
        assert (
            query_rows(ingested["settings"], "SELECT count(*) FROM forum_quarantine WHERE path LIKE ?", [f"%{Path(path).name}"])[0][0]
            == counts["malformed"]
        )
    with_olx = {Path(p).name.split("-course-")[0] for p in manifest["database_state"]["olx"]}
    for course in manifest["courses"]:
        key = courses.course_key(course["course_id"])
        row = query_rows(
            ingested["settings"], "SELECT display_name, chapters, published_chapters, pass_mark FROM courses WHERE course_key = ?", [key]
        )
        assert row == [(course["display_name"], course["chapters"], course["published_chapters"], course["pass_mark"])]
        chapters = [
            r[0]
            for r in query_rows(
                ingested["settings"],
                "SELECT url_name FROM course_blocks WHERE course_key = ? AND category = 'chapter' AND published ORDER BY position",
                [key],
            )
        ]
        assert chapters == course["chapter_ids"]
        if course["prefix"] in with_olx:
            # the manifest counts the course tree (staff-only chapters included), not drafts/
            # (a draft vertical and its leaves have no vertical position)
            blocks = dict(
                query_rows(
                    ingested["settings"],
                    "SELECT category, count(*) FROM course_blocks WHERE course_key = ? AND NOT (NOT published AND "
                    "vertical_index IS NULL AND category NOT IN ('course', 'chapter', 'sequential')) GROUP BY 1",
                    [key],
                )
            )
            assert blocks == course["blocks"]
        www = ingested["settings"].www_path / "course_structure" / f"{course['prefix']}.json"
        assert json.loads(www.read_text())["tag"] == "course"


def test_derived_tables_and_exports_exist(ingested: dict[str, Any]) -> None:
    manifest = ingested["manifest"]
    enrolled = sum(c["enrolled"] for c in manifest["courses"])
    assert query_rows(ingested["settings"], "SELECT count(*) FROM person_course WHERE registered = 1")[0][0] == enrolled
    assert query_rows(ingested["settings"], "SELECT count(*) FROM course_profile")[0][0] == len(manifest["courses"])
    assert (
        query_rows(ingested["settings"], "SELECT count(*) FROM ip_geo")[0][0]
        == query_rows(ingested["settings"], "SELECT count(DISTINCT ip) FROM events WHERE ip IS NOT NULL AND ip <> ''")[0][0]
    )
    exports = ingested["root"] / "exports"
    names = [p.name for p in exports.iterdir()]
    assert any(n.startswith("emailcrm_") for n in names) and any(n.startswith("courseprofile_") for n in names)
    assert sum(n.startswith("personcourse_") and n.endswith(".csv") for n in names) == len(manifest["courses"])
