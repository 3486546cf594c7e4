"""A bad value is a bad line, never a bad file: hostile times, huge and deep lines, damaged
archives and silently coerced values, on both backends (issue 14, items 3, 4, 5 and 8)."""

from __future__ import annotations

import gzip
import json
import zlib
from pathlib import Path
from typing import Any

import pytest

from conftest import ingest, make_data_path, query_rows, reading

DAY = "2013-01-0{}T10:00:00Z"


def event(n: int, **fields: Any) -> bytes:
    """One valid event line (its own `\\n`), unique by `n`."""
    doc: dict[str, Any] = {
        "username": f"u{n}",
        "event_type": "play_video",
        "time": DAY.format(1 + n % 3),
        "context": {"course_id": "course-v1:UQx+T1+2013", "user_id": str(n)},
        "event": {"n": n},
    }
    doc.update(fields)
    return json.dumps(doc).encode() + b"\n"


def write_events(data: Path, name: str, body: bytes) -> Path:
    path = data / "clickstream_logs" / "events" / name
    path.write_bytes(gzip.compress(body) if name.endswith(".gz") else body)
    return path


def ledger_row(settings: Any, name: str) -> tuple:
    (row,) = query_rows(
        settings, "SELECT state, rows_loaded, rows_quarantined, coerced, damage, note FROM ingest_files WHERE path LIKE ?", [f"%{name}"]
    )
    return row


def quarantined(settings: Any, table: str = "events_quarantine") -> dict[int, str]:
    return {line: reason for line, reason in query_rows(settings, f"SELECT line, reason FROM {table}")}


# -- 3. times --------------------------------------------------------------------------------------
HOSTILE_TIMES = {
    "0000-01-01T00:00:00Z": "time out of range",
    "10000-01-01T00:00:00Z": "time out of range",
    "-0005-01-01T00:00:00Z": "time out of range",
    "0001-01-01T00:00:00+14:00": "time out of range",
    "1969-12-31T23:59:59Z": "time out of range",
    "2101-01-01T00:00:00Z": "time out of range",
    "2013-01-01T00:00:00+16:00": "time zone offset out of range",
    "2013-01-01T00:00:00 PST": "time does not parse",  # a zone name is not read (DuckDB would drop it)
}


def test_a_hostile_time_is_a_bad_line_not_a_bad_file(data_path, settings_for, backend):
    lines = [event(1)] + [event(10 + i, time=t) for i, t in enumerate(HOSTILE_TIMES)] + [event(2), event(3, time="2100-12-31T23:59:59Z")]
    write_events(data_path, "x-events-2013-01-01.log", b"".join(lines))
    settings = settings_for(data_path, **backend)
    summary = ingest(settings, "Clickstream")
    assert not summary.failed, [f.error for f in summary.files]
    assert query_rows(settings, "SELECT count(*) FROM events") == [(3,)]
    reasons = quarantined(settings)
    assert sorted(reasons) == list(range(2, 2 + len(HOSTILE_TIMES)))
    for (line, reason), expected in zip(sorted(reasons.items()), HOSTILE_TIMES.values(), strict=True):
        assert reason.startswith(expected), (line, reason)
    assert ledger_row(settings, "x-events-2013-01-01.log")[:3] == ("done", 3, len(HOSTILE_TIMES))


def test_offsets_are_applied_to_the_second(data_path, settings_for, backend):
    given = [
        "2013-01-01T05:30:00+05:30",
        "2013-01-01T00:00:00-0130",
        "2013-01-01T00:00:00+05:30:17",
        "2013-01-01T10:00:00+05",
        "2013-01-01T10:00:00.5-15:59:59",
    ]
    write_events(data_path, "x-events-2013-01-01.log", b"".join(event(i, time=t) for i, t in enumerate(given)))
    settings = settings_for(data_path, **backend)
    ingest(settings, "Clickstream")
    times = [str(t) for (t,) in query_rows(settings, "SELECT time FROM events ORDER BY username")]
    assert times == [
        "2013-01-01 00:00:00",
        "2013-01-01 01:30:00",
        "2012-12-31 18:29:43",
        "2013-01-01 05:00:00",
        "2013-01-02 01:59:59.500000",
    ]


