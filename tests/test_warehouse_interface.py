"""The whole `Warehouse` protocol, on every backend: the methods callers once probed for with
hasattr (execute_over_arrow, query_arrow, reader, interrupt) and the declared capabilities, each
checked against what the engine really does."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pyarrow as pa
import pytest

from optimus.config import Settings
from optimus.warehouse import Warehouse, connect


@pytest.fixture
def wh(any_backend: dict[str, Any], data_path: Any, settings_for: Callable[..., Settings]) -> Iterator[Warehouse]:
    """A writer on each backend."""
    warehouse = connect(settings_for(data_path, **any_backend))
    try:
        yield warehouse
    finally:
        warehouse.close()


BLOCK = pa.table(
    {
        "n": pa.array([1, 2, 3], pa.int64()),
        "name": pa.array(["a", None, "c\tç"], pa.string()),
        "seen_at": pa.array([datetime(2024, 1, 1, 12), None, datetime(2024, 2, 29)], pa.timestamp("us")),
        "ok": pa.array([True, False, None], pa.bool_()),
    }
)


def test_execute_over_arrow_reads_the_block_as_arrow_block(wh: Warehouse) -> None:
    wh.execute("CREATE TABLE picked (n BIGINT, name VARCHAR, seen_at TIMESTAMP, ok BOOLEAN)")
    wh.execute_over_arrow("INSERT INTO picked SELECT n * 10, name, seen_at, ok FROM arrow_block WHERE n <> 2", BLOCK)
    wh.execute_over_arrow("INSERT INTO picked SELECT n, name, seen_at, ok FROM arrow_block WHERE n = 2", BLOCK.to_reader())
    assert wh.query("SELECT n, name, seen_at, ok FROM picked ORDER BY n") == [
        (2, None, None, False),
        (10, "a", datetime(2024, 1, 1, 12), True),
        (30, "c\tç", datetime(2024, 2, 29), None),
    ]
    with pytest.raises(Exception, match="arrow_block"):  # nothing named arrow_block outlives its statement
        wh.query("SELECT count(*) FROM arrow_block")


def test_execute_over_arrow_joins_the_callers_transaction(wh: Warehouse) -> None:
    wh.execute("CREATE TABLE picked (n BIGINT)")
    with pytest.raises(RuntimeError), wh.transaction():
        wh.execute_over_arrow("INSERT INTO picked SELECT n FROM arrow_block", BLOCK)
        assert wh.scalar("SELECT count(*) FROM picked") == 3
        raise RuntimeError("the file failed")
    assert wh.scalar("SELECT count(*) FROM picked") == 0


def test_query_arrow_types_by_the_columns(wh: Warehouse) -> None:
    wh.execute("CREATE TABLE typed (n BIGINT, x DOUBLE PRECISION, name VARCHAR)")
    table = wh.query_arrow("SELECT * FROM typed")  # no rows: the types still come from SQL, not from values
    assert table.schema.types == [pa.int64(), pa.float64(), pa.string()]


def test_reader_sees_committed_data(wh: Warehouse) -> None:
    wh.execute("CREATE TABLE seen (n BIGINT)")
    view = wh.reader()
    try:
        with wh.transaction():
            wh.execute("INSERT INTO seen VALUES (1)")
            assert view.scalar("SELECT count(*) FROM seen") == 0
        assert view.scalar("SELECT count(*) FROM seen") == 1
    finally:
        view.close()


def test_interrupt_stops_the_running_statement(wh: Warehouse) -> None:
    failed: list[BaseException] = []

    def run() -> None:
        try:
            wh.scalar("SELECT count(*) FROM generate_series(1, 100000000000) a")
        except BaseException as exc:  # the interrupted statement's error
            failed.append(exc)

    worker = threading.Thread(target=run)
    started = time.monotonic()
    worker.start()
    time.sleep(0.5)
    while worker.is_alive() and time.monotonic() - started < 20:
        wh.interrupt()
        worker.join(0.2)
    assert not worker.is_alive() and failed
    assert wh.scalar("SELECT 1") == 1  # the connection is usable again


def test_both_ways_of_counting_an_insert_agree(wh: Warehouse) -> None:
    """prunes_by_min_max only picks the faster of two spellings (Database State counts the values an
    insert stored either as the insert returns them or by a filtered count after it): both must give
    the same count on every engine, so the capability changes speed, never an answer."""
    wh.execute("CREATE TABLE counted (file_id BIGINT, n BIGINT)")
    wh.execute("INSERT INTO counted VALUES (1, 5), (1, NULL)")
    returned = wh.query("WITH ins AS (INSERT INTO counted VALUES (2, 1), (2, NULL), (2, 3) RETURNING n) SELECT count(n) FROM ins")
    assert returned == wh.query("SELECT count(n) FROM counted WHERE file_id = 2") == [(2,)]
