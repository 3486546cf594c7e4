"""DiscussionForums: `.mongo` dumps load one row per post, bad lines are quarantined, ids never duplicate."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from conftest import ingest, make_data_path, query_rows
from optimus.formats import mongo

COURSE = "course-v1:UQx+Think-101x+3T2015"  # a '-' in the course: the file name alone is ambiguous
FILE = "UQx-Think-101x-3T2015-prod.mongo"


def _oid(n: int) -> dict[str, str]:
    return {"$oid": f"{n:024x}"}


def _date(moment: datetime, form: str) -> dict[str, Any]:
    millis = int((moment - datetime(1970, 1, 1)).total_seconds() * 1000)
    if form == "millis":
        return {"$date": millis}
    if form == "long":
        return {"$date": {"$numberLong": str(millis)}}
    return {"$date": moment.replace(tzinfo=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")}


def _posts(n_threads: int, comments_per_thread: int, start: datetime, id_base: int = 0, title: str = "Thread") -> list[dict[str, Any]]:
    """Threads and comments in mongoexport's Extended JSON, cycling through the three $date forms."""
    forms = ["millis", "iso", "long"]
    docs: list[dict[str, Any]] = []
    n = id_base
    for t in range(n_threads):
        n += 1
        thread_id = n
        created = start + timedelta(hours=t, seconds=t * 7, milliseconds=t * 13)
        docs.append(
            {
                "_id": _oid(thread_id),
                "_type": "CommentThread",
                "anonymous": False,
                "author_id": str(100 + t),
                "author_username": f"learner{t}",
                "body": f"body {t}",
                "course_id": COURSE,
                "title": f"{title} {t}",
                "created_at": _date(created, forms[t % 3]),
                "updated_at": _date(created + timedelta(minutes=5), forms[(t + 1) % 3]),
                "votes": {"up": [], "down": [], "up_count": t, "down_count": 0, "count": t, "point": t},
                "thread_type": "discussion",
                "commentable_id": f"topic{t % 2}",
                "comment_count": comments_per_thread,
                "closed": False,
                "pinned": t == 0,
                "last_activity_at": _date(created, "iso"),
                **({"group_id": 7} if t % 2 else {}),  # fields added over the years
            }
        )
        for c in range(comments_per_thread):
            n += 1
            docs.append(
                {
                    "_id": _oid(n),
                    "_type": "Comment",
                    "anonymous": False,
                    "author_id": str(200 + c),
                    "author_username": f"replier{c}",
                    "body": f"reply {c}",
                    "course_id": COURSE,
                    "created_at": _date(created + timedelta(minutes=c + 1), forms[(t + c) % 3]),
                    "updated_at": _date(created + timedelta(minutes=c + 1), "iso"),
                    "votes": {"up_count": 0, "down_count": 0, "count": 0, "point": 0},
                    "comment_thread_id": _oid(thread_id),
                    "endorsed": c == 0,
                    **({"parent_id": _oid(n - 1), "parent_ids": [_oid(n - 1)]} if c == 2 else {}),
                }
            )
    return docs


def _write(path: Path, lines: list[str]) -> Path:
    path.write_bytes(b"".join(line.encode() + b"\n" if isinstance(line, str) else line + b"\n" for line in lines))
    return path


def _expected_dates(doc: dict[str, Any], key: str) -> datetime:
    """Independent reading of a $date: epoch millis (maybe $numberLong) or an ISO string with Z."""
    value = doc[key]["$date"]
    if isinstance(value, dict):
        value = int(value["$numberLong"])
    if isinstance(value, int):
        return datetime(1970, 1, 1) + timedelta(milliseconds=value)
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")


