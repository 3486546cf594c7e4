"""TimeOnTask, TimeOnAsset and ShowAnswer (docs/tables/time_on_task.md, docs/tables/show_answer.md):
a plain-Python reference written from the dictionaries, over the raw inputs, equals each table row for
row on a sample package on DuckDB and PostgreSQL; hand-worked cases; a second ingest recomputes nothing;
the API's per-learner rows need the token."""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from conftest import ingest, query_rows, reading
from optimus.services.learner_events import PROBLEM_EVENTS, VIDEO_ANY
from optimus.services.show_answer import BY_COURSE, BY_USER
from optimus.services.time_on_task import TIME_ON_ASSET_TOTALS, TIME_ON_TASK, TIME_ON_TASK_TOTALS
from optimus.warehouse.base import raw_table

SHORT, LONG = 300_000_000, 1_800_000_000
W = "[0-9A-Za-z_]"


def us(later: datetime, earlier: datetime) -> int:
    d = later - earlier
    return (d.days * 86400 + d.seconds) * 1_000_000 + d.microseconds


def secs(total: int | None) -> float | None:
    return None if total is None else float(total) / 1e6


def add(total: int | None, gap: int | None, cut: int) -> int | None:
    if gap is None or gap >= cut:
        return total
    return gap if total is None else total + gap


def kinds(et: str) -> dict[str, bool]:
    return {
        "video": bool(re.search(W + "_video", et) or re.search(W + "_transcript", et)),
        "problem": bool(re.search("problem_" + W, et)),
        "forum": et.startswith("edx.forum.") or any(p in et for p in ("/discussion/forum", "/discussion/threads", "/discussion/comments")),
        "text": et.startswith("textbook.") or "/wiki/" in et,
    }


def median_disc(values: list[int]) -> int | None:
    values = sorted(values)
    return values[math.ceil(len(values) / 2) - 1] if values else None


def read_inputs(settings: Any) -> dict[str, Any]:
    with reading(settings) as wh:
        events = wh.query_dicts(
            "SELECT course_key, username, time, event_id, event_type, module_id, page, event FROM events WHERE course_key IS NOT NULL"
        )
        sm = wh.query_dicts(
            f"SELECT course_key, student_id, module_type, module_id, grade, max_grade FROM {raw_table(wh, 'courseware_studentmodule')}"
        )
        pc = wh.query_dicts(
            'SELECT course_key, user_id, username, certified, explored, mode, nproblem_check, "forumRoles_isStudent" AS student FROM person_course'
        )
    return {"events": events, "studentmodule": sm, "person_course": pc}


def reference_time_on_task(events: list[dict]) -> tuple[dict, dict]:
    """time_on_task and time_on_task_totals, keyed by (course_key, date, username) / (course_key, username)."""
    by_learner: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for e in events:
        if e["event_type"] is None or "/xblock/" in e["event_type"] or not e["username"] or e["time"] is None:
            continue
        by_learner[(e["course_key"], e["username"])].append(e)
    cols = ["total_time_5", "total_time_30"] + [
        f"{p}_{k}_time_{c}" for k in ("video", "problem", "forum", "text") for p, c in (("total", 5), ("total", 30), ("serial", 30))
    ]
    days: dict[tuple, dict[str, int | None]] = {}
    totals: dict[tuple, dict[str, int | None]] = {}
    for (course, user), evs in by_learner.items():
        evs.sort(key=lambda e: (e["time"], e["event_id"]))
        last: dict[str, datetime] = {}
        last_any = None
        for i, e in enumerate(evs):
            k = kinds(e["event_type"])
            if i > 0:
                row = days.setdefault((course, e["time"].date(), user), dict.fromkeys(cols))
                tot = totals.setdefault((course, user), dict.fromkeys(cols))
                gap = us(e["time"], evs[i - 1]["time"])
                for r in (row, tot):
                    r["total_time_5"] = add(r["total_time_5"], gap, SHORT)
                    r["total_time_30"] = add(r["total_time_30"], gap, LONG)
                    for name, is_k in k.items():
                        if not is_k:
                            continue
                        own = us(e["time"], last[name]) if name in last else None
                        serial = us(e["time"], last_any) if last_any is not None else None
                        r[f"total_{name}_time_5"] = add(r[f"total_{name}_time_5"], own, SHORT)
                        r[f"total_{name}_time_30"] = add(r[f"total_{name}_time_30"], own, LONG)
                        r[f"serial_{name}_time_30"] = add(r[f"serial_{name}_time_30"], serial, LONG)
            for name, is_k in k.items():
                if is_k:
                    last[name] = e["time"]
            if any(k.values()):
                last_any = e["time"]
    return days, totals


