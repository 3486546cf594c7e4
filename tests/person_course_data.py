"""A small hand-built edX package for the TimeFinder and PersonCourse oracle tests.

Two courses (A in both id forms, B), a few learners with the edge cases of issue 4: no events
(bob), only forum posts (carol), a certificate without enrolment (dave), events with an empty
user_id matched by username (erin), staff with roles (frank), a learner with events but no
enrolment and no auth_user row (gina), an IP tie (alice in A), a learner in two courses (alice),
events matching no learner (ghost, anonymous), an event days older than its file (mobile).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

A, A_OLD, B = "course-v1:UQx+Alpha+2024", "UQx/Alpha/2024", "course-v1:UQx+Beta+2024"
A_KEY, B_KEY = "UQx+Alpha+2024", "UQx+Beta+2024"
PACKAGE = "2024-01-07"
PASS_MARK = {A_KEY: 0.5, B_KEY: 0.6}
# chapters of A: ch1..ch3 published, ch4 visible to staff only
CHAPTERS = {A_KEY: [("ch1", True), ("ch2", True), ("ch3", True), ("ch4", False)], B_KEY: [("bch1", True), ("bch2", True)]}


def cw(cid: str, chapter: str) -> str:
    return f"/courses/{cid}/courseware/{chapter}/seq1/"


def ev(
    time: str,
    username: str,
    uid: Any,
    cid: str,
    etype: str,
    source: str = "server",
    ip: str = "",
    page: str | None = None,
    event: Any = "",
    name: str | None = None,
) -> dict[str, Any]:
    line: dict[str, Any] = {
        "username": username,
        "event_source": source,
        "event_type": etype,
        "ip": ip,
        "agent": "test-agent",
        "host": "courses.edx.org",
        "referer": "",
        "accept_language": "en",
        "event": event,
        "time": time,
        "page": page,
        "session": "s1",
        "context": {"course_id": cid, "org_id": "UQx", "user_id": uid, "path": "/x"},
    }
    if name:
        line["name"] = name
    return line


def implicit() -> str:
    return json.dumps({"POST": {}, "GET": {}})


def day1_events() -> list[dict[str, Any]]:
    """Events of the file uqx-edx-events-2024-01-02.log."""
    page1 = "https://courses.edx.org" + cw(A, "ch1")
    return (
        [
            # alice in A: old id form first; a gap across midnight; a gap over the cut-off; an IP tie (3 and 3)
            ev("2024-01-01T23:58:00+00:00", "alice", 1, A_OLD, cw(A_OLD, "ch1"), ip="8.8.8.8", event=implicit()),
            ev(
                "2024-01-02T00:01:00.500000+00:00",
                "alice",
                1,
                A,
                "play_video",
                "browser",
                "8.8.8.8",
                page1,
                json.dumps({"id": "vid1", "currentTime": 0}),
            ),
            ev(
                "2024-01-02T00:02:30+00:00",
                "alice",
                1,
                A,
                "problem_check",
                "server",
                "8.8.8.8",
                None,
                {"problem_id": "block-v1:UQx+Alpha+2024+type@problem+block@p1", "success": "correct"},
            ),
            ev("2024-01-02T00:02:31+00:00", "alice", 1, A, "problem_check", "browser", "1.1.1.1", page1, "input_p1=3"),
            ev("2024-01-02T00:20:00+00:00", "alice", 1, A, cw(A, "ch2"), ip="1.1.1.1", event=implicit()),
            ev("2024-01-02T00:22:00+00:00", "alice", 1, A, "showanswer", "server", "", None, {"problem_id": "p1"}),
            ev("2024-01-02T00:22:00+00:00", "alice", 1, A, "seq_goto", "browser", "", page1, json.dumps({"old": 1, "new": 2})),
            ev("2024-01-02T00:23:00+00:00", "alice", 1, A, f"/courses/{A}/progress", ip="1.1.1.1", event=implicit()),
            ev("2024-01-02T00:24:00+00:00", "alice", 1, A, "pause_video", "browser", "", page1, json.dumps({"id": "vid1"})),
            ev("2024-01-02T00:25:00+00:00", "alice", 1, A, "seek_video", "browser", "", page1, json.dumps({"id": "vid1"})),
            # a mobile event five days older than its file
            ev("2023-12-28T10:00:00+00:00", "alice", 1, A, "edx.video.played", "mobile", "", None, {"id": "vid2"}, name="edx.video.played"),
            # alice in B
            ev("2024-01-02T12:00:00+00:00", "alice", 1, B, cw(B, "bch1"), ip="9.9.9.9", event=implicit()),
            ev(
                "2024-01-02T12:04:00+00:00",
                "alice",
                1,
                B,
                "play_video",
                "browser",
                "9.9.9.9",
                "https://courses.edx.org" + cw(B, "bch1"),
                json.dumps({"id": "bvid"}),
            ),
            # erin: empty user_id, matched by username
            ev("2024-01-02T10:00:00+00:00", "erin", "", A, cw(A, "ch3"), ip="8.8.4.4", event=implicit()),
            ev(
                "2024-01-02T10:03:00+00:00",
                "erin",
                "",
                A,
                "play_video",
                "browser",
                "8.8.4.4",
                "https://courses.edx.org" + cw(A, "ch3"),
                json.dumps({"id": "vid1"}),
            ),
            # frank, staff: a published and an unpublished chapter, a forum event
            ev("2024-01-02T11:00:00+00:00", "frank", 6, A, cw(A, "ch1"), ip="203.0.113.9", event=implicit()),
            ev("2024-01-02T11:02:00+00:00", "frank", 6, A, cw(A, "ch4"), ip="203.0.113.9", event=implicit()),
            ev(
                "2024-01-02T11:03:00+00:00",
                "frank",
                6,
                A,
                "edx.forum.thread.created",
                "server",
                "203.0.113.9",
                None,
                {"id": "t9", "title": "hello"},
            ),
            # nobody we know
            ev("2024-01-02T13:00:00+00:00", "ghost", "", A, cw(A, "ch1"), ip="8.8.8.8", event=implicit()),
            ev("2024-01-02T13:01:00+00:00", "", "", A, f"/courses/{A}/about", ip="8.8.8.8", event=implicit()),
            # gina: a user id in the context, no enrolment, no auth_user row
            ev("2024-01-02T14:00:00+00:00", "gina", 7, A, cw(A, "ch2"), ip="8.8.8.8", event=implicit()),
        ]
        + activity_events()
        + h8_events()
    )


def day2_events() -> list[dict[str, Any]]:
    """uqx-edx-events-2024-01-03.log: course A only."""
    return [
        ev("2024-01-03T09:00:00+00:00", "alice", 1, A, cw(A, "ch3"), ip="1.1.1.1", event=implicit()),
        ev(
            "2024-01-03T09:04:00+00:00",
            "alice",
            1,
            A,
            "play_video",
            "browser",
            "1.1.1.1",
            "https://courses.edx.org" + cw(A, "ch3"),
            json.dumps({"id": "vid3"}),
        ),
    ]


def write_events(data: Path, day: str, events: list[dict[str, Any]]) -> Path:
    path = data / "clickstream_logs" / "events" / f"uqx-edx-events-{day}.log"
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")
    return path


# -- database state ------------------------------------------------------------------------------
USERS = {  # id: (username, email, courses)
    1: ("alice", "alice@Example.org", [A_KEY, B_KEY]),
    2: ("bob", "bob@uq.edu.au", [A_KEY]),
    3: ("carol", "carol@gmail.com", [A_KEY]),
    4: ("dave", "dave@example.org", [A_KEY]),
    5: ("erin", "erin@example.org", [A_KEY]),
    6: ("frank", "frank@uq.edu.au", [A_KEY]),
}
PROFILES = {
    1: ("f", 1990, "b", "AU"),
    2: ("m", 1985, "", None),
    3: ("o", None, "m", "US"),
    4: (None, 2001, "hs", ""),
    5: ("", 1970, "p", "NZ"),
    6: ("m", 1980, "none", "AU"),
}
ENROLMENTS = [  # (id, user, course_id, created, is_active, mode)
    (11, 1, A, "2023-12-01 09:00:00", 1, "verified"),
    (12, 2, A, "2023-12-02 09:00:00", 1, "audit"),
    (13, 3, A, "2023-12-03 09:00:00", 0, "honor"),
    (15, 5, A, "2023-12-05 09:00:00", 1, "audit"),
    (16, 6, A, "2023-12-06 09:00:00", 1, "professional"),
    (21, 1, B, "2023-12-10 08:00:00", 1, "audit"),
]
CERTS = [
    (31, 4, A, 0.9, "downloadable", "2024-01-05 10:00:00", "2024-01-05 11:00:00"),
    (32, 1, A, 0.4, "notpassing", "2024-01-05 10:00:00", "2024-01-05 10:00:00"),
]
GRADES = [(41, A, 5, 0.55), (42, A, 1, 0.45), (43, B, 1, 0.7)]
ACCESS_ROLES = [(51, "UQx", A, 6, "staff"), (52, "UQx", A, 6, "instructor"), (53, "UQx", A, 1, "beta_testers")]
FORUM_ROLES = [(61, A, 6, "Moderator"), (62, A, 3, "Student"), (63, A, 1, "Student")]


def _tsv(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    def cell(v: Any) -> str:
        return "NULL" if v is None else str(v)

    path.write_text("\t".join(header) + "\n" + "".join("\t".join(cell(v) for v in r) + "\n" for r in rows), encoding="utf-8")


def _write_accounts(folder: Path, stem: str, users: list[int]) -> None:
    _tsv(
        folder / f"{stem}-auth_user-prod-analytics.sql",
        [
            "id",
            "username",
            "first_name",
            "last_name",
            "email",
            "password",
            "is_staff",
            "is_active",
            "is_superuser",
            "last_login",
            "date_joined",
        ],
        [[u, USERS[u][0], "F", "L", USERS[u][1], "", 0, 1, 0, "NULL", "2023-11-01 00:00:00"] for u in users],
    )


def _write_enrolments(folder: Path, stem: str, cid: str) -> None:
    _tsv(
        folder / f"{stem}-student_courseenrollment-prod-analytics.sql",
        ["id", "user_id", "course_id", "created", "is_active", "mode"],
        [list(r) for r in ENROLMENTS if r[2] == cid],
    )


def _write_grades(folder: Path, stem: str, cid: str) -> None:
    _tsv(
        folder / f"{stem}-grades_persistentcoursegrade-prod-analytics.sql",
        ["id", "course_id", "user_id", "grading_policy_hash", "percent_grade", "letter_grade", "passed_timestamp", "created", "modified"],
        [[i, c, u, "h", g, "", "NULL", "2024-01-05 00:00:00", "2024-01-05 00:00:00"] for i, c, u, g in GRADES if c == cid],
    )


def _write_certificates_and_roles(folder: Path, stem: str, cid: str) -> None:
    """A course's certificates, course access roles and forum roles (only its own rows)."""
    _tsv(
        folder / f"{stem}-certificates_generatedcertificate-prod-analytics.sql",
        [
            "id",
            "user_id",
            "download_url",
            "grade",
            "course_id",
            "key",
            "distinction",
            "status",
            "verify_uuid",
            "download_uuid",
            "name",
            "created_date",
            "modified_date",
            "error_reason",
            "mode",
        ],
        [[i, u, "", g, c, "", 0, st, "", "", "N", cr, mo, "", "verified"] for i, u, c, g, st, cr, mo in CERTS if c == cid],
    )
    _tsv(
        folder / f"{stem}-student_courseaccessrole-prod-analytics.sql",
        ["id", "org", "course_id", "user_id", "role"],
        [list(r) for r in ACCESS_ROLES if r[2] == cid],
    )
    _tsv(
        folder / f"{stem}-django_comment_client_role_users-prod-analytics.sql",
        ["id", "course_id", "user_id", "name"],
        [list(r) for r in FORUM_ROLES if r[1] == cid],
    )


