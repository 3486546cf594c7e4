"""Statements with `?` placeholders on PostgreSQL (warehouse/postgres_statements.py): each `?` outside
quotes becomes psycopg's `%s`, `%` is doubled, nothing else changes; each shape run on the real server."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimus.config import Settings
from optimus.errors import WarehouseError
from optimus.warehouse import Warehouse, connect
from optimus.warehouse.postgres_statements import Statement, psycopg_statement

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize(
    ("sql", "text", "placeholders"),
    [
        ("SELECT ?, ?", "SELECT %s, %s", 2),
        ("SELECT 7 % ?", "SELECT 7 %% %s", 1),
        ("SELECT '?', 'it''s ?%', ?", "SELECT '?', 'it''s ?%%', %s", 1),  # doubled quote inside a literal
        ("SELECT E'\\'?', e'\\\\', ?", "SELECT E'\\'?', e'\\\\', %s", 1),  # E'...': a backslash escapes the quote
        ("SELECT '\\', ?", "SELECT '\\', %s", 1),  # a standard string: a backslash is text, the quote ends it
        ('SELECT 1 AS "a""?%", ?', 'SELECT 1 AS "a""?%%", %s', 1),  # quoted identifier
        ("SELECT $$ ? $$, $f$ ? $$ ? $f$, ?", "SELECT $$ ? $$, $f$ ? $$ ? $f$, %s", 1),  # dollar-quoted bodies
        ("SELECT 1 -- ? %\n, ?", "SELECT 1 -- ? %%\n, %s", 1),
        ("SELECT 1 /* ? /* nested ? */ ? */, ?", "SELECT 1 /* ? /* nested ? */ ? */, %s", 1),
        ("SELECT U&'?', N'?', B'01', X'1f', ?", "SELECT U&'?', N'?', B'01', X'1f', %s", 1),
        ("SELECT ?::int, ?||'x', ?", "SELECT %s::int, %s||'x', %s", 3),  # `?` then an operator, as DuckDB reads it
        ("SELECT a$b, ?", "SELECT a$b, %s", 1),  # `$` inside an identifier opens no dollar quote
        ("SELECT '%' LIKE '%'", "SELECT '%%' LIKE '%%'", 0),
    ],
)
def test_each_shape_is_translated_exactly(sql: str, text: str, placeholders: int) -> None:
    assert psycopg_statement(sql) == Statement(text, placeholders)


def test_a_statement_without_a_question_mark_is_not_tokenized() -> None:
    """The common case costs a substring test: an unterminated quote (which the tokenizer refuses) goes through."""
    assert psycopg_statement("SELECT 'x%") == Statement("SELECT 'x%%", 0)
    with pytest.raises(WarehouseError, match="cannot find the placeholders"):
        psycopg_statement("SELECT ?, 'x")


def test_a_statement_is_read_once() -> None:
    sql = "SELECT ? AS cached_once"
    psycopg_statement(sql)
    hits = psycopg_statement.cache_info().hits
    assert psycopg_statement(sql).placeholders == 1
    assert psycopg_statement.cache_info().hits == hits + 1


@pytest.fixture
def wh(pg_url: str, data_path: Path, settings_for: Callable[..., Settings]) -> Iterator[Warehouse]:
    warehouse = connect(settings_for(data_path, warehouse=pg_url))
    try:
        yield warehouse
    finally:
        warehouse.close()


def test_each_shape_runs_on_the_server(wh: Warehouse) -> None:
    assert wh.query("SELECT ?, 'it''s ?%', E'\\'?%', $f$ ? % $f$ /* ? */ -- ?\n, ?", ["a%", 5]) == [("a%", "it's ?%", "'?%", " ? % ", 5)]
    assert wh.query('SELECT 1 AS "a""?%", ?::int + 1, ?||\'x\', 7 % ?', ["4", "y", 4]) == [(1, 5, "yx", 3)]
    assert wh.query_dicts('SELECT ? AS "?%"', ["v"]) == [{"?%": "v"}]
    # without parameters the statement is sent as written: psycopg reads no `%` in it
    assert wh.query("SELECT '%', 7 % 3, '?' -- %") == [("%", 1, "?")]
    assert wh.query("SELECT ? LIKE ?", ["50%", "50\\%"]) == [(True,)]
    wh.executemany("CREATE TEMP TABLE IF NOT EXISTS many (a text, b text)", [])  # no rows: nothing runs
    wh.execute("CREATE TEMP TABLE many (a text, b text)")
    wh.executemany("INSERT INTO many VALUES (?, '?%')", [["x%"], ["y?"]])
    assert wh.query("SELECT a, b FROM many ORDER BY a") == [("x%", "?%"), ("y?", "?%")]


def test_jsonb_question_mark_is_a_placeholder_so_jsonb_exists_is_spelt_out(wh: Warehouse) -> None:
    """`?` is a placeholder on both engines: PostgreSQL's jsonb `?` operator cannot be written, and is
    refused (not run) when no parameter is given for it; jsonb_exists says the same."""
    with pytest.raises(WarehouseError, match="1 `\\?` placeholder\\(s\\) but 0 parameter"):
        wh.query("""SELECT '{"k": 1}'::jsonb ? 'k'""")
    with pytest.raises(psycopg.Error):  # the `?` given a parameter is one, whatever the jsonb around it
        wh.query("""SELECT '{"k": 1}'::jsonb ? 'k'""", ["x"])
    assert wh.query("""SELECT jsonb_exists('{"k": 1}'::jsonb, ?)""", ["k"]) == [(True,)]


def test_placeholders_and_parameters_that_do_not_match_fail_loudly(wh: Warehouse) -> None:
    with pytest.raises(WarehouseError, match="2 `\\?` placeholder\\(s\\) but 1 parameter"):
        wh.query("SELECT ?, ?", [1])
    with pytest.raises(WarehouseError, match="0 `\\?` placeholder\\(s\\) but 1 parameter"):
        wh.execute("SELECT '?'", [1])
    with pytest.raises(WarehouseError, match="1 `\\?` placeholder\\(s\\) but 2 parameter"):
        wh.executemany("SELECT ?", [[1, 2]])


# -- fuzzed: random literals of every quoting, placeholders, comments and `%`, run on the server ----------
_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=8)
_TRICKY = st.lists(
    st.one_of(st.sampled_from(["?", "%", "'", '"', "\\", "$", "$$", "$q$", "--", "/*", "*/", "\n", "\r", "%s"]), _TEXT), max_size=6
).map("".join)


def _dollar_quoted(value: str) -> str:
    """A dollar-quoted literal of `value`, with a tag whose closing form it cannot end early."""
    n = 0
    while True:
        tag = f"$q{n}$"
        body = tag + value + tag
        if body.find(tag, len(tag)) == len(tag) + len(value):
            return body
        n += 1


def _item(kind: str, value: str, params: list[str]) -> str:
    if kind == "param":
        params.append(value)
        return "CAST(? AS text)"
    if kind == "standard":
        return "'" + value.replace("'", "''") + "'"
    if kind == "escape":
        return "E'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return _dollar_quoted(value)


def _comment(kind: str, value: str) -> str:
    if kind == "line":
        return " --" + value.replace("\n", " ").replace("\r", " ") + "\n"  # either ends it, on the server
    if kind == "block":
        return " /*" + value.replace("/*", "").replace("*/", "").replace("/", "").replace("*", "") + "*/ "  # nothing to nest or close
    return " "


_ITEMS = st.lists(
    st.tuples(st.sampled_from(["param", "standard", "escape", "dollar"]), _TRICKY, st.sampled_from(["none", "line", "block"]), _TRICKY),
    min_size=1,
    max_size=6,
)


def test_a_carriage_return_ends_a_line_comment_as_on_the_server(wh: Warehouse) -> None:
    # PostgreSQL reads `-- x\r` as a comment and what follows the CR as SQL: the `?` after it is a placeholder
    assert wh.query("SELECT CAST(? AS text) -- a comment\r, CAST(? AS text) AS b", ["x", "y"]) == [("x", "y")]
    assert wh.query("SELECT 'a\r--' || CAST(? AS text)", ["b"]) == [("a\r--b",)]  # in a literal a CR is a character


def test_fuzzed_statements_give_back_their_values(wh: Warehouse) -> None:
    @settings(max_examples=150, deadline=None)
    @given(_ITEMS, st.booleans())
    def round_trip(items: list[tuple[str, str, str, str]], modulo: bool) -> None:
        params: list[str] = []
        columns = []
        for i, (kind, value, comment_kind, comment) in enumerate(items):
            name = f'"c{i}_' + value[:10].replace('"', '""') + '"'  # a quoted identifier holding the tricky text too
            columns.append(f"{_item(kind, value, params)}{_comment(comment_kind, comment)} AS {name}")
        sql = "SELECT " + ", ".join(columns) + (", 7 % 3 AS modulo" if modulo else "")
        expected = tuple(value for _k, value, _c, _t in items) + ((1,) if modulo else ())
        assert wh.query(sql, params) == [expected], sql
        names = list(wh.query_dicts(sql, params)[0])
        assert names[: len(items)] == [f"c{i}_" + value[:10] for i, (_k, value, _c, _t) in enumerate(items)]

    round_trip()


def test_fuzzed_dollar_tags_hold_any_text() -> None:
    @given(_TRICKY)
    def tagged(value: str) -> None:
        sql = f"SELECT {_dollar_quoted(value)}, ?"
        assert psycopg_statement(sql).placeholders == 1

    tagged()