def repaired(raw: str | None) -> str | None:
    """make_time_on_asset.py's repair: a trailing `"}` or `"]}}` cut."""
    if not raw:
        return raw
    for pattern in (r'^(.*)"\}$', r'^(.*)"\]\}\}$'):
        m = re.match(pattern, raw, re.S)
        if m and m.group(1):
            return m.group(1)
    return raw


def edx2bigquery_module(course_key: str, key: str | None) -> str | None:
    """`{org}/{course}/{category}/{url_name}` of a usage key (the dictionary's forms), None when unparsable."""
    if not key:
        return None
    kind = name = None
    if key.startswith("block-v1:"):
        kind = key.split("+type@")[1].split("+")[0] if "+type@" in key else None
        name = key.split("+block@")[1] if "+block@" in key else None
    elif key.startswith("i4x://"):
        parts = key.split("/")
        kind, name = (parts[4] if len(parts) > 4 else None), (parts[5] if len(parts) > 5 else None)
    elif key.startswith("i4x-") and "-video-" in key:
        kind, name = "video", key[key.index("-video-") + 7 :]
    if not kind or not name:
        return None
    org, course = course_key.split("+")[:2]
    return f"{org}/{course}/{kind}/{name}"


def member_text(value: Any, key: str) -> str | None:
    doc = payload(value)
    v = doc.get(key)
    return None if v is None else v if isinstance(v, str) else json.dumps(v)


def segment(text: str | None, marker: str) -> str | None:
    if not text or marker not in text:
        return None
    tail = text[text.index(marker) + len(marker) :]
    return re.split(r"[/?#]", tail, maxsplit=1)[0] or None


def usage_key(e: dict) -> str | None:
    """The block an event touched (docs/person_course.md's usage key: context.module.usage_key, an
    /xblock/ URL in the type then the page, a sequence API URL, a sequence event's target, the first
    block-v1: key of an outline event's target_url, a video's id, a problem event's problem_id)."""
    et = e["event_type"] or ""
    found = e["module_id"] or segment(et, "/xblock/") or segment(e["page"], "/xblock/") or segment(et, "/api/courseware/sequence/")
    if found:
        return found
    if et.startswith("edx.ui.lms.sequence."):
        return member_text(e["event"], "target_id") or member_text(e["event"], "id")
    if et.startswith("edx.ui.lms.outline."):
        found = segment(member_text(e["event"], "target_url"), "/block-v1:")
        return "block-v1:" + found if found else None
    if et in VIDEO_ANY:
        return member_text(e["event"], "id")
    if et in PROBLEM_EVENTS:
        return member_text(e["event"], "problem_id")
    return None


def reference_asset_days(events: list[dict]) -> dict[tuple, list[int | None]]:
    by: dict[tuple, list[dict]] = defaultdict(list)
    for e in events:
        m = edx2bigquery_module(e["course_key"], repaired(usage_key(e)))
        if m is None or '"' in m or not e["username"] or e["time"] is None:
            continue
        by[(e["course_key"], e["username"], m)].append(e)
    out: dict[tuple, list[int | None]] = {}
    for (course, user, m), evs in by.items():
        evs.sort(key=lambda e: (e["time"], e["event_id"]))
        for i, e in enumerate(evs):
            row = out.setdefault((course, e["time"].date(), user, m), [None, None])
            gap = us(e["time"], evs[i - 1]["time"]) if i else None
            row[0], row[1] = add(row[0], gap, SHORT), add(row[1], gap, LONG)
    return out


