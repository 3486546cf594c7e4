"""release: the de-identified research release of person_course (k-anonymous, l-diverse, with a report)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from optimus.cli import render
from optimus.cli.common import ConfigOption, app, errors_as_messages, load_settings, warehouse


@app.command()
def release(
    out_dir: Path = typer.Argument(..., help="Folder to write the release and its report into (not inside a data path)."),
    k: int = typer.Option(5, "--k", help="Every combination of quasi-identifiers is shared by at least k rows."),
    l_: int = typer.Option(2, "--l", help="Every class holds at least l distinct values of each sensitive column (1: no l-diversity)."),
    course: list[str] = typer.Option(
        [], "--course", help="Only courses matching this pattern (fnmatch on the id, key or file form; repeatable)."
    ),
    linkable: bool = typer.Option(
        False,
        "--linkable",
        help="One hash per learner across courses (HarvardX-MITx's choice); the set of courses becomes a quasi-identifier.",
    ),
    qi: list[str] = typer.Option(
        [], "--qi", help="Quasi-identifiers (repeatable; default: course country yob gender loe nforum_posts start_time last_event)."
    ),
    sensitive: list[str] = typer.Option(
        [], "--sensitive", help="Sensitive columns for l-diversity (repeatable; default: grade certified)."
    ),
    max_suppression: float = typer.Option(
        0.05, "--max-suppression", help="Stop generalising once at most this share of the rows would be suppressed."
    ),
    cfg: Path | None = ConfigOption,
) -> None:
    """Write a de-identified person_course (and course_profile) with a report of what was changed (docs/release.md)."""
    from optimus import release as method

    settings = load_settings(cfg)
    params = method.Params(
        k=k,
        l=l_,
        qis=tuple(qi) or method.DEFAULT_QIS,
        sensitive=tuple(sensitive) or method.DEFAULT_SENSITIVE,
        linkable=linkable,
        max_suppression=max_suppression,
    )
    with warehouse(settings, read_only=True) as wh, errors_as_messages():
        written, made = method.write_release(wh, settings, out_dir, course, params)
    for path in written:
        render.line(f"wrote {path}")
    summary(made.report)


def summary(report: dict[str, Any]) -> None:
    """The report's figures in a few lines (the whole report is in release_report.md beside the release)."""
    rec, cls = report["records"], report["classes"]
    render.line(
        f"kept {rec['kept']} of {rec['learners']} learners ({rec['share_kept']:.1%}); suppressed {rec['suppressed']}; "
        f"staff left out {rec['staff_left_out']}; smallest class {cls['smallest']} of {cls['count']} classes"
    )
    for cid, c in rec["per_course"].items():
        render.line(f"  {cid}: kept {c['kept']} of {c['learners']}, suppressed {c['suppressed']} ({c['share_suppressed']:.1%})")
    for col, g in report["generalisations"].items():
        render.line(f"  {col}: {g['rule']}")
    util = report["utility"]
    render.line(
        f"certification rate {util['certification_rate']['before']} -> {util['certification_rate']['after']}; "
        f"mean year of birth {util['mean_year_of_birth']['before']} -> {util['mean_year_of_birth']['after']}"
    )
