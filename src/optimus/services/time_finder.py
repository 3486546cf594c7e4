"""TimeFinder: place each event on its own day, and sum each learner's days.

Reads `events` (Clickstream; times already typed and in UTC) and, when present, `auth_user`
(to find the learner of events with an empty user_id). Writes `person_course_day` (one row
per course, learner and day with events) and `event_time_anomalies` (events more than a day
away from their file's date). Recomputes only the (course, day) pairs that new files touched,
plus the days after them whose first gap may now start on a touched day. Needs Clickstream.

Events whose type contains `/xblock/` and events with an empty username are left out of every
column (edx2bigquery's make_person_course_day: `NOT event_type CONTAINS "/xblock/" AND username != ""`).

Gap rule (docs/person_course.md): a learner's events in a course are ordered by time (ties need
no order: they give the same gaps either way); each event after the first has a gap to the
previous one, counted on the day of the later event; gaps above settings.time_gap_cutoff
seconds are left out.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta

from optimus.services import learner_events as S
from optimus.services.base import RunContext, Service, register
from optimus.services.course_tables import create_table
from optimus.warehouse.base import Warehouse

# The exact sums behind sum_dt and sum_dt2: whole microseconds, added as integers, so that the order
# in which threads add never changes a bit (a square of a 5-minute gap is 9e16 us^2: a day's sum of
# them can pass BIGINT, hence NUMERIC(38,0)). The seconds columns are one division of these.
EXACT_COLUMNS = {"sum_dt_us": "BIGINT", "sum_dt2_us": "NUMERIC(38,0)"}
DAY_COLUMNS = {
    "course_id": "VARCHAR",
    "course_key": "VARCHAR NOT NULL",
    "user_id": "BIGINT",
    "username": "VARCHAR",
    "date": "DATE NOT NULL",
    "nevents": "BIGINT",
    "first_event": "TIMESTAMP",
    "last_event": "TIMESTAMP",
    "nplay_video": "BIGINT",
    "nproblem_check": "BIGINT",
    "nproblem_check_server": "BIGINT",
    "nforum_events": "BIGINT",
    "nchapters": "BIGINT",
    "sum_dt": "DOUBLE PRECISION",
    "n_dt": "INTEGER",
    "max_dt": "DOUBLE PRECISION",
    "sum_dt2": "DOUBLE PRECISION",
    **EXACT_COLUMNS,
    "rules_version": "INTEGER NOT NULL",
    "computed_at": "TIMESTAMP NOT NULL",
}
ANOMALY_COLUMNS = {
    "file_id": "BIGINT NOT NULL",
    "path": "VARCHAR",
    "file_date": "DATE",
    "course_key": "VARCHAR",
    "nevents": "BIGINT",
    "min_offset_days": "INTEGER",
    "max_offset_days": "INTEGER",
    "min_time": "TIMESTAMP",
    "max_time": "TIMESTAMP",
    "rules_version": "INTEGER NOT NULL",
    "computed_at": "TIMESTAMP NOT NULL",
}


@register
class TimeFinder(Service):
    name = "TimeFinder"
    needs = ("Clickstream",)
    writes = {"person_course_day": "frozen", "event_time_anomalies": "frozen"}
    # 2: gaps summed as whole microseconds (the same bits whatever the thread count)
    # 3 (issue 16): /xblock/ calls and events with an empty username left out (edx2bigquery's make_person_course_day);
    #   nproblem_check counts browser and server problem_check events; nproblem_check_server apart
    # 4 (issue 16): nchapters also counts the chapter of an edx.ui.lms.outline.* event's /courseware/ target_url
    rules_version = 4

    def setup(self, wh: Warehouse) -> None:
        create_table(wh, "person_course_day", DAY_COLUMNS)
        create_table(wh, "event_time_anomalies", ANOMALY_COLUMNS)
        for name, sql_type in EXACT_COLUMNS.items():  # a warehouse of rules_version 1 lacks them; version 2 rebuilds every day
            wh.execute(f"ALTER TABLE person_course_day ADD COLUMN IF NOT EXISTS {wh.quote(name)} {sql_type}")
        # rules_version 2 lacks it; version 3 rebuilds every day
        wh.execute("ALTER TABLE person_course_day ADD COLUMN IF NOT EXISTS nproblem_check_server BIGINT")

    def run(self, wh: Warehouse, ctx: RunContext) -> int:
        """Returns the person_course_day rows written; event_time_anomalies' rows are counted apart (ctx.count_table)."""
        scope = self._scope(wh, ctx)
        if not scope:
            ctx.count_table("event_time_anomalies", self._anomalies(wh, ctx))
            return 0
        span = self.settings.time_gap_cutoff // 86400 + 1  # days back a kept gap can reach
        S.scope_table(wh, "_tf_scope", {"course_key": "VARCHAR", "day": "DATE"}, [[k, d] for k, d in sorted(scope, key=str)])
        S.scope_table(wh, "_tf_read", {"course_key": "VARCHAR", "lo": "TIMESTAMP", "hi": "TIMESTAMP"}, read_ranges(scope, span))
        try:
            # the days to rebuild, a whole course's being the days its events fall on
            wh.execute("DROP TABLE IF EXISTS _tf_days")
            wh.execute(
                f"CREATE TEMP TABLE _tf_days AS SELECT DISTINCT e.course_key, CAST(e.time AS DATE) AS day FROM {S.source(wh, 'events')} e "
                "WHERE e.course_key IN (SELECT course_key FROM _tf_scope WHERE day IS NULL) "
                "UNION SELECT course_key, day FROM _tf_scope WHERE day IS NOT NULL"
            )
            wh.execute(
                "DELETE FROM person_course_day WHERE EXISTS (SELECT 1 FROM _tf_scope s WHERE s.course_key = person_course_day.course_key "
                "AND (s.day IS NULL OR s.day = person_course_day.date))"
            )
            rows = self._insert(wh)
        finally:
            wh.execute("DROP TABLE IF EXISTS _tf_scope")
            wh.execute("DROP TABLE IF EXISTS _tf_read")
            wh.execute("DROP TABLE IF EXISTS _tf_days")
        ctx.touch_many(scope)
        ctx.wrote(rows)
        ctx.progress.note(f"person_course_day: {rows} learner-days recomputed")
        ctx.count_table("person_course_day", rows)
        ctx.count_table("event_time_anomalies", self._anomalies(wh, ctx))
        return rows

    # -- what to recompute ---------------------------------------------------------------------
    def _scope(self, wh: Warehouse, ctx: RunContext) -> set[tuple[str, date | None]]:
        """(course_key, day) pairs to rebuild; day None rebuilds the whole course."""
        events = S.source(wh, "events")
        everything = (
            self.recompute == "all"
            or bool(wh.scalar("SELECT count(*) FROM person_course_day WHERE rules_version <> ?", [self.rules_version]))
            or ctx.last_run_started is None
        )
        if everything:
            return {(k, None) for (k,) in wh.query(f"SELECT DISTINCT course_key FROM {events} e WHERE course_key IS NOT NULL")} | {
                (k, None) for (k,) in wh.query("SELECT DISTINCT course_key FROM person_course_day")
            }
        if isinstance(self.recompute, set):
            return {(k, None) for k in self.recompute}
        span = self.settings.time_gap_cutoff // 86400 + 1
        scope: set[tuple[str, date | None]] = set()
        for key, day in ctx.changes():
            if day is None:
                scope.add((key, None))
            else:
                # a new event on `day` can become the previous event of a gap on the next days
                scope.update((key, day + timedelta(days=i)) for i in range(span + 1))
        # a newly loaded auth_user can match events that had only a username: rebuild the courses
        # that have such unmatched learner-days
        reloaded = ctx.changed_courses(["DatabaseState"])
        if reloaded:
            unmatched = {k for (k,) in wh.query("SELECT DISTINCT course_key FROM person_course_day WHERE user_id IS NULL")}
            scope.update((key, None) for key in reloaded & unmatched)
        whole = {k for k, d in scope if d is None}
        return {(k, d) for k, d in scope if d is None or k not in whole}

    # -- person_course_day ---------------------------------------------------------------------
    def _insert(self, wh: Warehouse) -> int:
        read = (
            "JOIN _tf_read read_range ON read_range.course_key = e.course_key "
            "AND (read_range.lo IS NULL OR e.time >= read_range.lo) AND (read_range.hi IS NULL OR e.time < read_range.hi)"
        )
        day_counts = ("nplay_video", "nproblem_check", "nproblem_check_server", "nforum_events")
        sums = ", ".join(f"sum({expr}) AS {name}" for name, expr in S.counts_sql("learner_events").items() if name in day_counts)
        cutoff_us = int(self.settings.time_gap_cutoff) * 1_000_000
        # Two passes over the events, each cheap: the counts are a plain group-by, and the gaps a
        # window that carries only (course, learner, time); a window carrying every column the
        # counts need sorts all of them, and took 8x longer at 13M events. The events are read once
        # per pass (NOT MATERIALIZED), not kept between the passes. Events are picked by joins
        # (_tf_read, _tf_days), not by conditions correlated with each event: those cost more than
        # the rest of the query. Gaps are summed for every day read; the join keeps the days in scope.
        # A gap is whole microseconds (timestamps hold no finer time), so its sums are exact integers:
        # a float sum would change its last bits with the order threads add in.
        columns = {
            "course_id": "coalesce(course_ids.course_id, learner_days.course_id)",
            "course_key": "learner_days.course_key",
            "user_id": "learner_days.user_id",
            "username": "coalesce(usernames.username, learner_days.event_username)",
            "date": "learner_days.day",
            **{name: f"learner_days.{name}" for name in ("nevents", "first_event", "last_event", *day_counts, "nchapters")},
            "sum_dt": f"coalesce(CAST(day_gaps.sum_us AS DOUBLE PRECISION) / {S.MICROS}, 0)",
            "n_dt": "coalesce(day_gaps.n_dt, 0)",
            "max_dt": f"CAST(day_gaps.max_us AS DOUBLE PRECISION) / {S.MICROS}",
            "sum_dt2": f"coalesce(CAST(day_gaps.sum2_us AS DOUBLE PRECISION) / {S.MICROS2}, 0)",
            "sum_dt_us": "coalesce(day_gaps.sum_us, 0)",
            "sum_dt2_us": "coalesce(day_gaps.sum2_us, 0)",
            "rules_version": "?",
            "computed_at": "current_timestamp",
        }
        insert, select = S.insert_by_name(wh, "person_course_day", DAY_COLUMNS, columns)
        sql = f"""
            {insert}
            WITH learner_events AS{wh.sql.inline_cte()} ({S.learner_events(wh, "true", read)}),
            event_gaps AS (
                SELECT course_key, who, day,
                       {wh.sql.microseconds_between("time", "lag(time) OVER (PARTITION BY course_key, who ORDER BY time)")} AS gap_us
                FROM learner_events WHERE who IS NOT NULL AND in_day_table
            ),
            day_gaps AS (
                SELECT course_key, who, day, CAST(coalesce(sum(kept_us), 0) AS BIGINT) AS sum_us, count(kept_us) AS n_dt,
                       max(kept_us) AS max_us, coalesce(sum(CAST(kept_us AS NUMERIC(38,0)) * kept_us), 0) AS sum2_us
                FROM (SELECT event_gaps.*, CASE WHEN gap_us <= {cutoff_us} THEN gap_us END AS kept_us FROM event_gaps) kept_gaps
                GROUP BY course_key, who, day
            ),
            usernames AS (SELECT course_key, id, min(username) AS username FROM {S.source(wh, "auth_user")} a GROUP BY course_key, id),
            course_ids AS (SELECT course_key, min(course_id) AS course_id FROM {S.source(wh, "courses")} c GROUP BY course_key),
            learner_days AS (
                SELECT learner_events.course_key, learner_events.who, min(learner_events.uid) AS user_id,
                       min(learner_events.username) AS event_username, learner_events.day, min(learner_events.course_id) AS course_id,
                       count(*) AS nevents, min(learner_events.time) AS first_event, max(learner_events.time) AS last_event,
                       {sums}, count(DISTINCT learner_events.chapter) AS nchapters
                FROM learner_events JOIN _tf_days days_in_scope
                  ON days_in_scope.course_key = learner_events.course_key AND days_in_scope.day = learner_events.day
                WHERE learner_events.who IS NOT NULL AND learner_events.in_day_table GROUP BY learner_events.course_key, learner_events.who, learner_events.day
            )
            SELECT {select}
            FROM learner_days
            LEFT JOIN day_gaps
              ON day_gaps.course_key = learner_days.course_key AND day_gaps.who = learner_days.who AND day_gaps.day = learner_days.day
            LEFT JOIN usernames ON usernames.course_key = learner_days.course_key AND usernames.id = learner_days.user_id
            LEFT JOIN course_ids ON course_ids.course_key = learner_days.course_key
        """
        before = int(wh.scalar("SELECT count(*) FROM person_course_day"))
        wh.execute(sql, [self.rules_version])
        return int(wh.scalar("SELECT count(*) FROM person_course_day")) - before

    # -- event_time_anomalies ------------------------------------------------------------------
    def _anomalies(self, wh: Warehouse, ctx: RunContext) -> int:
        """Per event file and course: events whose own date is more than a day from the file's date.

        Rebuilt for the Clickstream files finished since the last run (all files on a full rebuild)."""
        if not wh.table_exists("events"):
            return 0
        everything = (
            self.recompute == "all"
            or ctx.last_run_started is None
            or bool(wh.scalar("SELECT count(*) FROM event_time_anomalies WHERE rules_version <> ?", [self.rules_version]))
        )
        files = "SELECT id FROM ingest_files WHERE service = 'Clickstream' AND file_date IS NOT NULL"
        params: list[object] = []
        if not everything:
            files += " AND finished_at >= ?"
            params.append(ctx.last_run_started)
        wh.execute(f"DELETE FROM event_time_anomalies WHERE file_id IN ({files})", params)
        before = int(wh.scalar("SELECT count(*) FROM event_time_anomalies"))
        offset = wh.sql.days_between("CAST(e.time AS DATE)", "f.file_date")
        wh.execute(
            f"""INSERT INTO event_time_anomalies (file_id, path, file_date, course_key, nevents, min_offset_days, max_offset_days,
                    min_time, max_time, rules_version, computed_at)
                SELECT f.id, f.path, f.file_date, e.course_key, count(*), CAST(min({offset}) AS INTEGER),
                       CAST(max({offset}) AS INTEGER), min(e.time), max(e.time), ?, current_timestamp
                FROM {S.source(wh, "events")} e JOIN ingest_files f ON f.id = e.file_id
                WHERE f.id IN ({files}) AND ({offset} > 1 OR {offset} < -1)
                GROUP BY f.id, f.path, f.file_date, e.course_key""",
            [self.rules_version, *params],
        )
        return int(wh.scalar("SELECT count(*) FROM event_time_anomalies")) - before


def read_ranges(scope: set[tuple[str, date | None]], span: int) -> list[list[object]]:
    """The events the scope's learner-days need, as disjoint [lo, hi) time ranges per course (each
    day and the `span` days before it, where its first gap may start); None bounds: the whole course.
    Disjoint, so that a join on them reads each event once."""
    days: dict[str, list[date | None]] = defaultdict(list)
    for key, day in scope:
        days[key].append(day)
    out: list[list[object]] = []
    for key, wanted in sorted(days.items()):
        if None in wanted:
            out.append([key, None, None])
            continue
        ranges: list[list[date]] = []
        for day in sorted(d for d in wanted if d is not None):
            lo, hi = day - timedelta(days=span), day + timedelta(days=1)
            if ranges and lo <= ranges[-1][1]:
                ranges[-1][1] = max(ranges[-1][1], hi)
            else:
                ranges.append([lo, hi])
        out += [[key, datetime.combine(lo, datetime.min.time()), datetime.combine(hi, datetime.min.time())] for lo, hi in ranges]
    return out
