"""The course dashboard's figures (what edX Insights showed a course team): per course, the sections
Course overview, Demographics, Geography, Engagement and Performance; and one row per course for
Across courses. Aggregates only, open like the course figures: no per-learner row, and counts of
learners under MIN_CELL withheld (docs/dashboard.md, "Small cells").

Routes here are registered before courses.py's `/courses/{course_id:path}` (which would take any longer path).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.encoders import jsonable_encoder

from optimus.api.courses import _ids, _info, _known_keys, resolve
from optimus.api.research import problem_summary
from optimus.api.small_cells import MIN_CELL, WITHHELD, breakdown, one, shown
from optimus.api.state import iso, warehouse_view
from optimus.services.learner_events import block_name_sql
from optimus.services.video_analysis import DECILES
from optimus.warehouse import Warehouse
from optimus.warehouse.base import raw_table

router = APIRouter(tags=["dashboard"])


FUNNEL = ("registered", "viewed", "explored", "completed", "certified")
# auth_userprofile.level_of_education codes (edx-platform common/djangoapps/student/models.py LEVEL_OF_EDUCATION_CHOICES)
EDUCATION = {
    "p": "Doctorate",
    "p_se": "Doctorate in science or engineering",
    "p_oth": "Doctorate in another field",
    "m": "Master's or professional degree",
    "b": "Bachelor's degree",
    "a": "Associate degree",
    "hs": "Secondary / high school",
    "jhs": "Junior secondary / middle school",
    "el": "Elementary / primary school",
    "none": "No formal education",
    "other": "Other education",
}
GENDER = {"m": "Male", "f": "Female", "o": "Other / prefer not to say"}
AGES = ((0, 17, "under 18"), (18, 25, "18–25"), (26, 40, "26–40"), (41, 60, "41–60"), (61, 100, "over 60"))
NOT_SAID = "not said"
GEO_REASONS = {
    "private": "a private or shared address (10.x, 172.16–31.x, 192.168.x, 100.64.x: a network's inside, not a place)",
    "loopback": "a loopback address (127.x, ::1)",
    "invalid": "not an IP address",
    "not found": "an address the IP-to-country data does not place",
    "no ip": "no IP address in the learner's events (enrolled only, or no events yet)",
    "not looked up": "not looked up yet (IPToCountry has not run since)",
}


# -- helpers -------------------------------------------------------------------------------------
def _has(wh: Warehouse, table: str) -> bool:
    return wh.table_exists(table)


def _flag(column: str) -> str:
    return f"sum(CASE WHEN CAST({column} AS INTEGER) = 1 THEN 1 ELSE 0 END)"


def _week(day: str) -> str:
    """The Monday of the ISO week of a DATE expression (portable: extract(isodow) and date - integer)."""
    return f"CAST({day} - (CAST(extract(isodow FROM {day}) AS INTEGER) - 1) AS DATE)"


def _int(v: Any) -> int:
    return int(v or 0)


# -- Course overview -----------------------------------------------------------------------------
def funnel(wh: Warehouse, key: str) -> list[dict[str, Any]]:
    """registered → viewed → explored → completed → certified, from person_course's flags."""
    if not _has(wh, "person_course"):
        return []
    have = set(wh.columns("person_course"))
    stages = [s for s in FUNNEL if s in have]
    row = wh.query(f"SELECT {', '.join(_flag(wh.quote(s)) for s in stages)} FROM person_course WHERE course_key = ?", [key])[0]
    return [{"stage": s, "learners": one(_int(n)), "shown": shown(_int(n))} for s, n in zip(stages, row, strict=True)]


def enrolment_by_mode(wh: Warehouse, key: str) -> dict[str, Any]:
    """enrollment_day per day and mode (enrolments, unenrolments), and its totals per mode. Not withheld:
    these count enrolment events, as edX Insights published them (and /courses/{id} serves them by day)."""
    if not _has(wh, "enrollment_day"):
        return {"source": None, "by_day": [], "by_mode": []}
    rows = wh.query(
        "SELECT date, mode, sum(enrollments), sum(unenrollments) FROM enrollment_day WHERE course_key = ? GROUP BY date, mode ORDER BY date, mode",
        [key],
    )
    by_day: list[dict[str, Any]] = [
        {"date": iso(d), "mode": m or "unknown", "enrollments": _int(e), "unenrollments": _int(u)} for d, m, e, u in rows
    ]
    totals: dict[str, list[int]] = {}
    for p in by_day:
        t = totals.setdefault(p["mode"], [0, 0])
        t[0] += p["enrollments"]
        t[1] += p["unenrollments"]
    by_mode = [{"mode": m, "enrollments": e, "unenrollments": u, "net": e - u} for m, (e, u) in sorted(totals.items())]
    return {"source": "enrollment_day", "by_day": by_day, "by_mode": by_mode}


