"""The pipeline picks its exactly-once strategy from the engine's capabilities, never its name:
an engine without multi-statement transactions is refused plainly (docs/architecture.md), before
anything is written, instead of ingesting without the guarantee."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

from optimus.config import Settings
from optimus.errors import WarehouseError
from optimus.pipeline import Pipeline
from optimus.warehouse import Warehouse, connect


class _WithoutTransactions:
    """A real warehouse that declares it has no multi-statement transactions (all else is the real one's)."""

    def __init__(self, wh: Any) -> None:
        self._wh = wh
        self.capabilities = dataclasses.replace(wh.capabilities, transactions=False)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._wh, name)


def test_an_engine_without_transactions_is_refused_before_anything_is_written(
    settings_for: Callable[..., Settings], data_path: Path
) -> None:
    settings = settings_for(data_path)
    wh = connect(settings)
    try:
        with pytest.raises(WarehouseError, match="no multi-statement transactions.*docs/architecture.md"):
            Pipeline(settings, cast(Warehouse, _WithoutTransactions(wh)))
        assert not wh.table_exists("ingest_files")  # refused before the ledger was made
        pipeline = Pipeline(settings, wh)  # the same engine, declaring transactions, is taken
        assert pipeline.setup() == 0 and wh.table_exists("ingest_files")
    finally:
        wh.close()
