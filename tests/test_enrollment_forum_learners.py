"""Enrollment, UserInfoCombo and ForumActivity (issue 18) against plain-Python references written from
docs/tables/enrollment.md, user_info_combo.md and forum_activity.md, on DuckDB and PostgreSQL.

The references read the inputs the services read (the `events` rows, the raw edX tables, the forum
dump rows), never the derived tables; then crafted cases with values worked out by hand.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import person_course_data as D
from conftest import ingest, query_rows, reading
from optimus.services.enrollment import Enrollment
from optimus.services.forum_activity import ForumActivity
from optimus.services.user_info_combo import UserInfoCombo
from optimus.warehouse.base import raw_table

TABLES = {t.name: t for cls in (Enrollment, UserInfoCombo, ForumActivity) for t in cls.tables}


# -- reading the inputs ---------------------------------------------------------------------------
def events(settings: Any) -> list[dict[str, Any]]:
    """The `events` rows, the payload parsed (a string holding an object parsed too)."""
    rows = query_rows(
        settings,
        "SELECT course_key, time, username, user_id, event_type, module_id, CAST(event AS VARCHAR) AS event FROM events "
        "WHERE course_key IS NOT NULL",
        as_dicts=True,
    )
    for r in rows:
        r["payload"] = None if r["event"] is None else json.loads(r["event"])
        p = r["payload"]
        if isinstance(p, str) and p.startswith("{"):
            try:
                r["payload"] = json.loads(p)
            except ValueError:
                pass
    return rows


def member(payload: Any, key: str) -> Any:
    """A payload member as its text (json_text): a string as is, anything else as JSON; None when absent."""
    if not isinstance(payload, dict) or payload.get(key) is None:
        return None
    v = payload[key]
    return v if isinstance(v, str) else json.dumps(v)


def whole(text: Any) -> int | None:
    return int(text) if isinstance(text, str) and re.fullmatch(r"-?[0-9]+", text) else None


def raw(settings: Any, table: str) -> list[dict[str, Any]]:
    with reading(settings) as wh:
        if not wh.table_exists(table, schema=wh.raw_schema):
            return []
        return wh.query_dicts(f"SELECT * FROM {raw_table(wh, table)}", [])


def cid(key: str) -> str:
    return key.replace("+", "/")


# -- the references -------------------------------------------------------------------------------
def ref_enrollment_events(evs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for e in evs:
        t = e["event_type"] or ""
        if "edx.course.enrollment" not in t:
            continue
        uid = whole(member(e["payload"], "user_id"))
        out.append(
            {
                "course_key": e["course_key"],
                "course_id": cid(e["course_key"]),
                "time": e["time"],
                "user_id": uid if uid is not None else e["user_id"],
                "mode": member(e["payload"], "mode"),
                "activated": t == "edx.course.enrollment.activated",
                "deactivated": t == "edx.course.enrollment.deactivated",
                "mode_changed": t == "edx.course.enrollment.mode_changed",
                "upgraded": t == "edx.course.enrollment.upgrade.succeeded",
                "event_type": t,
            }
        )
    return out


def ref_enrollday_all(evs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for e in evs:
        t = e["event_type"]
        if t not in ("edx.course.enrollment.activated", "edx.course.enrollment.deactivated"):
            continue
        mode = member(e["payload"], "mode")
        sign = 1 if t.endswith("activated") and not t.endswith("deactivated") else -1
        row = {"course_key": e["course_key"], "course_id": cid(e["course_key"]), "time": e["time"]}
        row["user_id"] = whole(member(e["payload"], "user_id"))
        for m in ("honor", "verified", "audit"):
            row[f"diff_enrollment_{m}"] = sign if mode == m else 0
        out.append(row)
    return out


def ref_person_enrollment_verified(ee: list[dict[str, Any]]) -> list[dict[str, Any]]:
    times: dict[tuple, list[datetime]] = defaultdict(list)
    for r in ee:
        if r["mode"] == "verified" and (r["deactivated"] or (r["mode_changed"] and not r["activated"])):
            times[(r["course_key"], r["user_id"])].append(r["time"])
    return [
        {
            "course_key": k,
            "course_id": cid(k),
            "user_id": u,
            "verified_enroll_time": min(ts),
            "verified_unenroll_time": None if max(ts) == min(ts) else max(ts),
        }
        for (k, u), ts in times.items()
    ]


def ref_enrollment_day(ee: list[dict[str, Any]], enrolments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    counts: dict[tuple, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # in, from table, out, changed
    for r in ee:
        if not (r["activated"] or r["deactivated"] or r["mode_changed"]):
            continue
        c = counts[(r["course_key"], r["time"].date(), r["mode"] or "unknown")]
        c[0] += r["activated"]
        c[2] += r["deactivated"]
        c[3] += r["mode_changed"]
    seen = {(r["course_key"], r["user_id"]) for r in ee}
    for s in enrolments:
        if s["created"] is None or s["user_id"] is None or (s["course_key"], s["user_id"]) in seen:
            continue
        c = counts[(s["course_key"], s["created"].date(), s["mode"] or "unknown")]
        c[0] += 1
        c[1] += 1
    out = []
    running: dict[tuple, int] = defaultdict(int)
    for (k, d, m), (n_in, n_table, n_out, n_changed) in sorted(counts.items()):
        running[(k, m)] += n_in - n_out
        out.append(
            {
                "course_key": k,
                "course_id": cid(k),
                "date": d,
                "mode": m,
                "enrollments": n_in,
                "enrollments_from_table": n_table,
                "unenrollments": n_out,
                "mode_changes": n_changed,
                "net_enrollments": n_in - n_out,
                "cumulative_enrollments": running[(k, m)],
            }
        )
    return out


def _latest(rows: list[dict[str, Any]], uid: str = "user_id") -> dict[tuple, dict[str, Any]]:
    best: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        if r.get(uid) is None:
            continue
        k = (r["course_key"], r[uid])
        if k not in best or r["id"] > best[k]["id"]:
            best[k] = r
    return best


def flag(v: Any) -> int | None:
    return None if v is None else int(bool(v))


def ref_user_info_combo(settings: Any) -> list[dict[str, Any]]:
    users: dict[tuple, dict[str, Any]] = {}
    for r in raw(settings, "auth_user"):
        k = (r["course_key"], r["id"])
        if r["id"] is not None and (k not in users or r["username"] < users[k]["username"]):
            users[k] = r
    profiles = _latest(raw(settings, "auth_userprofile"))
    enrolments = _latest(raw(settings, "student_courseenrollment"))
    certs = _latest(raw(settings, "certificates_generatedcertificate"))
    ids: dict[tuple, str] = {}
    for r in raw(settings, "user_id_map"):
        if r["user_id"] is not None:
            k = (r["course_key"], r["user_id"])
            ids[k] = min(ids.get(k, r["hash_id"]), r["hash_id"])
    out = []
    for k in sorted(set(users) | set(profiles) | set(enrolments) | set(certs) | set(ids)):
        u, p, e, c = users.get(k, {}), profiles.get(k, {}), enrolments.get(k, {}), certs.get(k, {})
        row: dict[str, Any] = {"course_key": k[0], "user_id": k[1]}
        row |= {f: u.get(f) for f in ("username", "email", "last_login", "date_joined")}
        row["is_staff"] = flag(u.get("is_staff"))
        for f in (
            "name",
            "language",
            "location",
            "meta",
            "courseware",
            "gender",
            "mailing_address",
            "year_of_birth",
            "level_of_education",
            "goals",
            "country",
            "city",
        ):
            row[f"profile_{f}"] = p.get(f)
        row["profile_allow_certificate"] = whole(p.get("allow_certificate"))
        row["enrollment_course_id"] = e.get("course_id") or cid(k[0])
        row |= {"enrollment_created": e.get("created"), "enrollment_is_active": flag(e.get("is_active")), "enrollment_mode": e.get("mode")}
        for f in (
            "id",
            "user_id",
            "download_url",
            "grade",
            "course_id",
            "key",
            "status",
            "verify_uuid",
            "download_uuid",
            "name",
            "created_date",
            "modified_date",
            "error_reason",
            "mode",
        ):
            row[f"certificate_{f}"] = c.get(f)
        row["certificate_distinction"] = flag(c.get("distinction"))
        row["id_map_hash_id"] = ids.get(k)
        row |= {"edxinstructordash_Grade": None, "edxinstructordash_Grade_timestamp": None, "y1_anomalous": None}
        out.append(row)
    return out


C = "/courses/(.*)/discussion"
ACTIONS = [
    (f"{C}/threads/[^/]+/{a}", n)
    for a, n in (
        ("reply", "reply"),
        ("upvote", "upvote"),
        ("unvote", "unvote"),
        ("update", "update"),
        ("delete", "delete"),
        ("close", "close"),
        ("follow", "follow_thread"),
        ("unfollow", "unfollow_thread"),
        ("pin", "pin"),
        ("unpin", "unpin"),
        ("downvote", "downvote"),
    )
]
ACTIONS += [(f"{C}/comments/[^/]+/{a}", f"comment_{a}") for a in ("reply", "upvote", "update", "unvote", "delete")]
ACTIONS += [
    (f"{C}/forum/users/[^/]+/followed", "follow_user"),
    (f"{C}/forum/users/[^/]+$", "target_user"),
    (f"{C}/forum/[^/]+/threads/[^/]+", "read"),
    (f"{C}/forum/[^/]+/inline", "read_inline"),
    (f"{C}/forum/search", "search"),
    (f"{C}/forum$", "enter_forum"),
    (f"{C}/forum/$", "enter_forum"),
]
SERVER = {
    "edx.forum.thread.created": "created_thread",
    "edx.forum.response.created": "created_response",
    "edx.forum.comment.created": "created_comment",
    "edx.forum.searched": "searched",
}
MARKS = (
    "/discussion/forum",
    "/discussion/threads",
    "/discussion/comments",
    "list-forum-",
    "list_forum_",
    "add-forum-",
    "add_forum_",
    "remove-forum-",
    "remove_forum_",
    "update_forum_",
)


def group(pattern: str, text: str | None) -> str | None:
    m = re.search(pattern, text or "")
    return (m.group(1) or None) if m else None


def forum_action(t: str) -> str:
    for pattern, name in ACTIONS:
        if re.search(pattern, t):
            return name
    if re.search("/courses/(.*)/instructor/api/(.*)", t):
        return group("/courses/.*/instructor/api/(.*)", t) or ""
    return SERVER.get(t, t)


def ref_forum_events(evs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for e in evs:
        t = e["event_type"] or ""
        if not (t.startswith("edx.forum.") or any(m in t for m in MARKS)) or not e["username"] or e["event"] is None:
            continue
        if re.search(f"{C}/forum/[^/]+/threads/[^/]+", t):
            url_thread = group("/courses/.*/discussion/forum/[^/]+/threads/([^/]+)", t)
        elif re.search(f"{C}/threads/[^/]+/", t):
            url_thread = group("/courses/.*/discussion/threads/([^/]+)", t)
        else:
            url_thread = group("/courses/.*/discussion/comments/([^/]+)/", t)
        out.append(
            {
                "course_key": e["course_key"],
                "time": e["time"],
                "username": e["username"],
                "course_id": cid(e["course_key"]),
                "forum_action": forum_action(t),
                "thread_id": group("[^/]+/[^/]+/forum/([^/]+)", e["module_id"]) or url_thread,
                "subject": group("/courses/.*/forum/([^/]+)/", t),
                "target_user_id": group("/courses/.*/forum/users/([^/]+)", t),
                "search_query": member(e["payload"], "query"),
                "event_GET": member(e["payload"], "GET"),
            }
        )
    return out


def ref_forum_person(settings: Any, fe: list[dict[str, Any]]) -> list[dict[str, Any]]:
    posts = [p for p in query_rows(settings, "SELECT * FROM forum_posts", as_dicts=True) if p["id"] is not None]
    by_id = {(p["course_key"], p["id"]): p for p in posts}
    pp: dict[tuple, dict[str, Any]] = {}
    for p in posts:
        if p["type"] == "Comment" and p["thread_id"] is None:
            continue
        k = p["course_key"]
        thread = by_id.get((k, p["thread_id"])) if p["type"] == "Comment" else None
        thread = thread if thread and thread["type"] == "CommentThread" else None
        parent = by_id.get((k, p["parent_id"])) if p["type"] == "Comment" and p["parent_id"] else None
        pp[(k, p["author_username"], p["id"])] = {
            "course_key": k,
            "username": p["author_username"],
            "slug_id": p["id"],
            "slug_type": "initial_post" if p["type"] == "CommentThread" else "comment" if p["parent_id"] else "response_post",
            "thread_id": p["thread_id"] if p["type"] == "Comment" else None,
            "parent_id": p["parent_id"] if p["type"] == "Comment" else None,
            "original_poster": thread["author_username"] if thread else None,
            "responded_to": parent["author_username"] if parent else None,
            "title": (thread["title"] if thread else None) if p["type"] == "Comment" else p["title"],
            "first_time": p["created_at"],
        }
    acts: dict[tuple, dict[str, Any]] = {}
    counted = {
        "read": "read",
        "read_inline": "read",
        "pin": "pinned",
        "upvote": "upvoted",
        "unvote": "unvoted",
        "follow_thread": "followed",
    }
    for e in fe:
        if e["forum_action"] not in counted:
            continue
        for post in pp.values():
            if post["course_key"] != e["course_key"] or post["thread_id"] is None or post["thread_id"] != e["thread_id"]:
                continue
            k = (e["course_key"], e["username"], post["slug_id"])
            a = acts.setdefault(
                k, {**post, "username": e["username"], "times": [], "read": 0, "pinned": 0, "upvoted": 0, "unvoted": 0, "followed": 0}
            )
            a["times"].append(e["time"])
            a[counted[e["forum_action"]]] += 1
    out = []
    for k in set(pp) | set(acts):
        p, a = pp.get(k), acts.get(k)
        base = p or a
        assert base is not None
        if not k[1]:
            continue
        fe_first, fe_last = (min(a["times"]), max(a["times"])) if a else (None, None)
        pf = p["first_time"] if p else None
        if pf is not None and fe_last is not None:
            first, last = (pf if pf <= fe_last else fe_first), (pf if pf >= fe_last else fe_last)
        elif pf is not None:
            first = last = pf
        else:
            first, last = fe_first, fe_last
        row = {c: base[c] for c in ("course_key", "username", "slug_id", "slug_type", "thread_id", "parent_id", "title")}
        row["course_id"] = cid(k[0])
        row["original_poster"] = (p and p["original_poster"]) or (a and a["original_poster"]) or None
        row["responded_to"] = (p and p["responded_to"]) or (a and a["responded_to"]) or None
        row["wrote"] = 1 if p else 0
        for c in ("read", "pinned", "upvoted", "unvoted", "followed"):
            row[c] = a[c] if a else None
        row["first_time"], row["last_time"] = first, last
        out.append(row)
    return out


# -- comparing ------------------------------------------------------------------------------------
def table_rows(settings: Any, name: str) -> list[dict[str, Any]]:
    return query_rows(settings, f'SELECT * FROM "{name}"', as_dicts=True)


def canonical(rows: list[dict[str, Any]], columns: list[str]) -> list[tuple]:
    def value(c: str, v: Any) -> Any:
        if c == "event_GET" and v is not None:
            return json.dumps(json.loads(v), sort_keys=True)  # each engine prints JSON with its own spacing
        return v

    return sorted((tuple(value(c, r.get(c)) for c in columns) for r in rows), key=lambda t: tuple((v is None, str(v)) for v in t))


def assert_equal(settings: Any, name: str, want: list[dict[str, Any]]) -> None:
    columns = list(TABLES[name].columns)
    got = table_rows(settings, name)
    assert canonical(got, columns) == canonical(want, columns), name


def references(settings: Any) -> dict[str, list[dict[str, Any]]]:
    evs = events(settings)
    ee = ref_enrollment_events(evs)
    fe = ref_forum_events(evs)
    return {
        "enrollment_events": ee,
        "enrollday_all": ref_enrollday_all(evs),
        "person_enrollment_verified": ref_person_enrollment_verified(ee),
        "enrollment_day": ref_enrollment_day(ee, raw(settings, "student_courseenrollment")),
        "user_info_combo": ref_user_info_combo(settings),
        "forum_events": fe,
        "forum_person": ref_forum_person(settings, fe),
    }


# -- the sample package, on both engines ----------------------------------------------------------
@pytest.fixture
def sample_on(tmp_path: Path, settings_for: Any, backend: dict[str, Any]) -> Any:
    from optimus.sample import generate

    data = tmp_path / "sample"
    generate(data, courses=2, learners=40, days=4, seed=5)
    settings = settings_for(data, **backend)
    ingest(settings)
    return settings


def test_every_table_equals_its_reference_on_the_sample(sample_on: Any) -> None:
    want = references(sample_on)
    for name, rows in want.items():
        assert_equal(sample_on, name, rows)
    # the sample fills every table, and each kind of row the rules single out
    ee = want["enrollment_events"]
    assert any(r["upgraded"] for r in ee) and any(r["mode_changed"] for r in ee) and any(r["activated"] for r in ee)
    assert want["person_enrollment_verified"] and any(r["enrollments_from_table"] for r in want["enrollment_day"])
    actions = {r["forum_action"] for r in want["forum_events"]}
    assert {"read", "search", "upvote", "created_thread"} <= actions, actions  # edx.forum.searched: the crafted case
    assert any(r["read"] for r in want["forum_person"]) and any(r["wrote"] for r in want["forum_person"])
    assert want["user_info_combo"]


def test_second_ingest_recomputes_nothing(sample_on: Any) -> None:
    services = "('Enrollment', 'UserInfoCombo', 'ForumActivity')"
    before = query_rows(sample_on, f"SELECT count(*) FROM service_runs WHERE service IN {services}")[0][0]
    assert before == 3
    tables = {n: canonical(table_rows(sample_on, n), list(t.columns)) for n, t in TABLES.items()}
    ingest(sample_on)
    assert query_rows(sample_on, f"SELECT count(*) FROM service_runs WHERE service IN {services}")[0][0] == before
    assert {n: canonical(table_rows(sample_on, n), list(t.columns)) for n, t in TABLES.items()} == tables


# -- crafted cases, worked out by hand ------------------------------------------------------------
T = "65a000000000000000000001"  # carol's thread in course A (person_course_data.FORUM), with responses ...02 (carol), ...03 (frank)


def crafted_events() -> list[dict[str, Any]]:
    """Alice (1) in A: enrols as audit, upgrades to verified, unenrols; frank (6) reads and up-votes
    carol's thread; erin (5) searches the forum (the page, then the server's search event)."""
    A = D.A

    def enrol(time: str, what: str, mode: str) -> dict[str, Any]:
        return D.ev(time, "alice", 1, A, f"edx.course.enrollment.{what}", event={"course_id": A, "user_id": 1, "mode": mode})

    def url(time: str, user: str, uid: int, path: str, get: dict[str, Any]) -> dict[str, Any]:
        return D.ev(time, user, uid, A, path, event=json.dumps({"GET": get, "POST": {}}))

    return [
        enrol("2024-01-03T09:00:00+00:00", "activated", "audit"),
        enrol("2024-01-03T09:10:00+00:00", "mode_changed", "verified"),
        enrol("2024-01-03T09:10:01+00:00", "upgrade.succeeded", "verified"),
        enrol("2024-01-04T12:00:00+00:00", "deactivated", "verified"),
        url("2024-01-03T10:00:00+00:00", "frank", 6, f"/courses/{A}/discussion/forum/c1/threads/{T}", {}),
        url("2024-01-03T10:05:00+00:00", "frank", 6, f"/courses/{A}/discussion/threads/{T}/upvote", {}),
        url("2024-01-03T11:00:00+00:00", "erin", 5, f"/courses/{A}/discussion/forum/search", {"text": ["hello"]}),
        D.ev("2024-01-03T11:00:01+00:00", "erin", 5, A, "edx.forum.searched", event={"query": "hello", "page": 1, "total_results": 1}),
    ]


@pytest.fixture
def crafted_on(data_path: Path, settings_for: Any, backend: dict[str, Any]) -> Any:
    D.write_package(data_path)
    D.write_events(data_path, "2024-01-03", crafted_events())
    settings = settings_for(data_path, **backend)
    ingest(settings)
    return settings


def rows_of(settings: Any, table: str, where: str, order: str) -> list[dict[str, Any]]:
    return query_rows(settings, f'SELECT * FROM "{table}" WHERE course_key = ? AND {where} ORDER BY {order}', [D.A_KEY], as_dicts=True)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_enrol_upgrade_unenrol_worked_by_hand(crafted_on: Any) -> None:
    s = crafted_on
    ee = rows_of(s, "enrollment_events", "user_id = 1", "time")
    flags = [(r["event_type"][22:], r["mode"], r["activated"], r["deactivated"], r["mode_changed"], r["upgraded"]) for r in ee]
    assert flags == [
        ("activated", "audit", True, False, False, False),
        ("mode_changed", "verified", False, False, True, False),
        ("upgrade.succeeded", "verified", False, False, False, True),
        ("deactivated", "verified", False, True, False, False),
    ]
    assert ee[0]["course_id"] == "UQx/Alpha/2024"
    # enrollday_all: the activation (+1 audit) and the unenrolment (-1 verified); the mode change is not in it
    diffs = [
        (r["time"], r["diff_enrollment_honor"], r["diff_enrollment_verified"], r["diff_enrollment_audit"])
        for r in rows_of(s, "enrollday_all", "user_id = 1", "time")
    ]
    assert diffs == [(at("2024-01-03 09:00:00"), 0, 0, 1), (at("2024-01-04 12:00:00"), 0, -1, 0)]
    # verified from the mode change (09:10) to the unenrolment (next day 12:00)
    pev = rows_of(s, "person_enrollment_verified", "user_id = 1", "user_id")
    assert [(r["verified_enroll_time"], r["verified_unenroll_time"]) for r in pev] == [
        (at("2024-01-03 09:10:00"), at("2024-01-04 12:00:00"))
    ]
    # enrollment_day of A: alice's events; bob (audit, 2023-12-02), carol (honor, 12-03), erin (audit, 12-05) and
    # frank (professional, 12-06) have no enrolment event: their table rows count on their created day; alice's row does not
    day = {
        (str(r["date"]), r["mode"]): (
            r["enrollments"],
            r["enrollments_from_table"],
            r["unenrollments"],
            r["mode_changes"],
            r["net_enrollments"],
            r["cumulative_enrollments"],
        )
        for r in rows_of(s, "enrollment_day", "1 = 1", "date, mode")
    }
    assert day == {
        ("2023-12-02", "audit"): (1, 1, 0, 0, 1, 1),
        ("2023-12-03", "honor"): (1, 1, 0, 0, 1, 1),
        ("2023-12-05", "audit"): (1, 1, 0, 0, 1, 2),
        ("2023-12-06", "professional"): (1, 1, 0, 0, 1, 1),
        ("2024-01-03", "audit"): (1, 0, 0, 0, 1, 3),
        ("2024-01-03", "verified"): (0, 0, 0, 1, 0, 0),
        ("2024-01-04", "verified"): (0, 0, 1, 0, -1, -1),
    }


def test_forum_read_vote_and_search_worked_by_hand(crafted_on: Any) -> None:
    s = crafted_on
    fe = rows_of(s, "forum_events", "username IN ('frank', 'erin') AND time >= TIMESTAMP '2024-01-03 00:00:00'", "time")
    got = [(r["username"], r["forum_action"], r["thread_id"], r["subject"], r["search_query"]) for r in fe]
    assert got == [
        ("frank", "read", T, "c1", None),
        ("frank", "upvote", T, None, None),
        ("erin", "search", None, None, None),
        ("erin", "searched", None, None, "hello"),
    ]
    assert json.loads(fe[2]["event_GET"]) == {"text": ["hello"]} and json.loads(fe[0]["event_GET"]) == {}
    person = {(r["username"], r["slug_id"][-2:]): r for r in rows_of(s, "forum_person", "1 = 1", "username, slug_id")}
    cols = ("slug_type", "thread_id", "original_poster", "title", "wrote", "read", "upvoted", "pinned", "first_time", "last_time")

    def view(key: tuple[str, str]) -> tuple:
        return tuple(person[key][c] for c in cols)

    # carol wrote the thread (no thread_id, no original poster: edx2bigquery's forum_posts) and response 02
    assert view(("carol", "01")) == (
        "initial_post",
        None,
        None,
        "Hello",
        1,
        None,
        None,
        None,
        at("2024-01-02 09:00:00"),
        at("2024-01-02 09:00:00"),
    )
    assert view(("carol", "02")) == (
        "response_post",
        T,
        "carol",
        "Hello",
        1,
        None,
        None,
        None,
        at("2024-01-02 09:05:00"),
        at("2024-01-02 09:05:00"),
    )
    # frank's read and vote of the thread count on each response (never on the thread's own row); he wrote 03
    assert view(("frank", "02")) == ("response_post", T, "carol", "Hello", 0, 1, 1, 0, at("2024-01-03 10:00:00"), at("2024-01-03 10:05:00"))
    assert view(("frank", "03")) == ("response_post", T, "carol", "Hello", 1, 1, 1, 0, at("2024-01-02 11:03:00"), at("2024-01-03 10:05:00"))
    assert ("frank", "01") not in person and not any(u == "erin" for u, _ in person)


def test_user_info_combo_joins_the_five_tables_worked_by_hand(crafted_on: Any) -> None:
    rows = {r["user_id"]: r for r in rows_of(crafted_on, "user_info_combo", "1 = 1", "user_id")}
    assert sorted(rows) == [1, 2, 3, 4, 5, 6]
    alice, dave = rows[1], rows[4]
    assert (alice["username"], alice["email"], alice["is_staff"], alice["profile_gender"], alice["profile_year_of_birth"]) == (
        "alice",
        "alice@Example.org",
        0,
        "f",
        1990,
    )
    assert (alice["enrollment_mode"], alice["enrollment_is_active"], alice["enrollment_created"]) == (
        "verified",
        1,
        at("2023-12-01 09:00:00"),
    )
    assert (alice["certificate_id"], alice["certificate_status"], alice["certificate_grade"]) == (32, "notpassing", 0.4)
    assert alice["id_map_hash_id"] == "hash0001A" and alice["profile_allow_certificate"] is None
    # dave has a certificate but no enrolment: his enrolment course is the course's, edx2bigquery's form
    assert (dave["enrollment_course_id"], dave["enrollment_mode"], dave["certificate_status"]) == ("UQx/Alpha/2024", None, "downloadable")
    assert rows[2]["certificate_id"] is None and rows[3]["enrollment_is_active"] == 0


def test_per_learner_tables_are_not_served_without_the_token(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from conftest import ingest_sample
    from optimus.api.app import create_app
    from optimus.api.state import ReadViews
    from optimus.warehouse import connect

    settings = ingest_sample(tmp_path, api_token="t0ken")
    wh = connect(settings)
    try:
        key = wh.scalar("SELECT min(course_key) FROM user_info_combo")
        with TestClient(create_app(settings, ReadViews(settings, wh, size=1))) as c:
            for name in ("user_info_combo", "enrollment_events", "forum_person", "forum_events"):
                path = f"/api/v1/courses/{key}/tables/{name}"
                assert c.get(path).status_code == 401, name
                assert c.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 403, name
                answer = c.get(path, headers={"Authorization": "Bearer t0ken"})
                assert answer.status_code == 200, name
            # enrollment_day has no learner in it: served without the token
            assert c.get(f"/api/v1/courses/{key}/tables/enrollment_day").status_code == 200
    finally:
        wh.close()
