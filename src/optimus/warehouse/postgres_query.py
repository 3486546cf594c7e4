"""One untrusted query on a reader connection (the API's /sql, `optimus sql`), held by PostgreSQL.

The connection logs in as the reader role (postgres_reader.py), so privileges are the defence;
this adds the rest: `BEGIN READ ONLY`; a statement timeout set again before each statement (a
query can turn it off with set_config, but not for a statement already running); the query first
declared as a cursor (and closed unread), so that PostgreSQL's own parser accepts exactly one
SELECT or VALUES without data-modifying WITH; then run by the extended protocol (one statement)
in libpq's single-row mode, rows read one at a time and the run cancelled once `max_rows` rows or
`max_bytes` bytes are reached, so a huge answer is never fetched whole. (A FETCH from the cursor
would not do: PostgreSQL builds a FETCH's whole result on the server before sending any of it.)
The caller always rolls back and DISCARDs ALL afterwards.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Generator
from typing import Any, cast

import psycopg

from optimus.errors import QueryRefused, WarehouseError
from optimus.warehouse.base import QueryAnswer

CURSOR = "optimus_answer"
_FIRST_WORD = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*([A-Za-z]*)", re.S)
_READING = ("SELECT", "WITH", "VALUES", "TABLE")
_BACKSTOP = 1.0  # seconds after the timeout when the client cancels, should the server not have stopped


def first_keyword(sql: str) -> str:
    """The statement's first word, past comments and parentheses (a friendly first refusal only:
    PostgreSQL's parser decides, when the query is declared as a cursor)."""
    match = _FIRST_WORD.match(sql)
    return match.group(1).upper() if match else ""


def _size(row: tuple[Any, ...]) -> int:
    """About how many bytes a row takes in the answer (text length; 8 for a number or a date)."""
    total = 0
    for value in row:
        if isinstance(value, (str, bytes)):
            total += len(value)
        elif isinstance(value, (list, dict, tuple)):
            total += len(str(value))
        else:
            total += 8
    return total


def _limit_time(con: psycopg.Connection, deadline: float) -> None:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise psycopg.errors.QueryCanceled("canceling statement due to statement timeout")
    con.execute(f"SET LOCAL statement_timeout = {max(1, int(remaining * 1000))}")


def run_untrusted(con: psycopg.Connection, sql: str, *, max_rows: int, max_bytes: int, timeout: float) -> QueryAnswer:
    """Run `sql` in a read-only transaction on the reader's connection `con` and return its capped answer.
    Leaves the transaction open (the caller rolls it back). Raises QueryRefused or WarehouseError."""
    word = first_keyword(sql)
    if word not in _READING:
        raise QueryRefused(f"only one read-only SELECT (or WITH ... SELECT) is allowed, not {word or 'an empty query'}")
    deadline = time.monotonic() + timeout
    backstop = threading.Timer(timeout + _BACKSTOP, con.cancel_safe)
    backstop.daemon = True
    backstop.start()
    declared = con.cursor(name=CURSOR)
    try:
        con.execute("BEGIN READ ONLY")
        _limit_time(con, deadline)
        declared.execute(sql)  # DECLARE ... CURSOR FOR <sql>: PostgreSQL checks it is one plain query
        columns = [d.name for d in declared.description or []]
        declared.close()
        _limit_time(con, deadline)
        rows: list[tuple] = []
        size = 0
        cut: str | None = None
        reader = con.cursor()
        # the extended protocol: exactly one statement; a generator (typed Iterator by psycopg), closed below
        stream = cast(Generator[tuple[Any, ...], None, None], reader.stream(sql))
        try:
            for row in stream:  # one row at a time off the wire
                if len(rows) >= max_rows:
                    cut = f"truncated at {max_rows:,} rows (the row limit)"
                    break
                size += _size(row)
                if size > max_bytes:
                    cut = f"truncated at {len(rows):,} rows: the answer reached the {max_bytes:,}-byte limit"
                    break
                rows.append(row)
        finally:
            stream.close()  # cancels the rest of the query on the server
        return QueryAnswer(columns, rows, cut is not None, cut)
    except psycopg.errors.QueryCanceled:
        raise WarehouseError(f"query stopped: it ran past the {timeout:g}-second timeout") from None
    except psycopg.errors.FeatureNotSupported as exc:
        if "data-modifying" in str(exc):
            raise QueryRefused(f"only reading is allowed: {str(exc).strip()}") from None
        raise WarehouseError(f"query failed: {str(exc).strip()}") from None
    except psycopg.errors.SyntaxError as exc:
        if "multiple commands" in str(exc):
            raise QueryRefused("one statement only") from None
        raise WarehouseError(f"query failed: {str(exc).strip()}") from None
    except psycopg.Error as exc:
        raise WarehouseError(f"query failed: {str(exc).strip()}") from None
    finally:
        backstop.cancel()
