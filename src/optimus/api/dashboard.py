"""The dashboard under /ui/: static HTML and JavaScript, with Plotly's bundle served from the
installed `plotly` package (never a CDN: the page works with no internet)."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, Response

router = APIRouter(include_in_schema=False)

STATIC = Path(__file__).with_name("static")
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


@lru_cache(maxsize=1)
def plotly_bundle() -> bytes:
    """plotly.min.js as shipped inside the plotly Python package."""
    return resources.files("plotly").joinpath("package_data", "plotly.min.js").read_bytes()


@router.get("/ui/")
def index() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type=_TYPES[".html"], headers={"Cache-Control": "no-cache"})


@router.get("/ui/plotly.min.js")
def plotly() -> Response:
    return Response(plotly_bundle(), media_type=_TYPES[".js"], headers={"Cache-Control": "max-age=86400"})


@router.get("/ui/{name}")
def asset(name: str) -> FileResponse:
    path = STATIC / name
    if "/" in name or name.startswith(".") or path.suffix not in _TYPES or not path.is_file():
        raise HTTPException(404, f"no {name} in the dashboard")
    return FileResponse(path, media_type=_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})
