"""`optimus export --format edx2bigquery`: person_course as edx2bigquery's table, one file per course.

Analysis code written for edx2bigquery's `person_course` (mitodl/edx2bigquery,
`edx2bigquery/schemas/schema_person_course.json`) reads these files with at most a `WHERE course_id`:
the same column names, in the same order, with the same types (BigQuery STRING, INTEGER, FLOAT,
BOOLEAN, TIMESTAMP as Arrow string, int64, float64, bool, timestamp[us, UTC]).

Each column is looked up by its name in our `person_course`; a column we do not have (yet) is
written NULL. So when a later version adds a column of that name (e.g. `ntranscript`,
`nvideos_total_watched`, `roles_isCCX`), the export fills it in with no change here. Two columns are
converted rather than copied: `course_id` is the `org/course/run` form of the course
(edx2bigquery's form, from our `course_key`), and the certificate dates are text, as in their schema.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from optimus import exports
from optimus.config import Settings
from optimus.services.course_tables import Table, course_file_part, per_course, rows_sql
from optimus.warehouse.base import Warehouse

# schema_person_course.json, in its order: (name, BigQuery type)
SCHEMA: list[tuple[str, str]] = [
    ("course_id", "STRING"),
    ("user_id", "INTEGER"),
    ("username", "STRING"),
    ("registered", "BOOLEAN"),
    ("viewed", "BOOLEAN"),
    ("explored", "BOOLEAN"),
    ("certified", "BOOLEAN"),
    ("completed", "BOOLEAN"),
    ("ip", "STRING"),
    ("cc_by_ip", "STRING"),
    ("countryLabel", "STRING"),
    ("continent", "STRING"),
    ("city", "STRING"),
    ("region", "STRING"),
    ("subdivision", "STRING"),
    ("postalCode", "STRING"),
    ("un_major_region", "STRING"),
    ("un_economic_group", "STRING"),
    ("un_developing_nation", "STRING"),
    ("un_special_region", "STRING"),
    ("latitude", "FLOAT"),
    ("longitude", "FLOAT"),
    ("LoE", "STRING"),
    ("YoB", "INTEGER"),
    ("gender", "STRING"),
    ("grade", "FLOAT"),
    ("passing_grade", "FLOAT"),
    ("start_time", "TIMESTAMP"),
    ("first_event", "TIMESTAMP"),
    ("last_event", "TIMESTAMP"),
    ("nevents", "INTEGER"),
    ("ndays_act", "INTEGER"),
    ("nplay_video", "INTEGER"),
    ("nchapters", "INTEGER"),
    ("nforum_posts", "INTEGER"),
    ("nforum_votes", "INTEGER"),
    ("nforum_endorsed", "INTEGER"),
    ("nforum_threads", "INTEGER"),
    ("nforum_comments", "INTEGER"),
    ("nforum_pinned", "INTEGER"),
    ("roles", "STRING"),
    ("nprogcheck", "INTEGER"),
    ("nproblem_check", "INTEGER"),
    ("nforum_events", "INTEGER"),
    ("mode", "STRING"),
    ("is_active", "INTEGER"),
    ("cert_created_date", "STRING"),
    ("cert_modified_date", "STRING"),
    ("cert_status", "STRING"),
    ("verified_enroll_time", "TIMESTAMP"),
    ("verified_unenroll_time", "TIMESTAMP"),
    ("profile_country", "STRING"),
    ("y1_anomalous", "INTEGER"),
    ("email_domain", "STRING"),
    ("language", "STRING"),
    ("language_download", "INTEGER"),
    ("language_nevents", "INTEGER"),
    ("language_ndiff", "INTEGER"),
    ("ntranscript", "INTEGER"),
    ("nshow_answer", "INTEGER"),
    ("nvideo", "INTEGER"),
    ("nvideos_unique_viewed", "INTEGER"),
    ("nvideos_total_watched", "FLOAT"),
    ("nseq_goto", "INTEGER"),
    ("nseek_video", "INTEGER"),
    ("npause_video", "INTEGER"),
    ("avg_dt", "FLOAT"),
    ("sdv_dt", "FLOAT"),
    ("max_dt", "FLOAT"),
    ("n_dt", "INTEGER"),
    ("sum_dt", "FLOAT"),
    ("roles_isBetaTester", "INTEGER"),
    ("roles_isInstructor", "INTEGER"),
    ("roles_isStaff", "INTEGER"),
    ("roles_isCCX", "INTEGER"),
    ("roles_isFinance", "INTEGER"),
    ("roles_isLibrary", "INTEGER"),
    ("roles_isSales", "INTEGER"),
    ("forumRoles_isAdmin", "INTEGER"),
    ("forumRoles_isCommunityTA", "INTEGER"),
    ("forumRoles_isModerator", "INTEGER"),
    ("forumRoles_isStudent", "INTEGER"),
]

ARROW_TYPES: dict[str, pa.DataType] = {
    "STRING": pa.string(),
    "INTEGER": pa.int64(),
    "FLOAT": pa.float64(),
    "BOOLEAN": pa.bool_(),
    "TIMESTAMP": pa.timestamp("us", tz="UTC"),
}

FOLDER = "edx2bigquery"
# person_course columns edx2bigquery takes from person_enrollment_verified (ours: the Enrollment service's table)
VERIFIED_TIMES = ("verified_enroll_time", "verified_unenroll_time")


def arrow_schema() -> pa.Schema:
    """The export's Arrow schema: edx2bigquery's columns."""
    return pa.schema([pa.field(name, ARROW_TYPES[kind]) for name, kind in SCHEMA])


def missing_columns(wh: Warehouse) -> list[str]:
    """edx2bigquery's columns that our person_course lacks (written NULL); course_id is always derived."""
    ours = set(wh.columns("person_course")) | (set(VERIFIED_TIMES) if wh.table_exists("person_enrollment_verified") else set())
    return [name for name, _ in SCHEMA if name != "course_id" and name not in ours]


