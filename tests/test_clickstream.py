"""Clickstream on real DuckDB files: counts against an independent reading of the rules, course
resolution, dedup across overlapping files, re-ingest, a killed ingest, and a second run."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import duckdb
import pytest

from conftest import ingest, make_data_path, python_event_lines, query_rows, settings_env
from optimus import courses
from optimus.errors import WarehouseError
from optimus.formats import events as rules
from optimus.pipeline import open_warehouse
from optimus.services.clickstream import Clickstream
from optimus.warehouse import connect

NOT_EVENTS = {"twoJSONRecords.json", "jsonArray.json", "modulestore_sample.json", "mini_modulestore_latest.json", "modulestoreImport.json"}


# -- an independent reading of the rules (standard json module, no SQL) ------------------------
def read_lines(data: bytes) -> list[tuple[int, bytes]]:
    parts = data.split(b"\n")
    if parts and parts[-1] == b"":
        parts.pop()
    return [(i + 1, p[:-1] if p.endswith(b"\r") else p) for i, p in enumerate(parts)]


def judge(raw: bytes) -> tuple[str, dict | None, str | None]:
    """('skip' | 'bad' | 'ok', the event, its JSON text from the first brace)."""
    if not raw.strip(b" \t\r\n"):
        return "skip", None, None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "bad", None, None
    if text.lstrip(" \t\ufeff").startswith("#") and not text.startswith("{"):
        return "bad", None, None
    at = text.find("{")
    if at < 0:
        return "bad", None, None
    try:
        obj = json.loads(text[at:])
        json.dumps(obj, ensure_ascii=False).encode("utf-8")  # lone surrogates cannot be stored
    except (ValueError, UnicodeEncodeError):
        return "bad", None, None
    if not isinstance(obj.get("time"), str):
        return "bad", None, None
    try:
        utc_time(obj["time"])
    except ValueError:
        return "bad", None, None
    return "ok", obj, text[at:]


def utc_time(text: str) -> datetime:
    """The rules' reading of a time: ISO, offsets up to 15:59:59 applied, years 1970 to 2100 in UTC."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is not None:
        offset = parsed.utcoffset()
        if offset is not None and abs(offset) >= timedelta(hours=16):
            raise ValueError("offset out of range")
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    if not datetime(1970, 1, 1) <= parsed < datetime(2101, 1, 1):
        raise ValueError("out of range")
    return parsed


def expected_course(obj: dict) -> str | None:
    ctx = obj.get("context") if isinstance(obj.get("context"), dict) else {}
    for cid in (ctx.get("course_id"), obj.get("course_id")):  # the context's, else a top-level one; stripped
        if isinstance(cid, str) and cid.strip():
            return cid.strip()
    et = obj.get("event_type")
    page = obj.get("page")
    return courses.from_url(et if isinstance(et, str) else None) or courses.from_url(page if isinstance(page, str) else None)


