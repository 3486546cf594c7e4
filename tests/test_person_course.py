"""PersonCourse against a plain-Python reference written from docs/person_course.md.

The package is hand-built (tests/person_course_data.py) and ingested as `optimus ingest` does (conftest.ingest); the
reference reads the same source data (the raw event lines and table rows the test wrote) and
only three inputs other services derive (course_id/pass_mark from `courses`, published chapters
from `course_blocks`, places from `ip_geo`). The same reference runs on a generated sample package
(test_person_course_equals_the_reference_on_a_sample_package: `sample_source` reads the package's own files).
"""

from __future__ import annotations

import csv
import math
import os
import re
import stat
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

import person_course_data as D
from conftest import ingest, query_rows
from optimus.services import person_course_sql as S

# -- running the real pipeline ------------------------------------------------------------------


@pytest.fixture
def package(data_path: Path, settings_for: Any) -> Any:
    D.write_package(data_path)
    settings = settings_for(data_path)
    ingest(settings)
    return settings


@pytest.fixture
def package_on(data_path: Path, settings_for: Any, backend: dict[str, Any]) -> Any:
    """The package ingested into each backend (DuckDB and a real PostgreSQL server)."""
    D.write_package(data_path)
    settings = settings_for(data_path, **backend)
    ingest(settings)
    return settings


# -- the reference implementation (docs/person_course.md) ---------------------------------------


def parse_time(text: str) -> datetime:
    t = datetime.fromisoformat(text)
    return t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t


def course_key(cid: str) -> str:
    if cid.startswith("course-v1:"):
        return cid[len("course-v1:") :]
    return cid.replace("/", "+")


def chapter_of(line: dict[str, Any]) -> str | None:
    """The chapter of a courseware URL event type, else of the /courseware/ link an outline event chose."""
    url = line.get("event_type") or ""
    if (line.get("name") or url).startswith("edx.ui.lms.outline."):
        url = str(payload(line).get("target_url") or "")
        url = url[url.index("/courses/") :] if "/courses/" in url else ""
    if not url.startswith("/courses/") or "/courseware/" not in url:
        return None
    part = url[url.index("/courseware/") + len("/courseware/") :].split("/")[0].split("?")[0].split("#")[0]
    return part or None


def payload(line: dict[str, Any]) -> dict[str, Any]:
    import json

    event = line.get("event")
    if isinstance(event, str):
        try:
            event = json.loads(event)
        except ValueError:
            return {}
    return event if isinstance(event, dict) else {}


# The course of an event (docs/clickstream.md, "Course"): the context's course id, else a top-level
# `course_id` (edx2bigquery's split_and_rephrase.py:do_split), else the course in the URL of the event type,
# then of the page, by the analytics pipeline's util/opaque_key_util.py (BLOCK_REGEX first, then COURSE_REGEX,
# whose look-ahead skips a version segment), on the percent-decoded URL, an id ending at `/`, `?` or `#`.
BLOCK_REGEX = re.compile(r"^(.*?/xblock/)(?P<block_id>[^/+]+(/|\+)[^/+]+(/|\+)[^/?#]+)")
COURSE_REGEX = re.compile(r"^(.*?/courses/)(?!v[0-9]+/[^/]+)(?P<course_id>[^/+]+(/|\+)[^/+]+(/|\+)[^/?#]+)")
USAGE_KEY = re.compile(r"block-v1:([^+/]+)\+([^+/]+)\+([^+/]+)\+type@[^+/]+\+block@[^+/]+")
COURSE_ID = re.compile(r"course-v1:[^+/]+\+[^+/]+\+[^+/]+|[^+/:]+/[^+/]+/[^+/]+")


def course_of_url(url: str) -> str | None:
    url = unquote(url)
    block = BLOCK_REGEX.match(url)
    if block:  # a block id that is no usage key gives no course (and the /courses/ rule is not tried)
        usage = USAGE_KEY.fullmatch(block.group("block_id"))
        return "course-v1:" + "+".join(usage.groups()) if usage else None
    found = COURSE_REGEX.match(url)
    return found.group("course_id") if found and COURSE_ID.fullmatch(found.group("course_id")) else None


def course_of_line(line: dict[str, Any]) -> str | None:
    for given in ((line.get("context") or {}).get("course_id"), line.get("course_id")):
        if isinstance(given, str) and given.strip():
            return given.strip()
    for url in (line.get("event_type"), line.get("page")):
        found = course_of_url(url) if isinstance(url, str) else None
        if found:
            return found
    return None


def normalise(lines: list[dict[str, Any]], src: Any = D) -> list[dict[str, Any]]:
    """Each raw line of a course as the reference sees it, with its learner resolved (usernames stripped of
    white space, as the pipeline's util/eventlog.py:get_event_username); lines of no course are left out."""
    by_name = {(k, u[0]): uid for uid, u in src.USERS.items() for k in u[2]}
    out = []
    for line in lines:
        ctx = line.get("context") or {}
        cid = course_of_line(line)
        if cid is None:
            continue
        key = course_key(cid)
        name = (line.get("username") or "").strip()
        uid = ctx.get("user_id")
        uid = int(uid) if uid not in ("", None) else by_name.get((key, name))
        who = ("u", uid) if uid is not None else (("n", name) if name else None)
        et = line.get("name") or line["event_type"]
        p = payload(line)
        out.append(
            {
                "key": key,
                "cid": cid,
                "uid": uid,
                "who": who,
                "username": name or None,
                "time": parse_time(line["time"]),
                "type": et,
                "source": line["event_source"],
                "ip": line["ip"] or None,
                "chapter": chapter_of(line),
                "video": video_block_id(p.get("id")) if et in VIDEO_WATCHED else None,
                "problem": p.get("problem_id") if et == "problem_check" and line["event_source"] == "server" else None,
                "page": line.get("page") or "",
                "module": (ctx.get("module") or {}).get("usage_key"),
                "payload": p,
            }
        )
    for e in out:
        e["day"] = e["time"].date()
    return out


def classify(e: dict[str, Any]) -> dict[str, int]:
    t = e["type"]
    return {
        "nplay_video": int(t in S.VIDEO_PLAY),
        "nvideo": int(t in S.VIDEO_PLAY),  # edx2bigquery: nvideo and nplay_video are one number
        "nvideo_events": int(t in S.VIDEO_ANY),
        "npause_video": int(t in S.VIDEO_PAUSE),
        "nseek_video": int(t in S.VIDEO_SEEK),
        "ntranscript": int(t in ("show_transcript", "edx.video.transcript.shown")),
        "nproblem_check": int(t == "problem_check"),  # browser and server
        "nproblem_check_server": int(t == "problem_check" and e["source"] == "server"),
        "nshow_answer": int(t == "showanswer"),
        "nseq_goto": int(t == "seq_goto"),
        "nprogcheck": int(t.startswith("/courses/") and (t.endswith("/progress") or t.endswith("/progress/"))),
        "nforum_events": int(t.startswith("edx.forum.") or (t.startswith("/courses/") and "/discussion/" in t)),
    }


