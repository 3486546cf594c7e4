"""ShowAnswer: edx2bigquery's show-answer tables, per course.

`show_answer` (make_problem_analysis.py:make_show_answer_table), `show_answer_stats_by_user` and
`show_answer_stats_by_course` (make_show_answer_stats_by_user_table, ..._by_course_table), from the
events, `courseware_studentmodule` (edx2bigquery's problem_grades) and `person_course`. Every
column's rule is in docs/tables/show_answer.md.
"""

from __future__ import annotations

from optimus.services.base import register
from optimus.services.course_tables import IN_SCOPE, CourseTables, Table, course_id_sql
from optimus.services.learner_events import insert_by_name, source
from optimus.services.time_on_task import edx2bigquery_module_sql
from optimus.warehouse.base import Warehouse

SHOW_ANSWER_EVENTS = ("show_answer", "showanswer")
MEASURES = ("problem_seen", "not_attempted", "attempted", "perfect", "partial")
GROUPS = ("", "_certified", "_explored", "_verified")
# the percentages are added as whole units of 10⁻⁹ percent, so that a mean is an exact integer sum
PCT_UNITS = 1_000_000_000

SHOW_ANSWER = Table(
    "show_answer",
    {"time": "TIMESTAMP", "username": "VARCHAR", "course_id": "VARCHAR", "module_id": "VARCHAR", "course_key": "VARCHAR"},
    personal=True,
    order_by=("course_key", "time", "username", "module_id"),
)
BY_USER = Table(
    "show_answer_stats_by_user",
    {
        "user_id": "BIGINT",
        "explored": "INTEGER",
        "certified": "INTEGER",
        "verified": "BOOLEAN",
        **{f"pct_show_answer_{m}": "DOUBLE PRECISION" for m in MEASURES},
        **{c: "BIGINT" for m in MEASURES for c in (f"n_show_answer_{m}", "n_problems_seen" if m == "problem_seen" else f"n_{m}")},
        "course_key": "VARCHAR",
    },
    personal=True,
    order_by=("course_key", "user_id"),
)
BY_COURSE = Table(
    "show_answer_stats_by_course",
    {
        "course_id": "VARCHAR",
        **{f"{stat}_pct_show_answer_{m}{g}": "DOUBLE PRECISION" for stat in ("avg", "median") for g in GROUPS for m in MEASURES},
        "course_key": "VARCHAR",
    },
)


def denominator(measure: str) -> str:
    return "n_problems_seen" if measure == "problem_seen" else f"n_{measure}"


def by_user_sql(wh: Warehouse) -> str:
    """The SELECT of show_answer_stats_by_user: per learner, the studentmodule problems in each
    condition and those of them with a show-answer event."""
    pc = source(wh, "person_course")
    conditions = {
        "not_attempted": "NOT pg.attempted",
        "attempted": "pg.attempted",
        "perfect": "pg.perfect",
        "partial": "pg.grade > 0",
        "problem_seen": "true",
    }
    counts = ", ".join(
        f"sum(CASE WHEN ({cond}) AND sa.n_show_answer > 0 THEN 1 ELSE 0 END) AS n_show_answer_{m}, "
        f"sum(CASE WHEN {cond} THEN 1 ELSE 0 END) AS {denominator(m)}"
        for m, cond in conditions.items()
    )
    pcts = ", ".join(
        f"CASE WHEN a.{denominator(m)} > 0 THEN CAST(a.n_show_answer_{m} AS DOUBLE PRECISION) / a.{denominator(m)} * 100 END "
        f"AS pct_show_answer_{m}"
        for m in MEASURES
    )
    ns = ", ".join(f"a.n_show_answer_{m}, a.{denominator(m)}" for m in MEASURES)
    student = wh.quote("forumRoles_isStudent")
    return f"""
        SELECT a.course_key, a.user_id, p.explored, p.certified, coalesce(p.mode = 'verified', false) AS verified, {pcts}, {ns}
        FROM (
            SELECT pg.course_key, pg.user_id, {counts}
            FROM (
                SELECT sm.course_key, sm.student_id AS user_id, {edx2bigquery_module_sql("sm.course_key", "sm.module_id")} AS module_id, sm.grade,
                       coalesce(sm.grade >= sm.max_grade, false) AS perfect, sm.grade IS NOT NULL AS attempted
                FROM {source(wh, "courseware_studentmodule")} sm
                WHERE {IN_SCOPE.replace("course_key", "sm.course_key", 1)} AND sm.module_type = 'problem' AND sm.student_id IS NOT NULL
            ) pg
            LEFT JOIN (
                SELECT shown.course_key, learner.user_id, shown.module_id, count(*) AS n_show_answer
                FROM show_answer shown JOIN {pc} learner ON learner.course_key = shown.course_key AND learner.username = shown.username
                WHERE {IN_SCOPE.replace("course_key", "shown.course_key", 1)}
                GROUP BY shown.course_key, learner.user_id, shown.module_id
            ) sa ON sa.course_key = pg.course_key AND sa.user_id = pg.user_id AND sa.module_id = pg.module_id
            GROUP BY pg.course_key, pg.user_id
        ) a
        JOIN {pc} p ON p.course_key = a.course_key AND p.user_id = a.user_id
        WHERE p.{student} = 1 OR p.{student} IS NULL"""


