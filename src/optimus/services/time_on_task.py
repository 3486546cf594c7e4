"""TimeOnTask and TimeOnAsset: edx2bigquery's time tables, per course.

`time_on_task` / `time_on_task_totals` (edx2bigquery's make_time_on_task.py) and
`time_on_asset_daily` / `time_on_asset_totals` (make_time_on_asset.py). Every column's rule is in
docs/tables/time_on_task.md. A gap is the difference of two event times in whole microseconds and
every sum is an integer sum, divided once into seconds (learner_events.MICROS), so DuckDB and
PostgreSQL give the same bits.
"""

from __future__ import annotations

from optimus.services.base import register
from optimus.services.course_tables import IN_SCOPE, CourseTables, Table, course_id_sql
from optimus.services.learner_events import MICROS, block_name_sql, block_type_sql, insert_by_name, source, usage_key_sql
from optimus.warehouse.base import Warehouse

SHORT_US = 5 * 60 * 1_000_000  # edx2bigquery's timeout_short (5 minutes), in microseconds
LONG_US = 30 * 60 * 1_000_000  # timeout_long (30 minutes)
KINDS = ("video", "problem", "forum", "text")
# the order-by of every gap: time, then the event's fingerprint (a hex SHA-1: collation-free), so
# that events at the same time are ordered alike on every engine (edx2bigquery leaves ties to BigQuery)
ORDER = "ORDER BY time, event_id"


def gap_us(wh: Warehouse, later: str, earlier: str) -> str:
    """`later - earlier` in whole microseconds (timestamps hold nothing finer)."""
    return wh.sql.microseconds_between(later, earlier)


def seconds(us_sum: str) -> str:
    """An exact sum of microseconds as seconds: one division, by a double."""
    return f"CAST({us_sum} AS DOUBLE PRECISION) / {MICROS}"


def kind_sql(wh: Warehouse, event_type: str) -> dict[str, str]:
    """make_time_on_task.py's is_video, is_problem, is_forum, is_text (REGEXP_MATCH is a partial match;
    `\\w` written as its ASCII class so both engines read it alike)."""
    w = "[0-9A-Za-z_]"
    return {
        "video": f"({wh.sql.regex_matches(event_type, w + '_video')} OR {wh.sql.regex_matches(event_type, w + '_transcript')})",
        "problem": wh.sql.regex_matches(event_type, "problem_" + w),
        "forum": (
            f"({event_type} LIKE 'edx.forum.%' OR strpos({event_type}, '/discussion/forum') > 0"
            f" OR strpos({event_type}, '/discussion/threads') > 0 OR strpos({event_type}, '/discussion/comments') > 0)"
        ),
        "text": f"({event_type} LIKE 'textbook.%' OR strpos({event_type}, '/wiki/') > 0)",
    }


def task_gaps_sql(wh: Warehouse) -> str:
    """One row per kept event but each learner's first in the course (edx2bigquery's `WHERE last_time
    is not null`): its day, the gap to the learner's previous event (`dt`), to the previous event of
    its own kind when it has one (`dt_video`, ...), and to the previous event of any of the four
    kinds when it is of one (`serial_dt_video`, ...), all in microseconds."""
    kinds = kind_sql(wh, "e.event_type")
    is_kind = ", ".join(f"{expr} AS is_{k}" for k, expr in kinds.items())
    any_kind = " OR ".join(f"is_{k}" for k in KINDS)
    # one window (one sort) for every column: the time of the previous event of a kind is the largest
    # such time among the rows before (the rows are in time order)
    before = f"OVER (PARTITION BY course_key, username {ORDER} ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)"
    lags = ", ".join(f"CASE WHEN is_{k} THEN max(CASE WHEN is_{k} THEN time END) {before} END AS last_{k}" for k in (*KINDS, "x"))
    dts = ", ".join(
        f"CASE WHEN is_{k} THEN {gap_us(wh, 'time', f'last_{k}')} END AS dt_{k}, "
        f"CASE WHEN is_{k} THEN {gap_us(wh, 'time', 'last_x')} END AS serial_dt_{k}"
        for k in KINDS
    )
    return f"""
        SELECT course_key, username, CAST(time AS DATE) AS day, {gap_us(wh, "time", "last_time")} AS dt, {dts}
        FROM (
            SELECT course_key, username, time, {", ".join(f"is_{k}" for k in KINDS)},
                   max(time) {before} AS last_time, {lags}
            FROM (
                SELECT kinds.*, ({any_kind}) AS is_x FROM (
                    SELECT e.course_key, e.username, e.time, e.event_id, {is_kind}
                    FROM {source(wh, "events")} e
                    WHERE {IN_SCOPE.replace("course_key", "e.course_key", 1)}
                      AND e.event_type IS NOT NULL AND strpos(e.event_type, '/xblock/') = 0
                      AND e.username IS NOT NULL AND e.username <> '' AND e.time IS NOT NULL
                ) kinds
            ) flagged
        ) lagged
        WHERE last_time IS NOT NULL"""


