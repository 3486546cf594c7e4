"""The kill loop of the hardening suite (issue 14): random SIGKILLs of `optimus ingest` on a sample package,
each followed by a rerun; every table, and the export folder, equals a clean run's.

Each round takes a fresh warehouse and export folder, kills one to three ingests in a row (at a
random moment, after a random number of uncommitted rows, or at a random pause point of the export
path), then lets a last ingest finish, and compares both ways (EXCEPT ALL) with an uninterrupted run.
A few seeded rounds run in the test command; more with OPTIMUS_KILL_LOOP=50 (and another seed with
OPTIMUS_KILL_LOOP_SEED).
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import RUN_RECORDS, assert_same_exports, assert_same_tables, kill_when_paused, optimus_process
from optimus.config import Settings
from optimus.sample import generate

ROUNDS = int(os.environ.get("OPTIMUS_KILL_LOOP", "3"))
SEED = int(os.environ.get("OPTIMUS_KILL_LOOP_SEED", "14"))
EXPORT_POINTS = {"export-writing": 8, "export-written": 2, "export-committed": 2, "export-publishing": 6}  # point: most k


def sample_settings(root: Path, name: str) -> Settings:
    return Settings(
        data_paths=[root / "data"],
        warehouse=str(root / f"{name}.duckdb"),
        export_path=root / f"{name}-exports",
        www_path=root / f"{name}-www",
        memory_limit="1GB",
    )


@pytest.fixture(scope="module")
def clean(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("kill-loop")
    generate(root / "data", courses=2, learners=40, days=3, seed=7)
    settings = sample_settings(root, "clean")
    started = time.monotonic()
    proc = optimus_process(settings)
    assert proc.wait(180) == 0, proc.stdout.read().decode()
    return {"root": root, "settings": settings, "seconds": time.monotonic() - started}


def kill_once(settings: Settings, rng: random.Random, marker: Path, seconds: float) -> str:
    """One ingest, killed the way `rng` picks; returns what happened (for the failure message)."""
    how = rng.choice(["time", "rows", "export"])
    if how == "time":
        delay = rng.uniform(0.2, seconds)
        proc = optimus_process(settings)
        try:
            proc.wait(delay)
            return f"finished before the kill at {delay:.2f}s"
        except Exception:  # subprocess.TimeoutExpired: still running, as intended
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return f"killed at {delay:.2f}s"
    if how == "rows":
        env = {"OPTIMUS_TEST_PAUSE_AFTER_ROWS": str(rng.randint(1, 150))}
    else:
        point = rng.choice(sorted(EXPORT_POINTS))
        env = {"OPTIMUS_TEST_PAUSE_AT": f"{point}#{rng.randint(1, EXPORT_POINTS[point])}"}
    proc = optimus_process(settings, OPTIMUS_TEST_PAUSE_MARKER=str(marker), **env)
    killed = kill_when_paused(proc, marker, timeout=180)
    return f"{'killed' if killed else 'finished, never paused'} at {env}"


@pytest.mark.parametrize("round_no", range(ROUNDS))
def test_killed_ingests_then_a_rerun_equal_a_clean_run(clean: dict[str, Any], round_no: int) -> None:
    rng = random.Random(f"{SEED}-{round_no}")
    root = clean["root"]
    settings = sample_settings(root, f"round{round_no}")
    history = [kill_once(settings, rng, root / f"paused-{round_no}", clean["seconds"]) for _ in range(rng.randint(1, 3))]
    print(f"round {round_no}: {history}")  # shown with -s, and on a failure
    rerun = optimus_process(settings)
    output = rerun.communicate(timeout=180)[0].decode()
    assert rerun.returncode == 0, f"after {history}: {output}"
    try:
        assert_same_tables(settings.warehouse, clean["settings"].warehouse, ignore=RUN_RECORDS)
        assert_same_exports(Path(settings.export_path), Path(clean["settings"].export_path))
    except AssertionError as exc:
        raise AssertionError(f"after {history}: {exc}") from None
