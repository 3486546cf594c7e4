"""The dashboard under /ui/: static HTML and JavaScript, with Plotly's bundle served from the
installed `plotly` package (never a CDN: the page works with no internet); and the API's docs
under /docs, Swagger UI served the same way from the installed `swagger-ui-bundle-v2` package."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import FileResponse, HTMLResponse, Response

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


@lru_cache(maxsize=1)
def world_shapes() -> bytes:
    """The world map's country shapes (GeoJSON, ids ISO alpha-2), kept in the package (scripts/vendor-world-atlas)."""
    return resources.files("optimus").joinpath("data", "world-countries-110m.geojson").read_bytes()


@router.get("/ui/world/countries-110m.geojson")
def world() -> Response:
    """Served from here, so the map needs no CDN (Plotly's own geo data would come from one)."""
    return Response(world_shapes(), media_type="application/geo+json", headers={"Cache-Control": "max-age=86400"})


# Plotly fetches its base-layer file `{topojsonURL}world_110m.json` for any geo trace, even with every base
# layer off (as the dashboard's map has them): this answers with the layers it asks for, all empty
_LAYERS = ("coastlines", "land", "ocean", "lakes", "rivers", "countries", "subunits")
EMPTY_TOPOLOGY: dict[str, object] = {
    "type": "Topology",
    "arcs": [],
    "objects": {name: {"type": "GeometryCollection", "geometries": []} for name in _LAYERS},
}


@router.get("/ui/world/world_110m.json")
def plotly_base_layers() -> dict[str, object]:
    return EMPTY_TOPOLOGY


@router.get("/ui/{name}")
def asset(name: str) -> FileResponse:
    path = STATIC / name
    if "/" in name or name.startswith(".") or path.suffix not in _TYPES or not path.is_file():
        raise HTTPException(404, f"no {name} in the dashboard")
    return FileResponse(path, media_type=_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})


# -- /docs: Swagger UI from the installed package ----------------------------------------------------
DOCS_ASSETS = {
    "swagger-ui-bundle.js": _TYPES[".js"],
    "swagger-ui.css": _TYPES[".css"],
    "favicon-32x32.png": "image/png",
}


def swagger_ui_folder() -> Path:
    """Swagger UI's files as shipped inside the swagger-ui-bundle-v2 package (module `swagger_ui_bundle`)."""
    import swagger_ui_bundle

    return Path(str(swagger_ui_bundle.swagger_ui_path))


@router.get("/docs")
def docs() -> HTMLResponse:
    """Swagger UI over /openapi.json, every asset from this server (no CDN; the validator badge, which
    would send the spec to swagger.io, is off)."""
    return get_swagger_ui_html(
        openapi_url="/openapi.json",
        title="Optimus API",
        swagger_js_url="/docs/assets/swagger-ui-bundle.js",
        swagger_css_url="/docs/assets/swagger-ui.css",
        swagger_favicon_url="/docs/assets/favicon-32x32.png",
        oauth2_redirect_url="/docs/oauth2-redirect",
        swagger_ui_parameters={"validatorUrl": None},
    )


@router.get("/docs/oauth2-redirect")
def docs_oauth2_redirect() -> HTMLResponse:
    return get_swagger_ui_oauth2_redirect_html()


@router.get("/docs/assets/{name}")
def docs_asset(name: str) -> FileResponse:
    if name not in DOCS_ASSETS:  # a fixed list: a name from the request never reaches the file system
        raise HTTPException(404, f"no {name} in the API docs")
    return FileResponse(swagger_ui_folder() / name, media_type=DOCS_ASSETS[name], headers={"Cache-Control": "max-age=86400"})
