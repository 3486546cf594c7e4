"""The weekly package's `.sql` (TSV) tables, the e-mail opt-in CSV, an ORA table and a `.failed` file.

Writes them exactly as the exporter does (header row, tabs, literal NULL, backslash escapes)
so the Database State and Email CRM readers meet the real format's corners.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from optimus.sample.course import Course
from optimus.sample.people import Learner

COLUMNS = {
    "auth_user": "id username first_name last_name email password is_staff is_active is_superuser last_login "
    "date_joined status email_key avatar_type country show_country date_of_birth interesting_tags "
    "ignored_tags email_tag_filter_strategy display_tag_filter_strategy consecutive_days_visit_count",
    "auth_userprofile": "id user_id name language location meta courseware gender mailing_address year_of_birth "
    "level_of_education goals country city bio profile_image_uploaded_at state",
    "student_courseenrollment": "id user_id course_id created is_active mode",
    "certificates_generatedcertificate": "id user_id download_url grade course_id key distinction status "
    "verify_uuid download_uuid name created_date modified_date error_reason mode",
    "courseware_studentmodule": "id module_type module_id student_id state grade created modified max_grade done course_id",
    "user_id_map": "hash_id user_id username",
    "student_courseaccessrole": "org course_id user_id role",
    "django_comment_client_role_users": "course_id user_id name",
    "grades_persistentcoursegrade": "course_id user_id grading_policy_hash percent_grade letter_grade passed_timestamp created modified",
}
ORA_COLUMNS = "id submission_uuid scored_at scorer_id score_type feedback rubric_id"
OPT_IN_HEADER = ["user_id", "username", "email", "full_name", "course_id", "is_opted_in_for_email", "preference_set_datetime"]
FAILED_TEXT = """Traceback (most recent call last):
  File "/edx/app/exporter/exporter/main.py", line 212, in export_course
    task.run()
  File "/edx/app/exporter/exporter/tasks.py", line 148, in run
    cursor.execute(query)
OperationalError: (2013, 'Lost connection to MySQL server during query')
"""


def tsv_value(v: object) -> str:
    """One value as the exporter writes it (NULL, 0/1, UTC datetime, escaped text)."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, dt.datetime):
        s = v.strftime("%Y-%m-%d %H:%M:%S")
        return f"{s}.{v.microsecond:06d}" if v.microsecond else s
    if isinstance(v, str):
        return v.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return str(v)


class TsvFile:
    """A `.sql` TSV file opened on its first row, so an empty table leaves no file (as the exporter does)."""

    def __init__(self, path: Path, columns: str) -> None:
        self.path = path
        self.header = "\t".join(columns.split()) + "\n"
        self.rows = 0
        self._fh: TextIO | None = None

    def row(self, values: list[object]) -> None:
        if self._fh is None:
            self._fh = open(self.path, "w", encoding="utf-8", newline="")
            self._fh.write(self.header)
        self._fh.write("\t".join([tsv_value(v) for v in values]) + "\n")
        self.rows += 1

    def close(self) -> int:
        if self._fh is not None:
            self._fh.close()
        return self.rows


def write_tsv(path: Path, columns: str, rows: list[list[object]]) -> int:
    """Write one whole table; no file when there are no rows."""
    f = TsvFile(path, columns)
    for r in rows:
        f.row(r)
    return f.close()


@dataclass
class Certificate:
    user_id: int
    course: int
    status: str
    grade: float
    created: dt.datetime
    mode: str


def plan_certificates(
    learners: list[Learner], courses: list[Course], start: dt.date, days: int, seed: int, orphan: tuple[Learner, int] | None
) -> list[Certificate]:
    """Decide certificates: some downloadable, some notpassing, and the one without an enrolment."""
    rng = random.Random(f"{seed}:certificates")
    t = dt.datetime.combine(start + dt.timedelta(days=days), dt.time(3, 0))
    out: list[Certificate] = []
    for learner in learners:
        for enr in learner.enrollments:
            if learner.kind == "silent" or rng.random() > 0.3:
                continue
            pm = courses[enr.course].pass_mark
            if rng.random() < 0.65:
                status, grade = "downloadable", round(pm + rng.random() * (1 - pm), 2)
            else:
                status, grade = "notpassing", round(rng.random() * pm * 0.95, 2)
            out.append(Certificate(learner.user_id, enr.course, status, grade, t - dt.timedelta(seconds=rng.randint(0, 86000)), enr.mode))
    if orphan is not None:
        learner, course = orphan
        out.append(Certificate(learner.user_id, course, "downloadable", 0.91, t, "honor"))
    return out


