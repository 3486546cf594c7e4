"""PersonCourse: `person_course` (one row per course and learner) and `course_profile` (one per course).

Reads the Database State tables, `events` (learners resolved as in TimeFinder),
`person_course_day` (time on course), `forum_posts`, `courses`/`course_blocks` and `ip_geo`
when they exist. Needs IPToCountry, TimeFinder and DatabaseState. Every column's rule is in
docs/person_course.md. Only courses whose inputs changed are recomputed, each replaced in the
run's transaction; then their exports are written (`personcourse_{course}_{timestamp}.csv` and
`.parquet`, `courseprofile_{timestamp}.csv` and `.parquet`).
"""

from __future__ import annotations

from pathlib import Path

from optimus import exports
from optimus.config import Settings
from optimus.services.base import RunContext, Service, register
from optimus.services.course_tables import all_courses, conform_columns, course_file_part, create_table
from optimus.services.learner_events import scope_table
from optimus.services.person_course_sql import CP_COLUMNS, PC_COLUMNS, course_profile_insert, person_course_insert
from optimus.warehouse.base import Warehouse


@register
class PersonCourse(Service):
    name = "PersonCourse"
    # the original's three needs, plus the forum and course-structure tables it reads (nforum_*,
    # explored), so that a new forum dump or course export recomputes its course too
    needs = ("IPToCountry", "TimeFinder", "DatabaseState", "DiscussionForums", "CourseStructure")
    writes = {"person_course": "frozen", "course_profile": "frozen"}
    # 2: avg_dt, sdv_dt, sum_dt from exact microsecond sums
    # 3 (issue 16): viewed (courseware access), nchapters over visited chapters (studentmodule, URLs, block
    # ancestry; NULL when none), counts without /xblock/ calls; the video, problem-check, role and completion
    # rules; course_profile among registered learners
    # 4 (issue 16): visited chapters also from edx.ui.lms.outline.* payloads (the chapter of a /courseware/
    #   target_url, or of the block-v1 usage key in the Learning MFE's target_url)
    rules_version = 4

    def setup(self, wh: Warehouse) -> None:
        for table, columns in (("person_course", PC_COLUMNS), ("course_profile", CP_COLUMNS)):
            create_table(wh, table, columns)
            conform_columns(wh, table, columns)

    def run(self, wh: Warehouse, ctx: RunContext) -> int:
        scope = sorted(self._scope(wh, ctx))
        if not scope:
            return 0
        scope_table(wh, "_pc_scope", {"course_key": "VARCHAR"}, [[k] for k in scope])
        try:
            wh.execute("DELETE FROM person_course WHERE course_key IN (SELECT course_key FROM _pc_scope)")
            wh.execute("DELETE FROM course_profile WHERE course_key IN (SELECT course_key FROM _pc_scope)")
            wh.execute(person_course_insert(wh), [self.rules_version])
            rows = int(wh.scalar("SELECT count(*) FROM person_course WHERE course_key IN (SELECT course_key FROM _pc_scope)"))
            wh.execute(course_profile_insert(wh), [self.rules_version])
        finally:
            wh.execute("DROP TABLE IF EXISTS _pc_scope")
        ctx.touch_many((k, None) for k in scope)
        ctx.wrote(rows)
        written = export(wh, self.settings, scope, into=ctx.exports)
        ctx.progress.note(f"person_course: {rows} rows in {len(scope)} course(s); {len(written)} export file(s)")
        return rows

    def _scope(self, wh: Warehouse, ctx: RunContext) -> set[str]:
        if (
            self.recompute == "all"
            or ctx.last_run_started is None
            or bool(
                wh.scalar(
                    "SELECT (SELECT count(*) FROM person_course WHERE rules_version <> ?) + "
                    "(SELECT count(*) FROM course_profile WHERE rules_version <> ?)",
                    [self.rules_version, self.rules_version],
                )
            )
        ):
            return all_courses(wh, ("person_course", "course_profile"))
        if isinstance(self.recompute, set):
            return set(self.recompute)
        scope = ctx.changed_courses()
        if wh.table_exists("ip_geo") and "looked_up_at" in wh.columns("ip_geo"):
            # IPs placed since the last run change the geography of the learners whose modal IP they are
            scope |= {
                k
                for (k,) in wh.query(
                    "SELECT DISTINCT p.course_key FROM person_course p JOIN ip_geo g ON g.ip = p.ip WHERE g.looked_up_at >= ?",
                    [ctx.last_run_started],
                )
            }
        return scope


def export(wh: Warehouse, settings: Settings, courses: list[str] | None = None, into: exports.ExportSet | None = None) -> list[Path]:
    """Write person_course per course (all when `courses` is None) and course_profile, as CSV and Parquet.

    (The de-identified copy is the release of optimus.release: `optimus release`, `optimus export --deidentified`.)
    :param into: the run's export set (published when the run commits); without one (`optimus
        export`) the files are staged in a set of their own and published at the end, all together.
    """
    q = wh.quote
    if courses is None:
        courses = [k for (k,) in wh.query("SELECT DISTINCT course_key FROM person_course ORDER BY course_key")]
    stamp = exports.timestamp()
    own = into is None
    staged = into if into is not None else exports.ExportSet(settings.export_path, exports.set_name("export"))
    columns = [c for c in PC_COLUMNS if c not in ("rules_version", "computed_at")]
    sql = f"SELECT {', '.join('p.' + q(c) for c in columns)} FROM person_course p WHERE p.course_key = ? ORDER BY p.user_id"
    names: list[str] = []
    try:
        for key in courses:
            names += exports.export_query(wh, sql, [key], staged, f"personcourse_{course_file_part(key)}_{stamp}")
        profile = ", ".join(q(c) for c in CP_COLUMNS if c not in ("rules_version", "computed_at"))
        names += exports.export_query(wh, f"SELECT {profile} FROM course_profile ORDER BY course_key", [], staged, f"courseprofile_{stamp}")
        if own:
            staged.seal()
            staged.publish()
    except BaseException:
        if own:
            staged.discard()
        raise
    return [Path(settings.export_path) / n for n in names]
