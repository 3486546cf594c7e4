"""The service registry: the loader lives above the services (optimus.services), and what a service module
reads from the registry (REGISTRY) already holds every built-in however the first import came."""

from __future__ import annotations

import subprocess
import sys

BUILT_INS = [
    "Clickstream",
    "DatabaseState",
    "DiscussionForums",
    "CourseStructure",
    "IPToCountry",
    "TimeFinder",
    "PersonCourse",
    "EmailCRM",
    # the research tables (issues 17, 18), after the original's eight
    "CourseAxis",
    "Grades",
    "Enrollment",
    "UserInfoCombo",
    "ForumActivity",
    "VideoAnalysis",
    "TimeOnTask",
    "TimeOnAsset",
    "ShowAnswer",
    "ProblemAnalysis",
    "ProblemEvents",
]


def fresh(code: str) -> str:
    """What `code` prints in a new interpreter (nothing of optimus imported yet)."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_load_services_lists_every_built_in_in_the_original_order() -> None:
    from optimus.services import load_services

    assert list(load_services())[: len(BUILT_INS)] == BUILT_INS


def test_the_registry_holds_every_built_in_when_only_the_base_module_is_imported() -> None:
    # DatabaseState reads REGISTRY without the loader: Python runs the package's
    # __init__ (which registers the built-ins) before any of its modules, whichever is named first
    got = fresh("from optimus.services.base import REGISTRY; print(','.join(REGISTRY))")
    assert got.split(",")[: len(BUILT_INS)] == BUILT_INS


def test_memory_beside_the_engine_counts_the_active_services() -> None:
    from optimus.config import Settings
    from optimus.services import bytes_outside_engine

    assert bytes_outside_engine(Settings(data_paths=[], memory_limit="1GB")) > 0  # Clickstream's read-ahead
    assert bytes_outside_engine(Settings(data_paths=[], memory_limit="1GB", ignored_services=BUILT_INS)) == 0
