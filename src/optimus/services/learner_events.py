"""The events and inputs that TimeFinder and PersonCourse both read: input tables, learner resolution, event classes.

The rules are written out in docs/person_course.md; keep the two in step. SQL here is written
once for every engine; the one piece engines spell differently (JSON field extraction,
`json_text`) is a fragment of the warehouse's dialect (`wh.sql`).

Inputs produced by other services may not exist yet (a package without forums, or a service
not yet run): `source()` then stands in an empty relation with the same columns, so the
derived tables are still built from what is there.
"""

from __future__ import annotations

from typing import Any

from optimus.formats import sql_tables
from optimus.warehouse.base import Warehouse, raw_table

# The columns read from each input, with the type used when the table (or column) is missing.
INPUTS: dict[str, dict[str, str]] = {
    "events": {
        "event_id": "VARCHAR",
        "time": "TIMESTAMP",
        "username": "VARCHAR",
        "user_id": "BIGINT",
        "course_id": "VARCHAR",
        "course_key": "VARCHAR",
        "event_type": "VARCHAR",
        "event_source": "VARCHAR",
        "ip": "VARCHAR",
        "page": "VARCHAR",
        "event": "JSON",
        "file_id": "BIGINT",
        "module_id": "VARCHAR",
        "context": "JSON",
    },
    "auth_user": {
        "id": "BIGINT",
        "username": "VARCHAR",
        "email": "VARCHAR",
        "course_key": "VARCHAR",
        # user_info_combo's
        "is_staff": "BOOLEAN",
        "last_login": "TIMESTAMP",
        "date_joined": "TIMESTAMP",
    },
    "auth_userprofile": {
        "id": "BIGINT",
        "user_id": "BIGINT",
        "gender": "VARCHAR",
        "year_of_birth": "INTEGER",
        "level_of_education": "VARCHAR",
        "country": "VARCHAR",
        "course_key": "VARCHAR",
        # user_info_combo's
        "name": "VARCHAR",
        "language": "VARCHAR",
        "location": "VARCHAR",
        "meta": "VARCHAR",
        "courseware": "VARCHAR",
        "mailing_address": "VARCHAR",
        "goals": "VARCHAR",
        "allow_certificate": "VARCHAR",
        "city": "VARCHAR",
    },
    "student_courseenrollment": {
        "id": "BIGINT",
        "user_id": "BIGINT",
        "course_id": "VARCHAR",
        "created": "TIMESTAMP",
        "is_active": "BOOLEAN",
        "mode": "VARCHAR",
        "course_key": "VARCHAR",
    },
    "certificates_generatedcertificate": {
        "id": "BIGINT",
        "user_id": "BIGINT",
        "grade": "DOUBLE PRECISION",
        "status": "VARCHAR",
        "created_date": "TIMESTAMP",
        "modified_date": "TIMESTAMP",
        "course_key": "VARCHAR",
        # user_info_combo's
        "download_url": "VARCHAR",
        "course_id": "VARCHAR",
        "key": "VARCHAR",
        "distinction": "BOOLEAN",
        "verify_uuid": "VARCHAR",
        "download_uuid": "VARCHAR",
        "name": "VARCHAR",
        "error_reason": "VARCHAR",
        "mode": "VARCHAR",
    },
    "grades_persistentcoursegrade": {
        "user_id": "BIGINT",
        "percent_grade": "DOUBLE PRECISION",
        "course_key": "VARCHAR",
        "grading_policy_hash": "VARCHAR",
        "letter_grade": "VARCHAR",
        "passed_timestamp": "TIMESTAMP",
        "created": "TIMESTAMP",
        "modified": "TIMESTAMP",
    },
    "grades_persistentsubsectiongrade": {
        "user_id": "BIGINT",
        "course_key": "VARCHAR",
        "usage_key": "VARCHAR",
        "earned_all": "DOUBLE PRECISION",
        "possible_all": "DOUBLE PRECISION",
        "earned_graded": "DOUBLE PRECISION",
        "possible_graded": "DOUBLE PRECISION",
        "first_attempted": "TIMESTAMP",
        "created": "TIMESTAMP",
        "modified": "TIMESTAMP",
    },
    "student_courseaccessrole": {"user_id": "BIGINT", "role": "VARCHAR", "course_key": "VARCHAR"},
    "django_comment_client_role_users": {"user_id": "BIGINT", "name": "VARCHAR", "course_key": "VARCHAR"},
    "courseware_studentmodule": {
        "student_id": "BIGINT",
        "module_type": "VARCHAR",
        "module_id": "VARCHAR",
        "course_key": "VARCHAR",
        # Problem Analysis: the row, its capa state (JSON text), grade and creation
        "id": "BIGINT",
        "state": "VARCHAR",
        "grade": "DOUBLE PRECISION",
        "max_grade": "DOUBLE PRECISION",
        "created": "TIMESTAMP",
    },
    "user_id_map": {"user_id": "BIGINT", "hash_id": "VARCHAR", "course_key": "VARCHAR"},
    "forum_posts": {
        "type": "VARCHAR",
        "course_key": "VARCHAR",
        "author_id": "BIGINT",
        "votes_up": "INTEGER",
        "endorsed": "BOOLEAN",
        "pinned": "BOOLEAN",
        # forum_person's
        "id": "VARCHAR",
        "author_username": "VARCHAR",
        "created_at": "TIMESTAMP",
        "thread_id": "VARCHAR",
        "parent_id": "VARCHAR",
        "title": "VARCHAR",
    },
    "courses": {
        "course_key": "VARCHAR",
        "course_id": "VARCHAR",
        "display_name": "VARCHAR",
        "start_date": "TIMESTAMP",
        "end_date": "TIMESTAMP",
        "enrollment_start": "TIMESTAMP",
        "pass_mark": "DOUBLE PRECISION",
    },
    "course_blocks": {
        "course_key": "VARCHAR",
        "block_id": "VARCHAR",
        "category": "VARCHAR",
        "url_name": "VARCHAR",
        "position": "INTEGER",
        "display_name": "VARCHAR",
        "youtube_id": "VARCHAR",
        "chapter_index": "INTEGER",
        "weight": "DOUBLE PRECISION",
        "published": "BOOLEAN",
        # course_axis (issue 18)
        "block_id_old": "VARCHAR",
        "parent_url_name": "VARCHAR",
        "graded": "BOOLEAN",
        "format": "VARCHAR",
        "due_date": "TIMESTAMP",
        "draft": "BOOLEAN",
        "release_date": "TIMESTAMP",
        "path": "VARCHAR",
        "hidden_by_ancestor": "BOOLEAN",
        "split_url_name": "VARCHAR",
        "group_id_to_child": "VARCHAR",
        "user_partition_id": "VARCHAR",
        "response_types": "VARCHAR",
        "has_solution": "BOOLEAN",
        "has_image": "BOOLEAN",
        "iframe_youtube_id": "VARCHAR",
        # Problem Analysis: the problem's release
        "start_date": "TIMESTAMP",
    },
    "course_graders": {
        "course_key": "VARCHAR",
        "position": "INTEGER",
        "assignment_type": "VARCHAR",
        "name": "VARCHAR",
        "fraction_of_overall_grade": "DOUBLE PRECISION",
        "short_label": "VARCHAR",
        "min_count": "INTEGER",
        "drop_count": "INTEGER",
    },
    "course_grade_cutoffs": {"course_key": "VARCHAR", "position": "INTEGER", "label": "VARCHAR", "cutoff": "DOUBLE PRECISION"},
    # derived by PersonCourse (read by the video, time-on-asset and show-answer tables)
    "person_course": {
        "course_key": "VARCHAR",
        "user_id": "BIGINT",
        "username": "VARCHAR",
        "viewed": "INTEGER",
        "explored": "INTEGER",
        "certified": "INTEGER",
        "mode": "VARCHAR",
        "roles": "VARCHAR",
        "nproblem_check": "BIGINT",
        "forumRoles_isStudent": "INTEGER",
    },
    "ip_geo": {
        "ip": "VARCHAR",
        "country_code": "VARCHAR",
        "country_name": "VARCHAR",
        "continent": "VARCHAR",
        "region": "VARCHAR",
        "city": "VARCHAR",
        "latitude": "DOUBLE PRECISION",
        "longitude": "DOUBLE PRECISION",
    },
}

