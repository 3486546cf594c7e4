"""Everything the CLI prints, in one place: data to stdout (a table, JSON or CSV), notices to stderr.

Three functions write data, whatever the command: `table`, `as_json`, `as_csv`; `line` writes one
line of text and `notice` one line to stderr. The rest of this module turns a command's result
(a scan report, a run summary, a status, a query answer) into those, so a result prints the same
whether the local warehouse or a running daemon produced it.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichBar
from rich.table import Table

from optimus import ledger
from optimus.cli.session import Feedback, IngestReport, StatusReport
from optimus.pipeline import RunSummary, file_message
from optimus.services.base import Progress
from optimus.warehouse.base import QueryAnswer

SKIPPED_NAMED = 10  # files named per reason a scan did not ingest; the rest are in ingest_skipped
console = Console(stderr=True)  # notices, errors and progress bars
out = Console()  # the data a command prints


# -- the kinds of output -------------------------------------------------------------------------
def table(
    columns: Sequence[str], rows: Iterable[Sequence[str]], *, title: str | None = None, right: Sequence[str] = (), fold: bool = False
) -> None:
    """A Rich table on stdout; `right`: the columns aligned right (numbers); `fold`: wrap long cells."""
    shown = Table(title=title)
    for name in columns:
        shown.add_column(
            name, justify="right" if name in right else "left", overflow="fold" if fold else "ellipsis"
        )  # ellipsis: Rich's default
    for row in rows:
        shown.add_row(*row)
    out.print(shown)


def as_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def as_csv(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    writer = csv.writer(sys.stdout)
    writer.writerow(columns)
    writer.writerows(rows)


def line(text: str) -> None:
    """One line of text on stdout (Rich markup such as [red] allowed, no automatic highlighting)."""
    out.print(text, highlight=False)


def notice(text: str) -> None:
    """One line on stderr: what the command did on the side, never data (never wrapped: a path stays whole)."""
    console.print(text, highlight=False, soft_wrap=True)


def error(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)


# -- progress --------------------------------------------------------------------------------------
class BarProgress(Progress):
    """A Rich progress bar per file; rows are counted as they are written."""

    def __init__(self, bar: RichBar) -> None:
        self.bar = bar
        self.task: TaskID | None = None

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


def notices() -> Feedback:
    """What a session shows of its work: notices on stderr (e.g. that a daemon is asked)."""
    return Feedback(notice=notice)


def live_feedback() -> Feedback:
    """What a local ingest shows while it works: notices on stderr, the scan table, a bar per file."""
    bar = progress_bar()
    return Feedback(notice=notice, scanned=scan, progress=lambda: BarProgress(bar), running=lambda: bar)


# -- what the commands print -----------------------------------------------------------------------
def scan(report: ledger.RegisterReport) -> None:
    services = sorted(set(report.new) | set(report.changed))
    table(
        ("service", "new", "changed"),
        ((s, str(report.new.get(s, 0)), str(report.changed.get(s, 0))) for s in services),
        title="scan",
        right=("new", "changed"),
    )
    out.print(f"{report.unchanged} unchanged files; {report.unclaimed} files claimed by no active service")
    by_reason: dict[str, list[str]] = {}
    for path, reason in report.skipped:
        by_reason.setdefault(reason, []).append(path)
    for reason, paths in sorted(by_reason.items()):
        out.print(escape(f"not ingested: {len(paths)} file(s): {reason}"), highlight=False, soft_wrap=True)
        for path in sorted(paths)[:SKIPPED_NAMED]:
            out.print(escape(f"  {path}"), highlight=False, soft_wrap=True)
        if len(paths) > SKIPPED_NAMED:
            out.print(f'  ... and {len(paths) - SKIPPED_NAMED} more (all of them: optimus sql "SELECT path, reason FROM ingest_skipped")')


def run_summary(summary: RunSummary) -> None:
    """The table at the end of an ingest, and each failed or damaged file and failed service."""
    if not summary.services:
        out.print("nothing to do: every file is ingested and every derived table is up to date")
        return
    table(
        ("service", "status", "files", "rows", "seconds"),
        ((s.service, s.label, str(s.files), f"{s.rows:,}", f"{s.seconds:.2f}") for s in summary.services),
        title="ingest",
        right=("files", "rows", "seconds"),
    )
    for s in summary.services:
        if s.tables:
            out.print(f"{s.service} rows per table: {per_table(s.tables)}", highlight=False, soft_wrap=True)
    quarantined = sum(f.quarantined for f in summary.files)
    if quarantined:
        per_service: dict[str, int] = {}
        for f in summary.files:
            if f.quarantined:
                per_service[f.service] = per_service.get(f.service, 0) + f.quarantined
        parts = ", ".join(f"{s} {n:,}" for s, n in per_service.items())
        out.print(f"{quarantined:,} malformed line(s) quarantined ({parts}); see 'optimus status --files'", soft_wrap=True)
    for f in summary.files:
        if f.state in ("failed", "damaged"):
            colour = "red" if f.state == "failed" else "yellow"
            line(f"[{colour}]{f.state}[/] {file_message(f.path, f.error)}")
    for s in summary.services:
        if s.status == "failed":
            line(f"[red]failed[/] {s.service}: {s.error}")


def ingest(report: IngestReport) -> None:
    """The run (or the daemon's answer), then what the warehouse still lacks (of this run or an earlier one)."""
    if report.summary is not None:
        run_summary(report.summary)
    if report.asked_daemon is not None:
        out.print(f"the daemon is ingesting this warehouse; asked it to scan now: {report.asked_daemon}")
    if report.damaged:
        line(f"[yellow]{report.damaged} damaged file(s)[/] loaded what could be read; see 'optimus status --files'")
    if report.failed:
        advice = "" if report.asked_daemon is not None else ", fix them, then 'optimus retry'"
        line(f"[red]{report.failed} file(s) failed[/] and are not in the warehouse; see 'optimus status --files'{advice}")


def per_table(tables: dict[str, int]) -> str:
    return ", ".join(f"{name} {n:,}" for name, n in tables.items())


def recompute(summary: RunSummary) -> None:
    for s in summary.services:
        rows = per_table(s.tables) if s.tables else f"{s.rows:,}"
        line(f"{s.service}: {s.label}, {rows} rows, {s.seconds:.2f}s" + (f": {s.error}" if s.error else ""))


def status(report: StatusReport, json_output: bool, where: str = "") -> None:
    """`optimus status`; with --files, `report.files` holds one dict per file worth a look
    (ledger.attention): service, path, state, rows_loaded, rows_quarantined, coerced, error, damage.
    `where`: which config and warehouse (the JSON has them as `config` and `warehouse`)."""
    data, files_listed = report.data, report.files
    if json_output:
        if files_listed is not None:
            data["files"] = files_listed
            data["failed_files"] = [{k: f.get(k) for k in ("service", "path", "error")} for f in files_listed if f.get("state") == "failed"]
        as_json(data)
        return
    if where:
        out.print(escape(where), highlight=False, soft_wrap=True)
    table(
        ("service", "queued", "running", "done", "damaged", "failed", "last run"),
        (
            (name, str(s["queued"]), str(s["running"]), str(s["done"]), str(s.get("damaged", 0)), str(s["failed"]), s["last_run"] or "-")
            for name, s in data["services"].items()
        ),
        title="status",
        right=("queued", "running", "done", "damaged", "failed"),
    )
    for warning in data.get("warnings", []):
        line(f"[yellow]warning:[/] {warning}")
    if files_listed is None:
        return
    if not files_listed:
        out.print("no failed or damaged files, no quarantined lines, no coerced values")
        return
    table(
        ("service", "state", "loaded", "quarantined", "coerced", "path", "error or damage"),
        (
            (
                f["service"],
                f["state"],
                str(f.get("rows_loaded") or 0),
                str(f.get("rows_quarantined") or 0),
                str(f.get("coerced") or 0),
                f["path"],
                f.get("error") or f.get("damage") or "",
            )
            for f in files_listed
        ),
        title="files to look at",
        right=("loaded", "quarantined", "coerced"),
        fold=True,
    )


def answer(result: QueryAnswer, csv_output: bool) -> None:
    """`optimus sql`; the note (where a capped answer was cut) goes to stderr, so that CSV stays data only."""
    if csv_output:
        as_csv(result.columns, result.rows)
    else:
        table(result.columns, (tuple("" if v is None else str(v) for v in r) for r in result.rows))
        out.print(f"{len(result.rows)} row(s)")
    if result.note:
        notice(f"[yellow]note:[/] {result.note}")