def file_bytes(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()


# -- helpers ------------------------------------------------------------------------------------
def events_dir(data: Path) -> Path:
    return data / "clickstream_logs" / "events"


def copy_fixtures(fixtures_dir: Path, target: Path) -> dict[str, Path]:
    """Every fixture file as a daily event file; returns fixture name -> copied path."""
    copied = {}
    for i, src in enumerate(sorted(fixtures_dir.glob("*.json"))):
        dest = target / f"{src.stem}-events-2013-01-{i % 28 + 1:02d}.log"
        shutil.copyfile(src, dest)
        copied[src.name] = dest
    gz = fixtures_dir / "tracking.log-20130609.gz"
    shutil.copyfile(gz, target / gz.name)
    copied[gz.name] = target / gz.name
    return copied


# -- the fixtures -------------------------------------------------------------------------------
def test_fixture_counts_match_an_independent_reading(fixtures_dir, data_path, settings_for, backend):
    copied = copy_fixtures(fixtures_dir, events_dir(data_path))
    junk = events_dir(data_path) / "junk-events-2013-02-01.log"
    good = '{"username": "u1", "event_type": "play_video", "time": "2013-06-09T10:00:00", "event": "{}", "context": {"course_id": ""}}'
    junk.write_bytes(
        b"Jun  9 10:00:00 host1 tracking: "
        + good.encode()
        + b"\n"
        + "\ufeff".encode()
        + good.replace("u1", "u2").encode()
        + b"\r\n"
        + b"# a comment line\n\n   \n"
        + good.replace("u1", "u3").encode()
        + good.encode()
        + b"\n"
        + good[:60].encode()
        + b"\n"
        + b'{"username": "u4", "time": "yesterday"}\n{"username": "u5"}\n[1, 2, 3]\n'
        + good.replace("u1", "caf\xe9").encode("latin-1")
        + b"\n"
    )
    copied["junk"] = junk
    settings = settings_for(data_path, **backend)
    ingest(settings, "Clickstream")

    ledger = {
        Path(p).name: (s, r, q)
        for p, s, r, q in query_rows(settings, "SELECT path, state, rows_loaded, rows_quarantined FROM ingest_files")
    }
    all_ok: set[str] = set()
    for name, path in copied.items():
        judged = [judge(raw) for _n, raw in read_lines(file_bytes(path))]
        ok = sum(1 for v, _o, _t in judged if v == "ok")
        bad = sum(1 for v, _o, _t in judged if v == "bad")
        all_ok |= {t for v, _o, t in judged if v == "ok"}
        assert ledger[path.name] == ("done", ok, bad), name
        if name in NOT_EVENTS:
            assert ok == 0 and bad > 0, name
    assert ledger["tracking.log-20130609.gz"][1] == 6460
    assert ledger[junk.name] == ("done", 2, 7)  # the syslog-prefixed and BOM lines load; the rest are bad
    # each distinct event once
    assert query_rows(settings, "SELECT count(*), count(DISTINCT event_id) FROM events")[0] == (len(all_ok), len(all_ok))
    reasons = dict(query_rows(settings, "SELECT line, reason FROM events_quarantine WHERE path = ?", [str(junk.resolve())]))
    assert reasons[3] == rules.COMMENT and reasons[6] == rules.TWO_OBJECTS and reasons[7] == rules.TRUNCATED
    assert (
        reasons[8] == rules.BAD_TIME and reasons[9] == rules.NO_TIME and reasons[10] == rules.NOT_OBJECT and reasons[11] == rules.BAD_UTF8
    )

    # a time with no zone is UTC; event_date is its UTC day; course resolved as the rules say
    for name in ("tracking.log-20130609.gz", "courseIdGetsProbId.json", "noCourseIDInProblemCheck.json", "edxTrackLogSample.json"):
        path = copied[name].resolve()
        rows = {
            line: (t, d, cid, key)
            for line, t, d, cid, key in query_rows(
                settings,
                "SELECT f.line, e.time, e.event_date, e.course_id, e.course_key FROM event_files f "
                "JOIN events e ON e.event_id = f.event_id JOIN ingest_files i ON i.id = f.file_id WHERE i.path = ?",
                [str(path)],
            )
        }
        expected = {n: judge(raw)[1] for n, raw in read_lines(file_bytes(path))}
        expected = {n: o for n, o in expected.items() if o is not None}
        assert set(rows) == set(expected), name
        for line, obj in expected.items():
            t, d, cid, key = rows[line]
            assert t == utc_time(obj["time"]) and d == t.date(), (name, line)
            assert cid == expected_course(obj) and key == courses.course_key(cid), (name, line)
    resolved = query_rows(
        settings,
        "SELECT DISTINCT e.course_id FROM events e JOIN event_files f ON f.event_id = e.event_id JOIN ingest_files i ON i.id = f.file_id "
        "WHERE i.path LIKE '%courseIdGetsProbId%' OR i.path LIKE '%noCourseIDInProblemCheck%'",
    )
    assert resolved == [("Education/EDUC115N/How_to_Learn_Math",)]


def test_event_payload_and_new_fields_are_kept(data_path, settings_for, backend):
    lines = [
        {
            "username": "a",
            "event_type": "problem_check",
            "time": "2014-03-01T10:00:00.5+00:00",
            "event_source": "browser",
            "event": json.dumps({"answers": {"q1": "x"}}),
            "context": {
                "course_id": "course-v1:UQx+T1+2014",
                "user_id": 7,
                "brand_new": {"x": 1},
                "module": {"usage_key": "block-v1:UQx+T1+2014+type@problem+block@p1"},
            },
            "a_new_top_level_field": [1, 2],
        },
        {
            "username": "b",
            "event_type": "problem_check",
            "time": "2014-03-01T23:30:00-05:00",
            "event": "input_1=choice_2&input_2=x",
            "context": {"course_id": "UQx/T1/2014", "user_id": ""},
        },
        {
            "username": "c",
            "name": "edx.video.played",
            "event_type": "play_video",
            "time": "2014-03-01T10:00:01",
            "event": [{"a": 1}],
            "context": {"course_id": ""},
            "page": "https://x.org/courses/course-v1%3AUQx%2BT2%2B2015/courseware/ch/seq/",
        },
        {"username": "d", "event_type": "x", "time": "2014-03-01T10:00:02+00:00", "event": '{"truncated": "abc', "context": {}},
    ]
    (events_dir(data_path) / "UQx-edx-events-2014-03-01.log").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    settings = settings_for(data_path, **backend)
    ingest(settings, "Clickstream")
    rows = {
        r[0]: r[1:]
        for r in query_rows(
            settings, "SELECT username, event, context, user_id, time, event_date, event_type, course_id, course_key, module_id FROM events"
        )
    }
    assert json.loads(rows["a"][0]) == {"answers": {"q1": "x"}}  # a JSON string holding an object becomes the object
    assert json.loads(rows["a"][1])["brand_new"] == {"x": 1}
    assert rows["a"][2] == 7 and rows["b"][2] is None
    assert rows["a"][8] == "block-v1:UQx+T1+2014+type@problem+block@p1"
    assert json.loads(rows["b"][0]) == "input_1=choice_2&input_2=x"  # key=value kept as a string
    assert json.loads(rows["c"][0]) == [{"a": 1}]  # a list kept
    assert json.loads(rows["d"][0]) == '{"truncated": "abc'  # a truncated payload stays a string
    assert rows["b"][3] == datetime(2014, 3, 2, 4, 30) and str(rows["b"][4]) == "2014-03-02"  # converted to UTC
    assert rows["a"][3] == datetime(2014, 3, 1, 10, 0, 0, 500000)
    assert rows["c"][5] == "edx.video.played"
    assert rows["c"][6:8] == ("course-v1:UQx+T2+2015", "UQx+T2+2015")  # from the page, percent-decoded
    assert rows["a"][7] == rows["b"][7] == "UQx+T1+2014"


# -- course keys: SQL against optimus.courses ---------------------------------------------------
COURSE_IDS = [
    "UQx/T1/2014",
    "course-v1:UQx+T1+2014",
    "ccx-v1:UQx+T1+2014+ccx@12",
    "course-v1:UQx+T1+2014+ccx@3",
    "Medicine/HRP258/Statistics_in_Medicine",
    "course-v1:edX+DemoX.1+2T2019",
    " UQx/T2/2015 ",
    "UQx/T2/2015\n",
    "course-v1%3AUQx%2BT3%2B2016",
    "UQx%2FT4%2F2017",
    "ccx-v1%3AUQx%2BT5%2B2018%2Bccx%409",
    "course-v1:UQx+T1",
    "a/b",
    "a/b/c/d",
    "not a course",
    "course-v1:UQx+T+1+2",
    "UQx/T 1/2014",
    "UQx+x/T1/2014",
    "\u00a0UQx/T6/2019\u3000",
    "course-v1:Org-With-Dash+Course_1+Run.2",
    "UQx/T7/2020%0A",
    "",
    "%",
    "course-v1:a+b+c+ccx@",
    "course-v1:a+b+c+ccx@x",
    "v1/courses/course-v1:UQx+X+1T2024",  # no '+' in an old-form part: no course (issue 16)
    "UQx/X+Y/1T2024",
]


def test_course_key_sql_equals_python(tmp_path, settings_for, backend):
    settings = settings_for(make_data_path(tmp_path / "d"), **backend)
    wh = connect(settings)
    try:
        values = " UNION ALL ".join("SELECT ? AS cid" for _ in COURSE_IDS)
        got = dict(wh.query(rules.course_key_sql(wh.sql, f"({values}) v", "cid"), COURSE_IDS))
    finally:
        wh.close()
    for cid in COURSE_IDS:
        assert got[cid] == courses.course_key(cid), repr(cid)


def test_course_resolution_on_many_ids(data_path, settings_for, backend):
    lines = []
    for i, cid in enumerate(COURSE_IDS):
        for where in ("context", "event_type", "page", "encoded_url"):
            ev = {
                "username": f"u{i}",
                "time": f"2014-03-01T10:{i % 60:02d}:00+00:00",
                "event": "",
                "context": {"course_id": "", "n": where},
            }
            if where == "context":
                ev["context"]["course_id"] = cid
            elif where == "event_type":
                ev["event_type"] = f"/courses/{cid}/courseware/ch1/"
            elif where == "page":
                ev["event_type"], ev["page"] = "page_close", f"https://lms.example/courses/{cid}/about?x=1"
            else:
                ev["event_type"] = f"/courses/{quote(cid, safe='/')}/progress"
            lines.append(json.dumps(ev))
    (events_dir(data_path) / "UQx-edx-events-2014-03-01.log").write_text("\n".join(lines) + "\n")
    settings = settings_for(data_path, **backend)
    ingest(settings, "Clickstream")
    got = {
        line: (cid, key)
        for line, cid, key in query_rows(
            settings, "SELECT f.line, e.course_id, e.course_key FROM events e JOIN event_files f USING (event_id)"
        )
    }
    assert len(got) == len(lines)
    for n, text in enumerate(lines, start=1):
        want = expected_course(json.loads(text))
        assert got[n] == (want, courses.course_key(want)), text


# -- overlapping files, re-ingest, removal -------------------------------------------------------
def test_overlapping_files_store_each_event_once(fixtures_dir, data_path, settings_for, backend):
    source = [raw for _n, raw in read_lines(file_bytes(fixtures_dir / "tracking.log-20130609.gz")) if raw.strip()]
    a_lines, extra = source[:400], source[400:600]
    b_lines = a_lines[::2] + extra[:100]
    a_path = events_dir(data_path) / "tracking.log-20130609.gz"
    b_path = events_dir(data_path) / "tracking.log-20130610"
    a_path.write_bytes(gzip.compress(b"\n".join(a_lines) + b"\n"))
    b_path.write_bytes(b"\n".join(b_lines) + b"\n")
    settings = settings_for(data_path, **backend)
    ingest(settings, "Clickstream")

    def stored() -> set[str]:
        rows = query_rows(settings, "SELECT event_id, username, time FROM events")
        assert len(rows) == len({r[0] for r in rows})
        return {r[0] for r in rows}

    def ids(lines: list[bytes]) -> set[str]:
        import hashlib

        return {hashlib.sha1(line[line.find(b"{") :] + b"\n").hexdigest() for line in lines}

    assert stored() == ids(a_lines) | ids(b_lines)
    assert len(stored()) == len(set(a_lines) | set(b_lines))
    # A changes: drops lines only it held and lines B holds too, and gains new ones
    a2 = a_lines[1:200:2] + a_lines[200:300] + extra[100:150]
    time.sleep(0.01)
    a_path.write_bytes(gzip.compress(b"\n".join(a2) + b"\n"))
    os.utime(a_path, (time.time() + 5, time.time() + 5))
    ingest(settings, "Clickstream")
    assert stored() == ids(a2) | ids(b_lines)
    assert query_rows(settings, "SELECT count(*) FROM event_files")[0][0] == len(set(a2)) + len(set(b_lines))
    # every event's file and line point at a file that holds it
    assert (
        query_rows(
            settings,
            "SELECT count(*) FROM events e WHERE NOT EXISTS (SELECT 1 FROM event_files f WHERE f.event_id = e.event_id AND f.file_id = e.file_id AND f.line = e.line)",
        )[0][0]
        == 0
    )
    b_id = query_rows(settings, "SELECT id FROM ingest_files WHERE path = ?", [str(b_path.resolve())])[0][0]
    # removing B keeps what A still holds
    wh = connect(settings)
    try:
        Clickstream(settings).remove_file(wh, b_id)
    finally:
        wh.close()
    assert stored() == ids(a2)


# -- a killed ingest, and a second run ------------------------------------------------------------
def _run(settings, extra_env: dict[str, str] | None = None, wait: bool = True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTIMUS_")}
    env.update(settings_env(settings))
    env.update(extra_env or {})
    cmd = [sys.executable, "-m", "optimus", "ingest", "-s", "Clickstream", "-s", "DatabaseState"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if wait:
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, out.decode()
    return proc


BOOKKEEPING = {
    "id",
    "file_id",
    "run_id",
    "started_at",
    "finished_at",
    "registered_at",
    "loaded_at",
    "attempts",
    "note",
    "first_seen",
    "last_seen",
    "applied_at",
    "mtime",
}


def _same_tables(a: Path, b: Path) -> list[str]:
    con = duckdb.connect()
    con.execute(f"ATTACH '{a}' AS a (READ_ONLY)")
    con.execute(f"ATTACH '{b}' AS b (READ_ONLY)")
    schemas = dict(con.execute("SELECT table_name, schema_name FROM duckdb_tables() WHERE database_name = 'a'").fetchall())
    tables = list(schemas)
    assert {"events", "event_files", "events_quarantine", "ingest_files", "auth_user"} <= set(tables)
    assert schemas["auth_user"] == "edx" and schemas["events"] == "main"
    checked = []
    for table in tables:
        if table in ("service_runs", "service_run_changes", "schema_info"):
            continue
        cols = [
            c
            for (c,) in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = 'a' AND schema_name = ? AND table_name = ?",
                [schemas[table], table],
            ).fetchall()
            if c not in BOOKKEEPING
        ]
        sel = ", ".join(f'"{c}"' for c in cols)
        if table in ("event_files", "events", "events_quarantine"):  # file ids as paths
            sel += ", (SELECT path FROM {db}.ingest_files i WHERE i.id = t.file_id)"
        for x, y in (("a", "b"), ("b", "a")):
            diff = con.execute(
                f'SELECT count(*) FROM (SELECT {sel.format(db=x)} FROM {x}.{schemas[table]}."{table}" t EXCEPT ALL SELECT {sel.format(db=y)} FROM {y}.{schemas[table]}."{table}" t)'
            ).fetchone()[0]
            assert diff == 0, (table, x, y)
        checked.append(table)
    con.close()
    return checked


def test_killed_ingest_leaves_no_partial_rows(tmp_path, settings_for):
    from optimus.sample import generate

    data = tmp_path / "sample"
    generate(data, courses=1, learners=30, days=2, seed=3)
    whole = settings_for(data, warehouse=str(tmp_path / "whole.duckdb"))
    _run(whole, {"OPTIMUS_TEST_CLICKSTREAM_BATCH_BYTES": "4096"})

    killed = settings_for(data, warehouse=str(tmp_path / "killed.duckdb"))
    marker = tmp_path / "paused"
    proc = _run(
        killed,
        {"OPTIMUS_TEST_CLICKSTREAM_BATCH_BYTES": "4096", "OPTIMUS_TEST_PAUSE_AFTER_ROWS": "5", "OPTIMUS_TEST_PAUSE_MARKER": str(marker)},
        wait=False,
    )
    deadline = time.time() + 120
    while not marker.exists():
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.time() < deadline, "the ingest never paused"
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # DuckDB's lock is gone with the process
    assert query_rows(killed, "SELECT count(*) FROM ingest_files WHERE state = 'running' AND service = 'Clickstream'")[0][0] == 1
    assert query_rows(killed, "SELECT count(*) FROM events")[0][0] == 0  # the paused block was written, not committed
    assert query_rows(killed, "SELECT count(*) FROM event_files")[0][0] == 0

    _run(killed, {"OPTIMUS_TEST_CLICKSTREAM_BATCH_BYTES": "4096"})
    checked = _same_tables(tmp_path / "whole.duckdb", tmp_path / "killed.duckdb")
    assert "auth_user" in checked and "events" in checked


def test_second_ingest_does_nothing(fixtures_dir, data_path, settings_for, cli, backend):
    shutil.copyfile(fixtures_dir / "tracking.log-20130609.gz", events_dir(data_path) / "tracking.log-20130609.gz")
    settings = settings_for(data_path, **backend)
    first = cli(["ingest"], settings)
    runs = query_rows(settings, "SELECT count(*) FROM service_runs")[0][0]
    events = query_rows(settings, "SELECT count(*) FROM events")[0][0]
    assert query_rows(settings, "SELECT status FROM service_runs WHERE service = 'Clickstream'") == [("ok",)], first.output
    second = cli(["ingest"], settings)
    assert second.exit_code == 0, second.output
    assert "nothing to do" in second.output
    assert query_rows(settings, "SELECT count(*) FROM service_runs")[0][0] == runs
    assert query_rows(settings, "SELECT count(*) FROM events")[0][0] == events == 6460


def test_next_file_is_read_while_this_one_is_loaded(tmp_path):
    """The reader of the file after this one starts when this one is read to its end, and is the
    one used for it; what it read is the file, line for line; a plan without it lets it go."""
    from optimus.services.clickstream_reader import ReadAhead

    paths = []
    for name in ("a", "b", "c"):
        path = tmp_path / f"{name}.log.gz"
        with gzip.open(path, "wb") as fh:
            fh.write(b"".join(b'{"n": "%s%d"}\n' % (name.encode(), i) for i in range(1000)))
        paths.append(path)
    reads = ReadAhead(batch_bytes=4096)
    reads.plan(paths[0], paths[1])
    first = reads.batches(paths[0])
    lines = [line for batch in first for line in batch.table["raw"].to_pylist()]
    assert lines == [f'{{"n": "a{i}"}}\n' for i in range(1000)]
    ahead = reads._ready
    assert ahead is not None and ahead.path == paths[1]
    reads.plan(paths[1], paths[2])
    second = reads.batches(paths[1])
    assert second is ahead  # the reader started ahead is the one used
    assert sum(batch.table.num_rows for batch in second) == 1000
    third = reads._ready
    assert third is not None and third.path == paths[2]
    reads.plan(None, None)  # the run stops before c: its reader is let go
    assert reads._ready is None and not third._thread.is_alive()


def test_blocks_fed_to_the_engine_are_let_go_inside_the_files_transaction(data_path: Path, settings_for: Any) -> None:
    """With external access off, a block is a relation named for one statement: once the statement is
    done, DuckDB holds none of its Arrow memory, even inside the file's transaction (a view registered
    there would keep every block until the commit)."""
    import pyarrow as pa

    wh = connect(settings_for(data_path))
    try:
        wh.execute("CREATE TABLE blocks (line BIGINT, raw VARCHAR)")
        with wh.transaction():
            for i in range(6):
                block = pa.table(
                    {"line": pa.array(range(i * 100_000, (i + 1) * 100_000), pa.int64()), "raw": pa.array(["x" * 200] * 100_000)}
                )  # ~20 MB of Arrow
                wh.execute_over_arrow("INSERT INTO blocks SELECT line, left(raw, 3) FROM arrow_block", block)
                del block
                assert pa.total_allocated_bytes() < 25 << 20, f"block {i}: {pa.total_allocated_bytes()} bytes of Arrow still held"
            assert wh.scalar("SELECT count(*) FROM blocks") == 600_000
    finally:
        wh.close()


def test_engine_memory_leaves_room_for_the_blocks_held_outside_it(data_path: Path, settings_for: Any) -> None:
    """DuckDB fills its memory_limit as a cache, and its settings are locked once open: a writer's engine
    gets the setting less the blocks Clickstream may hold (never under half of it), from the start; a
    reader, or a writer without Clickstream, gets the whole setting; nothing can SET it afterwards."""
    held = Clickstream.bytes_outside_engine()
    assert held == 3 * Clickstream._batch_bytes()
    settings = settings_for(data_path, memory_limit="1GiB")
    wh = open_warehouse(settings)
    try:
        limit = lambda w: w.scalar("SELECT current_setting('memory_limit')")  # noqa: E731
        assert limit(wh) == f"{max((1 << 30) - held, 1 << 29) >> 20:.1f} MiB"
        wh.hold_outside(held)  # within the room left: nothing to do
        with pytest.raises(WarehouseError):
            wh.hold_outside(held + 1)
        with pytest.raises(duckdb.Error, match="locked"):
            wh.execute("SET memory_limit = '4GiB'")
    finally:
        wh.close()
    without = open_warehouse(settings_for(data_path, memory_limit="1GiB", ignored_services=["Clickstream"]))
    try:
        assert limit(without) == "1.0 GiB"
    finally:
        without.close()


def test_the_engine_reads_a_file_as_the_reader_does_and_leaves_odd_files_to_it(data_path: Path, settings_for: Any) -> None:
    """Warehouse.event_lines on DuckDB: line numbers (blank lines counted), text and fingerprints are
    those of a plain Python reading (SHA-1 of the line from its first `{` plus `\\n`); a file it cannot
    read as plain lines gives None, and its failed read leaves the caller's transaction working;
    a CRC-damaged archive (which DuckDB reads without noticing) fails gzip_intact."""
    from optimus.services.clickstream_reader import gzip_intact

    events = data_path / "clickstream_logs" / "events"
    lines = [b'{"a": 1}', b"", b"  ", b'junk {"b": "x,y\\"q"}', b"# note", b'{"c": "\xc3\xa9"}', b"no object", b'{"d": 2}']
    clean = events / "clean.log.gz"
    clean.write_bytes(gzip.compress(b"\n".join(lines)))  # no final newline: the last line is a line
    odd = {
        "crlf.log.gz": gzip.compress(b'{"a": 1}\r\n{"b": 2}\r\n'),
        "latin1.log.gz": gzip.compress(b'{"a": 1}\n{"b": "\xe9"}\n'),
        "cut.log.gz": gzip.compress(b'{"a": 1}\n' * 50_000)[:-5000],
        "long.log": b'{"a": "' + b"x" * 300 + b'"}\n',
    }
    for name, data in odd.items():
        (events / name).write_bytes(data)
    wh = connect(settings_for(data_path))
    try:
        assert wh.capabilities.reads_files
        with wh.transaction():
            wh.execute("CREATE TEMP TABLE probe (n INTEGER)")
            for name in odd:
                with wh.event_lines(events / name, 200) as rel:
                    assert rel is None, name
            wh.execute("INSERT INTO probe VALUES (1)")  # the failed reads did not fail this transaction
            with wh.event_lines(clean, 1 << 20) as rel:
                assert rel is not None
                got = wh.query(f"SELECT line, raw, event_id FROM {rel} ORDER BY line")
        assert wh.scalar("SELECT count(*) FROM probe") == 1
    finally:
        wh.close()
    assert got == python_event_lines(b"\n".join(lines))
    assert gzip_intact(clean) and not gzip_intact(events / "cut.log.gz")
    damaged = bytearray(gzip.compress(b'{"a": 1}\n' * 1000))
    damaged[-8] ^= 0xFF  # the CRC-32 in the trailer
    (events / "crc.log.gz").write_bytes(bytes(damaged))
    assert not gzip_intact(events / "crc.log.gz")


def test_the_engine_reads_an_event_file_linked_from_outside_the_data_path(tmp_path: Path, data_path: Path, settings_for: Any) -> None:
    """A day file that is a link to a store outside the data path (discovery ledgers its resolved path)
    is read by the engine (event_lines gives its lines), and an ingest of it stores what a copy of
    it stores; the file beside it in the store, which no link names, stays out of the engine's reach."""
    store = tmp_path / "store"
    store.mkdir()
    text = b"".join(
        b'{"username": "u%d", "event_type": "play", "time": "2024-01-05T10:00:%02d+00:00", "context": {}}\n' % (n, n) for n in range(40)
    )
    (store / "UQx-edx-events-2024-01-05.log.gz").write_bytes(gzip.compress(text))
    (store / "UQx-edx-events-2024-01-06.log.gz").write_bytes(gzip.compress(text))
    linked = data_path / "clickstream_logs" / "events" / "UQx-edx-events-2024-01-05.log.gz"
    linked.symlink_to(store / "UQx-edx-events-2024-01-05.log.gz")
    settings = settings_for(data_path)
    wh = connect(settings)
    try:
        with wh.event_lines(linked.resolve(), 1 << 20) as rel:
            assert rel is not None
            assert wh.scalar(f"SELECT count(*) FROM {rel} WHERE raw <> ''") == 40
        with wh.event_lines((store / "UQx-edx-events-2024-01-06.log.gz").resolve(), 1 << 20) as rel:
            assert rel is None
    finally:
        wh.close()
    ingest(settings, "Clickstream")
    assert sorted(r[0] for r in query_rows(settings, "SELECT username FROM events")) == sorted(f"u{n}" for n in range(40))


def test_an_event_file_read_ahead_is_the_file_asked_for(data_path: Path, settings_for: Any) -> None:
    """prefetch_event_lines: the file read ahead gives the lines of a plain reading when it is the one
    asked for next; when another file is asked for, that one is read (the read ahead let go); lines
    read ahead are visible to the next transaction; None lets go of a read."""
    events = data_path / "clickstream_logs" / "events"
    texts = {name: [f'{{"n": {k}, "f": "{name}"}}' for k in range(n)] for name, n in (("a.log.gz", 30), ("b.log.gz", 50), ("c.log", 7))}
    for name, lines in texts.items():
        data = "\n".join(lines).encode() + b"\n"
        (events / name).write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    wh = connect(settings_for(data_path))
    try:
        got = {}
        for ask, ahead in (("a.log.gz", "b.log.gz"), ("b.log.gz", "c.log"), ("a.log.gz", None), ("c.log", "c.log")):
            with wh.transaction(), wh.event_lines(events / ask, 1 << 20) as rel:
                assert rel is not None
                wh.prefetch_event_lines(events / ahead if ahead else None, 1 << 20)
                got[ask] = [r[0] for r in wh.query(f"SELECT raw FROM {rel} ORDER BY line")]
            assert got[ask] == texts[ask], ask
        wh.prefetch_event_lines(None, 1 << 20)
    finally:
        wh.close()


def test_courses_learnt_first_or_not_store_the_same(fixtures_dir, tmp_path, settings_for, monkeypatch):
    """An engine that declares costly_statements (Spark) does not learn a file's course values from
    its first lines before the parse: that changes how many statements, never what is stored (both
    ways on DuckDB, the first 1000 of the day file's 6460 lines learnt first, a bad line every 700)."""
    import dataclasses

    from conftest import assert_same_rows
    from optimus.services import clickstream
    from optimus.warehouse.duckdb import DuckDBWarehouse

    monkeypatch.setattr(clickstream, "_FIRST_LINES", 1000)
    lines = gzip.decompress((fixtures_dir / "tracking.log-20130609.gz").read_bytes()).splitlines(keepends=True)
    mixed = tmp_path / "tracking-events-2013-06-09.log.gz"
    mixed.write_bytes(gzip.compress(b"".join(b"not an event\n" + line if i % 700 == 0 else line for i, line in enumerate(lines, 1))))
    stored = []
    learnt: list[int] = []  # course values the cache held after each learning statement
    learn = clickstream.Clickstream._learn_courses

    def counted(wh, lines):
        learn(wh, lines)
        learnt.append(int(wh.scalar(f"SELECT count(*) FROM {clickstream._COURSES}") or 0))

    monkeypatch.setattr(clickstream.Clickstream, "_learn_courses", staticmethod(counted))
    for costly in (False, True):
        data = make_data_path(tmp_path / f"data-{costly}")
        (events_dir(data) / mixed.name).symlink_to(mixed)
        monkeypatch.setattr(DuckDBWarehouse, "capabilities", dataclasses.replace(DuckDBWarehouse.capabilities, costly_statements=costly))
        settings = settings_for(data, warehouse=str(tmp_path / f"wh-{costly}" / "optimus.duckdb"))
        ingest(settings, "Clickstream")
        stored.append(settings)
    assert len(learnt) == 1 and learnt[0] > 0  # learnt once, on DuckDB as it is, and it found course values
    assert query_rows(stored[0], "SELECT count(*) FROM events")[0][0] > 1000
    assert query_rows(stored[0], "SELECT count(*) FROM events_quarantine")[0][0] == len(lines) // 700
    assert_same_rows(stored[1], stored[0], ["main.events", "main.event_files", "main.events_quarantine"])