# -- 4. damaged archives ------------------------------------------------------------------------
N_GOOD = 3000


def _body() -> bytes:
    return b"".join(event(i) for i in range(N_GOOD))


def _truncated(body: bytes) -> tuple[bytes, int]:
    packed = gzip.compress(body)
    cut = len(packed) * 2 // 3
    return packed[:cut], cut


def _crc_error(body: bytes) -> tuple[bytes, int]:
    packed = bytearray(gzip.compress(body))
    packed[-8] ^= 0xFF  # the CRC-32 in the trailer
    return bytes(packed), len(packed) - 8


def _junk_after(body: bytes) -> tuple[bytes, int]:
    packed = gzip.compress(body)
    return packed + b"this is not gzip", len(packed)


def _bad_deflate(body: bytes) -> tuple[bytes, int]:
    packed = bytearray(gzip.compress(body, compresslevel=1))
    at = len(packed) // 2
    packed[at : at + 64] = bytes(64)  # a hole in the deflate stream
    return bytes(packed), at


@pytest.mark.parametrize("damage", [_truncated, _crc_error, _junk_after, _bad_deflate])
def test_a_damaged_archive_loads_every_line_before_the_damage(data_path, settings_for, backend, damage):
    body = _body()
    packed, near = damage(body)
    (data_path / "clickstream_logs" / "events" / "x-events-2013-01-01.log.gz").write_bytes(packed)
    settings = settings_for(data_path, **backend)
    summary = ingest(settings, "Clickstream")
    assert not summary.failed, [f.error for f in summary.files]
    state, loaded, bad, _coerced, why, _note = ledger_row(settings, "x-events-2013-01-01.log.gz")
    assert state == "damaged" and why, (state, why)
    at = int(why.rsplit("at byte ", 1)[1].split()[0])
    # a hole in a deflate stream may inflate to garbage for a while before zlib notices: the
    # damage is reported after it, and the garbage lines are quarantined like any bad line
    garbage = damage is _bad_deflate
    assert near - 70_000 <= at and (garbage or at <= near + 70_000), (why, near)
    # every complete line before the damage is in, none is half
    readable = zlib.decompressobj(31).decompress(packed[:near])
    whole = readable[: readable.rfind(b"\n") + 1].count(b"\n")
    assert whole > 0 and (garbage or bad == 0)
    assert whole <= loaded <= N_GOOD
    assert query_rows(settings, "SELECT count(*) FROM events WHERE line <= ?", [whole]) == [(whole,)]
    ((stored,),) = query_rows(settings, "SELECT count(*) FROM events")
    assert stored == loaded or (garbage and stored < loaded)  # garbage may repeat an event: stored once


