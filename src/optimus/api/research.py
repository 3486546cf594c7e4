"""The research tables of issue 17 served per course, in the shape a dashboard reads (the generic
`/courses/{id}/tables/{table}` serves every table's rows as they are).

Each resource is its own function, so that routes added beside it stay apart. Routes here are
registered before the courses router, whose `/courses/{course_id:path}` would otherwise take them.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from optimus.api.auth import check_token
from optimus.api.courses import resolve, rows_response
from optimus.api.state import MAX_ID, warehouse_view
from optimus.services.time_on_task import TIME_COLUMNS, TIME_ON_TASK
from optimus.warehouse import Warehouse

router = APIRouter(tags=["research tables"])


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
