"""Optimus's statements made psycopg's: each `?` placeholder becomes `%s`, and `%` is doubled.

Shared SQL is written once, with DuckDB's `?` placeholders, and a `?` outside quotes is always a
placeholder, on PostgreSQL as on DuckDB: PostgreSQL's jsonb operators `?`, `?|`, `?&` are not
spelt with it (`jsonb_exists(j, k)`, `jsonb_exists_any`, `jsonb_exists_all` say the same).
Where a literal, a quoted identifier, a dollar-quoted body or a comment begins and ends is read
by SQLGlot's PostgreSQL tokenizer, as the server reads it: a `?` or `%` inside them is text.

Nothing else of a statement is changed: one PostgreSQL cannot run fails there, with its message.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sqlglot.dialects.postgres import Postgres
from sqlglot.errors import TokenError
from sqlglot.tokens import TokenType

from optimus.errors import WarehouseError

# The tokens whose text is quoted: a `?` in them is not a placeholder.
_QUOTED = frozenset(
    {
        TokenType.STRING,  # '...', quotes doubled inside
        TokenType.BYTE_STRING,  # E'...', backslash escapes
        TokenType.UNICODE_STRING,  # U&'...'
        TokenType.NATIONAL_STRING,  # N'...'
        TokenType.NATIONAL_RAW_STRING,
        TokenType.RAW_STRING,
        TokenType.BIT_STRING,  # B'...'
        TokenType.HEX_STRING,  # X'...'
        TokenType.HEREDOC_STRING,  # $$...$$, $tag$...$tag$
        TokenType.IDENTIFIER,  # "..."
    }
)
_TOKENIZER = Postgres().tokenizer()  # holds no state between calls: tokenize() starts afresh


@dataclass(frozen=True)
class Statement:
    """A statement as psycopg takes it with parameters, and how many it takes."""

    text: str
    placeholders: int


@lru_cache(maxsize=1024)
def psycopg_statement(sql: str) -> Statement:
    """`sql` with each `?` placeholder as `%s` and every `%` doubled (psycopg reads `%` anywhere in a
    statement it is given parameters for, quotes and comments included).

    Read once per distinct statement (cached): a statement without a `?` is not tokenized at all.
    """
    if "?" not in sql:
        return Statement(sql.replace("%", "%%"), 0)
    try:
        tokens = _TOKENIZER.tokenize(sql)
    except TokenError as exc:
        raise WarehouseError(f"cannot find the placeholders of the statement ({exc}): {_excerpt(sql)}") from None
    marks: list[int] = []
    for token in tokens:
        if token.token_type not in _QUOTED:
            i = sql.find("?", token.start, token.end + 1)
            while i >= 0:
                marks.append(i)
                i = sql.find("?", i + 1, token.end + 1)
    parts, at = [], 0
    for i in marks:
        parts.append(sql[at:i].replace("%", "%%"))
        at = i + 1
    parts.append(sql[at:].replace("%", "%%"))
    return Statement("%s".join(parts), len(marks))


def check_parameters(sql: str, statement: Statement, given: int) -> None:
    """A statement and its parameters that do not match fail here, saying so, before the server sees them."""
    if statement.placeholders != given:
        raise WarehouseError(f"the statement has {statement.placeholders} `?` placeholder(s) but {given} parameter(s): {_excerpt(sql)}")


def _excerpt(sql: str) -> str:
    text = " ".join(sql.split())
    return text if len(text) <= 300 else text[:300] + " ..."