def test_counts_and_both_date_forms_match_the_file(data_path: Path, settings_for: Any, backend: dict[str, Any]) -> None:
    docs = _posts(6, 3, datetime(2015, 9, 1, 8, 30))
    _write(data_path / "database_state" / "latest" / FILE, [json.dumps(d) for d in docs])
    settings = settings_for(data_path, **backend)
    ingest(settings, "DiscussionForums")

    threads = [d for d in docs if d["_type"] == "CommentThread"]
    comments = [d for d in docs if d["_type"] == "Comment"]
    got = dict(query_rows(settings, "SELECT type, count(*) FROM forum_posts GROUP BY type"))
    assert got == {"CommentThread": len(threads), "Comment": len(comments)}
    rows = {
        r[0]: r[1:]
        for r in query_rows(
            settings,
            "SELECT id, created_at, updated_at, course_id, course_key, thread_id, parent_id, "
            "author_id, votes_up, endorsed, pinned, doc FROM forum_posts",
        )
    }
    for d in docs:
        created, updated, course_id, key, thread_id, parent_id, author_id, votes_up, endorsed, pinned, doc = rows[d["_id"]["$oid"]]
        assert created == _expected_dates(d, "created_at")
        assert updated == _expected_dates(d, "updated_at")
        assert (course_id, key) == (COURSE, "UQx+Think-101x+3T2015")
        assert author_id == int(d["author_id"])
        assert votes_up == d["votes"]["up_count"]
        expected_thread = d["_id"]["$oid"] if d["_type"] == "CommentThread" else d["comment_thread_id"]["$oid"]
        assert thread_id == expected_thread
        assert parent_id == (d["parent_id"]["$oid"] if "parent_id" in d else None)
        assert endorsed == d.get("endorsed") and pinned == d.get("pinned")
        kept = doc if isinstance(doc, dict) else json.loads(doc)
        assert kept.get("group_id") == d.get("group_id")  # a later field is kept in doc
        assert kept["_id"] == d["_id"]["$oid"]
    # the ledger knows the course from the documents, not the ambiguous name
    assert query_rows(settings, "SELECT course_id, state, rows_loaded FROM ingest_files") == [(COURSE, "done", len(docs))]
    # comments per thread agree with what the file says
    per_thread = dict(query_rows(settings, "SELECT thread_id, count(*) FROM forum_posts WHERE type = 'Comment' GROUP BY thread_id"))
    assert per_thread == {t["_id"]["$oid"]: t["comment_count"] for t in threads}

    # a second run changes nothing
    everything = f"SELECT {', '.join(c for c in mongo.COLUMNS if c != 'doc')}, CAST(doc AS VARCHAR) FROM forum_posts ORDER BY id"
    before = query_rows(settings, everything)
    ingest(settings, ok=None)  # every service: other services' outcomes are their tests' business
    assert query_rows(settings, "SELECT count(*) FROM ingest_files WHERE state <> 'done'") == [(0,)]
    assert query_rows(settings, everything) == before
    assert query_rows(settings, "SELECT count(*) FROM service_runs WHERE service = 'DiscussionForums'") == [(1,)]


def test_invalid_lines_are_quarantined_with_line_numbers(data_path: Path, settings_for: Any) -> None:
    good = [json.dumps(d) for d in _posts(3, 2, datetime(2016, 2, 1))]
    bad: dict[int, tuple[bytes | str, str]] = {
        2: ('{"_id": {"$oid": "ab"}, "_type": "Comment", "course_id": ', "not valid JSON"),
        4: ("[1, 2, 3]", "not a document"),
        6: (b'{"_id": {"$oid": "cd"}, "_type": "Comment", "body": "\xff\xfe", "course_id": "a/b/c"}', "UTF-8"),
        8: ('{"_type": "Comment", "course_id": "a/b/c"}', "no _id"),
        9: ('{"_id": {"$oid": "ef"}, "_type": "Vote", "course_id": "a/b/c"}', "_type"),
        10: ('{"_id": {"$oid": "f0"}, "_type": "Comment", "course_id": "a/b/c", "created_at": {"$date": "yesterday"}}', "$date"),
    }
    lines: list[bytes | str] = []
    it = iter(good)
    total = len(good) + len(bad)
    for number in range(1, total + 1):
        lines.append(bad[number][0] if number in bad else next(it))
    _write(data_path / "database_state" / "latest" / FILE, lines)
    settings = settings_for(data_path)
    ingest(settings, "DiscussionForums")
    assert query_rows(settings, "SELECT count(*) FROM forum_posts") == [(len(good),)]
    quarantined = query_rows(settings, "SELECT line, reason, path FROM forum_quarantine ORDER BY line")
    assert [q[0] for q in quarantined] == sorted(bad)
    for line, reason, path in quarantined:
        assert bad[line][1] in reason, (line, reason)
        assert path.endswith(FILE)
    assert query_rows(settings, "SELECT rows_loaded, rows_quarantined FROM ingest_files") == [(len(good), len(bad))]


