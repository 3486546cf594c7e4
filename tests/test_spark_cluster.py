"""Optimus on a real Spark standalone cluster (issue 21): a master and one worker started by the test
(tests/spark_cluster.py), on loopback. The drivers run in subprocesses (one SparkContext per process:
the test process may hold a `local[N]` one), and every test checks the work ran on the worker: the
application is listed by the master and the worker's work folder holds its executors' logs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from conftest import assert_same_rows, data_tables_of, ingest_sample, optimus_process
from spark_cluster import SparkCluster, applications, executor_logs, spark_env

# a plain job: squares summed by Python workers on the executor, a sum by Spark SQL in the executor's JVM, and
# which Python the executor's workers run (spark_session sets the driver's own, PYSPARK_PYTHON being unset here)
PLAIN_JOB = """
import json, sys
from optimus.warehouse.spark_session import spark_session

spark = spark_session(sys.argv[1], sys.argv[2])
n = int(sys.argv[3])
squares = spark.sparkContext.parallelize(range(n), 4).map(lambda x: x * x).sum()
tripled = spark.range(n).selectExpr("sum(id * 3) AS s").collect()[0]["s"]
pythons = spark.sparkContext.parallelize(range(4), 4).map(lambda _: sys.executable).distinct().collect()
print(json.dumps({"app": spark.sparkContext.applicationId, "squares": squares, "tripled": tripled, "pythons": pythons}))
spark.stop()
"""


def finished_on_the_worker(cluster: SparkCluster, app_id: str) -> dict[str, Any]:
    """The master's record of an application once it completed; asserts its executors ran tasks on the worker."""
    deadline = time.monotonic() + 30
    while (app := applications(cluster).get(app_id)) is None or app.get("state") != "FINISHED":
        assert time.monotonic() < deadline, f"the master does not list {app_id} as finished: {app}"
        time.sleep(0.5)
    logs = executor_logs(cluster, app_id)
    assert logs, f"no executor log of {app_id} under {cluster.work_dir}"
    text = "".join(log.read_text(errors="replace") for log in logs)
    assert "Finished task" in text, f"the executors of {app_id} ran no task:\n{text[-2000:]}"
    return app


def test_a_plain_job_through_the_master_runs_on_the_worker(spark_cluster: SparkCluster) -> None:
    name = f"optimus-test-{uuid.uuid4().hex[:8]}"
    n = 10_000
    done = subprocess.run(
        [sys.executable, "-c", PLAIN_JOB, spark_cluster.master, name, str(n)],
        env={**{k: v for k, v in os.environ.items() if k != "PYSPARK_PYTHON"}, **spark_env()},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["squares"] == sum(i * i for i in range(n))
    assert answer["tripled"] == 3 * sum(range(n))
    assert answer["pythons"] == [sys.executable]
    app = finished_on_the_worker(spark_cluster, answer["app"])
    assert app["name"] == name


def test_ingest_through_the_master_equals_duckdb(spark_cluster: SparkCluster, tmp_path: Path, settings_for) -> None:
    """`optimus ingest` of the sample package with the warehouse on the cluster: every table equals DuckDB's."""
    duck = ingest_sample(tmp_path / "duck")  # the reference, on DuckDB (in this process: no Spark here)
    lake = tmp_path / "lake"
    on_cluster = settings_for(
        duck.data_paths[0], warehouse=f"spark:///{lake}", spark_master=spark_cluster.master, export_path=tmp_path / "exports"
    )
    before = set(applications(spark_cluster))
    proc = optimus_process(on_cluster, **spark_env())  # settings_env passes spark_master
    output = proc.communicate(timeout=900)[0].decode(errors="replace")
    assert proc.returncode == 0, output[-5000:]

    new = sorted(set(applications(spark_cluster)) - before)
    assert new, "the ingest ran no application on the cluster"
    for app_id in new:
        finished_on_the_worker(spark_cluster, app_id)
    assert (lake / "_catalog.duckdb").is_file()

    # read back in this process with a local master: the lake is the same whoever reads it, and this process
    # must not hold a SparkContext bound to the cluster (the local[N] tests share it)
    reader = settings_for(duck.data_paths[0], warehouse=on_cluster.warehouse, spark_master="local[2]")
    tables = assert_same_rows(reader, duck, data_tables_of(duck))
    assert {"main.events", "main.person_course", "edx.auth_user"} <= set(tables)
