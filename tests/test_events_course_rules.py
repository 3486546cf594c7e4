"""The course rules of tracking-log events (issue 16, "Event rules to fix"), on both engines.

Each rule has crafted events with the answer worked out by hand (the analytics pipeline's own test
inputs where it has them: edx-analytics-pipeline `util/tests/test_eventlog.py` and
`test_opaque_key_util.py`), and the SQL (formats/events.parse_sql) is checked against its Python twin
(optimus.courses.event_course, from_url) over many URLs, crafted and fuzzed. The rules:

- `/xblock/{block_id}` gives the block's course, block pattern first; a block id that is no usage key
  gives none (util/opaque_key_util.py get_course_key_from_url);
- `/api/courses/v1/courses/{id}/` is course `{id}` (COURSE_REGEX skips a version segment), and a
  string that does not parse as a course id never makes a course;
- a top-level `course_id` (old logs without `context`) is read (edx2bigquery; the pipeline does not);
- usernames and course ids are stripped of white space (util/eventlog.py get_event_username,
  opaque_key_util.normalize_course_id).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from conftest import duckdb_and_postgres, ingest, ingest_sample, query_rows
from optimus import courses
from optimus.formats import events as rules
from optimus.warehouse.base import Warehouse

TIME = "2024-03-01T10:00:00+00:00"
PIPELINE_XBLOCK_PAGE = "https://courses.edx.org/xblock/block-v1:DemoX+DemoX+T1_2014+type@vertical+block@3848270?p1=0&p2=0"
PIPELINE_INVALID_XBLOCK_PAGE = "https://courses.edx.org/xblock/block-v1:DemoX+DemoX+T1_2014?p1=0&p2=0"
HANDLER = "/xblock/block-v1:UQx+X+1T2024+type@problem+block@p1/handler/xmodule_handler/problem_check"


def event(**fields: Any) -> dict[str, Any]:
    """A tracking-log event with the given fields (a `time` unless given; `context` only when given)."""
    return {"username": "u1", "time": TIME, "event": {}, **fields}


# (what the case shows, the event, the expected course_id, the expected course_key): worked out by hand
CRAFTED: list[tuple[str, dict[str, Any], str | None, str | None]] = [
    # -- /xblock/ (pipeline: GetCourseIdTest)
    (
        "pipeline test_course_id_from_xblock_browser_url",
        event(event_source="browser", event_type="page_close", context={}, page=PIPELINE_XBLOCK_PAGE),
        "course-v1:DemoX+DemoX+T1_2014",
        "DemoX+DemoX+T1_2014",
    ),
    (
        "pipeline test_course_id_from_invalid_xblock_browser_url: no type@, no course",
        event(event_source="browser", event_type="page_close", context={}, page=PIPELINE_INVALID_XBLOCK_PAGE),
        None,
        None,
    ),
    (
        "server handler call, empty context course",
        event(event_source="server", event_type=HANDLER, context={"course_id": ""}),
        "course-v1:UQx+X+1T2024",
        "UQx+X+1T2024",
    ),
    (
        "block pattern first, even under /courses/ (the block's course wins)",
        event(event_source="server", event_type=f"/courses/course-v1:UQx+X+1T2024{HANDLER.replace('+X+', '+Y+')}", context={}),
        "course-v1:UQx+Y+1T2024",
        "UQx+Y+1T2024",
    ),
    (
        "a block id that is no usage key gives none: the /courses/ rule is not tried",
        event(event_source="server", event_type="/courses/course-v1:UQx+X+1T2024/xblock/block-v1:UQx+X+1T2024?x=1", context={}),
        None,
        None,
    ),
    (
        "/xblock/ with no block id after it: the /courses/ rule is",
        event(event_source="server", event_type="/courses/course-v1:UQx+X+1T2024/xblock/", context={}),
        "course-v1:UQx+X+1T2024",
        "UQx+X+1T2024",
    ),
    (
        "a CCX block: the CCX course",
        event(
            event_source="browser",
            event_type="page_close",
            page="https://lms.example/xblock/ccx-block-v1:UQx+X+1T2024+ccx@3+type@html+block@h1",
        ),
        "ccx-v1:UQx+X+1T2024+ccx@3",
        "UQx+X+1T2024+ccx@3",
    ),
    (
        "a CCX block without its ccx@ is no usage key",
        event(
            event_source="browser", event_type="page_close", page="https://lms.example/xblock/ccx-block-v1:UQx+X+1T2024+type@html+block@h1"
        ),
        None,
        None,
    ),
    (
        "a percent-encoded block id is decoded",
        event(event_source="server", event_type="/xblock/block-v1:UQx+X+1T2024+type%40vertical+block%40v1", context={}),
        "course-v1:UQx+X+1T2024",
        "UQx+X+1T2024",
    ),
    (
        "pipeline test_get_course_key_from_invalid_block_url: 'Invalid+Block+ID'",
        event(event_source="browser", event_type="page_close", page="https://courses.edx.org/xblock/Invalid+Block+ID?stuff=things"),
        None,
        None,
    ),
    (
        "event_type first, then page: an invalid block in event_type, a valid one in page",
        event(event_source="browser", event_type=PIPELINE_INVALID_XBLOCK_PAGE, page=PIPELINE_XBLOCK_PAGE),
        "course-v1:DemoX+DemoX+T1_2014",
        "DemoX+DemoX+T1_2014",
    ),
    (
        "a context course wins over any URL",
        event(event_source="browser", event_type="page_close", context={"course_id": "course-v1:A+B+C"}, page=PIPELINE_XBLOCK_PAGE),
        "course-v1:A+B+C",
        "A+B+C",
    ),
    # -- versioned API URLs (pipeline: COURSE_REGEX's (?!v[0-9]+/[^/]+))
    (
        "versioned API URL: the course after the version segment",
        event(event_source="server", event_type="/api/courses/v1/courses/course-v1:UQx+X+1T2024/", context={"course_id": ""}),
        "course-v1:UQx+X+1T2024",
        "UQx+X+1T2024",
    ),
    (
        "versioned API URL without a course: none (not a course 'v1/courses/...')",
        event(event_source="server", event_type="/api/courses/v1/courses/", context={}),
        None,
        None,
    ),
    (
        "versioned API URL with an old-form id",
        event(event_source="server", event_type="/api/courses/v2/courses/UQx/X/1T2024/blocks/", context={}),
        "UQx/X/1T2024",
        "UQx+X+1T2024",
    ),
    (
        "an old-form URL as before",
        event(event_source="server", event_type="/courses/UQx/X/1T2024/info", context={}),
        "UQx/X/1T2024",
        "UQx+X+1T2024",
    ),
    (
        "no /courses/: none",
        event(event_source="server", event_type="/api/course_home/v1/outline/course-v1:UQx+X+1T2024", context={}),
        None,
        None,
    ),
    (
        "'/courses/v1/courses/x': the first is versioned, the second has no course id",
        event(event_source="browser", event_type="page_close", page="https://lms.example/courses/v1/courses/x"),
        None,
        None,
    ),
    # -- a top-level course_id (edx2bigquery's split_and_rephrase.do_split reads it)
    (
        "old log without context: the top-level course_id",
        event(event_source="server", event_type="problem_check", course_id="UQx/X/1T2024"),
        "UQx/X/1T2024",
        "UQx+X+1T2024",
    ),
    (
        "context.course_id wins over a top-level one",
        event(event_source="server", event_type="problem_check", course_id="UQx/X/1T2024", context={"course_id": "course-v1:A+B+C"}),
        "course-v1:A+B+C",
        "A+B+C",
    ),
    (
        "a blank top-level course_id: the URL",
        event(event_source="server", event_type="/courses/UQx/X/1T2024/info", course_id="  "),
        "UQx/X/1T2024",
        "UQx+X+1T2024",
    ),
    (
        "a top-level course_id wins over a URL",
        event(event_source="server", event_type="/courses/UQx/Z/1T2024/info", course_id="UQx/X/1T2024"),
        "UQx/X/1T2024",
        "UQx+X+1T2024",
    ),
    # -- white space stripped (pipeline: normalize_course_id)
    (
        "a context course id with white space around it",
        event(event_source="server", event_type="problem_check", context={"course_id": " course-v1:UQx+X+1T2024\n"}),
        "course-v1:UQx+X+1T2024",
        "UQx+X+1T2024",
    ),
    (
        "a white-space-only context course id: the page",
        event(
            event_source="browser",
            event_type="page_close",
            context={"course_id": " \n"},
            page="https://lms.example/courses/UQx/X/1T2024/about",
        ),
        "UQx/X/1T2024",
        "UQx+X+1T2024",
    ),
]

# (username given, username stored): the pipeline's get_event_username strips
USERNAMES = [(" alice\n", "alice"), ("alice", "alice"), ("\u00a0bob\t", "bob"), ("", ""), ("a b", "a b")]


def lines_sql(wh: Warehouse, raws: list[str]) -> tuple[str, list[Any]]:
    """A subquery of table `lines(line, raw, event_id)` over `raws`, and its parameters."""
    rows = " UNION ALL ".join("SELECT CAST(? AS BIGINT) AS line, CAST(? AS VARCHAR) AS raw, CAST(? AS VARCHAR) AS event_id" for _ in raws)
    params: list[Any] = []
    for n, raw in enumerate(raws, start=1):
        params += [n, raw + "\n", f"id{n}"]
    return f"({rows}) lines", params


def parsed(wh: Warehouse, events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """(reason, username, course_id, course_key) of each event, as parse_sql reads it, in order."""
    lines, params = lines_sql(wh, [json.dumps(e) for e in events])
    sql = f"SELECT line, reason, username, course_id, course_key FROM ({rules.parse_sql(wh.sql, lines)}) p ORDER BY line"
    return [tuple(row[1:]) for row in wh.query(sql, params)]


def twin(ev: dict[str, Any]) -> tuple[str | None, str | None]:
    """The Python twin's (course_id, course_key) of an event."""
    ctx = ev.get("context") if isinstance(ev.get("context"), dict) else {}
    cid = courses.event_course(ctx.get("course_id"), ev.get("course_id"), ev.get("event_type"), ev.get("page"))
    return cid, courses.course_key(cid)