def reference_asset_totals(days: dict, person_course: list[dict]) -> dict[tuple, dict]:
    pc = {(p["course_key"], p["username"]): p for p in person_course}
    learners: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for (course, _day, user, m), (u5, u30) in days.items():
        p = pc.get((course, user))
        if u5 is None or p is None or not (p["nproblem_check"] or 0) > 0:
            continue
        learners[(course, m, user)][0] += u5
        learners[(course, m, user)][1] += u30  # type: ignore[operator]
    per_module: dict[tuple, list[tuple[int, int, bool]]] = defaultdict(list)
    for (course, m, user), (t5, t30) in learners.items():
        per_module[(course, m)].append((t5, t30, pc[(course, user)]["certified"] == 1))
    out = {}
    for key, rows in per_module.items():
        row: dict[str, Any] = {"n_unique_users": len(rows), "n_unique_certified": sum(c for *_, c in rows)}
        for idx, m in ((0, 5), (1, 30)):
            for prefix, vals in (("", [r[idx] for r in rows]), ("cert_", [r[idx] for r in rows if r[2]])):
                row[f"{prefix}mean_tmid{m}"] = float(sum(vals)) / len(vals) / 1e6 if vals else None
                row[f"{prefix}median_tmid{m}"] = secs(median_disc(vals))
                row[f"{prefix}total_tmid{m}"] = secs(sum(vals)) if vals else None
        out[key] = row
    return out


def payload(value: Any) -> dict:
    while isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def reference_show_answer(inputs: dict) -> tuple[list[tuple], dict, dict]:
    shown = [
        (
            e["course_key"],
            e["time"],
            e["username"],
            edx2bigquery_module(e["course_key"], e["module_id"] or member_text(e["event"], "problem_id")),
        )
        for e in inputs["events"]
        if e["event_type"] in ("showanswer", "show_answer")
    ]
    pc_by_name = {(p["course_key"], p["username"]): p for p in inputs["person_course"]}
    pc_by_id = {(p["course_key"], p["user_id"]): p for p in inputs["person_course"]}
    n_shown: dict[tuple, int] = defaultdict(int)
    for course, _t, user, module in shown:
        p = pc_by_name.get((course, user))
        if p is not None:
            n_shown[(course, p["user_id"], module)] += 1
    counts: dict[tuple, dict[str, int]] = {}
    for r in inputs["studentmodule"]:
        if r["module_type"] != "problem" or r["student_id"] is None:
            continue
        c = counts.setdefault((r["course_key"], r["student_id"]), defaultdict(int))
        grade = None if r["grade"] is None else float(r["grade"])
        attempted = grade is not None
        perfect = grade is not None and r["max_grade"] is not None and grade >= float(r["max_grade"])
        module = edx2bigquery_module(r["course_key"], r["module_id"])
        sa = module is not None and n_shown.get((r["course_key"], r["student_id"], module), 0) > 0
        for m, cond in (
            ("problem_seen", True),
            ("not_attempted", not attempted),
            ("attempted", attempted),
            ("perfect", perfect),
            ("partial", grade is not None and grade > 0),
        ):
            if cond:
                c["n_problems_seen" if m == "problem_seen" else f"n_{m}"] += 1
                c[f"n_show_answer_{m}"] += sa
    by_user = {}
    for (course, uid), c in counts.items():
        p = pc_by_id.get((course, uid))
        if p is None or p["student"] not in (1, None):
            continue
        row: dict[str, Any] = {"explored": p["explored"], "certified": p["certified"], "verified": p["mode"] == "verified"}
        for m in ("problem_seen", "not_attempted", "attempted", "perfect", "partial"):
            den = "n_problems_seen" if m == "problem_seen" else f"n_{m}"
            row[den], row[f"n_show_answer_{m}"] = c[den], c[f"n_show_answer_{m}"]
            row[f"pct_show_answer_{m}"] = c[f"n_show_answer_{m}"] / c[den] * 100 if c[den] else None
        by_user[(course, uid)] = row
    by_course: dict[str, dict] = {}
    for course in {k[0] for k in by_user}:
        users = [r for (c, _u), r in by_user.items() if c == course]
        row = {}
        for g, member in (
            ("", lambda r: True),
            ("_certified", lambda r: r["certified"] == 1),
            ("_explored", lambda r: r["explored"] == 1),
            ("_verified", lambda r: r["verified"]),
        ):
            for m in ("problem_seen", "not_attempted", "attempted", "perfect", "partial"):
                vals = [r[f"pct_show_answer_{m}"] for r in users if member(r) and r[f"pct_show_answer_{m}"] is not None]
                units = sum(math.floor(v * 1e9 + 0.5) for v in vals)
                row[f"avg_pct_show_answer_{m}{g}"] = float(units) / len(vals) / 1e9 if vals else None
                row[f"median_pct_show_answer_{m}{g}"] = sorted(vals)[math.ceil(len(vals) / 2) - 1] if vals else None
        by_course[course] = row
    return shown, by_user, by_course


