"""recompute, export: rebuild derived tables on demand, and write the Person Course exports."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from optimus import courses
from optimus.cli.common import ConfigOption, app, errors_as_messages, fail, load_settings, out, warehouse

@app.command()
def recompute(
    service: Optional[str] = typer.Option(None, "--service", "-s", help="Recompute only this derived service (default: every one that can, e.g. IPToCountry, TimeFinder, PersonCourse)."),
    course: Optional[str] = typer.Option(None, "--course", help="Only this course (either id form); default: every course."),
    cfg: Optional[Path] = ConfigOption,
) -> None:
    """Recompute derived tables now, whole, whether or not their inputs changed."""
    from optimus.pipeline import Pipeline

    settings = load_settings(cfg)
    key = None
    if course is not None:
        key = courses.course_key(course)
        if key is None:
            fail(f"--course {course!r} is not a course id (use course-v1:org+course+run or org/course/run)")
    with warehouse(settings) as wh, errors_as_messages():
        pipeline = Pipeline(settings, wh)
        pipeline.setup()
        # by default every active derived service that can recompute on demand, in dependency order
        names = [service] if service else [
            n for n in pipeline.active if pipeline.services[n].is_derived() and hasattr(pipeline.services[n], "recompute")
        ]
        for name in names:
            if name not in pipeline.services:
                fail(f"unknown service {name!r} (known: {', '.join(pipeline.order)})")
            if not pipeline.services[name].is_derived():
                fail(f"{name} is not a derived service; re-ingest its files with 'optimus ingest --file'")
            pipeline.services[name].recompute = {key} if key else "all"  # type: ignore[attr-defined]
        summary = pipeline.run_once(only=names, force=True)
    for s in summary.services:
        out.print(f"{s.service}: {s.label}, {s.rows:,} rows, {s.seconds:.2f}s" + (f": {s.error}" if s.error else ""), highlight=False)
    if summary.failed:
        raise typer.Exit(1)


@app.command()
def export(
    deidentified: bool = typer.Option(False, "--deidentified", help="Research copy: user_id_map.hash_id for user_id; no username, IP or email domain."),
    course: Optional[str] = typer.Option(None, "--course", help="Only this course's person_course (either id form)."),
    cfg: Optional[Path] = ConfigOption,
) -> None:
    """Write person_course (per course) and course_profile to the export path as CSV and Parquet (mode 0600)."""
    from optimus.services.person_course import export as write_exports

    settings = load_settings(cfg)
    keys = None
    if course is not None:
        key = courses.course_key(course)
        if key is None:
            fail(f"--course {course!r} is not a course id")
        keys = [key]
    with warehouse(settings, read_only=True) as wh, errors_as_messages():
        if not wh.table_exists("person_course"):
            fail("no person_course table yet; run 'optimus ingest' first")
        written = write_exports(wh, settings, keys, deidentified=deidentified)
    for path in written:
        out.print(f"wrote {path}", highlight=False)
