"""The built-in services, registered in the original's order (see services/base.py), and the loader that
lists them with those of other packages: it lives here, above the services, so that no service module
imports back up to the package that imports it."""

from optimus.services import (  # noqa: F401, I001  (importing a built-in registers it, in this order)
    clickstream,
    database_state,
    discussion_forums,
    course_structure,
    ip_to_country,
    time_finder,
    person_course,
    email_crm,
    course_axis,
    grades,
    enrollment,
    user_info_combo,
    forum_activity,
    video_analysis,
    time_on_task,
    show_answer,
    problem_analysis,
    problem_events,
)
from optimus.config import Settings
from optimus.services.base import REGISTRY, Service, load_entry_points
from optimus.services.course_tables import CourseTables, Table


def load_services() -> dict[str, type[Service]]:
    """The built-in services (imported above) plus any registered by other packages under `optimus.services`."""
    load_entry_points()
    return dict(REGISTRY)


def bytes_outside_engine(settings: Settings) -> int:
    """The most memory any active service holds beside the engine: the engine's share of memory_limit
    is the setting less this (its settings are locked once open; see pipeline.open_warehouse)."""
    services = load_services()
    return max((cls.bytes_outside_engine() for name, cls in services.items() if name not in settings.ignored_services), default=0)


def research_tables() -> dict[str, tuple[type[CourseTables], Table]]:
    """Every table kept per course by a CourseTables service (the research tables), by name, with its service."""
    found: dict[str, tuple[type[CourseTables], Table]] = {}
    for cls in load_services().values():
        if issubclass(cls, CourseTables):
            for table in cls.tables:
                found[table.name] = (cls, table)
    return found
