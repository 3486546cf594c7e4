"""What every command shares: the Typer app, settings loading, warehouse opening, error printing."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import typer
from rich.markup import escape

from optimus import config
from optimus.cli import render
from optimus.errors import OptimusError
from optimus.pipeline import open_warehouse
from optimus.warehouse import Warehouse

app = typer.Typer(help="Optimus: ingest the edX research data package into a warehouse you can query.", no_args_is_help=True)

ConfigOption = typer.Option(None, "--config", "-c", help="Config file (default: $OPTIMUS_CONFIG or ./optimus.toml).")


def load_settings(path: Path | None) -> config.Settings:
    """The settings, and a line on stderr saying which config and warehouse this command uses (stdout stays data)."""
    try:
        settings = config.load(path)
    except OptimusError as exc:
        fail(str(exc))
    render.notice(escape(f"using {settings.describe()}"))
    return settings


def fail(message: str, code: int = 2) -> NoReturn:
    render.error(message)
    raise typer.Exit(code)


@contextmanager
def errors_as_messages() -> Iterator[None]:
    """Our own errors become one clear line and a non-zero exit, never a traceback."""
    try:
        yield
    except OptimusError as exc:
        fail(str(exc))


@contextmanager
def warehouse(settings: config.Settings, read_only: bool = False, also_allowed: Sequence[Path] = ()) -> Iterator[Warehouse]:
    """The warehouse, open for the command; `also_allowed`: files the engine may read besides the data paths'."""
    with errors_as_messages():
        wh = open_warehouse(settings, read_only=read_only, also_allowed=also_allowed)
    try:
        yield wh
    finally:
        wh.close()


def setup_logging(settings: config.Settings, json_format: bool = False, level: int = logging.INFO) -> None:
    """One line per file ingested or failed, to stderr and (if configured) a log file."""
    from optimus.logs import configure

    configure(settings.log_file, json_format=json_format, level=level)