def write_database_state(data: Path) -> None:
    folder = data / "database_state" / PACKAGE
    for key, cid in ((A_KEY, A), (B_KEY, B)):
        stem = key.replace("+", "-")
        users = [u for u, (_n, _e, cs) in USERS.items() if key in cs]
        _write_accounts(folder, stem, users)
        _tsv(
            folder / f"{stem}-auth_userprofile-prod-analytics.sql",
            [
                "id",
                "user_id",
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
                "bio",
            ],
            [
                [100 + u, u, "N", "", "", "", "course.xml", PROFILES[u][0], "", PROFILES[u][1], PROFILES[u][2], "", PROFILES[u][3], "", ""]
                for u in users
            ],
        )
        _write_enrolments(folder, stem, cid)
        _tsv(
            folder / f"{stem}-user_id_map-prod-analytics.sql",
            ["hash_id", "user_id", "username"],
            [[f"hash{u:04d}{key[4]}", u, USERS[u][0]] for u in users],
        )
        _write_grades(folder, stem, cid)
        if key == A_KEY:
            _write_certificates_and_roles(folder, stem, cid)


FORUM = [  # carol writes a pinned thread (2 up-votes) and an endorsed comment (1); frank one comment
    {
        "_id": {"$oid": "65a000000000000000000001"},
        "_type": "CommentThread",
        "anonymous": False,
        "author_id": "3",
        "author_username": "carol",
        "body": "hi",
        "course_id": A,
        "created_at": {"$date": "2024-01-02T09:00:00Z"},
        "updated_at": {"$date": "2024-01-02T09:00:00Z"},
        "votes": {"up": [], "down": [], "up_count": 2, "down_count": 0, "count": 2, "point": 2},
        "title": "Hello",
        "thread_type": "discussion",
        "commentable_id": "c1",
        "comment_count": 2,
        "pinned": True,
        "closed": False,
    },
    {
        "_id": {"$oid": "65a000000000000000000002"},
        "_type": "Comment",
        "anonymous": False,
        "author_id": "3",
        "author_username": "carol",
        "body": "me again",
        "course_id": A,
        "created_at": {"$date": "2024-01-02T09:05:00Z"},
        "updated_at": {"$date": "2024-01-02T09:05:00Z"},
        "votes": {"up": [], "down": [], "up_count": 1, "down_count": 0, "count": 1, "point": 1},
        "comment_thread_id": {"$oid": "65a000000000000000000001"},
        "endorsed": True,
    },
    {
        "_id": {"$oid": "65a000000000000000000003"},
        "_type": "Comment",
        "anonymous": False,
        "author_id": "6",
        "author_username": "frank",
        "body": "welcome",
        "course_id": A,
        "created_at": {"$date": "2024-01-02T11:03:00Z"},
        "updated_at": {"$date": "2024-01-02T11:03:00Z"},
        "votes": {"up": [], "down": [], "up_count": 0, "down_count": 0, "count": 0, "point": 0},
        "comment_thread_id": {"$oid": "65a000000000000000000001"},
        "endorsed": False,
    },
]