@pytest.fixture(scope="module")
def warehouses(tmp_path_factory: pytest.TempPathFactory, pg_server: str) -> Iterator[dict[str, Warehouse]]:
    """A real DuckDB warehouse and a real PostgreSQL warehouse, opened once."""
    with duckdb_and_postgres(tmp_path_factory.mktemp("course_rules"), pg_server, "course_rules") as opened:
        yield opened


# -- the Python twin, by hand ----------------------------------------------------------------------


@pytest.mark.parametrize(("why", "ev", "course_id", "key"), CRAFTED, ids=[c[0] for c in CRAFTED])
def test_python_twin_gives_the_hand_worked_course(why: str, ev: dict[str, Any], course_id: str | None, key: str | None) -> None:
    assert twin(ev) == (course_id, key)


def test_pipeline_invalid_block_ids_give_no_course() -> None:
    """test_opaque_key_util.py test_get_course_key_from_invalid_block_url: None, '', 'Invalid+Block+ID', '\\n'."""
    for block_id in (None, "", "Invalid+Block+ID", "\n"):
        assert courses.from_url(f"https://courses.edx.org/xblock/{block_id}?stuff=things") is None, repr(block_id)


def test_a_string_that_is_no_course_id_makes_no_course() -> None:
    assert courses.parse("v1/courses/course-v1:UQx+X+1T2024") is None  # today's bug: key 'v1+courses+course-v1:UQx+X+1T2024'
    assert courses.parse("UQx/X+Y/1T2024") is None  # no '+' in an old-form part (opaque-keys' deprecated ids)
    assert courses.course_key("UQx/X/1T2024") == "UQx+X+1T2024"
    assert courses.course_of_block("block-v1:DemoX+DemoX+T1_2014") is None
    assert (
        courses.course_of_block("block-v1:DemoX+DemoX+T1_2014+branch@b+version@0AF+type@problem+block@p") == "course-v1:DemoX+DemoX+T1_2014"
    )
    assert courses.course_of_block("block-v1:DemoX+DemoX+T1_2014+ccx@1+type@problem+block@p") is None  # ccx@ only in a CCX block
    assert courses.decoded("a%ffb") is None  # not UTF-8: none, as the SQL's url_decode_or_null


