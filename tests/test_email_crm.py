"""Email CRM: the opt-in list loads (both header versions), and the export has one row per learner
and course, the original's labels and rules, only changed learners in delta mode, mode 0600."""

from __future__ import annotations

import csv
import logging
import stat
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from conftest import ingest, query_rows
from optimus.warehouse import connect

YEAR = datetime.now(UTC).year
A, B = "course-v1:UQx+A+1T2024", "UQx/B/2T2024"  # both course id forms
FILE_FORM = {A: "UQx-A-1T2024", B: "UQx-B-2T2024"}
KEY = {A: "UQx+A+1T2024", B: "UQx+B+2T2024"}
# id: username, email, is_staff, is_active, profile name, gender, year of birth, education, country
USERS = {
    1: ("ann", "ann@example.org", "1", "1", "Ann Marie Smith", "f", "1980", "p", "AU"),
    2: ("bob", "bob@example.org", "0", "1", "Bob", "m", "1990", "hs", "US"),
    3: ("cyd", "cyd@example.org", "0", "1", "Cyd Jones", "o", "2000", "NULL", "NZ"),
    4: ("dee", "dee@example.org", "0", "1", "Dee Young", "f", str(YEAR - 10), "el", "GB"),
    5: ("eve", "eve@example.org", "0", "0", "Eve Edge", "NULL", str(YEAR - 15), "none", ""),
    6: ("fay", "fay@example.org", "0", "1", "Fay", "f", str(YEAR - 16), "m", "DE"),
    7: ("gus", "gus@example.org", "0", "1", "Gus Grey", "", "NULL", "other", "AU"),
}
ENROLLED = {A: {1: "1", 2: "0", 3: "1", 4: "1", 5: "1", 6: "1", 7: "1"}, B: {3: "1"}}
# an opt-in row per enrolment (user 3 twice in A: the later preference counts); user 7 has none
OPT_IN = [
    (1, A, "True", "2023-01-02 03:04:05"),
    (2, A, "False", "2023-01-02 03:04:05"),
    (3, A, "False", "2022-05-05 00:00:00"),
    (3, A, "True", "2023-06-01 10:00:00"),
    (3, B, "True", "2023-06-01 10:00:00"),
    (4, A, "True", "2023-01-01 00:00:00"),
    (5, A, "True", ""),
    (6, A, "True", "2023-02-02 02:02:02"),
]
# course, user: viewed, explored, certified, mode
PERSON_COURSE = {
    (A, 1): (1, 0, 0, "verified"),
    (A, 2): (0, 0, 0, "audit"),
    (A, 3): (1, 1, 0, "audit"),
    (B, 3): (1, 0, 0, "honor"),
    (A, 4): (1, 0, 0, "audit"),
    (A, 5): (0, 0, 0, "audit"),
    (A, 6): (1, 1, 1, "verified"),
    (A, 7): (1, 0, 0, "audit"),
}
COUNTRIES = {"AU": "Australia", "US": "United States", "NZ": "New Zealand", "GB": "United Kingdom", "DE": "Germany"}
EDUCATION = {
    "p": "Doctorate",
    "hs": "Secondary/high school",
    "el": "Elementary/primary school",
    "none": "No formal education",
    "m": "Masters or professional degree",
    "other": "Other education",
}


def write_tsv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    path.write_text("\n".join("\t".join(r) for r in [header, *rows]) + "\n", encoding="utf-8")


def write_opt_in(path: Path, rows: list[tuple], with_ids: bool = True, extra_lines: list[str] = ()) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, quoting=csv.QUOTE_ALL)
        head = ["email", "full_name", "course_id", "is_opted_in_for_email", "preference_set_datetime"]
        writer.writerow((["user_id", "username"] if with_ids else []) + head)
        for uid, course, flag, when in rows:
            u = USERS[uid]
            writer.writerow(([str(uid), u[0]] if with_ids else []) + [u[1], u[4], course, flag, when])
        for line in extra_lines:
            fh.write(line + "\r\n")


