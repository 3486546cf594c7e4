"""The sample-package generator: reproducible bytes, and a manifest that matches the files.

Every check reads the files back with the standard library only, using its own parsing
rules, so a miscount in the generator shows up as a mismatch with the manifest.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import os
import re
import tarfile
from collections import Counter, defaultdict
from pathlib import Path
from urllib.parse import unquote

import pytest

from optimus.sample import SampleError, generate

SQL_COLUMNS = {
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
    "grades_persistentsubsectiongrade": "id user_id course_id usage_key course_version subtree_edited_timestamp earned_all possible_all "
    "earned_graded possible_graded first_attempted created modified visible_blocks_hash",
}
DATETIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d{6})?$")
COURSE_IN_URL = re.compile(r"/courses/([^/]+/[^/]+/[^/]+|course-v1:[^/]+)/(?:courseware|progress|xblock|discussion)")
API_COURSE_URL = re.compile(r"^/api/courses/v[0-9]+/courses/([^/]+/[^/]+/[^/]+|course-v1:[^/]+)/$")
KWARGS = dict(courses=3, learners=60, days=5, seed=7)


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("sample") / "data"
    return out, generate(out, **KWARGS)


# ----- reading back, independently of the generator -------------------------------------------------


def unescape(value: str) -> str | None:
    if value == "NULL":
        return None
    return re.sub(r"\\(.)", lambda m: {"t": "\t", "n": "\n", "r": "\r", "\\": "\\"}[m.group(1)], value)


def read_tsv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = rows[0]
    assert all(len(r) == len(header) for r in rows[1:]), path
    return header, [dict(zip(header, map(unescape, r), strict=True)) for r in rows[1:]]


def parse_time(s: str) -> dt.datetime:
    t = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def classify(raw: bytes) -> tuple[str | None, dict | None, str | None]:
    """(malformed reason or None, event, junk kind) for one raw line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8", None, None
    text = text.rstrip("\n")
    if text.startswith("#"):
        return "comment", None, None
    junk = None
    brace = text.find("{")
    if brace > 0:
        junk = "bom" if text[:brace] == "\ufeff" else "syslog_prefix"
    if brace < 0:
        try:
            json.loads(text)
            return "not_object", None, None
        except json.JSONDecodeError:
            return "invalid_json", None, None
    try:
        ev = json.loads(text[brace:])
    except json.JSONDecodeError as e:
        if e.msg == "Extra data":
            return "two_objects", None, None
        return ("invalid_json" if text.endswith("}") else "truncated"), None, None
    if "time" not in ev:
        return "no_time", None, None
    try:
        parse_time(ev["time"])
    except ValueError:
        return "bad_time", None, None
    return None, ev, junk


def course_of(ev: dict) -> str:
    ctx = ev.get("context") or {}
    if ctx.get("course_id"):
        return ctx["course_id"]
    if ev.get("course_id"):  # an old line with no context
        return ev["course_id"]
    for field in (ev.get("event_type") or "", unquote(ev.get("page") or "")):
        m = COURSE_IN_URL.search(field) or API_COURSE_URL.search(field)
        if m:
            return m.group(1)
    return ""


CURRENT_NAMES = {
    "edx.ui.lms.sequence.tab_selected": "mfe_tab_selected",
    "edx.ui.lms.sequence.next_selected": "mfe_next_selected",
    "edx.ui.lms.sequence.previous_selected": "mfe_previous_selected",
    "edx.ui.lms.outline.selected": "mfe_outline_selected",
    "edx.grades.problem.submitted": "grades_problem_submitted",
    "edx.grades.subsection.grade_calculated": "grades_subsection_calculated",
}
BLOCK_IN_URL = re.compile(r"/xblock/block-v1:([^+/]+)\+([^+/]+)\+([^+/]+)\+type@")


def block_course_of(ev: dict) -> str:
    """The course of an event with none in its context or /courses/ URL, from a usage key in its type or page."""
    for field in (ev.get("event_type") or "", unquote(ev.get("page") or "")):
        m = BLOCK_IN_URL.search(field)
        if m:
            return "course-v1:" + "+".join(m.groups())
    return ""


