"""The benchmark suite runs end to end on a tiny package and produces every figure (no timing asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIGURES = {
    "floor_one",
    "ingest_one",
    "floor_all",
    "ingest_all",
    "duckdb_raw",
    "duckdb_declared",
    "python",
    "db_state",
    "read_csv",
    "derived",
}
SPARK_FIGURES = {"ingest_all_spark_local1", "ingest_all_spark_local2"}  # the same ingest on Spark, one core then two


def test_quick_bench_produces_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--skip-postgres", "--cache", str(tmp_path / "cache"), "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(out.read_text())
    (size,) = results["sizes"].values()
    assert "spark_error" not in size, size.get("spark_error")
    assert set(size["figures"]) >= FIGURES | SPARK_FIGURES
    for name, figure in size["figures"].items():
        assert figure["runs"] >= 1 and 0 < figure["min_s"] <= figure["median_s"] <= figure["max_s"], name
    assert size["input"]["events"] > 0 and size["input"]["bytes_unpacked"] > size["input"]["bytes_packed"] > 0
    # the research tables' services are measured apart, on top of the original's derived tables
    research = size.get("research_services", [])
    assert ("research" in size["figures"]) == bool(research)
    assert len(size["ratios"]) == 7 + 2 * bool(research) + 2 and size["events_per_second_per_core"] > 0
    # Spark's rates come from its own figures: one core's rate is local[1]'s
    spark = size["events_per_second_spark"]
    assert set(spark) == {"local[1]", "local[2]"} and size["events_per_second_spark_per_core"] == spark["local[1]"] > 0
    local1, local2 = (size["figures"][k]["median_s"] for k in sorted(SPARK_FIGURES))
    assert abs(size["ratios"]["spark local[1] / local[2] (speed-up from the second core)"] - local1 / local2) < 0.002
    assert results["rescan"]["files"] == 50 and results["memory"]["peak_rss_mb"] > 0
    assert {"cores", "memory_gb", "cpu", "duckdb", "optimus"} <= set(results["machine"])
    api = results["api_load"]
    assert api["clients"] == 50 and api["requests"] > 0 and api["requests_per_second"] > 0
    assert 0 < api["p50_ms"] <= api["p95_ms"] <= api["p99_ms"] <= api["max_ms"]
    assert "events/s per core" in proc.stdout
    table = out.with_suffix(".md").read_text()
    assert all(f"| {name} |" in table for name in FIGURES | SPARK_FIGURES)
    assert "| Spark local[2] | 2 |" in table and "executors (estimate)" in table
    assert "API under load, 50 clients" in table
