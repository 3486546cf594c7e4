"""EmailCRM: the email opt-in list, and the CRM export of learners' course status.

Claims `{org}-email_opt_in-{site}-analytics.csv` (both header versions: since 2017 it starts with
user_id,username) and loads it into `email_opt_in` (a newer file replaces its org's rows; bad lines
go to `email_opt_in_quarantine`). Then writes `EXPORT_PATH/emailcrm_{timestamp}.csv`: one row per
learner and course of the opt-in list that Person Course has, with the original's columns and
labels (REFERENCE §1.5); the file is staged and appears once the run commits (optimus.exports). In delta mode (the default) only learners whose viewed, explored or
certified changed since the previous export are written (a learner-course never exported before
counts as changed); the state at each export is kept in `email_crm_last`, the exports themselves in
`email_crm_exports` (the previous one is found by time). It exports when an opt-in file was loaded
or an upstream service changed a course since the last export (or on `optimus recompute`); when
no learner's status changed, the file has the header only, so every export run leaves a file. The
record of an export (`email_crm_exports`, `email_crm_last`) commits in the run's transaction and the
file is published only after that commit, so each change is exported exactly once, even when a run
is killed. The file holds personal data: mode 0600; logs name its path, never its contents.
Needs PersonCourse and DatabaseState (auth_user, auth_userprofile, student_courseenrollment);
`courses` (CourseStructure) gives course names and start dates when present.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.csv as pacsv

from optimus import courses, discovery, exports, geo
from optimus.errors import IngestError
from optimus.ledger import LedgerFile, utcnow
from optimus.services.base import FileResult, RunContext, Service, register
from optimus.warehouse.base import Warehouse, raw_table

log = logging.getLogger("optimus")

OPT_IN_COLUMNS = ["user_id", "username", "email", "full_name", "course_id", "is_opted_in_for_email", "preference_set_datetime"]
REQUIRED = {"email", "full_name", "course_id", "is_opted_in_for_email", "preference_set_datetime"}
EXPORT_COLUMNS = [
    "user_id",
    "is_staff",
    "is_active",
    "email",
    "viewed",
    "explored",
    "certified",
    "mode",
    "first_name",
    "last_name",
    "course_id",
    "course_name",
    "course_start_date",
    "enrolled",
    "is_opted_in_for_email",
    "gender",
    "year_of_birth",
    "level_of_education",
    "level_of_education_label",
    "country_name",
]
EDUCATION = {
    "p": "Doctorate",
    "p_se": "Doctorate in science or engineering",
    "p_oth": "Doctorate in another field",
    "a": "Associate degree",
    "b": "Bachelors degree",
    "m": "Masters or professional degree",
    "hs": "Secondary/high school",
    "jhs": "Junior secondary/junior high/middle school",
    "el": "Elementary/primary school",
    "none": "No formal education",
    "other": "Other education",
}
GENDER = {"m": "Male", "f": "Female", "o": "Other"}
MIN_AGE = 15  # younger learners are exported as not opted in


@register
class EmailCRM(Service):
    name = "EmailCRM"
    claims = (discovery.EMAIL_OPT_IN,)
    needs = ("PersonCourse", "DatabaseState")
    writes = {"email_opt_in": "frozen", "email_opt_in_quarantine": "frozen", "email_crm_exports": "frozen", "email_crm_last": "frozen"}

    def setup(self, wh: Warehouse) -> None:
        wh.execute(
            "CREATE TABLE IF NOT EXISTS email_opt_in (org VARCHAR NOT NULL, site VARCHAR NOT NULL, user_id BIGINT, username VARCHAR, "
            "email VARCHAR, full_name VARCHAR, course_id VARCHAR NOT NULL, course_key VARCHAR NOT NULL, is_opted_in_for_email BOOLEAN NOT NULL, "
            "preference_set_datetime TIMESTAMP, package_date DATE, file_id BIGINT NOT NULL, line BIGINT NOT NULL)"
        )
        wh.execute(
            "CREATE TABLE IF NOT EXISTS email_opt_in_quarantine (file_id BIGINT NOT NULL, path VARCHAR NOT NULL, line BIGINT, "
            "reason VARCHAR NOT NULL, raw VARCHAR)"
        )
        wh.execute("CREATE SEQUENCE IF NOT EXISTS email_crm_exports_id")
        wh.execute(
            "CREATE TABLE IF NOT EXISTS email_crm_exports (id BIGINT PRIMARY KEY DEFAULT nextval('email_crm_exports_id'), "
            "path VARCHAR NOT NULL, mode VARCHAR NOT NULL, rows BIGINT NOT NULL, learners BIGINT NOT NULL, exported_at TIMESTAMP NOT NULL, "
            "run_id BIGINT)"
        )
        wh.execute(
            "CREATE TABLE IF NOT EXISTS email_crm_last (user_id BIGINT NOT NULL, course_key VARCHAR NOT NULL, viewed INTEGER, "
            "explored INTEGER, certified INTEGER, export_id BIGINT NOT NULL, PRIMARY KEY (user_id, course_key))"
        )

    # -- the opt-in file -----------------------------------------------------------------------
    def ingest(self, wh: Warehouse, file: LedgerFile, ctx: RunContext) -> FileResult:
        org, site = file.org or file.path.name.split("-", 1)[0], file.site or "prod"
        loaded = wh.scalar("SELECT max(package_date) FROM email_opt_in WHERE org = ? AND site = ?", [org, site])
        if loaded and file.package_date and file.package_date < loaded:
            return FileResult(0, 0, f"package {file.package_date} is older than the loaded {loaded}; not loaded")
        table, bad = read_opt_in(file.path)
        wh.execute("DELETE FROM email_opt_in_quarantine WHERE file_id = ?", [file.id])
        wh.executemany(
            "INSERT INTO email_opt_in_quarantine (file_id, path, line, reason, raw) VALUES (?, ?, ?, ?, ?)",
            [[file.id, str(file.path), line, reason, raw] for line, reason, raw in bad],
        )
        staging = f"_opt_in_{file.id}"
        q = wh.quote
        wh.execute(f"DROP TABLE IF EXISTS {q(staging)}")
        wh.execute(f"CREATE TEMP TABLE {q(staging)} ({', '.join(f'{q(n)} VARCHAR' for n in table.column_names[:-1])}, _line BIGINT)")
        wh.load_arrow(staging, table)
        ts = wh.try_cast_sql("NULLIF(preference_set_datetime, '')", "TIMESTAMP")
        uid = wh.try_cast_sql("NULLIF(user_id, '')", "BIGINT")
        flag = "lower(trim(is_opted_in_for_email))"
        invalid = (
            f"CASE WHEN course_key IS NULL THEN 'course_id is not a course id' "
            f"WHEN {flag} NOT IN ('true', 'false', '1', '0') THEN 'is_opted_in_for_email is not True or False' "
            f"WHEN NULLIF(preference_set_datetime, '') IS NOT NULL AND {ts} IS NULL THEN 'preference_set_datetime is not a date and time' "
            f"WHEN NULLIF(user_id, '') IS NOT NULL AND {uid} IS NULL THEN 'user_id is not a number' END"
        )
        raw = "concat_ws(',', " + ", ".join(f"coalesce({q(c)}, '')" for c in OPT_IN_COLUMNS) + ")"
        wh.execute(
            f"INSERT INTO email_opt_in_quarantine (file_id, path, line, reason, raw) SELECT ?, ?, _line, {invalid}, {raw} "
            f"FROM {q(staging)} WHERE {invalid} IS NOT NULL",
            [file.id, str(file.path)],
        )
        wh.execute("DELETE FROM email_opt_in WHERE org = ? AND site = ?", [org, site])
        wh.execute(
            "INSERT INTO email_opt_in (org, site, user_id, username, email, full_name, course_id, course_key, is_opted_in_for_email, "
            f"preference_set_datetime, package_date, file_id, line) SELECT ?, ?, {uid}, NULLIF(username, ''), NULLIF(trim(email), ''), "
            f"NULLIF(trim(full_name), ''), trim(course_id), course_key, {flag} IN ('true', '1'), {ts}, ?, ?, _line "
            f"FROM {q(staging)} WHERE {invalid} IS NULL",
            [org, site, file.package_date, file.id],
        )
        wh.execute(f"DROP TABLE {q(staging)}")  # on failure, the file's rollback removes it
        rows = int(wh.scalar("SELECT count(*) FROM email_opt_in WHERE file_id = ?", [file.id]))
        quarantined = int(wh.scalar("SELECT count(*) FROM email_opt_in_quarantine WHERE file_id = ?", [file.id]))
        ctx.wrote(rows)
        return FileResult(rows, quarantined)

    # -- the export ----------------------------------------------------------------------------
    def run(self, wh: Warehouse, ctx: RunContext) -> int:
        if not wh.table_exists("person_course"):
            ctx.progress.note("EmailCRM: no person_course table yet; nothing exported")
            return 0
        if not wh.scalar("SELECT count(*) FROM email_opt_in"):
            return 0
        if self.recompute is None and wh.scalar("SELECT count(*) FROM email_crm_exports") and not self._inputs_changed(wh, ctx):
            ctx.progress.note("EmailCRM: no new opt-in file and no change in Person Course or Database State; nothing exported")
            return 0
        now = utcnow()
        full = self.settings.email_crm_mode == "full"
        export_id = int(wh.scalar("SELECT nextval('email_crm_exports_id')"))
        # with only a birth year, a learner is taken as old enough only when certainly MIN_AGE today.
        # Temporary tables are dropped on success; on failure the run's rollback removes them.
        wh.execute("DROP TABLE IF EXISTS _crm_current")
        wh.execute("CREATE TEMP TABLE _crm_current AS " + current_sql(wh), [now.year - MIN_AGE - 1])
        changed = (
            "SELECT c.* FROM _crm_current c LEFT JOIN email_crm_last l ON l.user_id = c.user_id AND l.course_key = c.course_key "
            "WHERE ? OR l.user_id IS NULL OR l.viewed IS DISTINCT FROM c.viewed OR l.explored IS DISTINCT FROM c.explored "
            "OR l.certified IS DISTINCT FROM c.certified ORDER BY c.course_id, c.user_id"
        )
        rows = wh.query_dicts(changed, [full])
        # staged, and published by the pipeline only once this run commits with the record below: a
        # run killed before its commit leaves no file and no record, and the rerun writes the delta once
        name = f"emailcrm_{exports.timestamp(now)}.csv"
        staged = ctx.exports.path(name) if ctx.exports is not None else None
        if staged is None:
            raise RuntimeError("EmailCRM runs inside the pipeline, which gives it the run's export set")
        path = Path(self.settings.export_path) / name
        written = exports.write_csv(staged, EXPORT_COLUMNS, (_export_row(r) for r in rows))
        wh.execute(
            "INSERT INTO email_crm_exports (id, path, mode, rows, learners, exported_at, run_id) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [export_id, str(path), "full" if full else "delta", written, len({r["user_id"] for r in rows}), now, ctx.run_id],
        )
        wh.execute("DELETE FROM email_crm_last")
        wh.execute(
            "INSERT INTO email_crm_last (user_id, course_key, viewed, explored, certified, export_id) "
            "SELECT user_id, course_key, viewed, explored, certified, ? FROM _crm_current",
            [export_id],
        )
        wh.execute("DROP TABLE _crm_current")
        log.info("EmailCRM wrote %s (%d rows, %s mode)", path, written, "full" if full else "delta")
        ctx.progress.note(f"EmailCRM wrote {path}")
        return written

    def _inputs_changed(self, wh: Warehouse, ctx: RunContext) -> bool:
        """An opt-in file loaded in this run, or a course changed upstream since the last export."""
        loaded = wh.scalar("SELECT count(*) FROM ingest_files WHERE service = ? AND run_id = ? AND state = 'done'", [self.name, ctx.run_id])
        return bool(loaded) or bool(ctx.changes())


def read_opt_in(path: Path) -> tuple[pa.Table, list[tuple[int | None, str, str]]]:
    """The opt-in CSV as all-text columns (both header versions) plus `_line`, and the lines that do not parse."""
    with open(path, "rb") as fh:
        first = fh.readline().decode("utf-8-sig", errors="replace")
    header = [h.strip().strip('"').lower() for h in first.strip().split(",")]
    missing = REQUIRED - set(header)
    if not first.strip() or missing:
        raise IngestError(f"{path} line 1: not an email opt-in header (missing {', '.join(sorted(missing))})")
    bad: list[tuple[int | None, str, str]] = []

    def skip(row: pacsv.InvalidRow) -> Literal["skip"]:
        bad.append((row.number, f"expected {row.expected_columns} fields, found {row.actual_columns}", row.text[:2000]))
        return "skip"

    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(use_threads=False, column_names=header, skip_rows=1, encoding="utf8"),
            parse_options=pacsv.ParseOptions(invalid_row_handler=skip, newlines_in_values=True),
            convert_options=pacsv.ConvertOptions(column_types={h: pa.string() for h in header}, strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise IngestError(f"{path}: cannot read as an email opt-in CSV: {exc}") from None
    # line numbers of the rows kept: 2 for the first data row, shifted by each skipped row before it
    skipped = sorted(n for n, _r, _t in bad if n is not None)
    lines, k = [], 0
    for i in range(table.num_rows):
        line = i + 2 + k
        while k < len(skipped) and skipped[k] <= line:
            k += 1
            line = i + 2 + k
        lines.append(line)
    cache: dict[str | None, str | None] = {}
    keys = []
    for course_id in table.column("course_id").to_pylist():
        if course_id not in cache:
            cache[course_id] = courses.course_key(course_id)
        keys.append(cache[course_id])
    columns: dict[str, pa.Array | pa.ChunkedArray] = {
        name: (table.column(name) if name in header else pa.array([""] * table.num_rows, pa.string())) for name in OPT_IN_COLUMNS
    }
    columns["course_key"] = pa.array(keys, pa.string())
    columns["_line"] = pa.array(lines, pa.int64())
    return pa.table(columns), bad


def current_sql(wh: Warehouse) -> str:
    """Every learner-course of the opt-in list that Person Course has, once, with the export's values.

    One parameter: the latest birth year of learners old enough to opt in; later ones are forced to 'No'.
    """
    q = wh.quote
    name = "coalesce(o.full_name, NULLIF(trim(up.name), ''), '')"
    education = " ".join(f"WHEN '{code}' THEN '{label}'" for code, label in EDUCATION.items())
    gender = " ".join(f"WHEN '{code}' THEN '{word}'" for code, word in GENDER.items())
    user = _latest(wh, "auth_user", ["id", "email", "is_staff", "is_active"], ["course_key", "id"])
    profile = _latest(
        wh, "auth_userprofile", ["user_id", "name", "gender", "year_of_birth", "level_of_education", "country"], ["course_key", "user_id"]
    )
    enrolment = _latest(wh, "student_courseenrollment", ["user_id", "is_active"], ["course_key", "user_id"])
    course = _latest(wh, "courses", ["display_name", "start_date"], ["course_key"], provenance=False)
    return f"""
        WITH opt AS (
            SELECT o.*, coalesce(o.user_id, au.id) AS uid FROM email_opt_in o
            LEFT JOIN {user} au ON o.user_id IS NULL AND au.course_key = o.course_key AND lower(au.email) = lower(o.email)
        ), pref AS (
            SELECT opt.*, row_number() OVER (PARTITION BY uid, course_key
                ORDER BY preference_set_datetime DESC NULLS LAST, package_date DESC NULLS LAST, file_id DESC, line DESC) AS rn
            FROM opt WHERE uid IS NOT NULL
        ), pc AS (
            SELECT p.*, row_number() OVER (PARTITION BY p.course_key, p.user_id ORDER BY p.course_id) AS rn FROM person_course p
        )
        SELECT pc.user_id, pc.course_key, pc.course_id,
            CAST(pc.viewed AS INTEGER) AS viewed, CAST(pc.explored AS INTEGER) AS explored, CAST(pc.certified AS INTEGER) AS certified,
            pc.{q("mode")} AS mode,
            CASE WHEN au.is_staff THEN 'Yes' ELSE 'No' END AS is_staff,
            CASE WHEN au.is_active THEN 1 WHEN au.is_active IS NULL THEN NULL ELSE 0 END AS is_active,
            coalesce(o.email, au.email) AS email,
            CASE WHEN strpos({name}, ' ') > 0 THEN substr({name}, 1, strpos({name}, ' ') - 1) ELSE {name} END AS first_name,
            CASE WHEN strpos({name}, ' ') > 0 THEN trim(substr({name}, strpos({name}, ' ') + 1)) ELSE '' END AS last_name,
            c.display_name AS course_name, CAST(c.start_date AS DATE) AS course_start_date,
            CASE WHEN e.is_active THEN 'Yes' ELSE 'No' END AS enrolled,
            CASE WHEN up.year_of_birth > ? THEN 'No' WHEN o.is_opted_in_for_email THEN 'Yes' ELSE 'No' END AS is_opted_in_for_email,
            CASE lower(up.gender) {gender} ELSE '' END AS gender,
            up.year_of_birth, coalesce(up.level_of_education, '') AS level_of_education,
            CASE lower(up.level_of_education) {education} ELSE 'Not specified' END AS level_of_education_label,
            up.country AS profile_country
        FROM pc JOIN pref o ON o.rn = 1 AND o.uid = pc.user_id AND o.course_key = pc.course_key
        LEFT JOIN {user} au ON au.course_key = pc.course_key AND au.id = pc.user_id
        LEFT JOIN {profile} up ON up.course_key = pc.course_key AND up.user_id = pc.user_id
        LEFT JOIN {enrolment} e ON e.course_key = pc.course_key AND e.user_id = pc.user_id
        LEFT JOIN {course} c ON c.course_key = pc.course_key
        WHERE pc.rn = 1
    """


def _latest(wh: Warehouse, table: str, columns: list[str], keys: list[str], provenance: bool = True) -> str:
    """One row per key of a Database State table (prod before edge, newest package first); an empty
    table of the same shape when the table is not there, so the export still runs."""
    q = wh.quote
    wanted = list(dict.fromkeys(keys + columns))
    schema = wh.raw_schema if provenance else None  # Database State's tables are raw edX tables
    if not wh.table_exists(table, schema=schema) or not set(wanted) <= set(wh.columns(table, schema=schema)):
        nulls = ", ".join(
            f"CAST(NULL AS {'BIGINT' if c in ('id', 'user_id', 'year_of_birth') else 'BOOLEAN' if c.startswith('is_') else 'TIMESTAMP' if c == 'start_date' else 'VARCHAR'}) AS {q(c)}"
            for c in wanted
        )
        return f"(SELECT {nulls} WHERE 1 = 0)"
    order = "CASE WHEN site = 'prod' THEN 0 ELSE 1 END, package_date DESC NULLS LAST" if provenance else "1"
    cols = ", ".join(q(c) for c in wanted)
    partition = ", ".join(q(k) for k in keys)
    return f"(SELECT {cols} FROM (SELECT {cols}, row_number() OVER (PARTITION BY {partition} ORDER BY {order}) AS _rn FROM {raw_table(wh, table) if provenance else q(table)}) x WHERE _rn = 1)"


def _export_row(row: dict) -> list[object]:
    """One CSV row: the country code of the profile becomes its name (from the table shipped with Optimus)."""
    values = dict(row)
    values["country_name"] = geo.country_name(row.get("profile_country")) or ""
    return [values.get(c) for c in EXPORT_COLUMNS]