VIDEO_PLAY = ("play_video", "edx.video.played")
VIDEO_PAUSE = ("pause_video", "edx.video.paused")
VIDEO_SEEK = ("seek_video", "edx.video.position.changed")
VIDEO_STOP = ("stop_video", "edx.video.stopped")
VIDEO_SPEED = ("speed_change_video",)  # edX documents no mobile name for it
# the events of a video watched (edx2bigquery's `createVideoStats_day`: play, pause or stop)
VIDEO_VIEW = VIDEO_PLAY + VIDEO_PAUSE + VIDEO_STOP
VIDEO_TRANSCRIPT = ("show_transcript", "edx.video.transcript.shown")
VIDEO_ANY = (
    "play_video",
    "pause_video",
    "seek_video",
    "stop_video",
    "load_video",
    "speed_change_video",
    "show_transcript",
    "hide_transcript",
    "edx.video.played",
    "edx.video.paused",
    "edx.video.position.changed",
    "edx.video.stopped",
    "edx.video.loaded",
    "edx.video.transcript.shown",
    "edx.video.transcript.hidden",
)


def source(wh: Warehouse, table: str) -> str:
    """A relation with the INPUTS columns of `table`: the table itself, or an empty stand-in.
    edX's own tables (those Database State knows) are read from the raw schema."""
    cols = INPUTS[table]
    schema = wh.raw_schema if table in sql_tables.COLUMN_TYPES else None
    if not wh.table_exists(table, schema=schema):
        body = ", ".join(f"CAST(NULL AS {t}) AS {wh.quote(c)}" for c, t in cols.items())
        return f"(SELECT {body} WHERE 1 = 0)"
    have = set(wh.columns(table, schema=schema))
    body = ", ".join(wh.quote(c) if c in have else f"CAST(NULL AS {t}) AS {wh.quote(c)}" for c, t in cols.items())
    return f"(SELECT {body} FROM {raw_table(wh, table) if schema else wh.quote(table)})"