def write_forum(data: Path) -> None:
    path = data / "database_state" / PACKAGE / "UQx-Alpha-2024-prod.mongo"
    path.write_text("".join(json.dumps(d) + "\n" for d in FORUM), encoding="utf-8")


def write_course_structure(data: Path) -> None:
    """course_structure JSON for A and B (chapters, a video, an html, two problems, a discussion)."""
    for key in CHAPTERS:
        org, course, run = key.split("+")
        blocks: dict[str, Any] = {}

        def bid(kind: str, name: str, key: str = key) -> str:
            return f"block-v1:{key}+type@{kind}+block@{name}"

        chapters = [bid("chapter", n) for n, _p in CHAPTERS[key]]
        blocks[bid("course", "course")] = {
            "category": "course",
            "children": chapters,
            "metadata": {"display_name": f"{course} course", "start": "2023-12-01T00:00:00Z", "end": "2024-02-01T00:00:00Z"},
        }
        for (name, published), chap in zip(CHAPTERS[key], chapters, strict=True):
            seq = bid("sequential", name + "s")
            vert = bid("vertical", name + "v")
            meta: dict[str, Any] = {"display_name": name}
            if not published:
                meta["visible_to_staff_only"] = True
            blocks[chap] = {"category": "chapter", "children": [seq], "metadata": meta}
            blocks[seq] = {"category": "sequential", "children": [vert], "metadata": {"display_name": name + "s", "graded": True}}
            leaves = [bid("video", name + "vid"), bid("problem", name + "p"), bid("html", name + "h")]
            blocks[vert] = {"category": "vertical", "children": leaves, "metadata": {"display_name": name + "v"}}
            blocks[leaves[0]] = {"category": "video", "children": [], "metadata": {"display_name": "v"}}
            blocks[leaves[1]] = {
                "category": "problem",
                "children": [],
                "metadata": {"display_name": "p", "weight": 1.0 if name.endswith("1") else None},
            }
            blocks[leaves[2]] = {"category": "html", "children": [], "metadata": {"display_name": "h"}}
        path = data / "database_state" / PACKAGE / f"{org}-{course}-{run}-course_structure-prod-analytics.json"
        path.write_text(json.dumps(blocks), encoding="utf-8")


