"""init, scan, ingest, status, sql, sample: the commands of a one-shot ingest."""
from __future__ import annotations

import csv
import logging
import json
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from optimus import config, ledger
from optimus.cli.common import (
    BarProgress, ConfigOption, app, console, errors_as_messages, fail, load_settings, out, progress_bar, setup_logging, warehouse,
)
from optimus.pipeline import Pipeline, RunSummary, file_message


@app.command()
def init(path: Path = typer.Argument(Path(config.DEFAULT_CONFIG_NAME), help="Where to write the example config.")) -> None:
    """Write a commented example config file."""
    if path.exists():
        fail(f"{path} exists already; not overwriting it")
    path.write_text(config.example_config(), encoding="utf-8")
    out.print(f"wrote {path}: edit data_paths, then run 'optimus ingest --config {path}'")


@app.command()
def scan(cfg: Optional[Path] = ConfigOption) -> None:
    """Register new and changed files, and print what was found per service."""
    settings = load_settings(cfg)
    with warehouse(settings) as wh, errors_as_messages():
        pipeline = Pipeline(settings, wh)
        pipeline.setup()
        report = pipeline.scan()
        _print_scan(report)


def _print_scan(report: ledger.RegisterReport) -> None:
    table = Table(title="scan")
    table.add_column("service")
    table.add_column("new", justify="right")
    table.add_column("changed", justify="right")
    for service in sorted(set(report.new) | set(report.changed)):
        table.add_row(service, str(report.new.get(service, 0)), str(report.changed.get(service, 0)))
    out.print(table)
    out.print(f"{report.unchanged} unchanged files; {report.unclaimed} files claimed by no active service")
    reasons: dict[str, int] = {}
    for _path, reason in report.skipped:
        reasons[reason] = reasons.get(reason, 0) + 1
    for reason, n in sorted(reasons.items()):
        out.print(f"not ingested: {n} file(s): {reason}")


@app.command()
def ingest(
    service: Optional[List[str]] = typer.Option(None, "--service", "-s", help="Run only this service (repeatable)."),
    file: Optional[Path] = typer.Option(None, "--file", "-f", help="Ingest one file, by the service that claims it (or --service)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Queue failed files again first (as 'optimus retry')."),
    cfg: Optional[Path] = ConfigOption,
) -> None:
    """Scan, then run the due services once, with a progress bar per file and a summary at the end.

    Exits 1 while any file is failed (of this run or an earlier one: the warehouse lacks it), 0 when
    every file is done or damaged (damaged files loaded what could be read; they are reported)."""
    _ingest(load_settings(cfg), service, file, retry_failed)


@app.command()
def retry(
    service: Optional[List[str]] = typer.Option(None, "--service", "-s", help="Retry only this service's failed files (repeatable)."),
    cfg: Optional[Path] = ConfigOption,
) -> None:
    """Queue failed files again and ingest (damaged files are not retried: a re-delivery queues them)."""
    _ingest(load_settings(cfg), service, None, retry_failed=True)


def _ingest(settings: config.Settings, service: Optional[List[str]], file: Optional[Path], retry_failed: bool) -> None:
    from optimus.cli import daemon as remote  # a running daemon ingests; ask it to scan instead

    if (client := remote.remote(settings)) is not None:
        if retry_failed:
            fail("a daemon is ingesting this warehouse: stop it to retry failed files (or re-deliver them: a changed file is queued)")
        return remote.remote_ingest(client, service, file)
    setup_logging(settings, level=logging.WARNING)  # warnings and errors only; the table says the rest
    named = [file.resolve()] if file is not None else []  # a file named here may lie outside the data paths
    with warehouse(settings, also_allowed=named) as wh, errors_as_messages():
        bar = progress_bar()
        pipeline = Pipeline(settings, wh, progress=lambda: BarProgress(bar))
        requeued = pipeline.setup()
        if requeued:
            console.print(f"{requeued} file(s) left running by an interrupted run were queued again")
        if retry_failed:
            console.print(f"{pipeline.retry_failed(list(service) if service else None)} failed file(s) queued again")
        if file is not None:
            if service and len(service) > 1:
                fail("--file takes at most one --service")
            pipeline.register_file(file, service[0] if service else None)
        else:
            _print_scan(pipeline.scan())
        with bar:
            summary = pipeline.run_once(only=list(service) if service else None)
        _print_summary(summary)
        failed, damaged = pipeline.failed_files(), pipeline.damaged_files()
    if damaged:
        out.print(f"[yellow]{damaged} damaged file(s)[/] loaded what could be read; see 'optimus status --files'", highlight=False)
    if failed:
        out.print(f"[red]{failed} file(s) failed[/] and are not in the warehouse; see 'optimus status --files', "
                  "fix them, then 'optimus retry'", highlight=False)
    if failed or summary.failed:
        raise typer.Exit(1)


