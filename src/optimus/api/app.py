"""The API application: one router per resource, the dashboard under /ui/, OpenAPI at /docs."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse

from optimus.api import auth, compat, courses, dashboard, files, insights, research, services, sql
from optimus.api.limits import BodyLimit
from optimus.api.state import API_THREADS, ReadViews, ServerState, ViewsBusy
from optimus.config import Settings


def create_app(settings: Settings, views: ReadViews, state: ServerState | None = None) -> FastAPI:
    """The API over a warehouse's read views; `state` is the daemon's (None: a read-only server).

    :param views: the pool of read views every request borrows one from.
    """

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        import anyio.to_thread

        # a small pool: reads stay quick and never crowd the ingest for cores
        anyio.to_thread.current_default_thread_limiter().total_tokens = API_THREADS
        yield

    app = FastAPI(
        title="Optimus",
        description="Where ingestion of the edX research data package stands, and what it produced.",
        version="1",
        lifespan=lifespan,
        docs_url=None,  # served by the dashboard's router, from the installed package (no CDN)
        redoc_url=None,  # ReDoc would load from a CDN
    )
    app.state.settings = settings
    app.state.views = views
    app.state.server = state or ServerState(mode="serve", ready=True)

    @app.exception_handler(RequestValidationError)
    async def _bad_params(_request: Request, exc: RequestValidationError) -> JSONResponse:
        reasons = [f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'query')}: {e.get('msg')}" for e in exc.errors()]
        return JSONResponse({"detail": "; ".join(reasons)}, status_code=422)

    @app.exception_handler(ViewsBusy)
    async def _busy(_request: Request, exc: ViewsBusy) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": str(exc.retry_after)})

    # outermost: bodies are bounded (and a missing token refused) before anything reads them
    app.add_middleware(BodyLimit, api=app)

    gate = [Depends(auth.open_access)]
    app.include_router(compat.router, dependencies=gate)
    # research and insights before courses: their /courses/{id}/videos, /problems, /time_on_task, /dashboard would be
    # taken by /courses/{course_id:path}
    for module in (services, files, research, insights, courses, sql):
        app.include_router(module.router, prefix="/api/v1", dependencies=gate)
    app.include_router(dashboard.router)

    @app.get("/ui", include_in_schema=False)
    def _ui() -> RedirectResponse:
        return RedirectResponse("/ui/")

    return app