def in_list(values: list[str] | tuple[str, ...]) -> str:
    """A SQL list of string literals (constants of this module only, never user input)."""
    return "(" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + ")"


def json_text(wh: Warehouse, expr: str, key: str) -> str:
    """SQL for the text of `key` in a JSON object, or in a JSON string that holds an object
    (browser events carry their payload as such a string); NULL when absent or unparsable."""
    return wh.sql.json_text(expr, key)


def chapter_sql(event_type: str) -> str:
    """The chapter part of a courseware URL event type (`/courses/{id}/courseware/{chapter}/...`,
    an implicit event: the page was requested); NULL for any other event (`/api/courseware/...`
    of the Learning MFE names no chapter)."""
    tail = f"substr({event_type}, strpos({event_type}, '/courseware/') + 12)"
    part = f"split_part(split_part(split_part({tail}, '/', 1), '?', 1), '#', 1)"
    return f"(CASE WHEN {event_type} LIKE '/courses/%' AND strpos({event_type}, '/courseware/') > 0 THEN nullif({part}, '') END)"


# Events that show the learner in the courseware (besides a /courseware/ URL or an /xblock/ call):
# the Learning MFE's navigation, the old sequence navigation, and video and problem interactions.
PROBLEM_EVENTS = (
    "problem_check",
    "problem_show",
    "problem_save",
    "problem_reset",
    "problem_graded",
    "showanswer",
    "edx.grades.problem.submitted",
)
NAVIGATION_EVENTS = ("edx.ui.lms.jump_nav.selected", "seq_goto", "seq_next", "seq_prev")


