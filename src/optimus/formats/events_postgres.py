"""The tracking-log rules of optimus.formats.events, written for PostgreSQL.

Same inputs, output columns and rules as the DuckDB SQL there (read its docstring first); only
the spelling differs. What PostgreSQL lacks is done with the warehouse's helper functions
(warehouse/postgres.py creates them on connect): `optimus_try_jsonb` (parse, NULL when invalid,
so one bad line never aborts the statement), `optimus_try_timestamp[tz]`, `optimus_try_bigint`,
`optimus_try_numeric`, and `optimus_try_url_decode` (DuckDB's try(url_decode()): `%XX` decoded,
other `%` kept, NULL when the bytes are not UTF-8).

Differences from DuckDB worth knowing, each made to give DuckDB's answer:
- PostgreSQL reads words and other layouts as times ('now', 'yesterday', 'Jan 2 2014',
  '20140301T100000'): only text starting like a date (or 'epoch') is cast; digits past the
  microsecond are cut, not rounded, as DuckDB does.
- PostgreSQL regexes take the longest match of an alternation, RE2 the first alternative: the
  course in a URL is found with one regex per id form, and the earlier match wins (the new form
  when both start at the same `/courses/`).
- `user_id` '5.0' or '1e3' is a whole number to DuckDB's cast: read through numeric, rounded.
- The time rules are bounded so both engines agree: years 1970 to 2100 (PostgreSQL has no year 0,
  DuckDB has), offsets up to 15:59:59 (PostgreSQL's bound), a time starting with an out-of-range
  year is out of range even where one engine cannot parse it. JSON nested over 5,000 levels is
  cut in the reader (PostgreSQL's parser stops near 10,000, DuckDB's does not).
Known remaining differences (documented in docs/postgresql.md): a JSON object with a key twice
keeps the first value on DuckDB and the last on PostgreSQL; `\\u0000` in a string is accepted by
DuckDB and makes the line invalid JSON on PostgreSQL (text there cannot hold NUL); JSON values
stored in `event`/`context` are spelt as jsonb prints them (`{"a": 1}`), DuckDB's minified.
"""

from __future__ import annotations

from optimus.formats import events as rules

# the new and old id forms in a URL, one regex each (PostgreSQL's alternation is longest-match):
# group 1 the whole `/courses/{id}`, group 2 the id
_URL_NEW = r"(/courses/((?:course-v1|ccx-v1)(?::|%3A)[^/?#]+))(?:[/?#]|$)"
_URL_OLD = r"(/courses/([^/?#]+/[^/?#]+/[^/?#]+))(?:[/?#]|$)"
# courses._NEW without its non-greedy run (the run cannot hold '+'; a final newline is cut first)
_NEW = r"^(?:course-v1|ccx-v1):([^+/]+)\+([^+/]+)\+([^+/]+)(?:\+ccx@([0-9]+))?$"
_SP = rules._SPACE_SQL
# courses._OLD, `\s` spelt out as the characters Python's `\s` takes (folded to a constant)
_OLD = f"'^([^/+' || {_SP} || ']+)/([^/' || {_SP} || ']+)/([^/' || {_SP} || ']+)$'"


def _key_layers(names: list[str]) -> tuple[str, str, str]:
    """Three SELECT-list layers computing `{name}_key` for each column, exactly as courses.course_key."""
    norm, match, key = [], [], []
    for n in names:
        norm.append(f"CASE WHEN strpos({n}, '%') > 0 THEN optimus_try_url_decode(btrim({n}, {_SP})) ELSE btrim({n}, {_SP}) END AS {n}_t")
        cut = f"CASE WHEN right({n}_t, 1) = chr(10) THEN left({n}_t, -1) ELSE {n}_t END"  # Python's `$` passes a final newline
        match.append(
            f"regexp_match({cut}, '{_NEW}') AS {n}_n, CASE WHEN NOT ({cut} ~ '{_NEW}') THEN regexp_match({cut}, {_OLD}) END AS {n}_o"
        )
        key.append(
            f"CASE WHEN {n}_n[1] <> '' THEN {n}_n[1] || '+' || {n}_n[2] || '+' || {n}_n[3] "
            f"|| CASE WHEN {n}_n[4] <> '' THEN '+ccx@' || {n}_n[4] ELSE '' END "
            f"WHEN {n}_o[1] <> '' THEN {n}_o[1] || '+' || {n}_o[2] || '+' || {n}_o[3] END AS {n}_key"
        )
    return ", ".join(norm), ", ".join(match), ", ".join(key)


