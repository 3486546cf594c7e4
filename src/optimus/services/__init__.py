"""The built-in services, registered in the original's order (see services/base.py)."""

from optimus.services import (  # noqa: F401
    clickstream,
    database_state,
    discussion_forums,
    course_structure,
    ip_to_country,
    time_finder,
    person_course,
    email_crm,
)
