"""A pytest plugin giving tests a real Spark (a local JVM, one per test session).

`require_spark()` is the one check that pyspark and Java are here (every Spark fixture calls it: the
local master here, the standalone cluster of spark_cluster.py, conftest's `spark` session): without
them the test is skipped, saying why; under CI=true it fails.
Fixtures: `spark_master` (session: the master URL, `local[2]`) and `spark_lake` (a Spark warehouse in
the test's tmp_path: Settings overrides for `settings_for`, as `backend` gives for the other engines).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from conftest import required_part_missing

SPARK_MASTER = "local[2]"


def require_spark() -> Path:
    """pyspark's `bin/spark-class` (the launcher Spark's own sbin scripts call), once pyspark and a Java
    to run it are known to be here; else skip (fail under CI=true), saying what to install."""
    spec = importlib.util.find_spec("pyspark")
    if spec is None or spec.origin is None:
        required_part_missing("the Spark tests need pyspark: pip install -e '.[spark]' (./scripts/setup-env test installs it)")
    script = Path(str(spec.origin)).parent / "bin" / "spark-class"
    if not script.is_file():
        required_part_missing(f"pyspark has no {script}: reinstall it (pip install -e '.[spark]')")
    if not (os.environ.get("JAVA_HOME") or shutil.which("java")):
        required_part_missing(
            "the Spark tests need Java 17: Debian's openjdk-17-jre-headless (./scripts/setup-env test installs it), or set JAVA_HOME"
        )
    return script


@pytest.fixture(scope="session")
def spark_master() -> str:
    """The master the Spark tests compute on; the JVM starts at the first statement that needs it
    and serves the whole session (warehouse/spark_session.py: getOrCreate)."""
    require_spark()
    return SPARK_MASTER


@pytest.fixture
def spark_lake(spark_master: str, tmp_path: Path) -> dict[str, Any]:
    """Settings overrides for a Spark warehouse whose lake is tmp_path/lake."""
    return {"warehouse": f"spark:///{tmp_path / 'lake'}", "spark_master": spark_master}
