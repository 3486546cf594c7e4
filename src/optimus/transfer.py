"""`optimus copy`: an embedded warehouse moved onto PostgreSQL, its tables made by the pipeline's own DDL.

The orchestration half of the copy (the pipeline knows every service's tables); the storage half,
which moves the rows, is warehouse/transfer.py.
"""

from __future__ import annotations

from collections.abc import Callable

from optimus.config import Settings
from optimus.pipeline import Pipeline
from optimus.warehouse import Warehouse
from optimus.warehouse.transfer import CopyReport, copy_tables


def copy_warehouse(
    src: Warehouse, dst: Warehouse, dst_settings: Settings, progress: Callable[[str, int], None] | None = None
) -> CopyReport:
    """Copy every table of `src` (DuckDB) into `dst` (PostgreSQL), which must hold no warehouse yet."""
    return copy_tables(src, dst, Pipeline(dst_settings, dst).setup, progress)