# -- viewed, visited chapters and the day table (docs/person_course.md; issue 16 items 1-3) -------
PROBLEM_EVENTS = {
    "problem_check",
    "problem_show",
    "problem_save",
    "problem_reset",
    "problem_graded",
    "showanswer",
    "edx.grades.problem.submitted",
}


def in_day_table(e: dict[str, Any]) -> bool:
    """edx2bigquery's make_person_course_day: `NOT event_type CONTAINS "/xblock/" AND username != ""`."""
    return "/xblock/" not in e["type"] and bool(e["username"])


def learner_action(e: dict[str, Any]) -> bool:
    """The analytics pipeline's user_activity: task and enrolment events are no activity."""
    return e["source"] != "task" and not e["type"].startswith("edx.course.enrollment.")


def courseware_access(e: dict[str, Any]) -> bool:
    """The learner was in the courseware (ours; HarvardX-MITx: accessed the courseware tab)."""
    t = e["type"]
    return learner_action(e) and (
        (t.startswith("/courses/") and "/courseware" in t)
        or t.startswith("/api/courseware/")
        or "/xblock/" in t
        or "/xblock/" in e["page"]
        or t.startswith(("edx.ui.lms.sequence.", "edx.ui.lms.outline."))
        or t in ("edx.ui.lms.jump_nav.selected", "seq_goto", "seq_next", "seq_prev")
        or t in S.VIDEO_ANY
        or t in PROBLEM_EVENTS
    )


def segment_after(text: str, marker: str) -> str | None:
    if marker not in text:
        return None
    return text[text.index(marker) + len(marker) :].split("/")[0].split("?")[0].split("#")[0] or None


def usage_key(e: dict[str, Any]) -> str | None:
    """The block the event touched: context.module.usage_key, an /xblock/ URL, a sequence payload, a video or problem id."""
    t, p = e["type"], e["payload"]
    by_type = None
    if t.startswith("edx.ui.lms.sequence."):
        by_type = p.get("target_id") or p.get("id")
    elif t.startswith("edx.ui.lms.outline."):  # the first usage key in the link the learner chose
        found = segment_after(str(p.get("target_url") or ""), "/block-v1:")
        by_type = "block-v1:" + found if found else None
    elif t in S.VIDEO_ANY:
        by_type = p.get("id")
    elif t in PROBLEM_EVENTS:
        by_type = p.get("problem_id")
    for key in (
        e["module"],
        segment_after(t, "/xblock/"),
        segment_after(e["page"], "/xblock/"),
        segment_after(t, "/api/courseware/sequence/"),
    ):
        if key:
            return key
    return by_type or None


def block_of(key: str | None) -> tuple[str, str] | None:
    """(category, url_name) of a usage key in its three forms."""
    if not key:
        return None
    if key.startswith("block-v1:") and "+type@" in key and "+block@" in key:
        return key.split("+type@")[1].split("+")[0], key.split("+block@")[1]
    if key.startswith("i4x://"):
        parts = key.split("/")
        return (parts[4], parts[5]) if len(parts) > 5 else None
    if key.startswith("i4x-") and "-video-" in key:
        return "video", key.split("-video-", 1)[1]
    return None


def studentmodule_course(row: tuple) -> str:
    """The course key of a studentmodule row (id, module_type, module_id, student_id[, course_id])."""
    if len(row) > 4:
        return course_key(row[4])
    return course_key(row[2].split(":", 1)[1].split("+type@")[0])


def visited_chapters(key: str, uid: int, mine: list[dict[str, Any]], src: Any = D) -> set[str]:
    """Chapters of studentmodule `chapter` rows (edx2bigquery's load_nchapters), of /courseware/ URLs, and of touched blocks."""
    chapters = {e["chapter"] for e in mine if e["chapter"]}
    ancestry = src.block_chapters(key) if key in src.CHAPTERS else {}
    for e in mine:
        block = block_of(usage_key(e))
        if learner_action(e) and block in ancestry:
            chapters.add(ancestry[block])
    for row in src.STUDENTMODULE:
        if row[1] == "chapter" and row[3] == uid and studentmodule_course(row) == key:
            chapters.add((block_of(row[2]) or ("", row[2]))[1])
    return chapters


def gaps(events: list[dict[str, Any]], cutoff: float = 300) -> dict[Any, list[tuple[Any, float]]]:
    """(course, learner) -> [(day of the later event, gap seconds)] for the gaps kept (day-table events only)."""
    seqs: dict[Any, list[datetime]] = defaultdict(list)
    for e in events:
        if e["who"] is not None and in_day_table(e):
            seqs[(e["key"], e["who"])].append((e["time"], e["day"]))
    result: dict[Any, list[tuple[Any, float]]] = defaultdict(list)
    for k, seq in seqs.items():
        seq.sort()
        for (t0, _d0), (t1, d1) in zip(seq, seq[1:], strict=False):
            g = (t1 - t0).total_seconds()
            if g <= cutoff:
                result[k].append((d1, g))
    return result


def latest(rows: list[tuple], order: Any) -> tuple | None:
    return max(rows, key=order) if rows else None