def by_course_computed() -> dict[str, str]:
    """show_answer_stats_by_course over show_answer_stats_by_user (alias `u`)."""
    out = {"course_id": course_id_sql("u.course_key"), "course_key": "u.course_key"}
    member = {"": "true", "_certified": "u.certified = 1", "_explored": "u.explored = 1", "_verified": "u.verified"}
    for g, cond in member.items():
        for m in MEASURES:
            v = f"CASE WHEN {cond} THEN u.pct_show_answer_{m} END"
            units = f"CAST(floor({v} * {PCT_UNITS} + 0.5) AS BIGINT)"
            out[f"avg_pct_show_answer_{m}{g}"] = (
                f"CAST(sum({units}) AS DOUBLE PRECISION) / count({v}) / CAST({PCT_UNITS} AS DOUBLE PRECISION)"
            )
            out[f"median_pct_show_answer_{m}{g}"] = f"percentile_disc(0.5) WITHIN GROUP (ORDER BY {v})"
    return out


@register
class ShowAnswer(CourseTables):
    """Show-answer events, and how often each learner asked for the answer, by the problem's state."""

    name = "ShowAnswer"
    needs = ("Clickstream", "DatabaseState", "PersonCourse")
    tables = (SHOW_ANSWER, BY_USER, BY_COURSE)
    dictionary = "docs/tables/show_answer.md"
    rules_version = 1

    def build(self, wh: Warehouse, table: Table) -> None:
        if table.name == "show_answer":
            problem = wh.sql.json_text("e.event", "problem_id")
            computed = {
                "time": "e.time",
                "username": "e.username",
                "course_id": course_id_sql("e.course_key"),
                "module_id": edx2bigquery_module_sql("e.course_key", f"coalesce(nullif(e.module_id, ''), {problem})"),
                "course_key": "e.course_key",
            }
            insert, select = insert_by_name(wh, table.name, table.columns, computed)
            names = ", ".join(f"'{n}'" for n in SHOW_ANSWER_EVENTS)
            wh.execute(
                f"{insert} SELECT {select} FROM {source(wh, 'events')} e "
                f"WHERE {IN_SCOPE.replace('course_key', 'e.course_key', 1)} AND e.event_type IN ({names})"
            )
        elif table.name == "show_answer_stats_by_user":
            computed = {c: f"u.{c}" for c in table.columns}
            insert, select = insert_by_name(wh, table.name, table.columns, computed)
            wh.execute(f"{insert} SELECT {select} FROM ({by_user_sql(wh)}) u")
        else:
            insert, select = insert_by_name(wh, table.name, table.columns, by_course_computed())
            wh.execute(
                f"{insert} SELECT {select} FROM show_answer_stats_by_user u WHERE {IN_SCOPE.replace('course_key', 'u.course_key', 1)} "
                "GROUP BY u.course_key"
            )