def course_table(wh: Warehouse, course_key: str) -> pa.Table:
    """One course's person_course in edx2bigquery's columns and types, ordered by user_id."""
    q = wh.quote
    ours = set(wh.columns("person_course"))
    wanted = [name for name, _ in SCHEMA if name in ours and name != "course_id"]
    picked = ", ".join(f"p.{q(c)}" for c in wanted)
    joined = ""
    if wh.table_exists("person_enrollment_verified"):  # Enrollment's table (docs/tables/enrollment.md), as edx2bigquery joins it
        picked += ", " + ", ".join(f"v.{q(c)}" for c in VERIFIED_TIMES)
        joined = "LEFT JOIN person_enrollment_verified v ON v.course_key = p.course_key AND v.user_id = p.user_id "
        ours |= set(VERIFIED_TIMES)
    sql = f"SELECT {picked} FROM person_course p {joined}WHERE p.course_key = ? ORDER BY p.user_id"
    found = exports.query_table(wh, sql, [course_key])
    n = found.num_rows
    columns: list[pa.Array] = []
    for name, kind in SCHEMA:
        target = ARROW_TYPES[kind]
        if name == "course_id":
            columns.append(pa.array([course_key.replace("+", "/")] * n, pa.string()))
        elif name not in ours:
            columns.append(pa.array([None] * n, target))
        else:
            columns.append(_convert(found.column(name).combine_chunks(), target))
    return pa.Table.from_arrays(columns, schema=arrow_schema())


def _convert(values: pa.Array, target: pa.DataType) -> pa.Array:
    """Our column as edx2bigquery's type: 0/1 flags as booleans, dates as text, timestamps in UTC."""
    if pa.types.is_boolean(target) and not pa.types.is_boolean(values.type):
        return pa.array([None if v is None else v != 0 for v in values.to_pylist()], pa.bool_())
    if pa.types.is_string(target) and pa.types.is_timestamp(values.type):
        return pa.array([_date_text(v) for v in values.to_pylist()], pa.string())
    if pa.types.is_timestamp(target) and pa.types.is_timestamp(values.type) and values.type.tz is None:
        return values.cast(pa.timestamp("us")).cast(target)  # naive values are UTC in the warehouse
    return values.cast(target)


def _date_text(value: datetime | None) -> str | None:
    """A certificate date as edX's MySQL dumps write it (`2024-01-07 10:00:00`, microseconds when there are any)."""
    return None if value is None else value.isoformat(sep=" ")


