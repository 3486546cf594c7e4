"""Streaming tracking-log generator: one gzip file per day, learner by learner.

Speed matters (tens of millions of events), so lines are built from string templates that
are prepared once per course and once per learner-day instead of calling `json.dumps` per
event. Every piece that goes into a template is either JSON-encoded when the template is
built or is made of characters that need no escaping (hex ids, digits, ASCII names).

Counts are kept as the lines are written, so the manifest never needs a second pass.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from optimus.sample import forum_activity, reading
from optimus.sample.course import Course
from optimus.sample.people import MOBILE_AGENTS, Learner
from optimus.sample.videos import speed_member, video_duration

HOST = "courses.edx.org"
HMS = [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]
IMPLICIT = '"{\\"POST\\": {}, \\"GET\\": {}}"'
MALFORMED_REASONS = ["invalid_json", "truncated", "two_objects", "comment", "not_object", "no_time", "bad_time", "invalid_utf8"]
JUNK_KINDS = ["syslog_prefix", "bom"]

# kind label -> relative weight inside a learner's session, in an older course run (`org/course/run`
# ids: the LMS's own courseware pages, `/courses/{id}/courseware/...` and seq_goto/next/prev)
WEIGHTS = {
    "courseware_url": 12,
    "progress_url": 2,
    "seq_goto": 5,
    "seq_next": 5,
    "seq_prev": 2,
    "mfe_tab_selected": 0,
    "mfe_next_selected": 0,
    "mfe_previous_selected": 0,
    "mfe_outline_selected": 0,
    "api_course_url": 0,
    "page_close": 3,
    "load_video": 4,
    "play_video": 10,
    "pause_video": 7,
    "seek_video": 3,
    "stop_video": 2,
    "speed_change_video": 1,
    "show_transcript": 1,
    "problem_check_browser": 4,
    "problem_check": 4,
    "problem_graded": 2,
    "problem_show": 1,
    "showanswer": 1,
    "problem_save": 1,
    "problem_reset": 1,
    "forum_thread_created": 0.3,
    "forum_comment_created": 0.5,
    "forum_thread_voted": 0.5,
    # forum URLs of the threads in the forum dumps and the server's search event (sample/forum_activity.py)
    "forum_read": 1,
    "forum_search": 0.3,
    "forum_upvote": 0.3,
    "forum_searched": 0.3,
    "bi_upsell": 0.5,
    # the course's textbook and wiki (the time on task's `text` kind; sample/reading.py)
    # weight 0: written by sample/reading.py with its own random stream (the draws of the others stay as they were)
    "textbook_page": 0,
    "wiki_page": 0,
    # written only after another event, never drawn (weight 0): see _follow
    "xblock_render": 0,
    "xblock_handler": 0,
    "grades_problem_submitted": 0,
    "grades_subsection_calculated": 0,
    "mobile_video_played": 2,
    "mobile_video_paused": 1.5,
    "mobile_video_loaded": 1,
    "mobile_video_stopped": 0.5,
    "mobile_video_position_changed": 0.5,
    "mobile_video_transcript_shown": 0.3,
    "dashboard": 1,
    "login_ajax": 0.5,
}
# a current course run (`course-v1:` ids) in the Learning MFE: no courseware URLs and no seq_*; the
# MFE's edx.ui.lms.* navigation, each followed by the unit's `/xblock/` render (the most frequent page
# event), the MFE's versioned course API calls, and `/xblock/.../handler/` calls after server problem events
MFE_WEIGHTS = {
    **WEIGHTS,
    "courseware_url": 0,
    "seq_goto": 0,
    "seq_next": 0,
    "seq_prev": 0,
    "mfe_tab_selected": 6,
    "mfe_next_selected": 6,
    "mfe_previous_selected": 2,
    "mfe_outline_selected": 2,
    "api_course_url": 1.5,
}
NON_COURSE = {"dashboard", "login_ajax", "heartbeat"}
KINDS = list(WEIGHTS)
K_COURSEWARE, K_PAGE_CLOSE, K_PLAY = KINDS.index("courseware_url"), KINDS.index("page_close"), KINDS.index("play_video")
K_CHECK, K_MOBILE, K_NONCOURSE = KINDS.index("problem_check"), KINDS.index("mobile_video_played"), KINDS.index("dashboard")
K_MPLAY = K_MOBILE
K_RENDER, K_HANDLER = KINDS.index("xblock_render"), KINDS.index("xblock_handler")
K_GRADED, K_SUBSECTION = KINDS.index("grades_problem_submitted"), KINDS.index("grades_subsection_calculated")
K_TRANSCRIPT, K_MTRANSCRIPT = KINDS.index("show_transcript"), KINDS.index("mobile_video_transcript_shown")
K_READING = {"textbook_page": KINDS.index("textbook_page"), "wiki_page": KINDS.index("wiki_page")}
MOBILE_NAMES = {
    "edx.video.played": "mobile_video_played",
    "edx.video.paused": "mobile_video_paused",
    "edx.video.loaded": "mobile_video_loaded",
    "edx.video.stopped": "mobile_video_stopped",
    "edx.video.position.changed": "mobile_video_position_changed",
    "edx.video.transcript.shown": "mobile_video_transcript_shown",
}
MFE_NAMES = {
    "edx.ui.lms.sequence.tab_selected": "mfe_tab_selected",
    "edx.ui.lms.sequence.next_selected": "mfe_next_selected",
    "edx.ui.lms.sequence.previous_selected": "mfe_previous_selected",
    "edx.ui.lms.outline.selected": "mfe_outline_selected",
    "edx.grades.problem.submitted": "grades_problem_submitted",
    "edx.grades.subsection.grade_calculated": "grades_subsection_calculated",
}
MFE_HOST = "apps.learning.edx.org"


def kind_of(ev: dict) -> str:
    """The manifest's kind label of a parsed event (the labels of `WEIGHTS`, plus enrolment and heartbeat)."""
    src, et = ev.get("event_source"), ev.get("event_type", "")
    if src == "mobile":
        return MOBILE_NAMES[ev["name"]]
    if et in MFE_NAMES:
        return MFE_NAMES[et]
    if et.startswith("edx.bi."):
        return "bi_upsell"
    if "/xblock/" in et:
        return "xblock_render" if et.startswith("/xblock/") else "xblock_handler"
    if et.startswith("/api/courses/"):
        return "api_course_url"
    if et.startswith("/courses/") and "/discussion/" in et:
        return "forum_search" if et.endswith("/forum/search") else "forum_upvote" if et.endswith("/upvote") else "forum_read"
    if et.startswith("textbook."):
        return "textbook_page"
    if et.startswith("/courses/") and "/wiki/" in et:
        return "wiki_page"
    if et.startswith("/courses/"):
        return "courseware_url" if "/courseware/" in et else "progress_url"
    if et in ("/heartbeat", "/dashboard", "/login_ajax"):
        return et[1:]
    if et == "problem_check":
        return "problem_check" if src == "server" else "problem_check_browser"
    for pre, label in (("edx.forum.", "forum_"), ("edx.course.enrollment.", "enrollment_")):
        if et.startswith(pre):
            return label + et[len(pre) :].replace(".", "_")
    return et


def _course_only_in_block(ev: dict) -> bool:
    """An event whose course is only in an /xblock/ usage key (no course in its context): not a duplicate candidate."""
    return not (ev.get("context") or {}).get("course_id") and "/xblock/" in ev.get("event_type", "") + (ev.get("page") or "")


# quirks of `EventWriter._odd_shapes` (in the manifest's per-file ``quirks``)
ODD_SHAPES = ("course_only_in_api_url", "course_only_top_level", "username_padded")
STAT_FIELDS = ["nevents", "ndays_act", "nplay_video", "nchapters", "nproblems_checked"]


