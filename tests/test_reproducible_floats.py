"""Derived floats are the same bits on the same input, whatever the number of threads (issue 14, item 9).

Gaps are whole microseconds summed as integers; seconds come from one division at the end, so the
order in which threads add never shows. The plain-Python reference applies the same rule.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from conftest import ingest, query_rows
from optimus.config import Settings
from optimus.sample import generate

TIME_COLUMNS = {
    "person_course": ("course_key", "user_id", ["avg_dt", "sdv_dt", "sum_dt", "max_dt", "n_dt"]),
    "person_course_day": ("course_key", "user_id", ["sum_dt", "sum_dt2", "max_dt", "n_dt", "date"]),
}


def bits(value: Any) -> Any:
    """A float as its exact bits (equal floats with different bits are told apart; NaN equals NaN)."""
    return value.hex() if isinstance(value, float) else value


def time_rows(settings: Settings, table: str) -> list[tuple]:
    key, user, columns = TIME_COLUMNS[table]
    rows = query_rows(settings, f"SELECT {key}, {user}, {', '.join(columns)} FROM {table} ORDER BY ALL")
    return [tuple(bits(v) for v in r) for r in rows]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Settings]:
    """One sample package ingested twice: with 1 thread and with 4."""
    root = tmp_path_factory.mktemp("floats")
    generate(root / "data", courses=2, learners=200, days=10, seed=5)
    out = {}
    for threads in (1, 4):
        settings = Settings(
            data_paths=[root / "data"],
            warehouse=str(root / f"t{threads}.duckdb"),
            export_path=root / f"ex{threads}",
            www_path=root / "www",
            memory_limit="1GB",
            threads=threads,
        )
        ingest(settings)
        out[threads] = settings
    return out


@pytest.mark.parametrize("table", sorted(TIME_COLUMNS))
def test_time_columns_have_the_same_bits_with_1_and_4_threads(two_runs: dict[int, Settings], table: str) -> None:
    one, four = time_rows(two_runs[1], table), time_rows(two_runs[4], table)
    assert len(one) > 100
    differ = [(a, b) for a, b in zip(one, four, strict=False) if a != b]
    assert not differ and len(one) == len(four), f"{len(differ)} of {len(one)} {table} rows differ, e.g. {differ[:2]}"


def reference_times(settings: Settings, cutoff_seconds: int = 300) -> dict[tuple[str, int], dict[str, Any]]:
    """The rule of docs/person_course.md in plain Python, over the learners whose every event names its user_id
    (learner resolution by username is TimeFinder's own test), of the day table (no `/xblock/` calls, no empty
    usernames): the gaps between a learner's consecutive
    events in whole microseconds, those above the cutoff left out; avg = Σg/n, sdv = the sample
    standard deviation sqrt((nΣg² − (Σg)²) / (n(n−1))), both in exact integers until the last step."""
    events = query_rows(
        settings,
        "SELECT course_key, user_id, epoch_us(time) FROM events e WHERE course_key IS NOT NULL "
        # the day table's events only: no /xblock/ call, no empty username (edx2bigquery's make_person_course_day)
        "AND strpos(coalesce(event_type, ''), '/xblock/') = 0 AND coalesce(username, '') <> '' AND NOT EXISTS "
        "(SELECT 1 FROM events x WHERE x.course_key = e.course_key AND x.user_id IS NULL AND x.username IN "
        "(SELECT username FROM events y WHERE y.course_key = e.course_key AND y.user_id = e.user_id)) AND user_id IS NOT NULL",
    )
    times: dict[tuple[str, int], list[int]] = defaultdict(list)
    for key, uid, micros in events:
        times[(key, uid)].append(micros)
    out = {}
    for learner, ts in times.items():
        ts.sort()
        kept = [b - a for a, b in zip(ts, ts[1:], strict=False) if b - a <= cutoff_seconds * 1_000_000]
        n, s1, s2 = len(kept), sum(kept), sum(g * g for g in kept)
        out[learner] = {
            "n_dt": n,
            "sum_dt": s1 / 1e6,
            "avg_dt": float(s1) / n / 1e6 if n else None,
            "sdv_dt": math.sqrt(float(n * s2 - s1 * s1) / (n * (n - 1))) / 1e6 if n > 1 else None,
            "max_dt": max(kept) / 1e6 if kept else None,
        }
    return out


def test_time_columns_equal_a_plain_python_reference_bit_for_bit(two_runs: dict[int, Settings]) -> None:
    expected = reference_times(two_runs[4])
    got = {
        (r[0], r[1]): dict(zip(("n_dt", "sum_dt", "avg_dt", "sdv_dt", "max_dt"), r[2:], strict=True))
        for r in query_rows(
            two_runs[4], "SELECT course_key, user_id, n_dt, sum_dt, avg_dt, sdv_dt, max_dt FROM person_course WHERE nevents > 0"
        )
    }
    compared = [k for k in expected if k in got]
    assert len(compared) > 100 and sum(expected[k]["n_dt"] > 1 for k in compared) > 50
    for learner in compared:
        want = {c: bits(v) for c, v in expected[learner].items()}
        have = {c: bits(v) for c, v in got[learner].items()}
        assert have == want, f"{learner}: {have} != {want}"


@pytest.mark.postgres
def test_postgresql_gives_duckdbs_bits(two_runs: dict[int, Settings], pg_url: str, tmp_path: Path) -> None:
    """Both engines add the same exact integers and divide once in IEEE doubles: equal bit for bit."""
    data = Path(two_runs[4].warehouse).parent / "data"
    settings = Settings(data_paths=[data], warehouse=pg_url, export_path=tmp_path / "ex", www_path=tmp_path / "www", memory_limit="1GB")
    ingest(settings)
    for table, (key, user, columns) in TIME_COLUMNS.items():
        rows = query_rows(settings, f"SELECT {key}, {user}, {', '.join(columns)} FROM {table}")
        pg = sorted((tuple(bits(v) for v in r) for r in rows), key=repr)
        duck = sorted(time_rows(two_runs[4], table), key=repr)
        assert len(pg) == len(duck) > 100
        differ = [(a, b) for a, b in zip(duck, pg, strict=True) if a != b]
        assert not differ, f"{len(differ)} {table} rows differ between DuckDB and PostgreSQL, e.g. {differ[:2]}"
