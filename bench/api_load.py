"""The API under load: N concurrent clients on loopback against a real `optimus run` daemon while
it ingests a sample package. Used by the benchmark (latency percentiles, requests/s) and by the
test suite (every request answered, no error); bounded in clients, seconds and per-request time.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import httpx

# what a dashboard and a status poller ask for, open endpoints only (no token needed)
PATHS = ("/", "/status", "/api/v1/services", "/api/v1/files?limit=20", "/api/v1/courses", "/api/v1/throughput", "/api/v1/health", "/ui/")
REQUEST_TIMEOUT = 30.0  # seconds: a request not answered by then counts as an error


@dataclass
class LoadResult:
    """What the clients saw: one latency per answered request, the failures, and the daemon's state."""

    clients: int
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    busy_seen: int = 0  # answers of /api/v1/services that said the daemon was ingesting

    @property
    def requests(self) -> int:
        return len(self.latencies)

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else 0.0

    def as_dict(self) -> dict:
        return {
            "clients": self.clients,
            "seconds": round(self.seconds, 2),
            "requests": self.requests,
            "requests_per_second": round(self.requests / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(self.percentile(50) * 1000, 1),
            "p95_ms": round(self.percentile(95) * 1000, 1),
            "p99_ms": round(self.percentile(99) * 1000, 1),
            "max_ms": round(max(self.latencies, default=0) * 1000, 1),
            "mean_ms": round(statistics.fmean(self.latencies) * 1000, 1) if self.latencies else 0.0,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "errors": len(self.errors),
            "busy_seen": self.busy_seen,
        }


async def _client(http: httpx.AsyncClient, index: int, until: float, result: LoadResult) -> None:
    import httpx

    n = index
    while time.monotonic() < until:
        path = PATHS[n % len(PATHS)]
        n += 1
        started = time.monotonic()
        try:
            answer = await http.get(path)
        except httpx.HTTPError as exc:
            result.errors.append(f"{path}: {type(exc).__name__} after {time.monotonic() - started:.1f}s")
            continue
        result.latencies.append(time.monotonic() - started)
        result.statuses[answer.status_code] = result.statuses.get(answer.status_code, 0) + 1
        if answer.status_code != 200:
            result.errors.append(f"{path}: {answer.status_code} {answer.text[:200]}")
        elif path == "/api/v1/services" and answer.json()["daemon"]["busy"]:
            result.busy_seen += 1


def hammer(base_url: str, clients: int, seconds: float, timeout: float = REQUEST_TIMEOUT) -> LoadResult:
    """`clients` clients, each with its own connection, asking one request after another for `seconds`
    (a request started before the end may run on, up to `timeout`)."""
    result = LoadResult(clients=clients)

    async def main() -> None:
        import httpx

        # one client, one connection per task (a client each would spend seconds making SSL contexts)
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits) as http:
            until = time.monotonic() + seconds
            await asyncio.gather(*(_client(http, i, until, result) for i in range(clients)))

    started = time.monotonic()
    asyncio.run(main())
    result.seconds = time.monotonic() - started
    return result


# -- a daemon ingesting a sample package ---------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str, timeout: float = 5.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as answer:
        return json.loads(answer.read())


@contextmanager
def daemon_ingesting(data: Path, work: Path, startup_seconds: float = 60.0) -> Iterator[str]:
    """An `optimus run` process on `data` with a fresh warehouse in `work`, listening on loopback;
    yields its base URL once its API is ready (it starts ingesting at once) and stops it afterwards."""
    data, work = data.resolve(), work.resolve()  # the daemon runs in `work`
    work.mkdir(parents=True, exist_ok=True)
    for name in ("wh.duckdb", "wh.duckdb.wal"):
        (work / name).unlink(missing_ok=True)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTIMUS_")}
    env.update(
        {
            "OPTIMUS_DATA_PATHS": json.dumps([str(data)]),
            "OPTIMUS_WAREHOUSE": str(work / "wh.duckdb"),
            "OPTIMUS_EXPORT_PATH": str(work / "exports"),
            "OPTIMUS_WWW_PATH": str(work / "www"),
            "OPTIMUS_API_HOST": "127.0.0.1",
            "OPTIMUS_API_PORT": str(port),
            "OPTIMUS_RESCAN_INTERVAL": "3600",
            "OPTIMUS_MEMORY_LIMIT": "1GB",
        }
    )
    log = work / "daemon.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "optimus", "run", "--settle", "0", "--no-watch"],
            env=env,
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_seconds
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the daemon exited ({proc.returncode}): {log.read_text()[-3000:]}")
            try:
                if get_json(base_url + "/api/v1/health").get("ready"):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the daemon's API did not answer within {startup_seconds:.0f}s: {log.read_text()[-3000:]}")
            time.sleep(0.05)
        yield base_url
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def api_load_figure(data: Path, work: Path, clients: int, seconds: float) -> dict:
    """The API under `clients` clients for `seconds` while a daemon ingests `data`: percentiles and requests/s."""
    with daemon_ingesting(data, work) as base_url:
        result = hammer(base_url, clients, seconds)
    return {**result.as_dict(), "during": "an ingest of the sample package", "sample_errors": result.errors[:5]}
