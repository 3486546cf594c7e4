"""Warehouse backends: `connect(settings)` picks one from the configured URL."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from optimus.config import Settings
from optimus.warehouse.base import Warehouse


def connect(settings: Settings, read_only: bool = False, also_allowed: Sequence[Path] = (), outside_bytes: int = 0) -> Warehouse:
    """Open the configured warehouse (creating a DuckDB file's folder if needed); a Spark warehouse
    (spark:///lake) opened read-only is DuckDB over its catalog, no JVM (warehouse/spark.py).

    A DuckDB file is shut off from the rest of the host as it opens (only the data paths, the spill
    folder and the files `also_allowed` for a writer; nothing for a reader), and a writer's engine is given
    memory_limit less `outside_bytes`, since its settings are locked from then on.

    :param outside_bytes: the most the caller's process holds beside the engine while it writes (the
        services' blocks read ahead: the pipeline's `open_warehouse` passes them); a reader holds none.
    """
    url = settings.warehouse_url
    if url.startswith("duckdb:"):
        from optimus.warehouse.duckdb import DuckDBWarehouse

        if read_only:
            return DuckDBWarehouse(settings, read_only=True)
        return DuckDBWarehouse(settings, outside_bytes=outside_bytes, also_allowed=also_allowed)
    if url.startswith("spark:"):
        from optimus.warehouse.spark import SparkWarehouse, lake_reader

        if read_only:
            return lake_reader(settings)
        return SparkWarehouse(settings, outside_bytes=outside_bytes, also_allowed=also_allowed)
    from optimus.warehouse.postgres import PostgresWarehouse

    return PostgresWarehouse(settings, read_only=read_only)


__all__ = ["Warehouse", "connect"]
