"""Dialect conformance of the edX TSV fragments (h2's block; tests/test_dialect_conformance.py holds the
others): each fragment, and the escape decoding built from them (formats/sql_tables.decode_escapes_sql),
run on DuckDB, PostgreSQL and a local Spark over the same inputs, gives equal output, equal to the
plain-Python reference; fuzzed with hypothesis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import SparkSQL
from optimus.config import Settings
from optimus.formats import sql_tables
from optimus.warehouse import Warehouse, connect
from optimus.warehouse.dialects.base import Dialect

pytestmark = pytest.mark.postgres


def _split_reference(value: str | None) -> str | None:
    return None if value is None else "/".join(f"<{part}>" for part in value.split("\\\\"))


# The fragments of this block, each as (SQL over the column `v`, its plain-Python reference).
CASES: dict[str, tuple[Callable[[Dialect], str], Callable[[str | None], Any]]] = {
    "contains": (lambda d: d.contains("v", "\\"), lambda v: None if v is None else "\\" in v),
    "split_map_join": (lambda d: d.split_map_join("v", "\\\\", lambda part: f"'<' || {part} || '>'", "/"), _split_reference),
    # built from the two above and the standard replace/chr: the edX escapes, written once
    "decode_escapes_sql": (lambda d: sql_tables.decode_escapes_sql("v", d), lambda v: None if v is None else sql_tables.decode_escapes(v)),
}


def test_every_fragment_of_this_block_has_a_case() -> None:
    block = {"contains", "split_map_join"}
    assert all(callable(getattr(Dialect, name, None)) for name in block)
    assert block <= set(CASES)


@pytest.fixture
def engines(data_path: Path, settings_for: Callable[..., Settings], pg_url: str) -> Iterator[list[Warehouse]]:
    """A DuckDB and a PostgreSQL warehouse, open side by side."""
    duck = connect(settings_for(data_path))
    try:
        pg = connect(settings_for(data_path, warehouse=pg_url))
        try:
            yield [duck, pg]
        finally:
            pg.close()
    finally:
        duck.close()


def _run(wh: Warehouse | SparkSQL, expression: str, values: list[str | None]) -> list[Any]:
    rows = " UNION ALL ".join(f"SELECT CAST(? AS BIGINT) AS i, CAST(? AS {wh.sql.type_name('VARCHAR')}) AS v" for _ in values)
    flat = [x for i, v in enumerate(values) for x in (i, v)]
    return [r[1] for r in wh.query(f"SELECT i, {expression} FROM ({rows}) t ORDER BY i", flat)]


# Text with every character the escapes are about, the decoder's own stand-in, and any other
# (PostgreSQL text cannot hold NUL: not an input either engine is given, see _tsv_blocks).
_PIECES = st.sampled_from(["\\", "\\\\", "\\t", "\\n", "\\r", "\\x", "\t", "\n", "\r", "NULL", sql_tables._BACKSLASH, "'", "é", "😀"])
_VALUE = st.one_of(
    st.none(),
    st.lists(
        st.one_of(_PIECES, st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=4)), max_size=8
    ).map("".join),
)
_FIXED = [None, "", "plain", "\\", "\\\\", "a\\\\b", "\\\\t", "\\t", "\\\\\\t", "end\\", "\\x", sql_tables._BACKSLASH + "\\\\t", "NULL"]


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_fragment_is_equal_on_every_engine_and_to_the_reference(engines: list[Warehouse], name: str) -> None:
    fragment, reference = CASES[name]
    expected = [reference(v) for v in _FIXED]
    for wh in engines:
        assert _run(wh, fragment(wh.sql), _FIXED) == expected, type(wh.sql).__name__

    @settings(max_examples=60, deadline=None)
    @given(st.lists(_VALUE, min_size=1, max_size=8))
    def fuzzed(values: list[str | None]) -> None:
        want = [reference(v) for v in values]
        for wh in engines:
            assert _run(wh, fragment(wh.sql), values) == want, type(wh.sql).__name__

    fuzzed()


@pytest.mark.spark
@pytest.mark.parametrize("name", sorted(CASES))
def test_each_fragment_is_equal_on_spark_and_to_the_reference(spark: Any, name: str) -> None:
    fragment, reference = CASES[name]
    wh = SparkSQL(spark)
    assert _run(wh, fragment(wh.sql), _FIXED) == [reference(v) for v in _FIXED]

    @settings(max_examples=30, deadline=None)
    @given(st.lists(_VALUE, min_size=1, max_size=8))
    def fuzzed(values: list[str | None]) -> None:
        assert _run(wh, fragment(wh.sql), values) == [reference(v) for v in values]

    fuzzed()


@given(st.lists(st.one_of(_PIECES, st.text(max_size=3)), max_size=8).map("".join))
def test_the_reference_decoder_undoes_what_edx_writes(value: str) -> None:
    """decode_field against the writer's rule (REFERENCE §3.2): backslash first, then tab, newline, return."""
    written = value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    assert sql_tables.decode_field(written) == (None if written == sql_tables.NULL_TOKEN else value)
    assert sql_tables.decode_field(sql_tables.NULL_TOKEN) is None


