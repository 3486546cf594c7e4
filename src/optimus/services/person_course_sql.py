"""The SQL of Person Course: `person_course` and `course_profile`, each column named where it is computed.

The rules are written out in docs/person_course.md; keep the two in step. The events in scope, the
learner resolution and the event classes are shared with TimeFinder (`learner_events`). Each INSERT
is built from one mapping of column to expression (`insert_by_name`), so no expression is matched to
its column by position.
"""

from __future__ import annotations

from optimus.services.learner_events import (  # the event classes are re-exported: the reference tests count by them
    INPUTS,
    MICROS,
    VIDEO_ANY,
    VIDEO_PAUSE,
    VIDEO_PLAY,
    VIDEO_SEEK,
    block_name_sql,
    counts_sql,
    flag,
    in_list,
    insert_by_name,
    learner_events,
    source,
)
from optimus.warehouse.base import Warehouse

__all__ = [
    "ACCESS_ROLES",
    "CP_COLUMNS",
    "FORUM_ROLES",
    "PC_COLUMNS",
    "VIDEO_ANY",
    "VIDEO_PAUSE",
    "VIDEO_PLAY",
    "VIDEO_SEEK",
    "course_profile_insert",
    "person_course_insert",
]

# -- the columns -----------------------------------------------------------------------------
# The role flags of edx2bigquery's make_roles.py (`known_roles_course`, `known_roles_disc`), 1 or NULL.
ACCESS_ROLES = {  # student_courseaccessrole.role -> flag column
    "beta_testers": "roles_isBetaTester",
    "instructor": "roles_isInstructor",
    "staff": "roles_isStaff",
    "ccx_coach": "roles_isCCX",
    "finance_admin": "roles_isFinance",
    "library_user": "roles_isLibrary",
    "sales_admin": "roles_isSales",
}
FORUM_ROLES = {  # django_comment_client_role_users.name -> flag column (edX's name `Community TA`, not make_roles' `CommunityTA`)
    "Administrator": "forumRoles_isAdmin",
    "Community TA": "forumRoles_isCommunityTA",
    "Moderator": "forumRoles_isModerator",
    "Student": "forumRoles_isStudent",
}
# The forum roles that make a learner `Staff` (every course access role does, whatever its name).
FORUM_STAFF_ROLES = ("Administrator", "Community TA", "Moderator")
# roles_list (ours): every role of these names the learner has, in this order, comma-joined.
ROLE_LIST_ACCESS = ("instructor", "staff", "beta_testers", "ccx_coach", "finance_admin", "sales_admin", "library_user", "data_researcher")
ROLE_LIST_FORUM = ("Administrator", "Moderator", "Group Moderator", "Community TA", "Student")