def write_package(data: Path) -> None:
    write_events(data, "2024-01-02", day1_events())
    write_database_state(data)
    write_forum(data)
    write_course_structure(data)
    write_activity_state(data)
    write_h8_course(data)


# -- viewed, visited chapters, the day table's exclusions (issue 16 items 1-3) -------------------
# Course V (chapters ch1..ch5, all published; the blocks of write_course_structure: chapter chN,
# sequential chNs, vertical chNv, video chNvid, problem chNp, html chNh). Learners 71-80, one rule each.
V, V_KEY = "course-v1:UQx+V+1", "UQx+V+1"
CHAPTERS[V_KEY] = [(f"ch{i}", True) for i in range(1, 6)]
ACTIVITY_USERS = {
    71: "vana",  # only the enrolment event: not viewed
    72: "vbob",  # the enrolment and a /courseware/ page: viewed, one chapter
    73: "vcat",  # only a background task event: not viewed
    74: "vdan",  # only the course info page: not viewed, no chapter (NULL)
    75: "veve",  # no event; a studentmodule chapter row: viewed, one chapter
    76: "vfay",  # a /courseware/ URL, an /xblock/ page, a studentmodule chapter row, a problem: four chapters, explored
    77: "vgus",  # a Learning MFE sequence event and a video of another chapter: two chapters, not explored
    78: "vole",  # three course-outline selections: an LMS accordion link, a Learning MFE unit link, the course home
    79: "vhal",  # an /xblock/ handler call between two events, and an event with an empty username
    80: "vivy",  # only an /xblock/ handler call, and a grade: nevents 0, viewed, not inconsistent
}
USERS.update({uid: (name, f"{name}@example.net", [V_KEY]) for uid, name in ACTIVITY_USERS.items()})
ENROLMENTS += [(700 + uid, uid, V, "2023-12-20 09:00:00", 1, "audit") for uid in ACTIVITY_USERS]
STUDENTMODULE = [  # (id, module_type, module_id, student_id): only chapter rows name a visited chapter
    (901, "chapter", f"block-v1:{V_KEY}+type@chapter+block@ch2", 75),
    (902, "chapter", f"block-v1:{V_KEY}+type@chapter+block@ch2", 76),
    (903, "problem", f"block-v1:{V_KEY}+type@problem+block@ch5p", 76),
]
ACTIVITY_GRADES = [(801, V, 80, 0.3)]
GRADES += ACTIVITY_GRADES


