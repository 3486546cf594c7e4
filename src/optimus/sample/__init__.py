"""Sample edX research data package: a complete, realistic, reproducible data directory.

`generate(out, ...)` writes::

    out/clickstream_logs/events/{org}-edx-events-{YYYY-MM-DD}.log.gz   one per day
    out/clickstream_logs/latest -> events
    out/database_state/{org}-{start+days}/...                          the weekly package
    out/database_state/latest -> {org}-{start+days}
    out/sample_manifest.json

Same arguments, same bytes (no wall clock, fixed gzip and tar times). Events are streamed
day by day, learner by learner, so memory grows with learners, not with events.

Problems (ProblemAnalysis, ProblemEvents): each learner's ``problem`` rows of courseware_studentmodule
carry a capa ``state`` (attempts, done, correct_map, student_answers); about half the problems have a
second, checkbox input answered with a list, some states lack ``done`` or have an empty correct_map
(`tables.problem_state_items`). Server ``problem_check`` events carry answers, correct_map,
submission (with the choice's text), grade, max_grade and success, and each learner's checks of a
problem count their ``attempts`` 1, 2, 3, ... in time order. No manifest key is added for them.

The manifest (a plain JSON dict, also returned) is what tests compare an ingested warehouse
with. Paths are relative to `out`. Keys:

- ``format``: ``"optimus-sample/1"``; ``params``: the arguments (``start`` as ISO date).
- ``courses``: list, one per course: ``course_id`` (the form its events and tables use),
  ``id_form`` (``old``/``new``), ``old_id``, ``new_id``, ``prefix`` (file-name form),
  ``display_name``, ``start``/``end`` (policy, ISO), ``pass_mark``, ``chapters`` (all),
  ``published_chapters``, ``chapter_ids`` (published, in order), ``staff_only_chapters``,
  ``blocks`` (count per OLX category, published tree), ``enrolled``, ``certificates``
  ({status: n}), ``access_role_users``, ``files`` (the course's files: olx, course_structure,
  forum, sql names).
- ``learners``: ``total``, ``with_events``, ``never_events`` (silent), ``forum_only``,
  ``two_courses``, ``under_15`` (year_of_birth > start.year - 15), ``is_staff``,
  ``cert_without_enrollment`` ({user_id, course_id} or null).
- ``events``: ``files`` (list, per daily file: ``path``, ``date``, ``lines``, ``valid``
  (parseable event objects, incl. junk-prefixed ones and the duplicate), ``malformed``
  ({reason: n}), ``malformed_lines`` ([{line (1-based), reason}]), ``junk_prefixed``
  ({syslog_prefix|bom: n}), ``by_course`` ({course_id: n}, ``""`` for non-course events;
  events whose context has no course id are counted under the course in their URL/page),
  ``by_block_course`` ({course_id: n}: events with no course in context, URL or page whose course
  is only in an ``/xblock/block-v1:…`` usage key; counted under ``""`` in ``by_course``),
  ``by_kind`` ({kind: n}, see `events.kind_of`; among them the forum's views of the dumps' threads,
  ``forum_read``, ``forum_search``, ``forum_upvote``, the server's ``forum_searched``, and a verified
  enrolment's ``enrollment_upgrade_succeeded`` after its ``enrollment_mode_changed``: sample/forum_activity.py; ``textbook_page`` and ``wiki_page`` are the reading of
  `sample/reading.py`: a session of every fourth learner ends with textbook pages, and on one day in two a
  wiki page, drawn from a random stream of their own), ``by_event_date`` ({date: n}, by the
  event's own UTC date), ``quirks`` ({user_id_empty, user_id_missing, course_only_in_url,
  course_only_in_page, course_only_in_xblock_page, time_no_tz, time_no_microseconds, late,
  course_only_in_api_url, course_only_top_level, username_padded})): the last three are the rarer shapes of
  `events.EventWriter._odd_shapes`, each in a few sessions of the second day (chosen by learner) of learners whose
  events carry their user_id: a versioned course API URL (``/api/courses/v1/courses/{id}/``, kind
  ``api_course_url``) with an empty context course id, a line with a top-level ``course_id`` and no
  ``context`` (kind ``page_close``, no page), and a ``/courses/{id}/progress`` line whose username is padded
  with white space and whose ``user_id`` is empty (also counted in ``user_id_empty``); they count under
  their course in ``by_course`` and in the learner's nevents and ndays_act, and name no chapter); ``valid``, ``malformed``,
  ``duplicates`` (1 or 0), ``distinct`` (= valid - duplicates); ``duplicate`` ({course_id,
  kind, event_date, files, line_numbers} or null); ``malformed_reasons`` (all that occur).
- ``learner_stats_fields``: the names below; ``learner_stats``: {course_id: {user_id: [nevents, ndays_act, nplay_video, nchapters,
  nproblems_checked]}} counted over distinct valid events of learners (heartbeat, /dashboard
  and /login_ajax excluded): nplay_video counts browser ``play_video`` and mobile
  ``edx.video.played``; ndays_act counts distinct UTC event dates; nchapters counts
  distinct chapters in courseware URL event_types; nproblems_checked counts distinct
  problems in server ``problem_check`` events. Events whose type contains ``/xblock/`` and have a
  course (handler calls) are in nevents; each is on a day with another event of the learner's course.
- ``learner_counts``: {course_id: {``xblock_events``: {user_id: n} (those handler calls, within
  nevents), ``transcript_events``: {user_id: n} (``show_transcript``, browser and mobile),
  ``block_course_events``: {user_id: n} (browser events from a unit's ``/xblock/`` iframe with no course
  in their context: the course is only in the page's block id; not in nevents, and each on a day
  with another event of the learner's course), ``chapters_touched``: {user_id: n} (published chapters
  named by any of the learner's course events: a courseware URL or page, a block id in a URL, page or
  payload, a video or problem id; these are exactly the learner's ``chapter`` rows of
  courseware_studentmodule), ``enrollment_only``: [user_id] (learners whose only
  events in the course are enrolment events)}}.
- ``database_state``: ``dir``; ``sql`` ({path: rows}, every `.sql` incl. ``ora/``);
  ``failed`` ([path]); ``olx`` ({path: members}); ``course_structure`` ({path: blocks}).
- ``forums``: {path: {threads, comments, replies, malformed, lines, posts_by_user}}.
- ``email_opt_in``: {path, rows}.
- ``symlinks``: {link path: target}.
- ``course_axis``: {course_id: {``graded_with_due`` (graded subsections given a due date),
  ``split_test`` (its url_name), ``split_children`` (its two verticals), ``split_youtube_id`` (the
  YouTube video embedded in an html block of the first arm), ``problem_types`` ({itype: problems},
  ``mixed`` for a problem of two response types)}} (sample/grading.py).
- ``grades``: {course_id: {``subsection_grades``: rows of grades_persistentsubsectiongrade}}.
- ``video_analysis``: ``durations`` ({course_id: {video url_name: seconds}}: the ``duration`` of its
  ``load_video`` and mobile ``edx.video.loaded`` payloads, and of every web play, pause and stop payload
  in a current (``course-v1:``) course; positions (``currentTime``) of its play, pause
  and stop events lie within it), ``speeds`` (the rule: web play/pause/stop payloads carry ``speed``
  ``"1.50"``, ``"1.0"`` or none by user_id % 3; mobile payloads none). See sample/videos.py.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from optimus.errors import OptimusError
from optimus.sample.course import course_structure, make_course, write_olx
from optimus.sample.events import STAT_FIELDS, EventWriter
from optimus.sample.forum_activity import threads_of
from optimus.sample.forums import write_forum
from optimus.sample.grading import add_course_features, write_subsection_grades
from optimus.sample.people import Learner, make_learners
from optimus.sample.tables import plan_certificates, write_course_tables, write_failed, write_opt_in, write_ora
from optimus.sample.videos import manifest as video_manifest

__all__ = ["generate", "SampleError", "STAT_FIELDS"]
FORMAT = "optimus-sample/1"


class SampleError(OptimusError):
    """The sample cannot be written where or how it was asked."""


def _orphan(learners: list[Learner], n_courses: int) -> tuple[Learner, int] | None:
    """Pick the learner who gets a certificate in a course without being enrolled in it."""
    for learner in learners[5:] + learners[1:5]:
        if learner.kind == "active" and len(learner.enrollments) == 1:
            own = learner.enrollments[0].course
            if n_courses > 1:
                return learner, (own + 1) % n_courses
            learner.enrollments.clear()  # one course only: drop the enrolment itself
            learner.kind = "silent"
            return learner, own
    return None


def _symlink(link: Path, target: str) -> None:
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(target, link)


def generate(
    out: Path,
    *,
    courses: int = 2,
    learners: int = 50,
    days: int = 7,
    seed: int = 1,
    start: dt.date = dt.date(2024, 3, 4),
    org: str = "UQx",
    malformed: bool = True,
    events_per_learner_day: float = 6.0,
    progress: Callable[[str, int], None] | None = None,
) -> dict:
    """Write a sample data directory into `out` and return its manifest (see the module docstring).

    :param out: a directory that does not exist yet or is empty.
    :param courses: number of courses; odd-numbered ones (1st, 3rd, ...) use `org/course/run` ids.
    :param learners: number of learners across all courses (about 20% take two courses).
    :param days: number of daily event files, from `start`; the weekly package is dated start + days.
    :param malformed: also write malformed event and forum lines.
    :param events_per_learner_day: mean events per day of a learner with events.
    :param progress: called as `progress(path, n)` after each file, n = lines/rows/members written.
    """
    if courses < 1 or learners < 1 or days < 1:
        raise SampleError(f"sample needs at least one course, learner and day (got {courses}, {learners}, {days})")
    if not org.replace("_", "").isalnum():
        raise SampleError(f"org {org!r} must be letters, digits or '_' (it is part of file names)")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise SampleError(f"{out}: directory is not empty; choose a new directory for the sample")
    events_dir = out / "clickstream_logs" / "events"
    events_dir.mkdir(parents=True, exist_ok=True)
    package_date = start + dt.timedelta(days=days)
    package = f"{org}-{package_date.isoformat()}"
    pkg_dir = out / "database_state" / package
    pkg_dir.mkdir(parents=True)
    tar_mtime = int(dt.datetime.combine(package_date, dt.time()).replace(tzinfo=dt.UTC).timestamp())

    course_list = [make_course(i, org, start, days, seed) for i in range(courses)]
    people = make_learners(learners, courses, start, days, seed)
    orphan = _orphan(people, courses)

    # the forum dumps first: the events read and search their threads (sample/forum_activity.py)
    forum_files = [write_forum(pkg_dir, course, ci, people, start, days, seed, malformed) for ci, course in enumerate(course_list)]

    # events, streamed per day
    writer = EventWriter(course_list, people, start, days, seed, org, malformed, events_per_learner_day)
    for course, (name, _counts) in zip(course_list, forum_files, strict=True):
        writer.forum_threads[course.course_id] = threads_of(pkg_dir / name)
    for day in range(days):
        writer.write_day(events_dir, day, progress)
    stats = writer.learner_stats()
    learner_counts = writer.extra_learner_stats()
    touched = writer.chapters_touched()

    # the course axis and grades (issue 18): due dates, varied problems, a split test; after the events,
    # which never name these blocks
    axis_facts = {course.course_id: add_course_features(course, f"{seed}:{i}") for i, course in enumerate(course_list)}
    grade_facts: dict[str, dict[str, int]] = {}

    # the weekly package
    certs = plan_certificates(people, course_list, start, days, seed, orphan)
    sql: dict[str, int] = {}
    olx: dict[str, int] = {}
    structures: dict[str, int] = {}
    forums: dict[str, dict] = {}
    course_entries = []
    rel = f"database_state/{package}"

    def note(path: str, n: int) -> None:
        if progress:
            progress(path, n)

    for ci, course in enumerate(course_list):
        active = {int(uid): s for uid, s in stats[course.course_id].items()}
        # the second course has no access roles at all: an empty table, hence no file
        tables = write_course_tables(pkg_dir, course, ci, people, certs, active, seed, with_roles=ci != 1, chapters_touched=touched[ci])
        files: dict[str, Any] = {"sql": sorted(tables)}  # the table files, then one name per other kind
        for name, n in tables.items():
            sql[f"{rel}/{name}"] = n
            note(f"{rel}/{name}", n)
        name, n = write_subsection_grades(pkg_dir, course, ci, people, active)
        if n:
            sql[f"{rel}/{name}"] = n
            files["sql"].append(name)
            note(f"{rel}/{name}", n)
        grade_facts[course.course_id] = {"subsection_grades": n}
        if ci == 0:
            for name, n in write_ora(pkg_dir, course, people, ci).items():
                sql[f"{rel}/{name}"] = n
                files["sql"].append(name)
                note(f"{rel}/{name}", n)
        name, counts = forum_files[ci]
        forums[f"{rel}/{name}"] = counts
        files["forum"] = name
        note(f"{rel}/{name}", counts["lines"])
        name = f"{course.prefix}-course-prod-analytics.xml.tar.gz"
        olx[f"{rel}/{name}"] = write_olx(course, pkg_dir / name, tar_mtime)
        files["olx"] = name
        note(f"{rel}/{name}", olx[f"{rel}/{name}"])
        name = f"{course.prefix}-course_structure-prod-analytics.json"
        structure = course_structure(course)
        (pkg_dir / name).write_text(json.dumps(structure, indent=2, sort_keys=True, ensure_ascii=False))
        structures[f"{rel}/{name}"] = len(structure)
        files["course_structure"] = name
        note(f"{rel}/{name}", len(structure))
        cert_counts: dict[str, int] = {}
        for c in certs:
            if c.course == ci:
                cert_counts[c.status] = cert_counts.get(c.status, 0) + 1
        enrolled = sum(1 for p in people for e in p.enrollments if e.course == ci)
        course_entries.append(
            {
                "course_id": course.course_id,
                "id_form": "new" if course.new_form else "old",
                "old_id": course.old_id,
                "new_id": course.new_id,
                "prefix": course.prefix,
                "display_name": course.display_name,
                "start": course.start.isoformat(),
                "end": course.end.isoformat(),
                "pass_mark": course.pass_mark,
                "chapters": len(course.all_chapter_ids),
                "published_chapters": len(course.chapters),
                "chapter_ids": [c.url_name for c in course.chapters],
                "staff_only_chapters": [course.staff_chapter] if course.staff_chapter else [],
                "blocks": dict(sorted(course.counts().items())),
                "enrolled": enrolled,
                "certificates": dict(sorted(cert_counts.items())),
                "files": files,
            }
        )
    failed = [f"{rel}/{write_failed(pkg_dir, course_list[0])}"]
    opt_name, opt_rows = write_opt_in(pkg_dir, org, people, course_list, seed)
    note(f"{rel}/{opt_name}", opt_rows)

    _symlink(out / "clickstream_logs" / "latest", "events")
    _symlink(out / "database_state" / "latest", package)

    event_files = [f.as_dict() for f in writer.files]
    valid = sum(f["valid"] for f in event_files)
    dup = writer.duplicate if writer.duplicate and len(writer.duplicate["files"]) == 2 else None
    reasons = sorted({r for f in event_files for r in f["malformed"]})
    manifest = {
        "format": FORMAT,
        "params": {
            "courses": courses,
            "learners": learners,
            "days": days,
            "seed": seed,
            "start": start.isoformat(),
            "org": org,
            "malformed": malformed,
            "events_per_learner_day": events_per_learner_day,
        },
        "courses": course_entries,
        "learners": {
            "total": len(people),
            "with_events": len({uid for s in stats.values() for uid in s}),
            "never_events": sum(1 for p in people if p.kind == "silent"),
            "forum_only": sum(1 for p in people if p.kind == "forum_only"),
            "two_courses": sum(1 for p in people if len(p.enrollments) > 1),
            "under_15": sum(1 for p in people if p.year_of_birth and p.year_of_birth > start.year - 15),
            "is_staff": sum(p.is_staff for p in people),
            "cert_without_enrollment": ({"user_id": orphan[0].user_id, "course_id": course_list[orphan[1]].course_id} if orphan else None),
        },
        "events": {
            "files": event_files,
            "valid": valid,
            "malformed": sum(sum(f["malformed"].values()) for f in event_files),
            "duplicates": 1 if dup else 0,
            "distinct": valid - (1 if dup else 0),
            "duplicate": dup,
            "malformed_reasons": reasons,
        },
        "learner_stats_fields": STAT_FIELDS,
        "learner_stats": stats,
        "learner_counts": learner_counts,
        "database_state": {"dir": rel, "sql": dict(sorted(sql.items())), "failed": failed, "olx": olx, "course_structure": structures},
        "forums": forums,
        "email_opt_in": {"path": f"{rel}/{opt_name}", "rows": opt_rows},
        "symlinks": {"clickstream_logs/latest": "events", "database_state/latest": package},
        "course_axis": axis_facts,
        "grades": grade_facts,
        "video_analysis": video_manifest(course_list),
    }
    # readable layout, but the per-learner block on one line (it has a row per learner)
    text = json.dumps({**manifest, "learner_stats": "@STATS@"}, indent=1, ensure_ascii=False)
    text = text.replace('"@STATS@"', json.dumps(stats, separators=(",", ":")), 1)
    (out / "sample_manifest.json").write_text(text + "\n")
    note("sample_manifest.json", 1)
    return manifest