PC_COLUMNS: dict[str, str] = {
    "course_id": "VARCHAR",
    "course_key": "VARCHAR NOT NULL",
    "user_id": "BIGINT NOT NULL",
    "username": "VARCHAR",
    "registered": "INTEGER",
    "viewed": "INTEGER",
    "explored": "INTEGER",
    "certified": "INTEGER",
    "completed": "INTEGER",
    "grade": "DOUBLE PRECISION",
    "passing_grade": "DOUBLE PRECISION",
    "mode": "VARCHAR",
    "is_active": "INTEGER",
    "start_time": "TIMESTAMP",
    "first_event": "TIMESTAMP",
    "last_event": "TIMESTAMP",
    "nevents": "BIGINT",
    "ndays_act": "BIGINT",
    "nplay_video": "BIGINT",
    "nvideo": "BIGINT",
    "nvideo_events": "BIGINT",
    "nvideos_unique_viewed": "BIGINT",
    "nvideos_total_watched": "DOUBLE PRECISION",
    "npause_video": "BIGINT",
    "nseek_video": "BIGINT",
    "ntranscript": "BIGINT",
    "nchapters": "BIGINT",
    "nchapters_published": "BIGINT",
    "nproblem_check": "BIGINT",
    "nproblem_check_server": "BIGINT",
    "attempted_problems": "BIGINT",
    "nshow_answer": "BIGINT",
    "nprogcheck": "BIGINT",
    "nseq_goto": "BIGINT",
    "nforum_events": "BIGINT",
    "nforum_posts": "BIGINT",
    "nforum_threads": "BIGINT",
    "nforum_comments": "BIGINT",
    "nforum_votes": "BIGINT",
    "nforum_endorsed": "BIGINT",
    "nforum_pinned": "BIGINT",
    "ip": "VARCHAR",
    "cc_by_ip": "VARCHAR",
    "countryLabel": "VARCHAR",
    "final_cc_cname": "VARCHAR",
    "continent": "VARCHAR",
    "region": "VARCHAR",
    "city": "VARCHAR",
    "latitude": "DOUBLE PRECISION",
    "longitude": "DOUBLE PRECISION",
    "profile_country": "VARCHAR",
    "LoE": "VARCHAR",
    "YoB": "INTEGER",
    "gender": "VARCHAR",
    "email_domain": "VARCHAR",
    "cert_status": "VARCHAR",
    "cert_created_date": "TIMESTAMP",
    "cert_modified_date": "TIMESTAMP",
    "avg_dt": "DOUBLE PRECISION",
    "sdv_dt": "DOUBLE PRECISION",
    "max_dt": "DOUBLE PRECISION",
    "n_dt": "BIGINT",
    "sum_dt": "DOUBLE PRECISION",
    "roles": "VARCHAR",
    "roles_list": "VARCHAR",
    **{flag: "INTEGER" for flag in ACCESS_ROLES.values()},
    **{flag: "INTEGER" for flag in FORUM_ROLES.values()},
    "inconsistent_flag": "INTEGER",
    "rules_version": "INTEGER NOT NULL",
    "computed_at": "TIMESTAMP NOT NULL",
}

CP_COLUMNS: dict[str, str] = {
    "course_key": "VARCHAR NOT NULL",
    "course_id": "VARCHAR",
    "display_name": "VARCHAR",
    "registration_open": "TIMESTAMP",
    "launch_date": "TIMESTAMP",
    "close_date": "TIMESTAMP",
    "course_length_weeks": "INTEGER",
    "registered": "BIGINT",
    "viewed": "BIGINT",
    "explored": "BIGINT",
    "certified": "BIGINT",
    "completed": "BIGINT",
    "learners": "BIGINT",
    "not_registered": "BIGINT",
    "viewed_not_registered": "BIGINT",
    "explored_not_registered": "BIGINT",
    "certified_not_registered": "BIGINT",
    "completed_not_registered": "BIGINT",
    "not_registered_with_events": "BIGINT",
    "nmode_audit": "BIGINT",
    "nmode_honor": "BIGINT",
    "nmode_verified": "BIGINT",
    "nmode_professional": "BIGINT",
    "nmode_other": "BIGINT",
    "nchapters": "BIGINT",
    "nvideos": "BIGINT",
    "nhtml": "BIGINT",
    "nproblems_summative": "BIGINT",
    "nproblems_formative": "BIGINT",
    "ndiscussions": "BIGINT",
    "nother_activities": "BIGINT",
    "nevents": "BIGINT",
    "nevents_unmatched": "BIGINT",
    "nusernames_unmatched": "BIGINT",
    "rules_version": "INTEGER NOT NULL",
    "computed_at": "TIMESTAMP NOT NULL",
}

STRUCTURAL = ("course", "chapter", "sequential", "vertical", "video", "html", "problem", "discussion")


