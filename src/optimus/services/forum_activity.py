"""ForumActivity: edx2bigquery's `forum_events` (every forum event of the logs, classified) and
`forum_person` (per learner and post: written, read, pinned, voted, followed), the latter joined
with the forum dumps (`forum_posts`, DiscussionForums).

Every column's rule, with the reference it copies (make_forum_analysis.py), is in docs/tables/forum_activity.md.
"""

from __future__ import annotations

from optimus.services.base import register
from optimus.services.course_tables import IN_SCOPE, CourseTables, Table, course_id_sql
from optimus.services.learner_events import source
from optimus.warehouse.base import Warehouse

C = "/courses/(.*)/discussion"
# make_forum_analysis.CreateForumEvents: (pattern matched in event_type, forum_action), first match wins
URL_ACTIONS: tuple[tuple[str, str], ...] = (
    (f"{C}/threads/[^/]+/reply", "reply"),
    (f"{C}/threads/[^/]+/upvote", "upvote"),
    (f"{C}/threads/[^/]+/unvote", "unvote"),
    (f"{C}/threads/[^/]+/update", "update"),
    (f"{C}/threads/[^/]+/delete", "delete"),
    (f"{C}/threads/[^/]+/close", "close"),
    (f"{C}/threads/[^/]+/follow", "follow_thread"),
    (f"{C}/threads/[^/]+/unfollow", "unfollow_thread"),
    (f"{C}/threads/[^/]+/pin", "pin"),
    (f"{C}/threads/[^/]+/unpin", "unpin"),
    (f"{C}/threads/[^/]+/downvote", "downvote"),
    (f"{C}/comments/[^/]+/reply", "comment_reply"),
    (f"{C}/comments/[^/]+/upvote", "comment_upvote"),
    (f"{C}/comments/[^/]+/update", "comment_update"),
    (f"{C}/comments/[^/]+/unvote", "comment_unvote"),
    (f"{C}/comments/[^/]+/delete", "comment_delete"),
    (f"{C}/forum/users/[^/]+/followed", "follow_user"),
    (f"{C}/forum/users/[^/]+$", "target_user"),
    (f"{C}/forum/[^/]+/threads/[^/]+", "read"),
    (f"{C}/forum/[^/]+/inline", "read_inline"),
    (f"{C}/forum/search", "search"),
    (f"{C}/forum$", "enter_forum"),
    (f"{C}/forum/$", "enter_forum"),
)
INSTRUCTOR_API = "/courses/(.*)/instructor/api/(.*)"
SERVER_ACTIONS = {
    "edx.forum.thread.created": "created_thread",
    "edx.forum.response.created": "created_response",
    "edx.forum.comment.created": "created_comment",
    "edx.forum.searched": "searched",
}
# the event_type fragments that make an event a forum event (besides `edx.forum.*`)
FORUM_MARKS = (
    "/discussion/forum",
    "/discussion/threads",
    "/discussion/comments",
    "list-forum-",
    "list_forum_",
    "add-forum-",
    "add_forum_",
    "remove-forum-",
    "remove_forum_",
    "update_forum_",
)
# the actions forum_person counts (make_forum_analysis.CreateForumPerson)
PERSON_ACTIONS = ("read", "read_inline", "pin", "upvote", "unvote", "follow_thread")