def vblock(kind: str, name: str) -> str:
    return f"block-v1:{V_KEY}+type@{kind}+block@{name}"


def activity_events() -> list[dict[str, Any]]:
    """Course V's events (in the file of 2024-01-02)."""
    handler = f"/courses/{V}/xblock/{vblock('problem', 'ch2p')}/handler/xmodule_handler/problem_check"
    enrolled = {"user_id": 0, "course_id": V, "mode": "audit"}
    return [
        ev("2024-01-02T09:00:00+00:00", "vana", 71, V, "edx.course.enrollment.activated", "server", "", None, enrolled),
        ev("2024-01-02T09:00:00+00:00", "vbob", 72, V, "edx.course.enrollment.activated", "server", "", None, enrolled),
        ev("2024-01-02T09:05:00+00:00", "vbob", 72, V, cw(V, "ch1"), event=implicit()),
        ev("2024-01-02T09:00:00+00:00", "vcat", 73, V, "edx.grades.course.grade_calculated", "task", "", None, {"percent_grade": 0}),
        ev("2024-01-02T09:00:00+00:00", "vdan", 74, V, f"/courses/{V}/info", event=implicit()),
        ev("2024-01-02T09:00:00+00:00", "vfay", 76, V, cw(V, "ch1"), event=implicit()),
        ev(
            "2024-01-02T09:01:00+00:00",
            "vfay",
            76,
            V,
            "edx.ui.lms.link_clicked",
            "browser",
            "",
            "https://courses.edx.org/xblock/" + vblock("vertical", "ch3v"),
            json.dumps({"current_url": "x", "target_url": "y"}),
        ),
        ev("2024-01-02T09:02:00+00:00", "vfay", 76, V, "problem_check", "server", "", None, {"problem_id": vblock("problem", "ch4p")}),
        ev(
            "2024-01-02T09:00:00+00:00",
            "vgus",
            77,
            V,
            "edx.ui.lms.sequence.tab_selected",
            "browser",
            "",
            "https://learning.edx.org/course/x",
            json.dumps({"id": vblock("vertical", "ch3v"), "current_tab": 1, "tab_count": 1, "target_id": vblock("vertical", "ch3v")}),
        ),
        ev("2024-01-02T09:01:00+00:00", "vgus", 77, V, "play_video", "browser", "", None, json.dumps({"id": vblock("video", "ch5vid")})),
        ev("2024-01-02T10:00:00+00:00", "vhal", 79, V, cw(V, "ch1"), event=implicit()),
        ev("2024-01-02T10:01:00+00:00", "vhal", 79, V, handler, event=implicit()),
        ev("2024-01-02T10:02:00+00:00", "vhal", 79, V, "play_video", "browser", "", None, json.dumps({"id": "vid9"})),
        ev("2024-01-02T10:03:00+00:00", "", 79, V, f"/courses/{V}/progress", event=implicit()),
        ev("2024-01-02T10:01:00+00:00", "vivy", 80, V, handler, event=implicit()),
        *outline_events(),
    ]


