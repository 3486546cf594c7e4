"""Warehouse backends: `connect(settings)` picks one from the configured URL."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from optimus.config import Settings
from optimus.warehouse.base import Warehouse


def connect(settings: Settings, read_only: bool = False, also_allowed: Sequence[Path] = ()) -> Warehouse:
    """Open the configured warehouse (creating a DuckDB file's folder if needed).

    A DuckDB file is shut off from the rest of the host as it opens (only the data paths, the spill
    folder and the files `also_allowed` for a writer; nothing for a reader), and a writer's engine is given
    memory_limit less what the services hold beside it, since its settings are locked from then on.
    """
    url = settings.warehouse_url
    if url.startswith("duckdb:"):
        from optimus.warehouse.duckdb import DuckDBWarehouse

        if read_only:
            return DuckDBWarehouse(settings, read_only=True)
        from optimus.services.base import bytes_outside_engine

        return DuckDBWarehouse(settings, outside_bytes=bytes_outside_engine(settings), also_allowed=also_allowed)
    from optimus.warehouse.postgres import PostgresWarehouse  # type: ignore[import-not-found]

    return PostgresWarehouse(settings, read_only=read_only)


__all__ = ["Warehouse", "connect"]
