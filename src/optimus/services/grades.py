"""Grades: edx2bigquery's `grades_persistent` and `grades_persistent_subsection` (edX's persistent
course and subsection grades, copied from the weekly package's dumps where it has them) and
`chapter_grades` (per learner and chapter, the problem grades of courseware_studentmodule summed over
the chapter's problems, with the chapter's median and maximum; make_problem_analysis.py,
make_chapter_grades_table). Every column's rule and its reference are in docs/tables/grades.md.
"""

from __future__ import annotations

from optimus.services.base import register
from optimus.services.course_tables import IN_SCOPE, CourseTables, Table, course_id_sql
from optimus.services.learner_events import MICROS, insert_by_name, source
from optimus.warehouse.base import Warehouse

GRADES_PERSISTENT = Table(
    "grades_persistent",
    {
        "course_key": "VARCHAR",
        "course_id": "VARCHAR",
        "user_id": "BIGINT",
        "grading_policy_hash": "VARCHAR",
        "percent_grade": "DOUBLE PRECISION",
        "letter_grade": "VARCHAR",
        "passed_timestamp": "TIMESTAMP",
        "created": "TIMESTAMP",
        "modified": "TIMESTAMP",
    },
    personal=True,
    order_by=("course_key", "user_id", "modified"),
)
GRADES_SUBSECTION = Table(
    "grades_persistent_subsection",
    {
        "course_key": "VARCHAR",
        "course_id": "VARCHAR",
        "user_id": "BIGINT",
        "usage_key": "VARCHAR",
        "earned_all": "DOUBLE PRECISION",
        "possible_all": "DOUBLE PRECISION",
        "earned_graded": "DOUBLE PRECISION",
        "possible_graded": "DOUBLE PRECISION",
        "first_attempted": "TIMESTAMP",
        "created": "TIMESTAMP",
        "modified": "TIMESTAMP",
    },
    personal=True,
    order_by=("course_key", "user_id", "usage_key", "modified"),
)
CHAPTER_GRADES = Table(
    "chapter_grades",
    {
        "course_key": "VARCHAR",
        "course_id": "VARCHAR",
        "user_id": "BIGINT",
        "chapter_mid": "VARCHAR",
        "user_chapter_max_grade": "DOUBLE PRECISION",
        "chgrade": "DOUBLE PRECISION",
        "due_date_max": "TIMESTAMP",
        "due_date_min": "TIMESTAMP",
        "median_grade": "DOUBLE PRECISION",
        "chmax": "DOUBLE PRECISION",
    },
    personal=True,
    order_by=("course_key", "user_id", "chapter_mid"),
)


def exact_sum(expr: str) -> str:
    """A sum of grades taken in millionths (whole numbers, so the same on every engine in any order)."""
    return f"CAST(sum(CAST(round({expr} * {MICROS}) AS BIGINT)) AS DOUBLE PRECISION) / {MICROS}"


@register
class Grades(CourseTables):
    name = "Grades"
    needs = ("DatabaseState", "CourseAxis")
    tables = (GRADES_PERSISTENT, GRADES_SUBSECTION, CHAPTER_GRADES)
    dictionary = "docs/tables/grades.md"
    rules_version = 1

    def build(self, wh: Warehouse, table: Table) -> None:
        if table.name == "chapter_grades":
            self._chapter_grades(wh)
            return
        raw = "grades_persistentcoursegrade" if table.name == "grades_persistent" else "grades_persistentsubsectiongrade"
        computed = {c: f"g.{wh.quote(c)}" for c in table.columns}
        computed["course_id"] = course_id_sql("g.course_key")
        insert, select = insert_by_name(wh, table.name, table.columns, computed)
        wh.execute(f"{insert} SELECT {select} FROM {source(wh, raw)} g WHERE g.{IN_SCOPE}")

    def _chapter_grades(self, wh: Warehouse) -> None:
        axis = wh.quote("course_axis")
        # problem_grades: the graded problem rows of courseware_studentmodule, joined with the course axis by
        # module id (i4x:// + course_axis.module_id, or the block-v1 key of a current course)
        problems = f"""
            SELECT sm.course_key, sm.student_id AS user_id, sm.grade, sm.max_grade, ca.chapter_mid, ca.due
            FROM {source(wh, "courseware_studentmodule")} sm
            JOIN {axis} ca ON ca.course_key = sm.course_key AND ca.category = 'problem'
                AND (sm.module_id = 'i4x://' || ca.module_id
                     OR sm.module_id = 'block-v1:' || ca.course_key || '+type@problem+block@' || ca.url_name)
            WHERE sm.{IN_SCOPE} AND sm.module_type = 'problem' AND sm.grade IS NOT NULL"""
        per_user = f"""
            SELECT course_key, user_id, chapter_mid,
                   {exact_sum("max_grade")} AS user_chapter_max_grade, {exact_sum("grade")} AS chgrade,
                   max(due) AS due_date_max, min(due) AS due_date_min
            FROM ({problems}) pg GROUP BY course_key, user_id, chapter_mid"""
        computed = {
            "course_key": "u.course_key",
            "course_id": course_id_sql("u.course_key"),
            "user_id": "u.user_id",
            "chapter_mid": "u.chapter_mid",
            "user_chapter_max_grade": "u.user_chapter_max_grade",
            "chgrade": "u.chgrade",
            "due_date_max": "u.due_date_max",
            "due_date_min": "u.due_date_min",
            "median_grade": "m.median_grade",
            "chmax": "max(u.user_chapter_max_grade) OVER (PARTITION BY u.course_key, u.chapter_mid)",
        }
        insert, select = insert_by_name(wh, "chapter_grades", CHAPTER_GRADES.columns, computed)
        wh.execute(
            f"""{insert}
            SELECT {select}
            FROM ({per_user}) u
            JOIN (SELECT course_key, chapter_mid, percentile_disc(0.5) WITHIN GROUP (ORDER BY chgrade) AS median_grade
                  FROM ({per_user}) x GROUP BY course_key, chapter_mid) m
              ON m.course_key = u.course_key AND m.chapter_mid IS NOT DISTINCT FROM u.chapter_mid"""
        )
