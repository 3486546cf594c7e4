"""The whole pipeline on DuckDB, on PostgreSQL and on Spark gives the same tables, row for row
(issues 7 and 21).

One sample package (optimus.sample.generate) plus a file of awkward events (payload strings that
look like objects but are not JSON, zone offsets, a course only in a percent-encoded page URL,
a syslog prefix, bad lines, a NUL) goes through `optimus ingest` into each backend. The derived tables
are compared with floats rounded to 6 places, except the time-on-task columns, which are computed
in exact integers and must be equal bit for bit (tolerance zero, docs/person_course.md), and
bookkeeping timestamps left out; the Email CRM export must be the same file content. On Spark
(`local[2]`, a lake in tmp_path) every data table DuckDB holds, of every service and the raw edX
tables, is compared.
"""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import assert_same_rows, data_tables_of, ingest, query_rows, reading, table_rows
from optimus.config import Settings


def dump(settings: Settings, table: str) -> tuple[list[str], list[tuple]]:
    return table_rows(settings, f"main.{table}")


def awkward_events(data: Path) -> int:
    """A day of events built from the sample's own learners, with the cases where engines differ."""
    lines = []
    for path in sorted((data / "clickstream_logs").rglob("*.log.gz")):
        for text in gzip.open(path, "rt", encoding="utf-8"):
            try:
                ev = json.loads(text)
            except ValueError:
                continue
            ctx = ev.get("context") if isinstance(ev, dict) else None
            if isinstance(ctx, dict) and ctx.get("course_id") and ctx.get("user_id") not in (None, ""):
                lines.append(ev)
            if len(lines) >= 12:
                break
    assert len(lines) >= 12, "the sample has too few learner events"
    out = []
    for i, ev in enumerate(lines):
        ev = dict(ev, time=f"2024-03-07T{10 + i}:00:00")  # no zone: UTC
        ev.pop("name", None)  # `name` would stand for event_type
        cid = ev["context"]["course_id"]
        if i == 0:
            ev.update(event_type="play_video", event_source="browser", event="{not json}")
        elif i == 1:
            ev.update(time="2024-03-07T23:30:00.1234567+05:30", event_type="play_video", event=json.dumps({"id": "v1", "x": 1.5}))
        elif i == 2:
            ev["context"] = dict(ev["context"], course_id="")
            ev.update(event_type="page_close", page=f"https://lms.example/courses/{quote(cid, safe='/')}/courseware/ch/seq/")
        elif i == 3:
            ev["context"] = dict(ev["context"], course_id="", user_id=str(ev["context"]["user_id"]) + ".0")
            ev.update(event_type=f"/courses/{cid}/courseware/ch1/seq/")
        elif i == 4:
            ev.update(event_type="problem_check", event_source="server", event={"problem_id": "p-9", "success": "correct"})
        elif i == 5:
            ev.update(time="2024-03-07T10:00:00-0800")
        out.append(("Mar  7 10:00:00 host tracking: " if i == 6 else "") + json.dumps(ev))
    out += [
        '{"username": "x", "time": "yesterday"}',
        "# comment",
        '{"username": "y", "time": "2024-03-07T10:00:00"',
        "[1, 2]",
        '{"username": "z\x00", "time": "2024-03-07T10:00:00"}',
    ]
    (data / "clickstream_logs" / "events" / "UQx-edx-events-2024-03-08.log").write_text("\n".join(out) + "\n", encoding="utf-8")
    return len(out)


def sample_with_awkward_events(root: Path) -> Path:
    from optimus.sample import generate

    data = root / "sample"
    generate(data, courses=2, learners=60, days=3, seed=11)
    awkward_events(data)
    return data


def latest_export(settings: Settings) -> list[list[str]]:
    """The rows of the last Email CRM export file (the file is compared, not only the tables)."""
    path = Path(query_rows(settings, "SELECT path FROM email_crm_exports ORDER BY exported_at DESC LIMIT 1")[0][0])
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


