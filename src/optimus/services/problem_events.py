"""ProblemEvents: the problem tables built from the events (edx2bigquery's `problem_check` and
`problem_events`), and ours beside them: first-attempt and final correctness per learner and problem,
and the distribution of the answers given per problem input.

edx2bigquery: make_problem_analysis.py, problem_check_tables (server `problem_check` events) and
make_problem_events.py, ExtractProblemEvents. Every column's rule is in docs/tables/problem_analysis.md.
Payloads are read in SQL once for both engines through the dialect's JSON fragments.
"""

from __future__ import annotations

from typing import ClassVar

from optimus.services.base import register
from optimus.services.course_tables import IN_SCOPE, CourseTables, Table, course_id_sql
from optimus.services.learner_events import block_name_sql, block_type_sql, insert_by_name, path_segment_sql, source
from optimus.services.problem_analysis import answer_order_sql
from optimus.warehouse.base import Warehouse

PROBLEM_CHECK = Table(
    "problem_check",
    {
        "course_id": "VARCHAR",
        "course_key": "VARCHAR",
        "event_id": "VARCHAR",
        "time": "TIMESTAMP",
        "username": "VARCHAR",
        "user_id": "BIGINT",
        "module_id": "VARCHAR",
        "problem_url_name": "VARCHAR",
        "student_answers": "VARCHAR",
        "attempts": "BIGINT",
        "success": "VARCHAR",
        "grade": "DOUBLE PRECISION",
        "max_grade": "DOUBLE PRECISION",
    },
    personal=True,
    order_by=("course_key", "time", "event_id"),
)
PROBLEM_EVENTS = Table(
    "problem_events",
    {
        "course_id": "VARCHAR",
        "course_key": "VARCHAR",
        "event_id": "VARCHAR",
        "user_id": "BIGINT",
        "time": "TIMESTAMP",
        "event_source": "VARCHAR",
        "problem_url": "VARCHAR",
        "event_type": "VARCHAR",
        "attempts": "BIGINT",
        "success": "VARCHAR",
        "grade": "DOUBLE PRECISION",
    },
    personal=True,
    order_by=("course_key", "user_id", "time", "event_id"),
)
FIRST_ATTEMPT = Table(
    "problem_first_attempt_correct",
    {
        "course_id": "VARCHAR",
        "course_key": "VARCHAR",
        "user_id": "BIGINT",
        "username": "VARCHAR",
        "module_id": "VARCHAR",
        "problem_url_name": "VARCHAR",
        "n_checks": "BIGINT",
        "first_check_time": "TIMESTAMP",
        "first_check_attempts": "BIGINT",
        "first_attempt_correct": "BOOLEAN",
        "last_check_time": "TIMESTAMP",
        "final_correct": "BOOLEAN",
    },
    personal=True,
    order_by=("course_key", "module_id", "user_id", "username"),
)
ANSWER_DISTRIBUTION = Table(
    "problem_answer_distribution",
    {
        "course_id": "VARCHAR",
        "course_key": "VARCHAR",
        "module_id": "VARCHAR",
        "problem_url_name": "VARCHAR",
        "answer_id": "VARCHAR",
        "response": "VARCHAR",
        "answer_text": "VARCHAR",
        "n_checks": "BIGINT",
        "n_learners": "BIGINT",
        "n_correct": "BIGINT",
        "share_correct": "DOUBLE PRECISION",
    },
    order_by=("course_key", "module_id", "answer_id", "response"),
)

CHECK_SHAPE = {
    "problem_id": "text",
    "attempts": "text",
    "success": "text",
    "grade": "text",
    "max_grade": "text",
    "answers": "json",
    "correct_map": "json",
    "submission": "json",
}

EVENT_SHAPE = {"problem_id": "text", "problem": "text", "attempts": "text", "success": "text", "grade": "text"}


def checks_sql(wh: Warehouse) -> str:
    """The server `problem_check` events in scope (edx2bigquery's problem_check_tables: event types
    problem_check and save_problem_check, source server), each payload parsed once; `pkey` is the
    problem (context.module.pkey_key, else the payload's problem_id), `who` the learner (user id,
    else username)."""
    d = wh.sql
    events = source(wh, "events")
    doc = d.parse_json_object(f"CAST(e.event AS {d.type_name('VARCHAR')})", CHECK_SHAPE)
    return f"""
        SELECT e.*, coalesce(nullif(e.module_id, ''), {d.json_member_text("e.p", "problem_id")}) AS pkey,
               CASE WHEN e.user_id IS NOT NULL THEN 'u' || CAST(e.user_id AS {d.type_name("VARCHAR")})
                    WHEN nullif(e.username, '') IS NOT NULL THEN 'n' || e.username END AS who
        FROM (SELECT e.event_id, e.time, e.username, e.user_id, e.course_key, e.module_id, {doc} AS p
              FROM {events} e
              WHERE e.{IN_SCOPE} AND e.event_type IN ('problem_check', 'save_problem_check') AND e.event_source = 'server'
              {d.compute_once()}) e"""