def course_key_sql(values: str, column: str) -> str:
    """SELECT {column}, {column}_key FROM {values}: the SQL twin of courses.course_key."""
    norm, match, key = _key_layers([column])
    return (
        f"SELECT {column}, {column}_key FROM (SELECT *, {key} FROM (SELECT *, {match} FROM "
        f"(SELECT *, {norm} FROM {values} OFFSET 0) a OFFSET 0) b) c"
    )


def _course_in_url(col: str, alias: str) -> tuple[str, str]:
    """(regex layer, pick) for the course id in a `/courses/{id}` URL held in `col`: the two
    matches, then the one that starts first (the new form on a tie), percent-decoded."""
    guard = f"reason IS NULL AND ctx IS NULL AND strpos({col}, '/courses/') > 0"
    layer = (
        f"CASE WHEN {guard} THEN regexp_match({col}, '{_URL_NEW}', 'i') END AS {alias}_nm, "
        f"CASE WHEN {guard} THEN regexp_match({col}, '{_URL_OLD}', 'i') END AS {alias}_om"
    )
    pick = (
        f"CASE WHEN {alias}_om IS NULL THEN {alias}_nm[2] WHEN {alias}_nm IS NULL THEN {alias}_om[2] "
        f"WHEN strpos({col}, {alias}_nm[1]) <= strpos({col}, {alias}_om[1]) THEN {alias}_nm[2] ELSE {alias}_om[2] END"
    )
    return layer, f"nullif(optimus_try_url_decode({pick}), '') AS {alias}"


def _time_sql(t: str) -> str:
    """The UTC timestamp of the text `t`, as the DuckDB CASE reads it (no zone = UTC)."""
    cut = f"CASE WHEN {t} ~ '\\.[0-9]{{7}}' THEN regexp_replace({t}, '(\\.[0-9]{{6}})[0-9]+', '\\1') ELSE {t} END"
    return (
        f"CASE WHEN {t} IS NULL THEN NULL "
        f"WHEN {t} ~ '[0-9]:60' THEN NULL "  # a 60th second (or minute): PostgreSQL rolls it over, DuckDB refuses
        f"WHEN {t} ~ '{rules.NUMBER_RE}' THEN NULL "
        f"WHEN {t} !~* '^\\s*([0-9]{{4}}[-/][0-9]{{1,2}}[-/][0-9]{{1,2}}|epoch\\s*$)' THEN NULL "
        f"WHEN right({t}, 6) = '+00:00' OR right({t}, 1) = 'Z' THEN optimus_try_timestamp({cut}) "
        f"WHEN {t} ~ '{rules.OFFSET_RE}' AND length({t}) > 16 "
        f"THEN CASE WHEN {t} ~ '{rules.OFFSET_OK_RE}' THEN timezone('UTC', optimus_try_timestamptz({cut})) END "
        f"WHEN {t} ~ '{rules.ZONE_NAME_RE}' THEN NULL "
        f"ELSE optimus_try_timestamp({cut}) END"
    )


def _bigint_sql(v: str) -> str:
    """DuckDB's TRY_CAST(v AS BIGINT): whole-number text, or a decimal rounded; NULL otherwise."""
    return (
        f"CASE WHEN {v} ~ '^[0-9]{{1,18}}$' THEN CAST({v} AS bigint) "
        f"ELSE optimus_try_bigint(CAST(round(optimus_try_numeric({v})) AS text)) END"
    )


_TEXT_FIELDS = ("username", "event_type", "name", "event_source", "ip", "agent", "host", "referer", "accept_language", "session", "page")