def reference_person_course(
    events: list[dict[str, Any]],
    courses: dict[str, dict[str, Any]],
    published: dict[str, set[str]],
    geo: dict[str, dict[str, Any]],
    src: Any = D,
) -> list[dict[str, Any]]:
    """person_course by docs/person_course.md, from the raw events and the source tables of `src` (the crafted
    package's person_course_data, or `sample_source` of a generated sample: USERS, PROFILES, ENROLMENTS, CERTS,
    GRADES, ACCESS_ROLES, FORUM_ROLES, FORUM, STUDENTMODULE, CHAPTERS, COURSE_IDS, block_chapters)."""
    kept = gaps(events)
    result = []
    for key in sorted(courses):
        cid_full = src.COURSE_IDS[key]
        enrol = {r[1]: r for r in src.ENROLMENTS if course_key(r[2]) == key}
        certs = defaultdict(list)
        for r in src.CERTS:
            if course_key(r[2]) == key:
                certs[r[1]].append(r)
        ev = [e for e in events if e["key"] == key]
        people = set(enrol) | {e["uid"] for e in ev if e["uid"] is not None} | set(certs)
        auth = {u: v for u, v in src.USERS.items() if key in v[2]}
        pass_mark = courses[key]["pass_mark"]
        for uid in sorted(people):
            everything = [e for e in ev if e["uid"] == uid]  # viewed and visited chapters read every event
            mine = [e for e in everything if in_day_table(e)]
            n = {k: sum(classify(e)[k] for e in mine) for k in classify(ev[0])} if mine else defaultdict(int)
            en = enrol.get(uid)
            cert = latest(certs.get(uid, []), lambda r: (r[6], r[0]))
            grades = [g for _i, c, u, g in src.GRADES if course_key(c) == key and u == uid]
            grade = max(grades) if grades else (cert[3] if cert else None)
            chapters = visited_chapters(key, uid, everything, src)
            npub = len(published.get(key, set()))
            matched = len(chapters & published.get(key, set()))
            ipn: dict[str, list[datetime]] = defaultdict(list)
            for e in mine:
                if e["ip"]:
                    ipn[e["ip"]].append(e["time"])
            ip = max(ipn, key=lambda i: (len(ipn[i]), max(ipn[i]), i)) if ipn else None
            place = geo.get(ip or "", {})
            g = [x for _d, x in kept.get((key, ("u", uid)), [])]
            posts = [d for d in src.FORUM if course_key(d["course_id"]) == key and int(d["author_id"]) == uid]
            prof = src.PROFILES.get(uid) if uid in auth else None
            access = {r[4] for r in src.ACCESS_ROLES if course_key(r[2]) == key and r[3] == uid}
            forum_roles = {r[3] for r in src.FORUM_ROLES if course_key(r[1]) == key and r[2] == uid}
            nevents = len(mine)
            certified = int(bool(cert) and cert[4] == "downloadable")
            nposts = len(posts)
            row: dict[str, Any] = {
                "course_id": courses[key]["course_id"] or cid_full,
                "course_key": key,
                "user_id": uid,
                "username": auth[uid][0] if uid in auth else min((e["username"] for e in everything if e["username"]), default=None),
                "registered": int(en is not None),
                "viewed": int(any(courseware_access(e) for e in everything) or bool(chapters)),
                "explored": int(npub > 0 and matched >= math.ceil(npub / 2)),
                "certified": certified,
                "completed": completed_rule(grade, pass_mark, cert[4] if cert else None),
                "grade": grade,
                "passing_grade": pass_mark,
                "mode": en[5] if en else None,
                "is_active": en[4] if en else None,
                "start_time": datetime.fromisoformat(en[3]) if en else None,
                "first_event": min((e["time"] for e in mine), default=None),
                "last_event": max((e["time"] for e in mine), default=None),
                "nevents": nevents,
                "ndays_act": len({e["day"] for e in mine}),
                "nvideos_unique_viewed": len({e["video"] for e in mine if e["video"]}),
                "nvideos_total_watched": total_watched({e["video"] for e in mine if e["video"]}, courses[key].get("nvideos")),
                "nchapters": len(chapters) or None,
                "nchapters_published": matched if chapters else None,
                "attempted_problems": len({e["problem"] for e in mine if e["problem"]}),
                "nforum_posts": nposts,
                "nforum_threads": sum(d["_type"] == "CommentThread" for d in posts),
                "nforum_comments": sum(d["_type"] == "Comment" for d in posts),
                "nforum_votes": sum(d["votes"]["up_count"] for d in posts),
                "nforum_endorsed": sum(d["_type"] == "Comment" and bool(d.get("endorsed")) for d in posts),
                "nforum_pinned": sum(d["_type"] == "CommentThread" and bool(d.get("pinned")) for d in posts),
                "ip": ip,
                "cc_by_ip": place.get("country_code"),
                "countryLabel": place.get("country_name"),
                "final_cc_cname": place.get("country_name"),
                "continent": place.get("continent"),
                "region": place.get("region"),
                "city": place.get("city"),
                "latitude": place.get("latitude"),
                "longitude": place.get("longitude"),
                "profile_country": (prof[3] or None) if prof else None,
                "LoE": (prof[2] or None) if prof else None,
                "YoB": prof[1] if prof else None,
                "gender": (prof[0] or None) if prof else None,
                "email_domain": auth[uid][1].split("@")[1].lower() if uid in auth else None,
                "cert_status": cert[4] if cert else None,
                "cert_created_date": datetime.fromisoformat(cert[5]) if cert else None,
                "cert_modified_date": datetime.fromisoformat(cert[6]) if cert else None,
                "avg_dt": sum(g) / len(g) if g else None,
                "sdv_dt": math.sqrt(sum((x - sum(g) / len(g)) ** 2 for x in g) / (len(g) - 1)) if len(g) > 1 else None,
                "max_dt": max(g) if g else None,
                "n_dt": len(g),
                "sum_dt": sum(g),
                "inconsistent_flag": int(not everything and (nposts > 0 or certified == 1 or (grade or 0) > 0)),
            }
            for k in (
                "nplay_video",
                "nvideo",
                "nvideo_events",
                "npause_video",
                "nseek_video",
                "ntranscript",
                "nproblem_check",
                "nproblem_check_server",
                "nshow_answer",
                "nseq_goto",
                "nprogcheck",
                "nforum_events",
            ):
                row[k] = n[k]
            row.update(role_columns(access, forum_roles))
            result.append(row)
    return result


# -- h8: issue 16 items 4-7, each column from the published rule -----------------------------------
# Video events of a watched video: edx2bigquery's make_video_analysis.py:createVideoStats_day reads
# play_video, pause_video and stop_video; Optimus also reads their mobile names.
VIDEO_WATCHED = ("play_video", "pause_video", "stop_video", "edx.video.played", "edx.video.paused", "edx.video.stopped")


def video_block_id(raw: Any) -> str | None:
    """A video event's id reduced to the block's own id (ours: edx2bigquery reduces only `i4x-…-video-H`)."""
    if not isinstance(raw, str) or not raw.strip():
        return None
    vid = raw.strip()
    if "+block@" in vid:
        return vid.split("+block@")[1] or None
    for marker in ("/video/", "/videoalpha/"):
        if marker in vid:
            return vid.split(marker)[1] or None
    if vid.startswith("i4x-"):
        for marker in ("-video-", "-videoalpha-"):
            if marker in vid:
                return vid[vid.index(marker) + len(marker) :] or None
    return vid


def total_watched(videos: set[str], nvideos: int | None) -> float | None:
    """make_video_analysis.py:createPersonCourseVideo: `count(*) / n_total_videos` (NULL: no videos in the course)."""
    return len(videos) / nvideos if nvideos else None


