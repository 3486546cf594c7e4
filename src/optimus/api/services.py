"""Services, ingestion throughput and health: where ingestion stands (no personal data)."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse

from optimus import ledger
from optimus.api.state import ServerState, ViewsBusy, iso, warehouse_view
from optimus.config import Settings
from optimus.warehouse import Warehouse

router = APIRouter(tags=["services"])


@lru_cache(maxsize=1)
def _services() -> tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...]:
    """(name, needs, claims) of every registered service, in dependency order."""
    from optimus.pipeline import order
    from optimus.services import load_services

    registry = load_services()
    return tuple((name, tuple(registry[name].needs), tuple(registry[name].claims)) for name in order(registry))


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    return (end - start).total_seconds() if start and end else None


def services_status(wh: Warehouse, settings: Settings, state: ServerState) -> list[dict[str, Any]]:
    """Per service: state (stopped/sleeping/running), the queue, what it is doing, and its last run."""
    if not wh.table_exists("ingest_files"):
        counts: dict[str, dict[str, int]] = {}
        running_runs: dict[str, Any] = {}
        running_files: dict[str, tuple[str, Any]] = {}
        last: dict[str, dict[str, Any]] = {}
        completed: dict[str, Any] = {}
    else:
        counts = ledger.counts(wh)
        running_runs = dict(wh.query("SELECT service, min(started_at) FROM service_runs WHERE status = 'running' GROUP BY service"))
        running_files = {s: (p, t) for s, p, t in wh.query("SELECT service, path, started_at FROM ingest_files WHERE state = 'running'")}
        completed = dict(wh.query("SELECT service, max(finished_at) FROM service_runs WHERE status = 'ok' GROUP BY service"))
        last = {
            r["service"]: r
            for r in wh.query_dicts(
                "SELECT id, service, started_at, finished_at, status, files, rows, error FROM ("
                "SELECT *, row_number() OVER (PARTITION BY service ORDER BY id DESC) AS rn FROM service_runs "
                "WHERE status <> 'running') t WHERE rn = 1"
            )
        }
    result = []
    for name, needs, claims in _services():
        c = counts.get(name, {s: 0 for s in ledger.STATES})
        if state.mode != "daemon" or name in settings.ignored_services:
            status = "stopped"
        elif name in running_runs:
            status = "running"
        else:
            status = "sleeping"
        file, file_started = running_files.get(name, (None, None)) if status == "running" else (None, None)
        run = last.get(name)
        last_run = None
        if run:
            seconds = _seconds(run["started_at"], run["finished_at"])
            last_run = {
                "id": run["id"],
                "status": run["status"],
                "started_at": iso(run["started_at"]),
                "finished_at": iso(run["finished_at"]),
                "files": run["files"],
                "rows": run["rows"],
                "seconds": seconds,
                "rows_per_second": round(run["rows"] / seconds, 1) if seconds and seconds > 0 else None,
                "error": run["error"],
            }
        task: str | None
        if status == "running":
            task = "ingesting" if file else "computing"
        else:
            task = "idle" if status == "sleeping" else None
        result.append(
            {
                "name": name,
                "status": status,
                "task": task,
                "file": file,
                "startdate": iso(file_started or running_runs.get(name)) if status == "running" else None,
                "lastcompletedate": iso(completed.get(name)),
                "queued": c["queued"],
                "running": c["running"],
                "done": c["done"],
                "failed": c["failed"],
                "needs": list(needs),
                "claims": list(claims),
                "last_run": last_run,
            }
        )
    return result


@router.get("/services", summary="Every service: state, queue and last run (rows per second)")
def services(request: Request, wh: Warehouse = Depends(warehouse_view)) -> dict[str, Any]:
    state: ServerState = request.app.state.server
    return {
        "services": services_status(wh, request.app.state.settings, state),
        "daemon": {"mode": state.mode, "busy": state.busy, "task": state.task, "last_scan_at": iso(state.last_scan_at)},
    }


_BUCKETS = {"minute": "%Y-%m-%d %H:%M:00", "hour": "%Y-%m-%d %H:00:00", "day": "%Y-%m-%d"}


@router.get("/throughput", summary="Files and rows ingested per minute, hour or day, with rows per second")
def throughput(
    bucket: Literal["minute", "hour", "day"] = Query("hour", description="Width of each point of the series."),
    service: str | None = Query(None, description="Only this service's files."),
    wh: Warehouse = Depends(warehouse_view),
) -> dict[str, Any]:
    sql = "SELECT finished_at, started_at, rows_loaded FROM ingest_files WHERE state = 'done' AND finished_at IS NOT NULL"
    params: list[Any] = []
    if service:
        sql += " AND service = ?"
        params.append(service)
    points: dict[str, dict[str, float]] = {}
    for finished, started, rows in wh.query(sql + " ORDER BY finished_at", params) if wh.table_exists("ingest_files") else []:
        point = points.setdefault(finished.strftime(_BUCKETS[bucket]), {"files": 0, "rows": 0, "seconds": 0.0})
        point["files"] += 1
        point["rows"] += int(rows or 0)
        point["seconds"] += max(0.0, _seconds(started, finished) or 0.0)
    series = [
        {
            "time": t,
            "files": int(p["files"]),
            "rows": int(p["rows"]),
            "seconds": round(p["seconds"], 3),
            "rows_per_second": round(p["rows"] / p["seconds"], 1) if p["seconds"] > 0 else None,
        }
        for t, p in sorted(points.items())
    ]
    return {"bucket": bucket, "series": series}


def _probe(wh: Warehouse) -> int:
    wh.query("SELECT 1")
    return int(wh.scalar("SELECT max(version) FROM schema_info") or 0) if wh.table_exists("schema_info") else 0


@router.get("/health", summary="Ready, warehouse reachable, last scan time")
async def health(request: Request) -> JSONResponse:
    # async: the view is borrowed on the event loop and the probe runs in one worker-thread call
    state: ServerState = request.app.state.server
    body: dict[str, Any] = {
        "ready": state.ready,
        "mode": state.mode,
        "started_at": iso(state.started_at),
        "last_scan_at": iso(state.last_scan_at),
        "last_run_at": iso(state.last_run_at),
        "busy": state.busy,
        "scans": state.scans,
        "settling": list(state.last_scan.get("settling", [])),
    }
    try:
        async with request.app.state.views.borrow() as wh:
            version = await anyio.to_thread.run_sync(_probe, wh)
        body.update(warehouse="reachable", schema_version=version)
    except ViewsBusy as exc:
        body.update(warehouse=f"busy: {exc}", ready=False)
    except Exception as exc:  # health reports the problem rather than failing
        body.update(warehouse=f"unreachable: {exc}", ready=False)
    return JSONResponse(body, status_code=200 if body["ready"] else 503)
