"""Enrollment: edx2bigquery's enrolment tables from the logs' `edx.course.enrollment.*` events, and
our `enrollment_day` (per course, day and mode) from those events and `student_courseenrollment`.

Every column's rule, with the reference it copies, is in docs/tables/enrollment.md.
"""

from __future__ import annotations

from optimus.services.base import register
from optimus.services.course_tables import IN_SCOPE, CourseTables, Table, course_id_sql
from optimus.services.learner_events import source
from optimus.warehouse.base import Warehouse

ACTIVATED = "edx.course.enrollment.activated"
DEACTIVATED = "edx.course.enrollment.deactivated"
MODE_CHANGED = "edx.course.enrollment.mode_changed"
UPGRADED = "edx.course.enrollment.upgrade.succeeded"
# the modes enrollday_all has a column for (edx2bigquery's make_enrollment_day.process_course)
DIFF_MODES = ("honor", "verified", "audit")


@register
class Enrollment(CourseTables):
    name = "Enrollment"
    needs = ("Clickstream", "DatabaseState")
    dictionary = "docs/tables/enrollment.md"
    rules_version = 1
    tables = (
        Table(
            "enrollment_events",
            {
                "course_key": "VARCHAR",
                "course_id": "VARCHAR",
                "time": "TIMESTAMP",
                "user_id": "BIGINT",
                "mode": "VARCHAR",
                "activated": "BOOLEAN",
                "deactivated": "BOOLEAN",
                "mode_changed": "BOOLEAN",
                "upgraded": "BOOLEAN",
                "event_type": "VARCHAR",
            },
            personal=True,
            order_by=("course_key", "time", "user_id", "event_type"),
        ),
        Table(
            "enrollday_all",
            {
                "course_key": "VARCHAR",
                "course_id": "VARCHAR",
                "time": "TIMESTAMP",
                "user_id": "BIGINT",
                **{f"diff_enrollment_{m}": "INTEGER" for m in DIFF_MODES},
            },
            personal=True,
            order_by=("course_key", "time", "user_id"),
        ),
        Table(
            "person_enrollment_verified",
            {
                "course_key": "VARCHAR",
                "course_id": "VARCHAR",
                "user_id": "BIGINT",
                "verified_enroll_time": "TIMESTAMP",
                "verified_unenroll_time": "TIMESTAMP",
            },
            personal=True,
            order_by=("course_key", "user_id"),
        ),
        Table(
            "enrollment_day",
            {
                "course_key": "VARCHAR",
                "course_id": "VARCHAR",
                "date": "DATE",
                "mode": "VARCHAR",
                "enrollments": "BIGINT",
                "enrollments_from_table": "BIGINT",
                "unenrollments": "BIGINT",
                "mode_changes": "BIGINT",
                "net_enrollments": "BIGINT",
                "cumulative_enrollments": "BIGINT",
            },
            order_by=("course_key", "date", "mode"),
        ),
    )

    def build(self, wh: Warehouse, table: Table) -> None:
        q = wh.quote
        cols = ", ".join(q(c) for c in table.columns)
        if table.name == "enrollment_events":
            e = "e.event"
            payload_uid = wh.sql.try_cast(wh.sql.json_text(e, "user_id"), "BIGINT")
            sql = (
                f"SELECT e.course_key, {course_id_sql('e.course_key')}, e.time, coalesce({payload_uid}, e.user_id), "
                f"{wh.sql.json_text(e, 'mode')}, e.event_type = '{ACTIVATED}', e.event_type = '{DEACTIVATED}', "
                f"e.event_type = '{MODE_CHANGED}', e.event_type = '{UPGRADED}', e.event_type "
                f"FROM {source(wh, 'events')} e WHERE e.{IN_SCOPE} AND strpos(e.event_type, 'edx.course.enrollment') > 0"
            )
        elif table.name == "enrollday_all":
            e = "e.event"
            mode = wh.sql.json_text(e, "mode")
            diffs = ", ".join(
                f"CASE WHEN e.event_type = '{ACTIVATED}' AND {mode} = '{m}' THEN 1 "
                f"WHEN e.event_type = '{DEACTIVATED}' AND {mode} = '{m}' THEN -1 ELSE 0 END"
                for m in DIFF_MODES
            )
            sql = (
                f"SELECT e.course_key, {course_id_sql('e.course_key')}, e.time, "
                f"{wh.sql.try_cast(wh.sql.json_text(e, 'user_id'), 'BIGINT')}, {diffs} "
                f"FROM {source(wh, 'events')} e WHERE e.{IN_SCOPE} AND e.event_type IN ('{ACTIVATED}', '{DEACTIVATED}')"
            )
        elif table.name == "person_enrollment_verified":
            sql = (
                f"SELECT course_key, min(course_id), user_id, min(time), "
                f"CASE WHEN max(time) = min(time) THEN NULL ELSE max(time) END "
                f"FROM enrollment_events WHERE {IN_SCOPE} AND mode = 'verified' "
                f"AND (deactivated OR (mode_changed AND NOT activated)) GROUP BY course_key, user_id"
            )
        else:
            sql = self._enrollment_day(wh)
        wh.execute(f"INSERT INTO {q(table.name)} ({cols}) {sql}")

    def _enrollment_day(self, wh: Warehouse) -> str:
        """Events give the day of every enrolment, unenrolment and mode change; a learner in
        student_courseenrollment with no enrolment event of the course counts one enrolment on the
        day the row was created, in its mode (the logs began after they enrolled, or lost it)."""
        enr = source(wh, "student_courseenrollment")
        mode = "coalesce(nullif(mode, ''), 'unknown')"
        rows = (
            f"SELECT course_key, CAST(time AS DATE) AS d, {mode} AS m, "
            f"CASE WHEN activated THEN 1 ELSE 0 END AS n_in, 0 AS n_table, CASE WHEN deactivated THEN 1 ELSE 0 END AS n_out, "
            f"CASE WHEN mode_changed THEN 1 ELSE 0 END AS n_changed FROM enrollment_events WHERE {IN_SCOPE} "
            f"AND (activated OR deactivated OR mode_changed) "
            f"UNION ALL SELECT s.course_key, CAST(s.created AS DATE), coalesce(nullif(s.mode, ''), 'unknown'), 1, 1, 0, 0 "
            f"FROM {enr} s WHERE s.{IN_SCOPE} AND s.created IS NOT NULL AND s.user_id IS NOT NULL "
            f"AND NOT EXISTS (SELECT 1 FROM enrollment_events v WHERE v.course_key = s.course_key AND v.user_id = s.user_id)"
        )
        day = (
            f"SELECT course_key, d, m, sum(n_in) AS n_in, sum(n_table) AS n_table, sum(n_out) AS n_out, sum(n_changed) AS n_changed "
            f"FROM ({rows}) r WHERE d IS NOT NULL GROUP BY course_key, d, m"
        )
        return (
            f"SELECT course_key, {course_id_sql()}, d, m, n_in, n_table, n_out, n_changed, n_in - n_out, "
            f"sum(n_in - n_out) OVER (PARTITION BY course_key, m ORDER BY d ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) "
            f"FROM ({day}) x"
        )
