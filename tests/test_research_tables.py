"""The frame of the research tables (services/course_tables.py): every table documented column by column,
declared with a course key, and served by the API only as its declaration allows."""

from __future__ import annotations

import re
from pathlib import Path

from optimus.services import research_tables

ROOT = Path(__file__).resolve().parents[1]


def test_every_research_table_column_is_in_its_services_dictionary() -> None:
    missing: list[str] = []
    for name, (service, table) in research_tables().items():
        assert service.dictionary, f"{service.name} names no data dictionary"
        text = (ROOT / service.dictionary).read_text()
        assert f"`{name}`" in text, f"{service.dictionary} does not name table {name}"
        missing += [f"{name}.{c}" for c in table.columns if not re.search(rf"`{re.escape(c)}`", text)]
    assert missing == []


def test_table_names_are_plain_identifiers_and_unique_across_services() -> None:
    tables = research_tables()
    for name, (_service, table) in tables.items():
        assert re.fullmatch(r"[a-z][a-z0-9_]*", name), name
        assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", c) for c in table.columns), name
