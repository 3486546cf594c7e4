"""PersonCourse against a plain-Python reference written from docs/person_course.md.

The package is hand-built (tests/person_course_data.py) and ingested as `optimus ingest` does (conftest.ingest); the
reference reads the same source data (the raw event lines and table rows the test wrote) and
only three inputs other services derive (course_id/pass_mark from `courses`, published chapters
from `course_blocks`, places from `ip_geo`).
"""

from __future__ import annotations

import csv
import math
import os
import stat
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import person_course_data as D
from conftest import ingest, query_rows
from optimus.pipeline import open_warehouse
from optimus.services import person_course_sql as S
from optimus.services.person_course import PersonCourse

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
    url = line.get("event_type") or ""
    if "/courseware/" not in url:
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


def normalise(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each raw line as the reference sees it, with its learner resolved."""
    by_name = {(k, u[0]): uid for uid, u in D.USERS.items() for k in u[2]}
    out = []
    for line in lines:
        ctx = line["context"]
        key = course_key(ctx["course_id"])
        uid = ctx.get("user_id")
        uid = int(uid) if uid not in ("", None) else by_name.get((key, line["username"]))
        who = ("u", uid) if uid is not None else (("n", line["username"]) if line["username"] else None)
        et = line.get("name") or line["event_type"]
        p = payload(line)
        out.append(
            {
                "key": key,
                "cid": ctx["course_id"],
                "uid": uid,
                "who": who,
                "username": line["username"] or None,
                "time": parse_time(line["time"]),
                "type": et,
                "source": line["event_source"],
                "ip": line["ip"] or None,
                "chapter": chapter_of(line),
                "video": video_block_id(p.get("id")) if et in VIDEO_WATCHED else None,
                "problem": p.get("problem_id") if et == "problem_check" and line["event_source"] == "server" else None,
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


def gaps(events: list[dict[str, Any]], cutoff: float = 300) -> dict[Any, list[tuple[Any, float]]]:
    """(course, learner) -> [(day of the later event, gap seconds)] for the gaps kept."""
    seqs: dict[Any, list[datetime]] = defaultdict(list)
    for e in events:
        if e["who"] is not None:
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
    events: list[dict[str, Any]], courses: dict[str, dict[str, Any]], published: dict[str, set[str]], geo: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    kept = gaps(events)
    result = []
    for key in sorted(courses):
        cid_full = D.A if key == D.A_KEY else D.B
        enrol = {r[1]: r for r in D.ENROLMENTS if course_key(r[2]) == key}
        certs = defaultdict(list)
        for r in D.CERTS:
            if course_key(r[2]) == key:
                certs[r[1]].append(r)
        ev = [e for e in events if e["key"] == key]
        people = set(enrol) | {e["uid"] for e in ev if e["uid"] is not None} | set(certs)
        auth = {u: v for u, v in D.USERS.items() if key in v[2]}
        pass_mark = courses[key]["pass_mark"]
        for uid in sorted(people):
            mine = [e for e in ev if e["uid"] == uid]
            n = {k: sum(classify(e)[k] for e in mine) for k in classify(ev[0])} if mine else defaultdict(int)
            en = enrol.get(uid)
            cert = latest(certs.get(uid, []), lambda r: (r[6], r[0]))
            grades = [g for _i, c, u, g in D.GRADES if course_key(c) == key and u == uid]
            grade = max(grades) if grades else (cert[3] if cert else None)
            chapters = {e["chapter"] for e in mine if e["chapter"]}
            npub = len(published.get(key, set()))
            matched = len(chapters & published.get(key, set()))
            ipn: dict[str, list[datetime]] = defaultdict(list)
            for e in mine:
                if e["ip"]:
                    ipn[e["ip"]].append(e["time"])
            ip = max(ipn, key=lambda i: (len(ipn[i]), max(ipn[i]), i)) if ipn else None
            place = geo.get(ip or "", {})
            g = [x for _d, x in kept.get((key, ("u", uid)), [])]
            posts = [d for d in D.FORUM if course_key(d["course_id"]) == key and int(d["author_id"]) == uid]
            prof = D.PROFILES.get(uid) if uid in auth else None
            access = {r[4] for r in D.ACCESS_ROLES if course_key(r[2]) == key and r[3] == uid}
            forum_roles = {r[3] for r in D.FORUM_ROLES if course_key(r[1]) == key and r[2] == uid}
            nevents = len(mine)
            certified = int(bool(cert) and cert[4] == "downloadable")
            nposts = len(posts)
            row: dict[str, Any] = {
                "course_id": courses[key]["course_id"] or cid_full,
                "course_key": key,
                "user_id": uid,
                "username": auth[uid][0] if uid in auth else min((e["username"] for e in mine if e["username"]), default=None),
                "registered": int(en is not None),
                "viewed": int(len({e["day"] for e in mine}) > 0),
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
                "nchapters": len(chapters),
                "nchapters_published": matched,
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
                "inconsistent_flag": int(nevents == 0 and (nposts > 0 or certified == 1 or (grade or 0) > 0)),
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


def warehouse_inputs(settings: Any) -> tuple[dict[str, dict[str, Any]], dict[str, set[str]], dict[str, dict[str, Any]]]:
    """The inputs other services derive: courses (course_id, pass mark), published chapters, IP places."""
    courses = {r["course_key"]: r for r in query_rows(settings, "SELECT course_key, course_id, pass_mark FROM courses", as_dicts=True)}
    for key in (D.A_KEY, D.B_KEY):
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


def test_course_profile_counts_learners_blocks_and_unmatched_events(package: Any) -> None:
    settings = package
    events = normalise(D.day1_events())
    pc = reference_person_course(events, *warehouse_inputs(settings))
    profiles = {r["course_key"]: r for r in query_rows(settings, "SELECT * FROM course_profile", as_dicts=True)}
    assert set(profiles) == {D.A_KEY, D.B_KEY, D.C_KEY}
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

    result = cli(["export", "--deidentified"], settings)
    assert result.exit_code == 0, result.output
    deid = export / "deidentified"
    csvs = sorted(deid.glob("personcourse_UQx-Alpha-2024_*.csv"))
    assert csvs
    with open(csvs[-1], newline="") as fh:
        table = list(csv.DictReader(fh))
    header = set(table[0])
    assert not header & {"user_id", "username", "ip", "email_domain"}
    assert "hash_id" in header
    assert {r["hash_id"] for r in table if r["hash_id"]} == {f"hash{u:04d}A" for u in (1, 2, 3, 4, 5, 6)}
    text = csvs[-1].read_text()
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


def test_person_course_agrees_with_the_sample_generators_manifest(tmp_path: Path, settings_for: Any) -> None:
    """A second, independent oracle: the counts the sample generator keeps while writing events."""
    from optimus import courses
    from optimus.sample import generate

    data = tmp_path / "sample"
    manifest = generate(data, courses=2, learners=40, days=4, seed=3)
    settings = settings_for(data)
    ingest(settings)
    checked = 0
    for cid, stats in manifest["learner_stats"].items():
        key = courses.course_key(cid)
        got = {r["user_id"]: r for r in query_rows(settings, "SELECT * FROM person_course WHERE course_key = ?", [key], as_dicts=True)}
        for uid, (nevents, ndays, nplay, nchapters, nproblems) in stats.items():
            r = got[int(uid)]
            assert (r["nevents"], r["ndays_act"], r["nplay_video"], r["nchapters"], r["attempted_problems"]) == (
                nevents,
                ndays,
                nplay,
                nchapters,
                nproblems,
            ), (cid, uid)
            checked += 1
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


def _c_rows(settings: Any) -> dict[int, dict[str, Any]]:
    return {r["user_id"]: r for r in query_rows(settings, "SELECT * FROM person_course WHERE course_key = ?", [D.C_KEY], as_dicts=True)}


def test_h8_video_counts(package_on: Any) -> None:
    """vera in C: play_video `i4x-UQx-Counts-video-abc`, a mobile play (name edx.video.played) of
    `block-v1:…+block@abc`, pause_video `i4x://UQx/Counts/video/def`, stop_video ` block-v1:…+block@def `,
    show_transcript `abc`, load_video `ghi`; the course has 4 videos."""
    vera = _c_rows(package_on)[81]
    assert vera["nplay_video"] == 2 and vera["nvideo"] == 2  # the two plays, the mobile name counted
    assert vera["nvideo_events"] == 6  # play, mobile play, pause, stop, show_transcript, load_video
    assert vera["npause_video"] == 1 and vera["ntranscript"] == 1
    assert vera["nvideos_unique_viewed"] == 2  # abc and def (load_video is not a play, pause or stop)
    assert vera["nvideos_total_watched"] == 0.5  # 2 of 4
    assert _c_rows(package_on)[82]["nvideos_total_watched"] == 0.0  # no events: 0 of C's 4 videos


def test_h8_problem_check_counts_browser_and_server(package_on: Any) -> None:
    """vera: a browser problem_check and its server twin (pp1), and one more server check (pp2)."""
    vera = _c_rows(package_on)[81]
    assert vera["nproblem_check"] == 3
    assert vera["nproblem_check_server"] == 2
    assert vera["attempted_problems"] == 2  # pp1, pp2 (server checks)
    day = query_rows(
        package_on,
        "SELECT nproblem_check, nproblem_check_server FROM person_course_day WHERE course_key = ? AND user_id = 81",
        [D.C_KEY],
        as_dicts=True,
    )
    assert day == [{"nproblem_check": 3, "nproblem_check_server": 2}]


def test_h8_roles_as_make_roles(package_on: Any) -> None:
    rows = _c_rows(package_on)
    flags = [*COURSE_ROLE_FLAGS.values(), *FORUM_ROLE_FLAGS.values()]

    def set_flags(uid: int) -> dict[str, Any]:
        return {f: rows[uid][f] for f in flags if rows[uid][f] is not None}

    assert (rows[82]["roles"], set_flags(82), rows[82]["roles_list"]) == ("Staff", {"roles_isBetaTester": 1}, "beta_testers")
    assert (rows[83]["roles"], set_flags(83), rows[83]["roles_list"]) == ("Student", {"forumRoles_isStudent": 1}, "Student")
    assert (rows[84]["roles"], set_flags(84), rows[84]["roles_list"]) == (None, {}, None)  # no role rows
    assert (rows[85]["roles"], set_flags(85)) == ("Staff", {"forumRoles_isCommunityTA": 1, "forumRoles_isStudent": 1})
    assert rows[85]["roles_list"] == "Community TA,Student"
    # a course role outside make_roles' list: Staff (ours; edx2bigquery: Student), no flag, kept in roles_list
    assert (rows[86]["roles"], set_flags(86), rows[86]["roles_list"]) == ("Staff", {}, "data_researcher")
    assert set(rows[84]) >= set(flags) and "roles_isDataResearcher" not in rows[84]


def test_h8_completed_is_a_pass_or_a_downloadable_certificate(package_on: Any) -> None:
    """Pass mark 0.5: nick 0.4 + downloadable -> 1; olga no grade + downloadable -> 1; paul 0.6 +
    notpassing -> 1; quinn 0.4, no certificate -> 0; vera no grade -> 0."""
    rows = _c_rows(package_on)
    assert rows[87]["passing_grade"] == 0.5
    assert {u: rows[u]["completed"] for u in (87, 88, 89, 90, 81)} == {87: 1, 88: 1, 89: 1, 90: 0, 81: 0}


def test_h8_course_profile_counts_registered_learners(package_on: Any) -> None:
    """C: 10 enrolled (vera, ivan..quinn); rita has events and no enrolment; sam a downloadable
    certificate and no enrolment. Only vera (enrolled) and rita have events, both visit cch1, C's one chapter."""
    (prof,) = query_rows(package_on, "SELECT * FROM course_profile WHERE course_key = ?", [D.C_KEY], as_dicts=True)
    assert (prof["registered"], prof["learners"], prof["not_registered"]) == (10, 12, 2)
    assert (prof["viewed"], prof["explored"], prof["certified"], prof["completed"]) == (1, 1, 2, 3)  # vera; vera; nick, olga; +paul
    assert (prof["viewed_not_registered"], prof["explored_not_registered"]) == (1, 1)  # rita
    assert (prof["certified_not_registered"], prof["completed_not_registered"]) == (1, 1)  # sam
    assert prof["not_registered_with_events"] == 1  # rita
    assert prof["nvideos"] == 4


def test_h8_a_warehouse_of_rules_version_2_gets_the_new_columns_and_recomputes(package_on: Any) -> None:
    """A table made by rules version 2 (old role flag, no ntranscript, no course_profile split) is
    given today's columns at the next start and every course is recomputed."""
    settings = package_on
    wh = open_warehouse(settings)
    try:
        with wh.transaction():
            wh.execute('ALTER TABLE person_course ADD COLUMN "roles_isCCXCoach" INTEGER')
            wh.execute("ALTER TABLE person_course DROP COLUMN ntranscript")
            wh.execute("ALTER TABLE course_profile DROP COLUMN viewed_not_registered")
            wh.execute("UPDATE person_course SET rules_version = 2, nvideo = 99")
            wh.execute("UPDATE service_runs SET rules_version = 2 WHERE service = 'PersonCourse'")
    finally:
        wh.close()
    ingest(settings)
    columns = query_rows(settings, "SELECT * FROM person_course WHERE course_key = ? AND user_id = 81", [D.C_KEY], as_dicts=True)[0]
    assert set(columns) == set(S.PC_COLUMNS)
    assert (columns["ntranscript"], columns["nvideo"], columns["rules_version"]) == (1, 2, PersonCourse.rules_version)
    (prof,) = query_rows(settings, "SELECT viewed_not_registered FROM course_profile WHERE course_key = ?", [D.C_KEY], as_dicts=True)
    assert prof == {"viewed_not_registered": 1}


VIDEO_IDS = [
    "i4x-UQx-Counts-video-abc",
    "block-v1:UQx+Counts+2024+type@video+block@abc",
    "i4x://UQx/Counts/video/abc",
    "  abc ",
    "i4x-Medicine-HRP258-videoalpha-cb6076d965824dbcb6a3a4aa8c7a03af",  # ../shared/fixtures (old category name)
    "i4x://Medicine/HRP258/videoalpha/cb6076d965824dbcb6a3a4aa8c7a03af",
    "i4x-UQx-Counts-video-my-clip-2",  # a url_name with hyphens stays whole
    "block-v1:UQx+Counts+2024+type@video+block@",
    "",
    "   ",
    "plain-id-with-hyphens",
]


def test_h8_video_block_id_sql_equals_the_reference(package_on: Any) -> None:
    """The SQL id reduction, on each engine, equals the reference's on every id form."""
    from optimus.services.learner_events import video_block_id_sql

    values = " UNION ALL ".join(f"SELECT {i} AS n, '{v}' AS raw" for i, v in enumerate(VIDEO_IDS))
    got = query_rows(package_on, f"SELECT n, {video_block_id_sql('raw')} AS vid FROM ({values}) ids ORDER BY n")
    assert [tuple(r) for r in got] == [(i, video_block_id(v)) for i, v in enumerate(VIDEO_IDS)]
    assert [video_block_id(v) for v in VIDEO_IDS[:4]] == ["abc"] * 4
    assert video_block_id(VIDEO_IDS[4]) == video_block_id(VIDEO_IDS[5]) == "cb6076d965824dbcb6a3a4aa8c7a03af"
    assert video_block_id(VIDEO_IDS[6]) == "my-clip-2" and video_block_id(VIDEO_IDS[7]) is None and video_block_id("") is None