def make_package(data_path: Path) -> Path:
    pkg = data_path / "database_state" / "2024-01-07"
    for course, enrolled in ENROLLED.items():
        stem = pkg / FILE_FORM[course]
        write_tsv(
            Path(f"{stem}-auth_user-prod-analytics.sql"),
            ["id", "username", "first_name", "last_name", "email", "is_staff", "is_active"],
            [[str(i), USERS[i][0], "", "", USERS[i][1], USERS[i][2], USERS[i][3]] for i in enrolled],
        )
        write_tsv(
            Path(f"{stem}-auth_userprofile-prod-analytics.sql"),
            ["id", "user_id", "name", "gender", "year_of_birth", "level_of_education", "country"],
            [[str(100 + i), str(i), USERS[i][4], *USERS[i][5:]] for i in enrolled],
        )
        write_tsv(
            Path(f"{stem}-student_courseenrollment-prod-analytics.sql"),
            ["id", "user_id", "course_id", "created", "is_active", "mode"],
            [
                [str(200 + i), str(i), course, "2024-01-01 00:00:00", active, PERSON_COURSE[(course, i)][3]]
                for i, active in enrolled.items()
            ],
        )
    return pkg


def set_person_course(settings, values: dict) -> None:
    """person_course as Person Course writes it (the columns Email CRM reads)."""
    wh = connect(settings)
    try:
        wh.execute(
            "CREATE TABLE IF NOT EXISTS person_course (course_id VARCHAR, course_key VARCHAR, user_id BIGINT, username VARCHAR, "
            "viewed INTEGER, explored INTEGER, certified INTEGER, mode VARCHAR)"
        )
        wh.execute("DELETE FROM person_course")
        extra = [c for c in ("rules_version", "computed_at") if c in wh.columns("person_course")]  # Person Course's own bookkeeping
        cols = ["course_id", "course_key", "user_id", "username", "viewed", "explored", "certified", "mode", *extra]
        fill = {"rules_version": 1, "computed_at": datetime(2024, 1, 8)}
        wh.executemany(
            f"INSERT INTO person_course ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)})",
            [[c, KEY[c], u, USERS[u][0], *v, *(fill[x] for x in extra)] for (c, u), v in values.items()],
        )
        # and a Person Course run that changed both courses, as Person Course records it
        now = datetime.now(UTC).replace(tzinfo=None)
        run_id = wh.scalar(
            "INSERT INTO service_runs (service, started_at, finished_at, status, rules_version) "
            "VALUES ('PersonCourse', ?, ?, 'ok', 1) RETURNING id",
            [now, now],
        )
        wh.executemany(
            "INSERT INTO service_run_changes (run_id, course_key, day) VALUES (?, ?, NULL)", [[run_id, KEY[A]], [run_id, KEY[B]]]
        )
    finally:
        wh.close()


def settings_crm(settings_for, data_path: Path, **more):
    # Person Course's own rows would replace the table this test writes; the others are not needed here
    return settings_for(data_path, ignored_services=["PersonCourse", "TimeFinder", "IPToCountry", "Clickstream"], **more)


def run_crm(settings):
    """One Email CRM run; returns its outcome and the export it wrote (None if none)."""
    outcome = ingest(settings, "EmailCRM", force=True, ok=None).services[0]
    last = query_rows(settings, "SELECT path FROM email_crm_exports ORDER BY exported_at DESC, id DESC LIMIT 1")
    return outcome, Path(last[0][0]) if last else None


