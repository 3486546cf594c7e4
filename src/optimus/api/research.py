"""Research summaries of one course, in the shape a dashboard reads, built from the research tables
(services/course_tables.py); the generic `/courses/{id}/tables/{table}` serves every table's rows as they are.

Routes here are registered before courses.py's `/courses/{course_id:path}` (which would take any
longer path). Each resource is its own function. Summaries hold no per-learner row, so they are open
like the course figures; per-learner rows need the token.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from optimus.api.auth import check_token
from optimus.api.courses import resolve, rows_response
from optimus.api.state import MAX_ID, warehouse_view
from optimus.services import research_tables
from optimus.services.course_tables import Table
from optimus.services.problem_analysis import COURSE_PROBLEM
from optimus.services.problem_events import ANSWER_DISTRIBUTION, FIRST_ATTEMPT
from optimus.services.time_on_task import TIME_COLUMNS, TIME_ON_TASK
from optimus.services.video_analysis import VIDEO_AXIS, VIDEO_ENGAGEMENT, VIDEO_STATS
from optimus.warehouse import Warehouse

router = APIRouter(tags=["research"])


# first: /courses/{id}/tables/{table} must not be read as course `{id}/tables` by the routes below
@router.get("/tables", summary="The research tables kept per course: columns, service, whether rows are per learner")
def tables() -> dict[str, Any]:
    return {
        "tables": [
            {"name": t.name, "service": cls.name, "personal": t.personal, "columns": list(t.columns), "dictionary": cls.dictionary}
            for _name, (cls, t) in sorted(research_tables().items())
        ]
    }


@router.get(
    "/courses/{course_id:path}/tables/{table}",
    summary="A research table's rows for the course (a per-learner table needs the token)",
)
def course_table(
    course_id: str,
    table: str,
    request: Request,
    format: Literal["json", "csv"] = Query("json", description="json or csv"),
    limit: int = Query(1000, ge=1, le=100000),
    offset: int = Query(0, ge=0, le=MAX_ID),
    wh: Warehouse = Depends(warehouse_view),
) -> Response:
    found = research_tables().get(table)  # the name is only ever looked up, never quoted into SQL unchecked
    if found is None:
        raise HTTPException(404, f"no research table {table!r} (GET /api/v1/tables lists them)")
    service, declared = found
    if declared.personal:
        check_token(request)
    key = resolve(wh, course_id)
    if not wh.table_exists(declared.name):
        raise HTTPException(404, f"{declared.name} has not been built yet ({service.name} has not run)")
    return rows_response(wh, key, declared.name, list(declared.order_by), format, limit, offset, list(declared.columns))


_STATS = ("videos_viewed", "videos_watched")
_ENGAGEMENT = tuple(c for c in VIDEO_ENGAGEMENT.columns if c not in ("course_key", "course_id", "video_id", "video_length"))


@router.get("/courses/{course_id:path}/videos", summary="Per video: video_axis with video_stats and video_engagement (no per-learner rows)")
def videos(course_id: str, wh: Warehouse = Depends(warehouse_view)) -> Any:
    key = resolve(wh, course_id)
    if not all(wh.table_exists(t.name) for t in (VIDEO_AXIS, VIDEO_STATS, VIDEO_ENGAGEMENT)):
        raise HTTPException(404, "the video tables have not been built yet (VideoAnalysis has not run)")
    q = wh.quote
    axis = ", ".join(f"a.{q(c)}" for c in VIDEO_AXIS.columns if c != "course_key")
    stats = ", ".join(f"s.{q(c)}" for c in _STATS)
    engagement = ", ".join(f"g.{q(c)}" for c in _ENGAGEMENT)
    joined = (
        f"SELECT {axis}, {stats}, {engagement} FROM video_axis a "
        "LEFT JOIN video_stats s ON s.course_key = a.course_key AND s.video_id = a.video_id "
        "LEFT JOIN video_engagement g ON g.course_key = a.course_key AND g.video_id = a.video_id "
        "WHERE a.course_key = ? ORDER BY a.index_video, a.video_id"
    )
    # video ids of the events that name no video of the axis (a video since deleted, another course's id)
    other = (
        f"SELECT g.video_id, g.video_length, {stats}, {engagement} FROM video_engagement g "
        "LEFT JOIN video_stats s ON s.course_key = g.course_key AND s.video_id = g.video_id "
        "WHERE g.course_key = ? AND NOT EXISTS (SELECT 1 FROM video_axis a WHERE a.course_key = g.course_key AND a.video_id = g.video_id) "
        "ORDER BY g.video_id"
    )
    return jsonable_encoder(
        {
            "course_key": key,
            "dictionary": "docs/tables/video_analysis.md",
            "videos": wh.query_dicts(joined, [key]),
            "videos_not_in_axis": wh.query_dicts(other, [key]),
        }
    )


@router.get(
    "/courses/{course_id:path}/time_on_task",
    summary="Time on task per day: the course's totals over learners, or (per_learner=true, needs the token) the learners' rows",
)
def time_on_task(
    course_id: str,
    request: Request,
    per_learner: bool = Query(False, description="the time_on_task rows, one per learner and day (needs the token)"),
    format: Literal["json", "csv"] = Query("json", description="json or csv (per_learner only)"),
    limit: int = Query(1000, ge=1, le=100000),
    offset: int = Query(0, ge=0, le=MAX_ID),
    wh: Warehouse = Depends(warehouse_view),
) -> Response:
    """Open: per date, the learners with a row and the sum over them of each time column (seconds);
    a learner's own rows only with the token."""
    if per_learner:
        check_token(request)
    key = resolve(wh, course_id)
    if not wh.table_exists(TIME_ON_TASK.name):
        raise HTTPException(404, "time_on_task has not been built yet (TimeOnTask has not run)")
    if per_learner:
        return rows_response(wh, key, TIME_ON_TASK.name, list(TIME_ON_TASK.order_by), format, limit, offset, list(TIME_ON_TASK.columns))
    q = wh.quote
    sums = ", ".join(f"sum({q(c)}) AS {q(c)}" for c in TIME_COLUMNS)
    rows = wh.query_dicts(
        f"SELECT {q('date')}, count(*) AS learners, {sums} FROM {q(TIME_ON_TASK.name)} WHERE course_key = ? "
        f"GROUP BY {q('date')} ORDER BY {q('date')}",
        [key],
    )
    body: dict[str, Any] = {"course_key": key, "unit": "seconds", "days": rows}
    return JSONResponse(jsonable_encoder(body))