def outline_events() -> list[dict[str, Any]]:
    """vole's `edx.ui.lms.outline.selected` events, payloads as edX writes them: the LMS accordion
    (edx-platform lms/static/js/courseware/accordion_events.js: target_url is the link's href, a courseware URL
    of chapter ch4), the Learning MFE outline (target_url {base}/course/{course}/{sequence}/{unit}: sequence
    ch3s of chapter ch3), and a target naming no block (the course home)."""
    mfe = f"https://apps.learning.edx.org/learning/course/{V}/{vblock('sequential', 'ch3s')}/{vblock('vertical', 'ch3v')}"

    def outline(time: str, target: str) -> dict[str, Any]:
        payload = {"current_url": "https://x/home", "target_url": target, "target_name": "Lesson", "widget_placement": "accordion"}
        return ev(time, "vole", 78, V, "edx.ui.lms.outline.selected", "browser", "", "https://x/home", json.dumps(payload))

    return [
        outline("2024-01-02T11:00:00+00:00", f"https://courses.edx.org/courses/{V}/courseware/ch4/ch4s/"),
        outline("2024-01-02T11:01:00+00:00", mfe),
        outline("2024-01-02T11:02:00+00:00", f"https://apps.learning.edx.org/learning/course/{V}/home"),
    ]