def weekly(wh: Warehouse, key: str) -> list[dict[str, Any]]:
    """Per ISO week (its Monday): active learners, video plays, problem checks and forum events (person_course_day),
    forum posts (forum_posts) and time on task (time_on_task.total_time_30, hours). A week with fewer than
    MIN_CELL active learners is withheld whole (its sums would be a few learners' own activity)."""
    if not _has(wh, "person_course_day"):
        return []
    week = _week(wh.quote("date"))
    rows = wh.query(
        f"SELECT {week} AS w, count(DISTINCT user_id), sum(nplay_video), sum(nproblem_check), sum(nforum_events) "
        f"FROM person_course_day WHERE course_key = ? GROUP BY 1 ORDER BY 1",
        [key],
    )
    posts: dict[Any, int] = {}
    if _has(wh, "forum_posts"):
        created = "CAST(created_at AS DATE)"
        posts = {
            w: _int(n)
            for w, n in wh.query(
                f"SELECT {_week(created)}, count(*) FROM forum_posts WHERE course_key = ? AND created_at IS NOT NULL GROUP BY 1", [key]
            )
        }
    hours: dict[Any, float] = {}
    if _has(wh, "time_on_task"):
        hours = {
            w: float(s or 0) / 3600
            for w, s in wh.query(f"SELECT {week}, sum(total_time_30) FROM time_on_task WHERE course_key = ? GROUP BY 1", [key])
        }
    out: list[dict[str, Any]] = []
    for w, learners, plays, checks, forum in rows:
        n = _int(learners)
        if n < MIN_CELL:
            out.append({"week": iso(w), "learners": None, "shown": WITHHELD, "withheld": True})
            continue
        out.append(
            {
                "week": iso(w),
                "learners": n,
                "shown": str(n),
                "withheld": False,
                "video_plays": _int(plays),
                "problem_checks": _int(checks),
                "forum_events": _int(forum),
                "forum_posts": posts.get(w, 0),
                "time_on_task_hours": round(hours.get(w, 0.0), 2),
            }
        )
    return out


def chapters(wh: Warehouse, key: str) -> list[dict[str, Any]]:
    """Per chapter of course_axis (in course order): learners with a courseware_studentmodule row for the
    chapter or any block in it (a block's `chapter_mid` is its chapter's `module_id`; edX's record that the learner opened it)."""
    if not _has(wh, "course_axis"):
        return []
    chapter_rows = wh.query(
        f"SELECT {wh.quote('index')}, url_name, name, chapter_mid FROM course_axis WHERE course_key = ? AND category = ? "
        f"ORDER BY {wh.quote('index')}, url_name",
        [key, "chapter"],
    )
    reached: dict[str, int] = {}
    if wh.table_exists("courseware_studentmodule", schema=wh.raw_schema):
        sm = raw_table(wh, "courseware_studentmodule")
        sql = f"""
            WITH ch AS (SELECT url_name, module_id FROM course_axis WHERE course_key = ? AND category = 'chapter'),
            blocks AS (SELECT DISTINCT a.url_name AS block, ch.url_name AS chapter FROM course_axis a
                       JOIN ch ON a.chapter_mid = ch.module_id OR a.url_name = ch.url_name
                       WHERE a.course_key = ? AND a.url_name IS NOT NULL)
            SELECT blocks.chapter, count(DISTINCT sm.student_id) FROM {sm} sm
            JOIN blocks ON blocks.block = {block_name_sql("sm.module_id")}
            WHERE sm.course_key = ? AND sm.student_id IS NOT NULL GROUP BY blocks.chapter"""
        reached = {c: _int(n) for c, n in wh.query(sql, [key, key, key])}
    return [
        {"index": i, "chapter": u, "name": name or u, "learners": one(reached.get(u, 0)), "shown": shown(reached.get(u, 0))}
        for i, u, name, _mid in chapter_rows
    ]