def _csv_rows(table: pa.Table) -> list[list[Any]]:
    """Rows for the CSV: BOOLEAN as `true`/`false` (BigQuery's CSV form); everything else as exports.write_csv writes it."""
    rows = []
    for row in zip(*[c.to_pylist() for c in table.columns], strict=True) if table.num_columns else []:
        rows.append(["true" if v is True else "false" if v is False else v for v in row])
    return rows


def export(wh: Warehouse, settings: Settings, courses: list[str] | None = None) -> list[Path]:
    """Write person_course per course (all when `courses` is None) in edx2bigquery's form, CSV and Parquet.

    Files: `{export_path}/edx2bigquery/personcourse_{course}_{timestamp}.csv` and `.parquet`, staged and
    published together, as the other exports (the de-identified form is the release: optimus.release).
    """
    keys = courses or [k for (k,) in wh.query("SELECT DISTINCT course_key FROM person_course ORDER BY course_key")]
    stamp = exports.timestamp()

    def write(staged: exports.ExportSet) -> list[str]:
        names: list[str] = []
        for key in keys:
            table = course_table(wh, key)
            names += exports.write_both(staged, f"{FOLDER}/personcourse_{course_file_part(key)}_{stamp}", table, _csv_rows(table))
        return names

    return exports.publish_together(settings.export_path, write)


# -- research tables ------------------------------------------------------------------------------
def cutoff_column(label: str) -> str | None:
    """edx2bigquery's column for a grade label (`make_grading_policy_table.py`, `load_grading_policy`:
    `overall_cutoff_for_` + the label lower-cased, `.`, space and `+` as `_`, `-` as `__`); None when what is
    left is not a plain identifier (a label is data: it never names a column unchecked)."""
    name = "overall_cutoff_for_" + label.lower().replace(".", "_").replace(" ", "_").replace("+", "_").replace("-", "__")
    return name if re.fullmatch(r"[a-z0-9_]{1,120}", name) else None


def grading_policy_table(wh: Warehouse, key: str) -> tuple[pa.Table, list[str]]:
    """A course's grading_policy as edx2bigquery writes it: one row per grader, with one
    `overall_cutoff_for_<label>` column per grade label (ours keeps them in grading_policy_cutoffs), and
    the labels that could not become a column."""
    graders = wh.query_arrow(
        "SELECT course_id, assignment_type, name, fraction_of_overall_grade, short_label, min_count, drop_count "
        "FROM grading_policy WHERE course_key = ? ORDER BY grader_index",
        [key],
    )
    columns = {name: graders.column(name) for name in graders.column_names}
    skipped: list[str] = []
    for label, cutoff in wh.query("SELECT label, cutoff FROM grading_policy_cutoffs WHERE course_key = ? ORDER BY cutoff, label", [key]):
        name = cutoff_column(label)
        if name is None or name in columns:
            skipped.append(label)
            continue
        columns[name] = pa.chunked_array([pa.array([cutoff] * graders.num_rows, pa.float64())])
    return pa.table(columns), skipped


def export_tables(wh: Warehouse, settings: Settings, tables: list[Table], courses: list[str] | None = None) -> tuple[list[Path], list[str]]:
    """Research tables in edx2bigquery's form, per course: their columns without our `course_key` (analysis
    code reads them with at most a `WHERE course_id`), and grading_policy pivoted back to one cut-off column
    per grade label. Files under `{export_path}/edx2bigquery/`; returns them and any note."""
    stamp = exports.timestamp()
    notes: list[str] = []

    def write(staged: exports.ExportSet) -> list[str]:
        names: list[str] = []
        for table, key in per_course(wh, tables, courses):
            if table.name == "grading_policy":
                data, skipped = grading_policy_table(wh, key)
                notes.extend(f"{key}: grade label {label!r} has no edx2bigquery column name; left out" for label in skipped)
            else:
                data = wh.query_arrow(rows_sql(wh, table, leave_out=("course_key",)), [key])
            names += exports.write_both(staged, f"{FOLDER}/{table.name}_{course_file_part(key)}_{stamp}", data, _csv_rows(data))
        return names

    return exports.publish_together(settings.export_path, write), notes