def write_activity_state(data: Path) -> None:
    """Course V's Database State: accounts, enrolments, studentmodule rows, a grade."""
    folder = data / "database_state" / PACKAGE
    stem = V_KEY.replace("+", "-")
    _write_accounts(folder, stem, list(ACTIVITY_USERS))
    _write_enrolments(folder, stem, V)
    _tsv(
        folder / f"{stem}-courseware_studentmodule-prod-analytics.sql",
        ["id", "module_type", "module_id", "student_id", "state", "grade", "created", "modified", "max_grade", "done", "course_id"],
        [[i, t, m, u, "{}", "NULL", "2024-01-02 09:00:00", "2024-01-02 09:00:00", "NULL", "na", V] for i, t, m, u in STUDENTMODULE],
    )
    _write_grades(folder, stem, V)


def block_chapters(key: str) -> dict[tuple[str, str], str]:
    """(category, url_name) -> the url_name of its chapter, for the blocks write_course_structure writes."""
    out: dict[tuple[str, str], str] = {}
    for name, _published in CHAPTERS[key]:
        for category, url_name in (("chapter", name), ("sequential", name + "s"), ("vertical", name + "v")):
            out[(category, url_name)] = name
        for category, url_name in (("video", name + "vid"), ("problem", name + "p"), ("html", name + "h")):
            out[(category, url_name)] = name
    return out


# -- h8 (issue 16 items 4-7): course C, its learners and events -----------------------------------------
# Course C (an OLX export: pass mark 0.5, one chapter, four published videos abc, def, ghi, jkl).
# vera: video and problem events; ivan..mona: roles; nick..quinn: completion; rita: events, no
# enrolment; sam: a certificate, no enrolment. Every expected value is worked out in the tests.
C, C_KEY = "course-v1:UQx+Counts+2024", "UQx+Counts+2024"
C_VIDEOS = ("abc", "def", "ghi", "jkl")
H8_USERS = {  # id: (username, email, courses)
    81: ("vera", "vera@example.org", [C_KEY]),
    82: ("ivan", "ivan@example.org", [C_KEY]),
    83: ("jane", "jane@example.org", [C_KEY]),
    84: ("kyle", "kyle@example.org", [C_KEY]),
    85: ("lena", "lena@example.org", [C_KEY]),
    86: ("mona", "mona@example.org", [C_KEY]),
    87: ("nick", "nick@example.org", [C_KEY]),
    88: ("olga", "olga@example.org", [C_KEY]),
    89: ("paul", "paul@example.org", [C_KEY]),
    90: ("quinn", "quinn@example.org", [C_KEY]),
    92: ("sam", "sam@example.org", [C_KEY]),
}
H8_ENROLLED = (81, 82, 83, 84, 85, 86, 87, 88, 89, 90)
USERS.update(H8_USERS)
PROFILES.update({u: ("", None, "", "") for u in H8_USERS})
ENROLMENTS += [(800 + u, u, C, "2023-12-15 09:00:00", 1, "audit") for u in H8_ENROLLED]
CERTS += [  # (id, user, course_id, grade, status, created, modified)
    (871, 87, C, 0.4, "downloadable", "2024-01-05 10:00:00", "2024-01-05 10:00:00"),  # nick: grade below the pass mark
    (881, 88, C, None, "downloadable", "2024-01-05 10:00:00", "2024-01-05 10:00:00"),  # olga: no grade at all
    (891, 89, C, 0.6, "notpassing", "2024-01-05 10:00:00", "2024-01-05 10:00:00"),  # paul
    (921, 92, C, 0.9, "downloadable", "2024-01-05 10:00:00", "2024-01-05 10:00:00"),  # sam: not enrolled
]
GRADES += [(871, C, 87, 0.4), (891, C, 89, 0.6), (901, C, 90, 0.4)]
ACCESS_ROLES += [(821, "UQx", C, 82, "beta_testers"), (861, "UQx", C, 86, "data_researcher")]
FORUM_ROLES += [(831, C, 83, "Student"), (851, C, 85, "Community TA"), (852, C, 85, "Student")]


