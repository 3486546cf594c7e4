"""`optimus intake`: decrypt edX deliveries into a data path."""
from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from optimus.cli.common import ConfigOption, app, errors_as_messages, load_settings, out, warehouse


@app.command()
def intake(
    sources: List[Path] = typer.Argument(..., help="Weekly package .zip files, package folders, .log.gz.gpg event files, or folders of them."),
    data_path: Optional[Path] = typer.Option(None, "--data-path", help="Data path to take them into (default: the configured one)."),
    cfg: Optional[Path] = ConfigOption,
) -> None:
    """Decrypt edX deliveries into the data path; move database_state/latest only when a package is whole."""
    from optimus.intake import take_in

    settings = load_settings(cfg)
    with warehouse(settings) as wh, errors_as_messages():
        report = take_in(settings, sources, wh, data_path=data_path)
    for source, target in report.taken:
        again = " (re-delivered with other content)" if source in report.redelivered else ""
        out.print(f"taken in {source} -> {target}{again}", highlight=False)
    for link, target in report.latest:
        out.print(f"{link} -> {target}", highlight=False)
    for source in report.unchanged:
        out.print(f"unchanged, taken in before: {source}", highlight=False)
    for source, why in report.excluded:
        out.print(f"excluded {source}: {why}", highlight=False)
    for path in report.failed_exports:
        out.print(f"[yellow]failed export[/] (edX could not export it; ask edX): {path}", highlight=False)
    for note in report.notes:
        out.print(f"note: {note}", highlight=False)
    for _source, message in report.failed:
        out.print(f"[red]failed[/] {message}; nothing of it was kept, latest not moved", highlight=False)
    if not report.ok:
        raise typer.Exit(1)
    if report.taken:
        out.print("now run 'optimus ingest'")


def encrypt_sample(directory: Path, gnupg_home: Optional[Path]) -> None:
    """`optimus sample DIR --encrypt --gnupg-home H`: the sample again, as edX would deliver it."""
    from optimus.cli.common import fail
    from optimus.intake.encrypt import default_delivery_dir, encrypt_delivery

    if gnupg_home is None:
        fail("--encrypt needs --gnupg-home H: the folder where the sample key is made (and later read by intake)")
        return
    target = default_delivery_dir(directory)
    with errors_as_messages():
        made = encrypt_delivery(directory, target, gnupg_home)
    out.print(
        f"wrote an encrypted delivery to {target}: {', '.join(made['packages'])} and {len(made['events'])} event file(s), "
        f"encrypted to key {made['key']} in {gnupg_home} (no passphrase: sample data only)",
        highlight=False,
    )
    out.print(f"take it in with: OPTIMUS_GNUPG_HOME={gnupg_home} optimus intake {target}/* --data-path DATA_PATH", highlight=False)
