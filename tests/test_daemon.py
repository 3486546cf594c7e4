"""`optimus run` as a real process on a temporary data path and port.

A file written slowly is not taken half-written; it is ingested within the scan interval once
complete; `optimus status` works through the API meanwhile; SIGTERM exits 0 with a consistent
ledger; a second daemon is refused; a stale lock is replaced; a file interrupted mid-transaction
is rolled back and queued again.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from conftest import make_data_path, query_rows, reading, settings_env
from optimus.config import Settings
from optimus.daemon import lock_path, running_daemon
from optimus.sample import generate
from optimus.services import load_services
from optimus.warehouse.base import raw_table

TOKEN = "daemon-test-token"
RESCAN = 6  # seconds between scans
SETTLE = 2.5  # seconds a file must stay unchanged


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def optimus_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "optimus", *args]


def env_for(settings: Settings, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTIMUS_")}
    env.update(settings_env(settings))
    env.update(OPTIMUS_API_PORT=str(port), OPTIMUS_API_TOKEN=TOKEN, OPTIMUS_RESCAN_INTERVAL=str(RESCAN), **extra)
    return env


class Daemon:
    """One `optimus run` process and its API."""

    def __init__(self, settings: Settings, tmp: Path, name: str = "daemon", **extra: str) -> None:
        self.port = free_port()
        self.env = env_for(settings, self.port, **extra)
        self.log = tmp / f"{name}.log"
        self.proc = subprocess.Popen(
            optimus_cmd("run", "--settle", str(SETTLE), "--log-format", "json"),
            env=self.env,
            cwd=tmp,
            stdout=subprocess.DEVNULL,
            stderr=open(self.log, "wb"),
        )

    def get(self, path: str, token: bool = True) -> Any:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", headers={"Authorization": f"Bearer {TOKEN}"} if token else {})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def wait(self, check: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"the daemon exited ({self.proc.returncode}) while waiting for {what}:\n{self.log.read_text()}")
            try:
                value = check()
            except OSError:
                value = None
            if value:
                return value
            time.sleep(0.1)
        pytest.fail(f"timed out waiting for {what}:\n{self.log.read_text()[-4000:]}")

    def ready(self) -> None:
        self.wait(lambda: self.get("/api/v1/health")["ready"], 60, "the API")

    def idle(self) -> None:
        """Nothing queued or running, and no scan or run in progress."""

        def check() -> bool:
            health = self.get("/api/v1/health")
            if not health["scans"] or health["settling"]:
                return False
            services = self.get("/api/v1/services")
            return not services["daemon"]["busy"] and all(s["queued"] == 0 and s["running"] == 0 for s in services["services"])

        self.wait(check, 120, "the daemon to be idle")

    def file(self, path: Path) -> dict[str, Any] | None:
        files = self.get("/api/v1/files?limit=1000")["files"]
        return next((f for f in files if f["path"] == str(path.resolve())), None)

    def terminate(self, timeout: float = 15) -> tuple[int, float]:
        start = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        return code, time.monotonic() - start

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def json_lines(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def sample_path(tmp: Path) -> tuple[Path, bytes, int]:
    """A one-day sample package whose event file is taken out (to be written slowly later):
    the data path, the event file's bytes, and the distinct events it holds."""
    root = tmp / "data"
    manifest = generate(root, courses=1, learners=8, days=1, seed=3, malformed=False)
    (events_file,) = manifest["events"]["files"]
    path = root / events_file["path"]
    content = gzip.decompress(path.read_bytes())
    path.unlink()
    return root, content, int(manifest["events"]["distinct"])


def tsv(rows: int, start: int = 1) -> bytes:
    lines = ["id\tusername\temail\tis_staff\tis_active\tdate_joined"]
    lines += [f"{i}\tlearner{i}\tlearner{i}@example.org\t0\t1\t2024-01-0{1 + i % 9} 10:00:00" for i in range(start, start + rows)]
    return ("\n".join(lines) + "\n").encode()


def consistent_ledger(settings: Settings) -> dict[str, int]:
    """Nothing left running; every done file's rows are in its table; returns file states."""
    with reading(settings) as wh:
        states = dict(wh.query("SELECT state, count(*) FROM ingest_files GROUP BY state"))
        assert states.get("running", 0) == 0
        assert wh.scalar("SELECT count(*) FROM service_runs WHERE status = 'running'") == 0
        for file_id, table, rows in wh.query(
            "SELECT id, table_name, rows_loaded FROM ingest_files WHERE state = 'done' AND service = 'DatabaseState'"
        ):
            assert wh.scalar(f"SELECT count(*) FROM {raw_table(wh, table)} WHERE file_id = ?", [file_id]) == rows, (file_id, table)
        if wh.table_exists("event_files"):
            for file_id, state in wh.query("SELECT id, state FROM ingest_files WHERE service = 'Clickstream'"):
                held = wh.scalar("SELECT count(*) FROM event_files WHERE file_id = ?", [file_id])
                assert (held > 0) == (state == "done"), (file_id, state, held)
        return {k: int(v) for k, v in states.items()}


