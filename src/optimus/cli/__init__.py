"""The `optimus` command: parse, call optimus functions, print. Each module adds its commands to `app`."""

from __future__ import annotations

from optimus.cli.common import app

# The order of these imports is the order `optimus --help` lists the commands in: not sorted.
# isort: off
from optimus.cli import core  # noqa: F401  (registers init, scan, ingest, status, sql, sample)
from optimus.cli import derived  # noqa: F401  (registers recompute, export)
from optimus.cli import release  # noqa: F401  (registers release)
from optimus.cli import intake  # noqa: F401  (registers intake)
from optimus.cli import copy  # noqa: F401  (registers copy)
from optimus.cli import daemon  # noqa: F401  (registers run, serve)
# isort: on

__all__ = ["app"]
