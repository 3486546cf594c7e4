"""init, scan, ingest, retry, status, sql, sample: the commands of a one-shot ingest.

Each command parses its options, calls one method of the session (the local warehouse, or the
daemon that holds it: see optimus.cli.session) and prints the result through optimus.cli.render.
"""

from __future__ import annotations

from pathlib import Path

import typer

from optimus import config
from optimus.cli import render
from optimus.cli.common import ConfigOption, app, errors_as_messages, fail, load_settings
from optimus.cli.session import open_session


@app.command()
def init(path: Path = typer.Argument(Path(config.DEFAULT_CONFIG_NAME), help="Where to write the example config.")) -> None:
    """Write a commented example config file."""
    if path.exists():
        fail(f"{path} exists already; not overwriting it")
    path.write_text(config.example_config(), encoding="utf-8")
    render.out.print(f"wrote {path}: edit data_paths, then run 'optimus ingest --config {path}'")


@app.command()
def scan(cfg: Path | None = ConfigOption) -> None:
    """Register new and changed files, and print what was found per service."""
    settings = load_settings(cfg)
    with errors_as_messages():
        report = open_session(settings, render.notices()).scan()
    render.scan(report)


@app.command()
def ingest(
    service: list[str] | None = typer.Option(None, "--service", "-s", help="Run only this service (repeatable)."),
    file: Path | None = typer.Option(None, "--file", "-f", help="Ingest one file, by the service that claims it (or --service)."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Queue failed files again first (as 'optimus retry')."),
    cfg: Path | None = ConfigOption,
) -> None:
    """Scan, then run the due services once, with a progress bar per file and a summary at the end.

    Exits 1 while any file is failed (of this run or an earlier one: the warehouse lacks it), 0 when
    every file is done or damaged (damaged files loaded what could be read; they are reported)."""
    _ingest(load_settings(cfg), service, file, retry_failed)


@app.command()
def retry(
    service: list[str] | None = typer.Option(None, "--service", "-s", help="Retry only this service's failed files (repeatable)."),
    cfg: Path | None = ConfigOption,
) -> None:
    """Queue failed files again and ingest (damaged files are not retried: a re-delivery queues them)."""
    _ingest(load_settings(cfg), service, None, retry_failed=True)


def _ingest(settings: config.Settings, service: list[str] | None, file: Path | None, retry_failed: bool) -> None:
    """A running daemon is asked to scan instead (it holds the warehouse)."""
    with errors_as_messages():
        report = open_session(settings, render.live_feedback()).ingest(list(service) if service else None, file, retry_failed)
    render.ingest(report)
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def status(
    as_json: bool = typer.Option(
        False, "--json", help="Print JSON: {services: {Name: {queued, running, done, damaged, failed, last_run}}}."
    ),
    files: bool = typer.Option(False, "--files", help="List failed and damaged files, and files with quarantined lines or coerced values."),
    cfg: Path | None = ConfigOption,
) -> None:
    """Per service: files queued, running, done, damaged and failed, and the last run."""
    settings = load_settings(cfg)
    with errors_as_messages():
        report = open_session(settings, render.notices()).status(files)
    report.data = {
        "config": str(settings.config_file) if settings.config_file else None,
        "warehouse": settings.warehouse_shown(),
        **report.data,
    }
    render.status(report, as_json, settings.describe())


@app.command()
def sql(
    query: str = typer.Argument(..., help="One read-only query."),
    as_csv: bool = typer.Option(False, "--csv", help="Print CSV instead of a table."),
    cfg: Path | None = ConfigOption,
) -> None:
    """Run one read-only query on the warehouse and print the result."""
    settings = load_settings(cfg)
    with errors_as_messages():
        answer = open_session(settings, render.notices()).sql(query)
    render.answer(answer, as_csv)


@app.command()
def sample(
    directory: Path = typer.Argument(..., help="Folder to write the sample data path into."),
    courses: int = typer.Option(2, help="Number of courses."),
    learners: int = typer.Option(50, help="Number of learners."),
    days: int = typer.Option(7, help="Number of daily event files."),
    seed: int = typer.Option(1, help="Random seed: the same seed writes the same bytes."),
    encrypt: bool = typer.Option(False, "--encrypt", help="Also write an encrypted edX-style delivery beside it (DIR-delivery)."),
    gnupg_home: Path | None = typer.Option(None, "--gnupg-home", help="With --encrypt: GnuPG home where the sample key is made."),
) -> None:
    """Write a realistic edX data package (no real learner data) in the exact layout and formats."""
    from optimus.sample import generate

    bar = render.progress_bar()
    with bar:
        task = bar.add_task("writing sample package", total=None)
        manifest = generate(
            directory,
            courses=courses,
            learners=learners,
            days=days,
            seed=seed,
            progress=lambda label, n: bar.update(task, advance=n, description=label),
        )
    events = manifest["events"]
    forum_malformed = sum(int(f.get("malformed") or 0) for f in manifest["forums"].values())
    failed = manifest["database_state"]["failed"]
    render.out.print(
        f"wrote a sample package to {directory}: {len(manifest['courses'])} courses, {manifest['learners']['total']:,} learners, "
        f"{events['valid']:,} events in {len(events['files'])} daily files, "
        f"{len(manifest['database_state']['sql'])} .sql files, {len(manifest['forums'])} forum dumps",
        soft_wrap=True,
    )
    render.out.print(
        f"on purpose: {events['malformed'] + forum_malformed} malformed lines ({events['malformed']} in the event files, "
        f"{forum_malformed} in the forum dumps), which the ingest quarantines and counts the same way; "
        f"{len(failed)} failed export ({', '.join(Path(f).name for f in failed)}): a deliberately failed export, as edX "
        "delivers a table it could not export, which Optimus leaves alone",
        soft_wrap=True,
    )
    if encrypt:
        from optimus.cli.intake import encrypt_sample

        encrypt_sample(directory, gnupg_home)