def test_reingest_and_newer_package_replace_by_id(tmp_path: Path, settings_for: Any, backend: dict[str, Any]) -> None:
    data = make_data_path(tmp_path / "data", "2024-01-07")
    old_docs = _posts(4, 2, datetime(2024, 1, 1), title="Old")
    old_file = _write(data / "database_state" / "2024-01-07" / FILE, [json.dumps(d) for d in old_docs])
    settings = settings_for(data, **backend)
    ingest(settings, "DiscussionForums")
    assert query_rows(settings, "SELECT count(*) FROM forum_posts") == [(len(old_docs),)]

    # re-ingest of the same file after it changed: one thread edited, nothing duplicated
    old_docs[0]["title"] = "Edited"
    _write(old_file, [json.dumps(d) for d in old_docs])
    ingest(settings, "DiscussionForums")
    assert query_rows(settings, "SELECT count(*), count(DISTINCT id) FROM forum_posts") == [(len(old_docs), len(old_docs))]
    assert query_rows(settings, "SELECT title FROM forum_posts WHERE id = ?", [old_docs[0]["_id"]["$oid"]]) == [("Edited",)]

    # a newer package holds the same posts (retitled) plus new ones: one row per id, the newer one
    new_docs = _posts(6, 2, datetime(2024, 1, 1), title="New")
    (data / "database_state" / "2024-01-14").mkdir()
    _write(data / "database_state" / "2024-01-14" / FILE, [json.dumps(d) for d in new_docs])
    (data / "database_state" / "latest").unlink()
    (data / "database_state" / "latest").symlink_to("2024-01-14")
    ingest(settings, "DiscussionForums")
    ids = {d["_id"]["$oid"] for d in old_docs} | {d["_id"]["$oid"] for d in new_docs}
    assert query_rows(settings, "SELECT count(*), count(DISTINCT id) FROM forum_posts") == [(len(ids), len(ids))]
    titles = dict(query_rows(settings, "SELECT id, title FROM forum_posts WHERE type = 'CommentThread'"))
    assert titles == {d["_id"]["$oid"]: d["title"] for d in new_docs if d["_type"] == "CommentThread"}
    assert query_rows(settings, "SELECT DISTINCT CAST(package_date AS VARCHAR) FROM forum_posts") == [("2024-01-14",)]


def test_parse_line_reads_every_date_form() -> None:
    moment = datetime(2014, 3, 24, 12, 0, 1, 250000)
    for form in ("millis", "long", "iso"):
        row = mongo.parse_line(
            json.dumps({"_id": _oid(1), "_type": "Comment", "course_id": "UQx/A/B", "created_at": _date(moment, form)}).encode()
        )
        assert row["created_at"] == moment, form
    offset = mongo.parse_line(
        b'{"_id": "x", "_type": "Comment", "course_id": "UQx/A/B", "created_at": {"$date": "2014-03-24T22:00:01.250+10:00"}}'
    )
    assert offset["created_at"] == moment