def kind(ev: dict) -> str:
    src, et = ev["event_source"], ev["event_type"]
    if src == "mobile":
        return "mobile_" + ev["name"][len("edx.") :].replace(".", "_")  # edx.video.played -> mobile_video_played
    if et in CURRENT_NAMES:
        return CURRENT_NAMES[et]
    if et.startswith("edx.bi."):
        return "bi_upsell"
    if "/xblock/" in et:
        return "xblock_render" if et.startswith("/xblock/") else "xblock_handler"
    if et.startswith("/api/courses/"):
        return "api_course_url"
    if et.startswith("/courses/") and "/discussion/" in et:  # the forum's views: a search, an upvote, a thread read
        return "forum_search" if et.endswith("/forum/search") else "forum_upvote" if et.endswith("/upvote") else "forum_read"
    if et.startswith("textbook."):
        return "textbook_page"
    if et.startswith("/courses/") and "/wiki/" in et:
        return "wiki_page"
    if et.startswith("/courses/"):
        return "courseware_url" if "/courseware/" in et else "progress_url"
    if et.startswith("/"):
        return et[1:]
    if et == "problem_check" and src == "browser":
        return "problem_check_browser"
    if et.startswith("edx.forum."):
        return "forum_" + et[10:].replace(".", "_")
    if et.startswith("edx.course.enrollment."):
        return "enrollment_" + et[22:].replace(".", "_")  # upgrade.succeeded -> upgrade_succeeded
    return et


def read_events(out: Path, manifest: dict):
    """Yield (file entry, line number, reason, event, junk) for every line of every daily file."""
    for f in manifest["events"]["files"]:
        with gzip.open(out / f["path"], "rb") as fh:
            for n, raw in enumerate(fh, 1):
                yield (f, n, *classify(raw))


# ----- tests ----------------------------------------------------------------------------------------


def tree(root: Path) -> dict[str, bytes | str]:
    out: dict[str, bytes | str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = str(p.relative_to(root))
            if p.is_symlink():
                out[rel] = "-> " + os.readlink(p)
            elif p.is_file():
                out[rel] = p.read_bytes()
    return out


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path):
    kw = dict(courses=2, learners=25, days=3)
    generate(tmp_path / "a", seed=3, **kw)
    generate(tmp_path / "b", seed=3, **kw)
    generate(tmp_path / "c", seed=4, **kw)
    a, b, c = tree(tmp_path / "a"), tree(tmp_path / "b"), tree(tmp_path / "c")
    assert a == b
    assert sorted(a) == sorted(c)
    events = [k for k in a if k.endswith(".log.gz") and k.startswith("clickstream_logs/events/")]
    assert len(events) == 3 and all(a[k] != c[k] for k in events)


def test_layout_and_relative_latest_symlinks(sample):
    out, m = sample
    start = dt.date.fromisoformat(m["params"]["start"])
    names = sorted(p.name for p in (out / "clickstream_logs" / "events").iterdir())
    assert names == [f"UQx-edx-events-{start + dt.timedelta(days=d)}.log.gz" for d in range(KWARGS["days"])]
    pkg = f"UQx-{start + dt.timedelta(days=KWARGS['days'])}"
    assert os.readlink(out / "clickstream_logs" / "latest") == "events"
    assert os.readlink(out / "database_state" / "latest") == pkg
    assert (out / "database_state" / "latest").resolve() == (out / "database_state" / pkg).resolve()
    assert m["symlinks"] == {"clickstream_logs/latest": "events", "database_state/latest": pkg}
    assert json.loads((out / "sample_manifest.json").read_text()) == m
    for f in m["events"]["files"]:
        assert gzip.open(out / f["path"]).read(1)  # a real gzip file
        assert (out / f["path"]).read_bytes()[4:8] == b"\0\0\0\0"  # mtime 0 in the gzip header
    assert [p.name for p in (out / m["database_state"]["dir"]).glob("*.failed")] == [Path(p).name for p in m["database_state"]["failed"]]


