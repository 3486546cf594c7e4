"""Spark SQL's spelling (Spark 4, the settings of warehouse/spark_session.py) of the fragments that
differ from the default (dialects/base.py).

What Spark reads differently from the shared SQL's standard spelling, and how each is met here:
- string literals read backslash escapes (`'\\+'` is `+`): every literal is written by `literal`;
- regular expressions are Java's, not RE2's: `$` also matches before a final line end, `.` stops at
  more line ends, `\\s` takes the vertical tab, `(?i)` folds ASCII only; `_java_regex` writes an RE2
  pattern so that Java reads it alike;
- there is no JSON type: a JSON value is its compact text (STRING, as the lake stores it); it is
  parsed into a VARIANT (`try_parse_json`) where members are read. Parsing needs
  `spark.sql.variant.allowDuplicateKeys` (spark_session.BASE_CONF): an event naming a key twice is
  valid JSON to DuckDB;
- `chr(n)` is `chr(n % 256)`: `char` writes the character as a literal;
- type names: VARCHAR needs a length (STRING), DOUBLE PRECISION is DOUBLE (`type_name`).
"""

from __future__ import annotations

from collections.abc import Callable

from optimus.warehouse.dialects.base import Capabilities, Dialect, JsonShape, _member, try_cast_type

# what RE2 (DuckDB) takes for `\s`: Java's `\s` also takes the vertical tab
_RE2_SPACE = "\\t\\n\\f\\r "
# the shared SQL's type names as Spark spells them (the others, BIGINT, DATE, BOOLEAN, ..., are the same)
_TYPES = {
    "VARCHAR": "STRING",
    "TEXT": "STRING",
    "JSON": "STRING",  # a JSON value is its text (module docstring)
    "DOUBLE PRECISION": "DOUBLE",
    "FLOAT8": "DOUBLE",
    "FLOAT": "DOUBLE",
    "INTEGER": "INT",
    "INT4": "INT",
    "INT8": "BIGINT",
    "BOOL": "BOOLEAN",
    "TIMESTAMP": "TIMESTAMP_NTZ",  # naive, as DuckDB's and PostgreSQL's TIMESTAMP (whatever spark.sql.timestampType says)
    "TIMESTAMPTZ": "TIMESTAMP_LTZ",
    "BLOB": "BINARY",
    "BYTEA": "BINARY",
}
# the whole-number text DuckDB's TRY_CAST(text AS BIGINT) reads (a decimal is rounded)
_NUMBER = "^\\s*[-+]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]+)?\\s*$"
# a time DuckDB's TRY_CAST(text AS TIMESTAMP) reads and Spark's cast reads alike: a date first, then
# the end or a time with a minute (Spark would read `2014`, `2014-03` and `2014-03-01T10` too)
_TIME_FIRST = "^\\s*-?[0-9]{4,6}-[0-9]{1,2}-[0-9]{1,2}(T[0-9]{1,2}:[0-9]| [0-9]{1,2}:[0-9]|\\s*$)"
# what else DuckDB reads: `/` between the date's fields, several spaces before the time; made Spark's layout
_TIME_OTHER = "^\\s*-?[0-9]{4,6}[-/][0-9]{1,2}[-/][0-9]{1,2}(T[0-9]{1,2}:[0-9]| +[0-9]{1,2}:[0-9]|\\s*$)"
_EPOCH = "(?i)^\\s*epoch\\s*$"  # DuckDB's (and PostgreSQL's) word for 1970-01-01

# What the Spark backend runs on each new session (as warehouse/postgres.py creates its helpers on
# connect): functions the shared SQL calls that Spark lacks under that name (DuckDB's and PostgreSQL's
# strpos: 1-based, 0 when absent, NULL for NULL; isfinite: a Spark timestamp is never infinite)
SESSION_SQL = (
    "CREATE OR REPLACE TEMPORARY FUNCTION strpos(haystack STRING, needle STRING) RETURNS INT RETURN locate(needle, haystack)",
    "CREATE OR REPLACE TEMPORARY FUNCTION isfinite(t TIMESTAMP_NTZ) RETURNS BOOLEAN RETURN CASE WHEN t IS NOT NULL THEN true END",
)