def _relation(wh: Warehouse, table: Table) -> str:
    """The table, or an empty relation with its columns when its service has not run yet."""
    if wh.table_exists(table.name):
        return wh.quote(table.name)
    body = ", ".join(f"CAST(NULL AS {t}) AS {wh.quote(c)}" for c, t in table.columns.items())
    return f"(SELECT {body} WHERE 1 = 0)"


def problem_summary(wh: Warehouse, key: str) -> list[dict[str, Any]]:
    """Per problem: course_problem's columns and the events' totals (docs/tables/problem_analysis.md, "The API")."""
    cp, fa, dist = _relation(wh, COURSE_PROBLEM), _relation(wh, FIRST_ATTEMPT), _relation(wh, ANSWER_DISTRIBUTION)
    columns = [c for c in COURSE_PROBLEM.columns if c not in ("course_key", "course_id", "problem_id")]
    sql = f"""
        WITH cp AS (SELECT * FROM {cp} t WHERE course_key = ?),
        ev AS (SELECT problem_url_name, count(*) AS n_learners_checked, count(first_attempt_correct) AS n_first_attempt_known,
                      sum(CASE WHEN first_attempt_correct THEN 1 ELSE 0 END) AS n_first_attempt_correct,
                      sum(CASE WHEN final_correct THEN 1 ELSE 0 END) AS n_final_correct
               FROM {fa} t WHERE course_key = ? AND problem_url_name IS NOT NULL GROUP BY problem_url_name),
        ans AS (SELECT problem_url_name, count(*) AS n_answers FROM {dist} t
                WHERE course_key = ? AND problem_url_name IS NOT NULL GROUP BY problem_url_name)
        SELECT coalesce(cp.problem_id, ev.problem_url_name) AS problem_id, {", ".join(f"cp.{wh.quote(c)}" for c in columns)},
               coalesce(ev.n_learners_checked, 0) AS n_learners_checked, coalesce(ev.n_first_attempt_known, 0) AS n_first_attempt_known,
               coalesce(ev.n_first_attempt_correct, 0) AS n_first_attempt_correct, coalesce(ev.n_final_correct, 0) AS n_final_correct,
               coalesce(ans.n_answers, 0) AS n_answers
        FROM cp FULL OUTER JOIN ev ON ev.problem_url_name = cp.problem_id
        LEFT JOIN ans ON ans.problem_url_name = coalesce(cp.problem_id, ev.problem_url_name)
        ORDER BY CASE WHEN cp.problem_nid IS NULL THEN 1 ELSE 0 END, cp.problem_nid, coalesce(cp.problem_id, ev.problem_url_name)"""
    rows = wh.query_dicts(sql, [key, key, key])
    for row in rows:  # sums come back as the engine's wide integers or decimals: plain ints for JSON
        for name in ("n_learners_checked", "n_first_attempt_known", "n_first_attempt_correct", "n_final_correct", "n_answers"):
            row[name] = int(row[name])
    return rows


@router.get(
    "/courses/{course_id:path}/problems",
    summary="Per problem: course_problem with first-attempt, final and answer totals (no learner rows)",
)
def problems(course_id: str, wh: Warehouse = Depends(warehouse_view)) -> Any:
    key = resolve(wh, course_id)
    return jsonable_encoder({"course_key": key, "problems": problem_summary(wh, key)})