def test_event_file_counts_match_manifest(sample):
    out, m = sample
    seen: dict[str, dict] = defaultdict(
        lambda: {
            "lines": 0,
            "malformed": Counter(),
            "malformed_lines": [],
            "junk": Counter(),
            "by_course": Counter(),
            "by_block_course": Counter(),
            "by_kind": Counter(),
            "by_event_date": Counter(),
            "quirks": Counter(),
        }
    )
    for f, n, reason, ev, junk in read_events(out, m):
        s = seen[f["path"]]
        s["lines"] = n
        if reason:
            s["malformed"][reason] += 1
            s["malformed_lines"].append({"line": n, "reason": reason})
            continue
        if junk:
            s["junk"][junk] += 1
        s["by_course"][course_of(ev)] += 1
        if not course_of(ev) and block_course_of(ev):
            s["by_block_course"][block_course_of(ev)] += 1
        s["by_kind"][kind(ev)] += 1
        t = parse_time(ev["time"])
        s["by_event_date"][t.date().isoformat()] += 1
        q = s["quirks"]
        if t.date().isoformat() < f["date"]:
            q["late"] += 1
        if "+" not in ev["time"][10:] and not ev["time"].endswith("Z"):
            q["time_no_tz"] += 1
        if "." not in ev["time"]:
            q["time_no_microseconds"] += 1
        ctx = ev.get("context")
        if ctx is None and ev.get("course_id"):
            q["course_only_top_level"] += 1
        if ev["username"] != ev["username"].strip():
            q["username_padded"] += 1
        if ctx is not None and ev["username"]:
            if "user_id" not in ctx:
                q["user_id_missing"] += 1
            elif ctx["user_id"] == "":
                q["user_id_empty"] += 1
            if ctx["course_id"] == "" and course_of(ev):
                at = ev["event_type"]
                q[
                    "course_only_in_url"
                    if at.startswith("/courses/")
                    else "course_only_in_api_url"
                    if at.startswith("/api/")
                    else "course_only_in_page"
                ] += 1
            if ctx["course_id"] == "" and not course_of(ev) and ev["event_source"] == "browser" and block_course_of(ev):
                q["course_only_in_xblock_page"] += 1
    total_valid = 0
    for f in m["events"]["files"]:
        s = seen[f["path"]]
        assert f["lines"] == s["lines"]
        assert f["malformed"] == dict(s["malformed"])
        assert f["malformed_lines"] == s["malformed_lines"]
        assert f["valid"] == s["lines"] - sum(s["malformed"].values())
        assert f["junk_prefixed"] == dict(s["junk"])
        assert f["by_course"] == dict(s["by_course"])
        assert f["by_block_course"] == dict(s["by_block_course"])
        assert f["by_kind"] == dict(s["by_kind"])
        assert f["by_event_date"] == dict(s["by_event_date"])
        assert {k: v for k, v in f["quirks"].items() if v} == dict(s["quirks"])
        total_valid += f["valid"]
    assert m["events"]["valid"] == total_valid
    assert m["events"]["distinct"] == total_valid - m["events"]["duplicates"] == total_valid - 1


def test_every_malformed_reason_and_junk_prefix_occurs(sample):
    out, m = sample
    reasons = Counter()
    junk = Counter()
    for _, _, reason, _, j in read_events(out, m):
        reasons[reason] += bool(reason)
        junk[j] += bool(j)
    assert set(reasons) - {None} == {
        "invalid_json",
        "truncated",
        "two_objects",
        "comment",
        "not_object",
        "no_time",
        "bad_time",
        "invalid_utf8",
    }
    assert set(m["events"]["malformed_reasons"]) == set(reasons) - {None}
    assert set(junk) - {None} == {"syslog_prefix", "bom"}


def test_duplicate_line_is_in_two_files(sample):
    out, m = sample
    dup = m["events"]["duplicate"]
    assert len(dup["files"]) == 2 and dup["files"][0] != dup["files"][1]
    lines = [gzip.open(out / p).read().split(b"\n")[n - 1] for p, n in zip(dup["files"], dup["line_numbers"], strict=True)]
    assert lines[0] == lines[1]
    ev = json.loads(lines[0])
    assert course_of(ev) == dup["course_id"] and kind(ev) == dup["kind"]


