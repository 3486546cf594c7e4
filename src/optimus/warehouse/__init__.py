"""Warehouse backends: `connect(settings)` picks one from the configured URL."""
from __future__ import annotations

from optimus.config import Settings
from optimus.warehouse.base import Warehouse


def connect(settings: Settings, read_only: bool = False) -> Warehouse:
    """Open the configured warehouse (creating a DuckDB file's folder if needed)."""
    url = settings.warehouse_url
    if url.startswith("duckdb:"):
        from optimus.warehouse.duckdb import DuckDBWarehouse

        return DuckDBWarehouse(settings, read_only=read_only)
    from optimus.warehouse.postgres import PostgresWarehouse  # type: ignore[import-not-found]

    return PostgresWarehouse(settings, read_only=read_only)


__all__ = ["Warehouse", "connect"]