# -- the SQL, by hand, on both engines ---------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_sql_gives_the_hand_worked_course(warehouses: dict[str, Warehouse], engine: str) -> None:
    got = parsed(warehouses[engine], [ev for _, ev, _, _ in CRAFTED])
    for (why, _, course_id, key), (reason, _, got_id, got_key) in zip(CRAFTED, got, strict=True):
        assert reason is None, why
        assert (got_id, got_key) == (course_id, key), why


@pytest.mark.postgres
@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_sql_strips_usernames(warehouses: dict[str, Warehouse], engine: str) -> None:
    got = parsed(warehouses[engine], [event(username=given, event_type="problem_check") for given, _ in USERNAMES])
    assert [row[1] for row in got] == [want for _, want in USERNAMES]


# -- SQL equals its Python twin, over many URLs -----------------------------------------------------

URLS = [
    *(ev.get(k) for _, ev, _, _ in CRAFTED for k in ("event_type", "page")),
    "/api/courses/V1/courses/course-v1:UQx+X+1T2024/",
    "/api/courses/v12/courses/course-v1:UQx+X+1T2024",
    "/courses/v1/b/c",
    "/courses/v/b/c/",
    "/courses/v1x/b/c",
    "/courses/va1/b/c",
    "/courses/v1//b/c",
    "/courses/v1/?x/y/z",
    "/courses/v1/courses/v2/courses/UQx/X/1",
    "/api/courses/v1/courses/course-v1:UQx+X+1T2024#frag",
    "/courses/course-v1:UQx+X+1T2024/xblock/block-v1:UQx+X+1T2024+type@problem+block@p1",
    "/xblock/block-v1:UQx+X+1T2024+type@problem+block@p1/xblock/block-v1:UQx+Y+1T2024+type@problem+block@p1",
    "/xblock/a/b/c/xblock/block-v1:UQx+Y+1T2024+type@problem+block@p1",
    "/xblock/block-v1:UQx+X+1T2024+type@problem",
    "/xblock/block-v1:UQx+X+1T2024+type@problem+block@",
    "/xblock/block-v1:UQx+X+1T2024+version@zz+type@problem+block@p",
    "/xblock/block-v1:UQx+X+1T2024+type@problem+block@p%ff",
    "/xblock/block-v1:UQx+X+1T2024+type@problem+block@p%0A",
    "/xblock/i4x://UQx/X/problem/p1",
    "/XBLOCK/block-v1:UQx+X+1T2024+type@problem+block@p1",
    "/xblock/block-v1:UQx+X +1T2024+type@problem+block@p1",
    "/courses/course-v1:UQx+X+1T2024%ff/info",
    "/courses/UQx/X/1T2024\n/info",
    "/courses/UQx%2FX%2F1T2024/info",
    "/courses/v/+ccx@3/courses/",  # (found by the fuzz: an old-form part with '+' is no course)
]


