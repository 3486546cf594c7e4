"""CourseAxis: edx2bigquery's `course_axis` (one row per block of the course, in course order) and
`grading_policy` (one row per grader of the export's grading_policy.json), plus `grading_policy_cutoffs`
(ours: the grade cut-offs one row per label, where edx2bigquery adds a column per label).

Built in SQL from what CourseStructure stores of the course exports (`course_blocks`, `course_graders`,
`course_grade_cutoffs`); every column's rule and its reference are in docs/tables/course_axis.md.
"""

from __future__ import annotations

from optimus.services.base import register
from optimus.services.course_tables import IN_SCOPE, CourseTables, Table, course_id_sql
from optimus.services.learner_events import insert_by_name, source
from optimus.warehouse.base import Warehouse

COURSE_AXIS = Table(
    "course_axis",
    {
        "course_key": "VARCHAR",
        "course_id": "VARCHAR",
        "category": "VARCHAR",
        "index": "INTEGER",
        "url_name": "VARCHAR",
        "name": "VARCHAR",
        "gformat": "VARCHAR",
        "due": "TIMESTAMP",
        "start": "TIMESTAMP",
        "module_id": "VARCHAR",
        "path": "VARCHAR",
        "chapter_mid": "VARCHAR",
        "graded": "VARCHAR",
        "parent": "VARCHAR",
        "is_split": "BOOLEAN",
        "split_url_name": "VARCHAR",
        "data_ytid": "VARCHAR",
        "data_weight": "DOUBLE PRECISION",
        "data_group_id_to_child": "VARCHAR",
        "data_user_partition_id": "VARCHAR",
        "data_itype": "VARCHAR",
        "data_num_items": "INTEGER",
        "data_has_solution": "BOOLEAN",
        "data_has_image": "BOOLEAN",
    },
    order_by=("course_key", "index"),
)
GRADING_POLICY = Table(
    "grading_policy",
    {
        "course_key": "VARCHAR",
        "course_id": "VARCHAR",
        "assignment_type": "VARCHAR",
        "name": "VARCHAR",
        "fraction_of_overall_grade": "DOUBLE PRECISION",
        "short_label": "VARCHAR",
        "min_count": "INTEGER",
        "drop_count": "INTEGER",
        "grader_index": "INTEGER",
    },
    order_by=("course_key", "grader_index"),
)
GRADING_POLICY_CUTOFFS = Table(
    "grading_policy_cutoffs",
    {"course_key": "VARCHAR", "course_id": "VARCHAR", "label": "VARCHAR", "cutoff": "DOUBLE PRECISION"},
    order_by=("course_key", "cutoff", "label"),
)
# The blocks edx2bigquery's walk lists: published or staff-only, not drafts (the export's drafts/ folder is
# not read), not under a hide_from_toc block, not discussions (skipped by the walk), with a url_name.
AXIS_BLOCKS = (
    "coalesce(b.draft, FALSE) = FALSE AND coalesce(b.hidden_by_ancestor, FALSE) = FALSE "
    "AND b.category <> 'discussion' AND b.url_name IS NOT NULL"
)


def item_count_sql(types: str) -> str:
    """How many response tags a space-separated list holds (NULL for none)."""
    return f"CASE WHEN {types} <> '' THEN length({types}) - length(replace({types}, ' ', '')) + 1 END"


def item_type_sql(types: str) -> str:
    """The one response tag of a list, or `mixed` when they differ (NULL for none). A list is of one tag
    when removing its first tag leaves only spaces: no response tag is made of copies of another."""
    first = f"split_part({types}, ' ', 1)"
    return f"CASE WHEN {types} <> '' THEN CASE WHEN trim(replace({types}, {first}, '')) = '' THEN {first} ELSE 'mixed' END END"


