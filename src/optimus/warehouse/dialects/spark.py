"""Spark SQL's spelling of the fragments (a minimal stand-in: the dialect work of issue 21 fills it in).

transactions=True: a Spark warehouse publishes a statement's Parquet parts by listing them in its
DuckDB catalog, in the catalog's transaction, together with the ledger (warehouse/spark.py)."""

from __future__ import annotations

from optimus.warehouse.dialects.base import Capabilities, Dialect


class SparkDialect(Dialect):
    name = "spark"
    capabilities = Capabilities(scans_arrow_in_place=False, prunes_by_min_max=False, transactions=True)