def learner_action_sql(row: str) -> str:
    """True unless the event is a background task's or an enrolment's (the analytics pipeline's
    insights/user_activity.py get_predicate_labels gives neither an activity label)."""
    return f"(coalesce({row}.event_source, '') <> 'task' AND coalesce({row}.event_type, '') NOT LIKE 'edx.course.enrollment.%')"


def courseware_sql(row: str) -> str:
    """True for an event that shows the learner in the courseware (docs/person_course.md, `viewed`):
    never a task event or an enrolment event (the analytics pipeline's user_activity gives them no
    activity); a courseware page, an /xblock/ call (type or page), sequence/outline navigation, a
    video or problem interaction."""
    t = f"{row}.event_type"
    return (
        f"({learner_action_sql(row)} AND ("
        f"({t} LIKE '/courses/%' AND strpos({t}, '/courseware') > 0) OR {t} LIKE '/api/courseware/%'"
        f" OR strpos({t}, '/xblock/') > 0 OR strpos(coalesce({row}.page, ''), '/xblock/') > 0"
        f" OR {t} LIKE 'edx.ui.lms.sequence.%' OR {t} LIKE 'edx.ui.lms.outline.%' OR {t} IN {in_list(NAVIGATION_EVENTS)}"
        f" OR {t} IN {in_list(VIDEO_ANY)} OR {t} IN {in_list(PROBLEM_EVENTS)}))"
    )


def outline_target_sql(wh: Warehouse, row: str) -> str:
    """The `target_url` of an `edx.ui.lms.outline.*` payload (the link the learner chose in the course outline);
    NULL for any other event. edx-platform's lms/static/js/courseware/accordion_events.js logs the accordion
    link's href (`/courses/{id}/courseware/{chapter}/{sequential}/`); the Learning MFE's outline sidebar logs
    `{base}/course/{course_id}/{sequence usage key}/{unit usage key}`."""
    return f"(CASE WHEN {row}.event_type LIKE 'edx.ui.lms.outline.%' THEN {json_text(wh, f'{row}.event', 'target_url')} END)"


def event_chapter_sql(wh: Warehouse, row: str, fields: dict[str, str] | None = None) -> str:
    """The chapter an event names by URL: its courseware URL event type (chapter_sql), else the
    `/courseware/{chapter}/` of an outline event's target_url (`fields`: payload_fields, or columns holding them)."""
    target = (fields or payload_fields(wh, row))["outline_target"]
    url_chapter = f"(CASE WHEN strpos({target}, '/courses/') > 0 THEN {path_segment_sql(target, '/courseware/')} END)"
    return f"coalesce({chapter_sql(f'{row}.event_type')}, {url_chapter})"


def payload_fields(wh: Warehouse, row: str) -> dict[str, str]:
    """The payload members the event rules read, each for the event types that read it only (NULL for the
    others): a video's or sequence event's `id`, a sequence event's `target_id`, a problem event's
    `problem_id`, an outline event's `target_url`. Selected once as columns, each payload is parsed once
    per member instead of once per use (a video id is used some ten times by video_block_id_sql)."""
    t, payload = f"{row}.event_type", f"{row}.event"
    sequence = f"{t} LIKE 'edx.ui.lms.sequence.%'"
    return {
        "payload_id": f"(CASE WHEN {t} IN {in_list(VIDEO_ANY)} OR {sequence} THEN {json_text(wh, payload, 'id')} END)",
        "payload_target_id": f"(CASE WHEN {sequence} THEN {json_text(wh, payload, 'target_id')} END)",
        "payload_problem_id": f"(CASE WHEN {t} IN {in_list(PROBLEM_EVENTS)} THEN {json_text(wh, payload, 'problem_id')} END)",
        "outline_target": outline_target_sql(wh, row),
    }


