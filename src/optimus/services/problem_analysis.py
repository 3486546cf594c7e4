"""ProblemAnalysis: edx2bigquery's problem tables from the final state of each learner's problems.

`courseware_studentmodule` (Database State) keeps, per learner and problem, the capa state as JSON
text: attempts, done, `correct_map` (per input: correctness, npoints, msg, hint) and
`student_answers` (per input: the answer). edx2bigquery turns it into `problem_analysis`
(make_problem_analysis.py, make_problem_analysis) and from there the item tables of
make_item_tables.py (`course_item`, `person_item`, `person_problem`, `course_problem`). Every
column's rule, with the function it follows and where we differ, is in docs/tables/problem_analysis.md.

The state is read in SQL, once for both engines, through the dialect's JSON fragments
(parse_json_object, json_member, json_object_entries, json_value_text).
"""

from __future__ import annotations

from typing import ClassVar

from optimus.services.base import register
from optimus.services.course_tables import IN_SCOPE, SCOPE, CourseTables, Table, course_id_sql
from optimus.services.learner_events import block_name_sql, block_type_sql, insert_by_name, source
from optimus.warehouse.base import Warehouse

# make_item_tables.create_course_item_table keeps an item only when more than this many rows of
# problem_analysis answer it (`having n_user_responses > 5`)
MIN_RESPONSES = 5

PROBLEM_ANALYSIS = Table(
    "problem_analysis",
    {
        "course_id": "VARCHAR",
        "course_key": "VARCHAR",
        "user_id": "BIGINT",
        "problem_url_name": "VARCHAR",
        "module_id": "VARCHAR",
        "item_answer_id": "VARCHAR",
        "item_response": "VARCHAR",
        "item_correctness": "VARCHAR",
        "item_correct_bool": "BOOLEAN",
        "item_npoints": "DOUBLE PRECISION",
        "item_msg": "VARCHAR",
        "item_hint": "VARCHAR",
        "attempts": "BIGINT",
        "done": "BOOLEAN",
        "grade": "DOUBLE PRECISION",
        "max_grade": "DOUBLE PRECISION",
        "created": "TIMESTAMP",
    },
    personal=True,
    order_by=("course_key", "user_id", "module_id", "item_answer_id"),
)
COURSE_ITEM = Table(
    "course_item",
    {
        "course_id": "VARCHAR",
        "course_key": "VARCHAR",
        "item_id": "VARCHAR",
        "problem_id": "VARCHAR",
        "problem_nid": "BIGINT",
        "item_nid": "BIGINT",
        "item_number": "BIGINT",
        "n_items": "BIGINT",
        "n_user_responses": "BIGINT",
        "problem_name": "VARCHAR",
        "content_index": "INTEGER",
        "problem_weight": "DOUBLE PRECISION",
        "item_points_possible": "DOUBLE PRECISION",
        "problem_points_possible": "DOUBLE PRECISION",
        "emperical_item_points_possible": "DOUBLE PRECISION",
        "emperical_problem_points_possible": "DOUBLE PRECISION",
        "assignment_type": "VARCHAR",
        "start_date": "TIMESTAMP",
        "due_date": "TIMESTAMP",
        "is_split": "BOOLEAN",
        "split_name": "VARCHAR",
    },
    order_by=("course_key", "item_nid"),
)
PERSON_ITEM = Table(
    "person_item",
    {
        "user_id": "BIGINT",
        "course_id": "VARCHAR",
        "course_key": "VARCHAR",
        "item_id": "VARCHAR",
        "item_nid": "BIGINT",
        "item_grade": "INTEGER",
        "grade": "DOUBLE PRECISION",
        "n_attempts": "BIGINT",
        "date": "TIMESTAMP",
    },
    personal=True,
    order_by=("course_key", "user_id", "item_nid"),
)
PERSON_PROBLEM = Table(
    "person_problem",
    {
        "user_id": "BIGINT",
        "course_id": "VARCHAR",
        "course_key": "VARCHAR",
        "problem_nid": "BIGINT",
        "problem_raw_score": "BIGINT",
        "problem_pct_score": "DOUBLE PRECISION",
        "grade": "DOUBLE PRECISION",
        "n_attempts": "BIGINT",
        "date": "TIMESTAMP",
    },
    personal=True,
    order_by=("course_key", "user_id", "problem_nid"),
)
COURSE_PROBLEM = Table(
    "course_problem",
    {
        "course_id": "VARCHAR",
        "course_key": "VARCHAR",
        "problem_nid": "BIGINT",
        "problem_id": "VARCHAR",
        "avg_problem_raw_score": "DOUBLE PRECISION",
        "sdv_problem_raw_score": "DOUBLE PRECISION",
        "max_possible_raw_score": "DOUBLE PRECISION",
        "avg_problem_pct_score": "DOUBLE PRECISION",
        "n_unique_users_attempted": "BIGINT",
        "problem_name": "VARCHAR",
        "is_split": "BOOLEAN",
        "split_name": "VARCHAR",
    },
    order_by=("course_key", "problem_nid"),
)

