"""The derived tables' INSERTs match each expression to its column by name, never by position."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from optimus.services.learner_events import insert_by_name
from optimus.warehouse import connect

DECLARED = {"a": "INTEGER", "b": "VARCHAR", "c": "DOUBLE PRECISION"}


def test_each_value_lands_in_the_column_it_is_computed_for(tmp_path: Path, settings_for: Any, backend: dict[str, Any]) -> None:
    """The computed mapping is written in another order than the table's: a positional INSERT would
    put 'x' into `a` and fail, or swap the numbers; by name every value lands in its column."""
    wh = connect(settings_for(tmp_path / "data", **backend))
    try:
        wh.execute("CREATE TABLE named (a INTEGER, b VARCHAR, c DOUBLE PRECISION)")
        insert, select = insert_by_name(wh, "named", DECLARED, {"c": "CAST(2.5 AS DOUBLE PRECISION)", "b": "'x'", "a": "7"})
        wh.execute(f"{insert} SELECT {select}")
        assert [tuple(r) for r in wh.query("SELECT a, b, c FROM named")] == [(7, "x", 2.5)]
    finally:
        wh.close()


@pytest.mark.parametrize(
    "computed, named",
    [
        ({"a": "1", "b": "'x'"}, "not computed: ['c']"),  # a column left out would be NULL, or shift the rest
        ({"a": "1", "b": "'x'", "c": "0", "d": "2"}, "not in the table: ['d']"),  # an expression with no column
    ],
)
def test_a_column_missing_or_unknown_is_refused_by_name(tmp_path: Path, settings_for: Any, computed: dict[str, str], named: str) -> None:
    wh = connect(settings_for(tmp_path / "data"))
    try:
        with pytest.raises(ValueError, match=r"^named: .*" + named.replace("[", r"\[").replace("]", r"\]")):
            insert_by_name(wh, "named", DECLARED, computed)
    finally:
        wh.close()
