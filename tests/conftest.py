"""Shared test fixtures: real data folders in tmp_path, real DuckDB files, the real CLI."""
from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from typer.testing import CliRunner

from optimus.cli import app
from optimus.config import Settings

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("OPTIMUS_TEST_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures" / "json_to_relation"

# a real PostgreSQL server (pg_url) and the duckdb/postgres `backend` parametrisation
pytest_plugins = ["postgres_server"]


@pytest.fixture
def fixtures_dir() -> Path:
    """The real edX events of ../shared/fixtures/json_to_relation (read there, never copied)."""
    if not FIXTURES.is_dir():
        pytest.fail(f"shared fixtures not found at {FIXTURES} (set OPTIMUS_TEST_SHARED)")
    return FIXTURES


def make_data_path(root: Path, package: str = "2024-01-07") -> Path:
    """An empty data path in the original's layout, with `latest` links."""
    (root / "clickstream_logs" / "events").mkdir(parents=True, exist_ok=True)
    (root / "database_state" / package).mkdir(parents=True, exist_ok=True)
    for link, target in (("clickstream_logs/latest", "events"), ("database_state/latest", package)):
        path = root / link
        if path.is_symlink() or path.exists():
            path.unlink()
        path.symlink_to(target)
    return root


@pytest.fixture
def data_path(tmp_path: Path) -> Path:
    return make_data_path(tmp_path / "data")


@pytest.fixture
def settings_for(tmp_path: Path) -> Callable[..., Settings]:
    """Settings for a data path, with the warehouse, exports and www inside tmp_path."""

    def make(data: Path, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_paths": [data],
            "warehouse": str(tmp_path / "wh" / "optimus.duckdb"),
            "export_path": tmp_path / "exports",
            "www_path": tmp_path / "www",
            "memory_limit": "1GB",
        }
        values.update(overrides)
        return Settings(**values)

    return make


def settings_env(settings: Settings) -> dict[str, str]:
    """The same settings as OPTIMUS_* variables, for the CLI and for subprocesses."""
    import json

    return {
        "OPTIMUS_DATA_PATHS": json.dumps([str(p) for p in settings.data_paths]),
        "OPTIMUS_WAREHOUSE": settings.warehouse,
        "OPTIMUS_EXPORT_PATH": str(settings.export_path),
        "OPTIMUS_WWW_PATH": str(settings.www_path),
        "OPTIMUS_MEMORY_LIMIT": settings.memory_limit,
    }


@pytest.fixture
def cli() -> Callable[..., Any]:
    """Run `optimus ARGS` in-process through Click's runner, with settings from `settings` as env."""
    runner = CliRunner()

    def invoke(args: list[str], settings: Settings | None = None, env: dict[str, str] | None = None) -> Any:
        # the runner overlays env on os.environ: unset any OPTIMUS_* setting the test did not give
        full_env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("OPTIMUS_") and not k.startswith("OPTIMUS_TEST")}
        if settings is not None:
            full_env.update(settings_env(settings))
        full_env.update(env or {})
        return runner.invoke(app, args, env=full_env, catch_exceptions=False)

    return invoke


def ingest_sample(root: Path, **settings: Any) -> Settings:
    """A sample package (2 courses) in root/data, ingested once by the real CLI into root/wh."""
    from optimus.sample import generate

    generate(root / "data", courses=2, learners=30, days=3, seed=7)
    values: dict[str, Any] = {
        "data_paths": [root / "data"], "warehouse": str(root / "wh" / "optimus.duckdb"), "export_path": root / "exports",
        "www_path": root / "www", "memory_limit": "1GB",
    }
    result = CliRunner().invoke(app, ["ingest"], env=settings_env(Settings(**{**values, **settings})), catch_exceptions=False)
    assert "DatabaseState" in result.output, result.output
    return Settings(**{**values, **settings})


@contextmanager
def serve_on_loopback(asgi_app: Any) -> Iterator[str]:
    """The app served by a real uvicorn server on 127.0.0.1 (a thread of this process); yields its base URL."""
    import uvicorn

    from bench.api_load import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(asgi_app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                                           lifespan="on", timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, name="test-api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
