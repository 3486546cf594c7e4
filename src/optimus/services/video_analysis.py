"""VideoAnalysis: edx2bigquery's video tables (`video_axis`, `video_stats_day`, `video_stats`,
`person_course_video_watched`, from its make_video_analysis.py) and our `video_engagement`.

Reads `course_blocks` (CourseStructure), the video events of `events` (Clickstream, web and mobile
names alike) and `person_course` (PersonCourse). Every column's rule, and where we differ from
edx2bigquery on purpose, is in docs/tables/video_analysis.md. One `INSERT ... SELECT` per table,
written once for both engines (JSON members through the dialect's `json_text`, numbers through
`try_cast`); sums of fractions are exact integer sums (milliseconds) divided once. The scope's video
events are staged once per run in a temporary table (their payload members read once), which every
table then reads: reading `events` per table cost eight times as long on a 1.1M-event sample.
"""

from __future__ import annotations

from optimus.services.base import RunContext, register
from optimus.services.course_tables import IN_SCOPE, CourseTables, Table, course_id_sql
from optimus.services.learner_events import (
    VIDEO_ANY,
    VIDEO_PAUSE,
    VIDEO_PLAY,
    VIDEO_SEEK,
    VIDEO_SPEED,
    VIDEO_STOP,
    VIDEO_TRANSCRIPT,
    VIDEO_VIEW,
    in_list,
    insert_by_name,
    json_text,
    source,
    video_block_id_sql,
)
from optimus.warehouse.base import Warehouse

DECILES = range(1, 11)
# the run's video events and lengths, read from `events` once (JSON parsed once) for all five tables
EVENTS, LENGTHS = "_video_events", "_video_lengths"
# a duration is read when it is at least a second and below 2^31 seconds (an INTEGER length)
MAX_LENGTH = 2147483647

VIDEO_AXIS = Table(
    "video_axis",
    {
        "course_key": "VARCHAR",
        "index_chapter": "INTEGER",
        "index_video": "INTEGER",
        "category": "VARCHAR",
        "course_id": "VARCHAR",
        "name": "VARCHAR",
        "video_id": "VARCHAR",
        "youtube_id": "VARCHAR",
        "chapter_name": "VARCHAR",
        "video_length": "INTEGER",
    },
    order_by=("course_key", "index_video", "video_id"),
)
VIDEO_STATS_DAY = Table(
    "video_stats_day",
    {
        "course_key": "VARCHAR",
        "course_id": "VARCHAR",
        "date": "DATE",
        "username": "VARCHAR",
        "video_id": "VARCHAR",
        "position": "DOUBLE PRECISION",
    },
    personal=True,
    order_by=("course_key", "date", "username", "video_id"),
)
VIDEO_STATS = Table(
    "video_stats",
    {
        "course_key": "VARCHAR",
        "course_id": "VARCHAR",
        "index_chapter": "INTEGER",
        "index_video": "INTEGER",
        "name": "VARCHAR",
        "video_id": "VARCHAR",
        "chapter_name": "VARCHAR",
        "videos_viewed": "BIGINT",
        "videos_watched": "BIGINT",
    },
    order_by=("course_key", "index_video", "video_id"),
)
PERSON_COURSE_VIDEO_WATCHED = Table(
    "person_course_video_watched",
    {
        "course_key": "VARCHAR",
        "user_id": "BIGINT",
        "course_id": "VARCHAR",
        "n_unique_videos_watched": "BIGINT",
        "fract_total_videos_watched": "DOUBLE PRECISION",
        "viewed": "INTEGER",
        "certified": "INTEGER",
        "verified": "BOOLEAN",
    },
    personal=True,
    order_by=("course_key", "user_id"),
)
VIDEO_ENGAGEMENT = Table(
    "video_engagement",
    {
        "course_key": "VARCHAR",
        "course_id": "VARCHAR",
        "video_id": "VARCHAR",
        "video_length": "INTEGER",
        "events": "BIGINT",
        "web_events": "BIGINT",
        "mobile_events": "BIGINT",
        "plays": "BIGINT",
        "pauses": "BIGINT",
        "seeks": "BIGINT",
        "stops": "BIGINT",
        "speed_changes": "BIGINT",
        "transcript_shows": "BIGINT",
        "viewers": "BIGINT",
        "mean_fraction_watched": "DOUBLE PRECISION",
        "median_fraction_watched": "DOUBLE PRECISION",
        **{f"viewers_decile_{k}": "BIGINT" for k in DECILES},
    },
    order_by=("course_key", "video_id"),
)