def test_every_event_shape_occurs(sample):
    out, m = sample
    found: set[str] = set()
    ips: set[str] = set()
    for _, _, reason, ev, _ in read_events(out, m):
        if reason:
            continue
        ips.add(ev["ip"])
        e, src, et, ctx = ev["event"], ev["event_source"], ev["event_type"], ev.get("context") or {}
        found.add(kind(ev))
        if isinstance(e, dict) and src == "server":
            found.add("shape:server_object")
        if isinstance(e, str) and e.startswith("{") and isinstance(json.loads(e), dict) and src == "browser":
            found.add("shape:browser_json_string")
        if et == "problem_check" and src == "browser" and "=" in e and not e.startswith("{"):
            found.add("shape:query_string")
        if et == "problem_graded" and isinstance(e, list):
            found.add("shape:list")
        if e == '{"POST": {}, "GET": {}}' and "/courseware/" in et:
            found.add("shape:implicit_courseware")
        if e == '{"POST": {}, "GET": {}}' and et.endswith("/progress"):
            found.add("shape:implicit_progress")
        if e == "":
            found.add("shape:empty")
        if src == "mobile" and ev["name"] != et and "application" in ctx and "received_at" in ctx:
            found.add("shape:mobile_name_supersedes")
        if ctx.get("course_id") == "" and et.startswith("/courses/"):
            found.add("course_only_in_url")
        if ctx.get("course_id") == "" and "%3A" in (ev.get("page") or "") and course_of(ev):
            found.add("course_only_in_percent_encoded_page")
        if ctx and ev["username"] and "user_id" not in ctx:
            found.add("user_id_missing")
        if ctx.get("user_id") == "":
            found.add("user_id_empty")
        if "module" in ctx:
            found.add("context_module")
        text = json.dumps(ev)
        found.update(k for k in ("i4x://", "block-v1:", "i4x-UQx-") if k in text)
        if "." not in ev["time"]:
            found.add("time_no_microseconds")
        if "+" not in ev["time"][10:]:
            found.add("time_no_tz")
        if src == "browser" and "/xblock/block-v1:" in (ev.get("page") or ""):
            found.add("page_xblock")
        if src == "task":
            found.add("source_task")
        if re.match(r"^/api/courses/v[0-9]+/courses/course-v1:", et):
            found.add("versioned_api_url")
        if not ctx.get("course_id") and not course_of(ev) and block_course_of(ev):
            found.add("course_only_in_block_id")
        if ctx.get("course_id") == "" and src == "browser" and not course_of(ev) and block_course_of(ev):
            found.add("course_only_in_xblock_page")
    expected = {
        "courseware_url",
        "progress_url",
        "play_video",
        "pause_video",
        "seek_video",
        "stop_video",
        "load_video",
        "problem_check",
        "problem_check_browser",
        "problem_graded",
        "showanswer",
        "problem_show",
        "problem_save",
        "problem_reset",
        "seq_goto",
        "seq_next",
        "seq_prev",
        "page_close",
        "enrollment_activated",
        "forum_thread_created",
        "forum_comment_created",
        "forum_thread_voted",
        "mobile_video_played",
        "heartbeat",
        "dashboard",
        "shape:server_object",
        "shape:browser_json_string",
        "shape:query_string",
        "shape:list",
        "shape:implicit_courseware",
        "shape:implicit_progress",
        "shape:empty",
        "shape:mobile_name_supersedes",
        "course_only_in_url",
        "course_only_in_percent_encoded_page",
        "user_id_missing",
        "user_id_empty",
        "context_module",
        "i4x://",
        "block-v1:",
        "i4x-UQx-",
        "time_no_microseconds",
        "time_no_tz",
        # current edX (issue 16)
        "mfe_tab_selected",
        "mfe_next_selected",
        "mfe_previous_selected",
        "mfe_outline_selected",
        "xblock_render",
        "xblock_handler",
        "api_course_url",
        "grades_problem_submitted",
        "grades_subsection_calculated",
        "bi_upsell",
        "show_transcript",
        "mobile_video_paused",
        "mobile_video_loaded",
        "mobile_video_stopped",
        "mobile_video_position_changed",
        "mobile_video_transcript_shown",
        "page_xblock",
        "source_task",
        "versioned_api_url",
        "course_only_in_block_id",
        "course_only_in_xblock_page",
    }
    assert expected <= found, expected - found
    assert "127.0.0.1" in ips and any(ip.startswith("10.") for ip in ips) and any(":" in ip for ip in ips)
    assert len({ip.split(".")[0] for ip in ips if "." in ip}) > 10