def write_course_tables(
    folder: Path,
    course: Course,
    ci: int,
    learners: list[Learner],
    certs: list[Certificate],
    active: dict[int, list[int]],
    seed: int,
    with_roles: bool,
    chapters_touched: dict[int, list[int]] | None = None,
) -> dict[str, int]:
    """Write the nine `.sql` tables of one course; return rows per file name.

    :param chapters_touched: per user_id, the indexes of the chapters the learner's events touched: their
        `chapter` rows of courseware_studentmodule (none for a learner who only enrolled). Without it, the
        first max(1, nchapters) chapters."""
    rng = random.Random(f"{seed}:tables:{ci}")
    cid = course.course_id
    enrolled = [(learner, e) for learner in learners for e in learner.enrollments if e.course == ci]
    enrolled.sort(key=lambda le: le[0].user_id)
    # rows stream straight to disk: studentmodule grows with learners x modules
    rows = {k: TsvFile(folder / f"{course.prefix}-{k}-prod-analytics.sql", cols) for k, cols in COLUMNS.items()}
    for learner, enr in enrolled:
        last_login = (
            None
            if learner.kind == "silent" and learner.user_id % 2
            else (dt.datetime.combine(course.start.date(), dt.time()) + dt.timedelta(days=14, seconds=learner.user_id % 86400))
        )
        rows["auth_user"].row(
            [
                learner.user_id,
                learner.username,
                learner.first_name,
                learner.last_name,
                learner.email,
                "",
                learner.is_staff,
                1,
                0,
                last_login,
                learner.date_joined,
                "",
                None,
                "n",
                "",
                0,
                None,
                "",
                "",
                0,
                0,
                0,
            ]
        )
        meta = (
            ""
            if learner.user_id % 3
            else json.dumps({"session_id": None, "6002x_exit_response": {"rating": ["Excellent"], "comments": "Great\tcourse,\nthanks!"}})
        )
        rows["auth_userprofile"].row(
            [
                learner.user_id + 100000,
                learner.user_id,
                learner.profile_name,
                "",
                "",
                meta,
                "course.xml",
                learner.gender,
                learner.mailing_address,
                learner.year_of_birth,
                learner.loe,
                learner.goals,
                learner.country,
                "" if learner.user_id % 4 else "Brisbane",
                None,
                None,
                None,
            ]
        )
        rows["student_courseenrollment"].row([learner.user_id * 10 + ci, learner.user_id, cid, enr.created, enr.is_active, enr.mode])
        rows["user_id_map"].row([hashlib.md5(f"{seed}:{learner.user_id}".encode()).hexdigest(), learner.user_id, learner.username])
        rows["django_comment_client_role_users"].row([cid, learner.user_id, "Student"])
        if learner.is_staff:
            rows["django_comment_client_role_users"].row([cid, learner.user_id, "Administrator"])
        elif learner.user_id % 17 == 3:
            rows["django_comment_client_role_users"].row([cid, learner.user_id, "Community TA"])
        if with_roles and (learner.is_staff or learner.user_id % 23 == 1):
            role = "instructor" if learner.is_staff else rng.choice(["staff", "beta_testers"])
            rows["student_courseaccessrole"].row([course.org, cid, learner.user_id, role])
    # certificates, including one whose owner has no enrolment row in this course
    for i, c in enumerate(sorted((c for c in certs if c.course == ci), key=lambda c: c.user_id)):
        key = hashlib.md5(f"{seed}:cert:{ci}:{c.user_id}".encode()).hexdigest()
        ok = c.status == "downloadable"
        rows["certificates_generatedcertificate"].row(
            [
                i + 1,
                c.user_id,
                f"https://s3.amazonaws.com/verify.edx.org/downloads/{key[:20]}/Certificate.pdf" if ok else "",
                c.grade,
                cid,
                key if ok else "",
                0,
                c.status,
                key[::-1] if ok else "",
                key[:16] if ok else "",
                "",
                c.created,
                c.created,
                "",
                c.mode,
            ]
        )
    cert_of = {c.user_id: c for c in certs if c.course == ci}
    # studentmodule and persistent grades for learners with activity
    sm_id = ci * 10_000_000
    now = dt.datetime.combine(course.start.date(), dt.time(9, 30))
    by_id = {learner.user_id: learner for learner, _ in enrolled}
    for uid in sorted(active):
        if uid not in by_id:
            continue
        if chapters_touched is None:
            opened = course.chapters[: max(1, min(len(course.chapters), active[uid][3]))]
        else:
            opened = [course.chapters[i] for i in chapters_touched.get(uid, [])]
        for ch in opened:
            sm_id += 1
            rows["courseware_studentmodule"].row(
                [
                    sm_id,
                    "chapter",
                    course.usage_key("chapter", ch.url_name),
                    uid,
                    json.dumps({"position": 1}),
                    None,
                    now,
                    now + dt.timedelta(minutes=uid % 50, microseconds=uid % 7),
                    None,
                    "na",
                    cid,
                ]
            )
        for ch in opened:
            for url_name, _ in ch.problems[: 1 + uid % 2]:
                sm_id += 1
                att = 1 + rng.randint(0, 2)
                grade = rng.choice([0, 1])
                state = {
                    "correct_map": {
                        f"{url_name}_2_1": {"correctness": "correct" if grade else "incorrect", "npoints": None, "msg": "", "hint": ""}
                    },
                    "student_answers": {
                        f"{url_name}_2_1": "choice_1" if grade else "choice_0",
                        f"{url_name}_3_1": "line one\nline two\twith a tab \\ and é",
                    },
                    "attempts": att,
                    "seed": 1,
                    "done": True,
                    "last_submission_time": "2024-03-05T10:00:00Z",
                }
                points, possible = problem_state_items(state, url_name, uid, seed)
                rows["courseware_studentmodule"].row(
                    [
                        sm_id,
                        "problem",
                        course.usage_key("problem", url_name),
                        uid,
                        json.dumps(state, ensure_ascii=False),
                        float(grade + points),
                        now,
                        now + dt.timedelta(hours=1),
                        possible,
                        "na",
                        cid,
                    ]
                )
        cert = cert_of.get(uid)
        pct = cert.grade if cert else round(rng.random() * 0.8, 2)
        passed = pct >= course.pass_mark
        rows["grades_persistentcoursegrade"].row(
            [
                cid,
                uid,
                hashlib.sha1(f"policy{ci}".encode()).hexdigest()[:28],
                pct,
                "Pass" if passed else "",
                now + dt.timedelta(days=2) if passed else None,
                now,
                now + dt.timedelta(days=2, microseconds=123456),
            ]
        )
    written: dict[str, int] = {}
    for f in rows.values():
        if f.close():
            written[f.path.name] = f.rows
    return written


