"""Courses: the list, per-course figures, the structure JSON and person_course.

Figures come from the derived tables (person_course, person_course_day), never from scanning
events; until PersonCourse has run, enrolments and certificates come from the Database State
tables, and each figure names its source. Course ids are accepted in every form.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response

from optimus import courses as course_ids
from optimus.api.auth import require_token
from optimus.api.small_cells import breakdown
from optimus.api.state import MAX_ID, iso, warehouse_view
from optimus.warehouse import Warehouse
from optimus.warehouse.base import raw_table

router = APIRouter(tags=["courses"])

_KEY = re.compile(r"^[^+/\s]+\+[^+/\s]+\+[^+/\s]+(?:\+ccx@\d+)?$")


def course_key_of(text: str) -> str | None:
    """The course_key of any id form (`course-v1:...`, `org/course/run`) or of a key itself."""
    key = course_ids.course_key(text)
    if key:
        return key
    text = text.strip()
    return text if _KEY.match(text) else None


def _known_keys(wh: Warehouse) -> set[str]:
    keys: set[str] = set()
    for table in ("course_ids", "ingest_files", "courses", "person_course"):
        if wh.table_exists(table):
            keys.update(k for (k,) in wh.query(f"SELECT DISTINCT course_key FROM {wh.quote(table)} WHERE course_key IS NOT NULL"))
    return keys


def resolve(wh: Warehouse, text: str) -> str:
    """The course_key of a known course, or 404."""
    key = course_key_of(text)
    if key is None or key not in _known_keys(wh):
        raise HTTPException(404, f"no course {text!r} in the warehouse")
    return key


def _ids(wh: Warehouse, key: str) -> list[str]:
    if not wh.table_exists("course_ids"):
        return []
    return [r[0] for r in wh.query("SELECT course_id FROM course_ids WHERE course_key = ? ORDER BY form DESC, course_id", [key])]


def _info(wh: Warehouse, key: str) -> dict[str, Any]:
    info: dict[str, Any] = {"display_name": None, "start_date": None, "end_date": None}
    if wh.table_exists("courses"):
        rows = wh.query_dicts("SELECT display_name, start_date, end_date FROM courses WHERE course_key = ? LIMIT 1", [key])
        if rows:
            info = {k: iso(v) if k != "display_name" else v for k, v in rows[0].items()}
    return info


def _series(rows: list[tuple], name: str) -> list[dict[str, Any]]:
    return [{"date": iso(d), name: int(n)} for d, n in rows if d is not None]


# -- the figures ---------------------------------------------------------------------------------
def enrolments(wh: Warehouse, key: str) -> dict[str, Any]:
    """Learners registered in the course, in total and by the day they enrolled."""
    if wh.table_exists("person_course"):
        base = "FROM person_course WHERE course_key = ? AND CAST(registered AS INTEGER) = 1"
        total = wh.scalar(f"SELECT count(*) {base}", [key])
        by_day = wh.query(f"SELECT CAST(start_time AS DATE) AS d, count(*) {base} AND start_time IS NOT NULL GROUP BY 1 ORDER BY 1", [key])
        return {"source": "person_course", "total": int(total or 0), "by_day": _series(by_day, "count")}
    if wh.table_exists("student_courseenrollment", schema=wh.raw_schema):
        first = f"SELECT user_id, min(created) AS created FROM {raw_table(wh, 'student_courseenrollment')} WHERE course_key = ? GROUP BY user_id"
        total = wh.scalar(f"SELECT count(*) FROM ({first}) e", [key])
        by_day = wh.query(
            f"SELECT CAST(created AS DATE) AS d, count(*) FROM ({first}) e WHERE created IS NOT NULL GROUP BY 1 ORDER BY 1", [key]
        )
        return {"source": "student_courseenrollment", "total": int(total or 0), "by_day": _series(by_day, "count")}
    return {"source": None, "total": 0, "by_day": []}


def active_learners(wh: Warehouse, key: str) -> dict[str, Any]:
    """Distinct learners with activity, per day (person_course_day)."""
    if not wh.table_exists("person_course_day"):
        return {"source": None, "by_day": []}
    rows = wh.query("SELECT date, count(DISTINCT user_id) FROM person_course_day WHERE course_key = ? GROUP BY date ORDER BY date", [key])
    return {"source": "person_course_day", "by_day": _series(rows, "learners")}


def certificates(wh: Warehouse, key: str) -> dict[str, Any]:
    """Certified learners, in total and (where the date is known) by the day the certificate was made."""
    if wh.table_exists("person_course"):
        base = "FROM person_course WHERE course_key = ? AND CAST(certified AS INTEGER) = 1"
        total = wh.scalar(f"SELECT count(*) {base}", [key])
        by_day: list[tuple] = []
        if "cert_created_date" in wh.columns("person_course"):
            by_day = wh.query(f"SELECT CAST(cert_created_date AS DATE) AS d, count(*) {base} GROUP BY 1 ORDER BY 1", [key])
        return {"source": "person_course", "total": int(total or 0), "by_day": _series(by_day, "count")}
    if wh.table_exists("certificates_generatedcertificate", schema=wh.raw_schema):
        base = f"FROM {raw_table(wh, 'certificates_generatedcertificate')} WHERE course_key = ? AND status = 'downloadable'"
        total = wh.scalar(f"SELECT count(DISTINCT user_id) {base}", [key])
        by_day = wh.query(f"SELECT CAST(created_date AS DATE) AS d, count(DISTINCT user_id) {base} GROUP BY 1 ORDER BY 1", [key])
        return {"source": "certificates_generatedcertificate", "total": int(total or 0), "by_day": _series(by_day, "count")}
    return {"source": None, "total": 0, "by_day": []}


def countries(wh: Warehouse, key: str) -> dict[str, Any]:
    """Registered learners by country (from their events' IP addresses, as person_course has it); small counts withheld."""
    if not wh.table_exists("person_course"):
        return {"source": None, "by_country": [], "unknown": 0}
    columns = set(wh.columns("person_course"))
    column = next((c for c in ("countryLabel", "cc_by_ip", "final_cc_cname") if c in columns), None)
    if column is None:
        return {"source": None, "by_country": [], "unknown": 0}
    col = wh.quote(column)
    rows = wh.query(
        f"SELECT {col}, count(*) FROM person_course WHERE course_key = ? AND {col} IS NOT NULL AND {col} <> '' "
        f"GROUP BY {col} ORDER BY 2 DESC, 1",
        [key],
    )
    unknown = wh.scalar(f"SELECT count(*) FROM person_course WHERE course_key = ? AND ({col} IS NULL OR {col} = '')", [key])
    # counts of 1-4 learners withheld (null), as on the dashboard's endpoints (insights.breakdown; docs/dashboard.md, "Small cells")
    cells = breakdown([(c, int(n)) for c, n in rows] + [("", int(unknown or 0))])
    return {
        "source": f"person_course.{column}",
        "by_country": [{"country": cell["label"], "learners": cell["learners"]} for cell in cells[:-1]],
        "unknown": cells[-1]["learners"],
    }


# -- the endpoints -------------------------------------------------------------------------------
@router.get("/courses", summary="Every course in the warehouse, with its ids and headline figures")
def list_courses(wh: Warehouse = Depends(warehouse_view)) -> dict[str, Any]:
    result = []
    for key in sorted(_known_keys(wh)):
        result.append(
            {
                "course_key": key,
                "course_ids": _ids(wh, key),
                **_info(wh, key),
                "enrolments": enrolments(wh, key)["total"],
                "certificates": certificates(wh, key)["total"],
            }
        )
    return {"courses": result}


@router.get("/courses/{course_id:path}/structure", summary="The course structure JSON (as written to www/course_structure)")
def structure(course_id: str, request: Request, wh: Warehouse = Depends(warehouse_view)) -> Response:
    key = resolve(wh, course_id)
    parsed = course_ids.parse("course-v1:" + key)
    assert parsed is not None
    folder = request.app.state.settings.www_path / "course_structure"
    path = folder / f"{parsed.file_form}.json"
    if not path.is_file():
        raise HTTPException(404, f"no course structure for {key} yet ({path.name} not in {folder})")
    return Response(path.read_bytes(), media_type="application/json")


def rows_response(
    wh: Warehouse, key: str, table: str, order_by: list[str], format: str, limit: int, offset: int, columns: list[str] | None = None
) -> Response:
    """One page of a per-course table's rows, as JSON (with the total) or CSV (total in X-Total-Count)."""
    q = wh.quote
    columns = columns or wh.columns(table)
    total = int(wh.scalar(f"SELECT count(*) FROM {q(table)} WHERE course_key = ?", [key]) or 0)
    rows = wh.query_dicts(
        f"SELECT {', '.join(q(c) for c in columns)} FROM {q(table)} WHERE course_key = ? "
        f"ORDER BY {', '.join(q(c) for c in order_by)} LIMIT ? OFFSET ?",
        [key, limit, offset],
    )
    if format == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(columns)
        writer.writerows([["" if r.get(c) is None else r.get(c) for c in columns] for r in rows])
        return Response(
            buffer.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"X-Total-Count": str(total), "Content-Disposition": f'attachment; filename="{table}_{key}.csv"'},
        )
    return JSONResponse(
        jsonable_encoder(
            {"course_key": key, "table": table, "total": total, "limit": limit, "offset": offset, "columns": columns, "rows": rows}
        )
    )


@router.get(
    "/courses/{course_id:path}/person_course",
    summary="The course's person_course rows (needs the token)",
    dependencies=[Depends(require_token)],
)
def person_course(
    course_id: str,
    format: Literal["json", "csv"] = Query("json", description="json or csv"),
    limit: int = Query(1000, ge=1, le=100000),
    offset: int = Query(0, ge=0, le=MAX_ID),
    wh: Warehouse = Depends(warehouse_view),
) -> Response:
    key = resolve(wh, course_id)
    if not wh.table_exists("person_course"):
        raise HTTPException(404, "person_course has not been built yet (PersonCourse has not run)")
    return rows_response(wh, key, "person_course", ["user_id"], format, limit, offset)


@router.get("/courses/{course_id:path}", summary="A course's enrolments, active learners per day, certificates and countries")
def course(course_id: str, wh: Warehouse = Depends(warehouse_view)) -> dict[str, Any]:
    key = resolve(wh, course_id)
    return {
        "course_key": key,
        "course_ids": _ids(wh, key),
        **_info(wh, key),
        "enrolments": enrolments(wh, key),
        "active_learners": active_learners(wh, key),
        "certificates": certificates(wh, key),
        "countries": countries(wh, key),
    }
