"""What every command shares: the Typer app, settings loading, warehouse opening, error printing."""
from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Sequence

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress as RichBar, TextColumn, TimeElapsedColumn

from optimus import config
from optimus.errors import OptimusError
from optimus.services.base import Progress
from optimus.warehouse import Warehouse, connect

app = typer.Typer(help="Optimus: ingest the edX research data package into a warehouse you can query.", no_args_is_help=True)
console = Console(stderr=True)
out = Console()

ConfigOption = typer.Option(None, "--config", "-c", help="Config file (default: $OPTIMUS_CONFIG or ./optimus.toml).")


def load_settings(path: Optional[Path]) -> config.Settings:
    try:
        return config.load(path)
    except OptimusError as exc:
        fail(str(exc))
        raise  # unreachable


def fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
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
        wh = connect(settings, read_only=read_only, also_allowed=also_allowed)
    try:
        yield wh
    finally:
        wh.close()


def setup_logging(settings: config.Settings, json_format: bool = False, level: int = logging.INFO) -> None:
    """One line per file ingested or failed, to stderr and (if configured) a log file."""
    from optimus.logs import configure

    configure(settings.log_file, json_format=json_format, level=level)


class BarProgress(Progress):
    """A Rich progress bar per file; rows are counted as they are written."""

    def __init__(self, bar: RichBar) -> None:
        self.bar = bar
        self.task: int | None = None

    def start(self, label: str, total: int | None = None) -> None:
        self.task = self.bar.add_task(label, total=total)

    def advance(self, amount: int = 1) -> None:
        if self.task is not None:
            self.bar.update(self.task, advance=amount)

    def note(self, text: str) -> None:
        self.bar.console.print(text, highlight=False)

    def end(self) -> None:
        if self.task is not None:
            task = self.bar.tasks[-1] if self.bar.tasks else None
            self.bar.update(self.task, total=task.completed if task else 1, completed=task.completed if task else 1)
            self.task = None


def progress_bar() -> RichBar:
    return RichBar(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        TextColumn("{task.completed:>10,.0f} rows"),
        TimeElapsedColumn(),
        console=console,
        transient=not sys.stderr.isatty(),
        disable=not sys.stderr.isatty(),
    )