def h8_events() -> list[dict[str, Any]]:
    """Course C's events (in the 2024-01-02 file)."""
    page = "https://courses.edx.org" + cw(C, "cch1")

    def video(time: str, etype: str, vid: str, source: str = "browser", name: str | None = None) -> dict[str, Any]:
        body: Any = {"id": vid} if source != "browser" else json.dumps({"id": vid, "currentTime": 1})
        return ev(time, "vera", 81, C, etype, source, "10.0.0.81", page if source == "browser" else None, body, name=name)

    return [
        ev("2024-01-02T15:00:00+00:00", "vera", 81, C, cw(C, "cch1"), ip="10.0.0.81", event=implicit()),
        video("2024-01-02T15:01:00+00:00", "play_video", "i4x-UQx-Counts-video-abc"),
        video("2024-01-02T15:02:00+00:00", "play_video", "block-v1:UQx+Counts+2024+type@video+block@abc", "mobile", "edx.video.played"),
        video("2024-01-02T15:03:00+00:00", "pause_video", "i4x://UQx/Counts/video/def"),
        video("2024-01-02T15:04:00+00:00", "stop_video", " block-v1:UQx+Counts+2024+type@video+block@def "),
        video("2024-01-02T15:05:00+00:00", "show_transcript", "abc"),
        video("2024-01-02T15:06:00+00:00", "load_video", "ghi"),
        ev("2024-01-02T15:07:00+00:00", "vera", 81, C, "problem_check", "browser", "10.0.0.81", page, "input_pp1_2_1=choice_1"),
        ev(
            "2024-01-02T15:07:01+00:00",
            "vera",
            81,
            C,
            "problem_check",
            "server",
            "10.0.0.81",
            None,
            {"problem_id": "block-v1:UQx+Counts+2024+type@problem+block@pp1", "success": "correct"},
        ),
        ev(
            "2024-01-02T15:09:00+00:00",
            "vera",
            81,
            C,
            "problem_check",
            "server",
            "10.0.0.81",
            None,
            {"problem_id": "block-v1:UQx+Counts+2024+type@problem+block@pp2", "success": "incorrect"},
        ),
        # rita: a courseware page, no enrolment, no auth_user row
        ev("2024-01-02T16:00:00+00:00", "rita", 91, C, cw(C, "cch1"), ip="10.0.0.91", event=implicit()),
    ]


def write_h8_course(data: Path) -> None:
    """Course C's Database State tables and its OLX export."""
    import io
    import tarfile

    folder = data / "database_state" / PACKAGE
    stem = C_KEY.replace("+", "-")
    users = sorted(H8_USERS)
    _write_accounts(folder, stem, users)
    _write_enrolments(folder, stem, C)
    _write_grades(folder, stem, C)
    _write_certificates_and_roles(folder, stem, C)
    videos = "".join(f'<video url_name="{v}" display_name="{v}"/>' for v in C_VIDEOS)
    files = {
        "course.xml": '<course url_name="2024" org="UQx" course="Counts"/>',
        "course/2024.xml": '<course display_name="Counts" start="2023-12-01T00:00:00Z"><chapter url_name="cch1"/></course>',
        "chapter/cch1.xml": '<chapter display_name="One"><sequential url_name="cseq"/></chapter>',
        "sequential/cseq.xml": f'<sequential display_name="S"><vertical url_name="cvert" display_name="V">{videos}</vertical></sequential>',
        "policies/2024/grading_policy.json": json.dumps({"GRADER": [], "GRADE_CUTOFFS": {"Pass": 0.5}}),
    }
    with tarfile.open(folder / f"{stem}-course-prod-analytics.xml.tar.gz", "w:gz") as tar:
        for name, text in files.items():
            raw = text.encode()
            info = tarfile.TarInfo(f"Counts/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))


COURSE_IDS = {A_KEY: A, B_KEY: B, V_KEY: V, C_KEY: C}  # each course's own id (the reference's course_id without `courses`)