def _java_regex(pattern: str) -> str:
    """An RE2 pattern (the syntax RE2 and PostgreSQL share, base.py) as a Java pattern matching the same
    text: `$` is the end of the text (`\\z`; Java's also matches before a final line end), `.` any
    character but `\\n` (Java's also stops at `\\r`, U+0085, U+2028, U+2029), `\\s` RE2's five
    characters (Java's adds `\\x0B`), `(?i)` Unicode case folding (Java's is ASCII: `(?iu)`), and a
    `[` or `&&` inside brackets literal (Java nests classes and intersects them)."""
    out: list[str] = []
    i, in_class = 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            escaped = pattern[i + 1]
            if escaped == "s":
                out.append(_RE2_SPACE if in_class else f"[{_RE2_SPACE}]")
            elif escaped == "S" and not in_class:
                out.append(f"[^{_RE2_SPACE}]")
            else:
                out.append(c + escaped)
            i += 2
        elif in_class:
            out.append(c if c not in "[&" else "\\" + c)
            in_class = c != "]"
            i += 1
        elif c == "[":
            # a `^` and a `]` right after the opening bracket belong to the class
            start = i + 2 if pattern.startswith("[^", i) else i + 1
            out.append(pattern[i:start] + ("\\]" if pattern.startswith("]", start) else ""))
            i = start + (1 if pattern.startswith("]", start) else 0)
            in_class = True
        elif pattern.startswith(("(?i)", "(?i:"), i):
            out.append("(?iu" + pattern[i + 3])
            i += 4
        else:
            out.append({"$": "\\z", ".": "[^\\n]"}.get(c, c))
            i += 1
    return "".join(out)