def task_sums() -> dict[str, str]:
    """The time columns as sums of the gaps strictly under the cut-off (NULL when none)."""

    def kept(gap: str, cut: int) -> str:
        return seconds(f"sum(CASE WHEN {gap} < {cut} THEN {gap} END)")

    out = {"total_time_5": kept("dt", SHORT_US), "total_time_30": kept("dt", LONG_US)}
    for k in KINDS:
        out[f"total_{k}_time_5"] = kept(f"dt_{k}", SHORT_US)
        out[f"total_{k}_time_30"] = kept(f"dt_{k}", LONG_US)
        out[f"serial_{k}_time_30"] = kept(f"serial_dt_{k}", LONG_US)
    return out


TIME_COLUMNS = {c: "DOUBLE PRECISION" for c in task_sums()}

TIME_ON_TASK = Table(
    "time_on_task",
    {"course_id": "VARCHAR", "date": "DATE", "username": "VARCHAR", **TIME_COLUMNS, "course_key": "VARCHAR"},
    personal=True,
    order_by=("course_key", "date", "username"),
)
TIME_ON_TASK_TOTALS = Table(
    "time_on_task_totals",
    {"course_id": "VARCHAR", "username": "VARCHAR", **TIME_COLUMNS, "course_key": "VARCHAR"},
    personal=True,
    order_by=("course_key", "username"),
)


@register
class TimeOnTask(CourseTables):
    """edx2bigquery's time on task: per learner and day, and per learner, from the events."""

    name = "TimeOnTask"
    needs = ("Clickstream",)
    tables = (TIME_ON_TASK, TIME_ON_TASK_TOTALS)
    dictionary = "docs/tables/time_on_task.md"
    rules_version = 1

    def build(self, wh: Warehouse, table: Table) -> None:
        by_day = table.name == "time_on_task"
        keys = ("course_key", "username", "day") if by_day else ("course_key", "username")
        computed = {"course_id": course_id_sql(), "username": "username", "course_key": "course_key", **task_sums()}
        if by_day:
            computed["date"] = "day"
        insert, select = insert_by_name(wh, table.name, table.columns, computed)
        wh.execute(f"{insert} SELECT {select} FROM ({task_gaps_sql(wh)}) gaps GROUP BY {', '.join(keys)}")


def repaired_sql(wh: Warehouse, key: str) -> str:
    """make_time_on_asset.py's repair of a module id that kept the end of its JSON (`..."}`, `..."]}}`)."""
    one = wh.sql.regex_extract(key, '^(.*)"\\}$')
    two = wh.sql.regex_extract(key, '^(.*)"\\]\\}\\}$')
    # only a key holding a quote can end so (and is left out unless repaired): the regexes run for those alone
    return f"(CASE WHEN strpos({key}, '\"') > 0 THEN coalesce({one}, {two}, {key}) ELSE {key} END)"