class _Video:
    __slots__ = ("eid", "code", "usage", "module", "duration")

    def __init__(self, course: Course, url_name: str, youtube: str, name: str) -> None:
        self.duration = video_duration(url_name)
        self.eid = course.old_video_id(url_name)
        self.code = youtube
        self.usage = course.usage_key("video", url_name)
        self.module = json.dumps({"display_name": name, "usage_key": self.usage})


class _Problem:
    __slots__ = ("index", "usage", "inp", "module", "url")

    def __init__(self, course: Course, index: int, url_name: str, name: str) -> None:
        self.index = index
        self.usage = course.usage_key("problem", url_name)
        self.inp = course.input_id(url_name)
        self.module = json.dumps({"display_name": name, "usage_key": self.usage})
        self.url = f"/courses/{course.course_id}/xblock/{self.usage}/handler/xmodule_handler/problem_check"


class _Chapter:
    __slots__ = ("bit", "seqs", "paths", "pages", "videos", "problems", "seq_usages", "units", "mfe_pages")

    def __init__(self, bit: int) -> None:
        self.bit = bit
        self.seqs: list[str] = []
        self.paths: list[str] = []  # implicit URL event_type
        self.pages: list[str] = []  # JSON-encoded page URL
        self.seq_usages: list[str] = []
        self.units: list[list[str]] = []  # per sequential, its verticals' usage keys
        self.mfe_pages: list[str] = []  # JSON-encoded Learning MFE page of a sequential (current courses)
        self.videos: list[_Video] = []
        self.problems: list[_Problem] = []


class CourseTemplates:
    """Per-course strings reused by every event of the course."""

    def __init__(self, course: Course) -> None:
        self.course = course
        cid = course.course_id
        self.cid = cid
        self.org = course.org
        enc = quote(cid, safe="") if course.new_form else cid
        # a current course runs in the Learning MFE: its units render in an iframe at /xblock/{usage}
        self.mfe = course.new_form
        self.chapters: list[_Chapter] = []
        p_index = 0
        for i, ch in enumerate(course.chapters):
            c = _Chapter(1 << i)
            for seq, units in zip(ch.sequentials, ch.units, strict=True):
                path = f"/courses/{cid}/courseware/{ch.url_name}/{seq}/"
                c.seqs.append(seq)
                c.paths.append(path)
                c.seq_usages.append(course.usage_key("sequential", seq))
                c.units.append([course.usage_key("vertical", u) for u in units])
                if self.mfe:
                    frame = f"https://{HOST}/xblock/{c.units[-1][0]}?show_title=0&show_bookmark_button=0&recheck_access=1&view=student_view"
                    c.pages.append(json.dumps(frame))
                    c.mfe_pages.append(json.dumps(f"https://{MFE_HOST}/learning/course/{cid}/{c.seq_usages[-1]}/{c.units[-1][0]}"))
                else:
                    c.pages.append(json.dumps(f"https://{HOST}{path}"))
                    c.mfe_pages.append(c.pages[-1])
            c.videos = [_Video(course, v, yt, name) for v, yt, name in ch.videos]
            for url_name, name in ch.problems:
                c.problems.append(_Problem(course, p_index, url_name, name))
                p_index += 1
            self.chapters.append(c)
        first = course.chapters[0]
        # a page whose course id is percent-encoded (new-form ids are, in real URLs)
        self.page_encoded = json.dumps(f"https://{HOST}/courses/{enc}/courseware/{first.url_name}/{first.sequentials[0]}/")
        self.api_path = f"/api/courses/v1/courses/{cid}/"  # the MFE's versioned course API (the version is no course)
        self.progress_path = f"/courses/{cid}/progress"
        self.progress_page = json.dumps(f"https://{HOST}/courses/{cid}/progress")
        self.forum_base = f"https://{HOST}/courses/{cid}/discussion/forum"
        # 2013-era browser problem_check events quote the query string inside the JSON string
        self.q = "" if course.new_form else '\\"'


class FileStats:
    """Counts for one daily file, as the manifest reports them."""

    def __init__(self, path: str, date: dt.date) -> None:
        self.path = path
        self.date = date
        self.lines = 0
        self.valid = 0
        self.malformed: dict[str, int] = {}
        self.malformed_lines: list[dict] = []
        self.junk: dict[str, int] = {}
        self.by_course: dict[str, int] = {}
        self.by_block_course: dict[str, int] = {}
        self.by_kind: dict[str, int] = {}
        self.by_event_date: dict[str, int] = {}
        self.quirks: dict[str, int] = {}

    def add(self, d: dict[str, int], key: str, n: int = 1) -> None:
        d[key] = d.get(key, 0) + n

    def as_dict(self) -> dict:
        return {
            "path": self.path,
            "date": self.date.isoformat(),
            "lines": self.lines,
            "valid": self.valid,
            "malformed": dict(sorted(self.malformed.items())),
            "malformed_lines": self.malformed_lines,
            "junk_prefixed": dict(sorted(self.junk.items())),
            "by_course": dict(sorted(self.by_course.items())),
            "by_block_course": dict(sorted(self.by_block_course.items())),
            "by_kind": dict(sorted(self.by_kind.items())),
            "by_event_date": dict(sorted(self.by_event_date.items())),
            "quirks": dict(sorted(self.quirks.items())),
        }


class Session:
    """A learner's visit to one course on one day; holds the learner-day strings."""

    __slots__ = ("head", "mhead", "ctx", "ctx0", "ct", "ch", "si", "page", "username", "uid", "follow")
    head: str
    mhead: str
    ctx: str
    ctx0: str
    ct: CourseTemplates
    ch: _Chapter
    si: int
    page: str
    username: str
    uid: int
    follow: list[tuple[int, str]]  # (kind, line): events the last one caused (an /xblock/ render, a handler call)


