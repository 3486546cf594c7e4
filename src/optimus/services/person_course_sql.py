"""SQL shared by TimeFinder and PersonCourse: input tables, learner resolution, event classes.

The rules are written out in docs/person_course.md; keep the two in step. SQL here is meant
for both DuckDB and PostgreSQL; the one engine-specific piece (JSON field extraction) is
`json_text`, with one branch per dialect.

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
        "event_id": "VARCHAR", "time": "TIMESTAMP", "username": "VARCHAR", "user_id": "BIGINT", "course_id": "VARCHAR",
        "course_key": "VARCHAR", "event_type": "VARCHAR", "event_source": "VARCHAR", "ip": "VARCHAR", "page": "VARCHAR",
        "event": "JSON", "file_id": "BIGINT",
    },
    "auth_user": {"id": "BIGINT", "username": "VARCHAR", "email": "VARCHAR", "course_key": "VARCHAR"},
    "auth_userprofile": {
        "id": "BIGINT", "user_id": "BIGINT", "gender": "VARCHAR", "year_of_birth": "INTEGER", "level_of_education": "VARCHAR",
        "country": "VARCHAR", "course_key": "VARCHAR",
    },
    "student_courseenrollment": {
        "id": "BIGINT", "user_id": "BIGINT", "course_id": "VARCHAR", "created": "TIMESTAMP", "is_active": "BOOLEAN",
        "mode": "VARCHAR", "course_key": "VARCHAR",
    },
    "certificates_generatedcertificate": {
        "id": "BIGINT", "user_id": "BIGINT", "grade": "DOUBLE PRECISION", "status": "VARCHAR", "created_date": "TIMESTAMP",
        "modified_date": "TIMESTAMP", "course_key": "VARCHAR",
    },
    "grades_persistentcoursegrade": {"user_id": "BIGINT", "percent_grade": "DOUBLE PRECISION", "course_key": "VARCHAR"},
    "student_courseaccessrole": {"user_id": "BIGINT", "role": "VARCHAR", "course_key": "VARCHAR"},
    "django_comment_client_role_users": {"user_id": "BIGINT", "name": "VARCHAR", "course_key": "VARCHAR"},
    "user_id_map": {"user_id": "BIGINT", "hash_id": "VARCHAR", "course_key": "VARCHAR"},
    "forum_posts": {
        "type": "VARCHAR", "course_key": "VARCHAR", "author_id": "BIGINT", "votes_up": "INTEGER", "endorsed": "BOOLEAN",
        "pinned": "BOOLEAN",
    },
    "courses": {
        "course_key": "VARCHAR", "course_id": "VARCHAR", "display_name": "VARCHAR", "start_date": "TIMESTAMP",
        "end_date": "TIMESTAMP", "enrollment_start": "TIMESTAMP", "pass_mark": "DOUBLE PRECISION",
    },
    "course_blocks": {
        "course_key": "VARCHAR", "block_id": "VARCHAR", "category": "VARCHAR", "url_name": "VARCHAR",
        "weight": "DOUBLE PRECISION", "published": "BOOLEAN",
    },
    "ip_geo": {
        "ip": "VARCHAR", "country_code": "VARCHAR", "country_name": "VARCHAR", "continent": "VARCHAR", "region": "VARCHAR",
        "city": "VARCHAR", "latitude": "DOUBLE PRECISION", "longitude": "DOUBLE PRECISION",
    },
}

VIDEO_PLAY = ("play_video", "edx.video.played")
VIDEO_PAUSE = ("pause_video", "edx.video.paused")
VIDEO_SEEK = ("seek_video", "edx.video.position.changed")
VIDEO_ANY = (
    "play_video", "pause_video", "seek_video", "stop_video", "load_video", "speed_change_video", "show_transcript",
    "hide_transcript", "edx.video.played", "edx.video.paused", "edx.video.position.changed", "edx.video.stopped",
    "edx.video.loaded", "edx.video.transcript.shown", "edx.video.transcript.hidden",
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
    if wh.dialect == "duckdb":
        return (
            f"(CASE WHEN json_type({expr}) = 'VARCHAR' "
            f"THEN json_extract_string(TRY_CAST(json_extract_string({expr}, '$') AS JSON), '$.{key}') "
            f"ELSE json_extract_string({expr}, '$.{key}') END)"
        )
    # PostgreSQL: jsonb operators; a string payload is parsed only when it looks like an object,
    # and without failing (optimus_try_jsonb: NULL when it is not JSON, as DuckDB's TRY_CAST)
    j = f"CAST({expr} AS jsonb)"
    return (
        f"(CASE WHEN jsonb_typeof({j}) = 'object' THEN {j} ->> '{key}' "
        f"WHEN jsonb_typeof({j}) = 'string' AND ({j} #>> '{{}}') LIKE '{{%}}' "
        f"THEN optimus_try_jsonb({j} #>> '{{}}') ->> '{key}' END)"
    )


def chapter_sql(event_type: str) -> str:
    """The chapter part of a courseware URL event type (`/courses/{id}/courseware/{chapter}/...`,
    an implicit event: the page was requested); NULL for any other event."""
    tail = f"substr({event_type}, strpos({event_type}, '/courseware/') + 12)"
    part = f"split_part(split_part(split_part({tail}, '/', 1), '?', 1), '#', 1)"
    return f"(CASE WHEN strpos({event_type}, '/courseware/') > 0 THEN nullif({part}, '') END)"


def learner_events(wh: Warehouse, scope_filter: str, scope_join: str = "") -> str:
    """SELECT of the events in scope with the learner resolved.

    `uid` is events.user_id (context.user_id), else the course's auth_user id of the event's
    username; `who` identifies the learner for ordering gaps (uid, else the username).
    `scope_filter` is a condition on `e` (the events alias); `scope_join` an inner join that picks
    events by more than their course (a condition correlated with each event's time would make the
    engine deduplicate every event's (course, time) first).
    """
    events, auth = source(wh, "events"), source(wh, "auth_user")
    video = json_text(wh, "e.event", "id")
    problem = json_text(wh, "e.event", "problem_id")
    return f"""
        SELECT e.event_id, e.time, CAST(e.time AS DATE) AS day, e.course_id, e.course_key,
               coalesce(e.user_id, au.id) AS uid,
               nullif(e.username, '') AS username,
               CASE WHEN coalesce(e.user_id, au.id) IS NOT NULL THEN 'u' || CAST(coalesce(e.user_id, au.id) AS VARCHAR)
                    WHEN nullif(e.username, '') IS NOT NULL THEN 'n' || e.username END AS who,
               e.event_type, e.event_source, nullif(e.ip, '') AS ip,
               {chapter_sql('e.event_type')} AS chapter,
               CASE WHEN e.event_type IN {in_list(VIDEO_PLAY)} THEN {video} END AS video_id,
               CASE WHEN e.event_type = 'problem_check' AND e.event_source = 'server' THEN {problem} END AS problem_id
        FROM {events} e {scope_join}
        LEFT JOIN (SELECT course_key, username, min(id) AS id FROM {auth} a WHERE username IS NOT NULL AND username <> ''
                   GROUP BY course_key, username) au
          ON e.user_id IS NULL AND au.course_key = e.course_key AND au.username = e.username
        WHERE e.course_key IS NOT NULL AND {scope_filter}"""


def counts_sql() -> dict[str, str]:
    """Per-event 0/1 expressions (over a learner_events row `v`) summed into the n* columns."""

    def flag(cond: str) -> str:
        return f"CASE WHEN {cond} THEN 1 ELSE 0 END"

    return {
        "nplay_video": flag(f"v.event_type IN {in_list(VIDEO_PLAY)}"),
        "nvideo": flag(f"v.event_type IN {in_list(VIDEO_ANY)}"),
        "npause_video": flag(f"v.event_type IN {in_list(VIDEO_PAUSE)}"),
        "nseek_video": flag(f"v.event_type IN {in_list(VIDEO_SEEK)}"),
        "nproblem_check": flag("v.event_type = 'problem_check' AND v.event_source = 'server'"),
        "nshow_answer": flag("v.event_type = 'showanswer'"),
        "nseq_goto": flag("v.event_type = 'seq_goto'"),
        "nprogcheck": flag(
            "v.event_type LIKE '/courses/%' AND (v.event_type LIKE '%/progress' OR v.event_type LIKE '%/progress/')"
        ),
        "nforum_events": flag(
            "v.event_type LIKE 'edx.forum.%' OR (v.event_type LIKE '/courses/%' AND strpos(v.event_type, '/discussion/') > 0)"
        ),
    }


def scope_table(wh: Warehouse, name: str, columns: dict[str, str], rows: list[list[Any]]) -> None:
    """A small temporary table of keys to act on (bookkeeping rows, not bulk data)."""
    q = wh.quote
    wh.execute(f"DROP TABLE IF EXISTS {q(name)}")
    wh.execute(f"CREATE TEMP TABLE {q(name)} ({', '.join(f'{q(c)} {t}' for c, t in columns.items())})")
    marks = ", ".join("?" for _ in columns)
    wh.executemany(f"INSERT INTO {q(name)} VALUES ({marks})", rows)


# -- person_course -----------------------------------------------------------------------------
ACCESS_ROLES = {  # student_courseaccessrole.role -> flag column
    "instructor": "roles_isInstructor", "staff": "roles_isStaff", "beta_testers": "roles_isBetaTester",
    "ccx_coach": "roles_isCCXCoach", "finance_admin": "roles_isFinanceAdmin", "sales_admin": "roles_isSalesAdmin",
    "library_user": "roles_isLibraryUser", "data_researcher": "roles_isDataResearcher",
}
FORUM_ROLES = {  # django_comment_client_role_users.name -> flag column
    "Administrator": "forumRoles_isAdmin", "Moderator": "forumRoles_isModerator",
    "Group Moderator": "forumRoles_isGroupModerator", "Community TA": "forumRoles_isCommunityTA",
    "Student": "forumRoles_isStudent",
}

PC_COLUMNS: dict[str, str] = {
    "course_id": "VARCHAR", "course_key": "VARCHAR NOT NULL", "user_id": "BIGINT NOT NULL", "username": "VARCHAR",
    "registered": "INTEGER", "viewed": "INTEGER", "explored": "INTEGER", "certified": "INTEGER", "completed": "INTEGER",
    "grade": "DOUBLE PRECISION", "passing_grade": "DOUBLE PRECISION", "mode": "VARCHAR", "is_active": "INTEGER",
    "start_time": "TIMESTAMP", "first_event": "TIMESTAMP", "last_event": "TIMESTAMP", "nevents": "BIGINT",
    "ndays_act": "BIGINT", "nplay_video": "BIGINT", "nvideo": "BIGINT", "nvideos_unique_viewed": "BIGINT",
    "npause_video": "BIGINT", "nseek_video": "BIGINT", "nchapters": "BIGINT", "nchapters_published": "BIGINT",
    "nproblem_check": "BIGINT", "attempted_problems": "BIGINT", "nshow_answer": "BIGINT", "nprogcheck": "BIGINT",
    "nseq_goto": "BIGINT", "nforum_events": "BIGINT", "nforum_posts": "BIGINT", "nforum_threads": "BIGINT",
    "nforum_comments": "BIGINT", "nforum_votes": "BIGINT", "nforum_endorsed": "BIGINT", "nforum_pinned": "BIGINT",
    "ip": "VARCHAR", "cc_by_ip": "VARCHAR", "countryLabel": "VARCHAR", "final_cc_cname": "VARCHAR", "continent": "VARCHAR",
    "region": "VARCHAR", "city": "VARCHAR", "latitude": "DOUBLE PRECISION", "longitude": "DOUBLE PRECISION",
    "profile_country": "VARCHAR", "LoE": "VARCHAR", "YoB": "INTEGER", "gender": "VARCHAR", "email_domain": "VARCHAR",
    "cert_status": "VARCHAR", "cert_created_date": "TIMESTAMP", "cert_modified_date": "TIMESTAMP",
    "avg_dt": "DOUBLE PRECISION", "sdv_dt": "DOUBLE PRECISION", "max_dt": "DOUBLE PRECISION", "n_dt": "BIGINT",
    "sum_dt": "DOUBLE PRECISION", "roles": "VARCHAR",
    **{flag: "INTEGER" for flag in ACCESS_ROLES.values()},
    **{flag: "INTEGER" for flag in FORUM_ROLES.values()},
    "inconsistent_flag": "INTEGER", "rules_version": "INTEGER NOT NULL", "computed_at": "TIMESTAMP NOT NULL",
}

CP_COLUMNS: dict[str, str] = {
    "course_key": "VARCHAR NOT NULL", "course_id": "VARCHAR", "display_name": "VARCHAR",
    "registration_open": "TIMESTAMP", "launch_date": "TIMESTAMP", "close_date": "TIMESTAMP", "course_length_weeks": "INTEGER",
    "registered": "BIGINT", "viewed": "BIGINT", "explored": "BIGINT", "certified": "BIGINT", "completed": "BIGINT",
    "learners": "BIGINT", "not_registered": "BIGINT",
    "nmode_audit": "BIGINT", "nmode_honor": "BIGINT", "nmode_verified": "BIGINT", "nmode_professional": "BIGINT",
    "nmode_other": "BIGINT", "nchapters": "BIGINT", "nvideos": "BIGINT", "nhtml": "BIGINT", "nproblems_summative": "BIGINT",
    "nproblems_formative": "BIGINT", "ndiscussions": "BIGINT", "nother_activities": "BIGINT",
    "nevents": "BIGINT", "nevents_unmatched": "BIGINT", "nusernames_unmatched": "BIGINT",
    "rules_version": "INTEGER NOT NULL", "computed_at": "TIMESTAMP NOT NULL",
}

# Seconds from exact microsecond sums: one division, by a double, the same on every engine.
MICROS = "CAST(1000000 AS DOUBLE PRECISION)"
MICROS2 = "CAST(1000000000000 AS DOUBLE PRECISION)"

STRUCTURAL = ("course", "chapter", "sequential", "vertical", "video", "html", "problem", "discussion")


def _flag(cond: str) -> str:
    return f"CASE WHEN {cond} THEN 1 ELSE 0 END"


def person_course_insert(wh: Warehouse) -> str:
    """INSERT of person_course rows for the courses in temp table _pc_scope (param: rules_version)."""
    q = wh.quote
    src = {t: source(wh, t) for t in INPUTS}
    inscope = "course_key IN (SELECT course_key FROM _pc_scope)"
    counts = counts_sql()
    ev_sums = ",\n                   ".join(f"sum({expr}) AS {name}" for name, expr in counts.items())
    access = ",\n                   ".join(f"max({_flag(f'r.role = {in_list([role])[1:-1]}')}) AS {q(flag)}" for role, flag in ACCESS_ROLES.items())
    forum = ",\n                   ".join(f"max({_flag(f'r.name = {in_list([name])[1:-1]}')}) AS {q(flag)}" for name, flag in FORUM_ROLES.items())
    role_words = [f"CASE WHEN ar.{q(flag)} = 1 THEN '{role}' END" for role, flag in ACCESS_ROLES.items()] + [
        f"CASE WHEN fr.{q(flag)} = 1 THEN '{name}' END" for name, flag in FORUM_ROLES.items()
    ]
    flags = [f"coalesce(ar.{q(f)}, 0)" for f in ACCESS_ROLES.values()] + [f"coalesce(fr.{q(f)}, 0)" for f in FORUM_ROLES.values()]
    ndays = "coalesce(ea.ndays_act, 0)"
    n_dt = "coalesce(dt.n_dt, 0)"
    grade = "coalesce(gr.percent_grade, ce.grade)"
    nforum_posts = "coalesce(fp.nforum_posts, 0)"
    certified = _flag("ce.status = 'downloadable'")
    return f"""
        INSERT INTO person_course ({', '.join(q(c) for c in PC_COLUMNS)})
        WITH
        v AS NOT MATERIALIZED ({learner_events(wh, f'e.{inscope}')}),
        au AS (SELECT course_key, id AS user_id, min(username) AS username, min(email) AS email FROM {src['auth_user']} a
               WHERE {inscope} AND id IS NOT NULL GROUP BY course_key, id),
        aun AS (SELECT course_key, username, min(id) AS user_id FROM {src['auth_user']} a
                WHERE {inscope} AND username IS NOT NULL AND username <> '' GROUP BY course_key, username),
        en AS (SELECT * FROM (SELECT course_key, user_id, course_id, mode, is_active, created,
                   row_number() OVER (PARTITION BY course_key, user_id ORDER BY created DESC NULLS LAST, id DESC NULLS LAST) AS rn
               FROM {src['student_courseenrollment']} t WHERE {inscope} AND user_id IS NOT NULL) x WHERE rn = 1),
        ce AS (SELECT * FROM (SELECT course_key, user_id, grade, status, created_date, modified_date,
                   row_number() OVER (PARTITION BY course_key, user_id ORDER BY modified_date DESC NULLS LAST, id DESC NULLS LAST) AS rn
               FROM {src['certificates_generatedcertificate']} t WHERE {inscope} AND user_id IS NOT NULL) x WHERE rn = 1),
        gr AS (SELECT course_key, user_id, max(percent_grade) AS percent_grade FROM {src['grades_persistentcoursegrade']} t
               WHERE {inscope} GROUP BY course_key, user_id),
        pr AS (SELECT * FROM (SELECT course_key, user_id, gender, year_of_birth, level_of_education, country,
                   row_number() OVER (PARTITION BY course_key, user_id ORDER BY id DESC NULLS LAST) AS rn
               FROM {src['auth_userprofile']} t WHERE {inscope} AND user_id IS NOT NULL) x WHERE rn = 1),
        pub AS (SELECT DISTINCT course_key, url_name FROM {src['course_blocks']} t
                WHERE {inscope} AND category = 'chapter' AND (published IS NULL OR published) AND url_name IS NOT NULL),
        npub AS (SELECT course_key, count(*) AS n FROM pub GROUP BY course_key),
        ea AS (SELECT v.course_key, v.uid, count(*) AS nevents, count(DISTINCT v.day) AS ndays_act,
                   min(v.time) AS first_event, max(v.time) AS last_event, min(v.username) AS username,
                   count(DISTINCT v.chapter) AS nchapters, count(DISTINCT pub.url_name) AS nchapters_published,
                   count(DISTINCT v.video_id) AS nvideos_unique_viewed, count(DISTINCT v.problem_id) AS attempted_problems,
                   {ev_sums}
               FROM v LEFT JOIN pub ON pub.course_key = v.course_key AND pub.url_name = v.chapter
               WHERE v.uid IS NOT NULL GROUP BY v.course_key, v.uid),
        ipc AS (SELECT course_key, uid, ip, count(*) AS n, max(time) AS latest FROM v
                WHERE uid IS NOT NULL AND ip IS NOT NULL GROUP BY course_key, uid, ip),
        mip AS (SELECT * FROM (SELECT ipc.*, row_number() OVER (PARTITION BY course_key, uid ORDER BY n DESC, latest DESC, ip DESC) AS rn
                FROM ipc) x WHERE rn = 1),
        dt AS (SELECT d.course_key, coalesce(d.user_id, aun.user_id) AS uid, CAST(sum(d.sum_dt_us) AS NUMERIC(38,0)) AS s1,
                   CAST(sum(d.n_dt) AS BIGINT) AS n_dt, max(d.max_dt) AS max_dt, CAST(sum(d.sum_dt2_us) AS NUMERIC(38,0)) AS s2
               FROM person_course_day d LEFT JOIN aun ON d.user_id IS NULL AND aun.course_key = d.course_key AND aun.username = d.username
               WHERE d.{inscope} GROUP BY d.course_key, coalesce(d.user_id, aun.user_id)),
        fp AS (SELECT course_key, author_id, count(*) AS nforum_posts,
                   sum({_flag("type = 'CommentThread'")}) AS nforum_threads, sum({_flag("type = 'Comment'")}) AS nforum_comments,
                   sum(coalesce(votes_up, 0)) AS nforum_votes, sum({_flag("type = 'Comment' AND endorsed")}) AS nforum_endorsed,
                   sum({_flag("type = 'CommentThread' AND pinned")}) AS nforum_pinned
               FROM {src['forum_posts']} t WHERE {inscope} AND author_id IS NOT NULL GROUP BY course_key, author_id),
        ar AS (SELECT r.course_key, r.user_id, {access} FROM {src['student_courseaccessrole']} r
               WHERE r.{inscope} GROUP BY r.course_key, r.user_id),
        fr AS (SELECT r.course_key, r.user_id, {forum} FROM {src['django_comment_client_role_users']} r
               WHERE r.{inscope} GROUP BY r.course_key, r.user_id),
        cid AS (SELECT s.course_key, coalesce(
                    (SELECT min(c.course_id) FROM {src['courses']} c WHERE c.course_key = s.course_key),
                    (SELECT min(x.course_id) FROM en x WHERE x.course_key = s.course_key),
                    (SELECT min(y.course_id) FROM {src['events']} y WHERE y.course_key = s.course_key)) AS course_id,
                    (SELECT max(c.pass_mark) FROM {src['courses']} c WHERE c.course_key = s.course_key) AS pass_mark
                FROM _pc_scope s),
        people AS (SELECT course_key, user_id FROM en UNION SELECT course_key, uid FROM ea
                   UNION SELECT course_key, user_id FROM ce)
        SELECT cid.course_id, p.course_key, p.user_id, coalesce(au.username, ea.username),
               {_flag("en.user_id IS NOT NULL")}, {_flag(f"{ndays} > 0")},
               {_flag("coalesce(npub.n, 0) > 0 AND coalesce(ea.nchapters_published, 0) >= ceil(npub.n / 2.0)")},
               {certified}, {_flag(f"{grade} IS NOT NULL AND cid.pass_mark IS NOT NULL AND {grade} >= cid.pass_mark")},
               {grade}, cid.pass_mark, en.mode, CASE WHEN en.is_active THEN 1 WHEN NOT en.is_active THEN 0 END, en.created,
               ea.first_event, ea.last_event, coalesce(ea.nevents, 0), {ndays},
               coalesce(ea.nplay_video, 0), coalesce(ea.nvideo, 0), coalesce(ea.nvideos_unique_viewed, 0),
               coalesce(ea.npause_video, 0), coalesce(ea.nseek_video, 0), coalesce(ea.nchapters, 0), coalesce(ea.nchapters_published, 0),
               coalesce(ea.nproblem_check, 0), coalesce(ea.attempted_problems, 0), coalesce(ea.nshow_answer, 0),
               coalesce(ea.nprogcheck, 0), coalesce(ea.nseq_goto, 0), coalesce(ea.nforum_events, 0),
               {nforum_posts}, coalesce(fp.nforum_threads, 0), coalesce(fp.nforum_comments, 0), coalesce(fp.nforum_votes, 0),
               coalesce(fp.nforum_endorsed, 0), coalesce(fp.nforum_pinned, 0),
               mip.ip, geo.country_code, geo.country_name, geo.country_name, geo.continent, geo.region, geo.city,
               geo.latitude, geo.longitude,
               nullif(pr.country, ''), nullif(pr.level_of_education, ''), pr.year_of_birth, nullif(pr.gender, ''),
               nullif(lower(split_part(au.email, '@', 2)), ''),
               ce.status, ce.created_date, ce.modified_date,
               CASE WHEN {n_dt} > 0 THEN CAST(dt.s1 AS DOUBLE PRECISION) / dt.n_dt / {MICROS} END,
               CASE WHEN {n_dt} > 1 THEN sqrt(CAST(dt.n_dt * dt.s2 - dt.s1 * dt.s1 AS DOUBLE PRECISION)
                                              / CAST(dt.n_dt * (dt.n_dt - 1) AS DOUBLE PRECISION)) / {MICROS} END,
               dt.max_dt, {n_dt}, coalesce(CAST(dt.s1 AS DOUBLE PRECISION) / {MICROS}, 0),
               nullif(concat_ws(',', {', '.join(role_words)}), ''),
               {', '.join(flags)},
               {_flag(f"coalesce(ea.nevents, 0) = 0 AND ({nforum_posts} > 0 OR ce.status = 'downloadable' OR coalesce({grade}, 0) > 0)")},
               ?, current_timestamp
        FROM people p
        JOIN cid ON cid.course_key = p.course_key
        LEFT JOIN au ON au.course_key = p.course_key AND au.user_id = p.user_id
        LEFT JOIN en ON en.course_key = p.course_key AND en.user_id = p.user_id
        LEFT JOIN ce ON ce.course_key = p.course_key AND ce.user_id = p.user_id
        LEFT JOIN gr ON gr.course_key = p.course_key AND gr.user_id = p.user_id
        LEFT JOIN pr ON pr.course_key = p.course_key AND pr.user_id = p.user_id
        LEFT JOIN ea ON ea.course_key = p.course_key AND ea.uid = p.user_id
        LEFT JOIN npub ON npub.course_key = p.course_key
        LEFT JOIN mip ON mip.course_key = p.course_key AND mip.uid = p.user_id
        LEFT JOIN {src['ip_geo']} geo ON geo.ip = mip.ip
        LEFT JOIN dt ON dt.course_key = p.course_key AND dt.uid = p.user_id
        LEFT JOIN fp ON fp.course_key = p.course_key AND fp.author_id = p.user_id
        LEFT JOIN ar ON ar.course_key = p.course_key AND ar.user_id = p.user_id
        LEFT JOIN fr ON fr.course_key = p.course_key AND fr.user_id = p.user_id
    """


def course_profile_insert(wh: Warehouse) -> str:
    """INSERT of course_profile rows for the courses in _pc_scope (param: rules_version)."""
    q = wh.quote
    src = {t: source(wh, t) for t in ("courses", "course_blocks")}
    inscope = "course_key IN (SELECT course_key FROM _pc_scope)"
    blocks = f"(SELECT * FROM {src['course_blocks']} b WHERE b.{inscope} AND (b.published IS NULL OR b.published))"

    def nblocks(cond: str) -> str:
        return f"(SELECT count(*) FROM {blocks} b WHERE b.course_key = s.course_key AND {cond})"

    def npc(cond: str) -> str:
        return f"(SELECT count(*) FROM person_course p WHERE p.course_key = s.course_key AND {cond})"

    ev = learner_events(wh, f"e.{inscope}")
    mode = "p.registered = 1 AND p.mode"
    return f"""
        INSERT INTO course_profile ({', '.join(q(c) for c in CP_COLUMNS)})
        WITH c AS (SELECT course_key, min(display_name) AS display_name, min(enrollment_start) AS enrollment_start,
                       min(start_date) AS start_date, max(end_date) AS end_date
                   FROM {src['courses']} t WHERE {inscope} GROUP BY course_key),
             v AS ({ev}),
             ve AS (SELECT course_key, count(*) AS nevents, sum(CASE WHEN uid IS NULL THEN 1 ELSE 0 END) AS unmatched,
                        count(DISTINCT CASE WHEN uid IS NULL THEN username END) AS unmatched_names
                    FROM v GROUP BY course_key)
        SELECT s.course_key,
               coalesce((SELECT min(p.course_id) FROM person_course p WHERE p.course_key = s.course_key),
                        (SELECT min(x.course_id) FROM {src['courses']} x WHERE x.course_key = s.course_key)),
               c.display_name, c.enrollment_start, c.start_date, c.end_date,
               CASE WHEN c.start_date IS NOT NULL AND c.end_date IS NOT NULL
                    THEN CAST(ceil((CAST(c.end_date AS DATE) - CAST(c.start_date AS DATE)) / 7.0) AS INTEGER) END,
               {npc('p.registered = 1')}, {npc('p.viewed = 1')}, {npc('p.explored = 1')}, {npc('p.certified = 1')},
               {npc('p.completed = 1')}, {npc('1 = 1')}, {npc('p.registered = 0')},
               {npc(f"{mode} = 'audit'")}, {npc(f"{mode} = 'honor'")}, {npc(f"{mode} = 'verified'")},
               {npc(f"{mode} IN ('professional', 'no-id-professional')")},
               {npc("p.registered = 1 AND (p.mode IS NULL OR p.mode NOT IN ('audit', 'honor', 'verified', 'professional', 'no-id-professional'))")},
               {nblocks("b.category = 'chapter'")}, {nblocks("b.category = 'video'")}, {nblocks("b.category = 'html'")},
               {nblocks("b.category = 'problem' AND b.weight > 0")},
               {nblocks("b.category = 'problem' AND (b.weight IS NULL OR b.weight <= 0)")},
               {nblocks("b.category = 'discussion'")}, {nblocks(f"b.category NOT IN {in_list(STRUCTURAL)}")},
               coalesce(ve.nevents, 0), coalesce(ve.unmatched, 0), coalesce(ve.unmatched_names, 0),
               ?, current_timestamp
        FROM _pc_scope s LEFT JOIN c ON c.course_key = s.course_key LEFT JOIN ve ON ve.course_key = s.course_key
    """