def path_segment_sql(text: str, marker: str) -> str:
    """The path segment of `text` after `marker` (up to '/', '?' or '#'); NULL when absent or empty."""
    tail = f"substr({text}, strpos({text}, '{marker}') + {len(marker)})"
    return f"(CASE WHEN strpos({text}, '{marker}') > 0 THEN nullif(split_part(split_part(split_part({tail}, '/', 1), '?', 1), '#', 1), '') END)"


def usage_key_sql(wh: Warehouse, row: str, fields: dict[str, str] | None = None) -> str:
    """The usage key of the block an event touched, NULL when none: context.module.usage_key
    (events.module_id), else the key of an /xblock/ URL (type, then page), of a Learning MFE
    sequence API URL, of an `edx.ui.lms.sequence.*` payload (target_id, then id), the first
    `block-v1:` usage key in an `edx.ui.lms.outline.*` payload's target_url (the Learning MFE's
    sequence), a video's id, or a problem event's problem_id.
    `fields`: payload_fields(wh, row) (the default), or columns holding them."""
    t = f"{row}.event_type"
    f = fields or payload_fields(wh, row)
    return (
        f"coalesce(nullif({row}.module_id, ''), {path_segment_sql(t, '/xblock/')}, {path_segment_sql(f'{row}.page', '/xblock/')},"
        f" {path_segment_sql(t, '/api/courseware/sequence/')},"
        f" CASE WHEN {t} LIKE 'edx.ui.lms.sequence.%' THEN coalesce({f['payload_target_id']}, {f['payload_id']})"
        f" WHEN {t} LIKE 'edx.ui.lms.outline.%' THEN 'block-v1:' || {path_segment_sql(f['outline_target'], '/block-v1:')}"
        f" WHEN {t} IN {in_list(VIDEO_ANY)} THEN {f['payload_id']}"
        f" WHEN {t} IN {in_list(PROBLEM_EVENTS)} THEN {f['payload_problem_id']} END)"
    )


def block_type_sql(key: str) -> str:
    """The category of a usage key: `block-v1:...+type@{category}+block@...`, `i4x://org/course/{category}/...`,
    a video's `i4x-org-course-video-...`; NULL for anything else."""
    return (
        f"(CASE WHEN {key} LIKE 'block-v1:%' THEN nullif(split_part(split_part({key}, '+type@', 2), '+', 1), '')"
        f" WHEN {key} LIKE 'i4x://%' THEN nullif(split_part({key}, '/', 5), '')"
        f" WHEN {key} LIKE 'i4x-%' AND strpos({key}, '-video-') > 0 THEN 'video' END)"
    )


def block_name_sql(key: str) -> str:
    """The url_name of a usage key (the forms of block_type_sql); NULL for anything else."""
    return (
        f"(CASE WHEN {key} LIKE 'block-v1:%' THEN nullif(split_part({key}, '+block@', 2), '')"
        f" WHEN {key} LIKE 'i4x://%' THEN nullif(split_part({key}, '/', 6), '')"
        f" WHEN {key} LIKE 'i4x-%' AND strpos({key}, '-video-') > 0 THEN nullif(substr({key}, strpos({key}, '-video-') + 7), '') END)"
    )


def video_block_id_sql(raw: str) -> str:
    """The video's own block id in a video event's `id` (surrounding white space stripped):
    the text after `+block@` of `block-v1:…+type@video+block@H`, after `/video/` of
    `i4x://org/course/video/H`, after the first `-video-` of `i4x-org-course-video-H` (old courses
    also wrote the category `videoalpha`: `/videoalpha/`, `-videoalpha-`), else the id as written;
    NULL when empty. So one video's id forms are one video."""
    v = f"trim({raw})"
    return (
        f"nullif(CASE WHEN strpos({v}, '+block@') > 0 THEN split_part({v}, '+block@', 2) "
        f"WHEN strpos({v}, '/video/') > 0 THEN split_part({v}, '/video/', 2) "
        f"WHEN strpos({v}, '/videoalpha/') > 0 THEN split_part({v}, '/videoalpha/', 2) "
        f"WHEN {v} LIKE 'i4x-%' AND strpos({v}, '-video-') > 0 THEN substr({v}, strpos({v}, '-video-') + 7) "
        f"WHEN {v} LIKE 'i4x-%' AND strpos({v}, '-videoalpha-') > 0 THEN substr({v}, strpos({v}, '-videoalpha-') + 12) "
        f"ELSE {v} END, '')"
    )