def test_late_mobile_events_are_at_most_three_days_old(sample):
    out, m = sample
    late = 0
    for f, _, reason, ev, _ in read_events(out, m):
        if reason:
            continue
        age = (dt.date.fromisoformat(f["date"]) - parse_time(ev["time"]).date()).days
        assert 0 <= age <= 3
        if age and ev["event_source"] == "mobile":
            late += 1
            assert ev["context"]["received_at"].startswith(f["date"])
    assert late > 0


def test_learner_stats_match_events(sample):
    out, m = sample
    pkg = out / m["database_state"]["dir"]
    user_ids = {}
    for p in pkg.glob("*-auth_user-prod-analytics.sql"):
        user_ids.update({r["username"]: r["id"] for r in read_tsv(p)[1]})
    chapters = {c["course_id"]: c["chapter_ids"] for c in m["courses"]}
    acc: dict[str, dict[str, dict]] = defaultdict(
        lambda: defaultdict(lambda: {"n": 0, "days": set(), "play": 0, "ch": set(), "prob": set()})
    )
    dup = m["events"]["duplicate"]
    for f, n, reason, ev, _ in read_events(out, m):
        if reason or not ev["username"] or (f["path"] == dup["files"][1] and n == dup["line_numbers"][1]):
            continue
        cid = course_of(ev)
        if not cid:
            continue
        a = acc[cid][user_ids[ev["username"].strip()]]
        a["n"] += 1
        a["days"].add(parse_time(ev["time"]).date())
        a["play"] += (ev.get("name") or ev["event_type"]) in ("play_video", "edx.video.played")
        mm = re.search(r"/courseware/([0-9a-f]{32})/", ev["event_type"])
        if mm:
            assert mm.group(1) in chapters[cid]
            a["ch"].add(mm.group(1))
        if ev["event_type"] == "problem_check" and ev["event_source"] == "server":
            a["prob"].add(ev["event"]["problem_id"])
    assert m["learner_stats_fields"] == ["nevents", "ndays_act", "nplay_video", "nchapters", "nproblems_checked"]
    for cid, users in m["learner_stats"].items():
        got = {u: [a["n"], len(a["days"]), a["play"], len(a["ch"]), len(a["prob"])] for u, a in acc[cid].items()}
        assert users == got, cid


def test_sql_files_follow_the_export_format(sample):
    out, m = sample
    pkg = out / m["database_state"]["dir"]
    files = sorted(str(p.relative_to(out)) for p in pkg.rglob("*.sql"))
    assert files == sorted(m["database_state"]["sql"])
    seen_escape = seen_null = seen_empty = False
    for rel, rows in m["database_state"]["sql"].items():
        header, data = read_tsv(out / rel)
        assert len(data) == rows
        table = re.sub(r"-prod-analytics\.sql$", "", Path(rel).name).split("-")[-1]
        if "/ora/" not in rel:
            assert header == SQL_COLUMNS[table].split()
        raw = (out / rel).read_text()
        seen_escape |= "\\t" in raw or "\\n" in raw
        for row in data:
            seen_null |= None in row.values()
            seen_empty |= "" in row.values()
            for col in ("created", "date_joined", "last_login", "modified", "created_date"):
                if row.get(col) is not None:
                    assert DATETIME.match(row[col]), (rel, col, row[col])
        if table == "courseware_studentmodule":
            for row in data:
                json.loads(row["state"])
        if table == "auth_userprofile":
            assert {r["gender"] for r in data} <= {"f", "m", "o", "", None}
    assert seen_escape and seen_null and seen_empty


def test_course_tables_are_consistent(sample):
    out, m = sample
    pkg = out / m["database_state"]["dir"]
    orphan = m["learners"]["cert_without_enrollment"]
    for i, c in enumerate(m["courses"]):

        def rows(table, c=c):
            p = pkg / f"{c['prefix']}-{table}-prod-analytics.sql"
            return read_tsv(p)[1] if p.exists() else None

        enrolled = {r["user_id"] for r in rows("student_courseenrollment")}
        assert {r["id"] for r in rows("auth_user")} == enrolled
        assert {r["user_id"] for r in rows("auth_userprofile")} == enrolled
        assert {r["course_id"] for r in rows("student_courseenrollment")} == {c["course_id"]}
        assert len(enrolled) == c["enrolled"]
        certs = rows("certificates_generatedcertificate")
        assert dict(Counter(r["status"] for r in certs)) == c["certificates"]
        if orphan["course_id"] == c["course_id"]:
            assert str(orphan["user_id"]) in {r["user_id"] for r in certs} - enrolled
        roles = rows("student_courseaccessrole")
        assert (roles is None) == (i == 1)
    assert {"downloadable", "notpassing"} <= {s for c in m["courses"] for s in c["certificates"]}