def parse_sql(lines: str) -> str:
    """A SELECT applying the rules to `lines(line, raw, event_id)`: the columns of events.parse_sql.

    Each layer whose expressions call a function is fenced with OFFSET 0, so PostgreSQL computes
    them once per line instead of once per use.
    """
    blank = "' ' || chr(9) || chr(65279)"
    eol = "chr(13) || chr(10)"
    fields = ", ".join(f"j ->> '{f}' AS j_{f}" for f in _TEXT_FIELDS)
    et_layer, et_pick = _course_in_url("j_event_type", "etc")
    pg_layer, pg_pick = _course_in_url("j_page", "pgc")
    norm, match, key = _key_layers(["ctx", "etc", "pgc"])
    return f"""
    WITH s AS (
        SELECT line, raw, event_id,
               CASE WHEN left(raw, 1) = '{{' THEN raw
                    WHEN left(ltrim(raw, {blank}), 1) = '#' THEN NULL
                    WHEN strpos(raw, '{{') > 0 THEN substr(raw, strpos(raw, '{{')) END AS js
        FROM {lines}
        WHERE left(raw, 1) = '{{' OR btrim(raw, ' ' || chr(9) || {eol}) <> ''
    ), j AS (
        SELECT line, raw, event_id, js, optimus_try_jsonb(js) AS j FROM s OFFSET 0
    ), f AS (
        SELECT line, raw, event_id, js, j, {fields}, j ->> 'time' AS j_time,
               nullif(j -> 'event', 'null') AS j_event, nullif(j -> 'context', 'null') AS j_context
        FROM j
    ), t AS (
        SELECT *, {_time_sql("j_time")} AS ts,
               CASE WHEN jsonb_typeof(j_event) = 'string' AND left(j_event #>> '{{}}', 1) = '{{'
                    THEN optimus_try_jsonb(j_event #>> '{{}}') END AS event_inner,
               j_context ->> 'course_id' AS c_course_id, {_bigint_sql("j_context ->> 'user_id'")} AS c_user_id
        FROM f OFFSET 0
    ), r AS (
        SELECT *,
               CASE WHEN js IS NULL AND strpos(raw, '{{') = 0 AND left(ltrim(raw, {blank}), 1) = '#' THEN '{rules.COMMENT}'
                    WHEN js IS NULL THEN '{rules.NO_OBJECT}'
                    WHEN j IS NULL THEN '{rules.INVALID_JSON}'
                    WHEN j_time IS NULL THEN '{rules.NO_TIME}'
                    WHEN ts IS NULL AND j_time ~ '{rules.NUMBER_RE}' THEN '{rules.BAD_TIME}'
                    WHEN ts IS NULL AND length(j_time) > 16 AND j_time ~ '{rules.OFFSET_RE}'
                         AND j_time !~ '{rules.OFFSET_OK_RE}' THEN '{rules.BAD_OFFSET}'
                    WHEN ts IS NULL AND j_time ~ '{rules.YEAR_OUT_RE}' THEN '{rules.TIME_RANGE}'
                    WHEN ts IS NULL THEN '{rules.BAD_TIME}'
                    WHEN ts < TIMESTAMP '{rules.FIRST_TIME}' OR ts >= TIMESTAMP '{rules.END_TIME}' THEN '{rules.TIME_RANGE}' END AS reason,
               nullif(c_course_id, '') AS ctx
        FROM t
    ), u AS (
        SELECT *, {et_layer}, {pg_layer} FROM r OFFSET 0
    ), v AS (
        SELECT *, {et_pick}, {pg_pick} FROM u OFFSET 0
    ), k AS (
        SELECT *, {key} FROM (SELECT *, {match} FROM (SELECT *, {norm} FROM v OFFSET 0) k1 OFFSET 0) k2
    )
    SELECT line, reason,
           CASE WHEN reason IS NOT NULL THEN rtrim(raw, {eol}) END AS raw,
           CASE WHEN reason IS NULL THEN event_id END AS event_id,
           ts AS "time", CAST(ts AS DATE) AS event_date,
           j_username AS username, c_user_id AS user_id,
           CASE WHEN ctx IS NOT NULL THEN ctx WHEN etc_key IS NOT NULL THEN etc WHEN pgc_key IS NOT NULL THEN pgc END AS course_id,
           CASE WHEN ctx IS NOT NULL THEN ctx_key ELSE coalesce(etc_key, pgc_key) END AS course_key,
           coalesce(nullif(j_name, ''), j_event_type) AS event_type,
           j_event_source AS event_source, j_ip AS ip, j_agent AS agent, j_host AS host, j_referer AS referer,
           j_accept_language AS accept_language, j_session AS session, j_page AS page,
           j_context ->> 'org_id' AS org_id, j_context -> 'module' ->> 'usage_key' AS module_id,
           CAST(coalesce(event_inner, j_event) AS json) AS event,
           CAST(j_context AS json) AS context
    FROM k
    """


def duplicate_keys_sql(lines: str) -> str:
    """events.duplicate_keys_sql for PostgreSQL: `json` (not jsonb) keeps every copy of a key;
    only lines that parse (as jsonb, the rules' test) are read."""
    js = "substr(raw, strpos(raw, '{'))"
    return (
        f"SELECT coalesce(sum((SELECT count(*) - count(DISTINCT k) FROM json_object_keys(CAST({js} AS json)) k)), 0) "
        f"FROM {lines} WHERE strpos(raw, '{{') > 0 AND jsonb_typeof(optimus_try_jsonb({js})) = 'object'"
    )