def test_valid_archives_are_not_damaged(data_path, settings_for):
    body = _body()
    half = body.index(b"\n", len(body) // 2) + 1
    two_members = gzip.compress(body[:half]) + gzip.compress(body[half:])
    (data_path / "clickstream_logs" / "events" / "x-events-2013-01-01.log.gz").write_bytes(two_members)
    (data_path / "clickstream_logs" / "events" / "x-events-2013-01-02.log.gz").write_bytes(gzip.compress(body) + bytes(512))
    settings = settings_for(data_path)
    ingest(settings, "Clickstream")
    for name in ("x-events-2013-01-01.log.gz", "x-events-2013-01-02.log.gz"):
        state, loaded, *_rest = ledger_row(settings, name)
        assert (state, loaded) == ("done", N_GOOD)


def test_a_damaged_file_delivered_again_whole_is_done(data_path, settings_for):
    path = data_path / "clickstream_logs" / "events" / "x-events-2013-01-01.log.gz"
    path.write_bytes(_truncated(_body())[0])
    settings = settings_for(data_path)
    ingest(settings, "Clickstream")
    assert ledger_row(settings, path.name)[0] == "damaged"
    path.write_bytes(gzip.compress(_body()))
    ingest(settings, "Clickstream")
    state, loaded, _bad, _coerced, why, _note = ledger_row(settings, path.name)
    assert (state, loaded, why) == ("done", N_GOOD, None)
    assert query_rows(settings, "SELECT count(*) FROM events") == [(N_GOOD,)]


def test_a_damaged_file_shows_its_damage_and_counts_in_status_and_the_api(data_path, settings_for, cli):
    """`damaged` is visible with its reason and byte, beside a file with quarantined lines and coerced
    values, in `optimus status --files` and in the API's /files?attention=true (what status asks a daemon)."""
    from fastapi.testclient import TestClient

    from optimus.api.app import create_app
    from optimus.api.state import ReadViews

    damaged = write_events(data_path, "x-events-2013-01-01.log", b"")
    damaged.unlink()
    damaged = damaged.with_name(damaged.name + ".gz")
    damaged.write_bytes(_truncated(_body())[0])
    odd = write_events(
        data_path,
        "x-events-2013-01-02.log",
        event(1) + b"{not json\n" + b'{"username": "a", "username": "b", "time": "2013-01-02T00:00:00Z"}\n',
    )
    settings = settings_for(data_path, api_token="t")
    ingest(settings, "Clickstream")
    want = {}
    for path in (damaged, odd):
        state, loaded, bad, coerced, why, _note = ledger_row(settings, path.name)
        want[str(path.resolve())] = {"state": state, "rows_loaded": loaded, "rows_quarantined": bad, "coerced": coerced or 0, "damage": why}
    assert want[str(damaged.resolve())]["state"] == "damaged" and "at byte" in want[str(damaged.resolve())]["damage"]
    assert want[str(odd.resolve())]["rows_quarantined"] == 1 and want[str(odd.resolve())]["coerced"] == 1

    listed = json.loads(cli(["status", "--files", "--json"], settings).stdout)["files"]
    assert {f["path"]: {k: f[k] for k in want[f["path"]]} for f in listed} == want
    with reading(settings) as wh, TestClient(create_app(settings, ReadViews(settings, wh, size=1))) as api:
        files = api.get("/api/v1/files", params={"attention": "true"}).json()["files"]
    assert [f["path"] for f in files] == [str(damaged.resolve()), str(odd.resolve())]  # damaged before the rest
    assert {f["path"]: {k: f[k] for k in want[f["path"]]} for f in files} == want


# -- 5. huge and deep lines -----------------------------------------------------------------------
def test_a_line_over_the_size_limit_is_quarantined_as_too_long(data_path, settings_for, backend):
    huge = event(7, event={"blob": "x" * (50 << 20)})  # 50 MB, with the default memory limit of 1GB
    no_end = b"{" + b"y" * (20 << 20)  # 20 MB and the file ends inside it
    write_events(data_path, "x-events-2013-01-01.log", event(1) + huge + event(2) + no_end)
    settings = settings_for(data_path, **backend)  # the default limit
    summary = ingest(settings, "Clickstream")
    assert not summary.failed, [f.error for f in summary.files]
    assert query_rows(settings, "SELECT count(*) FROM events") == [(2,)]
    rows = query_rows(settings, "SELECT line, reason, length(raw) FROM events_quarantine ORDER BY line")
    assert [(line, reason) for line, reason, _ in rows] == [
        (2, f"line too long: {len(huge) - 1} bytes (max_line_bytes {settings.max_line_bytes})"),
        (4, f"line too long: {len(no_end)} bytes (max_line_bytes {settings.max_line_bytes})"),
    ]
    assert ledger_row(settings, "x-events-2013-01-01.log")[:3] == ("done", 2, 2)
    assert all(size <= 200 for _l, _r, size in rows)  # the head of the line, not the whole text


def test_a_line_just_under_the_size_limit_loads(data_path, settings_for, backend):
    settings = settings_for(data_path, **backend)
    doc = event(7, event={"blob": ""})
    big = doc.replace(b'"blob": ""', b'"blob": "' + b"z" * (settings.max_line_bytes - len(doc) + 1) + b'"')
    assert len(big) - 1 == settings.max_line_bytes
    write_events(data_path, "x-events-2013-01-01.log", event(1) + big)
    summary = ingest(settings, "Clickstream")
    assert not summary.failed, [f.error for f in summary.files]
    assert query_rows(settings, "SELECT count(*) FROM events") == [(2,)]


def test_a_line_read_in_pieces_is_still_too_long(data_path, settings_for):
    """Lines longer than a read: the reader never holds more than the limit of one line."""
    settings = settings_for(data_path, max_line_bytes=10_000)
    lines = [event(1), event(2, event={"blob": "q" * 30_000}), event(3), event(4, event={"blob": "r" * 9_000})]
    write_events(data_path, "x-events-2013-01-01.log", b"".join(lines))
    import os

    os.environ["OPTIMUS_TEST_CLICKSTREAM_BATCH_BYTES"] = "4096"
    try:
        ingest(settings, "Clickstream")
    finally:
        del os.environ["OPTIMUS_TEST_CLICKSTREAM_BATCH_BYTES"]
    assert query_rows(settings, "SELECT count(*) FROM events") == [(3,)]
    assert quarantined(settings) == {2: f"line too long: {len(lines[1]) - 1} bytes (max_line_bytes 10000)"}


DEEP = 100_000


def test_a_deeply_nested_event_is_a_bad_line(data_path, settings_for, backend):
    deep = event(5)[:-2] + b', "deep": ' + b"[" * DEEP + b"]" * DEEP + b"}\n"
    unclosed = event(6)[:-2] + b', "deep": ' + b'{"a":' * DEEP + b"1}\n"
    fine = event(7, event={"s": "[[[[" * 2000})[:-2] + b', "d": ' + b"[" * 4000 + b"]" * 4000 + b"}\n"  # deep, within the limit
    write_events(data_path, "x-events-2013-01-01.log", event(1) + deep + event(2) + unclosed + event(3) + fine)
    settings = settings_for(data_path, **backend)
    summary = ingest(settings, "Clickstream")
    assert not summary.failed, [f.error for f in summary.files]
    assert quarantined(settings) == {2: "nested too deep (over 5000 levels)", 4: "nested too deep (over 5000 levels)"}
    assert query_rows(settings, "SELECT count(*) FROM events") == [(4,)]


def _forum_line(n: int, **fields: Any) -> str:
    doc = {
        "_id": {"$oid": f"{n:024x}"},
        "_type": "CommentThread",
        "course_id": "course-v1:UQx+T1+2013",
        "title": f"t{n}",
        "created_at": {"$date": 1357034400000 + n},
    }
    doc.update(fields)
    return json.dumps(doc)


def _write_forum(data: Path, lines: list[str]) -> Path:
    path = data / "database_state" / "latest" / "UQx-T1-2013-prod.mongo"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_deep_and_long_forum_lines_are_quarantined(data_path, settings_for, backend):
    deep = _forum_line(2)[:-1] + ', "deep": ' + "[" * DEEP + "]" * DEEP + "}"
    deep_doc = _forum_line(3)[:-1] + ', "deep": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}"  # deep, but parses
    long = _forum_line(4, body="b" * 300_000)
    _write_forum(data_path, [_forum_line(1), deep, deep_doc, long, _forum_line(5)])
    settings = settings_for(data_path, max_line_bytes=250_000, **backend)
    summary = ingest(settings, "DiscussionForums")
    assert not summary.failed, [f.error for f in summary.files]
    assert query_rows(settings, "SELECT count(*) FROM forum_posts") == [(2,)]
    reasons = quarantined(settings, "forum_quarantine")
    assert sorted(reasons) == [2, 3, 4]
    assert reasons[2].startswith("nested too deep") and reasons[3].startswith("nested too deep"), reasons
    assert reasons[4] == f"line too long: {len(long)} bytes (max_line_bytes 250000)"
    assert query_rows(settings, "SELECT raw FROM forum_quarantine WHERE line = 4") == [(long[:200],)]


# -- 8. silent coercions, counted ------------------------------------------------------------------
def test_coerced_values_are_counted_per_file(data_path, settings_for, backend):
    dup_time = event(1)[:-2] + b', "time": "2013-01-03T10:00:00Z", "username": "again"}\n'  # two keys given twice
    lines = [
        dup_time,
        event(2, context={"course_id": "course-v1:UQx+T1+2013", "user_id": 2**70}),  # beyond 64 bits
        event(3, context={"course_id": "course-v1:UQx+T1+2013", "user_id": "12abc"}),  # not a number
        event(4, context={"course_id": "course-v1:UQx+T1+2013", "user_id": ""}),  # no user: not a coercion
        event(5, context={"course_id": "course-v1:UQx+T1+2013", "user_id": None}),
        event(6, context={"course_id": "course-v1:UQx+T1+2013", "user_id": 2**63 - 1}),  # fits
        event(7, time="1900-01-01T00:00:00Z")[:-2] + b', "ip": "1", "ip": "2"}\n',  # quarantined: nothing of it coerced
    ]
    write_events(data_path, "x-events-2013-01-01.log", b"".join(lines))
    settings = settings_for(data_path, **backend)
    ingest(settings, "Clickstream")
    state, loaded, bad, coerced, _damage, note = ledger_row(settings, "x-events-2013-01-01.log")
    assert (state, loaded, bad, coerced) == ("done", 6, 1, 4)
    assert "4 values coerced" in note
    ((time_, user),) = query_rows(settings, "SELECT CAST(time AS VARCHAR), username FROM events WHERE line = 1")
    # one of the copies, as the engine keeps it (DuckDB the first, PostgreSQL the last)
    assert (time_, user) in (("2013-01-02 10:00:00", "u1"), ("2013-01-03 10:00:00", "again"))
    assert query_rows(settings, "SELECT line, user_id FROM events WHERE line >= 2 ORDER BY line") == [
        (2, None),
        (3, None),
        (4, None),
        (5, None),
        (6, 2**63 - 1),
    ]


def test_an_empty_file_says_so(data_path, settings_for, backend):
    write_events(data_path, "x-events-2013-01-01.log", b"")
    write_events(data_path, "x-events-2013-01-02.log.gz", b"")
    write_events(data_path, "x-events-2013-01-03.log", b"\n  \n")
    (data_path / "database_state" / "latest" / "UQx-T1-2013-prod.mongo").write_bytes(b"")
    settings = settings_for(data_path, **backend)
    ingest(settings, "Clickstream")
    ingest(settings, "DiscussionForums")
    assert ledger_row(settings, "x-events-2013-01-01.log")[::5] == ("done", "empty file: no lines")
    assert ledger_row(settings, "x-events-2013-01-02.log.gz")[::5] == ("done", "empty file: no lines")
    assert ledger_row(settings, "x-events-2013-01-03.log")[::5] == ("done", "no events: 2 blank lines")
    assert ledger_row(settings, "UQx-T1-2013-prod.mongo")[::5] == ("done", "empty file: no lines")


def test_forum_nul_characters_and_out_of_range_numbers_are_counted(data_path, settings_for, backend):
    nul_body = _forum_line(1, body="a\u0000b", author_id=str(2**70))  # a NUL in a string, an author id beyond 64 bits
    raw_nul = '{"_id": "x\x00y"}'  # a NUL byte in the line itself: not JSON, quarantined
    _write_forum(data_path, [nul_body, raw_nul, _forum_line(2, votes={"up_count": 2**40})])
    settings = settings_for(data_path, **backend)
    summary = ingest(settings, "DiscussionForums")
    assert not summary.failed, [f.error for f in summary.files]
    assert query_rows(settings, "SELECT body, author_id, votes_up FROM forum_posts ORDER BY id") == [
        ("a\ufffdb", None, None),
        (None, None, None),
    ]
    state, loaded, bad, coerced, _damage, _note = ledger_row(settings, "UQx-T1-2013-prod.mongo")
    assert (state, loaded, bad, coerced) == ("done", 2, 1, 3)
    ((reason, raw),) = query_rows(settings, "SELECT reason, raw FROM forum_quarantine")
    assert reason.startswith("not valid JSON") and raw == '{"_id": "x\ufffdy"}'


def test_a_file_that_is_not_gzip_at_all_is_a_clear_file_error(data_path, settings_for):
    (data_path / "clickstream_logs" / "events" / "x-events-2013-01-01.log.gz").write_bytes(event(1))
    summary = ingest(settings_for(data_path), "Clickstream", ok=False)
    (outcome,) = summary.files
    assert outcome.state == "failed" and "x-events-2013-01-01.log.gz" in outcome.error and "not a gzip file" in outcome.error


MANY_TIMES = [
    "2013-01-01T10:00:00Z",
    "2013-01-01T10:00:00.123456+00:00",
    "2013-01-01 10:00:00",
    "2020-02-29T23:59:59-05:00",
    "2013-01-01T10:00:00.1234567Z",
    "2100-12-31T23:59:59+0100",
    "1970-01-01T00:00:00Z",
    "2013-01-01T10:00:00+05:30:17",
    "2013-01-01T10:00:00+1559",
    "2013-01-01T10:00:00+1600",
    "2013-01-01T10:00:00-15:59:59",
    "2013-01-01T10:00:00.5-15:59:59",
    "2013-01-01",
    "2013-01-01T10",
    "2013-1-1 1:2:3",
    "1970-01-01T00:00:00+00:01",
    "2100-12-31T23:59:59-00:01",
    "2013-01-01T10:00:00+05:30:60",
    " 2013-01-01T10:00:00Z",
    "2013-01-01T24:00:00Z",
    "2013-01-01T10:00:00.999999999Z",
    "0000-01-01T00:00:00Z",
    "10000-01-01T00:00:00Z",
    "-0005-01-01T00:00:00Z",
    "0001-01-01T00:00:00+14:00",
    "1969-12-31T23:59:59.999999Z",
    "2101-01-01T00:00:00Z",
    "2013-02-30",
    "2013-01-01T00:00:00 PST",
    "epoch",
    "now",
    "infinity",
    "",
    "2013-13-01T00:00:00Z",
    "1900-01-01T00:00:00+05:00",
    "2099-06-01T12:00:00+14:00",
]


def test_both_engines_read_every_time_alike(tmp_path, settings_for, pg_url):
    """The same file on DuckDB and PostgreSQL: the same times stored, the same lines quarantined for the same reasons."""
    results = []
    for name, extra in (("duck", {}), ("pg", {"warehouse": pg_url})):
        data = make_data_path(tmp_path / name)
        write_events(data, "x-events-2013-01-01.log", b"".join(event(i, time=t) for i, t in enumerate(MANY_TIMES)))
        settings = settings_for(data, **extra)
        ingest(settings, "Clickstream")
        results.append(
            (
                query_rows(settings, "SELECT line, CAST(time AS VARCHAR) FROM events ORDER BY line"),
                query_rows(settings, "SELECT line, reason FROM events_quarantine ORDER BY line"),
            )
        )
    duck, pg = ({**dict(stored), **dict(bad)} for stored, bad in results)
    assert {
        line: (MANY_TIMES[line - 1], duck.get(line), pg.get(line)) for line in duck.keys() | pg.keys() if duck.get(line) != pg.get(line)
    } == {}
    assert len(duck) == len(MANY_TIMES)