# -- Demographics --------------------------------------------------------------------------------
def _reference_year(wh: Warehouse, key: str) -> int:
    start = _info(wh, key).get("start_date")
    return int(str(start)[:4]) if start else dt.datetime.now(dt.UTC).year


def demographics(wh: Warehouse, key: str) -> dict[str, Any]:
    """Age (the course's start year less YoB), level of education and gender of person_course's learners,
    each with how many did not say."""
    if not _has(wh, "person_course"):
        return {"source": None, "age": [], "education": [], "gender": []}
    have = set(wh.columns("person_course"))

    def grouped(column: str) -> list[tuple[str | None, int]]:
        if column not in have:
            return []
        col = wh.quote(column)
        return [
            (None if v is None or str(v).strip() == "" else str(v).strip(), _int(n))
            for v, n in wh.query(f"SELECT CAST({col} AS VARCHAR), count(*) FROM person_course WHERE course_key = ? GROUP BY 1", [key])
        ]

    year = _reference_year(wh, key)
    ages = {label: 0 for _lo, _hi, label in AGES}
    not_said = implausible = 0
    for value, n in grouped("YoB"):
        try:
            age = year - int(float(value)) if value is not None else None
        except ValueError:
            age = None
        if value is None:
            not_said += n
        elif age is None or not 5 <= age <= 100:
            implausible += n
        else:
            label = next(label for lo, hi, label in AGES if lo <= age <= hi)
            ages[label] += n
    age_counts = [*ages.items(), (NOT_SAID, not_said)] + ([("implausible year", implausible)] if implausible else [])

    def coded(column: str, labels: dict[str, str]) -> list[tuple[str, int]]:
        counts: dict[str, int] = {}
        for value, n in grouped(column):
            label = NOT_SAID if value is None else labels.get(value.lower(), f"other code ({value[:20]})")
            counts[label] = counts.get(label, 0) + n
        order = [*labels.values()]
        return sorted(counts.items(), key=lambda kv: (kv[0] == NOT_SAID, order.index(kv[0]) if kv[0] in order else len(order), kv[0]))

    return {
        "source": "person_course",
        "age_reference_year": year,
        "age": breakdown(age_counts),
        "education": breakdown(coded("LoE", EDUCATION)),
        "gender": breakdown(coded("gender", GENDER)),
    }


# -- Geography -----------------------------------------------------------------------------------
def geography(wh: Warehouse, key: str) -> dict[str, Any]:
    """Learners by country (person_course's country of the modal IP), and why the others have none (ip_geo.failure)."""
    if not _has(wh, "person_course"):
        return {"source": None, "countries": [], "unplaced": 0, "reasons": []}
    have = set(wh.columns("person_course"))
    if not {"cc_by_ip", "countryLabel"} <= have:
        return {"source": None, "countries": [], "unplaced": 0, "reasons": []}
    rows = wh.query(
        "SELECT cc_by_ip, max(\"countryLabel\"), count(*) FROM person_course WHERE course_key = ? AND cc_by_ip IS NOT NULL AND cc_by_ip <> '' "
        "GROUP BY cc_by_ip ORDER BY 3 DESC, 1",
        [key],
    )
    why = "CASE WHEN pc.ip IS NULL OR pc.ip = '' THEN 'no ip' WHEN g.ip IS NULL THEN 'not looked up' ELSE coalesce(g.failure, 'not found') END"
    ip_geo = (
        "LEFT JOIN ip_geo g ON g.ip = pc.ip"
        if _has(wh, "ip_geo") and "ip" in have
        else "LEFT JOIN (SELECT NULL AS ip, NULL AS failure) g ON 1 = 0"
    )
    ip = "pc.ip" if "ip" in have else "CAST(NULL AS VARCHAR)"
    unplaced = wh.query(
        f"SELECT {why.replace('pc.ip', ip)}, count(*) FROM person_course pc {ip_geo.replace('pc.ip', ip)} "
        "WHERE pc.course_key = ? AND (pc.cc_by_ip IS NULL OR pc.cc_by_ip = '') GROUP BY 1 ORDER BY 2 DESC, 1",
        [key],
    )
    total = sum(_int(n) for _c, _name, n in rows) + sum(_int(n) for _r, n in unplaced)
    countries = breakdown([(c, _int(n)) for c, _name, n in rows] + [("", sum(_int(n) for _r, n in unplaced))])
    names = {c: name for c, name, _n in rows}
    placed = []
    for item in countries[:-1]:
        code = item.pop("label")
        item = {"code": code, "name": names[code], **item}
        placed.append(item)
        n = item["learners"]
        item["share"] = None if n is None or not total else round(n / total, 4)
    return {
        "source": "person_course.cc_by_ip",
        "learners": one(total),
        "countries": placed,
        "unplaced": countries[-1]["learners"],
        "unplaced_shown": countries[-1]["shown"],
        # the reasons part the unplaced learners (their total is published): withheld as a breakdown
        "reasons": [
            {
                "reason": item["label"],
                "why": GEO_REASONS.get(item["label"], item["label"]),
                "learners": item["learners"],
                "shown": item["shown"],
            }
            for item in breakdown([(str(r), _int(n)) for r, n in unplaced])
        ],
    }