def video_id_sql(raw: str) -> str:
    """The id every video table joins on: the block's own id (learner_events.video_block_id_sql, so
    web `i4x-…-video-H`, `i4x://…/video/H` and mobile `block-v1:…+block@H` are one video) with `.`
    written `_`, as edx2bigquery's video_axis writes the url_name."""
    return f"replace({video_block_id_sql(raw)}, '.', '_')"


def video_events_sql(wh: Warehouse) -> str:
    """The video events of the courses in scope: their day, username, video id, currentTime, speed, duration."""
    num = lambda expr: wh.sql.try_cast(expr, "DOUBLE PRECISION")  # noqa: E731
    payload, context = "e.event", "e.context"
    return f"""
        SELECT e.course_key, CAST(e.time AS DATE) AS day, nullif(e.username, '') AS username, e.event_type, e.event_source,
               {video_id_sql(json_text(wh, payload, "id"))} AS video_id,
               {num(json_text(wh, payload, "currentTime"))} AS ct,
               {num(json_text(wh, payload, "speed"))} AS speed,
               coalesce({num(json_text(wh, payload, "duration"))}, {num(json_text(wh, context, "duration"))}) AS duration
        FROM {source(wh, "events")} e
        WHERE e.{IN_SCOPE} AND e.event_type IN {in_list(VIDEO_ANY)}"""


def lengths_sql() -> str:
    """Per course and video id: the whole seconds of the largest `duration` its events carry."""
    return f"""
        SELECT course_key, video_id, CAST(floor(max(duration)) AS INTEGER) AS video_length
        FROM {EVENTS} ve
        WHERE video_id IS NOT NULL AND duration >= 1 AND duration < {MAX_LENGTH}
        GROUP BY course_key, video_id"""