@pytest.mark.postgres
@pytest.mark.parametrize("engine", ["duckdb", "postgres"])
def test_sql_equals_python_twin_on_many_urls(warehouses: dict[str, Warehouse], engine: str) -> None:
    events = [event(event_type=url, context={}) for url in URLS if url] + [event(event_type="page_close", page=url) for url in URLS if url]
    got = parsed(warehouses[engine], events)
    for ev, (_, _, got_id, got_key) in zip(events, got, strict=True):
        assert (got_id, got_key) == twin(ev), ev


_PIECES = st.sampled_from(
    [
        "/courses/",
        "/xblock/",
        "/api",
        "v1/",
        "V2/",
        "v/",
        "course-v1:",
        "ccx-v1:",
        "block-v1:",
        "ccx-block-v1:",
        "UQx",
        "+",
        "/",
        "X",
        "1T2024",
        "+ccx@3",
        "+type@problem",
        "+block@p1",
        "+branch@b",
        "+version@0a",
        "?",
        "#",
        "%2B",
        "%40",
        "%3A",
        "%ff",
        " ",
        "\n",
        "é",
    ]
)


@pytest.mark.postgres
@given(urls=st.lists(st.lists(_PIECES, max_size=14).map("".join), min_size=1, max_size=20))
def test_fuzz_sql_equals_python_twin(warehouses: dict[str, Warehouse], urls: list[str]) -> None:
    """Random URLs built from the pieces the rules read: both engines give the twin's course."""
    events = [event(event_type=u, context={"course_id": ""}) for u in urls] + [event(event_type="x", page=u) for u in urls]
    want = [twin(ev) for ev in events]
    for engine in ("duckdb", "postgres"):
        got = [(row[2], row[3]) for row in parsed(warehouses[engine], events)]
        assert got == want, engine