@pytest.fixture
def sample_on(tmp_path: Path, backend: dict[str, Any]) -> Any:
    from conftest import ingest_sample

    return ingest_sample(tmp_path, **backend)


def table(settings: Any, name: str) -> list[dict]:
    return query_rows(settings, f"SELECT * FROM {name}", as_dicts=True)


def test_tables_equal_the_reference(sample_on: Any) -> None:
    inputs = read_inputs(sample_on)
    days, totals = reference_time_on_task(inputs["events"])
    time_cols = [c for c in TIME_ON_TASK.columns if c not in ("course_id", "date", "username", "course_key")]
    got = {(r["course_key"], r["date"], r["username"]): {c: r[c] for c in time_cols} for r in table(sample_on, "time_on_task")}
    want = {k: {c: secs(v[c]) for c in time_cols} for k, v in days.items()}
    assert got == want and len(got) > 10
    assert any(v["total_text_time_30"] is not None for v in want.values()) and any(v["serial_forum_time_30"] for v in want.values())
    got_t = {(r["course_key"], r["username"]): {c: r[c] for c in time_cols} for r in table(sample_on, "time_on_task_totals")}
    assert got_t == {k: {c: secs(v[c]) for c in time_cols} for k, v in totals.items()}
    assert all(r["course_id"] == r["course_key"].replace("+", "/") for r in table(sample_on, "time_on_task_totals"))
    assert set(TIME_ON_TASK_TOTALS.columns) - set(time_cols) == {"course_id", "username", "course_key"}

    asset = reference_asset_days(inputs["events"])
    got_a = {
        (r["course_key"], r["date"], r["username"], r["module_id"]): [r["time_umid5"], r["time_umid30"]]
        for r in table(sample_on, "time_on_asset_daily")
    }
    assert got_a == {k: [secs(a), secs(b)] for k, (a, b) in asset.items()} and len(got_a) > 10
    stats = [c for c in TIME_ON_ASSET_TOTALS.columns if c not in ("course_id", "module_id", "course_key")]
    got_at = {(r["course_key"], r["module_id"]): {c: r[c] for c in stats} for r in table(sample_on, "time_on_asset_totals")}
    assert got_at == reference_asset_totals(asset, inputs["person_course"]) and got_at

    shown, by_user, by_course = reference_show_answer(inputs)
    got_s = sorted((r["course_key"], r["time"], r["username"], r["module_id"]) for r in table(sample_on, "show_answer"))
    assert got_s == sorted(shown) and shown
    ucols = [c for c in BY_USER.columns if c not in ("user_id", "course_key")]
    got_u = {(r["course_key"], r["user_id"]): {c: r[c] for c in ucols} for r in table(sample_on, "show_answer_stats_by_user")}
    assert got_u == by_user and any(r["n_show_answer_problem_seen"] for r in by_user.values())
    ccols = [c for c in BY_COURSE.columns if c not in ("course_id", "course_key")]
    got_c = {r["course_key"]: {c: r[c] for c in ccols} for r in table(sample_on, "show_answer_stats_by_course")}
    assert got_c == by_course and by_course


