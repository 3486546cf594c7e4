"""`optimus copy --to postgresql://...`: move an embedded warehouse or a Spark lake onto a PostgreSQL server."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from optimus.cli import render
from optimus.cli.common import ConfigOption, app, errors_as_messages, fail, load_settings, warehouse


@app.command()
def copy(
    to: str = typer.Option(..., "--to", help="The PostgreSQL warehouse to copy into: postgresql://user@host:port/db."),
    schema: str | None = typer.Option(None, "--schema", help="Schema to copy into (default: the warehouse_schema setting)."),
    cfg: Path | None = ConfigOption,
) -> None:
    """Copy every table of the embedded DuckDB warehouse or Spark lake (ledger included) into a PostgreSQL one.

    A lake is read through its DuckDB catalog (no Spark): its tables and the raw edX tables, not its manifest.

    Afterwards, set `warehouse` to the PostgreSQL URL: an ingest then ingests nothing that was copied.
    """
    settings = load_settings(cfg)
    if settings.warehouse_path() is None:
        fail(
            f"the configured warehouse {settings.warehouse_url} is neither an embedded DuckDB file nor a Spark lake; 'optimus copy' copies one into PostgreSQL"
        )
    if not to.startswith(("postgresql://", "postgres://")):
        fail(f"--to must be a postgresql:// URL, not {to!r}")
    target = dataclasses.replace(settings, warehouse=to, warehouse_schema=schema or settings.warehouse_schema)
    from optimus.transfer import copy_warehouse

    with warehouse(settings, read_only=True) as src, warehouse(target) as dst, errors_as_messages():
        report = copy_warehouse(src, dst, target)
    render.table(
        ("table", "rows"),
        ((name, f"{rows:,}") for name, rows in report.tables.items()),
        title=f"copied into {dst.url} (schema {target.warehouse_schema})",
        right=("rows",),
    )
    render.out.print(f'{len(report.tables)} tables copied; set warehouse = "{dst.url}" to use it')
