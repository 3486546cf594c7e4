"""Research summaries per course, built from the research tables (services/course_tables.py): open
endpoints that serve one row per course item (a problem, a video), never a row per learner; the
per-learner rows are at `/courses/{id}/tables/{table}`, with the token.

Registered before the courses router: its `/courses/{course_id:path}` would take these paths.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.encoders import jsonable_encoder

from optimus.api.courses import resolve
from optimus.api.state import warehouse_view
from optimus.services.course_tables import Table
from optimus.services.problem_analysis import COURSE_PROBLEM
from optimus.services.problem_events import ANSWER_DISTRIBUTION, FIRST_ATTEMPT
from optimus.warehouse import Warehouse

router = APIRouter(tags=["research"])


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
