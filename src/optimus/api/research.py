"""Research summaries of one course built from the research tables (services/course_tables.py).

Routes here are registered before courses.py's `/courses/{course_id:path}` (which would take any
longer path). They serve summaries with no per-learner row, so they are open like the course
figures; per-learner tables stay behind the token at `/courses/{id}/tables/{table}`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.encoders import jsonable_encoder

from optimus.api.courses import resolve
from optimus.api.state import warehouse_view
from optimus.services.video_analysis import VIDEO_AXIS, VIDEO_ENGAGEMENT, VIDEO_STATS
from optimus.warehouse import Warehouse

router = APIRouter(tags=["research"])

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