def test_second_ingest_recomputes_nothing(sample_on: Any) -> None:
    before = {t: table(sample_on, t) for t in ("time_on_task", "time_on_asset_totals", "show_answer_stats_by_course")}
    runs = query_rows(
        sample_on, "SELECT count(*) FROM service_runs WHERE service IN ('TimeOnTask', 'TimeOnAsset', 'ShowAnswer') AND rows > 0"
    )
    ingest(sample_on)
    assert (
        query_rows(sample_on, "SELECT count(*) FROM service_runs WHERE service IN ('TimeOnTask', 'TimeOnAsset', 'ShowAnswer') AND rows > 0")
        == runs
    )
    assert {t: table(sample_on, t) for t in before} == before


T = "course-v1:UQx+T+1"


def crafted_event(sec: int, event_type: str) -> dict[str, Any]:
    hms = f"{10 + sec // 3600:02d}:{sec // 60 % 60:02d}:{sec % 60:02d}"
    return {
        "username": "tina",
        "event_type": event_type,
        "event_source": "server",
        "time": f"2024-01-02T{hms}.000000+00:00",
        "context": {"course_id": T, "user_id": 901},
        "event": {},
    }


def test_crafted_gaps_strictly_under_the_cut_off(data_path: Path, settings_for: Any, backend: dict[str, Any]) -> None:
    """Worked by hand: a 300 s gap is in the _30 sums only, a 1800 s gap in none; the /xblock/ call is
    not an event; a video gap runs from the previous video event, a serial gap from the previous
    event of any kind."""
    from person_course_data import write_events

    xblock = f"/courses/{T}/xblock/block-v1:UQx+T+1+type@problem+block@p/handler/xmodule_handler/problem_check"
    write_events(
        data_path,
        "2024-01-02",
        [
            crafted_event(0, "play_video"),  # the first event: no gap
            crafted_event(300, "problem_check"),  # gap 300 (= 5 min): _30 only; serial problem 300
            crafted_event(330, xblock),  # left out
            crafted_event(360, "pause_video"),  # gap 60; video gap 360 (from 10:00:00); serial video 60
            crafted_event(2160, "problem_check"),  # gap 1800 (= 30 min): nowhere; problem gap 1860; serial 1800
            crafted_event(2220, "textbook.pdf.page.navigated"),  # gap 60; first text event; serial text 60
        ],
    )
    settings = settings_for(data_path, **backend)
    ingest(settings)
    rows = query_rows(settings, "SELECT * FROM time_on_task", as_dicts=True)
    assert len(rows) == 1
    row = rows[0]
    assert (row["course_id"], str(row["date"]), row["username"]) == ("UQx/T/1", "2024-01-02", "tina")
    want = {
        "total_time_5": 120.0,
        "total_time_30": 420.0,
        "total_video_time_5": None,
        "total_video_time_30": 360.0,
        "serial_video_time_30": 60.0,
        "total_problem_time_5": None,
        "total_problem_time_30": None,
        "serial_problem_time_30": 300.0,
        "total_forum_time_5": None,
        "total_forum_time_30": None,
        "serial_forum_time_30": None,
        "total_text_time_5": None,
        "total_text_time_30": None,
        "serial_text_time_30": 60.0,
    }
    assert {c: row[c] for c in want} == want
    totals = query_rows(settings, "SELECT * FROM time_on_task_totals", as_dicts=True)
    assert len(totals) == 1 and {c: totals[0][c] for c in want} == want