@pytest.mark.postgres
def test_pipeline_is_identical_on_duckdb_and_postgres(tmp_path: Path, settings_for, cli, pg_url) -> None:
    data = sample_with_awkward_events(tmp_path)
    duck = settings_for(data, export_path=tmp_path / "exports_duckdb")
    pg = settings_for(data, warehouse=pg_url, export_path=tmp_path / "exports_postgres")
    for settings in (duck, pg):
        result = cli(["ingest"], settings)
        assert result.exit_code == 0, result.output

    tables = {}
    for table in (
        "person_course",
        "course_profile",
        "person_course_day",
        "event_time_anomalies",
        "events",
        "events_quarantine",
        "ip_geo",
        "email_opt_in",
        "forum_posts",
        "courses",
        "course_blocks",
    ):
        duck_cols, on_duck = dump(duck, table)
        pg_cols, on_pg = dump(pg, table)
        assert pg_cols == duck_cols, table  # mixed-case names (countryLabel, LoE, YoB) kept on PostgreSQL
        assert on_pg == on_duck, table
        assert on_duck, table  # not trivially equal
        tables[table] = [dict(zip(duck_cols, r, strict=True)) for r in on_duck]
    assert any(r["viewed"] == 1 for r in tables["person_course"]) and any(r["grade"] is not None for r in tables["person_course"])
    assert any(r["nplay_video"] > 0 for r in tables["person_course"]) and any(r["countryLabel"] for r in tables["person_course"])
    awkward = [r for r in tables["events"] if r["time"].date().isoformat() in ("2024-03-07", "2024-03-08")]
    assert any(json.loads(r["event"]) == "{not json}" and r["event_type"] == "play_video" for r in awkward)  # kept as the string it is
    assert len(tables["events_quarantine"]) >= 5

    on_duck_crm = latest_export(duck)
    assert len(on_duck_crm) > 1 and latest_export(pg) == on_duck_crm


@pytest.mark.spark
def test_pipeline_is_identical_on_duckdb_and_spark(tmp_path: Path, settings_for, cli, spark_lake) -> None:
    """Every data table of every service (and the raw edX tables) on Spark local[2] equals DuckDB's."""
    data = sample_with_awkward_events(tmp_path)
    duck = settings_for(data, export_path=tmp_path / "exports_duckdb")
    lake = settings_for(data, export_path=tmp_path / "exports_spark", **spark_lake)
    for settings in (duck, lake):
        result = cli(["ingest"], settings)
        assert result.exit_code == 0, result.output

    tables = data_tables_of(duck)
    assert data_tables_of(lake) == tables  # no table missing on Spark, none more
    assert {"main.events", "main.person_course", "main.time_on_task", "edx.auth_user"} <= set(tables), tables
    assert_same_rows(lake, duck, tables)
    with reading(lake) as wh:  # the view over events is there for the API's readers too
        assert wh.scalar("SELECT count(*) FROM events_geo") == wh.scalar("SELECT count(*) FROM events") > 0
    on_duck_crm = latest_export(duck)
    assert len(on_duck_crm) > 1 and latest_export(lake) == on_duck_crm


# -- a changed event file ingested again, then a file removed (issue 21: UPDATE ... FROM on the lake) -----
def _event_id(line: bytes) -> str:
    """An event's id as Clickstream makes it (SHA-1 of the line from its first `{`, plus `\\n`)."""
    import hashlib

    return hashlib.sha1(line[line.find(b"{") :] + b"\n").hexdigest()


def _held(settings: Settings) -> dict[str, list[tuple]]:
    """Which file (by name) and line holds each event, and each file's links and quarantined lines (the
    file ids of two warehouses may differ: files are named)."""
    named = "(SELECT id, regexp_replace(path, '^.*/', '') AS name FROM ingest_files)"
    return {
        "events": sorted(query_rows(settings, f"SELECT e.event_id, i.name, e.line FROM events e JOIN {named} i ON i.id = e.file_id")),
        "event_files": sorted(
            query_rows(settings, f"SELECT f.event_id, i.name, f.line FROM event_files f JOIN {named} i ON i.id = f.file_id")
        ),
        "quarantine": sorted(
            query_rows(settings, f"SELECT i.name, q.line, q.reason FROM events_quarantine q JOIN {named} i ON i.id = q.file_id")
        ),
    }