def edx2bigquery_module_sql(course_key: str, key: str) -> str:
    """edx2bigquery's module id (addmoduleid.py: `{org}/{course}/{category}/{url_name}`) of a usage key
    (`block-v1:...`, `i4x://...`, a video's `i4x-...-video-...`): org and course from the course,
    category and url_name from the key; NULL when the key has neither."""
    kind, name = block_type_sql(key), block_name_sql(key)
    return (
        f"(CASE WHEN {kind} IS NOT NULL AND {name} IS NOT NULL THEN split_part({course_key}, '+', 1) || '/' || "
        f"split_part({course_key}, '+', 2) || '/' || {kind} || '/' || {name} END)"
    )


def asset_keys_sql(wh: Warehouse) -> str:
    """The events time on asset reads, each with the key of the block it touched (NULL when none)."""
    return f"""
        SELECT e.course_key, e.username, e.time, e.event_id, {usage_key_sql(wh, "e")} AS block_key
        FROM {source(wh, "events")} e
        WHERE {IN_SCOPE.replace("course_key", "e.course_key", 1)} AND e.username IS NOT NULL AND e.username <> '' AND e.time IS NOT NULL"""


def asset_modules_sql(wh: Warehouse, keyed: str) -> str:
    """asset_keys_sql's rows (relation `keyed`) with edx2bigquery's module id of the repaired key, the
    events without one (or whose id still holds a quote) left out. The id is worked out once per
    distinct key (a course has a few thousand blocks, and millions of events on them)."""
    return f"""
        SELECT keyed.course_key, keyed.username, keyed.time, keyed.event_id, ids.module_id
        FROM {keyed} keyed
        JOIN (
            SELECT fixed.course_key, fixed.block_key, {edx2bigquery_module_sql("fixed.course_key", "fixed.repaired_key")} AS module_id
            FROM (
                SELECT distinct_keys.course_key, distinct_keys.block_key, {repaired_sql(wh, "distinct_keys.block_key")} AS repaired_key
                FROM (SELECT DISTINCT course_key, block_key FROM {keyed} WHERE block_key IS NOT NULL) distinct_keys
            ) fixed
        ) ids ON ids.course_key = keyed.course_key AND ids.block_key = keyed.block_key
        WHERE ids.module_id IS NOT NULL AND strpos(ids.module_id, '"') = 0"""


def asset_days_sql(wh: Warehouse, modules: str) -> str:
    """time_on_asset_daily in microseconds: per course, day, learner and module, the sums of the gaps
    between the learner's consecutive events on the module strictly under 5 and 30 minutes.
    `modules`: a relation of asset_modules_sql's rows."""
    return f"""
        SELECT course_key, day, username, module_id,
               sum(CASE WHEN dt < {SHORT_US} THEN dt END) AS us5, sum(CASE WHEN dt < {LONG_US} THEN dt END) AS us30
        FROM (
            SELECT course_key, username, module_id, CAST(time AS DATE) AS day,
                   {gap_us(wh, "time", f"lag(time) OVER (PARTITION BY course_key, username, module_id {ORDER})")} AS dt
            FROM {modules} modules
        ) gaps
        GROUP BY course_key, day, username, module_id"""


TIME_ON_ASSET_DAILY = Table(
    "time_on_asset_daily",
    {
        "course_id": "VARCHAR",
        "date": "DATE",
        "username": "VARCHAR",
        "module_id": "VARCHAR",
        "time_umid5": "DOUBLE PRECISION",
        "time_umid30": "DOUBLE PRECISION",
        "course_key": "VARCHAR",
    },
    personal=True,
    order_by=("course_key", "date", "module_id", "username"),
)
TOTALS_STATS = ("mean", "median", "total")
TIME_ON_ASSET_TOTALS = Table(
    "time_on_asset_totals",
    {
        "course_id": "VARCHAR",
        "module_id": "VARCHAR",
        "n_unique_users": "BIGINT",
        "n_unique_certified": "BIGINT",
        **{f"{c}{s}_tmid{m}": "DOUBLE PRECISION" for s in TOTALS_STATS for m in (5, 30) for c in ("", "cert_")},
        "course_key": "VARCHAR",
    },
    order_by=("course_key", "module_id"),
)