def completed_rule(grade: float | None, pass_mark: float | None, cert_status: str | None) -> int:
    """make_person_course.py:compute_first_phase: grade >= passing grade, or a downloadable certificate."""
    return int((grade is not None and pass_mark is not None and grade >= pass_mark) or cert_status == "downloadable")


COURSE_ROLE_FLAGS = {
    "beta_testers": "roles_isBetaTester",
    "instructor": "roles_isInstructor",
    "staff": "roles_isStaff",
    "ccx_coach": "roles_isCCX",
    "finance_admin": "roles_isFinance",
    "library_user": "roles_isLibrary",
    "sales_admin": "roles_isSales",
}
FORUM_ROLE_FLAGS = {
    "Administrator": "forumRoles_isAdmin",
    "Community TA": "forumRoles_isCommunityTA",
    "Moderator": "forumRoles_isModerator",
    "Student": "forumRoles_isStudent",
}
ROLES_LISTED = ["instructor", "staff", "beta_testers", "ccx_coach", "finance_admin", "sales_admin", "library_user", "data_researcher"]
FORUM_ROLES_LISTED = ["Administrator", "Moderator", "Group Moderator", "Community TA", "Student"]


def role_columns(access: set[str], forum: set[str]) -> dict[str, Any]:
    """make_roles.py: flags 1 or NULL; `roles` = createRoleVar (Staff for any course role, ours, or a
    forum Administrator, Community TA or Moderator; else Student; NULL without role rows);
    `roles_list` (ours) the role names in a fixed order."""
    out: dict[str, Any] = {flag: (1 if role in access else None) for role, flag in COURSE_ROLE_FLAGS.items()}
    out.update({flag: (1 if name in forum else None) for name, flag in FORUM_ROLE_FLAGS.items()})
    if access or forum & {"Administrator", "Community TA", "Moderator"}:
        out["roles"] = "Staff"
    elif forum:
        out["roles"] = "Student"
    else:
        out["roles"] = None
    out["roles_list"] = ",".join([r for r in ROLES_LISTED if r in access] + [f for f in FORUM_ROLES_LISTED if f in forum]) or None
    return out


def warehouse_inputs(
    settings: Any, keys: tuple[str, ...] = (D.A_KEY, D.B_KEY)
) -> tuple[dict[str, dict[str, Any]], dict[str, set[str]], dict[str, dict[str, Any]]]:
    """The inputs other services derive: courses (course_id, pass mark), published chapters, IP places."""
    courses = {r["course_key"]: r for r in query_rows(settings, "SELECT course_key, course_id, pass_mark FROM courses", as_dicts=True)}
    for key in keys:
        courses.setdefault(key, {"course_id": None, "pass_mark": None})
    for r in query_rows(
        settings,
        "SELECT course_key, count(*) AS n FROM course_blocks WHERE category = 'video' AND published IS NOT false GROUP BY course_key",
        as_dicts=True,
    ):
        courses[r["course_key"]]["nvideos"] = r["n"]
    published: dict[str, set[str]] = defaultdict(set)
    for r in query_rows(
        settings, "SELECT course_key, url_name FROM course_blocks WHERE category = 'chapter' AND published IS NOT false", as_dicts=True
    ):
        published[r["course_key"]].add(r["url_name"])
    geo = {r["ip"]: r for r in query_rows(settings, "SELECT * FROM ip_geo", as_dicts=True)}
    return courses, published, geo


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in row.items():
        if k in ("rules_version", "computed_at"):
            continue
        if isinstance(v, bool):
            v = int(v)
        if isinstance(v, float):
            v = round(v, 6)
        out[k] = v
    return out


# -- tests -----------------------------------------------------------------------------------------


def test_person_course_equals_the_reference(package_on: Any) -> None:
    settings = package_on
    events = normalise(D.day1_events())
    expected = [comparable(r) for r in reference_person_course(events, *warehouse_inputs(settings))]
    got = [comparable(r) for r in query_rows(settings, "SELECT * FROM person_course ORDER BY course_key, user_id", as_dicts=True)]
    assert [(r["course_key"], r["user_id"]) for r in got] == [(r["course_key"], r["user_id"]) for r in expected]
    for g, e in zip(got, expected, strict=True):
        assert set(g) == set(e) | set(), f"columns differ: {set(g) ^ set(e)}"
        for col in e:
            assert g[col] == e[col], f"{g['course_key']} user {g['user_id']} column {col}: {g[col]!r} != {e[col]!r}"
    # the edge cases are really in the data
    by = {(r["course_key"], r["user_id"]): r for r in got}
    assert by[(D.A_KEY, 4)]["registered"] == 0 and by[(D.A_KEY, 4)]["certified"] == 1  # certificate, no enrolment
    assert by[(D.A_KEY, 3)]["inconsistent_flag"] == 1 and by[(D.A_KEY, 3)]["nforum_posts"] == 2  # only forum posts
    assert by[(D.A_KEY, 5)]["nevents"] == 2  # empty user_id, matched by username
    assert by[(D.A_KEY, 1)]["ip"] == "1.1.1.1"  # a 3-3 tie goes to the IP of the latest event
    assert by[(D.A_KEY, 6)]["roles_isStaff"] == 1 and by[(D.A_KEY, 6)]["forumRoles_isModerator"] == 1
    assert by[(D.A_KEY, 1)]["explored"] == 1 and by[(D.A_KEY, 6)]["explored"] == 0
    assert by[(D.A_KEY, 7)]["registered"] == 0 and by[(D.A_KEY, 7)]["username"] == "gina"
    assert (D.B_KEY, 1) in by and by[(D.A_KEY, 2)]["nevents"] == 0