def learner_events(wh: Warehouse, scope_filter: str, scope_join: str = "", blocks: bool = False) -> str:
    """SELECT of the events in scope with the learner resolved.

    `uid` is events.user_id (context.user_id), else the course's auth_user id of the event's
    username; `who` identifies the learner for ordering gaps (uid, else the username).
    `in_day_table`: the event counts in person_course_day and the counts built like it (edx2bigquery's
    make_person_course_day: not an /xblock/ call, a non-empty username); `courseware` and the touched
    block (`block_type`, `block_name`, with `blocks` only) count for viewed and the visited chapters,
    whatever in_day_table.
    `scope_filter` is a condition on `e` (the events alias); `scope_join` an inner join that picks
    events by more than their course (a condition correlated with each event's time would make the
    engine deduplicate every event's (course, time) first).
    """
    events, auth = source(wh, "events"), source(wh, "auth_user")
    accounts = f"""LEFT JOIN (SELECT course_key, username, min(id) AS id FROM {auth} a WHERE username IS NOT NULL AND username <> ''
                   GROUP BY course_key, username) account_ids
          ON e.user_id IS NULL AND account_ids.course_key = e.course_key AND account_ids.username = e.username
        WHERE e.course_key IS NOT NULL AND {scope_filter}"""
    if not blocks:
        # Time Finder needs no block: its SELECT stays flat, which its plan is tuned for
        return f"""
        SELECT {_event_columns(wh, "e", "account_ids.id", payload_fields(wh, "e"), blocks=False)}
        FROM {events} e {scope_join}
        {accounts}"""
    # with `blocks`: the payload members once per event (innermost SELECT), the touched block's key and the
    # other derived keys from them (middle), its category and name from the key (outer)
    parsed = ", ".join(f"{expr} AS {name}" for name, expr in payload_fields(wh, "e").items())
    columns = {name: f"parsed.{name}" for name in payload_fields(wh, "e")}
    return f"""
        SELECT touched.*, {block_type_sql("touched.block_key")} AS block_type, {block_name_sql("touched.block_key")} AS block_name FROM (
        SELECT {_event_columns(wh, "parsed", "parsed.account_id", columns, blocks=True)}
        FROM (SELECT e.event_id, e.time, e.course_id, e.course_key, e.user_id, e.username, e.event_type, e.event_source, e.ip,
                     e.page, e.module_id, account_ids.id AS account_id, {parsed}
              FROM {events} e {scope_join}
              {accounts}) parsed) touched"""


def _event_columns(wh: Warehouse, row: str, account_id: str, fields: dict[str, str], blocks: bool) -> str:
    """The SELECT list of learner_events over an events row `row` (`account_id`: the auth_user id of its
    username; `fields`: payload_fields, or columns holding them)."""
    uid = f"coalesce({row}.user_id, {account_id})"
    block = f"{usage_key_sql(wh, row, fields)} AS block_key," if blocks else ""
    return f"""{row}.event_id, {row}.time, CAST({row}.time AS DATE) AS day, {row}.course_id, {row}.course_key,
               {uid} AS uid,
               nullif({row}.username, '') AS username,
               CASE WHEN {uid} IS NOT NULL THEN 'u' || CAST({uid} AS {wh.sql.type_name("VARCHAR")})
                    WHEN nullif({row}.username, '') IS NOT NULL THEN 'n' || {row}.username END AS who,
               {row}.event_type, {row}.event_source, nullif({row}.ip, '') AS ip,
               {event_chapter_sql(wh, row, fields)} AS chapter,
               {courseware_sql(row)} AS courseware, {learner_action_sql(row)} AS learner_action, {block}
               (strpos(coalesce({row}.event_type, ''), '/xblock/') = 0 AND nullif({row}.username, '') IS NOT NULL) AS in_day_table,
               CASE WHEN {row}.event_type IN {in_list(VIDEO_VIEW)} THEN {video_block_id_sql(fields["payload_id"])} END AS video_id,
               CASE WHEN {row}.event_type = 'problem_check' AND {row}.event_source = 'server' THEN {fields["payload_problem_id"]} END AS problem_id"""