# -- Performance and content ---------------------------------------------------------------------
def grades(wh: Warehouse, key: str) -> dict[str, Any]:
    """Learners per tenth of person_course.grade (0–1; 1.0 in the last), those with no grade, and the pass mark."""
    if not _has(wh, "person_course") or "grade" not in wh.columns("person_course"):
        return {"source": None, "bins": [], "no_grade": 0, "pass_mark": None}
    g = "CAST(grade AS DOUBLE PRECISION)"
    rows = dict(
        wh.query(
            f"SELECT CASE WHEN {g} IS NULL THEN -1 WHEN {g} >= 1 THEN 9 WHEN {g} < 0 THEN 0 ELSE CAST(floor({g} * 10) AS INTEGER) END AS b, "
            "count(*) FROM person_course WHERE course_key = ? GROUP BY 1",
            [key],
        )
    )
    pass_mark = None
    if "passing_grade" in wh.columns("person_course"):
        pass_mark = wh.scalar("SELECT max(CAST(passing_grade AS DOUBLE PRECISION)) FROM person_course WHERE course_key = ?", [key])
    labels = [f"{10 * b}–{10 * b + 10}%" for b in range(10)]
    cells = breakdown([(labels[b], _int(rows.get(b))) for b in range(10)] + [("no grade", _int(rows.get(-1)))])
    for b, item in enumerate(cells[:10]):
        item["from"], item["to"] = b / 10, (b + 1) / 10
    return {
        "source": "person_course.grade",
        "bins": cells[:10],
        "no_grade": cells[10]["learners"],
        "no_grade_shown": cells[10]["shown"],
        "pass_mark": pass_mark,
    }


def problems(wh: Warehouse, key: str) -> list[dict[str, Any]]:
    """Per problem: the share correct on the first try (problem_first_attempt_correct), withheld under MIN_CELL learners."""
    out = []
    for p in problem_summary(wh, key):
        n, correct = p["n_first_attempt_known"], p["n_first_attempt_correct"]
        if n == 0:
            continue
        ok = n >= MIN_CELL
        out.append(
            {
                "problem_id": p["problem_id"],
                "name": p.get("problem_name") or p["problem_id"],
                "learners": n if ok else None,
                "shown": shown(n),
                "first_try_correct": round(correct / n, 4) if ok else None,
            }
        )
    return out


def videos(wh: Warehouse, key: str) -> list[dict[str, Any]]:
    """Per video: the share of its viewers still watching at the start of each tenth (video_engagement's deciles)."""
    if not all(_has(wh, t) for t in ("video_engagement",)):
        return []
    q = wh.quote
    deciles = ", ".join(f"g.{q(f'viewers_decile_{k}')}" for k in DECILES)
    names = "LEFT JOIN video_axis a ON a.course_key = g.course_key AND a.video_id = g.video_id" if _has(wh, "video_axis") else ""
    name = "a.name" if names else "CAST(NULL AS VARCHAR)"
    index = "a.index_video" if names else "CAST(NULL AS INTEGER)"
    rows = wh.query(
        f"SELECT g.video_id, {name}, g.viewers, {deciles} FROM video_engagement g {names} WHERE g.course_key = ? "
        f"ORDER BY CASE WHEN {index} IS NULL THEN 1 ELSE 0 END, {index}, g.video_id",
        [key],
    )
    out = []
    for video_id, video_name, viewers, *counts in rows:
        n = _int(viewers)
        if n == 0:
            continue
        ok = n >= MIN_CELL and all(c is not None for c in counts)
        out.append(
            {
                "video_id": video_id,
                "name": video_name or video_id,
                "viewers": n if n >= MIN_CELL else None,
                "shown": shown(n),
                "still_watching": [round(_int(c) / n, 4) for c in counts] if ok else None,
            }
        )
    return out


