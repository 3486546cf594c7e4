"""A pytest plugin giving tests a real Spark standalone cluster on loopback (never a mock).

The PyPI pyspark has no sbin scripts, so the plugin runs what they run: `bin/spark-class` with
Spark's Master, then one Worker (1 core, 1 GB) registered with it, each in a process group of its
own, bound to 127.0.0.1 (`--host`, and SPARK_LOCAL_IP for the web UIs), on free ports. It waits
until the master's `/json` lists the worker ALIVE, and at the end of the session kills both groups
(the worker's executors with them) and removes their folders.

One SparkContext per Python process: a test that drives this cluster runs its Spark driver
(`optimus ingest`, or a plain job) in a subprocess, so it never meets the `local[N]` context another
test may have made in the test process. Fixture: `spark_cluster` (a SparkCluster). Without pyspark
or Java the tests that use it are skipped, saying why; under CI=true they fail (spark_server.require_spark).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from spark_server import require_spark


class SparkCluster(NamedTuple):
    """A running standalone cluster: where drivers connect, where its state is read, where the worker works."""

    master: str  # spark://127.0.0.1:PORT
    json_url: str  # the master's web UI /json: workers, active and completed applications
    work_dir: Path  # the worker's --work-dir: one folder per application, one per executor, with its logs


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def spark_env() -> dict[str, str]:
    """What the environment of the cluster's processes and of the Spark drivers tests run (`optimus` subprocesses)
    adds: loopback for the master's and worker's web UIs. (The drivers' executors run the driver's Python:
    warehouse/spark_session.py sets PYSPARK_PYTHON unless it is set.)"""
    return {"SPARK_LOCAL_IP": "127.0.0.1"}


def master_state(cluster: SparkCluster) -> dict[str, Any]:
    """The master's /json: its workers and its active and completed applications."""
    with urllib.request.urlopen(cluster.json_url, timeout=5) as response:
        state: dict[str, Any] = json.loads(response.read())
    return state


def applications(cluster: SparkCluster) -> dict[str, dict[str, Any]]:
    """Every application the master has seen (active or completed), by id."""
    state = master_state(cluster)
    return {app["id"]: app for app in [*state.get("activeapps", []), *state.get("completedapps", [])]}


def executor_logs(cluster: SparkCluster, app_id: str) -> list[Path]:
    """The stderr logs the worker's executors of an application wrote (work_dir/<app>/<executor>/stderr)."""
    return sorted((cluster.work_dir / app_id).glob("*/stderr"))


def processes_with(variable: str, value: str) -> list[int]:
    """The processes whose environment holds variable=value: what is left of a killed `optimus` (its Spark
    driver's JVM inherits its OPTIMUS_* settings)."""
    wanted = f"{variable}={value}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if wanted in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
        except OSError:  # gone, or not ours to read
            continue
    return found


def _alive_workers(json_url: str) -> int:
    try:
        with urllib.request.urlopen(json_url, timeout=2) as response:
            state = json.loads(response.read())
    except OSError:
        return 0
    return sum(1 for w in state.get("workers", []) if w.get("state") == "ALIVE")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop a daemon and everything in its process group (a worker's executors), and check nothing is left."""
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(grace)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)  # anyone left in the group?
            except ProcessLookupError:
                return
            time.sleep(0.2)
    raise AssertionError(f"processes of group {proc.pid} ({proc.args[1]}) survived SIGKILL")


@pytest.fixture(scope="session")
def spark_cluster() -> Iterator[SparkCluster]:
    """A standalone master and one worker on 127.0.0.1, for the whole session; stopped at its end."""
    script = require_spark()
    root = Path(tempfile.mkdtemp(prefix="optimus-spark-"))
    work_dir = root / "work"
    work_dir.mkdir()
    env = {**os.environ, **spark_env()}
    port, master_ui, worker_ui = _free_port(), _free_port(), _free_port()
    master_url = f"spark://127.0.0.1:{port}"
    json_url = f"http://127.0.0.1:{master_ui}/json/"
    commands = {
        "master": [
            str(script),
            "org.apache.spark.deploy.master.Master",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--webui-port",
            str(master_ui),
        ],
        "worker": [
            str(script),
            "org.apache.spark.deploy.worker.Worker",
            master_url,
            "--host",
            "127.0.0.1",
            "--cores",
            "1",
            "--memory",
            "1g",
            "--work-dir",
            str(work_dir),
            "--webui-port",
            str(worker_ui),
        ],
    }
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name, argv in commands.items():
            with open(root / f"{name}.log", "wb") as log:
                procs[name] = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while _alive_workers(json_url) < 1:
            ended = [name for name, proc in procs.items() if proc.poll() is not None]
            if ended or time.monotonic() > deadline:
                logs = "\n".join(f"--- {n}.log\n{(root / f'{n}.log').read_text(errors='replace')[-3000:]}" for n in commands)
                pytest.fail(f"the Spark cluster did not come up ({'ended: ' + ', '.join(ended) if ended else 'timed out'}):\n{logs}")
            time.sleep(0.5)
        yield SparkCluster(master_url, json_url, work_dir)
    finally:
        for proc in reversed(list(procs.values())):
            _stop(proc)
        shutil.rmtree(root, ignore_errors=True)