def read_export(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def expected_row(course: str, uid: int, pc: dict) -> dict[str, str]:
    """The export's rules, written from REFERENCE §1.5 and the docs, independently of the service."""
    username, email, staff, active, name, gender, yob, loe, country = USERS[uid]
    prefs = sorted((when, flag) for u, c, flag, when in OPT_IN if u == uid and c == course)
    opted = prefs[-1][1] == "True"
    if yob != "NULL" and YEAR - int(yob) < 16:  # only a learner certainly 15 may be opted in
        opted = False
    first, _, last = name.partition(" ")
    viewed, explored, certified, mode = pc[(course, uid)]
    return {
        "user_id": str(uid),
        "is_staff": "Yes" if staff == "1" else "No",
        "is_active": active,
        "email": email,
        "viewed": str(viewed),
        "explored": str(explored),
        "certified": str(certified),
        "mode": mode,
        "first_name": first,
        "last_name": last,
        "course_id": course,
        "course_name": "",
        "course_start_date": "",
        "enrolled": "Yes" if ENROLLED[course][uid] == "1" else "No",
        "is_opted_in_for_email": "Yes" if opted else "No",
        "gender": {"m": "Male", "f": "Female", "o": "Other"}.get(gender, ""),
        "year_of_birth": "" if yob == "NULL" else yob,
        "level_of_education": "" if loe == "NULL" else loe,
        "level_of_education_label": EDUCATION.get(loe, "Not specified"),
        "country_name": COUNTRIES.get(country, ""),
    }


def expected(pc: dict, only: set | None = None) -> dict[tuple[str, str], dict[str, str]]:
    opted_in = {(c, u) for u, c, _f, _w in OPT_IN}
    return {(c, str(u)): expected_row(c, u, pc) for (c, u) in pc if (c, u) in opted_in and (only is None or (c, u) in only)}


def test_delta_exports_only_changed_learners_once_per_course(data_path: Path, settings_for, cli, caplog, backend) -> None:
    make_package(data_path)
    write_opt_in(data_path / "database_state" / "2024-01-07" / "UQx-email_opt_in-prod-analytics.csv", OPT_IN)
    settings = settings_crm(settings_for, data_path, **backend)
    result = cli(["ingest", "-s", "DatabaseState", "-s", "EmailCRM"], settings)
    assert result.exit_code == 0, result.output
    set_person_course(settings, PERSON_COURSE)
    caplog.set_level(logging.INFO, logger="optimus")
    logger = logging.getLogger("optimus")
    logger.addHandler(caplog.handler)  # the CLI's logging setup may stop propagation to the root
    try:
        # the first export has every learner-course of the opt-in list (nothing was exported before)
        outcome, first = run_crm(settings)
    finally:
        logger.removeHandler(caplog.handler)
    assert outcome.status == "ok", outcome.error
    header, rows = read_export(first)
    assert header == list(expected_row(A, 1, PERSON_COURSE))
    keys = [(r["course_id"], r["user_id"]) for r in rows]
    assert max(Counter(keys).values()) == 1  # never a learner twice in a course
    assert {k for k in keys if k[1] == "3"} == {(A, "3"), (B, "3")}  # a learner in two courses: one row each
    assert {k: r for k, r in zip(keys, rows, strict=True)} == expected(PERSON_COURSE)
    opted = {r["user_id"]: r["is_opted_in_for_email"] for r in rows if r["course_id"] == A}
    assert (opted["4"], opted["5"], opted["6"]) == ("No", "No", "Yes")  # all opted in; 4 and 5 may be under 15
    assert stat.S_IMODE(first.stat().st_mode) == 0o600
    # no temporary file left beside it (the ingest above exported too, header only: person_course was empty then)
    assert first.name.startswith("emailcrm_") and all(p.name.startswith("emailcrm_") and p.suffix == ".csv" for p in first.parent.iterdir())
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert str(first) in logged and "ann@example.org" not in logged and "Ann Marie" not in logged

    # two learners change; only they are exported, in the course where they changed
    changed = dict(PERSON_COURSE)
    changed[(A, 2)] = (1, 0, 0, "audit")
    changed[(B, 3)] = (1, 1, 1, "honor")
    set_person_course(settings, changed)
    _, second = run_crm(settings)
    assert second != first
    _, rows = read_export(second)
    assert {(r["course_id"], r["user_id"]): r for r in rows} == expected(changed, only={(A, 2), (B, 3)})

    # Person Course ran again but no status changed: a header-only file says so
    set_person_course(settings, changed)
    _, third = run_crm(settings)
    header, rows = read_export(third)
    assert third != second and header == list(expected_row(A, 1, PERSON_COURSE)) and rows == []
    assert third.read_text().count("\n") == 1

    # nothing ran upstream and no opt-in file came: no run of its own, no file
    outcome, latest = run_crm(settings)
    assert outcome.rows == 0 and latest == third

    # asked for, in full mode: everyone, whatever changed
    result = cli(["recompute", "--service", "EmailCRM"], settings, env={"OPTIMUS_EMAIL_CRM_MODE": "full"})
    assert result.exit_code == 0, result.output
    _, full = run_crm(settings)  # (no new run: nothing changed since; it only reads the last export)
    assert full != third
    _, rows = read_export(full)
    assert {(r["course_id"], r["user_id"]): r for r in rows} == expected(changed)


def test_old_header_bad_lines_and_a_failed_export(data_path: Path, settings_for, tmp_path: Path, backend) -> None:
    pkg = make_package(data_path)
    bad = [
        '"x@example.org","X Y","course-v1:UQx+A+1T2024","maybe","2023-01-01 00:00:00"',
        '"too","few"',
        '"z@example.org","Z","not a course","True",""',
    ]
    write_opt_in(pkg / "UQx-email_opt_in-prod-analytics.csv", OPT_IN, with_ids=False, extra_lines=bad)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    settings = settings_crm(settings_for, data_path, export_path=blocker / "exports", **backend)
    # the file is loaded in its own transaction; the export after it fails (Person Course's table may be there, empty)
    ingest(settings, "DatabaseState", "EmailCRM", ok=None)
    quarantined = query_rows(settings, "SELECT line, reason FROM email_opt_in_quarantine ORDER BY line")
    ((loaded,),) = query_rows(settings, "SELECT count(*) FROM email_opt_in")
    first_bad = 2 + len(OPT_IN)
    assert [line for line, _ in quarantined] == [first_bad, first_bad + 1, first_bad + 2]
    assert "True or False" in quarantined[0][1] and "course id" in quarantined[2][1]
    assert loaded == len(OPT_IN)
    set_person_course(settings, PERSON_COURSE)

    # the export folder cannot be made: the run fails, leaves no file and remembers nothing
    outcome, path = run_crm(settings)
    assert outcome.status == "failed" and "not-a-folder" in (outcome.error or "") and path is None
    assert query_rows(settings, "SELECT count(*) FROM email_crm_last") == [(0,)]

    # without user_id in the file, learners are found by email in the course's auth_user
    good = settings_crm(settings_for, data_path, **backend)
    outcome, path = run_crm(good)
    assert outcome.status == "ok", outcome.error
    _, rows = read_export(path)
    assert {(r["course_id"], r["user_id"]): r for r in rows} == expected(PERSON_COURSE)


def test_sample_package_end_to_end(tmp_path: Path, settings_for) -> None:
    """The real pipeline on a sample package: ip_geo covers every IP of events, the Email CRM export
    has each opted-in learner-course of Person Course once, and a second ingest writes nothing."""
    import gzip
    import json

    from optimus.sample import generate

    data = tmp_path / "data"
    generate(data, courses=2, learners=24, days=2, seed=5)
    settings = settings_for(data)
    ingest(settings)
    ips = set()
    for path in (data / "clickstream_logs").rglob("*.log.gz"):
        for line in gzip.open(path, "rt", encoding="utf-8", errors="replace"):
            try:
                ip = json.loads(line[line.find("{") :]).get("ip")  # past a syslog prefix or BOM (the sample writes some)
            except (ValueError, AttributeError):
                continue
            if isinstance(ip, str) and ip:
                ips.add(ip)
    opt_in = next((data / "database_state").rglob("*email_opt_in*.csv"))
    with open(opt_in, newline="", encoding="utf-8") as fh:
        listed = {(r["course_id"], r["user_id"]) for r in csv.DictReader(fh)}
    geo_ips = {r[0] for r in query_rows(settings, "SELECT ip FROM ip_geo")}
    event_ips = {r[0] for r in query_rows(settings, "SELECT DISTINCT ip FROM events WHERE ip <> ''")}
    person_course = {
        (course_id, str(user_id)) for course_id, user_id in query_rows(settings, "SELECT course_id, user_id FROM person_course")
    }
    export = Path(query_rows(settings, "SELECT path FROM email_crm_exports ORDER BY exported_at DESC LIMIT 1")[0][0])
    ((runs,),) = query_rows(settings, "SELECT count(*) FROM service_runs")
    assert geo_ips == event_ips and event_ips <= ips and geo_ips
    _, rows = read_export(export)
    keys = [(r["course_id"], r["user_id"]) for r in rows]
    assert len(keys) == len(set(keys)) and set(keys) == listed & person_course and keys
    assert stat.S_IMODE(export.stat().st_mode) == 0o600

    ingest(settings)
    assert query_rows(settings, "SELECT count(*) FROM service_runs") == [(runs,)]
    assert query_rows(settings, "SELECT count(*) FROM email_crm_exports") == [(1,)]
