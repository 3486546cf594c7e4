"""`optimus intake`: decrypt edX deliveries into a data path."""

from __future__ import annotations

from pathlib import Path

import typer

from optimus.cli import render
from optimus.cli.common import ConfigOption, app, errors_as_messages, fail, load_settings, warehouse


@app.command()
def intake(
    sources: list[Path] = typer.Argument(
        ..., help="Weekly package .zip files, package folders, .log.gz.gpg event files, or folders of them."
    ),
    data_path: Path | None = typer.Option(None, "--data-path", help="Data path to take them into (default: the configured one)."),
    cfg: Path | None = ConfigOption,
) -> None:
    """Decrypt edX deliveries into the data path; move database_state/latest only when a package is whole."""
    from optimus.intake import take_in

    settings = load_settings(cfg)
    with warehouse(settings) as wh, errors_as_messages():
        report = take_in(settings, sources, wh, data_path=data_path)
    for source, target in report.taken:
        again = " (re-delivered with other content)" if source in report.redelivered else ""
        render.line(f"taken in {source} -> {target}{again}")
    for link, points_at in report.latest:
        render.line(f"{link} -> {points_at}")
    for source in report.unchanged:
        render.line(f"unchanged, taken in before: {source}")
    for source, why in report.excluded:
        render.line(f"excluded {source}: {why}")
    for path in report.failed_exports:
        render.line(f"[yellow]failed export[/] (edX could not export it; ask edX): {path}")
    for note in report.notes:
        render.line(f"note: {note}")
    for _source, message in report.failed:
        render.line(f"[red]failed[/] {message}; nothing of it was kept, latest not moved")
    if not report.ok:
        raise typer.Exit(1)
    if report.taken:
        render.out.print("now run 'optimus ingest'")


def encrypt_sample(directory: Path, gnupg_home: Path | None) -> None:
    """`optimus sample DIR --encrypt --gnupg-home H`: the sample again, as edX would deliver it."""
    from optimus.intake.encrypt import default_delivery_dir, encrypt_delivery

    if gnupg_home is None:
        fail("--encrypt needs --gnupg-home H: the folder where the sample key is made (and later read by intake)")
    target = default_delivery_dir(directory)
    with errors_as_messages():
        made = encrypt_delivery(directory, target, gnupg_home)
    render.out.print(
        f"wrote an encrypted delivery to {target}: {', '.join(made['packages'])} and {len(made['events'])} event file(s), "
        f"encrypted to key {made['key']} in {gnupg_home} (no passphrase: sample data only)",
        highlight=False,
    )
    render.line(f"take it in with: OPTIMUS_GNUPG_HOME={gnupg_home} optimus intake {target}/* --data-path DATA_PATH")
