"""`optimus recompute` is a run of the pipeline: Pipeline.recompute forces the derived services
through run_once, hands them what to rebuild for that run only, and refuses what it cannot do."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import ingest_sample
from optimus.errors import OptimusError
from optimus.pipeline import Pipeline
from optimus.warehouse import connect


def test_recompute_runs_every_derived_service_once_and_for_that_run_only(tmp_path: Path) -> None:
    settings = ingest_sample(tmp_path)
    wh = connect(settings)
    try:
        pipeline = Pipeline(settings, wh)
        pipeline.setup()
        derived = [n for n in pipeline.active if pipeline.services[n].is_derived()]
        assert {"IPToCountry", "TimeFinder", "PersonCourse"} <= set(derived)

        summary = pipeline.recompute()
        assert [s.service for s in summary.services] == derived  # forced although nothing changed, in dependency order
        assert not summary.failed, [(s.service, s.error) for s in summary.services]
        assert all(service.recompute is None for service in pipeline.services.values())  # for one run only
        assert pipeline.run_once().services == []  # an ordinary run afterwards: nothing to do

        one = pipeline.recompute(["PersonCourse"], {"course-v1:NoSuch+X+1"})
        assert [s.service for s in one.services] == ["PersonCourse"]

        with pytest.raises(OptimusError, match="not a derived service"):
            pipeline.recompute(["Clickstream"])
        with pytest.raises(OptimusError, match="unknown service 'NoSuch'"):
            pipeline.recompute(["NoSuch"])
    finally:
        wh.close()