@pytest.mark.parametrize("engine", [pytest.param("spark", marks=pytest.mark.spark), pytest.param("postgres", marks=pytest.mark.postgres)])
def test_changed_and_removed_event_files_are_identical_on_engines(tmp_path: Path, settings_for, engine: str, request) -> None:
    """A day file changed after its ingest (lines dropped, lines added, events another file holds kept
    and dropped, a bad line) is ingested again, then another file is removed: the other engine ends with
    DuckDB's events, links and quarantine, each event held by the file Python expects."""
    import os
    import time

    from optimus.sample import generate
    from optimus.services.clickstream import Clickstream
    from optimus.warehouse import connect

    data = tmp_path / "sample"
    generate(data, courses=2, learners=30, days=3, seed=7, malformed=False)  # every line an event: ids known here
    files = sorted((data / "clickstream_logs" / "events").glob("*.log.gz"))
    a_path, b_path = files[0], files[1]
    a = [x for x in gzip.decompress(a_path.read_bytes()).split(b"\n") if x.strip()]
    b = [x for x in gzip.decompress(b_path.read_bytes()).split(b"\n") if x.strip()]
    assert len(a) > 40 and len(b) > 10, (len(a), len(b))
    b = b + a[:10]  # B holds A's first ten events too
    b_path.write_bytes(gzip.compress(b"\n".join(b) + b"\n"))
    duck = settings_for(data)
    them = settings_for(
        data, **(request.getfixturevalue("spark_lake") if engine == "spark" else {"warehouse": request.getfixturevalue("pg_url")})
    )
    for settings in (duck, them):
        ingest(settings, "Clickstream")
    assert _held(them) == _held(duck)

    # A changes: keeps 5 events B holds and drops 5 (re-pointed to B), drops half its own (deleted),
    # takes 5 of B's (held by A now, the file it comes first in), gains new events and a bad line
    new = [json.dumps(dict(json.loads(line), reingested=i)).encode() for i, line in enumerate(a[10:20])]
    a2 = a[:5] + a[10::2] + b[:5] + new + [b'{"username": "x", "time": "not a time"}']
    a_path.write_bytes(gzip.compress(b"\n".join(a2) + b"\n"))
    later = time.time() + 5
    os.utime(a_path, (later, later))
    for settings in (duck, them):
        ingest(settings, "Clickstream")
    got = _held(them)
    assert got == _held(duck)
    others = [x for p in files[1:] for x in gzip.decompress(p.read_bytes()).split(b"\n") if x.strip()]
    want = {_event_id(x) for x in a2[:-1] + others}
    assert {e for e, _, _ in got["events"]} == want
    holder = {e: f for e, f, _ in got["events"]}
    assert all(holder[_event_id(x)] == b_path.name for x in a[5:10])  # dropped by A, held by B: re-pointed
    assert all(holder[_event_id(x)] == a_path.name for x in new)
    assert set(got["events"]) <= set(got["event_files"])  # each event's file and line hold it
    assert [f for f, _, _ in got["quarantine"]] == [a_path.name]  # the bad line; none of the first reading's

    # B is removed: what only B held goes (A's dropped shared events with it), what A holds stays
    for settings in (duck, them):
        wh = connect(settings)
        try:
            b_id = wh.scalar("SELECT id FROM ingest_files WHERE path = ?", [str(b_path.resolve())])
            Clickstream(settings).remove_file(wh, int(b_id))
        finally:
            wh.close()
    got = _held(them)
    assert got == _held(duck)
    rest = [x for p in files[2:] for x in gzip.decompress(p.read_bytes()).split(b"\n") if x.strip()]
    assert {e for e, _, _ in got["events"]} == {_event_id(x) for x in a2[:-1] + rest}
    assert {e: f for e, f, _ in got["events"] if f == a_path.name}.keys() == {_event_id(x) for x in a2[:-1]}
    assert set(got["events"]) <= set(got["event_files"])
    tables = ["main.events", "main.event_files", "main.events_quarantine"]
    assert_same_rows(them, duck, tables)