def _print_summary(summary: RunSummary) -> None:
    if not summary.services:
        out.print("nothing to do: every file is ingested and every derived table is up to date")
        return
    table = Table(title="ingest")
    for col in ("service", "status", "files", "rows", "seconds"):
        table.add_column(col, justify="right" if col in ("files", "rows", "seconds") else "left")
    for s in summary.services:
        table.add_row(s.service, s.label, str(s.files), f"{s.rows:,}", f"{s.seconds:.2f}")
    out.print(table)
    quarantined = sum(f.quarantined for f in summary.files)
    if quarantined:
        out.print(f"{quarantined:,} malformed line(s) quarantined; see 'optimus status --files'")
    for f in summary.files:
        if f.state in ("failed", "damaged"):
            colour = "red" if f.state == "failed" else "yellow"
            out.print(f"[{colour}]{f.state}[/] {file_message(f.path, f.error)}", highlight=False)
    for s in summary.services:
        if s.status == "failed":
            out.print(f"[red]failed[/] {s.service}: {s.error}", highlight=False)


def status_data(wh) -> dict:  # type: ignore[no-untyped-def]
    """The figures behind `optimus status --json`."""
    from optimus.pipeline import order
    from optimus.services.base import load_services

    counts = ledger.counts(wh)
    last = dict(wh.query("SELECT service, max(finished_at) FROM service_runs WHERE status = 'ok' GROUP BY service"))
    services = {}
    for name in order(load_services()):
        c = counts.get(name, {s: 0 for s in ledger.STATES})
        finished = last.get(name)
        services[name] = {**c, "last_run": finished.isoformat() if finished else None}
    from optimus.geo import staleness_warning

    return {"services": services, "warnings": [w for w in [staleness_warning(wh)] if w]}


@app.command()
def status(
    as_json: bool = typer.Option(False, "--json", help="Print JSON: {services: {Name: {queued, running, done, damaged, failed, last_run}}}."),
    files: bool = typer.Option(False, "--files", help="List failed and damaged files, and files with quarantined lines or coerced values."),
    cfg: Optional[Path] = ConfigOption,
) -> None:
    """Per service: files queued, running, done, damaged and failed, and the last run."""
    settings = load_settings(cfg)
    from optimus.cli import daemon as remote  # a running daemon holds the warehouse; ask it

    if (client := remote.remote(settings)) is not None:
        return remote.remote_status(client, as_json, files)
    with warehouse(settings, read_only=True) as wh, errors_as_messages():
        from optimus.warehouse import schema

        if schema.current_version(wh) == 0:
            fail("the warehouse has never been ingested into; run 'optimus ingest' first")
        data = status_data(wh)
        listed = ledger.attention(wh) if files else []
    print_status(data, listed, as_json, files)


def print_status(data: dict, files_listed: list[dict], as_json: bool, files: bool) -> None:
    """`optimus status` output, whether the figures came from the warehouse or a running daemon.

    With --files, `files_listed` holds one dict per file worth a look (ledger.attention): service,
    path, state, rows_loaded, rows_quarantined, coerced, error, damage."""
    if as_json:
        if files:
            data["files"] = files_listed
            data["failed_files"] = [{k: f.get(k) for k in ("service", "path", "error")} for f in files_listed if f.get("state") == "failed"]
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        return
    table = Table(title="status")
    for col in ("service", "queued", "running", "done", "damaged", "failed", "last run"):
        table.add_column(col, justify="left" if col in ("service", "last run") else "right")
    for name, s in data["services"].items():
        table.add_row(name, str(s["queued"]), str(s["running"]), str(s["done"]), str(s.get("damaged", 0)), str(s["failed"]),
                      s["last_run"] or "-")
    out.print(table)
    for warning in data.get("warnings", []):
        out.print(f"[yellow]warning:[/] {warning}", highlight=False)
    if not files:
        return
    if not files_listed:
        out.print("no failed or damaged files, no quarantined lines, no coerced values")
        return
    listing = Table(title="files to look at")
    for col in ("service", "state", "loaded", "quarantined", "coerced", "path", "error or damage"):
        listing.add_column(col, justify="right" if col in ("loaded", "quarantined", "coerced") else "left", overflow="fold")
    for f in files_listed:
        listing.add_row(f["service"], f["state"], str(f.get("rows_loaded") or 0), str(f.get("rows_quarantined") or 0),
                        str(f.get("coerced") or 0), f["path"], f.get("error") or f.get("damage") or "")
    out.print(listing)