# the members of the state read (DuckDB builds a STRUCT of them; PostgreSQL reads jsonb)
STATE_SHAPE = {"attempts": "text", "done": "text", "correct_map": "json", "student_answers": "json"}


def answer_order_sql(wh: Warehouse, key: str) -> str:
    """ORDER BY terms putting a capa answer id (`{problem}_{response}_{input}`, response from 2, input
    from 1) in the order the problem shows its inputs: response number, then input number, as numbers
    (so `_10_1` comes after `_2_1`), the id itself last (only for ids of another shape, whose numbers are
    NULL: last, said so, as Spark puts NULLs first)."""
    response = wh.sql.try_cast(wh.sql.regex_extract(key, "_([0-9]{1,9})_[0-9]{1,9}$"), "BIGINT")
    inp = wh.sql.try_cast(wh.sql.regex_extract(key, "_([0-9]{1,9})$"), "BIGINT")
    return f"{response} NULLS LAST, {inp} NULLS LAST, {key}"


@register
class ProblemAnalysis(CourseTables):
    name = "ProblemAnalysis"
    needs = ("DatabaseState", "CourseStructure")
    tables: ClassVar[tuple[Table, ...]] = (PROBLEM_ANALYSIS, COURSE_ITEM, PERSON_ITEM, PERSON_PROBLEM, COURSE_PROBLEM)
    dictionary = "docs/tables/problem_analysis.md"
    rules_version = 1

    def build(self, wh: Warehouse, table: Table) -> None:
        build = {
            "problem_analysis": self._problem_analysis,
            "course_item": self._course_item,
            "person_item": self._person_item,
            "person_problem": self._person_problem,
            "course_problem": self._course_problem,
        }[table.name]
        computed, body = build(wh)
        insert, select = insert_by_name(wh, table.name, table.columns, computed)
        wh.execute(f"{insert}\n        SELECT {select}\n        {body}")

    # -- problem_analysis: one row per learner, problem and item (input) of its correct_map ----------
    def _problem_analysis(self, wh: Warehouse) -> tuple[dict[str, str], str]:
        d = wh.sql
        sm = source(wh, "courseware_studentmodule")
        state = d.parse_json_object("s.state", STATE_SHAPE)
        # each problem row once, its state parsed once; only category `problem` in the module id
        # (make_problem_analysis: module_type 'problem' and the id's category 'problem')
        problems = f"""
            SELECT s.course_key, s.id AS sm_id, s.student_id, s.module_id, s.grade, s.max_grade, s.created,
                   {d.json_member_text("p_state", "attempts")} AS attempts_text, {d.json_member_text("p_state", "done")} AS done_text,
                   {d.json_member("p_state", "correct_map")} AS correct_map, {d.json_member("p_state", "student_answers")} AS answers
            FROM (SELECT s.*, {state} AS p_state FROM {sm} s
                  WHERE s.{IN_SCOPE} AND s.module_type = 'problem' AND {block_type_sql("s.module_id")} = 'problem'{d.compute_once()}) s"""
        keys = "p.course_key, p.sm_id, p.student_id, p.module_id"
        items = f"""
            SELECT {keys}, p.grade, p.max_grade, p.created, p.attempts_text, p.done_text, i.key AS answer_id,
                   {d.json_text("i.value", "correctness")} AS correctness, {d.json_text("i.value", "npoints")} AS npoints,
                   {d.json_text("i.value", "msg")} AS msg, {d.json_text("i.value", "hint")} AS hint
            FROM ({problems}) p, {d.json_object_entries("p.correct_map", "i")}
            WHERE p.answers IS NOT NULL"""
        answers = f"""
            SELECT {keys}, a.key AS answer_id, {d.json_value_text("a.value")} AS response
            FROM ({problems}) p, {d.json_object_entries("p.answers", "a")}"""
        same = (
            " AND ".join(f"it.{c} = an.{c}" for c in ("course_key", "student_id", "module_id", "answer_id"))
            + " AND it.sm_id IS NOT DISTINCT FROM an.sm_id"
        )
        computed = {
            "course_id": course_id_sql("it.course_key"),
            "course_key": "it.course_key",
            "user_id": "it.student_id",
            "problem_url_name": block_name_sql("it.module_id"),
            "module_id": "it.module_id",
            "item_answer_id": "it.answer_id",
            "item_response": "coalesce(an.response, '')",
            "item_correctness": "it.correctness",
            "item_correct_bool": "coalesce(it.correctness = 'correct', FALSE)",
            "item_npoints": d.try_cast("it.npoints", "DOUBLE PRECISION"),
            "item_msg": "it.msg",
            "item_hint": "it.hint",
            "attempts": f"coalesce({d.try_cast('it.attempts_text', 'BIGINT')}, 0)",
            "done": d.try_cast("it.done_text", "BOOLEAN"),
            "grade": "it.grade",
            "max_grade": "it.max_grade",
            "created": "it.created",
        }
        return computed, f"FROM ({items}) it LEFT JOIN ({answers}) an ON {same}"

    # -- course_item: the items answered by more than MIN_RESPONSES rows, placed in the course ------
    def _course_item(self, wh: Warehouse) -> tuple[dict[str, str], str]:
        blocks = source(wh, "course_blocks")
        # make_item_tables.create_course_item_table, innermost: per (item, problem, max_grade) the rows answering it
        counted = f"""
            SELECT course_key, item_answer_id AS item_id, problem_url_name AS problem_id, max_grade AS points, count(*) AS n_user_responses
            FROM problem_analysis WHERE {IN_SCOPE}
            GROUP BY course_key, item_answer_id, problem_url_name, max_grade
            HAVING count(*) > {MIN_RESPONSES}"""
        numbered = f"""
            SELECT c.*, row_number() OVER (PARTITION BY c.course_key, c.problem_id ORDER BY {answer_order_sql(wh, "c.item_id")}, c.points) AS item_number
            FROM ({counted}) c"""
        # the problems of the course structure (course_axis, category 'problem'), with the split_test
        # holding them (as parent or grandparent) when there is one
        axis = f"""
            SELECT b.course_key, b.url_name, min(b.position) AS content_index, min(b.display_name) AS problem_name,
                   min(b.weight) AS weight, min(b.format) AS assignment_type, min(b.start_date) AS start_date, min(b.due_date) AS due_date,
                   min(CASE WHEN par.category = 'split_test' THEN par.url_name WHEN gp.category = 'split_test' THEN gp.url_name END) AS split_name
            FROM {blocks} b
            LEFT JOIN {blocks} par ON par.course_key = b.course_key AND par.url_name = b.parent_url_name
            LEFT JOIN {blocks} gp ON gp.course_key = b.course_key AND gp.url_name = par.parent_url_name
            WHERE b.category = 'problem' AND b.course_key IN (SELECT course_key FROM {SCOPE})
            GROUP BY b.course_key, b.url_name"""
        placed = f"""
            SELECT n.*, max(n.item_number) OVER (PARTITION BY n.course_key, n.problem_id) AS n_items, a.content_index, a.problem_name,
                   a.weight, a.assignment_type, a.start_date, a.due_date, a.split_name
            FROM ({numbered}) n JOIN ({axis}) a ON a.course_key = n.course_key AND a.url_name = n.problem_id"""
        ranked = f"""
            SELECT p.*,
                   row_number() OVER (PARTITION BY p.course_key ORDER BY p.content_index NULLS LAST, p.item_number NULLS LAST, p.item_id NULLS LAST, p.points NULLS LAST) AS item_nid,
                   dense_rank() OVER (PARTITION BY p.course_key ORDER BY p.content_index NULLS LAST, p.problem_id NULLS LAST) AS problem_nid
            FROM ({placed}) p"""
        computed = {
            "course_id": course_id_sql("r.course_key"),
            "course_key": "r.course_key",
            "item_id": "r.item_id",
            "problem_id": "r.problem_id",
            "problem_nid": "r.problem_nid",
            "item_nid": "r.item_nid",
            "item_number": "r.item_number",
            "n_items": "r.n_items",
            "n_user_responses": "r.n_user_responses",
            "problem_name": "r.problem_name",
            "content_index": "r.content_index",
            "problem_weight": "coalesce(r.weight, 1.0)",
            "item_points_possible": "1.0",
            "problem_points_possible": f"CAST(r.n_items AS {wh.sql.type_name('DOUBLE PRECISION')})",
            "emperical_item_points_possible": "r.points / r.n_items",
            "emperical_problem_points_possible": "r.points",
            "assignment_type": "coalesce(r.assignment_type, '')",
            "start_date": "r.start_date",
            "due_date": "r.due_date",
            "is_split": "(r.split_name IS NOT NULL)",
            "split_name": "r.split_name",
        }
        return computed, f"FROM ({ranked}) r"

    # -- person_item: make_item_tables.create_person_item_table ---------------------------------------
    def _person_item(self, wh: Warehouse) -> tuple[dict[str, str], str]:
        pa = f"""
            SELECT course_key, user_id, item_answer_id AS item_id, CASE WHEN item_correct_bool THEN 1 ELSE 0 END AS item_grade,
                   grade, attempts AS n_attempts, max(created) AS date
            FROM problem_analysis WHERE {IN_SCOPE}
            GROUP BY course_key, user_id, item_answer_id, CASE WHEN item_correct_bool THEN 1 ELSE 0 END, grade, attempts"""
        computed = {
            "user_id": "pa.user_id",
            "course_id": course_id_sql("pa.course_key"),
            "course_key": "pa.course_key",
            "item_id": "pa.item_id",
            "item_nid": "ci.item_nid",
            "item_grade": "pa.item_grade",
            "grade": "pa.grade",
            "n_attempts": "pa.n_attempts",
            "date": "pa.date",
        }
        return computed, f"FROM ({pa}) pa JOIN course_item ci ON ci.course_key = pa.course_key AND ci.item_id = pa.item_id"

    # -- person_problem: make_item_tables.create_person_problem_table ---------------------------------
    def _person_problem(self, wh: Warehouse) -> tuple[dict[str, str], str]:
        computed = {
            "user_id": "pi.user_id",
            "course_id": course_id_sql("pi.course_key"),
            "course_key": "pi.course_key",
            "problem_nid": "ci.problem_nid",
            "problem_raw_score": "sum(pi.item_grade)",
            "problem_pct_score": f"CAST(sum(pi.item_grade) AS {wh.sql.type_name('DOUBLE PRECISION')}) / sum(ci.item_points_possible) * 100",
            "grade": "max(pi.grade)",
            "n_attempts": "max(pi.n_attempts)",
            "date": "max(pi.date)",
        }
        body = f"""FROM person_item pi JOIN course_item ci ON ci.course_key = pi.course_key AND ci.item_nid = pi.item_nid
        WHERE pi.{IN_SCOPE}
        GROUP BY pi.course_key, pi.user_id, ci.problem_nid"""
        return computed, body

    # -- course_problem: make_item_tables.create_course_problem_table ---------------------------------
    def _course_problem(self, wh: Warehouse) -> tuple[dict[str, str], str]:
        # per learner and problem: the raw score (items correct, a whole number) and the points possible
        # (the learner's items of course_item, each 1 point: a whole number too)
        per_user = f"""
            SELECT ci.course_key, ci.problem_nid, ci.problem_id, pi.user_id, sum(pi.item_grade) AS g,
                   CAST(sum(ci.item_points_possible) AS BIGINT) AS possible, min(ci.problem_name) AS problem_name, min(ci.split_name) AS split_name
            FROM person_item pi JOIN course_item ci ON ci.course_key = pi.course_key AND ci.item_nid = pi.item_nid
            WHERE pi.{IN_SCOPE}
            GROUP BY ci.course_key, ci.problem_nid, ci.problem_id, pi.user_id"""
        n = "count(*)"
        # exact integer sums, then one division each (the same double on every engine): the sample
        # standard deviation (BigQuery's STDDEV is STDDEV_SAMP) from n, sum(g) and sum(g*g); the mean
        # percentage from each learner's percentage cut to 1e-6 (floor), summed as an integer
        dbl = wh.sql.type_name("DOUBLE PRECISION")
        var_num = f"CAST({n} * sum(u.g * u.g) - sum(u.g) * sum(u.g) AS {dbl})"
        computed = {
            "course_id": course_id_sql("u.course_key"),
            "course_key": "u.course_key",
            "problem_nid": "u.problem_nid",
            "problem_id": "u.problem_id",
            "avg_problem_raw_score": f"CAST(sum(u.g) AS {dbl}) / {n}",
            "sdv_problem_raw_score": f"CASE WHEN {n} > 1 THEN sqrt({var_num} / CAST({n} * ({n} - 1) AS {dbl})) END",
            "max_possible_raw_score": f"CAST(max(u.possible) AS {dbl})",
            "avg_problem_pct_score": (
                f"CAST(sum(CAST(floor(CAST(u.g AS {dbl}) * 100000000 / u.possible) AS BIGINT)) AS {dbl}) / 1000000 / {n}"
            ),
            "n_unique_users_attempted": "count(DISTINCT u.user_id)",
            "problem_name": "min(u.problem_name)",
            "is_split": "(min(u.split_name) IS NOT NULL)",
            "split_name": "min(u.split_name)",
        }
        return computed, f"FROM ({per_user}) u GROUP BY u.course_key, u.problem_nid, u.problem_id"