# -- through the pipeline: ingest, blocks whose course values are looked up --------------------------


def test_ingest_reads_the_rules_on_every_block(data_path: Path, settings_for: Any, backend: dict[str, Any], monkeypatch: Any) -> None:
    """Tiny blocks: later blocks look up the course values of earlier ones (`_click_courses`); the
    answers stay the hand-worked ones, and usernames are stored stripped."""
    monkeypatch.setenv("OPTIMUS_TEST_CLICKSTREAM_BATCH_BYTES", "300")
    evs = []
    for n, (_, ev, _, _) in enumerate(CRAFTED * 2):
        evs.append({**ev, "time": f"2024-03-01T10:{n // 60:02d}:{n % 60:02d}+00:00", "username": " alice\n"})
    (data_path / "clickstream_logs" / "events" / "UQx-edx-events-2024-03-01.log").write_text("\n".join(json.dumps(e) for e in evs) + "\n")
    settings = settings_for(data_path, **backend)
    ingest(settings, "Clickstream")
    rows = query_rows(settings, "SELECT f.line, e.username, e.course_id, e.course_key FROM events e JOIN event_files f USING (event_id)")
    got = {line: rest for line, *rest in rows}
    assert len(got) == len(evs)
    for n, (why, _, course_id, key) in enumerate(CRAFTED * 2, start=1):
        assert got[n] == ["alice", course_id, key], why


def test_a_padded_username_is_the_auth_user_learner(tmp_path: Path, backend: dict[str, Any]) -> None:
    """`" alice\\n"` with no `context.user_id` is learner `alice` of `auth_user`: both of her new
    events count in her one person_course row (before issue 16 the padded one made a learner of its own)."""
    settings = ingest_sample(tmp_path, **backend)
    course_key, course_id, user_id, username, nevents, last = query_rows(
        settings,
        "SELECT course_key, course_id, user_id, username, nevents, CAST(last_event AS VARCHAR) FROM person_course "
        "WHERE user_id IS NOT NULL AND nevents > 0 ORDER BY course_key, user_id LIMIT 1",
    )[0]
    day = str(last)[:10]
    lines = [
        {
            "username": name,
            "event_type": "problem_check",
            "event_source": "server",
            "time": f"{day}T23:59:5{n}+00:00",
            "context": {"course_id": course_id, "user_id": ""},
            "event": {},
        }
        for n, name in enumerate((f" {username}\n", username))
    ]
    (tmp_path / "data" / "clickstream_logs" / "events" / f"Padded-edx-events-{day}.log").write_text(
        "".join(json.dumps(e) + "\n" for e in lines)
    )
    ingest(settings)
    rows = query_rows(
        settings,
        "SELECT user_id, username, nevents FROM person_course WHERE course_key = ? AND username LIKE ?",
        [course_key, f"%{username}%"],
    )
    assert rows == [(user_id, username, nevents + 2)]