@app.command()
def sql(
    query: str = typer.Argument(..., help="One read-only query."),
    as_csv: bool = typer.Option(False, "--csv", help="Print CSV instead of a table."),
    cfg: Optional[Path] = ConfigOption,
) -> None:
    """Run one read-only query on the warehouse and print the result."""
    settings = load_settings(cfg)
    from optimus.cli import daemon as remote  # a running daemon holds the warehouse; ask it

    if (client := remote.remote(settings)) is not None:
        return remote.remote_sql(client, query, as_csv)
    from optimus.errors import QueryRefused
    from optimus.warehouse.base import QUERY_MAX_BYTES, QUERY_MAX_ROWS, QUERY_TIMEOUT_SECONDS

    with warehouse(settings, read_only=True) as wh:  # an instance of its own, shut off from the host
        try:
            answer = wh.read_only_query(query, max_rows=QUERY_MAX_ROWS, max_bytes=QUERY_MAX_BYTES, timeout=QUERY_TIMEOUT_SECONDS)
        except QueryRefused as exc:
            fail(f"query refused: {exc}")
        except Exception as exc:  # the engine's own message says what is wrong with the query
            fail(f"query failed: {exc}")
    print_answer(answer.columns, [list(r) for r in answer.rows], answer.note, as_csv)


def print_answer(names: list[str], rows: list[list], note: str | None, as_csv: bool) -> None:
    """`optimus sql` output, whether the answer came from the warehouse or a running daemon; the
    note (where a capped answer was cut) goes to stderr, so that CSV stays data only."""
    if as_csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(names)
        writer.writerows(rows)
    else:
        table = Table()
        for name in names:
            table.add_column(name)
        for r in rows:
            table.add_row(*("" if v is None else str(v) for v in r))
        out.print(table)
        out.print(f"{len(rows)} row(s)")
    if note:
        console.print(f"[yellow]note:[/] {note}", highlight=False)


@app.command()
def sample(
    directory: Path = typer.Argument(..., help="Folder to write the sample data path into."),
    courses: int = typer.Option(2, help="Number of courses."),
    learners: int = typer.Option(50, help="Number of learners."),
    days: int = typer.Option(7, help="Number of daily event files."),
    seed: int = typer.Option(1, help="Random seed: the same seed writes the same bytes."),
    encrypt: bool = typer.Option(False, "--encrypt", help="Also write an encrypted edX-style delivery beside it (DIR-delivery)."),
    gnupg_home: Optional[Path] = typer.Option(None, "--gnupg-home", help="With --encrypt: GnuPG home where the sample key is made."),
) -> None:
    """Write a realistic edX data package (no real learner data) in the exact layout and formats."""
    from optimus.sample import generate

    bar = progress_bar()
    with bar:
        task = bar.add_task("writing sample package", total=None)
        manifest = generate(directory, courses=courses, learners=learners, days=days, seed=seed,
                            progress=lambda label, n: bar.update(task, advance=n, description=label))
    events = manifest["events"]
    out.print(
        f"wrote a sample package to {directory}: {len(manifest['courses'])} courses, {manifest['learners']['total']:,} learners, "
        f"{events['valid']:,} events in {len(events['files'])} daily files ({events['malformed']} malformed lines on purpose), "
        f"{len(manifest['database_state']['sql'])} .sql files, {len(manifest['forums'])} forum dumps"
    )
    if encrypt:
        from optimus.cli.intake import encrypt_sample

        encrypt_sample(directory, gnupg_home)
