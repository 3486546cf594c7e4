"""Derived tables kept per course: the frame every research table (videos, problems, time on task,
course axis, grades, enrolment, forum activity) is built in, so that each of those services only says
what it reads and how one table's rows are computed.

A `CourseTables` service declares its `tables` (name, columns, whether a row is about one learner)
and a `dictionary` (the docs file that gives every column its rule). For each run the frame works
out which courses to rebuild (every course on the first run, after a rules change or on `optimus
recompute`; otherwise the courses its inputs changed), then, in the run's transaction and in the
declared order (a later table may read an earlier one), deletes those courses' rows of each table
and lets the service insert them again with one `INSERT ... SELECT` that reads the scope table
(`SCOPE`: one `course_key` column). A second run with no new input recomputes nothing.

Every table has `course_key` (ours, `org+course+run`: what courses are replaced by) and, when it
copies an edx2bigquery table, `course_id` in edx2bigquery's `org/course/run` form (`course_id_sql`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from optimus import exports
from optimus.config import Settings
from optimus.errors import OptimusError
from optimus.services.base import RunContext, Service
from optimus.services.learner_events import scope_table, source
from optimus.warehouse.base import Warehouse

SCOPE = "_course_scope"
IN_SCOPE = f"course_key IN (SELECT course_key FROM {SCOPE})"


@dataclass(frozen=True)
class Table:
    """One derived table kept per course.

    :param columns: column -> portable SQL type (VARCHAR, BIGINT, INTEGER, DOUBLE PRECISION, BOOLEAN,
        TIMESTAMP, DATE); must hold `course_key`.
    :param personal: a row is about one learner (it has a user id or username): the API serves it only
        with the token, and de-identified exports leave it out.
    :param order_by: the order rows are served and exported in.
    """

    name: str
    columns: dict[str, str]
    personal: bool = False
    order_by: tuple[str, ...] = ("course_key",)

    def __post_init__(self) -> None:
        if "course_key" not in self.columns:
            raise ValueError(f"table {self.name} has no course_key column")


def course_id_sql(course_key: str = "course_key") -> str:
    """edx2bigquery's `course_id` (`org/course/run`) of a course_key expression (`org+course+run`)."""
    return f"replace({course_key}, '+', '/')"


class CourseTables(Service):
    """Base of the services whose tables are rebuilt course by course (see the module docstring)."""

    tables: ClassVar[tuple[Table, ...]] = ()
    # the data dictionary giving every column of `tables` its rule and reference (tests check it names each)
    dictionary: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.tables:
            cls.writes = {t.name: "frozen" for t in cls.tables}

    def build(self, wh: Warehouse, table: Table) -> None:
        """Insert the rows of `table` for the courses in `SCOPE` (their old rows are already deleted)."""
        raise NotImplementedError(f"{self.name} does not build {table.name}")

    def setup(self, wh: Warehouse) -> None:
        for table in self.tables:
            create_table(wh, table.name, table.columns)
            conform_columns(wh, table.name, table.columns)

    def run(self, wh: Warehouse, ctx: RunContext) -> int:
        scope = sorted(self.scope(wh, ctx))
        if not scope:
            return 0
        scope_table(wh, SCOPE, {"course_key": "VARCHAR"}, [[k] for k in scope])
        counts: dict[str, int] = {}
        try:
            for table in self.tables:
                wh.execute(f"DELETE FROM {wh.quote(table.name)} WHERE {IN_SCOPE}")
                self.build(wh, table)
                counts[table.name] = int(wh.scalar(f"SELECT count(*) FROM {wh.quote(table.name)} WHERE {IN_SCOPE}") or 0)
        finally:
            wh.execute(f"DROP TABLE IF EXISTS {SCOPE}")
        ctx.touch_many((k, None) for k in scope)
        rows = sum(counts.values())
        ctx.wrote(rows)
        ctx.progress.note(f"{', '.join(f'{n}: {c}' for n, c in counts.items())} rows in {len(scope)} course(s)")
        return rows

    def scope(self, wh: Warehouse, ctx: RunContext) -> set[str]:
        """The courses to rebuild in this run."""
        if self.recompute == "all" or ctx.last_run_started is None or self._rules_changed(wh):
            return all_courses(wh, [t.name for t in self.tables])
        if isinstance(self.recompute, set):
            return set(self.recompute)
        return ctx.changed_courses()

    def _rules_changed(self, wh: Warehouse) -> bool:
        last = wh.query("SELECT rules_version FROM service_runs WHERE service = ? AND status = 'ok' ORDER BY id DESC LIMIT 1", [self.name])
        return bool(last) and last[0][0] != self.rules_version


