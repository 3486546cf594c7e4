"""The file ledger: every registered file and its state; one file with its quarantined lines."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from optimus import ledger
from optimus.api.auth import require_token
from optimus.api.courses import course_key_of
from optimus.api.services import _services
from optimus.api.state import MAX_ID, iso, warehouse_view
from optimus.warehouse import Warehouse

router = APIRouter(tags=["files"])

QUARANTINE_TABLES = ("events_quarantine", "db_state_quarantine", "forum_quarantine")
_COLUMNS = (
    "id, path, service, kind, course_id, course_key, site, table_name, file_date, package_date, size, state, "
    "rows_loaded, rows_quarantined, coalesce(coerced, 0) AS coerced, error, damage, note, attempts, registered_at, started_at, finished_at"
)


def _row(r: dict[str, Any]) -> dict[str, Any]:
    return {k: (iso(v) if k.endswith(("_at", "_date")) else v) for k, v in r.items()}


@router.get("/files", summary="Registered files, filtered by state, service and course (paginated)")
def files(
    state: str | None = Query(None, description=f"One of {', '.join(ledger.STATES)}."),
    service: str | None = Query(None, description="A service name, e.g. DatabaseState."),
    course: str | None = Query(None, description="A course id in either form, or its course_key."),
    attention: bool = Query(
        False, description="Only files worth a look: failed, damaged, or with quarantined lines or coerced values (failed first)."
    ),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=MAX_ID),
    wh: Warehouse = Depends(warehouse_view),
) -> dict[str, Any]:
    where: list[str] = []
    params: list[Any] = []
    if state is not None:
        if state not in ledger.STATES:
            raise HTTPException(422, f"state must be one of {', '.join(ledger.STATES)}, not {state!r}")
        where.append("state = ?")
        params.append(state)
    if service is not None:
        known = [name for name, _n, _c in _services()]
        if service not in known:
            raise HTTPException(422, f"unknown service {service!r} (known: {', '.join(known)})")
        where.append("service = ?")
        params.append(service)
    if course is not None:
        key = course_key_of(course)
        if key is None:
            raise HTTPException(422, f"not a course id: {course!r} (use course-v1:org+course+run, org/course/run or org+course+run)")
        where.append("course_key = ?")
        params.append(key)
    if attention:
        where.append(ledger.ATTENTION)
    if not wh.table_exists("ingest_files"):
        return {"total": 0, "limit": limit, "offset": offset, "files": []}
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    order = ledger.ATTENTION_ORDER if attention else "id"
    total = int(wh.scalar(f"SELECT count(*) FROM ingest_files{clause}", params) or 0)
    rows = wh.query_dicts(f"SELECT {_COLUMNS} FROM ingest_files{clause} ORDER BY {order} LIMIT ? OFFSET ?", params + [limit, offset])
    return {"total": total, "limit": limit, "offset": offset, "files": [_row(r) for r in rows]}


@router.get(
    "/files/{file_id}", summary="One file, with its first 100 quarantined lines (needs the token)", dependencies=[Depends(require_token)]
)
def file(file_id: int = Path(..., ge=1, le=MAX_ID), wh: Warehouse = Depends(warehouse_view)) -> dict[str, Any]:
    rows = wh.query_dicts(f"SELECT {_COLUMNS} FROM ingest_files WHERE id = ?", [file_id]) if wh.table_exists("ingest_files") else []
    if not rows:
        raise HTTPException(404, f"no file with id {file_id}")
    quarantined: list[dict[str, Any]] = []
    for table in QUARANTINE_TABLES:
        if len(quarantined) >= 100 or not wh.table_exists(table):
            continue
        if not {"file_id", "line", "reason", "raw"} <= set(wh.columns(table)):
            continue
        for line, reason, raw in wh.query(
            f"SELECT line, reason, raw FROM {wh.quote(table)} WHERE file_id = ? ORDER BY line LIMIT ?", [file_id, 100 - len(quarantined)]
        ):
            quarantined.append({"line": line, "reason": reason, "raw": raw})
    return {**_row(rows[0]), "quarantined": quarantined}
