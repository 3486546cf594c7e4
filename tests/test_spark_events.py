"""Spark reads event files itself (SparkWarehouse.event_lines, warehouse/spark_events.py): the lines,
line numbers and fingerprints of a plain Python reading, for a .gz file (one task) and an uncompressed
file split across tasks; None for what it cannot read as plain lines; and Clickstream on Spark over the
real fixtures stores what it stores on DuckDB."""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

from conftest import assert_same_rows, ingest, python_event_lines, table_rows
from optimus.warehouse import connect
from test_clickstream import events_dir


def test_spark_reads_event_files_as_python_does(data_path: Path, settings_for: Any, spark_lake: dict[str, Any]) -> None:
    events = events_dir(data_path)
    lines = [b'{"a": 1}', b"", b"  ", b'junk {"b": "x,y\\"q"}', b"# note", b'{"c": "\xc3\xa9"}', b"no object", b'{"d": 2}']
    clean = events / "clean.log.gz"
    clean.write_bytes(gzip.compress(b"\n".join(lines)))  # no final newline: the last line is a line
    # an uncompressed file of ~1 MB, read in blocks of 64 KB: about 16 tasks, each numbering its own rows
    big_data = b"".join(b'%s{"n": %d, "pad": "%s"}\n' % (b"junk " if i % 7 == 0 else b"", i, b"x" * (i % 90)) for i in range(16_000))
    big_data += b"\n\n" + '{"é": 1}'.encode() + b"\nlast line, no newline"
    big = events / "big.log"
    big.write_bytes(big_data)
    empty = events / "empty.log.gz"
    empty.write_bytes(gzip.compress(b""))
    wh = connect(settings_for(data_path, **spark_lake))
    spark = wh.spark  # type: ignore[attr-defined]
    before = spark.conf.get("spark.sql.files.maxPartitionBytes")
    spark.conf.set("spark.sql.files.maxPartitionBytes", str(64 << 10))
    try:
        assert wh.capabilities.reads_files
        assert spark.read.text(str(big)).rdd.getNumPartitions() > 4  # the file is split: line numbers span tasks
        got = {}
        with wh.transaction():
            for path in (clean, big, empty):
                with wh.event_lines(path, 1 << 20) as rel:
                    assert rel is not None, path
                    got[path] = wh.query(f"SELECT line, raw, event_id FROM {rel} ORDER BY line")
    finally:
        spark.conf.set("spark.sql.files.maxPartitionBytes", before)
        wh.close()
    assert got[clean] == python_event_lines(b"\n".join(lines))
    assert got[big] == python_event_lines(big_data)
    assert got[empty] == []


def test_spark_leaves_files_it_cannot_read_as_plain_lines_to_the_reader(
    data_path: Path, settings_for: Any, spark_lake: dict[str, Any]
) -> None:
    """A damaged archive (cut short, a wrong CRC), a CR, bytes that are not UTF-8, a NUL, a byte-order
    mark, a line over the limit: None, and the caller's transaction goes on."""
    events = events_dir(data_path)
    crc = bytearray(gzip.compress(b'{"a": 1}\n' * 1000))
    crc[-8] ^= 0xFF  # the CRC-32 in the trailer
    odd = {
        "cut.log.gz": gzip.compress(b'{"a": 1}\n' * 50_000)[:-5000],
        "crc.log.gz": bytes(crc),
        "crlf.log.gz": gzip.compress(b'{"a": 1}\r\n{"b": 2}\r\n'),
        "latin1.log.gz": gzip.compress(b'{"a": 1}\n{"b": "\xe9"}\n'),
        "nul.log": b'{"a": 1}\n{"b": "\x00"}\n',
        "bom.log.gz": gzip.compress(b'\xef\xbb\xbf{"a": 1}\n'),
        "long.log": b'{"a": "' + b"x" * 300 + b'"}\n',
    }
    for name, data in odd.items():
        (events / name).write_bytes(data)
    wh = connect(settings_for(data_path, **spark_lake))
    try:
        with wh.transaction():
            wh.execute("CREATE TEMP TABLE probe (n INTEGER)")
            for name in odd:
                with wh.event_lines(events / name, 200) as rel:
                    assert rel is None, name
            wh.execute("INSERT INTO probe VALUES (1)")
        assert wh.scalar("SELECT count(*) FROM probe") == 1
    finally:
        wh.close()


# the day archive and fixtures with quirks: junk and comments, two objects on a line, a cut string, Unicode
SOME_FIXTURES = ("tracking.log-20130609.gz", "twoJSONRecords.json", "unterminatedString.json", "unicode.json", "unicodeOutOfRange.json")


def test_clickstream_on_spark_stores_what_duckdb_stores(
    fixtures_dir: Path, tmp_path: Path, settings_for: Any, spark_lake: dict[str, Any]
) -> None:
    """Real fixtures (a .gz day file, files with bad lines): the same events, quarantine (file and line)
    and event_files on Spark, where Spark reads the files, as on DuckDB. A few files, not all: each
    file costs the Spark warehouse a few jobs."""
    from conftest import make_data_path

    data = make_data_path(tmp_path / "data")
    for i, name in enumerate(SOME_FIXTURES):
        target = events_dir(data) / (name if name.endswith(".gz") else f"{Path(name).stem}-events-2013-01-{i + 1:02d}.log")
        target.symlink_to(fixtures_dir / name)  # read there, never copied
    duck = settings_for(data)
    lake = settings_for(data, **spark_lake)
    ingest(duck, "Clickstream")
    ingest(lake, "Clickstream")
    assert_same_rows(lake, duck, ["main.events", "main.event_files", "main.events_quarantine"])
    _, quarantined = table_rows(lake, "main.events_quarantine")
    assert quarantined, "the fixtures hold bad lines: the comparison must cover quarantine"
