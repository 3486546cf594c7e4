"""The one place a Spark session is made (issue 21): loopback binding, ANSI SQL with double-quoted
identifiers (the shared SQL quotes names as standard SQL does), UTC, naive timestamps (DuckDB's and
PostgreSQL's TIMESTAMP), few shuffle partitions, the executors' Python. One JVM per process:
getOrCreate reuses it."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# the settings every Optimus Spark session runs with; a caller's `conf` adds to them
BASE_CONF: dict[str, str] = {
    # the driver holds the catalog tables handed to Spark and one long session's views: Spark's default
    # heap of 1 GB ran out in the test session (many warehouses in one JVM); a ceiling, not a reservation
    "spark.driver.memory": "4g",
    "spark.sql.ansi.enabled": "true",
    "spark.sql.ansi.doubleQuotedIdentifiers": "true",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
    # JSON naming a key twice is valid JSON to DuckDB and PostgreSQL: try_parse_json must not read it as NULL
    # (dialects/spark.py parses JSON into VARIANTs)
    "spark.sql.variant.allowDuplicateKeys": "true",
    "spark.sql.shuffle.partitions": "4",
    "spark.sql.adaptive.enabled": "true",
    # dynamic partition pruning's optimizer rule walked Clickstream's parse statement (one big INSERT ...
    # SELECT) twice per statement (query, then write), ~17 s in all on a quiet machine, pruning nothing (docs/spark.md)
    "spark.sql.optimizer.dynamicPartitionPruning.enabled": "false",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
}


def spark_session(master: str = "local[*]", app_name: str = "optimus", conf: Mapping[str, str] | None = None) -> SparkSession:
    """A Spark session on `master` (local[N], spark://host:port); the driver binds to loopback unless
    SPARK_LOCAL_IP says otherwise (Spark picks a non-loopback address by default).

    The executors' Python workers run this interpreter (the one with optimus and pyarrow) unless
    PYSPARK_PYTHON says otherwise: PySpark's default is whatever `python3` is on the PATH. The driver
    sends that path to every executor, so on a cluster whose nodes install Python elsewhere, set
    PYSPARK_PYTHON (or spark.pyspark.python) to the nodes' path (docs/spark.md)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError as exc:  # the default install stays light
        from optimus.errors import WarehouseError

        raise WarehouseError("the Spark warehouse needs pyspark: pip install 'optimus[spark]' (and Java 17)") from exc
    local_ip = os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.master(master).appName(app_name)
    settings = {**BASE_CONF, "spark.driver.host": local_ip, "spark.driver.bindAddress": local_ip, **(conf or {})}
    for key, value in settings.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session
