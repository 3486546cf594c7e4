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


def gap_us(later: str, earlier: str) -> str:
    """`later - earlier` in whole microseconds (timestamps hold nothing finer)."""
    return f"CAST(round(EXTRACT(EPOCH FROM ({later} - {earlier})) * 1000000) AS BIGINT)"


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
    lags = ", ".join(
        f"CASE WHEN is_{k} THEN lag(time) OVER (PARTITION BY course_key, username, is_{k} {ORDER}) END AS last_{k}" for k in KINDS
    )
    dts = ", ".join(
        f"CASE WHEN is_{k} THEN {gap_us('time', f'last_{k}')} END AS dt_{k}, "
        f"CASE WHEN is_{k} THEN {gap_us('time', 'last_x')} END AS serial_dt_{k}"
        for k in KINDS
    )
    return f"""
        SELECT course_key, username, CAST(time AS DATE) AS day, {gap_us("time", "last_time")} AS dt, {dts}
        FROM (
            SELECT course_key, username, time, {", ".join(f"is_{k}" for k in KINDS)},
                   lag(time) OVER (PARTITION BY course_key, username {ORDER}) AS last_time,
                   CASE WHEN is_x THEN lag(time) OVER (PARTITION BY course_key, username, is_x {ORDER}) END AS last_x,
                   {lags}
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
    return f"coalesce({one}, {two}, {key})"


def edx2bigquery_module_sql(course_key: str, key: str) -> str:
    """edx2bigquery's module id (addmoduleid.py: `{org}/{course}/{category}/{url_name}`) of a usage key
    (`block-v1:...`, `i4x://...`, a video's `i4x-...-video-...`): org and course from the course,
    category and url_name from the key; NULL when the key has neither."""
    kind, name = block_type_sql(key), block_name_sql(key)
    return (
        f"(CASE WHEN {kind} IS NOT NULL AND {name} IS NOT NULL THEN split_part({course_key}, '+', 1) || '/' || "
        f"split_part({course_key}, '+', 2) || '/' || {kind} || '/' || {name} END)"
    )


def asset_days_sql(wh: Warehouse) -> str:
    """time_on_asset_daily in microseconds: per course, day, learner and module, the sums of the gaps
    between the learner's consecutive events on the module strictly under 5 and 30 minutes."""
    return f"""
        SELECT course_key, day, username, module_id,
               sum(CASE WHEN dt < {SHORT_US} THEN dt END) AS us5, sum(CASE WHEN dt < {LONG_US} THEN dt END) AS us30
        FROM (
            SELECT course_key, username, module_id, CAST(time AS DATE) AS day,
                   {gap_us("time", f"lag(time) OVER (PARTITION BY course_key, username, module_id {ORDER})")} AS dt
            FROM (
                SELECT fixed.course_key, fixed.username, fixed.time, fixed.event_id,
                       {edx2bigquery_module_sql("fixed.course_key", "fixed.block_key")} AS module_id
                FROM (
                    SELECT keyed.course_key, keyed.username, keyed.time, keyed.event_id, {repaired_sql(wh, "keyed.block_key")} AS block_key
                    FROM (
                        SELECT e.course_key, e.username, e.time, e.event_id, {usage_key_sql(wh, "e")} AS block_key
                        FROM {source(wh, "events")} e
                        WHERE {IN_SCOPE.replace("course_key", "e.course_key", 1)}
                          AND e.username IS NOT NULL AND e.username <> '' AND e.time IS NOT NULL
                    ) keyed
                ) fixed
            ) modules
            WHERE module_id IS NOT NULL AND strpos(module_id, '"') = 0
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

    def build(self, wh: Warehouse, table: Table) -> None:
        if table.name == "time_on_asset_daily":
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
            wh.execute(f"{insert} SELECT {select} FROM ({asset_days_sql(wh)}) days")
            return
        insert, select = insert_by_name(wh, table.name, table.columns, asset_totals_computed())
        wh.execute(
            f"""{insert}
            SELECT {select} FROM (
                SELECT days.course_key, days.module_id, days.username, sum(days.us5) AS u5, sum(days.us30) AS u30,
                       CASE WHEN max(pc.certified) = 1 THEN sum(days.us5) END AS c5,
                       CASE WHEN max(pc.certified) = 1 THEN sum(days.us30) END AS c30
                FROM ({asset_days_sql(wh)}) days
                JOIN {source(wh, "person_course")} pc ON pc.course_key = days.course_key AND pc.username = days.username
                WHERE days.us5 IS NOT NULL AND pc.nproblem_check > 0
                GROUP BY days.course_key, days.module_id, days.username
            ) per_learner
            GROUP BY per_learner.course_key, per_learner.module_id"""
        )