def test_time_on_task_api_needs_the_token_for_learners_rows(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from conftest import ingest_sample
    from optimus.api.app import create_app
    from optimus.api.state import ReadViews
    from optimus.warehouse import connect

    settings = ingest_sample(tmp_path, api_token="tok-en")
    wh = connect(settings)
    try:
        key = wh.query("SELECT min(course_key) FROM time_on_task")[0][0]
        with TestClient(create_app(settings, ReadViews(settings, wh, size=2))) as client:
            assert client.get(f"/api/v1/courses/{key}/time_on_task", params={"per_learner": "true"}).status_code == 401
            daily = client.get(f"/api/v1/courses/{key}/time_on_task").json()
            assert daily["days"] and all("username" not in d for d in daily["days"])
            want = wh.query("SELECT count(*) FROM time_on_task WHERE course_key = ?", [key])[0][0]
            assert sum(d["learners"] for d in daily["days"]) == want
            rows = client.get(
                f"/api/v1/courses/{key}/time_on_task", params={"per_learner": "true"}, headers={"Authorization": "Bearer tok-en"}
            )
            assert rows.status_code == 200 and rows.json()["total"] == want
    finally:
        wh.close()


def module_event(user: str, uid: int, when: str, event_type: str, module: str | None, problem: str | None = None) -> dict[str, Any]:
    context: dict[str, Any] = {"course_id": T, "user_id": uid}
    if module:
        context["module"] = {"usage_key": module}
    return {
        "username": user,
        "event_type": event_type,
        "event_source": "server",
        "time": f"2024-01-0{when}+00:00",
        "context": context,
        "event": {"problem_id": problem} if problem else {},
    }


def test_crafted_time_on_asset(data_path: Path, settings_for: Any, backend: dict[str, Any]) -> None:
    """Worked by hand: gaps per learner and module, strictly under the cut-off; the totals read only
    learners with a problem check and only their days with a 5-minute time."""
    from person_course_data import write_events

    m1, m2 = "block-v1:UQx+T+1+type@video+block@v1", "block-v1:UQx+T+1+type@problem+block@p1"
    write_events(
        data_path,
        "2024-01-02",
        [
            module_event("tina", 901, "2T10:00:00", "play_video", m1),
            module_event("tina", 901, "2T10:05:00", "pause_video", m1),  # M1: 300 -> _30 only
            module_event("tina", 901, "2T10:06:00", "problem_check", m2),  # M2: first
            module_event("tina", 901, "2T10:07:00", "problem_check", m2),  # M2: 60
            module_event("tina", 901, "2T10:08:00", "play_video", m1 + '"}'),  # M1 (repaired): 180
            module_event("tina", 901, "3T10:00:00", "play_video", m1),  # a day later: no gap
            module_event("tina", 901, "3T10:10:00", "pause_video", m1),  # 600: _30 only, a day without 5-minute time
            module_event("uma", 902, "2T11:00:00", "play_video", m1),
            module_event("uma", 902, "2T11:01:00", "pause_video", m1),  # 60, but no problem check: not in the totals
        ],
    )
    settings = settings_for(data_path, **backend)
    ingest(settings)
    m1, m2 = "UQx/T/video/v1", "UQx/T/problem/p1"  # edx2bigquery's module ids
    daily = {
        (str(r["date"]), r["username"], r["module_id"]): (r["time_umid5"], r["time_umid30"])
        for r in query_rows(settings, "SELECT * FROM time_on_asset_daily", as_dicts=True)
    }
    assert daily == {
        ("2024-01-02", "tina", m1): (180.0, 480.0),
        ("2024-01-02", "tina", m2): (60.0, 60.0),
        ("2024-01-03", "tina", m1): (None, 600.0),
        ("2024-01-02", "uma", m1): (60.0, 60.0),
    }
    totals = {r["module_id"]: r for r in query_rows(settings, "SELECT * FROM time_on_asset_totals", as_dicts=True)}
    assert set(totals) == {m1, m2}
    one = totals[m1]
    assert (one["n_unique_users"], one["n_unique_certified"]) == (1, 0)
    assert (one["mean_tmid5"], one["median_tmid5"], one["total_tmid5"]) == (180.0, 180.0, 180.0)
    assert (one["mean_tmid30"], one["median_tmid30"], one["total_tmid30"]) == (480.0, 480.0, 480.0)  # not 1080: day 3 left out
    assert one["cert_mean_tmid5"] is None and one["cert_median_tmid30"] is None and one["cert_total_tmid5"] is None
    assert (totals[m2]["total_tmid5"], totals[m2]["total_tmid30"]) == (60.0, 60.0)


def test_crafted_show_answer_stats(data_path: Path, settings_for: Any, backend: dict[str, Any]) -> None:
    """Worked by hand: each learner's problems by state (studentmodule) and those with a show-answer
    event; the course's means (exact integer sums of 10⁻⁹ percent) and lower medians."""
    from person_course_data import _tsv, write_events

    p = [f"block-v1:UQx+T+1+type@problem+block@p{i}" for i in range(10)]
    write_events(
        data_path,
        "2024-01-02",
        [
            module_event("tina", 901, "2T10:00:00", "problem_check", p[1]),
            module_event("tina", 901, "2T10:01:00", "showanswer", p[2], p[2]),
            module_event("tina", 901, "2T10:02:00", "showanswer", p[2], p[2]),
            module_event("tina", 901, "2T10:03:00", "showanswer", p[3], p[3]),
            module_event("tina", 901, "2T10:04:00", "showanswer", p[9], p[9]),  # no studentmodule row
            module_event("uma", 902, "2T11:00:00", "showanswer", None, p[2]),  # the problem only in the payload
        ],
    )
    folder = data_path / "database_state" / "2024-01-07"
    header = ["id", "module_type", "module_id", "student_id", "state", "grade", "created", "modified", "max_grade", "done", "course_id"]
    rows = [  # (user, problem, grade, max_grade)
        (901, 1, 1, 1),  # perfect
        (901, 2, None, 1),  # not attempted
        (901, 3, 0.5, 1),  # partial
        (901, 4, 0, 1),  # attempted, no points
        (902, 1, None, 1),
        (902, 2, 1, 2),  # partial, not perfect
    ]
    _tsv(
        folder / "UQx-T-1-courseware_studentmodule-prod-analytics.sql",
        header,
        [
            [i, "problem", p[n], u, "{}", g, "2024-01-02 09:00:00", "2024-01-02 09:00:00", mx, "na", T]
            for i, (u, n, g, mx) in enumerate(rows, 1)
        ],
    )
    settings = settings_for(data_path, **backend)
    ingest(settings)
    shown = query_rows(settings, "SELECT username, module_id FROM show_answer ORDER BY time")
    mid = [f"UQx/T/problem/p{i}" for i in range(10)]  # edx2bigquery's module ids
    assert shown == [("tina", mid[2]), ("tina", mid[2]), ("tina", mid[3]), ("tina", mid[9]), ("uma", mid[2])]
    users = {r["user_id"]: r for r in query_rows(settings, "SELECT * FROM show_answer_stats_by_user", as_dicts=True)}
    pcts = ["problem_seen", "not_attempted", "attempted", "perfect", "partial"]
    assert [users[901][f"pct_show_answer_{m}"] for m in pcts] == [50.0, 100.0, 1 / 3 * 100, 0.0, 50.0]
    assert [users[902][f"pct_show_answer_{m}"] for m in pcts] == [50.0, 0.0, 100.0, None, 100.0]
    assert (users[901]["n_problems_seen"], users[901]["n_show_answer_problem_seen"], users[901]["n_partial"]) == (4, 2, 2)
    course = query_rows(settings, "SELECT * FROM show_answer_stats_by_course", as_dicts=True)
    assert len(course) == 1 and course[0]["course_id"] == "UQx/T/1"
    c = course[0]
    assert [c[f"avg_pct_show_answer_{m}"] for m in pcts] == [50.0, 50.0, (33_333_333_333 + 100_000_000_000) / 2 / 1e9, 0.0, 75.0]
    assert [c[f"median_pct_show_answer_{m}"] for m in pcts] == [50.0, 0.0, 1 / 3 * 100, 0.0, 50.0]
    assert c["avg_pct_show_answer_problem_seen_certified"] is None and c["median_pct_show_answer_attempted_verified"] is None
