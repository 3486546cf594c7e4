"""The original ingestor's endpoints, with its exact shapes, so that its clients keep working."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from optimus.api.services import services_status
from optimus.api.state import ServerState, warehouse_view
from optimus.warehouse import Warehouse

router = APIRouter(tags=["compatible with the original"])

_FIELDS = ("name", "status", "task", "file", "startdate", "lastcompletedate", "tasksleft")


@router.get("/", summary="Is ingestion running")
async def root(request: Request) -> dict[str, Any]:
    # async: answered on the event loop, so it answers even when every worker thread is busy
    state: ServerState = request.app.state.server
    if state.mode == "daemon":
        return {"response": "Ingestion running", "statuscode": 200}
    return {"response": "Ingestion not running (read-only server)", "statuscode": 200}


@router.get("/status", summary="Per service: name, status, task, file, startdate, lastcompletedate, tasksleft")
def status(request: Request, wh: Warehouse = Depends(warehouse_view)) -> dict[str, Any]:
    rows = services_status(wh, request.app.state.settings, request.app.state.server)
    # tasksleft counts the files still queued (the original reported something else)
    return {"response": {r["name"]: {**{k: r.get(k) for k in _FIELDS[:-1]}, "tasksleft": r["queued"]} for r in rows}}


@router.get("/newdata", summary="Scan the data paths now and queue new files")
@router.post("/newdata", summary="Scan the data paths now and queue new files", operation_id="newdata_post")
def newdata(request: Request) -> JSONResponse:
    state: ServerState = request.app.state.server
    if state.mode != "daemon" or state.request_scan is None:
        return JSONResponse({"response": "Not ingesting: this is a read-only server (optimus serve)", "statuscode": 409}, status_code=409)
    state.request_scan()
    return JSONResponse({"response": "Scanning for new data", "statuscode": 200})