class SparkDialect(Dialect):
    name = "spark"
    # Arrow reaches Spark through a DataFrame (a copy). transactions=True: a Spark warehouse publishes a statement's Parquet parts by listing them in its
    # DuckDB catalog, in the catalog's transaction, together with the ledger (warehouse/spark.py)
    capabilities = Capabilities(
        scans_arrow_in_place=False, prunes_by_min_max=False, transactions=True, reads_files=True, costly_statements=True
    )

    # -- literals, names and types -----------------------------------------------------------------
    def literal(self, value: str) -> str:
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"

    def quote(self, identifier: str) -> str:
        return "`" + identifier.replace("`", "``") + "`"  # Spark's own quotes: what the double-quote setting is not needed for

    def type_name(self, sql_type: str) -> str:
        name = " ".join(sql_type.upper().split())
        return _TYPES.get(name, name)

    def char(self, code: int) -> str:
        return self.literal(chr(code))

    def _regex(self, pattern: str) -> str:
        return self.literal(_java_regex(pattern))

    # -- try_cast ------------------------------------------------------------------------------------
    def try_cast(self, expr: str, sql_type: str) -> str:
        if try_cast_type(sql_type) == "VARCHAR":
            return f"CAST({expr} AS STRING)"
        return super().try_cast(expr, sql_type)

    def _cast_or_null(self, text: str, target: str) -> str:
        cast = f"try_cast({text} AS {self.type_name(target)})"  # NULL out of range and for a day the calendar lacks
        if target != "DOUBLE PRECISION":
            return cast
        # an overflow reads as infinity and a value below the smallest double as 0: both NULL, as on DuckDB
        return (
            f"CASE WHEN abs({cast}) = CAST('Infinity' AS DOUBLE) THEN NULL "
            f"WHEN {cast} = 0 AND {self.regex_matches(text, '^[^eE]*[1-9]')} THEN NULL ELSE {cast} END"
        )

    # -- text ------------------------------------------------------------------------------------
    def starts_with(self, expr: str, prefix: str) -> str:
        return f"startswith({expr}, {self.literal(prefix)})"

    def ends_with(self, expr: str, suffix: str) -> str:
        return f"endswith({expr}, {self.literal(suffix)})"

    def contains(self, expr: str, needle: str) -> str:
        return f"contains({expr}, {self.literal(needle)})"

    def url_decode_or_null(self, expr: str) -> str:
        # Java's decoder reads `+` as a space, fails on a `%` without two hex digits and writes U+FFFD for
        # bytes that are not UTF-8: `+` and such a `%` are escaped first, and each run of escapes checked
        runs = f"regexp_extract_all({expr}, '((?:%[0-9A-Fa-f]{{2}})+)', 1)"
        kept = f"regexp_replace(replace({expr}, '+', '%2B'), '%(?![0-9A-Fa-f]{{2}})', '%25')"
        return f"CASE WHEN forall({runs}, _optimus_run -> is_valid_utf8(unhex(replace(_optimus_run, '%', '')))) THEN url_decode({kept}) END"

    # -- regular expressions -------------------------------------------------------------------------
    def regex_matches(self, expr: str, pattern: str) -> str:
        return f"regexp_like({expr}, {self._regex(pattern)})"

    def regex_groups(self, expr: str, pattern: str, groups: tuple[str, ...]) -> str:
        # Spark has no one call giving every group: a STRUCT of each ('' for no match, as DuckDB's)
        fields = ", ".join(f"'{g}', regexp_extract({expr}, {self._regex(pattern)}, {i})" for i, g in enumerate(groups, 1))
        return f"named_struct({fields})"

    def regex_group(self, matched: str, groups: tuple[str, ...], group: str) -> str:
        return f"nullif({_member(matched)}.{group}, '')"

    def regex_extract(self, expr: str, pattern: str) -> str:
        return f"nullif(regexp_extract({expr}, {self._regex(pattern)}, 1), '')"

    # -- JSON: a JSON value is its text; a parsed object a VARIANT -------------------------------------
    def _path(self, *path: str) -> str:
        return self.literal("$" + "".join(f"['{p}']" for p in path))

    def _parse_whole(self, text: str) -> str:
        """`text` parsed into a VARIANT when the whole of it is one JSON value; NULL otherwise.
        try_parse_json reads the first value and ignores what follows (`{"a":1}{"b":2}`, `1 x`): the
        text is parsed inside an array whose last element is the text's hash, which the array holds
        there only if the text was exactly one value (a text cannot hold its own hash)."""
        mark = f"xxhash64({text})"
        wrapped = f"try_parse_json(concat('[', {text}, ',', CAST({mark} AS STRING), ']'))"
        return f"CASE WHEN try_variant_get({wrapped}, '$[1]', 'bigint') = {mark} THEN try_variant_get({wrapped}, '$[0]', 'variant') END"

    def parse_json_object(self, text: str, shape: JsonShape) -> str:
        return self._parse_whole(text)  # members are read from the VARIANT by path: the shape is not needed

    def json_document(self, value: str, shape: JsonShape) -> str:
        return f"try_parse_json({value})"

    def json_member_text(self, doc: str, *path: str) -> str:
        # a string's value; any other value's JSON (a VARIANT cast to text)
        return f"try_variant_get({doc}, {self._path(*path)}, 'string')"

    def json_member(self, doc: str, name: str) -> str:
        return f"nullif(to_json(try_variant_get({doc}, {self._path(name)}, 'variant')), 'null')"

    def json_string_object(self, value: str) -> str:
        return f"CASE WHEN startswith({value}, '\"{{') THEN try_variant_get(try_parse_json({value}), '$', 'string') END"

    def json_or_null(self, text: str) -> str:
        return f"CASE WHEN {self._parse_whole(text)} IS NOT NULL THEN {text} END"

    def json_text(self, expr: str, key: str) -> str:
        # a string holding an object is parsed again, without failing
        parsed = f"try_parse_json({expr})"
        inner = self._parse_whole(f"try_variant_get({parsed}, '$', 'string')")
        return (
            f"(CASE WHEN startswith(ltrim({expr}), '\"') THEN try_variant_get({inner}, {self._path(key)}, 'string') "
            f"ELSE try_variant_get({parsed}, {self._path(key)}, 'string') END)"
        )

    def json_keys(self, text: str) -> str:
        # json_object_keys keeps every copy of a key, but reads only a first object: the text must be one value
        return f"CASE WHEN {self._parse_whole(text)} IS NOT NULL THEN json_object_keys({text}) END"

    def json_object_entries(self, doc: str, alias: str) -> str:
        # an object cast to a MAP (anything else to NULL: no rows), each value written back as JSON text
        entries = f"map_entries(try_variant_get(try_parse_json({doc}), '$', 'map<string, variant>'))"
        return f"LATERAL inline(transform({entries}, _optimus_e -> named_struct('key', _optimus_e.key, 'value', to_json(_optimus_e.value)))) AS {alias}"

    def json_value_text(self, value: str) -> str:
        # the JSON text's first character tells its type; an array or object is written again, compact
        first = f"substr(ltrim({value}), 1, 1)"
        return (
            f"(CASE {first} WHEN '\"' THEN try_variant_get(try_parse_json({value}), '$', 'string') WHEN 'n' THEN NULL "
            f"WHEN '[' THEN to_json(try_parse_json({value})) WHEN '{{' THEN to_json(try_parse_json({value})) ELSE {value} END)"
        )

    def repeats_in_list(self, items: str) -> str:
        return f"(array_size({items}) - array_size(array_distinct({items})))"

    # -- numbers and times -----------------------------------------------------------------------
    def whole_number(self, text: str) -> str:
        # DECIMAL(38, 18) holds every 64-bit integer and 18 digits of fraction; round() is half away from zero
        return f"CASE WHEN {self.regex_matches(text, _NUMBER)} THEN try_cast(round(try_cast({text} AS DECIMAL(38, 18))) AS BIGINT) END"

    def microseconds_between(self, later: str, earlier: str) -> str:
        return f"timestampdiff(MICROSECOND, {earlier}, {later})"  # an interval has no EPOCH to extract

    def days_between(self, later: str, earlier: str) -> str:
        return f"datediff({later}, {earlier})"  # a DATE minus a DATE is an INTERVAL on Spark

    def ordered_string_agg(self, expr: str, separator: str, order: str) -> str:
        return f"string_agg({expr}, {self.literal(separator)}) WITHIN GROUP (ORDER BY {order})"

    def inline_cte(self) -> str:
        return ""  # Spark inlines a CTE (and has no MATERIALIZED keyword)

    def _as_duckdb_reads(self, text: str, target: str) -> str:
        """Spark's cast of `text` to `target` where DuckDB reads the text as a time, NULL elsewhere."""
        dashes = self.literal("^([\\t\\n\\f\\r ]*-?[0-9]+)[-/]([0-9]+)[-/]([0-9]+) *")
        other = f"replace(regexp_replace({text}, {dashes}, '$1-$2-$3 '), ' T', 'T')"
        return (
            f"CASE WHEN {self.regex_matches(text, _TIME_FIRST)} THEN try_cast({text} AS {target}) "
            f"WHEN {self.regex_matches(text, _TIME_OTHER)} THEN try_cast({other} AS {target}) "
            f"WHEN {self.regex_matches(text, _EPOCH)} THEN CAST('1970-01-01 00:00:00' AS {target}) END"
        )

    def timestamp_from_text(self, text: str) -> str:
        return self._as_duckdb_reads(text, "TIMESTAMP_NTZ")  # a zone is ignored, as DuckDB's TIMESTAMP does

    def utc_timestamp_from_text(self, text: str) -> str:
        # the instant (TIMESTAMP_LTZ), written as the session's zone (UTC, spark_session.BASE_CONF) sees it
        return f"CAST({self._as_duckdb_reads(text, 'TIMESTAMP_LTZ')} AS TIMESTAMP_NTZ)"

    # -- the edX TSV escapes ---------------------------------------------------------------------
    def split_map_join(self, text: str, separator: str, part: Callable[[str], str], joiner: str) -> str:
        pattern = "".join(c if c.isalnum() else "\\" + c for c in separator)  # the separator, literally, as a regex
        piece = "_optimus_part"
        return f"array_join(transform(split({text}, {self.literal(pattern)}, -1), {piece} -> {part(piece)}), {self.literal(joiner)})"