@register
class ProblemEvents(CourseTables):
    name = "ProblemEvents"
    needs = ("Clickstream",)
    tables: ClassVar[tuple[Table, ...]] = (PROBLEM_CHECK, PROBLEM_EVENTS, FIRST_ATTEMPT, ANSWER_DISTRIBUTION)
    dictionary = "docs/tables/problem_analysis.md"
    rules_version = 1

    def build(self, wh: Warehouse, table: Table) -> None:
        build = {
            "problem_check": self._problem_check,
            "problem_events": self._problem_events,
            "problem_first_attempt_correct": self._first_attempt,
            "problem_answer_distribution": self._distribution,
        }[table.name]
        computed, body = build(wh)
        insert, select = insert_by_name(wh, table.name, table.columns, computed)
        wh.execute(f"{insert}\n        SELECT {select}\n        {body}")

    def _problem_check(self, wh: Warehouse) -> tuple[dict[str, str], str]:
        d = wh.sql
        # the answers object as compact JSON, its inputs in the problem's order (answer_order_sql), so
        # both engines write the same text (a string quoted as JSON; a list as json_value_text writes it)
        as_json = f"CAST(a.value AS {d.type_name('VARCHAR')})"
        value = f"CASE WHEN {d.starts_with(as_json, '[')} THEN {d.json_value_text('a.value')} ELSE coalesce({as_json}, 'null') END"
        # the key as a JSON string (its backslashes and quotes escaped): literals through the dialect (Spark reads escapes in them)
        quoted_key = (
            f"'\"' || replace(replace(a.key, {d.literal(chr(92))}, {d.literal(chr(92) * 2)}), '\"', {d.literal(chr(92) + chr(34))}) || '\"'"
        )
        pair = f"{quoted_key} || ':' || {value}"
        # one row per check with answers to write, joined back by the event (event_id and time: the same
        # event, as dedup keeps one per event day); a join and GROUP BY, not a scalar subquery per row,
        # which Spark cannot correlate over a generator. A check whose answers have no member gets `{}`.
        answers = f"""
            SELECT c.event_id, c.time, '{{' || coalesce({d.ordered_string_agg(pair, ",", answer_order_sql(wh, "a.key"))}, '') || '}}' AS text
            FROM ({checks_sql(wh)}) c, {d.json_object_entries(d.json_member("c.p", "answers"), "a")}
            GROUP BY c.event_id, c.time"""
        computed = {
            "course_id": course_id_sql("c.course_key"),
            "course_key": "c.course_key",
            "event_id": "c.event_id",
            "time": "c.time",
            "username": "c.username",
            "user_id": "c.user_id",
            "module_id": "c.pkey",
            "problem_url_name": block_name_sql("c.pkey"),
            "student_answers": f"CASE WHEN {d.json_member('c.p', 'answers')} IS NOT NULL THEN coalesce(ans.text, '{{}}') END",
            "attempts": d.try_cast(d.json_member_text("c.p", "attempts"), "BIGINT"),
            "success": d.json_member_text("c.p", "success"),
            "grade": d.try_cast(d.json_member_text("c.p", "grade"), "DOUBLE PRECISION"),
            "max_grade": d.try_cast(d.json_member_text("c.p", "max_grade"), "DOUBLE PRECISION"),
        }
        return computed, f"FROM ({checks_sql(wh)}) c LEFT JOIN ({answers}) ans ON ans.event_id = c.event_id AND ans.time = c.time"

    def _problem_events(self, wh: Warehouse) -> tuple[dict[str, str], str]:
        d = wh.sql
        events = source(wh, "events")
        handler = "(strpos(e.event_type, '/xblock/') > 0 AND strpos(e.event_type, 'xmodule_handler/') > 0)"
        # a payload that is an object is parsed once; any other (a browser's string holding an object) is
        # read by json_text, which reads an object the same way
        event_text = f"CAST(e.event AS {d.type_name('VARCHAR')})"
        is_object = f"{event_text} LIKE '{{%'"
        doc = d.parse_json_object(f"CASE WHEN {is_object} THEN {event_text} END", EVENT_SHAPE)

        def text(key: str) -> str:
            return f"(CASE WHEN e.is_object THEN {d.json_member_text('e.p', key)} ELSE {d.json_text('e.event', key)} END)"

        parsed = f"""
            SELECT e.event_id, e.course_key, e.user_id, e.time, e.event_source, e.event_type, e.module_id, e.event,
                   {is_object} AS is_object, {doc} AS p
            FROM {events} e
            WHERE e.{IN_SCOPE} AND e.user_id IS NOT NULL AND (strpos(e.event_type, 'problem_') > 0 OR e.event_type = 'showanswer')
              AND ({d.regex_matches("e.event_type", "problem_[A-Za-z0-9_]")} OR e.event_type = 'showanswer'){d.compute_once()}"""
        usage = (
            f"coalesce(nullif(e.module_id, ''), {path_segment_sql('e.event_type', '/xblock/')}, {text('problem_id')}, {text('problem')})"
        )
        inner = f"SELECT e.*, {usage} AS pkey, {text('attempts')} AS attempts_text, {text('success')} AS success_text, {text('grade')} AS grade_text FROM ({parsed}) e"
        computed = {
            "course_id": course_id_sql("e.course_key"),
            "course_key": "e.course_key",
            "event_id": "e.event_id",
            "user_id": "e.user_id",
            "time": "e.time",
            "event_source": "e.event_source",
            "problem_url": f"CASE WHEN {block_type_sql('e.pkey')} = 'problem' THEN {block_name_sql('e.pkey')} END",
            "event_type": f"CASE WHEN {handler} THEN {d.regex_extract('e.event_type', 'xmodule_handler/([^/]+)')} ELSE e.event_type END",
            "attempts": d.try_cast("e.attempts_text", "BIGINT"),
            "success": "e.success_text",
            "grade": d.try_cast("e.grade_text", "DOUBLE PRECISION"),
        }
        return computed, f"FROM ({inner}) e"

    def _first_attempt(self, wh: Warehouse) -> tuple[dict[str, str], str]:
        d = wh.sql
        ordered = f"""
            SELECT c.course_key, c.who, c.user_id, c.username, c.pkey, c.time,
                   {d.try_cast(d.json_member_text("c.p", "attempts"), "BIGINT")} AS attempts,
                   {d.json_member_text("c.p", "success")} AS success,
                   row_number() OVER (PARTITION BY c.course_key, c.who, c.pkey ORDER BY c.time, c.event_id) AS first_n,
                   row_number() OVER (PARTITION BY c.course_key, c.who, c.pkey ORDER BY c.time DESC, c.event_id DESC) AS last_n
            FROM ({checks_sql(wh)}) c WHERE c.who IS NOT NULL AND c.pkey IS NOT NULL"""
        correct = "CASE WHEN o.success = 'correct' THEN 1 ELSE 0 END"
        # the first attempt is in the events only when the earliest check says attempts 1
        first_correct = f"CASE WHEN o.first_n = 1 AND o.attempts = 1 THEN {correct} END"
        computed = {
            "course_id": course_id_sql("o.course_key"),
            "course_key": "o.course_key",
            "user_id": "max(o.user_id)",
            "username": "max(o.username)",
            "module_id": "o.pkey",
            "problem_url_name": block_name_sql("o.pkey"),
            "n_checks": "count(*)",
            "first_check_time": "min(o.time)",
            "first_check_attempts": "max(CASE WHEN o.first_n = 1 THEN o.attempts END)",
            "first_attempt_correct": f"(max({first_correct}) = 1)",
            "last_check_time": "max(o.time)",
            "final_correct": f"(max(CASE WHEN o.last_n = 1 THEN {correct} END) = 1)",
        }
        return computed, f"FROM ({ordered}) o GROUP BY o.course_key, o.who, o.pkey"

    def _distribution(self, wh: Warehouse) -> tuple[dict[str, str], str]:
        d = wh.sql
        checks = checks_sql(wh)
        answers = f"""
            SELECT c.event_id, c.course_key, c.pkey, c.who, a.key AS answer_id, {d.json_value_text("a.value")} AS response
            FROM ({checks}) c, {d.json_object_entries(d.json_member("c.p", "answers"), "a")}
            WHERE c.pkey IS NOT NULL"""
        marks = f"""
            SELECT c.event_id, m.key AS answer_id, {d.json_text("m.value", "correctness")} AS correctness
            FROM ({checks}) c, {d.json_object_entries(d.json_member("c.p", "correct_map"), "m")}"""
        answer_of = d.json_member(d.json_document("s.value", {"answer": "json"}), "answer")
        texts = f"""
            SELECT c.event_id, s.key AS answer_id, {d.json_value_text(answer_of)} AS answer_text
            FROM ({checks}) c, {d.json_object_entries(d.json_member("c.p", "submission"), "s")}"""
        computed = {
            "course_id": course_id_sql("a.course_key"),
            "course_key": "a.course_key",
            "module_id": "a.pkey",
            "problem_url_name": block_name_sql("a.pkey"),
            "answer_id": "a.answer_id",
            "response": "a.response",
            "answer_text": "min(t.answer_text)",
            "n_checks": "count(*)",
            "n_learners": "count(DISTINCT a.who)",
            "n_correct": "sum(CASE WHEN m.correctness = 'correct' THEN 1 ELSE 0 END)",
            "share_correct": f"CAST(sum(CASE WHEN m.correctness = 'correct' THEN 1 ELSE 0 END) AS {d.type_name('DOUBLE PRECISION')}) / count(*)",
        }
        body = f"""FROM ({answers}) a
        LEFT JOIN ({marks}) m ON m.event_id = a.event_id AND m.answer_id = a.answer_id
        LEFT JOIN ({texts}) t ON t.event_id = a.event_id AND t.answer_id = a.answer_id
        WHERE a.response IS NOT NULL
        GROUP BY a.course_key, a.pkey, a.answer_id, a.response"""
        return computed, body
