"""run, serve: the daemon and the read-only API server; and how other commands reach a running daemon."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from optimus.cli.common import ConfigOption, app, console, errors_as_messages, fail, load_settings, out, setup_logging
from optimus.client import DaemonClient, remote_daemon
from optimus.config import Settings

LogFormat = typer.Option("text", "--log-format", help="text, or json (one object per line, for log collectors).")


def _logging(settings: Settings, log_format: str) -> None:
    if log_format not in ("text", "json"):
        fail(f"--log-format must be text or json, not {log_format!r}")
    setup_logging(settings, json_format=log_format == "json")


@app.command()
def run(
    port: Optional[int] = typer.Option(None, "--port", help="API port (default: api_port from the config)."),
    settle: float = typer.Option(2.0, "--settle", help="Seconds a new file's size and time must stay the same before it is taken."),
    watch: bool = typer.Option(True, "--watch/--no-watch", help="Scan at once when files appear (a file-system watch)."),
    log_format: str = LogFormat,
    cfg: Optional[Path] = ConfigOption,
) -> None:
    """Run as a daemon: scan the data paths every rescan_interval seconds (and when files appear), ingest, serve the API."""
    from optimus.daemon import Daemon

    settings = load_settings(cfg)
    if port is not None:
        settings.api_port = port
    _logging(settings, log_format)
    with errors_as_messages():
        code = Daemon(settings, settle=settle, watch=watch).run()
    raise typer.Exit(code)


@app.command()
def serve(
    port: Optional[int] = typer.Option(None, "--port", help="API port (default: api_port from the config)."),
    log_format: str = LogFormat,
    cfg: Optional[Path] = ConfigOption,
) -> None:
    """Serve the API and dashboard without ingesting, for a warehouse no daemon is writing."""
    import uvicorn

    from optimus.api.app import create_app
    from optimus.api.state import ReadViews, ServerState
    from optimus.warehouse import connect

    settings = load_settings(cfg)
    if port is not None:
        settings.api_port = port
    _logging(settings, log_format)
    with errors_as_messages():
        wh = connect(settings, read_only=True)  # an instance of this process's own: read-only, shut off from every file
    views = ReadViews(settings, wh)
    try:
        console.print(f"serving {settings.warehouse_url} read-only at http://{settings.api_host}:{settings.api_port}/ (dashboard: /ui/)")
        uvicorn.run(create_app(settings, views, ServerState(mode="serve", ready=True)), host=settings.api_host,
                    port=settings.api_port, log_level="warning", access_log=False)
    finally:
        views.close()
        wh.close()


# -- the other commands, while a daemon holds the warehouse -------------------------------------------
def remote(settings: Settings) -> DaemonClient | None:
    """The running daemon's client, announced on stderr; None when no daemon holds the warehouse."""
    client = remote_daemon(settings)
    if client is not None:
        console.print(f"a daemon holds the warehouse; asking it at {client.base_url}", highlight=False)
    return client


def remote_status(client: DaemonClient, as_json: bool, files: bool) -> None:
    from optimus.cli.core import print_status

    fields = ("service", "path", "state", "rows_loaded", "rows_quarantined", "coerced", "error", "damage")
    with errors_as_messages():
        data = client.status()
        listed = client.files_worth_a_look() if files else []
    print_status(data, [{k: f.get(k) for k in fields} for f in listed], as_json, files)


def remote_sql(client: DaemonClient, query: str, as_csv: bool) -> None:
    """The daemon runs it through its API: the same rules and caps as a local query."""
    from optimus.cli.core import print_answer

    with errors_as_messages():
        names, rows, note = client.sql(query)
    print_answer(names, rows, note, as_csv)


def remote_ingest(client: DaemonClient, service: Optional[list[str]], file: Optional[Path]) -> None:
    if service or file is not None:
        fail("a daemon is ingesting this warehouse: --service and --file are not available; "
             "put the file in a data path (the daemon takes it) or stop the daemon first")
    with errors_as_messages():
        answer = client.newdata()
        services = client.status().get("services", {})
    out.print(f"the daemon is ingesting this warehouse; asked it to scan now: {answer}")
    failed = sum(int(s.get("failed") or 0) for s in services.values())
    if failed:  # the same exit rule as a local ingest: the warehouse lacks these files
        out.print(f"[red]{failed} file(s) failed[/] and are not in the warehouse; see 'optimus status --files'", highlight=False)
        raise typer.Exit(1)