def test_viewed_chapters_and_day_table_rules_worked_by_hand(package_on: Any) -> None:
    """Course V (chapters ch1..ch5, all published; ceil(5/2) = 3 to explore), each value worked by hand:
    71 enrolment event only: counted (nevents 1, ndays_act 1), not viewed (user_activity gives enrolments no activity);
    72 enrolment + /courseware/ch1/: viewed, 1 chapter; 73 a task event only: not viewed;
    74 /courses/V/info only: not viewed, nchapters NULL (edx2bigquery's load_nchapters has no row);
    75 no event, a studentmodule chapter row (ch2): viewed (edx2bigquery's rule), 1 chapter;
    76 /courseware/ch1/ + an /xblock/ page of vertical ch3v + studentmodule ch2 (+ a problem row, not a chapter)
       + problem_check of ch4p: 4 chapters, explored (4 >= 3);
    77 edx.ui.lms.sequence.tab_selected to ch3v + play_video of ch5vid: 2 chapters, not explored
       (2 < 3; edx2bigquery's 2 >= 5 // 2 would say explored);
    78 three edx.ui.lms.outline.selected events: the LMS accordion's target_url /courses/V/courseware/ch4/ch4s/ (ch4),
       the Learning MFE's target_url .../course/V/{sequential ch3s}/{vertical ch3v} (ch3), the course home (none):
       viewed, nevents 3, 2 chapters, not explored (2 < 3);
    79 /courseware/ch1/, an /xblock/ handler call of ch2p, play_video, an empty-username event:
       nevents 2 (the call and the nameless event are out), 2 chapters, one gap of 120 s, nprogcheck 0;
    80 only the /xblock/ call, a grade 0.3: nevents 0, ndays_act 0, viewed, 1 chapter (ch2), not inconsistent."""
    settings = package_on
    expected = {  # uid: (viewed, nevents, ndays_act, nchapters, nchapters_published, explored, inconsistent_flag)
        71: (0, 1, 1, None, None, 0, 0),
        72: (1, 2, 1, 1, 1, 0, 0),
        73: (0, 1, 1, None, None, 0, 0),
        74: (0, 1, 1, None, None, 0, 0),
        75: (1, 0, 0, 1, 1, 0, 0),
        76: (1, 3, 1, 4, 4, 1, 0),
        77: (1, 2, 1, 2, 2, 0, 0),
        78: (1, 3, 1, 2, 2, 0, 0),
        79: (1, 2, 1, 2, 2, 0, 0),
        80: (1, 0, 0, 1, 1, 0, 0),
    }
    got = {
        r["user_id"]: r
        for r in query_rows(settings, "SELECT * FROM person_course WHERE course_key = ? ORDER BY user_id", [D.V_KEY], as_dicts=True)
    }
    cols = ("viewed", "nevents", "ndays_act", "nchapters", "nchapters_published", "explored", "inconsistent_flag")
    assert {uid: tuple(r[c] for c in cols) for uid, r in got.items()} == expected
    assert (got[79]["n_dt"], got[79]["sum_dt"], got[79]["nprogcheck"]) == (1, 120.0, 0)
    assert got[80]["grade"] == pytest.approx(0.3) and got[80]["first_event"] is None


def test_course_profile_counts_learners_blocks_and_unmatched_events(package: Any) -> None:
    settings = package
    events = normalise(D.day1_events())
    pc = reference_person_course(events, *warehouse_inputs(settings))
    profiles = {r["course_key"]: r for r in query_rows(settings, "SELECT * FROM course_profile", as_dicts=True)}
    assert set(profiles) == {D.A_KEY, D.B_KEY, D.V_KEY, D.C_KEY}
    for key, prof in profiles.items():
        mine = [r for r in pc if r["course_key"] == key]
        assert prof["registered"] == sum(r["registered"] for r in mine), key
        for col in ("viewed", "explored", "certified", "completed"):  # among registered learners; the others apart
            assert prof[col] == sum(r[col] for r in mine if r["registered"] == 1), (key, col)
            assert prof[f"{col}_not_registered"] == sum(r[col] for r in mine if r["registered"] == 0), (key, col)
        assert prof["not_registered_with_events"] == sum(r["registered"] == 0 and r["nevents"] > 0 for r in mine)
        assert prof["learners"] == len(mine)
        assert prof["nmode_audit"] == sum(r["registered"] == 1 and r["mode"] == "audit" for r in mine)
        assert prof["nmode_verified"] == sum(r["registered"] == 1 and r["mode"] == "verified" for r in mine)
        ev = [e for e in events if e["key"] == key]
        assert prof["nevents"] == len(ev)
        assert prof["nevents_unmatched"] == sum(e["uid"] is None for e in ev)
        assert prof["nusernames_unmatched"] == len({e["username"] for e in ev if e["uid"] is None and e["username"]})
        if key == D.C_KEY:
            continue  # C's blocks: test_h8_course_profile_counts_registered_learners
        published = [c for c, p in D.CHAPTERS[key] if p]
        assert prof["nchapters"] == len(published)
        assert prof["nvideos"] == len(published) and prof["nhtml"] == len(published)
        assert prof["nproblems_summative"] == sum(c.endswith("1") for c in published)
        assert prof["nproblems_formative"] == sum(not c.endswith("1") for c in published)
    assert profiles[D.A_KEY]["nevents_unmatched"] == 2 and profiles[D.A_KEY]["nusernames_unmatched"] == 1


def test_second_run_records_no_new_person_course_run(package: Any) -> None:
    settings = package
    before = query_rows(settings, "SELECT count(*) AS n FROM service_runs WHERE service IN ('PersonCourse', 'TimeFinder')")[0][0]
    assert before >= 2
    ingest(settings)
    after = query_rows(settings, "SELECT count(*) AS n FROM service_runs WHERE service IN ('PersonCourse', 'TimeFinder')")[0][0]
    assert after == before


def test_new_event_file_for_a_recomputes_a_only(package: Any) -> None:
    settings = package
    stamp = {
        r["course_key"]: r["t"]
        for r in query_rows(settings, "SELECT course_key, max(computed_at) AS t FROM person_course GROUP BY course_key", as_dicts=True)
    }
    D.write_events(settings.data_paths[0], "2024-01-03", D.day2_events())
    ingest(settings)
    now = {
        r["course_key"]: r["t"]
        for r in query_rows(settings, "SELECT course_key, max(computed_at) AS t FROM person_course GROUP BY course_key", as_dicts=True)
    }
    assert now[D.B_KEY] == stamp[D.B_KEY]
    assert now[D.A_KEY] > stamp[D.A_KEY]
    events = normalise(D.day1_events() + D.day2_events())
    expected = [comparable(r) for r in reference_person_course(events, *warehouse_inputs(settings))]
    got = [comparable(r) for r in query_rows(settings, "SELECT * FROM person_course ORDER BY course_key, user_id", as_dicts=True)]
    assert got == expected


def test_person_course_waits_while_clickstream_has_queued_files(package: Any) -> None:
    settings = package
    runs = "SELECT count(*) AS n FROM service_runs WHERE service = 'PersonCourse'"
    before = query_rows(settings, runs)[0][0]
    D.write_events(settings.data_paths[0], "2024-01-03", D.day2_events())
    # a new Database State table arrives together with the event file; only Database State is run
    folder = settings.data_paths[0] / "database_state" / D.PACKAGE
    (folder / "UQx-Alpha-2024-student_courseaccessrole-prod-analytics.sql").write_text(
        "id\torg\tcourse_id\tuser_id\trole\n51\tUQx\tcourse-v1:UQx+Alpha+2024\t6\tstaff\n", encoding="utf-8"
    )
    ingest(settings, "DatabaseState", "PersonCourse")
    queued = query_rows(settings, "SELECT count(*) AS n FROM ingest_files WHERE service = 'Clickstream' AND state = 'queued'")[0][0]
    assert queued == 1
    assert query_rows(settings, runs)[0][0] == before  # Clickstream still has a queued file: no Person Course run
    ingest(settings)
    assert query_rows(settings, runs)[0][0] == before + 1
    got = {(r["course_key"], r["user_id"]): r for r in query_rows(settings, "SELECT * FROM person_course", as_dicts=True)}
    assert got[(D.A_KEY, 1)]["nevents"] == len(
        [e for e in normalise(D.day1_events() + D.day2_events()) if e["key"] == D.A_KEY and e["uid"] == 1]
    )
    assert got[(D.A_KEY, 6)]["roles_isInstructor"] is None


