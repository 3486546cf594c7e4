"""recompute, export: rebuild derived tables on demand, and write the Person Course exports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from optimus import courses
from optimus.cli import render
from optimus.cli.common import ConfigOption, app, errors_as_messages, fail, load_settings, warehouse
from optimus.cli.session import open_session


@app.command()
def recompute(
    service: str | None = typer.Option(
        None,
        "--service",
        "-s",
        help="Recompute only this derived service (default: every one that can, e.g. IPToCountry, TimeFinder, PersonCourse).",
    ),
    course: str | None = typer.Option(None, "--course", help="Only this course (either id form); default: every course."),
    cfg: Path | None = ConfigOption,
) -> None:
    """Recompute derived tables now, whole, whether or not their inputs changed."""
    settings = load_settings(cfg)
    key = None
    if course is not None:
        key = courses.course_key(course)
        if key is None:
            fail(f"--course {course!r} is not a course id (use course-v1:org+course+run or org/course/run)")
    with errors_as_messages():
        summary = open_session(settings, render.notices()).recompute(service, key)
    render.recompute(summary)
    if summary.failed:
        raise typer.Exit(1)


@app.command()
def export(
    deidentified: bool = typer.Option(
        False,
        "--deidentified",
        help="The de-identified research release (as 'optimus release' with its defaults) in {export_path}/deidentified/release_{timestamp}/.",
    ),
    course: str | None = typer.Option(None, "--course", help="Only this course's person_course (either id form)."),
    export_format: str = typer.Option(
        "optimus",
        "--format",
        help=(
            "optimus: our person_course and course_profile; edx2bigquery: person_course with edx2bigquery's columns, order and "
            "types (with --table: the tables without our course_key, grading_policy with a column per grade cut-off)."
        ),
    ),
    table: list[str] = typer.Option(
        [],
        "--table",
        help="Write this research table instead (per course; repeat for more; 'all' for every one; GET /api/v1/tables lists them).",
    ),
    cfg: Path | None = ConfigOption,
) -> None:
    """Write person_course (per course) and course_profile, or the research tables asked for with --table,
    to the export path as CSV and Parquet (mode 0600)."""
    from optimus import edx2bigquery
    from optimus.services import research_tables
    from optimus.services.course_tables import export_tables
    from optimus.services.person_course import export as write_exports

    if export_format not in ("optimus", "edx2bigquery"):
        fail(f"--format {export_format!r}: use optimus or edx2bigquery")
    known = research_tables()
    unknown = [t for t in table if t != "all" and t not in known]
    if unknown:
        fail(f"--table {', '.join(unknown)}: no such research table (known: {', '.join(sorted(known)) or 'none'})")
    settings = load_settings(cfg)
    keys = None
    if course is not None:
        key = courses.course_key(course)
        if key is None:
            fail(f"--course {course!r} is not a course id")
        keys = [key]
    if deidentified and not table:
        deidentified_release(settings, keys, export_format)
        return
    if table:
        chosen = [t for _n, (_s, t) in sorted(known.items()) if "all" in table or t.name in table]
        notes: list[str] = []
        with warehouse(settings, read_only=True) as wh, errors_as_messages():
            if export_format == "edx2bigquery":
                if deidentified:
                    fail("--deidentified with --table: the research tables have no de-identified copy in edx2bigquery's form")
                written, notes = edx2bigquery.export_tables(wh, settings, chosen, keys)
            else:
                written = export_tables(wh, settings, chosen, keys, deidentified=deidentified)
        for path in written:
            render.line(f"wrote {path}")
        for note in notes:
            render.line(note)
        return
    with warehouse(settings, read_only=True) as wh, errors_as_messages():
        if not wh.table_exists("person_course"):
            fail("no person_course table yet; run 'optimus ingest' first")
        if export_format == "edx2bigquery":
            written = edx2bigquery.export(wh, settings, keys)
            missing = edx2bigquery.missing_columns(wh)
        else:
            written = write_exports(wh, settings, keys)
            missing = []
    for path in written:
        render.line(f"wrote {path}")
    if missing:
        render.line(f"edx2bigquery columns Optimus has no value for yet (written empty): {', '.join(missing)}")


def deidentified_release(settings: Any, keys: list[str] | None, export_format: str) -> None:
    """`export --deidentified`: the release of `optimus release` (k = 5, l = 2, the default quasi-identifiers)
    in a folder of its own under the export path; a copy that only drops identifiers is no de-identified copy."""
    from optimus import exports
    from optimus import release as method
    from optimus.cli.release import summary

    if export_format != "optimus":
        fail("--deidentified writes the de-identified release (optimus's columns); it has no edx2bigquery form: see 'optimus release'")
    out_dir = Path(settings.export_path) / "deidentified" / f"release_{exports.timestamp()}"
    with warehouse(settings, read_only=True) as wh, errors_as_messages():
        written, made = method.write_release(wh, settings, out_dir, keys or [], method.Params())
    for path in written:
        render.line(f"wrote {path}")
    summary(made.report)