def test_opt_in_csv(sample):
    out, m = sample
    with open(out / m["email_opt_in"]["path"], newline="", encoding="utf-8") as fh:
        raw = fh.read()
    rows = list(csv.DictReader(raw.splitlines()))
    assert raw.startswith('"user_id","username","email","full_name","course_id","is_opted_in_for_email"')
    assert len(rows) == m["email_opt_in"]["rows"]
    assert {r["is_opted_in_for_email"] for r in rows} == {"True", "False"}
    per_user = Counter(r["user_id"] for r in rows)
    assert max(per_user.values()) == 2 and sum(v == 2 for v in per_user.values()) == m["learners"]["two_courses"]
    assert {r["course_id"] for r in rows} == {c["course_id"] for c in m["courses"]}


def test_forum_files(sample):
    out, m = sample
    for rel, counts in m["forums"].items():
        docs, bad = [], 0
        for line in (out / rel).read_text(encoding="utf-8").splitlines():
            try:
                docs.append(json.loads(line))
            except json.JSONDecodeError:
                bad += 1
        threads = [d for d in docs if d["_type"] == "CommentThread"]
        comments = [d for d in docs if d["_type"] == "Comment"]
        assert (len(threads), len(comments), bad) == (counts["threads"], counts["comments"], counts["malformed"])
        assert sum("parent_id" in d for d in comments) == counts["replies"]
        assert dict(Counter(d["author_id"] for d in docs)) == counts["posts_by_user"]
        ids = {d["_id"]["$oid"] for d in threads}
        assert all(d["comment_thread_id"]["$oid"] in ids for d in comments)
        assert all(isinstance(d["author_id"], str) for d in docs)
    every = [json.loads(line) for rel in m["forums"] for line in (out / rel).read_text().splitlines() if line.endswith("}")]
    kinds = {type(d["created_at"]["$date"]) for d in every}
    assert kinds == {int, str}
    assert any("parent_id" in d for d in every)


def test_olx_export_and_course_structure(sample):
    out, m = sample
    pkg = out / m["database_state"]["dir"]
    forms = set()
    for i, c in enumerate(m["courses"]):
        forms.add(c["id_form"])
        assert c["course_id"] == (c["new_id"] if c["id_form"] == "new" else c["old_id"])
        assert c["id_form"] == ("old" if i % 2 == 0 else "new")
        with tarfile.open(pkg / c["files"]["olx"]) as tar:
            members = {t.name: t for t in tar.getmembers()}
            assert len({n.split("/")[0] for n in members}) == 1
            assert {t.mtime for t in members.values()} == {members[next(iter(members))].mtime}
            top = next(iter(members)).split("/")[0]
            read = lambda p, top=top: tar.extractfile(f"{top}/{p}").read().decode()  # noqa: E731
            org, code, run = c["old_id"].split("/")
            assert read("course.xml").strip() == f'<course url_name="{run}" org="{org}" course="{code}"/>'
            root = read(f"course/{run}.xml")
            chapter_refs = re.findall(r'<chapter url_name="([0-9a-f]+)"/>', root)
            assert len(chapter_refs) == c["chapters"]
            assert set(c["chapter_ids"]) <= set(chapter_refs)
            staff = [ch for ch in chapter_refs if 'visible_to_staff_only="true"' in read(f"chapter/{ch}.xml")]
            assert staff == c["staff_only_chapters"]
            assert len(chapter_refs) - len(staff) == c["published_chapters"]
            policy = json.loads(read(f"policies/{run}/policy.json"))[f"course/{run}"]
            assert {"start", "end", "display_name", "enrollment_start", "enrollment_end"} <= set(policy)
            grading = json.loads(read(f"policies/{run}/grading_policy.json"))
            assert min(grading["GRADE_CUTOFFS"].values()) == c["pass_mark"]
            names = "\n".join(members)
            assert "/drafts/" in names if i == 0 else "/drafts/" not in names
            for cat in ("sequential", "vertical", "problem", "video", "html", "discussion"):
                assert f"{top}/{cat}/" in names
            assert any(
                'graded="true"' in read(n[len(top) + 1 :]) and 'format="Homework"' in read(n[len(top) + 1 :])
                for n in members
                if "/sequential/" in n
            )
            assert all("weight=" in read(n[len(top) + 1 :]) for n in members if n.startswith(f"{top}/problem/"))
            assert all("youtube_id_1_0=" in read(n[len(top) + 1 :]) for n in members if n.startswith(f"{top}/video/"))
            assert (
                len(members) - sum(t.isdir() for t in members.values())
                == m["database_state"]["olx"][f"{m['database_state']['dir']}/{c['files']['olx']}"]
            )
        structure = json.loads((pkg / c["files"]["course_structure"]).read_text())
        prefix = "block-v1:" if c["id_form"] == "new" else "i4x://"
        assert all(k.startswith(prefix) for k in structure)
        assert Counter(v["category"] for v in structure.values()) == Counter(c["blocks"])
        assert sum(v["category"] == "chapter" for v in structure.values()) == c["chapters"]
        for v in structure.values():
            assert all(k in structure for k in v["children"])
    assert forms == {"old", "new"}