def flag(cond: str) -> str:
    """1 when `cond` holds, else 0 (also when it is NULL)."""
    return f"CASE WHEN {cond} THEN 1 ELSE 0 END"


def counts_sql(row: str) -> dict[str, str]:
    """Per-event 0/1 expressions over a learner_events row named `row`, summed into the n* columns."""
    return {
        "nplay_video": flag(f"{row}.event_type IN {in_list(VIDEO_PLAY)}"),
        "nvideo": flag(f"{row}.event_type IN {in_list(VIDEO_PLAY)}"),  # edx2bigquery: the same number as nplay_video
        "nvideo_events": flag(f"{row}.event_type IN {in_list(VIDEO_ANY)}"),
        "npause_video": flag(f"{row}.event_type IN {in_list(VIDEO_PAUSE)}"),
        "nseek_video": flag(f"{row}.event_type IN {in_list(VIDEO_SEEK)}"),
        "ntranscript": flag(f"{row}.event_type IN {in_list(VIDEO_TRANSCRIPT)}"),
        "nproblem_check": flag(f"{row}.event_type = 'problem_check'"),  # browser and server, as edx2bigquery
        "nproblem_check_server": flag(f"{row}.event_type = 'problem_check' AND {row}.event_source = 'server'"),
        "nshow_answer": flag(f"{row}.event_type = 'showanswer'"),
        "nseq_goto": flag(f"{row}.event_type = 'seq_goto'"),
        "nprogcheck": flag(
            f"{row}.event_type LIKE '/courses/%' AND ({row}.event_type LIKE '%/progress' OR {row}.event_type LIKE '%/progress/')"
        ),
        "nforum_events": flag(
            f"{row}.event_type LIKE 'edx.forum.%' OR ({row}.event_type LIKE '/courses/%' AND strpos({row}.event_type, '/discussion/') > 0)"
        ),
    }


def scope_table(wh: Warehouse, name: str, columns: dict[str, str], rows: list[list[Any]]) -> None:
    """A small temporary table of keys to act on (bookkeeping rows, not bulk data)."""
    q = wh.quote
    wh.execute(f"DROP TABLE IF EXISTS {q(name)}")
    wh.execute(f"CREATE TEMP TABLE {q(name)} ({', '.join(f'{q(c)} {t}' for c, t in columns.items())})")
    marks = ", ".join("?" for _ in columns)
    wh.executemany(f"INSERT INTO {q(name)} VALUES ({marks})", rows)


# Seconds from exact microsecond sums: one division, by a double, the same on every engine.
MICROS = "CAST(1000000 AS DOUBLE PRECISION)"
MICROS2 = "CAST(1000000000000 AS DOUBLE PRECISION)"


def insert_by_name(wh: Warehouse, table: str, declared: dict[str, str], computed: dict[str, str]) -> tuple[str, str]:
    """`INSERT INTO table (columns)` and its SELECT list of `expression AS column`, both from `computed`
    (column -> SQL expression), so that no expression is matched to its column by position.

    :param declared: the table's columns (name -> type); each must be computed, and nothing else.
    """
    missing, unknown = [c for c in declared if c not in computed], [c for c in computed if c not in declared]
    if missing or unknown:
        raise ValueError(f"{table}: columns not computed: {missing}; computed but not in the table: {unknown}")
    q = wh.quote
    insert = f"INSERT INTO {q(table)} ({', '.join(q(c) for c in declared)})"
    select = ",\n               ".join(f"{computed[c]} AS {q(c)}" for c in declared)
    return insert, select