def test_exports_are_private_and_the_deidentified_copy_has_no_identifiers(package: Any, cli: Any) -> None:
    settings = package
    export = Path(settings.export_path)
    files = sorted(p.name for p in export.iterdir() if p.is_file())
    for part in ("UQx-Alpha-2024", "UQx-Beta-2024"):
        assert any(f.startswith(f"personcourse_{part}_") and f.endswith(".csv") for f in files), files
        assert any(f.startswith(f"personcourse_{part}_") and f.endswith(".parquet") for f in files), files
    assert any(f.startswith("courseprofile_") and f.endswith(".csv") for f in files)
    assert not [f for f in os.listdir(export) if f.endswith(".tmp")]
    for p in export.iterdir():
        if p.is_file():
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    a_csv = next(export / f for f in files if f.startswith("personcourse_UQx-Alpha-2024_") and f.endswith(".csv"))
    with open(a_csv, newline="") as fh:
        table = list(csv.DictReader(fh))
    assert {int(r["user_id"]) for r in table} == {1, 2, 3, 4, 5, 6, 7}

    # --deidentified is the release (tests/test_release.py checks its k and l): no identifier, every file private
    result = cli(["export", "--deidentified"], settings)
    assert result.exit_code == 0, result.output
    (deid,) = sorted((export / "deidentified").glob("release_*"))
    with open(deid / "person_course_DI.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        table = list(reader)
        header = set(reader.fieldnames or [])
    assert not header & {"user_id", "username", "ip", "email_domain", "hash_id"}
    assert "userid_DI" in header
    assert all(len(r["userid_DI"]) == 64 for r in table)
    text = (deid / "person_course_DI.csv").read_text()
    for secret in ("alice", "8.8.8.8", "1.1.1.1", "example.org"):
        assert secret not in text
    for p in deid.iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600


def test_recompute_one_course_rebuilds_only_it(package: Any, cli: Any) -> None:
    settings = package
    stamp = {
        r["course_key"]: r["t"]
        for r in query_rows(settings, "SELECT course_key, max(computed_at) AS t FROM person_course GROUP BY course_key", as_dicts=True)
    }
    result = cli(["recompute", "--course", D.B], settings)
    assert result.exit_code == 0, result.output
    now = {
        r["course_key"]: r["t"]
        for r in query_rows(settings, "SELECT course_key, max(computed_at) AS t FROM person_course GROUP BY course_key", as_dicts=True)
    }
    assert now[D.A_KEY] == stamp[D.A_KEY] and now[D.B_KEY] > stamp[D.B_KEY]
    assert cli(["recompute", "--service", "NoSuch"], settings).exit_code != 0


# -- the reference on a generated sample package (issue 16's Done-when) ------------------------------
def sample_source(data: Path, manifest: dict[str, Any]) -> Any:
    """The source tables of a generated sample package, read from its files in the shapes of
    person_course_data (the reference's `src`): the `.sql` TSV tables, the forum `.mongo` lines and each
    course's course_structure JSON (a block's chapter by walking the chapters' children)."""
    import json
    from types import SimpleNamespace

    from test_sample import read_tsv

    pkg = data / manifest["database_state"]["dir"]
    src = SimpleNamespace(
        USERS={}, PROFILES={}, ENROLMENTS=[], CERTS=[], GRADES=[], ACCESS_ROLES=[], FORUM_ROLES=[], FORUM=[], STUDENTMODULE=[]
    )
    src.COURSE_IDS = {course_key(c["course_id"]): c["course_id"] for c in manifest["courses"]}
    ancestry: dict[str, dict[tuple[str, str], str]] = {}

    def rows(prefix: str, table: str) -> list[dict[str, Any]]:
        path = pkg / f"{prefix}-{table}-prod-analytics.sql"
        return read_tsv(path)[1] if path.exists() else []

    def number(v: str | None) -> float | None:
        return float(v) if v not in (None, "") else None

    for c in manifest["courses"]:
        key, prefix = course_key(c["course_id"]), c["prefix"]
        for r in rows(prefix, "auth_user"):
            src.USERS.setdefault(int(r["id"]), (r["username"], r["email"], []))[2].append(key)
        for r in rows(prefix, "auth_userprofile"):
            yob = r["year_of_birth"]
            src.PROFILES[int(r["user_id"])] = (r["gender"], int(yob) if yob else None, r["level_of_education"], r["country"])
        src.ENROLMENTS += [
            (int(r["id"]), int(r["user_id"]), r["course_id"], r["created"], int(r["is_active"]), r["mode"])
            for r in rows(prefix, "student_courseenrollment")
        ]
        src.CERTS += [
            (int(r["id"]), int(r["user_id"]), r["course_id"], number(r["grade"]), r["status"], r["created_date"], r["modified_date"])
            for r in rows(prefix, "certificates_generatedcertificate")
        ]
        src.GRADES += [
            (i, r["course_id"], int(r["user_id"]), number(r["percent_grade"]))
            for i, r in enumerate(rows(prefix, "grades_persistentcoursegrade"))
        ]
        src.ACCESS_ROLES += [
            (i, r["org"], r["course_id"], int(r["user_id"]), r["role"]) for i, r in enumerate(rows(prefix, "student_courseaccessrole"))
        ]
        src.FORUM_ROLES += [
            (i, r["course_id"], int(r["user_id"]), r["name"]) for i, r in enumerate(rows(prefix, "django_comment_client_role_users"))
        ]
        src.STUDENTMODULE += [
            (int(r["id"]), r["module_type"], r["module_id"], int(r["student_id"]), r["course_id"])
            for r in rows(prefix, "courseware_studentmodule")
        ]
        with open(pkg / c["files"]["forum"], encoding="utf-8") as fh:
            src.FORUM += [json.loads(line) for line in fh if line.strip()]
        structure = json.loads((pkg / c["files"]["course_structure"]).read_text(encoding="utf-8"))
        ancestry[key] = {}
        for block_id, block in structure.items():
            if block["category"] != "chapter":
                continue
            chapter = (block_of(block_id) or ("", block_id))[1]
            todo = [block_id]
            while todo:
                at = todo.pop()
                found = block_of(at)
                if found:
                    ancestry[key][found] = chapter
                todo += structure.get(at, {}).get("children", [])
    src.CHAPTERS = ancestry
    src.block_chapters = ancestry.__getitem__
    return src


def sample_events(data: Path, manifest: dict[str, Any]) -> list[dict[str, Any]]:
    """Every valid line of the sample's daily files, once (a line delivered again in the next file is one event)."""
    import gzip
    import json

    seen: set[str] = set()
    lines = []
    for f in manifest["events"]["files"]:
        with gzip.open(data / f["path"], "rt", encoding="utf-8") as fh:
            for raw in fh:
                text = raw.rstrip("\n")
                if text not in seen:
                    seen.add(text)
                    lines.append(json.loads(text))
    return lines


def test_person_course_equals_the_reference_on_a_sample_package(tmp_path: Path, settings_for: Any, backend: dict[str, Any]) -> None:
    """Issue 16's Done-when on a generated sample: current courseware (a course-v1 course in the Learning MFE:
    edx.ui.lms.* navigation, /xblock/ renders and handler calls, grade events), an older course (courseware
    URLs, seq_*), mobile video events, enrolment-only learners, and every URL shape (course only in the URL,
    the page, an /xblock/ page, a versioned API URL, a top-level course_id; padded usernames), on each engine:
    every column of person_course equals the plain-Python reference over the package's own files."""
    from optimus.sample import generate

    data = tmp_path / "sample"
    manifest = generate(data, courses=2, learners=30, days=3, seed=5, malformed=False)
    shapes: dict[str, int] = defaultdict(int)
    for f in manifest["events"]["files"]:
        for k, n in {**f["quirks"], **f["by_kind"]}.items():
            shapes[k] += n
    needed = (
        "course_only_in_url",
        "course_only_in_page",
        "course_only_in_xblock_page",
        "course_only_in_api_url",
        "course_only_top_level",
        "username_padded",
        "user_id_empty",
        "xblock_handler",
        "xblock_render",
        "mfe_tab_selected",
        "mobile_video_played",
        "enrollment_activated",
    )
    assert all(shapes[k] > 0 for k in needed), {k: shapes[k] for k in needed}
    assert any(c["enrollment_only"] for c in manifest["learner_counts"].values())
    settings = settings_for(data, **backend)
    ingest(settings)
    src = sample_source(data, manifest)
    events = normalise(sample_events(data, manifest), src)
    expected = [comparable(r) for r in reference_person_course(events, *warehouse_inputs(settings, tuple(src.COURSE_IDS)), src)]
    got = [comparable(r) for r in query_rows(settings, "SELECT * FROM person_course ORDER BY course_key, user_id", as_dicts=True)]
    assert [(r["course_key"], r["user_id"]) for r in got] == [(r["course_key"], r["user_id"]) for r in expected]
    for g, e in zip(got, expected, strict=True):
        assert set(g) == set(e), f"columns differ: {set(g) ^ set(e)}"
        for col in e:  # floats (avg_dt, sdv_dt, ...) to a microsecond: the reference sums float seconds, the SQL whole µs
            want = pytest.approx(e[col], abs=2e-6) if isinstance(e[col], float) else e[col]
            assert g[col] == want, f"{g['course_key']} user {g['user_id']} column {col}: {g[col]!r} != {e[col]!r}"
    assert len(got) > 30 and any(r["nchapters"] for r in got) and any(r["viewed"] == 0 and r["nevents"] > 0 for r in got)


def test_person_course_agrees_with_the_sample_generators_manifest(tmp_path: Path, settings_for: Any, backend: dict[str, Any]) -> None:
    """A second, independent oracle: the counts the sample generator keeps while writing events (each engine)."""
    from optimus import courses
    from optimus.sample import generate

    data = tmp_path / "sample"
    manifest = generate(data, courses=2, learners=40, days=4, seed=3)
    settings = settings_for(data, **backend)
    ingest(settings)
    checked = 0
    for cid, stats in manifest["learner_stats"].items():
        key = courses.course_key(cid)
        got = {r["user_id"]: r for r in query_rows(settings, "SELECT * FROM person_course WHERE course_key = ?", [key], as_dicts=True)}
        extra = manifest["learner_counts"][cid]
        for uid, (nevents, ndays, nplay, _url_chapters, nproblems) in stats.items():
            r = got[int(uid)]
            # the manifest's nevents holds the /xblock/ handler calls (not day-table events) and not the iframe
            # events whose course is only in the page's block id (each on a day with another event of the course)
            day_events = nevents - extra["xblock_events"].get(uid, 0) + extra["block_course_events"].get(uid, 0)
            assert (r["nevents"], r["ndays_act"], r["nplay_video"], r["attempted_problems"]) == (day_events, ndays, nplay, nproblems), (
                cid,
                uid,
            )
            # visited chapters: the published chapters any of the learner's events names (= its studentmodule chapter rows)
            assert r["nchapters"] == extra["chapters_touched"].get(uid), (cid, uid)
            assert r["ntranscript"] == extra["transcript_events"].get(uid, 0), (cid, uid)
            checked += 1
        for uid in extra["enrollment_only"]:
            assert got[int(uid)]["viewed"] == 0, (cid, uid)
    assert checked > 20
    for path, forum in manifest["forums"].items():
        key = courses.course_key(next(c["course_id"] for c in manifest["courses"] if Path(path).name.startswith(c["prefix"] + "-")))
        got = {
            r["user_id"]: r["nforum_posts"]
            for r in query_rows(settings, "SELECT user_id, nforum_posts FROM person_course WHERE course_key = ?", [key], as_dicts=True)
        }
        for uid, n in forum["posts_by_user"].items():
            assert got.get(int(uid)) == n, (path, uid)
    orphan = manifest["learners"].get("cert_without_enrollment")
    if orphan:
        r = query_rows(
            settings,
            "SELECT registered FROM person_course WHERE course_key = ? AND user_id = ?",
            [courses.course_key(orphan["course_id"]), orphan["user_id"]],
            as_dicts=True,
        )
        assert r == [{"registered": 0}]


# -- h8: crafted tests for issue 16 items 4-7 (course C of person_course_data; values worked by hand) -----------
def test_activity_columns_equal_the_reference_on_the_real_fixture_events(
    fixtures_dir: Path, data_path: Path, settings_for: Any, backend: dict[str, Any]
) -> None:
    """viewed, nevents, ndays_act, first/last event, nchapters and inconsistent_flag on the real edX events of
    ../shared/fixtures, by the reference's rules (in_day_table, courseware_access, visited_chapters) over
    the events Clickstream parsed (the parse rules are Clickstream's, tested there). The logs carry no user_id: each
    (course, username) gets an auth_user row; no course structure or studentmodule: visited chapters come from URLs only."""
    import json

    from test_clickstream import copy_fixtures, events_dir

    copy_fixtures(fixtures_dir, events_dir(data_path))
    settings = settings_for(data_path, **backend)
    ingest(settings)
    # these old logs carry no context.user_id: give every (course, username) an account, as a package's auth_user does
    names = [  # a course whose parts hold a '-' cannot be named by a file: its learners stay unmatched (no rows)
        (k, n)
        for k, n in query_rows(
            settings, "SELECT DISTINCT course_key, username FROM events WHERE course_key IS NOT NULL AND username <> '' ORDER BY 1, 2"
        )
        if "-" not in k
    ]
    ids = {name: 1000 + i for i, name in enumerate(sorted({n for _k, n in names}))}
    folder = data_path / "database_state" / "latest"
    for key in sorted({k for k, _n in names}):
        header = "id\tusername\tfirst_name\tlast_name\temail\tpassword\tis_staff\tis_active\tis_superuser\tlast_login\tdate_joined\n"
        body = "".join(f"{ids[n]}\t{n}\tF\tL\t{ids[n]}@example.org\t\t0\t1\t0\tNULL\t2013-01-01 00:00:00\n" for k, n in names if k == key)
        (folder / f"{key.replace('+', '-')}-auth_user-prod-analytics.sql").write_text(header + body, encoding="utf-8")
    ingest(settings)
    account = {(k, n): ids[n] for k, n in names}

    def as_payload(value: Any) -> dict[str, Any]:
        for _ in range(2):  # a JSON value, possibly a string holding a JSON object (browser payloads)
            if isinstance(value, str):
                try:
                    value = json.loads(value)
                except ValueError:
                    return {}
        return value if isinstance(value, dict) else {}

    rows = query_rows(
        settings,
        "SELECT course_key, user_id, username, time, event_type, event_source, page, module_id, CAST(event AS VARCHAR) AS event "
        "FROM events WHERE course_key IS NOT NULL",
        as_dicts=True,
    )
    by_learner: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        uid = r["user_id"] if r["user_id"] is not None else account.get((r["course_key"], r["username"]))
        if uid is None:
            continue
        t = r["event_type"] or ""
        by_learner[(r["course_key"], uid)].append(
            {
                "type": t,
                "source": r["event_source"],
                "username": r["username"] or None,
                "page": r["page"] or "",
                "module": r["module_id"],
                "payload": as_payload(r["event"]),
                "time": r["time"],
                "chapter": chapter_of({"event_type": t, "event": r["event"]}),
            }
        )
    got = {
        (r["course_key"], r["user_id"]): r
        for r in query_rows(
            settings,
            "SELECT course_key, user_id, viewed, nevents, ndays_act, first_event, last_event, nchapters, inconsistent_flag FROM person_course",
            as_dicts=True,
        )
    }
    assert set(got) == set(by_learner)
    for (key, uid), everything in by_learner.items():
        mine = [e for e in everything if in_day_table(e)]
        chapters = {e["chapter"] for e in everything if e["chapter"]}
        expected = {
            "viewed": int(any(courseware_access(e) for e in everything) or bool(chapters)),
            "nevents": len(mine),
            "ndays_act": len({e["time"].date() for e in mine}),
            "first_event": min((e["time"] for e in mine), default=None),
            "last_event": max((e["time"] for e in mine), default=None),
            "nchapters": len(chapters) or None,
            "inconsistent_flag": 0,
        }
        assert {c: got[(key, uid)][c] for c in expected} == expected, (key, uid)
    assert len(got) > 20 and any(r["viewed"] == 0 for r in got.values()) and any(r["viewed"] == 1 for r in got.values())
    assert any(r["nchapters"] for r in got.values())


BLOCK_KEYS = [
    "block-v1:UQx+V+1+type@problem+block@p2",
    "block-v1:UQx+V+1+type@vertical+block@vert3",
    "i4x://UQx/V/video/abc123",
    "i4x-UQx-V-video-abc123",
    "i4x://UQx/V",
    "block-v1:UQx+V+1",  # no type@: no block
    "vid1",
    "",
]
URLS = [
    "/courses/course-v1:UQx+V+1/xblock/block-v1:UQx+V+1+type@problem+block@p2/handler/xmodule_handler/problem_check",
    "https://courses.edx.org/xblock/block-v1:UQx+V+1+type@vertical+block@vert3?show_title=0#x",
    "/courses/course-v1:UQx+V+1/courseware/ch1/seq1/",
    "/courses/course-v1:UQx+V+1/courseware/",
    "/api/courseware/course/course-v1:UQx+V+1",
    "/courses/course-v1:UQx+V+1/info",
]


def test_block_and_chapter_sql_equal_the_reference_on_both_engines(tmp_path: Path, settings_for: Any, backend: dict[str, Any]) -> None:
    """The SQL that names a touched block and a URL's chapter gives what the reference's rules give, on each engine."""
    from conftest import make_data_path
    from optimus.services import learner_events as L
    from optimus.warehouse import connect

    wh = connect(settings_for(make_data_path(tmp_path / "d"), **backend))
    try:
        keys = " UNION ALL ".join("SELECT CAST(? AS VARCHAR) AS k" for _ in BLOCK_KEYS)
        got = {k: (t, n) for k, t, n in wh.query(f"SELECT k, {L.block_type_sql('k')}, {L.block_name_sql('k')} FROM ({keys}) v", BLOCK_KEYS)}
        urls = " UNION ALL ".join("SELECT CAST(? AS VARCHAR) AS u" for _ in URLS)
        segs = {
            u: (x, c)
            for u, x, c in wh.query(f"SELECT u, {L.path_segment_sql('u', '/xblock/')}, {L.chapter_sql('u')} FROM ({urls}) v", URLS)
        }
    finally:
        wh.close()
    for k in BLOCK_KEYS:
        assert got[k] == (block_of(k) or (None, None)), repr(k)
    for u in URLS:
        assert segs[u] == (segment_after(u, "/xblock/"), chapter_of({"event_type": u})), repr(u)
    # worked by hand
    assert got["i4x-UQx-V-video-abc123"] == ("video", "abc123") and got["block-v1:UQx+V+1"] == (None, None)
    assert segs[URLS[1]][0] == "block-v1:UQx+V+1+type@vertical+block@vert3" and segs[URLS[4]] == (None, None)