@register
class VideoAnalysis(CourseTables):
    name = "VideoAnalysis"
    needs = ("Clickstream", "CourseStructure", "PersonCourse")
    tables = (VIDEO_AXIS, VIDEO_STATS_DAY, VIDEO_STATS, PERSON_COURSE_VIDEO_WATCHED, VIDEO_ENGAGEMENT)
    dictionary = "docs/tables/video_analysis.md"
    rules_version = 1

    def run(self, wh: Warehouse, ctx: RunContext) -> int:
        try:
            return super().run(wh, ctx)
        finally:
            for name in (LENGTHS, EVENTS):
                wh.execute(f"DROP TABLE IF EXISTS {name}")

    def prepare(self, wh: Warehouse) -> None:
        """Stage the scope's video events (payload members read once) and video lengths."""
        for name, sql in ((EVENTS, video_events_sql(wh)), (LENGTHS, lengths_sql())):
            wh.execute(f"DROP TABLE IF EXISTS {name}")
            wh.execute(f"CREATE TEMP TABLE {name} AS {sql}")

    def build(self, wh: Warehouse, table: Table) -> None:
        if table is self.tables[0]:  # the first table of the run: the scope is set
            self.prepare(wh)
        builders = {
            VIDEO_AXIS.name: self._axis,
            VIDEO_STATS_DAY.name: self._stats_day,
            VIDEO_STATS.name: self._stats,
            PERSON_COURSE_VIDEO_WATCHED.name: self._watched,
            VIDEO_ENGAGEMENT.name: self._engagement,
        }
        builders[table.name](wh, table)

    def _insert(self, wh: Warehouse, table: Table, computed: dict[str, str], body: str) -> None:
        insert, select = insert_by_name(wh, table.name, table.columns, computed)
        wh.execute(f"{insert}\n        SELECT {select}\n        {body}")

    def _axis(self, wh: Warehouse, table: Table) -> None:
        blocks = source(wh, "course_blocks")
        computed = {
            "course_key": "v.course_key",
            "index_chapter": "ch.position",
            "index_video": "v.position",
            "category": "v.category",
            "course_id": course_id_sql("v.course_key"),
            "name": "v.display_name",
            "video_id": "replace(v.url_name, '.', '_')",
            "youtube_id": "v.youtube_id",
            "chapter_name": "ch.display_name",
            "video_length": "len.video_length",
        }
        self._insert(
            wh,
            table,
            computed,
            f"""FROM {blocks} v
        LEFT JOIN (SELECT course_key, chapter_index, min(position) AS position, min(display_name) AS display_name FROM {blocks} c
                   WHERE category = 'chapter' AND coalesce(published, TRUE) AND chapter_index IS NOT NULL
                   GROUP BY course_key, chapter_index) ch
          ON ch.course_key = v.course_key AND ch.chapter_index = v.chapter_index
        LEFT JOIN {LENGTHS} len ON len.course_key = v.course_key AND len.video_id = replace(v.url_name, '.', '_')
        WHERE v.{IN_SCOPE} AND v.category = 'video' AND coalesce(v.published, TRUE) AND nullif(v.url_name, '') IS NOT NULL""",
        )

    def _stats_day(self, wh: Warehouse, table: Table) -> None:
        computed = {
            "course_key": "ve.course_key",
            "course_id": course_id_sql("ve.course_key"),
            "date": "ve.day",
            "username": "ve.username",
            "video_id": "ve.video_id",
            "position": "max(CASE WHEN ve.speed IS NOT NULL THEN ve.speed * ve.ct ELSE ve.ct END)",
        }
        self._insert(
            wh,
            table,
            computed,
            f"""FROM {EVENTS} ve
        WHERE ve.event_type IN {in_list(VIDEO_VIEW)} AND ve.username IS NOT NULL AND ve.video_id IS NOT NULL
        GROUP BY ve.course_key, ve.day, ve.username, ve.video_id""",
        )

    def _stats(self, wh: Warehouse, table: Table) -> None:
        computed = {
            "course_key": "s.course_key",
            "course_id": course_id_sql("s.course_key"),
            "index_chapter": "a.index_chapter",
            "index_video": "a.index_video",
            "name": "a.name",
            "video_id": "s.video_id",
            "chapter_name": "a.chapter_name",
            "videos_viewed": "sum(CASE WHEN s.position > 0 THEN 1 ELSE 0 END)",
            "videos_watched": f"sum(CASE WHEN s.position > CAST(a.video_length AS {wh.sql.type_name('DOUBLE PRECISION')}) * 0.95 THEN 1 ELSE 0 END)",
        }
        self._insert(
            wh,
            table,
            computed,
            f"""FROM (SELECT course_key, username, video_id, max(position) AS position FROM video_stats_day
              WHERE {IN_SCOPE} GROUP BY course_key, username, video_id) s
        LEFT JOIN video_axis a ON a.course_key = s.course_key AND a.video_id = s.video_id
        GROUP BY s.course_key, s.video_id, a.index_chapter, a.index_video, a.name, a.chapter_name""",
        )

    def _watched(self, wh: Warehouse, table: Table) -> None:
        computed = {
            "course_key": "pc.course_key",
            "user_id": "pc.user_id",
            "course_id": course_id_sql("pc.course_key"),
            "n_unique_videos_watched": "count(*)",
            "fract_total_videos_watched": f"CAST(count(*) AS {wh.sql.type_name('DOUBLE PRECISION')}) / nullif(max(nv.n_total_videos), 0)",
            "viewed": "pc.viewed",
            "certified": "pc.certified",
            "verified": "(pc.mode = 'verified')",
        }
        self._insert(
            wh,
            table,
            computed,
            f"""FROM (SELECT DISTINCT course_key, username, video_id FROM video_stats_day WHERE {IN_SCOPE}) uv
        JOIN {source(wh, "person_course")} pc ON pc.course_key = uv.course_key AND pc.username = uv.username
        LEFT JOIN (SELECT course_key, count(*) AS n_total_videos FROM video_axis WHERE {IN_SCOPE} GROUP BY course_key) nv
          ON nv.course_key = uv.course_key
        WHERE pc.roles = 'Student' OR pc.roles IS NULL
        GROUP BY pc.course_key, pc.user_id, pc.viewed, pc.certified, pc.mode""",
        )

    def _engagement(self, wh: Warehouse, table: Table) -> None:
        def count(types: tuple[str, ...]) -> str:
            return f"sum(CASE WHEN ve.event_type IN {in_list(types)} THEN 1 ELSE 0 END)"

        unknown = "len.video_length IS NULL"  # no length: no fraction and no tenths
        computed = {
            "course_key": "c.course_key",
            "course_id": course_id_sql("c.course_key"),
            "video_id": "c.video_id",
            "video_length": "len.video_length",
            "events": "c.events",
            "web_events": "c.web_events",
            "mobile_events": "c.mobile_events",
            "plays": "c.plays",
            "pauses": "c.pauses",
            "seeks": "c.seeks",
            "stops": "c.stops",
            "speed_changes": "c.speed_changes",
            "transcript_shows": "c.transcript_shows",
            "viewers": "coalesce(w.viewers, 0)",
            "mean_fraction_watched": "w.mean_fraction",
            "median_fraction_watched": "w.median_fraction",
            **{f"viewers_decile_{k}": f"CASE WHEN {unknown} THEN NULL ELSE coalesce(w.decile_{k}, 0) END" for k in DECILES},
        }
        per_learner = f"""
            SELECT ve.course_key, ve.video_id, ve.username,
                   max(CASE WHEN ve.ct >= 0 THEN ve.ct END) AS furthest
            FROM {EVENTS} ve
            WHERE ve.event_type IN {in_list(VIDEO_VIEW)} AND ve.username IS NOT NULL AND ve.video_id IS NOT NULL
            GROUP BY ve.course_key, ve.video_id, ve.username"""
        # milliseconds reached, at most the length: exact integers, so that sums are the same on every engine
        watched_ms = f"CAST(floor(least(l.furthest, CAST(len.video_length AS {wh.sql.type_name('DOUBLE PRECISION')})) * 1000) AS BIGINT)"
        learners = f"""
            SELECT l.course_key, l.video_id, l.furthest, CAST(len.video_length AS BIGINT) * 1000 AS length_ms,
                   CASE WHEN l.furthest IS NOT NULL AND len.video_length IS NOT NULL THEN {watched_ms} END AS watched_ms
            FROM ({per_learner}) l
            LEFT JOIN {LENGTHS} len ON len.course_key = l.course_key AND len.video_id = l.video_id"""
        deciles = ", ".join(f"sum(CASE WHEN 10 * watched_ms > {k - 1} * length_ms THEN 1 ELSE 0 END) AS decile_{k}" for k in DECILES)
        per_video = f"""
            SELECT course_key, video_id, count(*) AS viewers, max(length_ms) AS length_ms,
                   CAST(sum(watched_ms) AS {wh.sql.type_name("DOUBLE PRECISION")}) / nullif(count(watched_ms) * max(length_ms), 0) AS mean_fraction,
                   percentile_disc(0.5) WITHIN GROUP (ORDER BY CAST(watched_ms AS {wh.sql.type_name("DOUBLE PRECISION")}) / length_ms NULLS LAST) AS median_fraction,
                   {deciles}
            FROM ({learners}) fl
            GROUP BY course_key, video_id"""
        counts = f"""
            SELECT ve.course_key, ve.video_id, count(*) AS events,
                   sum(CASE WHEN ve.event_source = 'browser' THEN 1 ELSE 0 END) AS web_events,
                   sum(CASE WHEN ve.event_source = 'mobile' THEN 1 ELSE 0 END) AS mobile_events,
                   {count(VIDEO_PLAY)} AS plays, {count(VIDEO_PAUSE)} AS pauses, {count(VIDEO_SEEK)} AS seeks,
                   {count(VIDEO_STOP)} AS stops, {count(VIDEO_SPEED)} AS speed_changes, {count(VIDEO_TRANSCRIPT)} AS transcript_shows
            FROM {EVENTS} ve
            WHERE ve.video_id IS NOT NULL
            GROUP BY ve.course_key, ve.video_id"""
        self._insert(
            wh,
            table,
            computed,
            f"""FROM ({counts}) c
        LEFT JOIN {LENGTHS} len ON len.course_key = c.course_key AND len.video_id = c.video_id
        LEFT JOIN ({per_video}) w ON w.course_key = c.course_key AND w.video_id = c.video_id""",
        )