def test_malformed_false_writes_only_clean_lines(tmp_path):
    m = generate(tmp_path / "clean", courses=1, learners=15, days=2, malformed=False)
    assert m["events"]["malformed"] == 0 and m["events"]["malformed_reasons"] == []
    assert all(not f["junk_prefixed"] for f in m["events"]["files"])
    assert all(f["malformed"] == 0 for f in m["forums"].values())
    for _, _, reason, _, junk in read_events(tmp_path / "clean", m):
        assert reason is None and junk is None


def test_progress_is_called_per_file_and_nonempty_dir_is_refused(tmp_path):
    calls = []
    out = tmp_path / "p"
    m = generate(out, courses=1, learners=10, days=2, progress=lambda label, n: calls.append((label, n)))
    labels = [c[0] for c in calls]
    assert labels[:2] == [f["path"] for f in m["events"]["files"]]
    assert set(m["database_state"]["sql"]) <= set(labels) and labels[-1] == "sample_manifest.json"
    with pytest.raises(SampleError, match="not empty"):
        generate(out)


def test_learner_counts_match_events_and_current_courses_look_current(sample):
    """xblock handler calls, transcripts and enrolment-only learners, counted here from the files; a
    current (course-v1) course has the Learning MFE's shape: no courseware URLs drawn, one /xblock/ render
    per MFE navigation event, and that render its most frequent event with a page."""
    out, m = sample
    pkg = out / m["database_state"]["dir"]
    user_ids = {}
    for p in pkg.glob("*-auth_user-prod-analytics.sql"):
        user_ids.update({r["username"]: int(r["id"]) for r in read_tsv(p)[1]})
    dup = m["events"]["duplicate"]
    xblock: dict[str, Counter] = defaultdict(Counter)
    transcripts: dict[str, Counter] = defaultdict(Counter)
    in_block: dict[str, Counter] = defaultdict(Counter)
    kinds_of_learner: dict[tuple[str, int], set[str]] = defaultdict(set)
    days: dict[tuple[str, int], dict[dt.date, set[bool]]] = defaultdict(lambda: defaultdict(set))
    by_kind: dict[str, Counter] = defaultdict(Counter)
    for f, n, reason, ev, _ in read_events(out, m):
        if reason or not ev["username"] or (f["path"] == dup["files"][1] and n == dup["line_numbers"][1]):
            continue
        cid = course_of(ev) or block_course_of(ev)
        if not cid:
            continue
        uid, k = user_ids[ev["username"].strip()], kind(ev)
        by_kind[cid][k] += 1
        if not course_of(ev):  # an /xblock/ render, or an iframe event: the course is only in the block id
            in_block[cid][uid] += "/xblock/" not in ev["event_type"]
            days[(cid, uid)][parse_time(ev["time"]).date()].add(True)
            continue
        kinds_of_learner[(cid, uid)].add(k)
        is_xblock = "/xblock/" in ev["event_type"]
        xblock[cid][uid] += is_xblock
        transcripts[cid][uid] += ev["event_type"] == "show_transcript"
        days[(cid, uid)][parse_time(ev["time"]).date()].add(is_xblock)
    # every handler call and iframe event is on a day with another event of the learner's course
    assert all(False in flags for d in days.values() for flags in d.values())
    checked = 0
    for course in m["courses"]:
        cid = course["course_id"]
        got = m["learner_counts"][cid]
        assert got["xblock_events"] == {str(u): n for u, n in xblock[cid].items() if n}
        assert got["transcript_events"] == {str(u): n for u, n in transcripts[cid].items() if n}
        assert got["block_course_events"] == {str(u): n for u, n in in_block[cid].items() if n}
        only = sorted(u for (c, u), ks in kinds_of_learner.items() if c == cid and all(k.startswith("enrollment_") for k in ks))
        assert got["enrollment_only"] == only
        checked += len(only)
        k = by_kind[cid]
        if course["id_form"] == "new":
            navigation = sum(k[n] for n in ("mfe_tab_selected", "mfe_next_selected", "mfe_previous_selected", "mfe_outline_selected"))
            assert navigation > 0 and k["xblock_render"] == navigation
            assert k["seq_goto"] == k["seq_next"] == k["seq_prev"] == 0
            assert k["xblock_render"] > k["courseware_url"]  # only the old-bookmark quirk reaches a courseware URL
            assert k["xblock_handler"] > 0 and k["grades_problem_submitted"] == k["problem_check"]
        else:
            assert k["xblock_render"] == k["xblock_handler"] == 0 and k["courseware_url"] > 0
    assert checked > 0