def problem_state_items(state: dict[str, Any], url_name: str, uid: int, seed: int) -> tuple[int, float]:
    """Make about half the problems two-part (ProblemAnalysis's items): a checkbox input `_3_1` answered
    with a list of choices, marked in the correct_map, its points added to the grade. Some states lose
    `done` or have it false, and a few have an empty correct_map (a problem shown, never checked: left
    out of problem_analysis). Its own random stream, so the other rows of the tables are unchanged.
    Returns (points added to the grade, max_grade)."""
    rng = random.Random(f"{seed}:problem_state:{url_name}:{uid}")
    if int(hashlib.md5(url_name.encode()).hexdigest(), 16) % 2:
        return 0, 1.0
    right = rng.random() < 0.5
    choices = ["choice_0", "choice_2"] if right else rng.choice([["choice_1"], ["choice_0", "choice_1", "choice_3"], []])
    state["student_answers"][f"{url_name}_3_1"] = choices
    state["correct_map"][f"{url_name}_3_1"] = {
        "correctness": "correct" if right else "incorrect",
        "npoints": 1 if right else 0,
        "msg": "",
        "hint": "Pick two.",
    }
    roll = rng.random()
    if roll < 0.1:
        del state["done"]
    elif roll < 0.2:
        state["done"] = False
    elif roll < 0.25:
        state["correct_map"] = {}
    return int(right), 2.0


def write_ora(folder: Path, course: Course, learners: list[Learner], ci: int) -> dict[str, int]:
    """One small Open Response Assessment table in `ora/`."""
    (folder / "ora").mkdir(exist_ok=True)
    ids = [learner.user_id for learner in learners if any(e.course == ci for e in learner.enrollments)][:3]
    t = dt.datetime.combine(course.start.date() + dt.timedelta(days=8), dt.time(11, 5, 7, 250000))
    rows = [
        [
            i + 1,
            hashlib.md5(f"sub{uid}".encode()).hexdigest(),
            t + dt.timedelta(hours=i),
            str(uid),
            "PE",
            ["Clear argument.\nGood sources.", "Needs\ta conclusion", ""][i % 3],
            7,
        ]
        for i, uid in enumerate(ids)
    ]
    name = f"ora/{course.prefix}-assessment_assessment-prod-analytics.sql"
    n = write_tsv(folder / name, ORA_COLUMNS, rows)
    return {name: n} if n else {}


def write_failed(folder: Path, course: Course) -> str:
    name = f"{course.prefix}-wiki_article-prod-analytics.sql.failed"
    (folder / name).write_text(FAILED_TEXT)
    return name


def write_opt_in(folder: Path, org: str, learners: list[Learner], courses: list[Course], seed: int) -> tuple[str, int]:
    """The org-level opt-in CSV: one row per enrolment, quoted, True/False."""
    rng = random.Random(f"{seed}:optin")
    name = f"{org}-email_opt_in-prod-analytics.csv"
    n = 0
    with open(folder / name, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_ALL)
        w.writerow(OPT_IN_HEADER)
        for learner in sorted(learners, key=lambda learner: learner.user_id):
            for enr in learner.enrollments:
                when = enr.created + dt.timedelta(seconds=rng.randint(0, 300))
                w.writerow(
                    [
                        learner.user_id,
                        learner.username,
                        learner.email,
                        f"{learner.first_name} {learner.last_name}",
                        courses[enr.course].course_id,
                        "True" if rng.random() < 0.6 else "False",
                        when.strftime("%Y-%m-%d %H:%M:%S"),
                    ]
                )
                n += 1
    return name, n
