"""The default dialect: fragments in standard SQL where one exists, and the capabilities as data.

A fragment is a method returning SQL text from SQL text (`try_cast(expr, type)` -> an
expression). The default spelling lives here when standard SQL has one; an engine's module
overrides only what it spells otherwise. Every fragment is checked on every engine, over the same
inputs, to give equal output (tests/test_dialect_conformance.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Capabilities:
    """What an engine can or cannot do, as data: callers branch on these, never on the engine's name."""

    scans_arrow_in_place: bool  # execute_over_arrow reads the Arrow data where it is (no copy into a table)
    # a query filtered on values that rows were appended with together reads only their blocks (min/max
    # statistics, zone maps), so counting just-inserted rows costs no scan of the whole table
    prunes_by_min_max: bool
    # statements of every kind (DDL too) commit together or not at all: the pipeline stores a file's
    # rows and its ledger state in one transaction (docs/architecture.md: the strategy without it)
    transactions: bool = True


class Dialect:
    """Fragments of SQL in the default (standard) spelling; an engine's dialect overrides some."""

    name: str  # the dialect as SQLGlot names it ('duckdb', 'postgres'): for SQLGlot and messages, never to branch on
    capabilities: Capabilities

    def quote(self, identifier: str) -> str:
        """An identifier, quoted (standard double quotes, doubled inside)."""
        return '"' + identifier.replace('"', '""') + '"'

    def try_cast(self, expr: str, sql_type: str) -> str:
        """`expr` cast to `sql_type`, NULL (not an error) when it does not fit."""
        raise NotImplementedError(f"{type(self).__name__} has no try_cast")

    # -- text fragments for the edX TSV escapes (formats/sql_tables.decode_escapes_sql; h2's block) ----
    def contains(self, text: str, fragment: str) -> str:
        """Whether `text` holds `fragment` (both SQL text expressions): standard POSITION."""
        return f"(POSITION({fragment} IN {text}) > 0)"

    def split_map_join(self, text: str, separator: str, part: Callable[[str], str], joiner: str) -> str:
        """`text` split at each `separator` (left to right, not overlapping), each piece mapped by `part`
        (SQL of the piece from the SQL naming it), the pieces joined with `joiner` (separator and
        joiner: plain strings, not SQL). NULL stays NULL; '' is one empty piece."""
        raise NotImplementedError(f"{type(self).__name__} has no split_map_join")


def literal(text: str) -> str:
    """A plain string as a standard SQL string literal (quotes doubled; backslashes are text)."""
    return "'" + text.replace("'", "''") + "'"