def asset_totals_computed() -> dict[str, str]:
    """time_on_asset_totals over per-learner sums (`u5`, `u30`; `c5`, `c30` for certified learners)."""
    out = {
        "course_id": course_id_sql("per_learner.course_key"),
        "module_id": "per_learner.module_id",
        "course_key": "per_learner.course_key",
        "n_unique_users": "count(*)",
        "n_unique_certified": "count(per_learner.c5)",
    }
    for m in (5, 30):
        for prefix, col in (("", f"u{m}"), ("cert_", f"c{m}")):
            v = f"per_learner.{col}"
            out[f"{prefix}mean_tmid{m}"] = f"CAST(sum({v}) AS DOUBLE PRECISION) / count({v}) / {MICROS}"
            out[f"{prefix}median_tmid{m}"] = seconds(f"percentile_disc(0.5) WITHIN GROUP (ORDER BY {v})")
            out[f"{prefix}total_tmid{m}"] = seconds(f"sum({v})")
    return out


@register
class TimeOnAsset(CourseTables):
    """edx2bigquery's time on asset: per learner, day and module, and per module (learners with problem checks)."""

    name = "TimeOnAsset"
    needs = ("Clickstream", "PersonCourse")
    tables = (TIME_ON_ASSET_DAILY, TIME_ON_ASSET_TOTALS)
    dictionary = "docs/tables/time_on_task.md"
    rules_version = 1
    _days_built = False

    def build(self, wh: Warehouse, table: Table) -> None:
        # the per-day microsecond sums, computed once for both tables (the totals need them exact, the
        # daily table holds seconds): kept in a temporary table for the run's two builds
        days = "_asset_days_us"
        if table.name == "time_on_asset_daily":
            self._make_days(wh, days)
            computed = {
                "course_id": course_id_sql(),
                "date": "day",
                "username": "username",
                "module_id": "module_id",
                "time_umid5": seconds("us5"),
                "time_umid30": seconds("us30"),
                "course_key": "course_key",
            }
            insert, select = insert_by_name(wh, table.name, table.columns, computed)
            wh.execute(f"{insert} SELECT {select} FROM {days} days")
            return
        if not self._days_built:  # the daily table was not built in this run
            self._make_days(wh, days)
        insert, select = insert_by_name(wh, table.name, table.columns, asset_totals_computed())
        wh.execute(
            f"""{insert}
            SELECT {select} FROM (
                SELECT days.course_key, days.module_id, days.username, sum(days.us5) AS u5, sum(days.us30) AS u30,
                       CASE WHEN max(pc.certified) = 1 THEN sum(days.us5) END AS c5,
                       CASE WHEN max(pc.certified) = 1 THEN sum(days.us30) END AS c30
                FROM {days} days
                JOIN {source(wh, "person_course")} pc ON pc.course_key = days.course_key AND pc.username = days.username
                WHERE days.us5 IS NOT NULL AND pc.nproblem_check > 0
                GROUP BY days.course_key, days.module_id, days.username
            ) per_learner
            GROUP BY per_learner.course_key, per_learner.module_id"""
        )
        wh.execute(f"DROP TABLE {days}")
        self._days_built = False

    def _make_days(self, wh: Warehouse, days: str) -> None:
        """The per-day sums into temporary table `days`, over the events' block keys and module ids
        each computed once into a table of their own (each is an expression of many parts, which the
        engine would otherwise evaluate once per use)."""
        keys, modules = "_asset_keys", "_asset_modules"
        for name in (days, keys, modules):
            wh.execute(f"DROP TABLE IF EXISTS {name}")
        wh.execute(f"CREATE TEMP TABLE {keys} AS {asset_keys_sql(wh)}")
        wh.execute(f"CREATE TEMP TABLE {modules} AS {asset_modules_sql(wh, keys)}")
        wh.execute(f"CREATE TEMP TABLE {days} AS {asset_days_sql(wh, modules)}")
        for name in (keys, modules):
            wh.execute(f"DROP TABLE {name}")
        self._days_built = True
