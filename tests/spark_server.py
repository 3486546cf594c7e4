"""A pytest plugin giving tests a real Spark (a local JVM, one per test session).

Fixtures: `spark_master` (session: the master URL, `local[2]`, after checking that pyspark and Java
are here: skipped without them, failed under CI=true) and `spark_lake` (a Spark warehouse in the
test's tmp_path: Settings overrides for `settings_for`, as `backend` gives for the other engines).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

SPARK_MASTER = "local[2]"


@pytest.fixture(scope="session")
def spark_master() -> str:
    """The master the Spark tests compute on; the JVM starts at the first statement that needs it
    and serves the whole session (warehouse/spark_session.py: getOrCreate)."""
    missing = [
        what
        for what, ok in (("pyspark", importlib.util.find_spec("pyspark") is not None), ("java", shutil.which("java") is not None))
        if not ok
    ]
    if missing:
        message = f"the Spark tests need {' and '.join(missing)} (./scripts/setup-env test installs them)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return SPARK_MASTER


@pytest.fixture
def spark_lake(spark_master: str, tmp_path: Path) -> dict[str, Any]:
    """Settings overrides for a Spark warehouse whose lake is tmp_path/lake."""
    return {"warehouse": f"spark:///{tmp_path / 'lake'}", "spark_master": spark_master}