def course_file_part(course_key: str) -> str:
    """`org+course+run` -> `org-course-run`, the original's per-course file-name form."""
    return exports.safe_name(course_key.replace("+", "-"))


def create_table(wh: Warehouse, name: str, columns: dict[str, str]) -> None:
    cols = ", ".join(f"{wh.quote(c)} {t}" for c, t in columns.items())
    wh.execute(f"CREATE TABLE IF NOT EXISTS {wh.quote(name)} ({cols})")


def conform_columns(wh: Warehouse, table: str, columns: dict[str, str]) -> None:
    """Give a table made by an older rules version today's columns: add the new ones, drop the
    retired ones (a renamed role flag, say). The next run (rules changed) recomputes every course."""
    have = wh.columns(table)
    for name, sql_type in columns.items():
        if name not in have:
            wh.execute(f"ALTER TABLE {wh.quote(table)} ADD COLUMN {wh.quote(name)} {sql_type.replace(' NOT NULL', '')}")
    for name in have:
        if name not in columns:
            wh.execute(f"ALTER TABLE {wh.quote(table)} DROP COLUMN {wh.quote(name)}")


def all_courses(wh: Warehouse, own: list[str] | tuple[str, ...] = ()) -> set[str]:
    """Every course with learners, events, certificates or a structure, and every course in the
    service's own tables (`own`), so that a course whose inputs are gone is emptied too."""
    parts = [
        f"SELECT course_key FROM {source(wh, t)} x" for t in ("student_courseenrollment", "certificates_generatedcertificate", "courses")
    ]
    parts.append(f"SELECT DISTINCT course_key FROM {source(wh, 'events')} x")
    parts += [f"SELECT course_key FROM {wh.quote(t)}" for t in own if wh.table_exists(t)]
    sql = " UNION ".join(parts)
    return {k for (k,) in wh.query(f"SELECT DISTINCT course_key FROM ({sql}) u WHERE course_key IS NOT NULL")}


def per_course(wh: Warehouse, tables: list[Table], courses: list[str] | None) -> Iterator[tuple[Table, str]]:
    """Each built table with each of the given courses (default: every course it holds), for an export."""
    for table in tables:
        if wh.table_exists(table.name):
            keys = courses or [
                k for (k,) in wh.query(f"SELECT DISTINCT course_key FROM {wh.quote(table.name)} ORDER BY course_key NULLS LAST")
            ]
            yield from ((table, key) for key in keys)


def rows_sql(wh: Warehouse, table: Table, leave_out: tuple[str, ...] = ()) -> str:
    """One course's rows of a table (parameter: the course_key), in its declared order."""
    cols = ", ".join(wh.quote(c) for c in table.columns if c not in leave_out)
    order = ", ".join(f"{wh.quote(c)} NULLS LAST" for c in table.order_by)  # Spark puts NULLs first otherwise
    return f"SELECT {cols} FROM {wh.quote(table.name)} WHERE course_key = ? ORDER BY {order}"


def export_tables(
    wh: Warehouse, settings: Settings, tables: list[Table], courses: list[str] | None = None, deidentified: bool = False
) -> list[Path]:
    """Write each table's rows per course as CSV and Parquet (`{table}_{org-course-run}_{timestamp}`),
    all published together. A de-identified export has no per-learner table: asking for one is an error."""
    personal = [t.name for t in tables if t.personal]
    if deidentified and personal:
        raise OptimusError(f"{', '.join(personal)} hold one row per learner: there is no de-identified copy of them")
    stamp = exports.timestamp()

    def write(staged: exports.ExportSet) -> list[str]:
        names: list[str] = []
        for table, key in per_course(wh, tables, courses):
            base = f"{'deidentified/' if deidentified else ''}{table.name}_{course_file_part(key)}_{stamp}"
            names += exports.export_query(wh, rows_sql(wh, table), [key], staged, base)
        return names

    return exports.publish_together(settings.export_path, write)