class EventWriter:
    """Generates and writes the daily event files; keeps per-learner statistics for the manifest."""

    def __init__(
        self,
        courses: list[Course],
        learners: list[Learner],
        start: dt.date,
        days: int,
        seed: int,
        org: str,
        malformed: bool,
        per_day: float,
    ) -> None:
        self.cts = [CourseTemplates(c) for c in courses]
        self.learners = learners
        self.start = start
        self.days = days
        self.seed = seed
        self.org = org
        self.malformed = malformed
        # learners active on a day make `burst` events on average, so that the mean over
        # learners with events is about `per_day`
        active = [learner.engagement for learner in learners if learner.kind == "active"]
        mean_eng = sum(active) / len(active) if active else 0.5
        self.burst = max(1.0, per_day / mean_eng)
        kinds = KINDS
        self.kind_names = kinds
        scale = 4  # weights to integer repeats
        self.kind_tables: dict[bool, list[int]] = {}  # by whether the course runs in the Learning MFE
        for mfe, weights in ((False, WEIGHTS), (True, MFE_WEIGHTS)):
            self.kind_tables[mfe] = [i for i, k in enumerate(kinds) if weights[k] > 0 for _ in range(max(1, int(weights[k] * scale)))]
        self.funcs = [getattr(self, "_" + k) for k in kinds]
        # per course: user_id -> [nevents, days bitmask, nplay_video, chapter bitmask, problem set bitmask]
        self.stats: list[dict[int, list[int]]] = [{} for _ in courses]
        # per course: user_id -> [events whose type contains /xblock/ (with a course), transcript events,
        # events whose course is only in the /xblock/ block id of their page, bitmask of the chapters touched]
        self.extra_stats: list[dict[int, list[int]]] = [{} for _ in courses]
        self.enrolled_seen: list[set[int]] = [set() for _ in courses]  # learners with an enrolment event
        self.other_seen: list[set[int]] = [set() for _ in courses]  # learners with any other event of the course
        self.files: list[FileStats] = []
        self.duplicate: dict | None = None
        self._dup_line: str | None = None
        self._dup_meta: tuple[str, str, str] | None = None
        self._forum_ids = 0
        # course id -> the (thread id, discussion id) of its forum dump's threads (set before writing events)
        self.forum_threads: dict[str, list[tuple[str, str]]] = {}
        # (user_id, problem usage key) -> the learner's server problem checks so far: each check says its
        # attempt number, so a learner's checks of a problem count 1, 2, 3 in the order they are written
        self._attempts: dict[tuple[int, str], int] = {}

    # ----- helpers -------------------------------------------------------------------------------

    def _plan_specials(self, day: int) -> list[str]:
        """Which malformed reasons and junk prefixes go into this day's file."""
        if not self.malformed:
            return []
        out = [r for i, r in enumerate(MALFORMED_REASONS) if i % self.days == day % self.days]
        out += [j for i, j in enumerate(JUNK_KINDS) if (i + 3) % self.days == day % self.days]
        return out

    def _timefmt(self, prefix: str, sec: int, us: int) -> str:
        return f"{prefix}{HMS[sec]}.{us:06d}+00:00"

    # ----- the main loop -------------------------------------------------------------------------

    def write_day(self, out_dir: Path, day: int, progress: Callable[[str, int], None] | None = None) -> FileStats:
        date = self.start + dt.timedelta(days=day)
        name = f"{self.org}-edx-events-{date.isoformat()}.log.gz"
        fs = FileStats(f"clickstream_logs/events/{name}", date)
        rng = random.Random(f"{self.seed}:events:{date.isoformat()}")
        rand = rng.random
        getrandbits = rng.getrandbits
        prefixes = [(date - dt.timedelta(days=k)).isoformat() + "T" for k in range(4)]
        P = prefixes[0]
        self._recv_str = f"{P}23:59:59.999999+00:00"
        syslog = f"{date:%b} {date.day:2d} 10:00:01 ip-10-0-11-59 tracking: "
        day_str = date.isoformat()
        funcs = self.funcs
        kind_counts = [0] * len(funcs)
        burst2 = 2 * self.burst - 1
        agents = {a: json.dumps(a) for a in {learner.agent for learner in self.learners}}
        specials = self._plan_specials(day)
        n_learners = max(1, len(self.learners))
        # spread the special lines over the file by learner position
        slots = sorted((int(rng.random() * n_learners), s) for s in specials)
        by_course = {ct.cid: 0 for ct in self.cts}
        noncourse = 0
        late_by_date: dict[str, int] = {}
        quirk_uid_empty = quirk_uid_missing = quirk_in_url = quirk_in_page = quirk_in_block = 0
        quirk_no_tz = quirk_no_us = 0
        odd_quirks: dict[str, int] = {}
        buf: list[str] = []
        lineno = 0
        raw = open(out_dir / name, "wb")
        gz = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=1)
        try:
            # health checks from the load balancer: no user, no course
            n_hb = max(3, len(self.learners) // 25)
            for _ in range(n_hb):
                sec = int(rand() * 86400)
                buf.append(
                    f'{{"username": "", "host": "10.0.11.59", "event_source": "server", "event_type": "/heartbeat", '
                    f'"time": "{P}{HMS[sec]}.{int(rand() * 1e6):06d}+00:00", "ip": "127.0.0.1", "event": {IMPLICIT}, '
                    f'"agent": "ELB-HealthChecker/2.0", "page": null}}\n'
                )
            lineno += n_hb
            noncourse += n_hb
            first_heartbeat = buf[0]
            fs.add(fs.by_kind, "heartbeat", n_hb)
            if self._dup_line is not None and day > 0:
                # the same line re-delivered in the next day's file
                buf.append(self._dup_line)
                lineno += 1
                assert self._dup_meta is not None and self.duplicate is not None  # both are set with _dup_line
                cid, kind, edate = self._dup_meta
                by_course[cid] = by_course.get(cid, 0) + 1
                fs.add(fs.by_kind, kind)
                late_by_date[edate] = late_by_date.get(edate, 0) + 1
                self.duplicate["files"].append(fs.path)
                self.duplicate["line_numbers"].append(lineno)
                self._dup_line = None
            slot_i = 0
            want_dup = day == 0 and self.days > 1
            for li, learner in enumerate(self.learners):
                while slot_i < len(slots) and slots[slot_i][0] <= li and slots[slot_i][1] in MALFORMED_REASONS:
                    reason = slots[slot_i][1]
                    if buf:
                        gz.write("".join(buf).encode())
                        buf = []
                    gz.write(self._malformed_line(reason, P, rng))
                    lineno += 1
                    fs.add(fs.malformed, reason)
                    fs.malformed_lines.append({"line": lineno, "reason": reason})
                    slot_i += 1
                if learner.kind != "active":
                    continue
                for enr in learner.enrollments:
                    # half the learners who enrol during the sample never come back: the enrolment events only
                    only_enrols = learner.user_id % 2 == 0 and enr.created.date() >= self.start
                    enrolled_today = enr.created.date() == date
                    if enr.created.date() > date or (not enrolled_today and (only_enrols or rand() >= learner.engagement)):
                        continue
                    ct = self.cts[enr.course]
                    kind_table = self.kind_tables[ct.mfe]
                    nk = len(kind_table)
                    uid = learner.user_id
                    r = rand()
                    if r < 0.03:
                        uidpart = '"user_id": "", '
                        quirk = 1
                    elif r < 0.05:
                        uidpart = ""
                        quirk = 2
                    else:
                        uidpart = f'"user_id": {uid}, '
                        quirk = 0
                    s = Session()
                    s.username = learner.username
                    s.uid = uid
                    s.ct = ct
                    s.follow = []
                    s.head = (
                        f'{{"username": "{learner.username}", "session": "{getrandbits(128):032x}", '
                        f'"ip": "{learner.ip}", "agent": {agents[learner.agent]}, "host": "{HOST}", '
                        f'"accept_language": "{learner.lang}", '
                    )
                    s.ctx = f'{{"course_id": "{ct.cid}", "org_id": "{ct.org}", {uidpart}"path": '
                    s.ctx0 = f'{{"course_id": "", "org_id": "", {uidpart}"path": '
                    s.mhead = (
                        f'{{"username": "{learner.username}", "ip": "{learner.ip}", "agent": "{MOBILE_AGENTS[uid % 2]}", "host": "{HOST}", '
                    )
                    ch = ct.chapters[int(rand() * len(ct.chapters))]
                    s.ch = ch
                    s.si = int(rand() * len(ch.seqs))
                    s.page = ch.pages[s.si]
                    sec = int(rand() * 80000)
                    lines: list[str] = []
                    stats = self.stats[enr.course].get(uid)
                    if stats is None:
                        stats = self.stats[enr.course][uid] = [0, 0, 0, 0, 0]
                    nplay = 0
                    extra = self.extra_stats[enr.course].setdefault(uid, [0, 0, 0, 0])
                    chbits = stats[3]
                    pbits = stats[4]
                    late = 0
                    n_nc = 0
                    if enrolled_today:
                        sec = enr.created.hour * 3600 + enr.created.minute * 60 + enr.created.second
                        lines.append(self._enrollment(s, "activated", enr.mode, P, sec, enr.created.microsecond))
                        kind_counts_extra = ["enrollment_activated"]
                        if enr.mode == "verified":
                            sec = min(86399, sec + 60)
                            lines.append(self._enrollment(s, "mode_changed", "verified", P, sec, 1000))
                            kind_counts_extra.append("enrollment_mode_changed")
                            lines.append(self._enrollment(s, "upgrade.succeeded", "verified", P, sec, 1500))
                            kind_counts_extra.append("enrollment_upgrade_succeeded")
                        if not enr.is_active:
                            sec = min(86399, sec + 600)
                            lines.append(self._enrollment(s, "deactivated", enr.mode, P, sec, 2000))
                            kind_counts_extra.append("enrollment_deactivated")
                        for extra_kind in kind_counts_extra:
                            fs.add(fs.by_kind, extra_kind)
                    n = int(1 + rand() * burst2) if (not enrolled_today or rand() < 0.7) and not only_enrols else 0
                    for _ in range(n):
                        sec += 1 + int(rand() * rand() * 240)
                        if sec > 86399:
                            sec = 86399
                        k = kind_table[int(rand() * nk)]
                        kind_counts[k] += 1
                        if k >= K_MOBILE:  # mobile and non-course kinds come last in WEIGHTS
                            if k >= K_NONCOURSE:
                                n_nc += 1
                                t = f"{P}{HMS[sec]}.{int(rand() * 1e6):06d}+00:00"
                            elif rand() < 0.25:
                                # mobile apps upload late: the event is up to 3 days older than the file
                                back = 1 + int(rand() * 3)
                                late += 1
                                edate = prefixes[back][:-1]
                                late_by_date[edate] = late_by_date.get(edate, 0) + 1
                                stats[1] |= 1 << (day - back + 3)
                                t = f"{prefixes[back]}{HMS[sec]}.{int(rand() * 1e6):06d}+00:00"
                            else:
                                t = f"{P}{HMS[sec]}.{int(rand() * 1e6):06d}+00:00"
                            if k == K_MPLAY:
                                nplay += 1
                        else:
                            t = f"{P}{HMS[sec]}.{int(rand() * 1e6):06d}+00:00"
                            if k == K_PLAY:
                                nplay += 1
                        lines.append(funcs[k](s, t, rand))
                        if k < K_NONCOURSE:
                            extra[3] |= s.ch.bit  # the chapter of the block, page or URL the event names
                        if k == K_CHECK:
                            pbits |= 1 << self._last_problem
                        elif k == K_COURSEWARE:
                            chbits |= s.ch.bit  # the chapter the URL event just moved to
                        elif k == K_TRANSCRIPT or k == K_MTRANSCRIPT:
                            extra[1] += 1
                        for fk, line in s.follow:
                            # written in the same second, right after the event that caused it
                            lines.append(line)
                            kind_counts[fk] += 1
                            if fk == K_RENDER:  # no course in its context: the course is only in the block id
                                n_nc += 1
                                fs.add(fs.by_block_course, ct.cid)
                            elif fk == K_HANDLER:
                                extra[0] += 1
                        s.follow = []
                    if n:
                        # some learners also read the textbook and the wiki (their own random stream)
                        for label, line in reading.session(s, f"{self.seed}:{day_str}:{enr.course}:{uid}", uid, P, sec):
                            lines.append(line)
                            kind_counts[K_READING[label]] += 1
                    if not lines:
                        continue
                    # a few times without time zone or without microseconds
                    if rand() < 0.02 and not late:
                        # every line ends with '.ffffff+00:00"}\n'
                        lines[-1] = lines[-1][:-9] + '"}\n'
                        quirk_no_tz += 1
                    elif rand() < 0.02 and not late:
                        lines[-1] = lines[-1][:-16] + '+00:00"}\n'
                        quirk_no_us += 1
                    if rand() < 0.05 and len(lines) > 1 and not enrolled_today:
                        # course only in the URL: implicit event with an empty context course_id
                        lines.append(self._courseware_url(s, f"{P}{HMS[sec]}.{int(rand() * 1e6):06d}+00:00", rand, empty=True))
                        kind_counts[K_COURSEWARE] += 1
                        chbits |= s.ch.bit
                        extra[3] |= s.ch.bit
                        quirk_in_url += 1
                    if rand() < 0.05 and len(lines) > 1 and not enrolled_today:
                        lines.append(self._page_close(s, f"{P}{HMS[sec]}.{int(rand() * 1e6):06d}+00:00", rand, empty=True))
                        kind_counts[K_PAGE_CLOSE] += 1
                        extra[3] |= ct.chapters[0].bit  # its page is the first chapter's courseware URL
                        quirk_in_page += 1
                    if ct.mfe and rand() < 0.05 and len(lines) - n_nc - late > 0 and not enrolled_today:
                        # from the unit's iframe with no course in the context: the course is only in the page's block id
                        lines.append(self._page_close_in_frame(s, f"{P}{HMS[sec]}.{int(rand() * 1e6):06d}+00:00"))
                        kind_counts[K_PAGE_CLOSE] += 1
                        n_nc += 1
                        fs.add(fs.by_block_course, ct.cid)
                        extra[2] += 1
                        extra[3] |= s.ch.bit
                        quirk_in_block += 1
                    if len(lines) > 1 and not enrolled_today and quirk == 0:
                        # the course or the learner written in a less usual place (a few sessions, no random draw)
                        for qname, kname, line in self._odd_shapes(s, P, sec, day):
                            lines.append(line)
                            kind_counts[KINDS.index(kname)] += 1
                            odd_quirks[qname] = odd_quirks.get(qname, 0) + 1
                            quirk_uid_empty += qname == "username_padded"  # its user_id is empty
                    nl = len(lines)
                    n_enrol = len(kind_counts_extra) if enrolled_today else 0
                    if n_enrol:
                        self.enrolled_seen[enr.course].add(uid)
                    if nl - n_nc - n_enrol > 0:
                        self.other_seen[enr.course].add(uid)
                    if quirk == 1:
                        quirk_uid_empty += nl
                    elif quirk == 2:
                        quirk_uid_missing += nl
                    while slot_i < len(slots) and slots[slot_i][0] <= li and slots[slot_i][1] in JUNK_KINDS:
                        junk = slots[slot_i][1]
                        lines[0] = (syslog if junk == "syslog_prefix" else "\ufeff") + lines[0]
                        fs.add(fs.junk, junk)
                        slot_i += 1
                    if want_dup and li * 3 >= n_learners and not late and nl > 1 and not _course_only_in_block(json.loads(lines[1])):
                        want_dup = False
                        kname = kind_of(json.loads(lines[1]))
                        self._dup_line = lines[1]
                        self._dup_meta = (ct.cid if kname not in NON_COURSE else "", kname, day_str)
                        self.duplicate = {
                            "course_id": self._dup_meta[0],
                            "kind": kname,
                            "event_date": day_str,
                            "files": [fs.path],
                            "line_numbers": [lineno + 2],
                        }
                    buf.extend(lines)
                    lineno += nl
                    by_course[ct.cid] += nl - n_nc
                    noncourse += n_nc
                    stats[0] += nl - n_nc
                    if nl - n_nc - late > 0:  # a session of only late (older) events is not active on the file's day
                        stats[1] |= 1 << (day + 3)
                    stats[2] += nplay
                    stats[3] = chbits
                    stats[4] = pbits
                    if len(buf) > 4000:
                        gz.write("".join(buf).encode())
                        buf = []
            if want_dup:
                # too few sessions to pick from: re-deliver the first health check instead
                self._dup_line = first_heartbeat
                self._dup_meta = ("", "heartbeat", day_str)
                self.duplicate = {"course_id": "", "kind": "heartbeat", "event_date": day_str, "files": [fs.path], "line_numbers": [1]}
            # specials that found no learner position go at the end
            for _, special in slots[slot_i:]:
                if special in MALFORMED_REASONS:
                    if buf:
                        gz.write("".join(buf).encode())
                        buf = []
                    gz.write(self._malformed_line(special, P, rng))
                    lineno += 1
                    fs.add(fs.malformed, special)
                    fs.malformed_lines.append({"line": lineno, "reason": special})
                else:
                    pre = syslog if special == "syslog_prefix" else "\ufeff"
                    buf.append(
                        pre + f'{{"username": "", "host": "10.0.11.59", "event_source": "server", '
                        f'"event_type": "/heartbeat", "time": "{P}23:59:59.000001+00:00", "ip": "127.0.0.1", '
                        f'"event": {IMPLICIT}, "agent": "ELB-HealthChecker/2.0", "page": null}}\n'
                    )
                    lineno += 1
                    noncourse += 1
                    fs.add(fs.by_kind, "heartbeat")
                    fs.add(fs.junk, special)
            if buf:
                gz.write("".join(buf).encode())
        finally:
            gz.close()
            raw.close()
        fs.lines = lineno
        fs.valid = lineno - sum(fs.malformed.values())
        for cid, n in by_course.items():
            if n:
                fs.by_course[cid] = n
        if noncourse:
            fs.by_course[""] = noncourse
        for i, n in enumerate(kind_counts):
            if n:
                fs.add(fs.by_kind, self.kind_names[i], n)
        late_total = sum(late_by_date.values())
        fs.by_event_date = dict(late_by_date)
        fs.by_event_date[day_str] = fs.valid - late_total
        for key, n in [
            ("user_id_empty", quirk_uid_empty),
            ("user_id_missing", quirk_uid_missing),
            ("course_only_in_url", quirk_in_url),
            ("course_only_in_page", quirk_in_page),
            ("course_only_in_xblock_page", quirk_in_block),
            ("time_no_tz", quirk_no_tz),
            ("time_no_microseconds", quirk_no_us),
            ("late", late_total),
            *((q, odd_quirks.get(q, 0)) for q in ODD_SHAPES),
        ]:
            fs.quirks[key] = n
        self.files.append(fs)
        if progress:
            progress(fs.path, fs.lines)
        return fs

    def extra_learner_stats(self) -> dict[str, dict[str, Any]]:
        """Per course: per user_id (learners with any) xblock_events, transcript_events, block_course_events; the enrolment-only learners."""
        out: dict[str, dict[str, Any]] = {}
        for ct, extra, enrolled, other in zip(self.cts, self.extra_stats, self.enrolled_seen, self.other_seen, strict=True):
            out[ct.cid] = {
                "xblock_events": {str(uid): e[0] for uid, e in sorted(extra.items()) if e[0]},
                "transcript_events": {str(uid): e[1] for uid, e in sorted(extra.items()) if e[1]},
                "block_course_events": {str(uid): e[2] for uid, e in sorted(extra.items()) if e[2]},
                "chapters_touched": {str(uid): bin(e[3]).count("1") for uid, e in sorted(extra.items()) if e[3]},
                "enrollment_only": sorted(enrolled - other),
            }
        return out

    def chapters_touched(self) -> list[dict[int, list[int]]]:
        """Per course (in order), per user_id: the indexes of the published chapters their events touched."""
        return [
            {uid: [i for i in range(len(ct.chapters)) if e[3] >> i & 1] for uid, e in extra.items() if e[3]}
            for ct, extra in zip(self.cts, self.extra_stats, strict=True)
        ]

    def learner_stats(self) -> dict[str, dict[str, list[int]]]:
        """Per course, per user_id: [nevents, ndays_act, nplay_video, nchapters, nproblems_checked]."""
        out: dict[str, dict[str, list[int]]] = {}
        for ct, stats in zip(self.cts, self.stats, strict=True):
            out[ct.cid] = {
                str(uid): [s[0], bin(s[1]).count("1"), s[2], bin(s[3]).count("1"), bin(s[4]).count("1")] for uid, s in sorted(stats.items())
            }
        return out

    # ----- special lines -------------------------------------------------------------------------

    def _malformed_line(self, reason: str, P: str, rng: random.Random) -> bytes:
        """One line that a careful reader must reject, for the named reason."""
        sec = rng.randint(0, 86399)
        t = f"{P}{HMS[sec]}.{rng.randint(0, 999999):06d}+00:00"
        good = (
            f'{{"username": "ghost", "event_source": "server", "event_type": "/dashboard", "ip": "1.120.5.9", '
            f'"agent": "curl/8.5.0", "host": "{HOST}", "event": {IMPLICIT}, "page": null, '
            f'"context": {{"course_id": "", "org_id": "", "user_id": 1, "path": "/dashboard"}}, "time": "{t}"}}'
        )
        if reason == "invalid_json":
            text = good.replace('"event_source": "server",', '"event_source": server,,')
        elif reason == "truncated":
            text = good[: len(good) // 2]
        elif reason == "two_objects":
            text = good + good.replace("ghost", "ghost2")
        elif reason == "comment":
            text = "# tracking log re-opened after logrotate"
        elif reason == "not_object":
            text = '["play_video", "' + t + '"]'
        elif reason == "no_time":
            text = good[: good.rindex(', "time"')] + "}"
        elif reason == "bad_time":
            text = good.replace(t, f"{P[:-1]} 25:61:00 yesterday")
        elif reason == "invalid_utf8":
            return good.replace('"ghost"', '"gh\udcffost"').encode("utf-8", "surrogateescape") + b"\n"
        else:  # pragma: no cover
            raise ValueError(reason)
        return text.encode() + b"\n"

    # ----- event kinds (same order as WEIGHTS; each returns one line) ------------------------------

    def _enrollment(self, s: Session, what: str, mode: str, P: str, sec: int, us: int) -> str:
        cid = s.ct.cid
        return (
            f'{s.head}"event_source": "server", "event_type": "edx.course.enrollment.{what}", '
            f'"name": "edx.course.enrollment.{what}", "event": {{"course_id": "{cid}", "user_id": {s.uid}, '
            f'"mode": "{mode}"}}, "page": null, "context": {s.ctx}"/change_enrollment"}}, '
            f'"time": "{P}{HMS[sec]}.{us:06d}+00:00"}}\n'
        )

    def _courseware_url(self, s: Session, t: str, rand, empty: bool = False) -> str:
        ch = s.ct.chapters[int(rand() * len(s.ct.chapters))]
        s.ch = ch
        s.si = int(rand() * len(ch.seqs))
        s.page = ch.pages[s.si]
        path = ch.paths[s.si]
        ctx = s.ctx0 if empty else s.ctx
        return (
            f'{s.head}"event_source": "server", "event_type": "{path}", "event": {IMPLICIT}, '
            f'"page": null, "context": {ctx}"{path}"}}, "time": "{t}"}}\n'
        )

    def _progress_url(self, s: Session, t: str, rand) -> str:
        path = s.ct.progress_path
        return (
            f'{s.head}"event_source": "server", "event_type": "{path}", "event": {IMPLICIT}, '
            f'"page": null, "context": {s.ctx}"{path}"}}, "time": "{t}"}}\n'
        )

    def _seq(self, s: Session, t: str, rand, etype: str, old: int, new: int) -> str:
        usage = s.ch.seq_usages[s.si]
        return (
            f'{s.head}"event_source": "browser", "event_type": "{etype}", '
            f'"event": "{{\\"old\\": {old}, \\"new\\": {new}, \\"id\\": \\"{usage}\\"}}", '
            f'"page": {s.page}, "context": {s.ctx}"/event"}}, "time": "{t}"}}\n'
        )

    def _seq_goto(self, s, t, rand):
        return self._seq(s, t, rand, "seq_goto", 1, 2 + int(rand() * 4))

    def _seq_next(self, s, t, rand):
        o = 1 + int(rand() * 4)
        return self._seq(s, t, rand, "seq_next", o, o + 1)

    def _seq_prev(self, s, t, rand):
        o = 2 + int(rand() * 4)
        return self._seq(s, t, rand, "seq_prev", o, o - 1)

    # Learning MFE (current courses): navigation in the browser, then the unit's render at /xblock/{usage}

    def _mfe(self, s: Session, t: str, rand, etype: str, payload: str, page: str, tail: str | None = None) -> str:
        unit = s.ch.units[s.si][int(rand() * len(s.ch.units[s.si]))]
        s.follow.append((K_RENDER, self._xblock_render_of(s, t, unit)))
        if tail is None:  # the sequence navigation's fields
            tail = f'\\"id\\": \\"{s.ch.seq_usages[s.si]}\\", \\"widget_placement\\": \\"top\\"'
        return (
            f'{s.head}"event_source": "browser", "event_type": "{etype}", "name": "{etype}", '
            f'"event": "{{{payload}, {tail}}}", '
            f'"page": {page}, "context": {s.ctx}"/event"}}, "time": "{t}"}}\n'
        )

    def _mfe_tab_selected(self, s, t, rand):
        n = len(s.ch.units[s.si])
        return self._mfe(
            s,
            t,
            rand,
            "edx.ui.lms.sequence.tab_selected",
            f'\\"current_tab\\": 1, \\"target_tab\\": {1 + int(rand() * n)}, \\"tab_count\\": {n}',
            s.ch.mfe_pages[s.si],
        )

    def _mfe_next_selected(self, s, t, rand):
        n = len(s.ch.units[s.si])
        return self._mfe(
            s, t, rand, "edx.ui.lms.sequence.next_selected", f'\\"current_tab\\": 1, \\"tab_count\\": {n}', s.ch.mfe_pages[s.si]
        )

    def _mfe_previous_selected(self, s, t, rand):
        n = len(s.ch.units[s.si])
        return self._mfe(
            s, t, rand, "edx.ui.lms.sequence.previous_selected", f'\\"current_tab\\": {n}, \\"tab_count\\": {n}', s.ch.mfe_pages[s.si]
        )

    def _mfe_outline_selected(self, s, t, rand):
        ch = s.ct.chapters[int(rand() * len(s.ct.chapters))]
        s.ch = ch
        s.si = int(rand() * len(ch.seqs))
        s.page = ch.pages[s.si]
        home_url = f"https://{MFE_HOST}/learning/course/{s.ct.cid}/home"
        # the Learning MFE's outline logs the link it follows: {base}/course/{course id}/{sequence}/{unit}
        target = f"https://{MFE_HOST}/learning/course/{s.ct.cid}/{ch.seq_usages[s.si]}/{ch.units[s.si][0]}"
        tail = f'\\"target_url\\": \\"{target}\\", \\"current_url\\": \\"{home_url}\\", \\"widget_placement\\": \\"accordion\\"'
        return self._mfe(s, t, rand, "edx.ui.lms.outline.selected", '\\"target_name\\": \\"Lesson\\"', json.dumps(home_url), tail)

    def _odd_shapes(self, s: Session, P: str, sec: int, day: int) -> list[tuple[str, str, str]]:
        """(quirk, kind, line) of the rarer shapes issue 16 lists, chosen by
        learner and day (no random draw, so the rest of the file is unchanged): a versioned course API URL with
        no course in the context (`/api/courses/v1/courses/{id}/`: the version segment is no course), an old
        log line with a top-level `course_id` and no `context`, and a username padded with white space (and no
        user_id, so only the stripped name finds the learner); on the sample's second day only, one shape for
        three learners in five. Each names no chapter and is on the file's day."""
        if day != 1:  # the second day only: lines without a user_id keep their learner out of some tests' references
            return []
        pick = s.uid % 5
        t = f"{P}{HMS[sec]}.{s.uid % 1000000:06d}+00:00"
        if pick == 0:
            path = s.ct.api_path
            return [
                (
                    "course_only_in_api_url",
                    "api_course_url",
                    f'{s.head}"event_source": "server", "event_type": "{path}", "event": {IMPLICIT}, '
                    f'"page": null, "context": {s.ctx0}"{path}"}}, "time": "{t}"}}\n',
                )
            ]
        if pick == 1:
            return [
                (
                    "course_only_top_level",
                    "page_close",
                    f'{s.head}"event_source": "browser", "event_type": "page_close", "event": "", '
                    f'"page": null, "course_id": "{s.ct.cid}", "time": "{t}"}}\n',
                )
            ]
        if pick == 2:
            head = s.head.replace(f'"username": "{s.username}"', f'"username": "  {s.username}\\t"', 1)
            path = s.ct.progress_path
            return [
                (
                    "username_padded",
                    "progress_url",
                    f'{head}"event_source": "server", "event_type": "{path}", "event": {IMPLICIT}, '
                    f'"page": null, "context": {{"course_id": "{s.ct.cid}", "org_id": "{s.ct.org}", "user_id": "", '
                    f'"path": "{path}"}}, "time": "{t}"}}\n',
                )
            ]
        return []

    def _xblock_render_of(self, s: Session, t: str, unit: str) -> str:
        # the LMS logs the request itself; no `/courses/` in the URL, so no course in its context
        path = f"/xblock/{unit}"
        return (
            f'{s.head}"event_source": "server", "event_type": "{path}", "event": {IMPLICIT}, '
            f'"page": null, "context": {s.ctx0}"{path}"}}, "time": "{t}"}}\n'
        )

    def _xblock_render(self, s, t, rand):  # pragma: no cover - weight 0: written by _mfe only
        return self._xblock_render_of(s, t, s.ch.units[s.si][0])

    def _handler_of(self, s: Session, t: str, usage: str, action: str) -> str:
        path = f"/courses/{s.ct.cid}/xblock/{usage}/handler/xmodule_handler/{action}"
        return (
            f'{s.head}"event_source": "server", "event_type": "{path}", "event": {IMPLICIT}, '
            f'"page": null, "context": {s.ctx}"{path}"}}, "time": "{t}"}}\n'
        )

    def _xblock_handler(self, s, t, rand):  # pragma: no cover - weight 0: written after problem and video events
        return self._handler_of(s, t, s.ch.problems[0].usage, "problem_check")

    def _grades_problem_submitted_of(self, s: Session, t: str, p: _Problem, earned: int, txn: str) -> str:
        return (
            f'{s.head}"event_source": "server", "event_type": "edx.grades.problem.submitted", "name": "edx.grades.problem.submitted", '
            f'"event": {{"user_id": "{s.uid}", "course_id": "{s.ct.cid}", "problem_id": "{p.usage}", '
            f'"event_transaction_id": "{txn}", "event_transaction_type": "edx.grades.problem.submitted", '
            f'"weighted_earned": {earned}, "weighted_possible": 1}}, "page": null, '
            f'"context": {s.ctx}"{p.url}", "module": {p.module}}}, "time": "{t}"}}\n'
        )

    def _grades_problem_submitted(self, s, t, rand):  # pragma: no cover - weight 0: written after problem_check
        return self._grades_problem_submitted_of(s, t, s.ch.problems[0], 1, "0" * 32)

    def _grades_subsection_calculated_of(self, s: Session, t: str, earned: int, txn: str) -> str:
        # recomputed by a background task after the submission (event_source "task")
        return (
            f'{s.head}"event_source": "task", "event_type": "edx.grades.subsection.grade_calculated", '
            f'"name": "edx.grades.subsection.grade_calculated", '
            f'"event": {{"user_id": "{s.uid}", "course_id": "{s.ct.cid}", "block_id": "{s.ch.seq_usages[s.si]}", '
            f'"course_version": "", "weighted_total_earned": {earned}, "weighted_total_possible": 3, '
            f'"weighted_graded_earned": {earned}, "weighted_graded_possible": 3, "event_transaction_id": "{txn}", '
            f'"event_transaction_type": "edx.grades.problem.submitted"}}, "page": null, '
            f'"context": {s.ctx}""}}, "time": "{t}"}}\n'
        )

    def _grades_subsection_calculated(self, s, t, rand):  # pragma: no cover - weight 0: written after problem_check
        return self._grades_subsection_calculated_of(s, t, 0, "0" * 32)

    def _api_course_url(self, s, t, rand):
        path = s.ct.api_path
        return (
            f'{s.head}"event_source": "server", "event_type": "{path}", "event": {IMPLICIT}, '
            f'"page": null, "context": {s.ctx}"{path}"}}, "time": "{t}"}}\n'
        )

    def _show_transcript(self, s, t, rand):
        return self._video(s, t, "show_transcript", f', \\"current_time\\": {rand() * 600:.3f}', self._vid(s, rand))

    def _textbook_page(self, s, t, rand):  # pragma: no cover - weight 0: written by reading.session
        return reading.textbook_page(s, t, rand)

    def _wiki_page(self, s, t, rand):  # pragma: no cover - weight 0: written by reading.session
        return reading.wiki_page(s, t, rand)

    def _bi_upsell(self, s, t, rand):
        et = "edx.bi.course.upgrade.sidebarupsell.displayed"
        return (
            f'{s.head}"event_source": "browser", "event_type": "{et}", "name": "{et}", '
            f'"event": "{{\\"courserun_key\\": \\"{s.ct.cid}\\", \\"org_key\\": \\"{s.ct.org}\\"}}", '
            f'"page": {s.page}, "context": {s.ctx}"/event"}}, "time": "{t}"}}\n'
        )

    def _page_close_in_frame(self, s: Session, t: str) -> str:
        frame = json.dumps(f"https://{HOST}/xblock/{s.ch.units[s.si][0]}?show_title=0&view=student_view")
        return (
            f'{s.head}"event_source": "browser", "event_type": "page_close", "event": "", '
            f'"page": {frame}, "context": {s.ctx0}"/event"}}, "time": "{t}"}}\n'
        )

    def _page_close(self, s: Session, t: str, rand, empty: bool = False) -> str:
        if empty:
            return (
                f'{s.head}"event_source": "browser", "event_type": "page_close", "event": "", '
                f'"page": {s.ct.page_encoded}, "context": {s.ctx0}"/event"}}, "time": "{t}"}}\n'
            )
        return (
            f'{s.head}"event_source": "browser", "event_type": "page_close", "event": "", '
            f'"page": {s.page}, "context": {s.ctx}"/event"}}, "time": "{t}"}}\n'
        )

    def _video(self, s: Session, t: str, etype: str, extra: str, v: _Video) -> str:
        return (
            f'{s.head}"event_source": "browser", "event_type": "{etype}", "name": "{etype}", '
            f'"event": "{{\\"id\\": \\"{v.eid}\\", \\"code\\": \\"{v.code}\\"{extra}}}", '
            f'"page": {s.page}, "context": {s.ctx}"/event", "module": {v.module}}}, "time": "{t}"}}\n'
        )

    def _vid(self, s: Session, rand) -> _Video:
        vids = s.ch.videos
        return vids[int(rand() * len(vids))]

    def _load_video(self, s, t, rand):
        v = self._vid(s, rand)
        return self._video(s, t, "load_video", f', \\"duration\\": {v.duration:.3f}', v)

    def _position(self, s: Session, etype: str, t: str, rand) -> str:
        """A play, pause or stop event at a point within the video (drawn before the video, as always)."""
        if etype == "pause_video":  # (the pause event always drew its video first)
            v = self._vid(s, rand)
            at = rand()
        else:
            at = rand()
            v = self._vid(s, rand)
        if etype == "pause_video" and s.ct.mfe:  # the player saves its position through its handler
            s.follow.append((K_HANDLER, self._handler_of(s, t, v.usage, "save_user_state")))
        # today's player (current courses) also reports the video's duration in every event
        length = f', \\"duration\\": {v.duration:.3f}' if s.ct.mfe else ""
        return self._video(s, t, etype, f', \\"currentTime\\": {at * v.duration:.3f}{speed_member(s.uid)}{length}', v)

    def _play_video(self, s, t, rand):
        return self._position(s, "play_video", t, rand)

    def _pause_video(self, s, t, rand):
        return self._position(s, "pause_video", t, rand)

    def _seek_video(self, s, t, rand):
        return self._video(
            s,
            t,
            "seek_video",
            f', \\"old_time\\": {rand() * 600:.3f}, \\"new_time\\": {int(rand() * 600)}, \\"type\\": \\"onSlideSeek\\"',
            self._vid(s, rand),
        )

    def _stop_video(self, s, t, rand):
        return self._position(s, "stop_video", t, rand)

    def _speed_change_video(self, s, t, rand):
        return self._video(
            s,
            t,
            "speed_change_video",
            f', \\"current_time\\": {rand() * 600:.3f}, \\"old_speed\\": \\"1.0\\", \\"new_speed\\": \\"1.50\\"',
            self._vid(s, rand),
        )

    def _prob(self, s: Session, rand) -> _Problem:
        probs = s.ch.problems
        p = probs[int(rand() * len(probs))]
        self._last_problem = p.index
        return p

    def _problem_check_browser(self, s, t, rand):
        p = self._prob(s, rand)
        q = s.ct.q
        return (
            f'{s.head}"event_source": "browser", "event_type": "problem_check", '
            f'"event": "{q}input_{p.inp}_2_1=choice_{int(rand() * 4)}&input_{p.inp}_3_1=0.5%25+per+year{q}", '
            f'"page": {s.page}, "context": {s.ctx}"/event", "module": {p.module}}}, "time": "{t}"}}\n'
        )

    def _problem_check(self, s, t, rand):
        p = self._prob(s, rand)
        ok = rand() < 0.6
        if s.ct.mfe:  # the handler call that carried it, then the grade events it causes
            txn = f"{int(rand() * 2**64):016x}{int(rand() * 2**64):016x}"
            s.follow += [
                (K_HANDLER, self._handler_of(s, t, p.usage, "problem_check")),
                (K_GRADED, self._grades_problem_submitted_of(s, t, p, int(ok), txn)),
                (K_SUBSECTION, self._grades_subsection_calculated_of(s, t, int(ok), txn)),
            ]
        corr = "correct" if ok else "incorrect"
        rand()  # (an attempt number was drawn here: the draw is kept so every later event stays as it was)
        att = self._attempts[(s.uid, p.usage)] = self._attempts.get((s.uid, p.usage), 0) + 1
        return (
            f'{s.head}"event_source": "server", "event_type": "problem_check", "name": "problem_check", '
            f'"event": {{"state": {{"seed": 1, "done": null, "student_answers": {{}}, "correct_map": {{}}}}, '
            f'"problem_id": "{p.usage}", "answers": {{"{p.inp}_2_1": "choice_{int(ok)}"}}, "grade": {int(ok)}, '
            f'"max_grade": 1, "correct_map": {{"{p.inp}_2_1": {{"correctness": "{corr}", "npoints": null, '
            f'"msg": "", "hint": "", "hintmode": null, "queuestate": null}}}}, "success": "{corr}", '
            f'"attempts": {att}, "submission": {{"{p.inp}_2_1": {{"question": "Which option is right?", '
            f'"answer": "{"B" if ok else "A"}", "correct": {"true" if ok else "false"}, "variant": "", '
            f'"input_type": "choicegroup", "response_type": "multiplechoiceresponse"}}}}}}, '
            f'"page": null, "context": {s.ctx}"{p.url}", "module": {p.module}}}, "time": "{t}"}}\n'
        )

    def _problem_graded(self, s, t, rand):
        p = self._prob(s, rand)
        return (
            f'{s.head}"event_source": "browser", "event_type": "problem_graded", '
            f'"event": ["input_{p.inp}_2_1=choice_{int(rand() * 4)}", "\\n<div class=\\"problem\\">'
            f'\\n  <p>Which option is right?</p>\\n</div>\\n"], '
            f'"page": {s.page}, "context": {s.ctx}"/event"}}, "time": "{t}"}}\n'
        )

    def _problem_show(self, s, t, rand):
        p = self._prob(s, rand)
        return (
            f'{s.head}"event_source": "browser", "event_type": "problem_show", '
            f'"event": "{{\\"problem\\": \\"{p.usage}\\"}}", '
            f'"page": {s.page}, "context": {s.ctx}"/event"}}, "time": "{t}"}}\n'
        )

    def _showanswer(self, s, t, rand):
        p = self._prob(s, rand)
        if s.ct.mfe:
            s.follow.append((K_HANDLER, self._handler_of(s, t, p.usage, "problem_show")))
        return (
            f'{s.head}"event_source": "server", "event_type": "showanswer", "name": "showanswer", '
            f'"event": {{"problem_id": "{p.usage}"}}, "page": null, '
            f'"context": {s.ctx}"/courses/{s.ct.cid}/xblock/{p.usage}/handler/xmodule_handler/problem_show", '
            f'"module": {p.module}}}, "time": "{t}"}}\n'
        )

    def _problem_save(self, s, t, rand):
        p = self._prob(s, rand)
        return (
            f'{s.head}"event_source": "browser", "event_type": "problem_save", '
            f'"event": "input_{p.inp}_2_1=13.4+breaths+per+minute", '
            f'"page": {s.page}, "context": {s.ctx}"/event"}}, "time": "{t}"}}\n'
        )

    def _problem_reset(self, s, t, rand):
        p = self._prob(s, rand)
        return (
            f'{s.head}"event_source": "browser", "event_type": "problem_reset", '
            f'"event": "input_{p.inp}_2_1=choice_1", '
            f'"page": {s.page}, "context": {s.ctx}"/event"}}, "time": "{t}"}}\n'
        )

    def _forum(self, s: Session, etype: str, body: str, t: str) -> str:
        return (
            f'{s.head}"event_source": "server", "event_type": "{etype}", "name": "{etype}", '
            f'"event": {body}, "page": null, "context": {s.ctx}"/courses/{s.ct.cid}/discussion/threads/create"}}, '
            f'"time": "{t}"}}\n'
        )

    def _forum_id(self) -> str:
        self._forum_ids += 1
        return f"65e{self.seed % 4096:03x}{self._forum_ids:018x}"

    def _forum_thread_created(self, s, t, rand):
        tid = self._forum_id()
        body = (
            f'{{"commentable_id": "course", "id": "{tid}", "title": "Question about week {int(rand() * 6)}", '
            f'"body": "Could someone explain the second example?", "thread_type": "question", '
            f'"anonymous": false, "anonymous_to_peers": false, "group_id": null, "category_name": "General", '
            f'"category_id": "course", "truncated": false, "title_truncated": false, '
            f'"url": "{s.ct.forum_base}/course/threads/{tid}", "user_forums_roles": ["Student"], '
            f'"user_course_roles": [], "options": {{"followed": true}}}}'
        )
        return self._forum(s, "edx.forum.thread.created", body, t)

    def _forum_comment_created(self, s, t, rand):
        tid, cid = self._forum_id(), self._forum_id()
        body = (
            f'{{"discussion": {{"id": "{tid}"}}, "id": "{cid}", "body": "Thanks, that helped!", '
            f'"commentable_id": "course", "category_name": "General", "category_id": "course", '
            f'"truncated": false, "response": {{"id": "{self._forum_id()}"}}, "options": {{"followed": false}}, '
            f'"url": "{s.ct.forum_base}/course/threads/{tid}", "user_forums_roles": ["Student"], "user_course_roles": []}}'
        )
        return self._forum(s, "edx.forum.comment.created", body, t)

    def _forum_thread_voted(self, s, t, rand):
        tid = self._forum_id()
        body = (
            f'{{"undo_vote": false, "vote_value": "up", "commentable_id": "course", "id": "{tid}", '
            f'"category_name": "General", "category_id": "course", "target_username": "{s.username}", '
            f'"url": "{s.ct.forum_base}/course/threads/{tid}", "user_forums_roles": ["Student"], "user_course_roles": []}}'
        )
        return self._forum(s, "edx.forum.thread.voted", body, t)

    def _thread(self, s: Session, rand) -> tuple[str, str]:
        threads = self.forum_threads.get(s.ct.cid)
        return threads[int(rand() * len(threads))] if threads else (self._forum_id(), "course")

    def _forum_read(self, s, t, rand):
        return forum_activity.url_event(s.head, s.ctx, forum_activity.read_path(s.ct.cid, self._thread(s, rand)), "{}", t)

    def _forum_search(self, s, t, rand):
        word = forum_activity.SEARCH_WORDS[int(rand() * len(forum_activity.SEARCH_WORDS))]
        return forum_activity.url_event(s.head, s.ctx, forum_activity.search_path(s.ct.cid), json.dumps({"text": [word]}), t)

    def _forum_upvote(self, s, t, rand):
        return forum_activity.url_event(s.head, s.ctx, forum_activity.upvote_path(s.ct.cid, self._thread(s, rand)), "{}", t)

    def _forum_searched(self, s, t, rand):
        word = forum_activity.SEARCH_WORDS[int(rand() * len(forum_activity.SEARCH_WORDS))]
        return forum_activity.searched_event(s.head, s.ctx, s.ct.cid, word, int(rand() * 4), t)

    def _mobile(self, s: Session, t: str, rand, name: str, etype: str, extra: Callable[[_Video], str]) -> str:
        v = self._vid(s, rand)
        # received_at is when the server got the upload: the file's day
        return (
            f'{s.mhead}"event_source": "mobile", "event_type": "{etype}", "name": "{name}", '
            f'"event": {{"code": "mobile", "id": "{v.usage}"{extra(v)}}}, "page": null, '
            f'"context": {s.ctx}"/event", "component": "videoplayer", "module": {v.module}, '
            f'"application": {{"name": "edx.mobileapp.android", "version": "2.26.1"}}, '
            f'"client": {{"app": {{"name": "edX"}}, "os": {{"name": "Android", "version": "14"}}}}, '
            f'"received_at": "{self._recv_str}"}}, "time": "{t}"}}\n'
        )

    def _mobile_at(self, s: Session, t: str, rand, name: str, etype: str) -> str:
        """A mobile play, pause or stop event at a point within the video (drawn before the video, as always)."""
        at = rand()
        return self._mobile(s, t, rand, name, etype, lambda v: f', "currentTime": {at * v.duration:.3f}')

    def _mobile_video_played(self, s, t, rand):
        return self._mobile_at(s, t, rand, "edx.video.played", "play_video")

    def _mobile_video_paused(self, s, t, rand):
        return self._mobile_at(s, t, rand, "edx.video.paused", "pause_video")

    def _mobile_video_loaded(self, s, t, rand):
        return self._mobile(s, t, rand, "edx.video.loaded", "load_video", lambda v: f', "duration": {v.duration:.3f}')

    def _mobile_video_stopped(self, s, t, rand):
        return self._mobile_at(s, t, rand, "edx.video.stopped", "stop_video")

    def _mobile_video_position_changed(self, s, t, rand):
        old, new = rand(), rand()
        return self._mobile(
            s, t, rand, "edx.video.position.changed", "seek_video", lambda v: f', "old_time": {old * 600:.3f}, "new_time": {int(new * 600)}'
        )

    def _mobile_video_transcript_shown(self, s, t, rand):
        at = rand()
        return self._mobile(s, t, rand, "edx.video.transcript.shown", "show_transcript", lambda v: f', "current_time": {at * 600:.3f}')

    def _dashboard(self, s, t, rand):
        return (
            f'{s.head}"event_source": "server", "event_type": "/dashboard", "event": {IMPLICIT}, '
            f'"page": null, "context": {s.ctx0}"/dashboard"}}, "time": "{t}"}}\n'
        )

    def _login_ajax(self, s, t, rand):
        return (
            f'{s.head}"event_source": "server", "event_type": "/login_ajax", '
            f'"event": "{{\\"POST\\": {{\\"email\\": [\\"{s.username.lower()}@example.org\\"], '
            f'\\"password\\": \\"********\\"}}, \\"GET\\": {{}}}}", '
            f'"page": null, "context": {s.ctx0}"/login_ajax"}}, "time": "{t}"}}\n'
        )
