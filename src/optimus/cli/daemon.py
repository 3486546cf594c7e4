"""run, serve: the daemon and the read-only API server."""

from __future__ import annotations

from pathlib import Path

import typer

from optimus.cli import render
from optimus.cli.common import ConfigOption, app, errors_as_messages, fail, load_settings, setup_logging
from optimus.config import Settings

LogFormat = typer.Option("text", "--log-format", help="text, or json (one object per line, for log collectors).")


def _logging(settings: Settings, log_format: str) -> None:
    if log_format not in ("text", "json"):
        fail(f"--log-format must be text or json, not {log_format!r}")
    setup_logging(settings, json_format=log_format == "json")


@app.command()
def run(
    port: int | None = typer.Option(None, "--port", help="API port (default: api_port from the config)."),
    settle: float = typer.Option(2.0, "--settle", help="Seconds a new file's size and time must stay the same before it is taken."),
    watch: bool = typer.Option(True, "--watch/--no-watch", help="Scan at once when files appear (a file-system watch)."),
    log_format: str = LogFormat,
    cfg: Path | None = ConfigOption,
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
    port: int | None = typer.Option(None, "--port", help="API port (default: api_port from the config)."),
    log_format: str = LogFormat,
    cfg: Path | None = ConfigOption,
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
        render.notice(f"serving {settings.warehouse_url} read-only at http://{settings.api_host}:{settings.api_port}/ (dashboard: /ui/)")
        uvicorn.run(
            create_app(settings, views, ServerState(mode="serve", ready=True)),
            host=settings.api_host,
            port=settings.api_port,
            log_level="warning",
            access_log=False,
        )
    finally:
        views.close()
        wh.close()