def person_course_insert(wh: Warehouse) -> str:
    """INSERT of person_course rows for the courses in temp table _pc_scope (param: rules_version)."""
    q = wh.quote
    src = {t: source(wh, t) for t in INPUTS}
    inscope = "course_key IN (SELECT course_key FROM _pc_scope)"

    # one pass over the learner's events: the counts of person_course_day's events (in_day_table) and those of
    # every event (learner_access); a learner without in_day_table events gets 0 or NULL, as the coalesces below
    def in_day(expr: str) -> str:
        return f"CASE WHEN learner_events.in_day_table THEN {expr} END"

    in_day_sums = ",\n                   ".join(
        [f"sum({flag('learner_events.in_day_table')}) AS nevents"]
        + [f"sum({in_day(expr)}) AS {name}" for name, expr in counts_sql("learner_events").items()]
    )
    access_flags = ",\n                   ".join(
        f"max({flag(f'granted.role = {in_list([role])[1:-1]}')}) AS {q(column)}" for role, column in ACCESS_ROLES.items()
    )
    forum_flags = ",\n                   ".join(
        f"max({flag(f'granted.name = {in_list([name])[1:-1]}')}) AS {q(column)}" for name, column in FORUM_ROLES.items()
    )
    listed = ",\n                   ".join(
        [f"max({flag(f'granted.role = {in_list([role])[1:-1]}')}) AS {q('has_' + role)}" for role in ROLE_LIST_ACCESS]
    )
    listed_forum = ",\n                   ".join(
        [f"max({flag(f'granted.name = {in_list([name])[1:-1]}')}) AS {q('has_' + name)}" for name in ROLE_LIST_FORUM]
    )
    role_words = [f"CASE WHEN access_roles.{q('has_' + role)} = 1 THEN '{role}' END" for role in ROLE_LIST_ACCESS] + [
        f"CASE WHEN forum_roles.{q('has_' + name)} = 1 THEN '{name}' END" for name in ROLE_LIST_FORUM
    ]
    # make_roles.py:createRoleVar: Staff for any course role or a staff forum role, else Student; NULL without role rows
    roles = (
        "CASE WHEN access_roles.user_id IS NOT NULL OR forum_roles.is_staff = 1 THEN 'Staff' "
        "WHEN forum_roles.user_id IS NOT NULL THEN 'Student' END"
    )
    activity, forum, time_on = "event_activity", "forum_activity", "time_on_course"
    enrollment, certificate, profile = "latest_enrollment", "latest_certificate", "latest_profile"
    ndays = f"coalesce({activity}.ndays_act, 0)"
    n_dt = f"coalesce({time_on}.n_dt, 0)"
    grade = f"coalesce(course_grade.percent_grade, {certificate}.grade)"
    nforum_posts = f"coalesce({forum}.nforum_posts, 0)"
    pass_mark = "course_facts.pass_mark"
    chapters_half = (
        "coalesce(published_chapter_counts.n_published, 0) > 0 "
        "AND coalesce(chapter_counts.nchapters_published, 0) >= ceil(published_chapter_counts.n_published / 2.0)"
    )
    zero_if_no_events = (
        "nplay_video",
        "nvideo",
        "nvideo_events",
        "nvideos_unique_viewed",
        "npause_video",
        "nseek_video",
        "ntranscript",
        "nproblem_check",
        "nproblem_check_server",
        "attempted_problems",
        "nshow_answer",
        "nprogcheck",
        "nseq_goto",
        "nforum_events",
    )
    columns = {
        "course_id": "course_facts.course_id",
        "course_key": "learners.course_key",
        "user_id": "learners.user_id",
        "username": "coalesce(accounts.username, learner_access.username)",
        "registered": flag(f"{enrollment}.user_id IS NOT NULL"),
        "viewed": flag("learner_access.viewed_by_events = 1 OR chapter_counts.nchapters IS NOT NULL"),
        "explored": flag(chapters_half),
        "certified": flag(f"{certificate}.status = 'downloadable'"),
        # make_person_course.py:compute_first_phase: grade at or above the pass mark, or a downloadable certificate
        "completed": flag(
            f"({grade} IS NOT NULL AND {pass_mark} IS NOT NULL AND {grade} >= {pass_mark}) OR {certificate}.status = 'downloadable'"
        ),
        "grade": grade,
        "passing_grade": pass_mark,
        "mode": f"{enrollment}.mode",
        "is_active": f"CASE WHEN {enrollment}.is_active THEN 1 WHEN NOT {enrollment}.is_active THEN 0 END",
        "start_time": f"{enrollment}.created",
        "first_event": f"{activity}.first_event",
        "last_event": f"{activity}.last_event",
        "nevents": f"coalesce({activity}.nevents, 0)",
        "ndays_act": ndays,
        **{name: f"coalesce({activity}.{name}, 0)" for name in zero_if_no_events},
        "nchapters": "chapter_counts.nchapters",  # NULL without a visited chapter, as edx2bigquery's load_nchapters
        "nchapters_published": "chapter_counts.nchapters_published",
        # make_video_analysis.py:createPersonCourseVideo: n_unique_videos_watched / n_total_videos (NULL: the course has no videos)
        "nvideos_total_watched": (
            "CASE WHEN published_video_counts.n_videos > 0 THEN "
            f"CAST(coalesce({activity}.nvideos_unique_viewed, 0) AS DOUBLE PRECISION) / published_video_counts.n_videos END"
        ),
        "nforum_posts": nforum_posts,
        **{
            name: f"coalesce({forum}.{name}, 0)"
            for name in ("nforum_threads", "nforum_comments", "nforum_votes", "nforum_endorsed", "nforum_pinned")
        },
        "ip": "modal_ip.ip",
        "cc_by_ip": "ip_geo.country_code",
        "countryLabel": "ip_geo.country_name",
        "final_cc_cname": "ip_geo.country_name",
        **{name: f"ip_geo.{name}" for name in ("continent", "region", "city", "latitude", "longitude")},
        "profile_country": f"nullif({profile}.country, '')",
        "LoE": f"nullif({profile}.level_of_education, '')",
        "YoB": f"{profile}.year_of_birth",
        "gender": f"nullif({profile}.gender, '')",
        "email_domain": "nullif(lower(split_part(accounts.email, '@', 2)), '')",
        "cert_status": f"{certificate}.status",
        "cert_created_date": f"{certificate}.created_date",
        "cert_modified_date": f"{certificate}.modified_date",
        "avg_dt": f"CASE WHEN {n_dt} > 0 THEN CAST({time_on}.s1 AS DOUBLE PRECISION) / {time_on}.n_dt / {MICROS} END",
        "sdv_dt": (
            f"CASE WHEN {n_dt} > 1 THEN sqrt(CAST({time_on}.n_dt * {time_on}.s2 - {time_on}.s1 * {time_on}.s1 AS DOUBLE PRECISION)"
            f" / CAST({time_on}.n_dt * ({time_on}.n_dt - 1) AS DOUBLE PRECISION)) / {MICROS} END"
        ),
        "max_dt": f"{time_on}.max_dt",
        "n_dt": n_dt,
        "sum_dt": f"coalesce(CAST({time_on}.s1 AS DOUBLE PRECISION) / {MICROS}, 0)",
        "roles": roles,
        "roles_list": f"nullif(concat_ws(',', {', '.join(role_words)}), '')",
        **{column: f"CASE WHEN access_roles.{q(column)} = 1 THEN 1 END" for column in ACCESS_ROLES.values()},
        **{column: f"CASE WHEN forum_roles.{q(column)} = 1 THEN 1 END" for column in FORUM_ROLES.values()},
        "inconsistent_flag": flag(
            f"coalesce(learner_access.nevents_any, 0) = 0 AND ({nforum_posts} > 0 OR {certificate}.status = 'downloadable' OR coalesce({grade}, 0) > 0)"
        ),
        "rules_version": "?",
        "computed_at": "current_timestamp",
    }
    insert, select = insert_by_name(wh, "person_course", PC_COLUMNS, columns)
    return f"""
        {insert}
        WITH
        learner_events AS{wh.sql.inline_cte()} ({learner_events(wh, f"e.{inscope}", blocks=True)}),
        accounts AS (SELECT course_key, id AS user_id, min(username) AS username, min(email) AS email FROM {src["auth_user"]} a
               WHERE {inscope} AND id IS NOT NULL GROUP BY course_key, id),
        user_ids_by_username AS (SELECT course_key, username, min(id) AS user_id FROM {src["auth_user"]} a
                WHERE {inscope} AND username IS NOT NULL AND username <> '' GROUP BY course_key, username),
        {enrollment} AS (SELECT * FROM (SELECT course_key, user_id, course_id, mode, is_active, created,
                   row_number() OVER (PARTITION BY course_key, user_id ORDER BY created DESC NULLS LAST, id DESC NULLS LAST) AS rn
               FROM {src["student_courseenrollment"]} t WHERE {inscope} AND user_id IS NOT NULL) ranked WHERE rn = 1),
        {certificate} AS (SELECT * FROM (SELECT course_key, user_id, grade, status, created_date, modified_date,
                   row_number() OVER (PARTITION BY course_key, user_id ORDER BY modified_date DESC NULLS LAST, id DESC NULLS LAST) AS rn
               FROM {src["certificates_generatedcertificate"]} t WHERE {inscope} AND user_id IS NOT NULL) ranked WHERE rn = 1),
        course_grade AS (SELECT course_key, user_id, max(percent_grade) AS percent_grade FROM {src["grades_persistentcoursegrade"]} t
               WHERE {inscope} GROUP BY course_key, user_id),
        {profile} AS (SELECT * FROM (SELECT course_key, user_id, gender, year_of_birth, level_of_education, country,
                   row_number() OVER (PARTITION BY course_key, user_id ORDER BY id DESC NULLS LAST) AS rn
               FROM {src["auth_userprofile"]} t WHERE {inscope} AND user_id IS NOT NULL) ranked WHERE rn = 1),
        published_chapters AS (SELECT DISTINCT course_key, url_name FROM {src["course_blocks"]} t
                WHERE {inscope} AND category = 'chapter' AND (published IS NULL OR published) AND url_name IS NOT NULL),
        published_chapter_counts AS (SELECT course_key, count(*) AS n_published FROM published_chapters GROUP BY course_key),
        published_video_counts AS (SELECT course_key, count(*) AS n_videos FROM {src["course_blocks"]} t
                WHERE {inscope} AND category = 'video' AND (published IS NULL OR published) GROUP BY course_key),
        {activity} AS (SELECT learner_events.course_key, learner_events.uid, {in_day_sums},
                   count(DISTINCT {in_day("learner_events.day")}) AS ndays_act,
                   min({in_day("learner_events.time")}) AS first_event, max({in_day("learner_events.time")}) AS last_event,
                   count(DISTINCT {in_day("learner_events.video_id")}) AS nvideos_unique_viewed,
                   count(DISTINCT {in_day("learner_events.problem_id")}) AS attempted_problems,
                   max(CASE WHEN learner_events.courseware THEN 1 ELSE 0 END) AS viewed_by_events,
                   count(*) AS nevents_any, min(learner_events.username) AS username
               FROM learner_events
               WHERE learner_events.uid IS NOT NULL GROUP BY learner_events.course_key, learner_events.uid),
        learner_access AS (SELECT course_key, uid, viewed_by_events, nevents_any, username FROM {activity}),
        block_chapters AS (SELECT DISTINCT block.course_key, block.category, block.url_name, chapter.url_name AS chapter
               FROM {src["course_blocks"]} block JOIN {src["course_blocks"]} chapter
                 ON chapter.course_key = block.course_key AND chapter.category = 'chapter' AND chapter.chapter_index = block.chapter_index
               WHERE block.{inscope} AND block.url_name IS NOT NULL AND chapter.url_name IS NOT NULL),
        visited_chapters AS (SELECT course_key, uid, chapter FROM learner_events
                   WHERE uid IS NOT NULL AND chapter IS NOT NULL AND learner_action
               UNION SELECT learner_events.course_key, learner_events.uid, block_chapters.chapter FROM learner_events JOIN block_chapters
                   ON block_chapters.course_key = learner_events.course_key AND block_chapters.category = learner_events.block_type
                      AND block_chapters.url_name = learner_events.block_name
                   WHERE learner_events.uid IS NOT NULL AND learner_events.learner_action
               UNION SELECT course_key, student_id, coalesce({block_name_sql("module_id")}, nullif(module_id, '')) FROM {src["courseware_studentmodule"]} sm
                   WHERE {inscope} AND module_type = 'chapter' AND student_id IS NOT NULL AND nullif(module_id, '') IS NOT NULL),
        chapter_counts AS (SELECT visited_chapters.course_key, visited_chapters.uid, count(DISTINCT visited_chapters.chapter) AS nchapters,
                   count(DISTINCT published_chapters.url_name) AS nchapters_published
               FROM visited_chapters LEFT JOIN published_chapters
                 ON published_chapters.course_key = visited_chapters.course_key AND published_chapters.url_name = visited_chapters.chapter
               GROUP BY visited_chapters.course_key, visited_chapters.uid),
        ip_counts AS (SELECT course_key, uid, ip, count(*) AS n, max(time) AS latest FROM learner_events
                WHERE uid IS NOT NULL AND ip IS NOT NULL GROUP BY course_key, uid, ip),
        modal_ip AS (SELECT * FROM (SELECT ip_counts.*,
                    row_number() OVER (PARTITION BY course_key, uid ORDER BY n DESC, latest DESC, ip DESC) AS rn
                FROM ip_counts) ranked WHERE rn = 1),
        {time_on} AS (SELECT learner_day.course_key, coalesce(learner_day.user_id, user_ids_by_username.user_id) AS uid,
                   CAST(sum(learner_day.sum_dt_us) AS NUMERIC(38,0)) AS s1, CAST(sum(learner_day.n_dt) AS BIGINT) AS n_dt,
                   max(learner_day.max_dt) AS max_dt, CAST(sum(learner_day.sum_dt2_us) AS NUMERIC(38,0)) AS s2
               FROM person_course_day learner_day LEFT JOIN user_ids_by_username
                 ON learner_day.user_id IS NULL AND user_ids_by_username.course_key = learner_day.course_key
                    AND user_ids_by_username.username = learner_day.username
               WHERE learner_day.{inscope}
               GROUP BY learner_day.course_key, coalesce(learner_day.user_id, user_ids_by_username.user_id)),
        {forum} AS (SELECT course_key, author_id, count(*) AS nforum_posts,
                   sum({flag("type = 'CommentThread'")}) AS nforum_threads, sum({flag("type = 'Comment'")}) AS nforum_comments,
                   sum(coalesce(votes_up, 0)) AS nforum_votes, sum({flag("type = 'Comment' AND endorsed")}) AS nforum_endorsed,
                   sum({flag("type = 'CommentThread' AND pinned")}) AS nforum_pinned
               FROM {src["forum_posts"]} t WHERE {inscope} AND author_id IS NOT NULL GROUP BY course_key, author_id),
        access_roles AS (SELECT granted.course_key, granted.user_id, {access_flags},
                   {listed}
               FROM {src["student_courseaccessrole"]} granted
               WHERE granted.{inscope} GROUP BY granted.course_key, granted.user_id),
        forum_roles AS (SELECT granted.course_key, granted.user_id, {forum_flags},
                   {listed_forum},
                   max({flag(f"granted.name IN {in_list(FORUM_STAFF_ROLES)}")}) AS is_staff
               FROM {src["django_comment_client_role_users"]} granted
               WHERE granted.{inscope} GROUP BY granted.course_key, granted.user_id),
        course_facts AS (SELECT scope.course_key, coalesce(
                    (SELECT min(course.course_id) FROM {src["courses"]} course WHERE course.course_key = scope.course_key),
                    (SELECT min(enrolled.course_id) FROM {enrollment} enrolled WHERE enrolled.course_key = scope.course_key),
                    (SELECT min(event.course_id) FROM {src["events"]} event WHERE event.course_key = scope.course_key)) AS course_id,
                    (SELECT max(course.pass_mark) FROM {src["courses"]} course WHERE course.course_key = scope.course_key) AS pass_mark
                FROM _pc_scope scope),
        learners AS (SELECT course_key, user_id FROM {enrollment} UNION SELECT course_key, uid FROM learner_access
                   UNION SELECT course_key, user_id FROM {certificate})
        SELECT {select}
        FROM learners
        JOIN course_facts ON course_facts.course_key = learners.course_key
        LEFT JOIN accounts ON accounts.course_key = learners.course_key AND accounts.user_id = learners.user_id
        LEFT JOIN {enrollment} ON {enrollment}.course_key = learners.course_key AND {enrollment}.user_id = learners.user_id
        LEFT JOIN {certificate} ON {certificate}.course_key = learners.course_key AND {certificate}.user_id = learners.user_id
        LEFT JOIN course_grade ON course_grade.course_key = learners.course_key AND course_grade.user_id = learners.user_id
        LEFT JOIN {profile} ON {profile}.course_key = learners.course_key AND {profile}.user_id = learners.user_id
        LEFT JOIN {activity} ON {activity}.course_key = learners.course_key AND {activity}.uid = learners.user_id
        LEFT JOIN learner_access ON learner_access.course_key = learners.course_key AND learner_access.uid = learners.user_id
        LEFT JOIN chapter_counts ON chapter_counts.course_key = learners.course_key AND chapter_counts.uid = learners.user_id
        LEFT JOIN published_chapter_counts ON published_chapter_counts.course_key = learners.course_key
        LEFT JOIN published_video_counts ON published_video_counts.course_key = learners.course_key
        LEFT JOIN modal_ip ON modal_ip.course_key = learners.course_key AND modal_ip.uid = learners.user_id
        LEFT JOIN {src["ip_geo"]} ip_geo ON ip_geo.ip = modal_ip.ip
        LEFT JOIN {time_on} ON {time_on}.course_key = learners.course_key AND {time_on}.uid = learners.user_id
        LEFT JOIN {forum} ON {forum}.course_key = learners.course_key AND {forum}.author_id = learners.user_id
        LEFT JOIN access_roles ON access_roles.course_key = learners.course_key AND access_roles.user_id = learners.user_id
        LEFT JOIN forum_roles ON forum_roles.course_key = learners.course_key AND forum_roles.user_id = learners.user_id
    """