@pytest.mark.slow
def test_daemon_waits_for_a_file_being_written_then_ingests_it(tmp_path: Path, settings_for: Any) -> None:
    events = "events" in load_services()["Clickstream"].claims
    if events:
        data, content, expected_rows = sample_path(tmp_path)
        target = data / "clickstream_logs" / "events" / "UQx-edx-events-2024-03-04.log"
    else:  # until Clickstream claims event files, a Database State table shows the same
        data = make_data_path(tmp_path / "data")
        (data / "database_state" / "2024-01-07" / "UQx-DEMO101x-2024_1-auth_user-prod-analytics.sql").write_bytes(tsv(5))
        content, expected_rows = tsv(400, start=100), 400
        target = data / "database_state" / "latest" / "UQx-DEMO101x-2024_1-student_courseenrollment-prod-analytics.sql"
    settings = settings_for(data, api_token=TOKEN)
    daemon = Daemon(settings, tmp_path)
    try:
        daemon.ready()
        daemon.idle()
        assert daemon.get("/", token=False) == {"response": "Ingestion running", "statuscode": 200}
        # `optimus status` works while the daemon holds the warehouse, through the API
        status = subprocess.run(optimus_cmd("status", "--json"), env=daemon.env, cwd=tmp_path, capture_output=True, timeout=60)
        assert status.returncode == 0, status.stderr.decode()
        remote = json.loads(status.stdout)["services"]
        api = {s["name"]: s for s in daemon.get("/api/v1/services")["services"]}
        assert {n: s["done"] for n, s in remote.items()} == {n: s["done"] for n, s in api.items()}
        assert api["DatabaseState"]["done"] > 0
        query = subprocess.run(
            optimus_cmd("sql", "--csv", "SELECT count(*) AS n FROM ingest_files"),
            env=daemon.env,
            cwd=tmp_path,
            capture_output=True,
            timeout=60,
        )
        assert query.returncode == 0, query.stderr.decode()
        assert query.stdout.decode().split() == ["n", str(daemon.get("/api/v1/files?limit=1")["total"])]

        # half now: a scan sees it and waits for it to settle
        half = len(content) // 2
        with open(target, "wb") as fh:
            fh.write(content[:half])
        daemon.wait(lambda: str(target.resolve()) in daemon.get("/api/v1/health")["settling"], 30, "a scan to see the half file")
        assert daemon.file(target) is None, "a file still being written was registered"
        # the rest, before it settles
        with open(target, "ab") as fh:
            fh.write(content[half:])
        written = time.monotonic()
        entry = daemon.wait(lambda: (f := daemon.file(target)) and f["state"] == "done" and f, RESCAN + 10, "the file to be ingested")
        assert time.monotonic() - written < RESCAN + 2, "not ingested within the scan interval"
        assert entry["attempts"] == 1 and entry["rows_loaded"] == expected_rows and entry["rows_quarantined"] == 0
        assert entry["size"] == len(content)
        # `optimus ingest` asks the daemon to scan instead of opening the warehouse
        before = daemon.get("/api/v1/health")["scans"]
        ingest = subprocess.run(optimus_cmd("ingest"), env=daemon.env, cwd=tmp_path, capture_output=True, timeout=60)
        assert ingest.returncode == 0 and b"asked it to scan" in ingest.stdout, ingest.stderr.decode()
        daemon.wait(lambda: daemon.get("/api/v1/health")["scans"] > before, 10, "the scan /newdata asked for")
        # a file that fails: `optimus ingest` through the daemon exits 1 while it is failed; status --files lists it
        broken = data / "database_state" / "latest" / "UQx-OTHER101x-2024_1-auth_user-prod-analytics.sql"
        broken.write_bytes(b"")
        daemon.wait(lambda: (f := daemon.file(broken)) and f["state"] == "failed", RESCAN + 10, "the empty file to fail")
        ingest = subprocess.run(optimus_cmd("ingest"), env=daemon.env, cwd=tmp_path, capture_output=True, timeout=60)
        assert ingest.returncode == 1 and b"1 file(s) failed" in ingest.stdout, ingest.stdout.decode()
        listed = subprocess.run(optimus_cmd("status", "--files", "--json"), env=daemon.env, cwd=tmp_path, capture_output=True, timeout=60)
        assert [(f["path"], f["state"]) for f in json.loads(listed.stdout)["files"]] == [(str(broken.resolve()), "failed")]
        broken.write_bytes(tsv(3))  # re-delivered whole: the daemon queues it again by itself
        daemon.wait(lambda: (f := daemon.file(broken)) and f["state"] == "done", RESCAN + 10, "the re-delivered file to load")

        # a second daemon on the same warehouse is refused, clearly
        second = subprocess.run(optimus_cmd("run"), env=env_for(settings, free_port()), cwd=tmp_path, capture_output=True, timeout=60)
        assert second.returncode != 0
        assert b"another Optimus daemon" in second.stderr and str(daemon.proc.pid).encode() in second.stderr
        daemon.idle()
        code, seconds = daemon.terminate()
        assert code == 0 and seconds < 8, daemon.log.read_text()
    finally:
        daemon.kill()
    assert running_daemon(settings) is None
    states = consistent_ledger(settings)
    assert states.get("queued", 0) == 0 and states.get("failed", 0) == 0
    assert query_rows(settings, "SELECT fingerprint FROM ingest_files WHERE path = ?", [str(target.resolve())]) == [
        (hashlib.sha1(content).hexdigest(),)
    ]
    lines = json_lines(daemon.log)
    assert lines and all({"time", "level", "message"} <= set(line) for line in lines)
    assert any(target.name in line["message"] and "ingested" in line["message"] for line in lines)