@register
class ForumActivity(CourseTables):
    name = "ForumActivity"
    needs = ("Clickstream", "DiscussionForums")
    dictionary = "docs/tables/forum_activity.md"
    rules_version = 1
    tables = (
        Table(
            "forum_events",
            {
                "course_key": "VARCHAR",
                "time": "TIMESTAMP",
                "username": "VARCHAR",
                "course_id": "VARCHAR",
                "forum_action": "VARCHAR",
                "thread_id": "VARCHAR",
                "subject": "VARCHAR",
                "target_user_id": "VARCHAR",
                "search_query": "VARCHAR",
                "event_GET": "VARCHAR",
            },
            personal=True,
            order_by=("course_key", "time", "username", "forum_action"),
        ),
        Table(
            "forum_person",
            {
                "course_key": "VARCHAR",
                "username": "VARCHAR",
                "course_id": "VARCHAR",
                "slug_id": "VARCHAR",
                "slug_type": "VARCHAR",
                "thread_id": "VARCHAR",
                "parent_id": "VARCHAR",
                "original_poster": "VARCHAR",
                "responded_to": "VARCHAR",
                "title": "VARCHAR",
                "wrote": "INTEGER",
                "read": "INTEGER",
                "pinned": "INTEGER",
                "upvoted": "INTEGER",
                "unvoted": "INTEGER",
                "followed": "INTEGER",
                "first_time": "TIMESTAMP",
                "last_time": "TIMESTAMP",
            },
            personal=True,
            order_by=("course_key", "username", "slug_id"),
        ),
    )

    def build(self, wh: Warehouse, table: Table) -> None:
        q = wh.quote
        cols = ", ".join(q(c) for c in table.columns)
        sql = self._forum_events(wh) if table.name == "forum_events" else self._forum_person(wh)
        wh.execute(f"INSERT INTO {q(table.name)} ({cols}) {sql}")

    def _forum_events(self, wh: Warehouse) -> str:
        d = wh.sql
        t = "e.event_type"
        whens = " ".join(f"WHEN {d.regex_matches(t, p)} THEN '{a}'" for p, a in URL_ACTIONS)
        whens += f" WHEN {d.regex_matches(t, INSTRUCTOR_API)} THEN {d.regex_extract(t, '/courses/.*/instructor/api/(.*)')}"
        whens += " " + " ".join(f"WHEN {t} = '{k}' THEN '{v}'" for k, v in SERVER_ACTIONS.items())
        action = f"CASE {whens} ELSE {t} END"
        from_url = (
            f"CASE WHEN {d.regex_matches(t, f'{C}/forum/[^/]+/threads/[^/]+')} "
            f"THEN {d.regex_extract(t, '/courses/.*/discussion/forum/[^/]+/threads/([^/]+)')} "
            f"WHEN {d.regex_matches(t, f'{C}/threads/[^/]+/')} THEN {d.regex_extract(t, '/courses/.*/discussion/threads/([^/]+)')} "
            f"ELSE {d.regex_extract(t, '/courses/.*/discussion/comments/([^/]+)/')} END"
        )
        thread = f"coalesce({d.regex_extract('e.module_id', '[^/]+/[^/]+/forum/([^/]+)')}, {from_url})"
        marks = " OR ".join(d.contains(t, m) for m in FORUM_MARKS)
        return (
            f"SELECT e.course_key, e.time, e.username, {course_id_sql('e.course_key')}, {action}, {thread}, "
            f"{d.regex_extract(t, '/courses/.*/forum/([^/]+)/')}, {d.regex_extract(t, '/courses/.*/forum/users/([^/]+)')}, "
            f"{d.json_text('e.event', 'query')}, {d.json_text('e.event', 'GET')} "
            f"FROM {source(wh, 'events')} e WHERE e.{IN_SCOPE} AND ({t} LIKE 'edx.forum.%' OR {marks}) "
            f"AND nullif(e.username, '') IS NOT NULL AND e.event IS NOT NULL"
        )

    def _forum_person(self, wh: Warehouse) -> str:
        raw = f"(SELECT * FROM {source(wh, 'forum_posts')} r WHERE r.{IN_SCOPE} AND r.id IS NOT NULL)"
        threads = f"(SELECT id, author_username, title FROM {raw} t WHERE type = 'CommentThread')"
        # edx2bigquery's forum_posts (make_forum_analysis.CreateForumPosts): an initial post has no
        # thread_id (its comment_thread_id is empty), a response has its thread's, a comment its parent
        posts = (
            f"(SELECT p.course_key, p.author_username AS username, p.id AS slug_id, "
            f"CASE WHEN p.type = 'CommentThread' THEN 'initial_post' WHEN p.parent_id IS NULL THEN 'response_post' ELSE 'comment' END AS slug_type, "
            f"CASE WHEN p.type = 'Comment' THEN p.thread_id END AS thread_id, CASE WHEN p.type = 'Comment' THEN p.parent_id END AS parent_id, "
            f"CASE WHEN p.type = 'Comment' THEN t.author_username END AS original_poster, "
            f"CASE WHEN p.type = 'Comment' AND p.parent_id IS NOT NULL THEN r.author_username END AS responded_to, "
            f"CASE WHEN p.type = 'Comment' THEN t.title ELSE p.title END AS title, p.created_at AS first_time "
            f"FROM {raw} p LEFT JOIN {threads} t ON p.type = 'Comment' AND t.id = p.thread_id "
            f"LEFT JOIN (SELECT id, author_username FROM {raw} r0) r ON r.id = p.parent_id "
            f"WHERE p.type = 'CommentThread' OR (p.type = 'Comment' AND p.thread_id IS NOT NULL))"
        )
        actions = ", ".join(f"'{a}'" for a in PERSON_ACTIONS)

        def n(*acts: str) -> str:
            return "sum(CASE WHEN fe.forum_action IN (" + ", ".join(f"'{a}'" for a in acts) + ") THEN 1 ELSE 0 END)"

        fe = (
            f"(SELECT fe.course_key, fe.username AS username_fe, min(fe.time) AS first_time, max(fe.time) AS last_time, "
            f"f.slug_id, fe.thread_id, min(f.parent_id) AS parent_id, f.slug_type, f.original_poster, f.responded_to, f.title, "
            f"{n('read', 'read_inline')} AS n_read, {n('pin')} AS n_pin, {n('upvote')} AS n_upvote, {n('unvote')} AS n_unvote, "
            f"{n('follow_thread')} AS n_follow "
            f"FROM forum_events fe JOIN {posts} f ON f.course_key = fe.course_key AND f.thread_id = fe.thread_id "
            f"WHERE fe.{IN_SCOPE} AND fe.forum_action IN ({actions}) "
            f"GROUP BY fe.course_key, fe.username, f.slug_id, fe.thread_id, f.slug_type, f.original_poster, f.responded_to, f.title)"
        )

        def pick(col: str) -> str:
            return f"CASE WHEN pp.username IS NOT NULL THEN pp.{col} ELSE fe.{col} END"

        first = (
            "CASE WHEN pp.first_time IS NOT NULL AND fe.last_time IS NOT NULL AND pp.first_time <= fe.last_time THEN pp.first_time "
            "WHEN pp.first_time IS NOT NULL AND fe.last_time IS NULL THEN pp.first_time "
            "WHEN fe.first_time IS NOT NULL THEN fe.first_time ELSE fe.last_time END"
        )
        last = (
            "CASE WHEN pp.first_time IS NOT NULL AND fe.last_time IS NOT NULL AND pp.first_time >= fe.last_time THEN pp.first_time "
            "WHEN pp.first_time IS NOT NULL AND fe.last_time IS NULL THEN pp.first_time "
            "WHEN fe.last_time IS NOT NULL THEN fe.last_time ELSE fe.first_time END"
        )
        return (
            f"SELECT coalesce(pp.course_key, fe.course_key), CASE WHEN pp.username IS NOT NULL THEN pp.username ELSE fe.username_fe END, "
            f"{course_id_sql('coalesce(pp.course_key, fe.course_key)')}, {pick('slug_id')}, {pick('slug_type')}, {pick('thread_id')}, "
            f"{pick('parent_id')}, coalesce(pp.original_poster, fe.original_poster), coalesce(pp.responded_to, fe.responded_to), "
            f"{pick('title')}, CASE WHEN pp.username IS NOT NULL THEN 1 ELSE 0 END, "
            f"fe.n_read, fe.n_pin, fe.n_upvote, fe.n_unvote, fe.n_follow, {first}, {last} "
            f"FROM {posts} pp FULL OUTER JOIN {fe} fe "
            f"ON pp.course_key = fe.course_key AND pp.username = fe.username_fe AND pp.slug_id = fe.slug_id "
            f"WHERE (pp.username IS NOT NULL AND pp.username <> '') OR (fe.username_fe IS NOT NULL AND fe.username_fe <> '')"
        )