def test_studentmodule_chapters_are_the_chapters_the_events_touch(sample):
    """A learner's `chapter` rows of courseware_studentmodule cover every chapter their events name (a
    courseware URL or page, a block id in a URL, page or payload), number the manifest's chapters_touched,
    and are none for a learner who only enrolled."""
    out, m = sample
    pkg = out / m["database_state"]["dir"]
    user_ids = {}
    for p in pkg.glob("*-auth_user-prod-analytics.sql"):
        user_ids.update({r["username"]: int(r["id"]) for r in read_tsv(p)[1]})
    chapter_of: dict[str, dict[str, str]] = {}  # course -> block url_name -> chapter url_name
    for c in m["courses"]:
        structure = json.loads((pkg / c["files"]["course_structure"]).read_text())
        name = lambda key: re.split(r"[/@]", key)[-1]  # noqa: E731
        found: dict[str, str] = {}
        for key, block in structure.items():
            if block["category"] == "chapter":
                stack = [key]
                while stack:
                    k = stack.pop()
                    found[name(k)] = name(key)
                    stack += structure[k]["children"]
        chapter_of[c["course_id"]] = found
    named: dict[tuple[str, int], set[str]] = defaultdict(set)
    for _, _, reason, ev, _ in read_events(out, m):
        if reason or not ev["username"]:
            continue
        cid = course_of(ev) or block_course_of(ev)
        if not cid:
            continue
        text = " ".join(
            [ev["event_type"], unquote(ev.get("page") or ""), json.dumps(ev["event"]), json.dumps((ev.get("context") or {}).get("module"))]
        )
        for hex_id in re.findall(r"[0-9a-f]{32}", text):
            if hex_id in chapter_of[cid]:
                named[(cid, user_ids[ev["username"].strip()])].add(chapter_of[cid][hex_id])
    checked = 0
    for c in m["courses"]:
        cid = c["course_id"]
        rows = read_tsv(pkg / f"{c['prefix']}-courseware_studentmodule-prod-analytics.sql")[1]
        rows_of: dict[int, set[str]] = defaultdict(set)
        for r in rows:
            if r["module_type"] == "chapter":
                rows_of[int(r["student_id"])].add(re.split(r"[/@]", r["module_id"])[-1])
        touched = m["learner_counts"][cid]["chapters_touched"]
        assert {u: len(chs) for u, chs in rows_of.items()} == {int(u): n for u, n in touched.items()}
        for (course, uid), chapters in named.items():
            if course == cid:
                assert chapters <= rows_of[uid], (cid, uid)
                checked += 1
        assert not any(rows_of.get(u) for u in m["learner_counts"][cid]["enrollment_only"])
    assert checked > 20
