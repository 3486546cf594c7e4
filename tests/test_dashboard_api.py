"""The dashboard's endpoints (api/insights.py) give the same figures on DuckDB and PostgreSQL: one SQL per meaning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from optimus.config import Settings


def dashboard_answers(settings: Settings) -> dict[str, Any]:
    """Every course's /dashboard and the table across courses, as the API answers them on this warehouse."""
    from fastapi.testclient import TestClient

    from optimus.api.app import create_app
    from optimus.api.state import ReadViews
    from optimus.warehouse import connect

    wh = connect(settings)
    try:
        with TestClient(create_app(settings, ReadViews(settings, wh, size=2))) as client:
            keys = [c["course_key"] for c in client.get("/api/v1/courses").json()["courses"]]
            out: dict[str, Any] = {key: client.get(f"/api/v1/courses/{key}/dashboard").json() for key in keys}
            out["across"] = client.get("/api/v1/dashboard/courses").json()
            return out
    finally:
        wh.close()


@pytest.mark.postgres
def test_dashboard_figures_are_equal_on_duckdb_and_postgres(tmp_path: Path, settings_for: Any, cli: Any, pg_url: str) -> None:
    from optimus.sample import generate

    data = tmp_path / "sample"
    generate(data, courses=2, learners=30, days=3, seed=11)
    duck = settings_for(data, export_path=tmp_path / "exports_duckdb")
    pg = settings_for(data, warehouse=pg_url, export_path=tmp_path / "exports_postgres")
    for settings in (duck, pg):
        result = cli(["ingest"], settings)
        assert result.exit_code == 0, result.output
    on_duck, on_pg = dashboard_answers(duck), dashboard_answers(pg)
    assert on_pg == on_duck
    courses = [v for k, v in on_duck.items() if k != "across"]
    assert len(courses) == 2
    for d in courses:  # not trivially equal: every section has figures
        assert d["overview"]["funnel"][0]["learners"] and d["overview"]["enrolment"]["by_day"] and d["engagement"]["weekly"]
        assert any(c["learners"] for c in d["demographics"]["gender"]) and d["geography"]["countries"]
        assert (
            any(b["learners"] for b in d["performance"]["grades"]["bins"]) and d["performance"]["problems"] and d["performance"]["videos"]
        )
        assert any(c["learners"] for c in d["engagement"]["chapters"])