@pytest.mark.slow
def test_sigterm_mid_file_rolls_it_back_and_a_restart_ingests_it(tmp_path: Path, settings_for: Any) -> None:
    data = make_data_path(tmp_path / "data")
    package = data / "database_state" / "2024-01-07"
    (package / "UQx-DEMO101x-2024_1-auth_user-prod-analytics.sql").write_bytes(tsv(1200))
    settings = settings_for(data, api_token=TOKEN)
    marker = tmp_path / "paused"
    daemon = Daemon(settings, tmp_path, OPTIMUS_TEST_PAUSE_AFTER_ROWS="1000", OPTIMUS_TEST_PAUSE_MARKER=str(marker))
    try:
        daemon.wait(lambda: marker.exists(), 60, "the file to be mid-transaction")
        assert daemon.get("/status", token=False)["response"]["DatabaseState"]["status"] == "running"
        code, seconds = daemon.terminate()
        assert code == 0 and seconds < 10, daemon.log.read_text()
    finally:
        daemon.kill()
    states = consistent_ledger(settings)
    assert states == {"queued": 1}
    with reading(settings) as wh:
        assert not wh.table_exists("auth_user", schema=wh.raw_schema) or wh.scalar("SELECT count(*) FROM edx.auth_user") == 0
    # a new daemon takes the queued file and ingests it whole
    again = Daemon(settings, tmp_path, name="again")
    try:
        again.ready()
        again.idle()
        (entry,) = again.get("/api/v1/files")["files"]
        assert entry["state"] == "done" and entry["rows_loaded"] == 1200
        assert again.terminate()[0] == 0
    finally:
        again.kill()
    assert consistent_ledger(settings) == {"done": 1}


@pytest.mark.slow
def test_a_stale_lock_from_a_killed_daemon_is_replaced(tmp_path: Path, settings_for: Any) -> None:
    data = make_data_path(tmp_path / "data")
    (data / "database_state" / "2024-01-07" / "UQx-DEMO101x-2024_1-auth_user-prod-analytics.sql").write_bytes(tsv(3))
    settings = settings_for(data, api_token=TOKEN)
    first = Daemon(settings, tmp_path, name="first")
    try:
        first.ready()
        first.proc.kill()  # SIGKILL: no cleanup, the lock file stays behind
        first.proc.wait()
        assert lock_path(settings).exists() and json.loads(lock_path(settings).read_text())["pid"] == first.proc.pid
        assert running_daemon(settings) is None  # recognised as stale
        second = Daemon(settings, tmp_path, name="second")
        try:
            second.ready()
            second.idle()
            assert json.loads(lock_path(settings).read_text())["pid"] == second.proc.pid
            assert any("stale" in line["message"] for line in json_lines(second.log))
            assert second.terminate()[0] == 0
        finally:
            second.kill()
    finally:
        first.kill()
    assert consistent_ledger(settings) == {"done": 1}
    shutil.rmtree(tmp_path / "data")