# A field as a dump may hold it: any text but the separators (tab, line ends) and NUL, backslashes
# of every kind (`\x` too, which edX never writes: kept as written), the NULL token and the stand-in.
_FIELD = st.lists(
    st.one_of(
        st.sampled_from(["\\", "\\\\", "\\t", "\\n", "\\r", "\\x", "NULL", sql_tables._BACKSLASH, " ", "é"]),
        st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\t\n\r"), max_size=3),
    ),
    max_size=5,
).map("".join)
_STAGED = iter(range(1 << 30))


def test_stage_tsv_gives_the_reference_fields_on_every_engine(engines: list[Warehouse], data_path: Path) -> None:
    """The whole staging (split, NULL token, escapes) of both backends against decode_field."""
    folder = data_path / "conformance"
    folder.mkdir()

    @settings(max_examples=40, deadline=None)
    @given(st.integers(1, 4).flatmap(lambda n: st.lists(st.lists(_FIELD, min_size=n, max_size=n), max_size=6)))
    def staged(rows: list[list[str]]) -> None:
        rows = [r for r in rows if r != [""]]  # one empty field is an empty line: skipped by the format
        width = len(rows[0]) if rows else 1
        header = [f"c{i}" for i in range(width)]
        path = folder / "UQx-A-1-conformance-prod-analytics.sql"
        path.write_text("\n".join(sql_tables.FIELD_SEPARATOR.join(r) for r in [header, *rows]) + "\n", encoding="utf-8")
        want = [tuple(sql_tables.decode_field(v) for v in r) for r in rows]
        for wh in engines:
            staging = f"_conformance_{next(_STAGED)}"
            names, rejected = wh.stage_tsv(path, staging)
            try:
                got = wh.query(f"SELECT {', '.join(wh.quote(n) for n in names)} FROM {wh.quote(staging)} ORDER BY _line")
            finally:
                wh.drop_staged(staging)
            assert (names, rejected, got) == (header, [], want), type(wh.sql).__name__

    staged()


def test_a_line_that_is_not_utf8_is_rejected_by_number_on_every_engine(engines: list[Warehouse], data_path: Path) -> None:
    path = data_path / "UQx-A-1-conformance-prod-analytics.sql"
    path.write_bytes(b"a\tb\n1\tx\\ty\n2\t\xff\xfe\n3\tNULL\n4\t\xc3\n")
    for wh in engines:
        staging = f"_conformance_{next(_STAGED)}"
        names, rejected = wh.stage_tsv(path, staging)
        try:
            got = wh.query(f"SELECT a, b, _line FROM {wh.quote(staging)} ORDER BY _line")
        finally:
            wh.drop_staged(staging)
        assert names == ["a", "b"] and got == [("1", "x\ty", 2), ("3", None, 4)], type(wh.sql).__name__
        assert [line for line, _reason, _raw in rejected] == [3, 5], type(wh.sql).__name__