@register
class CourseAxis(CourseTables):
    name = "CourseAxis"
    needs = ("CourseStructure",)
    tables = (COURSE_AXIS, GRADING_POLICY, GRADING_POLICY_CUTOFFS)
    dictionary = "docs/tables/course_axis.md"
    rules_version = 1

    def build(self, wh: Warehouse, table: Table) -> None:
        if table.name == "course_axis":
            self._course_axis(wh)
        elif table.name == "grading_policy":
            self._grading_policy(wh)
        else:
            self._cutoffs(wh)

    def _course_axis(self, wh: Warehouse) -> None:
        blocks = source(wh, "course_blocks")
        module_id = "substr(b.block_id_old, 7)"  # i4x://org/course/category/url_name -> org/course/category/url_name
        computed = {
            "course_key": "b.course_key",
            "course_id": course_id_sql("b.course_key"),
            "category": "b.category",
            "index": "CAST(row_number() OVER (PARTITION BY b.course_key ORDER BY b.position NULLS LAST) AS INTEGER)",
            "url_name": "CASE WHEN b.category = 'vertical' AND count(*) OVER (PARTITION BY b.course_key, b.url_name) > 1 "
            "THEN b.url_name || '_vertical' ELSE b.url_name END",
            "name": "coalesce(b.display_name, b.url_name)",
            "gformat": "b.format",
            "due": "b.due_date",
            "start": "b.release_date",
            "module_id": module_id,
            "path": "b.path",
            "chapter_mid": "substr(ch.block_id_old, 7)",
            "graded": "CASE WHEN b.graded THEN 'true' ELSE 'false' END",
            "parent": "b.parent_url_name",
            "is_split": "b.split_url_name IS NOT NULL",
            "split_url_name": "b.split_url_name",
            "data_ytid": "CASE b.category WHEN 'video' THEN b.youtube_id WHEN 'html' THEN b.iframe_youtube_id END",
            "data_weight": "CASE WHEN b.category = 'problem' THEN b.weight END",
            "data_group_id_to_child": "b.group_id_to_child",
            "data_user_partition_id": "b.user_partition_id",
            "data_itype": item_type_sql("b.response_types"),
            "data_num_items": f"CAST({item_count_sql('b.response_types')} AS INTEGER)",
            "data_has_solution": "CASE WHEN b.category = 'problem' THEN b.has_solution END",
            "data_has_image": "CASE WHEN b.category = 'problem' THEN b.has_image END",
        }
        insert, select = insert_by_name(wh, "course_axis", COURSE_AXIS.columns, computed)
        wh.execute(
            f"""{insert}
            SELECT {select}
            FROM {blocks} b
            LEFT JOIN {blocks} ch ON ch.course_key = b.course_key AND ch.category = 'chapter'
                AND coalesce(ch.draft, FALSE) = FALSE AND ch.chapter_index = b.chapter_index AND b.category NOT IN ('course', 'chapter')
            WHERE b.{IN_SCOPE} AND {AXIS_BLOCKS}"""
        )

    def _grading_policy(self, wh: Warehouse) -> None:
        computed = {
            "course_key": "g.course_key",
            "course_id": course_id_sql("g.course_key"),
            "assignment_type": "g.assignment_type",
            "name": "coalesce(g.name, g.assignment_type)",
            "fraction_of_overall_grade": "g.fraction_of_overall_grade",
            "short_label": "g.short_label",
            "min_count": "g.min_count",
            "drop_count": "g.drop_count",
            "grader_index": "g.position",
        }
        insert, select = insert_by_name(wh, "grading_policy", GRADING_POLICY.columns, computed)
        wh.execute(f"{insert} SELECT {select} FROM {source(wh, 'course_graders')} g WHERE g.{IN_SCOPE}")

    def _cutoffs(self, wh: Warehouse) -> None:
        computed = {"course_key": "c.course_key", "course_id": course_id_sql("c.course_key"), "label": "c.label", "cutoff": "c.cutoff"}
        insert, select = insert_by_name(wh, "grading_policy_cutoffs", GRADING_POLICY_CUTOFFS.columns, computed)
        wh.execute(f"{insert} SELECT {select} FROM {source(wh, 'course_grade_cutoffs')} c WHERE c.{IN_SCOPE}")