# -- the endpoints -------------------------------------------------------------------------------
@router.get(
    "/courses/{course_id:path}/dashboard",
    summary="The course dashboard's sections: overview, demographics, geography, engagement, performance (aggregates only; counts under 5 withheld)",
)
def course_dashboard(course_id: str, wh: Warehouse = Depends(warehouse_view)) -> Any:
    key = resolve(wh, course_id)
    week = weekly(wh, key)
    return jsonable_encoder(
        {
            "course_key": key,
            "small_cells": {"min_learners": MIN_CELL, "shown_as": WITHHELD},
            "overview": {"funnel": funnel(wh, key), "enrolment": enrolment_by_mode(wh, key), "weekly": week},
            "demographics": demographics(wh, key),
            "geography": geography(wh, key),
            "engagement": {"weekly": weekly(wh, key), "chapters": chapters(wh, key)},
            "performance": {"grades": grades(wh, key), "problems": problems(wh, key), "videos": videos(wh, key)},
        }
    )


@router.get(
    "/dashboard/courses", summary="Every course with its key figures, for the dashboard's table across courses (counts under 5 withheld)"
)
def across_courses(wh: Warehouse = Depends(warehouse_view)) -> Any:
    figures: dict[str, dict[str, Any]] = {}
    if _has(wh, "person_course"):
        have = set(wh.columns("person_course"))
        stages = [s for s in FUNNEL if s in have]
        extra = [c for c in ("nplay_video", "nproblem_check", "nforum_posts") if c in have]
        grade = "avg(CASE WHEN grade IS NOT NULL THEN CAST(grade AS DOUBLE PRECISION) END)" if "grade" in have else "NULL"
        countries = "count(DISTINCT nullif(cc_by_ip, ''))" if "cc_by_ip" in have else "0"
        sql = (
            f"SELECT course_key, {', '.join(_flag(wh.quote(s)) for s in stages)}"
            f"{''.join(f', sum({wh.quote(c)})' for c in extra)}, {grade}, {countries} FROM person_course GROUP BY course_key"
        )
        for key, *values in wh.query(sql):
            row: dict[str, Any] = {s: one(_int(v)) for s, v in zip(stages, values, strict=False)}
            n = _int(values[0]) if stages else 0
            for c, v in zip(extra, values[len(stages) :], strict=False):
                row[c] = _int(v) if n >= MIN_CELL else None
            mean_grade = values[len(stages) + len(extra)]
            row["mean_grade"] = round(float(mean_grade), 4) if mean_grade is not None and n >= MIN_CELL else None
            row["countries"] = _int(values[-1]) if n >= MIN_CELL else None
            figures[key] = row
    days: dict[str, tuple[Any, Any]] = {}
    if _has(wh, "person_course_day"):
        days = {k: (a, b) for k, a, b in wh.query("SELECT course_key, min(date), max(date) FROM person_course_day GROUP BY course_key")}
    courses: list[dict[str, Any]] = []
    for key in sorted(_known_keys(wh)):
        info = _info(wh, key)
        first, last = days.get(key, (None, None))
        courses.append(
            {
                "course_key": key,
                "course_ids": _ids(wh, key),
                "display_name": info.get("display_name"),
                "start_date": info.get("start_date"),
                "first_activity": iso(first),
                "last_activity": iso(last),
                **{s: None for s in FUNNEL},
                **figures.get(key, {s: 0 for s in FUNNEL}),
            }
        )
    for course in courses:
        course["shown"] = {s: shown(course[s]) if course[s] is not None else WITHHELD for s in FUNNEL if s in course}
    return jsonable_encoder({"small_cells": {"min_learners": MIN_CELL, "shown_as": WITHHELD}, "courses": courses})