def course_profile_insert(wh: Warehouse) -> str:
    """INSERT of course_profile rows for the courses in _pc_scope (param: rules_version)."""
    src = {t: source(wh, t) for t in ("courses", "course_blocks")}
    inscope = "course_key IN (SELECT course_key FROM _pc_scope)"
    blocks = f"(SELECT * FROM {src['course_blocks']} b WHERE b.{inscope} AND (b.published IS NULL OR b.published))"

    def nblocks(cond: str) -> str:
        return f"(SELECT count(*) FROM {blocks} b WHERE b.course_key = scope.course_key AND {cond})"

    def nlearners(cond: str) -> str:
        return f"(SELECT count(*) FROM person_course p WHERE p.course_key = scope.course_key AND {cond})"

    mode = "p.registered = 1 AND p.mode"
    known_modes = "('audit', 'honor', 'verified', 'professional', 'no-id-professional')"
    columns = {
        "course_key": "scope.course_key",
        "course_id": (
            "coalesce((SELECT min(p.course_id) FROM person_course p WHERE p.course_key = scope.course_key), "
            f"(SELECT min(x.course_id) FROM {src['courses']} x WHERE x.course_key = scope.course_key))"
        ),
        "display_name": "course_dates.display_name",
        "registration_open": "course_dates.enrollment_start",
        "launch_date": "course_dates.start_date",
        "close_date": "course_dates.end_date",
        "course_length_weeks": (
            "CASE WHEN course_dates.start_date IS NOT NULL AND course_dates.end_date IS NOT NULL THEN "
            f"CAST(ceil({wh.sql.days_between('CAST(course_dates.end_date AS DATE)', 'CAST(course_dates.start_date AS DATE)')} / 7.0) AS INTEGER) END"
        ),
        "registered": nlearners("p.registered = 1"),
        # among registered learners (make_course_report_tables.py:make_totals_by_course counts person_course rows, all registered)
        **{name: nlearners(f"p.registered = 1 AND p.{name} = 1") for name in ("viewed", "explored", "certified", "completed")},
        "learners": nlearners("1 = 1"),
        "not_registered": nlearners("p.registered = 0"),
        # ours: the learners with no enrolment row (known from events or a certificate), counted apart
        **{
            f"{name}_not_registered": nlearners(f"p.registered = 0 AND p.{name} = 1")
            for name in ("viewed", "explored", "certified", "completed")
        },
        "not_registered_with_events": nlearners("p.registered = 0 AND p.nevents > 0"),
        "nmode_audit": nlearners(f"{mode} = 'audit'"),
        "nmode_honor": nlearners(f"{mode} = 'honor'"),
        "nmode_verified": nlearners(f"{mode} = 'verified'"),
        "nmode_professional": nlearners(f"{mode} IN ('professional', 'no-id-professional')"),
        "nmode_other": nlearners(f"p.registered = 1 AND (p.mode IS NULL OR p.mode NOT IN {known_modes})"),
        "nchapters": nblocks("b.category = 'chapter'"),
        "nvideos": nblocks("b.category = 'video'"),
        "nhtml": nblocks("b.category = 'html'"),
        "nproblems_summative": nblocks("b.category = 'problem' AND b.weight > 0"),
        "nproblems_formative": nblocks("b.category = 'problem' AND (b.weight IS NULL OR b.weight <= 0)"),
        "ndiscussions": nblocks("b.category = 'discussion'"),
        "nother_activities": nblocks(f"b.category NOT IN {in_list(STRUCTURAL)}"),
        "nevents": "coalesce(event_matches.nevents, 0)",
        "nevents_unmatched": "coalesce(event_matches.unmatched, 0)",
        "nusernames_unmatched": "coalesce(event_matches.unmatched_names, 0)",
        "rules_version": "?",
        "computed_at": "current_timestamp",
    }
    insert, select = insert_by_name(wh, "course_profile", CP_COLUMNS, columns)
    return f"""
        {insert}
        WITH course_dates AS (SELECT course_key, min(display_name) AS display_name, min(enrollment_start) AS enrollment_start,
                       min(start_date) AS start_date, max(end_date) AS end_date
                   FROM {src["courses"]} t WHERE {inscope} GROUP BY course_key),
             learner_events AS ({learner_events(wh, f"e.{inscope}")}),
             event_matches AS (SELECT course_key, count(*) AS nevents, sum(CASE WHEN uid IS NULL THEN 1 ELSE 0 END) AS unmatched,
                        count(DISTINCT CASE WHEN uid IS NULL THEN username END) AS unmatched_names
                    FROM learner_events GROUP BY course_key)
        SELECT {select}
        FROM _pc_scope scope LEFT JOIN course_dates ON course_dates.course_key = scope.course_key
        LEFT JOIN event_matches ON event_matches.course_key = scope.course_key
    """
