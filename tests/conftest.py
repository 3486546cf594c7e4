"""Shared test fixtures: real data folders in tmp_path, real DuckDB files, the real CLI."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from typer.testing import CliRunner

from optimus.cli import app
from optimus.config import Settings

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("OPTIMUS_TEST_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures" / "json_to_relation"

# a real PostgreSQL server (pg_url) and the duckdb/postgres `backend` parametrisation
pytest_plugins = ["postgres_server"]

# Property-based (fuzz) tests, defined once for every test file: a bounded number of examples in the
# test command; derandomized under CI=true (the same examples every run: no flaky CI); more with
# `pytest --hypothesis-profile=thorough` (hypothesis' own option) or OPTIMUS_HYPOTHESIS_PROFILE=thorough.
_FUZZ = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large]}
hypothesis_settings.register_profile("dev", max_examples=40, **_FUZZ)
hypothesis_settings.register_profile("ci", max_examples=40, derandomize=True, print_blob=True, **_FUZZ)
hypothesis_settings.register_profile("thorough", max_examples=2000, **_FUZZ)
hypothesis_settings.load_profile(
    os.environ.get("OPTIMUS_HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI", "").lower() == "true" else "dev")
)


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
