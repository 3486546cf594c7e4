"""ProblemAnalysis and ProblemEvents against a plain-Python reference written from
docs/tables/problem_analysis.md, on DuckDB and PostgreSQL, plus a hand-built course whose values are
worked out by hand below, a second ingest that recomputes nothing, and the /problems endpoint.

The reference reads only the inputs: the raw studentmodule table, `course_blocks` and `events` (their
payloads parsed in Python), never the tables under test.
"""

from __future__ import annotations

import json
import math
import re
from collections import defaultdict
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from conftest import ingest, make_data_path, query_rows, reading
from optimus.api.app import create_app
from optimus.api.state import ReadViews
from optimus.config import Settings
from optimus.sample import generate
from optimus.sample.tables import tsv_value
from optimus.services.course_tables import Table
from optimus.services.problem_analysis import COURSE_ITEM, COURSE_PROBLEM, MIN_RESPONSES, PERSON_ITEM, PERSON_PROBLEM, PROBLEM_ANALYSIS
from optimus.services.problem_events import ANSWER_DISTRIBUTION, FIRST_ATTEMPT, PROBLEM_CHECK, PROBLEM_EVENTS

TABLES = (
    PROBLEM_ANALYSIS,
    COURSE_ITEM,
    PERSON_ITEM,
    PERSON_PROBLEM,
    COURSE_PROBLEM,
    PROBLEM_CHECK,
    PROBLEM_EVENTS,
    FIRST_ATTEMPT,
    ANSWER_DISTRIBUTION,
)
TOKEN = "problems-token"


# -- reading what the warehouse holds ----------------------------------------------------------------
def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def table_rows(settings: Settings, table: Table) -> list[tuple[Any, ...]]:
    cols = ", ".join(f'"{c}"' for c in table.columns)
    return sorted((tuple(_plain(v) for v in r) for r in query_rows(settings, f"SELECT {cols} FROM {table.name}")), key=_sort_key)


def _sort_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is None, "" if v is None else str(v)) for v in row)


def inputs(settings: Settings) -> dict[str, list[dict[str, Any]]]:
    with reading(settings) as wh:
        sm = wh.query_dicts(
            f"SELECT id, course_key, student_id, module_type, module_id, state, grade, max_grade, created FROM {wh.raw_schema}.courseware_studentmodule"
        )
        blocks = wh.query_dicts(
            "SELECT course_key, url_name, category, parent_url_name, position, display_name, weight, format, start_date, due_date FROM course_blocks"
        )
        events = wh.query_dicts(
            "SELECT event_id, time, username, user_id, course_key, event_type, event_source, module_id, CAST(event AS VARCHAR) AS event FROM events"
        )
    return {"sm": sm, "blocks": blocks, "events": events}


# -- the reference: docs/tables/problem_analysis.md in plain Python --------------------------------------
def course_id(key: str) -> str:
    return key.replace("+", "/")


def block_type(key: str | None) -> str | None:
    if not key:
        return None
    if key.startswith("block-v1:"):
        return key.split("+type@", 1)[1].split("+", 1)[0] or None if "+type@" in key else None
    if key.startswith("i4x://"):
        parts = key.split("/")
        return parts[4] or None if len(parts) > 4 else None
    return None


def block_name(key: str | None) -> str | None:
    if not key:
        return None
    if key.startswith("block-v1:"):
        return key.split("+block@", 1)[1] or None if "+block@" in key else None
    if key.startswith("i4x://"):
        parts = key.split("/")
        return parts[5] or None if len(parts) > 5 else None
    if key.startswith("i4x-") and "-video-" in key:
        return key[key.index("-video-") + 7 :] or None
    return None


def value_text(value: Any) -> str | None:
    """json_value_text: a string's value, anything else compact JSON, null -> None."""
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def member_text(obj: Any, key: str) -> str | None:
    """json_text / json_member_text: a member's text (a string's value, other values' JSON)."""
    if isinstance(obj, str) and obj.startswith("{"):
        try:
            obj = json.loads(obj)
        except ValueError:
            return None
    if not isinstance(obj, dict) or obj.get(key) is None:
        return None
    return value_text(obj[key])


def whole(text: str | None) -> int | None:
    return int(text) if text is not None and re.fullmatch(r"-?[0-9]+", text) else None


def number(text: str | None) -> float | None:
    return float(text) if text is not None and re.fullmatch(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?", text) else None


def answer_order(key: str) -> tuple[Any, ...]:
    r = re.search(r"_([0-9]{1,9})_[0-9]{1,9}$", key)
    i = re.search(r"_([0-9]{1,9})$", key)
    resp, inp = (int(r.group(1)) if r else None), (int(i.group(1)) if i else None)
    return (resp is None, resp or 0, inp is None, inp or 0, key)


def ref_problem_analysis(sm: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in sm:
        if r["module_type"] != "problem" or block_type(r["module_id"]) != "problem":
            continue
        try:
            state = json.loads(r["state"])
        except (TypeError, ValueError):
            continue
        if not isinstance(state, dict):
            continue
        cm, answers = state.get("correct_map"), state.get("student_answers")
        if not isinstance(cm, dict) or answers is None:
            continue
        for aid, entry in cm.items():
            response = value_text(answers.get(aid)) if isinstance(answers, dict) else None
            correctness = member_text(entry, "correctness")
            done = member_text(state, "done")
            out.append(
                {
                    "course_id": course_id(r["course_key"]),
                    "course_key": r["course_key"],
                    "user_id": r["student_id"],
                    "problem_url_name": block_name(r["module_id"]),
                    "module_id": r["module_id"],
                    "item_answer_id": aid,
                    "item_response": "" if response is None else response,
                    "item_correctness": correctness,
                    "item_correct_bool": correctness == "correct",
                    "item_npoints": number(member_text(entry, "npoints")),
                    "item_msg": member_text(entry, "msg"),
                    "item_hint": member_text(entry, "hint"),
                    "attempts": whole(member_text(state, "attempts")) or 0,
                    "done": {"true": True, "false": False}.get(done or ""),
                    "grade": r["grade"],
                    "max_grade": r["max_grade"],
                    "created": r["created"],
                }
            )
    return out


def ref_course_item(pa: list[dict[str, Any]], blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    counted: dict[tuple[Any, ...], int] = defaultdict(int)
    for r in pa:
        counted[(r["course_key"], r["item_answer_id"], r["problem_url_name"], r["max_grade"])] += 1
    kept = [(k, n) for k, n in counted.items() if n > MIN_RESPONSES]
    by_name = {(b["course_key"], b["url_name"]): b for b in blocks}
    axis: dict[tuple[str, str], dict[str, Any]] = {}
    for b in blocks:
        if b["category"] != "problem":
            continue
        parent = by_name.get((b["course_key"], b["parent_url_name"]))
        grand = by_name.get((b["course_key"], parent["parent_url_name"])) if parent else None
        split = (
            parent["url_name"]
            if parent and parent["category"] == "split_test"
            else grand["url_name"]
            if grand and grand["category"] == "split_test"
            else None
        )
        axis[(b["course_key"], b["url_name"])] = {**b, "split_name": split}
    items: dict[tuple[str, str], list[tuple[Any, ...]]] = defaultdict(list)
    for (key, item, problem, points), n in kept:
        items[(key, problem)].append((item, points, n))
    rows = []
    for (key, problem), its in items.items():
        if (key, problem) not in axis:
            continue
        a = axis[(key, problem)]
        ordered = sorted(its, key=lambda t: (answer_order(t[0]), t[1] is None, t[1] or 0))
        for number_, (item, points, n) in enumerate(ordered, 1):
            rows.append(
                {
                    "course_key": key,
                    "item_id": item,
                    "problem_id": problem,
                    "points": points,
                    "n": n,
                    "item_number": number_,
                    "n_items": len(ordered),
                    "a": a,
                }
            )
    out = []
    for key in {r["course_key"] for r in rows}:
        mine = [r for r in rows if r["course_key"] == key]
        problems = sorted({(r["a"]["position"], r["problem_id"]) for r in mine})
        nid = {p: i for i, (_pos, p) in enumerate(problems, 1)}
        mine.sort(key=lambda r: (r["a"]["position"], r["item_number"], r["item_id"], r["points"]))
        for item_nid, r in enumerate(mine, 1):
            a = r["a"]
            out.append(
                {
                    "course_id": course_id(key),
                    "course_key": key,
                    "item_id": r["item_id"],
                    "problem_id": r["problem_id"],
                    "problem_nid": nid[r["problem_id"]],
                    "item_nid": item_nid,
                    "item_number": r["item_number"],
                    "n_items": r["n_items"],
                    "n_user_responses": r["n"],
                    "problem_name": a["display_name"],
                    "content_index": a["position"],
                    "problem_weight": 1.0 if a["weight"] is None else a["weight"],
                    "item_points_possible": 1.0,
                    "problem_points_possible": float(r["n_items"]),
                    "emperical_item_points_possible": r["points"] / r["n_items"],
                    "emperical_problem_points_possible": r["points"],
                    "assignment_type": a["format"] or "",
                    "start_date": a["start_date"],
                    "due_date": a["due_date"],
                    "is_split": a["split_name"] is not None,
                    "split_name": a["split_name"],
                }
            )
    return out


def ref_person_item(pa: list[dict[str, Any]], ci: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[Any, ...], Any] = {}
    for r in pa:
        k = (r["course_key"], r["user_id"], r["item_answer_id"], 1 if r["item_correct_bool"] else 0, r["grade"], r["attempts"])
        groups[k] = (
            max(groups[k], r["created"])
            if k in groups and groups[k] is not None and r["created"] is not None
            else (groups.get(k) or r["created"])
        )
    out = []
    for (key, user, item, item_grade, grade, attempts), date in groups.items():
        for c in ci:
            if c["course_key"] == key and c["item_id"] == item:
                out.append(
                    {
                        "user_id": user,
                        "course_id": course_id(key),
                        "course_key": key,
                        "item_id": item,
                        "item_nid": c["item_nid"],
                        "item_grade": item_grade,
                        "grade": grade,
                        "n_attempts": attempts,
                        "date": date,
                    }
                )
    return out


def ref_person_problem(pi: list[dict[str, Any]], ci: list[dict[str, Any]]) -> list[dict[str, Any]]:
    item = {(c["course_key"], c["item_nid"]): c for c in ci}
    groups: dict[tuple[Any, ...], list[tuple[dict[str, Any], dict[str, Any]]]] = defaultdict(list)
    for p in pi:
        c = item[(p["course_key"], p["item_nid"])]
        groups[(p["course_key"], p["user_id"], c["problem_nid"])].append((p, c))
    out = []
    for (key, user, nid), rows in groups.items():
        raw = sum(p["item_grade"] for p, _c in rows)
        possible = sum(c["item_points_possible"] for _p, c in rows)
        grades = [p["grade"] for p, _c in rows if p["grade"] is not None]
        out.append(
            {
                "user_id": user,
                "course_id": course_id(key),
                "course_key": key,
                "problem_nid": nid,
                "problem_raw_score": raw,
                "problem_pct_score": float(raw) / possible * 100,
                "grade": max(grades) if grades else None,
                "n_attempts": max(p["n_attempts"] for p, _c in rows),
                "date": max(p["date"] for p, _c in rows),
            }
        )
    return out


def ref_course_problem(pi: list[dict[str, Any]], ci: list[dict[str, Any]]) -> list[dict[str, Any]]:
    item = {(c["course_key"], c["item_nid"]): c for c in ci}
    per_user: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0])
    meta: dict[tuple[Any, ...], dict[str, Any]] = {}
    for p in pi:
        c = item[(p["course_key"], p["item_nid"])]
        k = (p["course_key"], c["problem_nid"], c["problem_id"])
        per_user[(*k, p["user_id"])][0] += p["item_grade"]
        per_user[(*k, p["user_id"])][1] += int(c["item_points_possible"])
        meta[k] = c
    by_problem: dict[tuple[Any, ...], list[tuple[int, int]]] = defaultdict(list)
    for (key, nid, pid, _user), (g, possible) in per_user.items():
        by_problem[(key, nid, pid)].append((g, possible))
    out = []
    for (key, nid, pid), gs in by_problem.items():
        n, sx, sxx = len(gs), sum(g for g, _p in gs), sum(g * g for g, _p in gs)
        c = meta[(key, nid, pid)]
        out.append(
            {
                "course_id": course_id(key),
                "course_key": key,
                "problem_nid": nid,
                "problem_id": pid,
                "avg_problem_raw_score": float(sx) / n,
                "sdv_problem_raw_score": math.sqrt(float(n * sxx - sx * sx) / float(n * (n - 1))) if n > 1 else None,
                "max_possible_raw_score": float(max(p for _g, p in gs)),
                "avg_problem_pct_score": float(sum(math.floor(float(g) * 100000000 / p) for g, p in gs)) / 1000000 / n,
                "n_unique_users_attempted": n,
                "problem_name": c["problem_name"],
                "is_split": c["split_name"] is not None,
                "split_name": c["split_name"],
            }
        )
    return out


def _payload(e: dict[str, Any]) -> Any:
    try:
        return json.loads(e["event"]) if e["event"] is not None else None
    except ValueError:
        return None


def server_checks(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for e in events:
        if e["event_type"] in ("problem_check", "save_problem_check") and e["event_source"] == "server":
            p = _payload(e)
            p = p if isinstance(p, dict) else {}
            who = f"u{e['user_id']}" if e["user_id"] is not None else (f"n{e['username']}" if e["username"] else None)
            out.append({**e, "p": p, "pkey": e["module_id"] or member_text(p, "problem_id"), "who": who})
    return out


def ref_problem_check(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for c in server_checks(events):
        p, answers = c["p"], c["p"].get("answers")
        if answers is None:
            text = None
        elif not isinstance(answers, dict):
            text = "{}"
        else:
            parts = []
            for k in sorted(answers, key=answer_order):
                v = answers[k]
                val = value_text(v) if isinstance(v, list) else "null" if v is None else json.dumps(v, ensure_ascii=False)
                parts.append('"' + k.replace("\\", "\\\\").replace('"', '\\"') + '":' + val)
            text = "{" + ",".join(parts) + "}"
        out.append(
            {
                "course_id": course_id(c["course_key"]),
                "course_key": c["course_key"],
                "event_id": c["event_id"],
                "time": c["time"],
                "username": c["username"],
                "user_id": c["user_id"],
                "module_id": c["pkey"],
                "problem_url_name": block_name(c["pkey"]),
                "student_answers": text,
                "attempts": whole(member_text(p, "attempts")),
                "success": member_text(p, "success"),
                "grade": number(member_text(p, "grade")),
                "max_grade": number(member_text(p, "max_grade")),
            }
        )
    return out


def ref_problem_events(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for e in events:
        et = e["event_type"] or ""
        if e["user_id"] is None or not (re.search(r"problem_[A-Za-z0-9_]", et) or et == "showanswer"):
            continue
        p = _payload(e)
        segment = None
        if "/xblock/" in et:
            segment = re.split(r"[/?#]", et[et.index("/xblock/") + 8 :])[0] or None
        key = e["module_id"] or segment or member_text(p, "problem_id") or member_text(p, "problem")
        if "/xblock/" in et and "xmodule_handler/" in et:
            m = re.search(r"xmodule_handler/([^/]+)", et)
            kind = m.group(1) if m else None
        else:
            kind = et
        out.append(
            {
                "course_id": course_id(e["course_key"]),
                "course_key": e["course_key"],
                "event_id": e["event_id"],
                "user_id": e["user_id"],
                "time": e["time"],
                "event_source": e["event_source"],
                "problem_url": block_name(key) if block_type(key) == "problem" else None,
                "event_type": kind,
                "attempts": whole(member_text(p, "attempts")),
                "success": member_text(p, "success"),
                "grade": number(member_text(p, "grade")),
            }
        )
    return out


def ref_first_attempt(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for c in server_checks(events):
        if c["who"] is not None and c["pkey"] is not None:
            groups[(c["course_key"], c["who"], c["pkey"])].append(c)
    out = []
    for (key, _who, pkey), cs in groups.items():
        cs.sort(key=lambda c: (c["time"], c["event_id"]))
        first, last = cs[0], cs[-1]
        attempts = whole(member_text(first["p"], "attempts"))
        users = [c["user_id"] for c in cs if c["user_id"] is not None]
        names = [c["username"] for c in cs if c["username"] is not None]
        out.append(
            {
                "course_id": course_id(key),
                "course_key": key,
                "user_id": max(users) if users else None,
                "username": max(names) if names else None,
                "module_id": pkey,
                "problem_url_name": block_name(pkey),
                "n_checks": len(cs),
                "first_check_time": first["time"],
                "first_check_attempts": attempts,
                "first_attempt_correct": (member_text(first["p"], "success") == "correct") if attempts == 1 else None,
                "last_check_time": last["time"],
                "final_correct": member_text(last["p"], "success") == "correct",
            }
        )
    return out


def ref_distribution(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[Any, ...], list[tuple[Any, ...]]] = defaultdict(list)
    for c in server_checks(events):
        answers, marks, subs = c["p"].get("answers"), c["p"].get("correct_map"), c["p"].get("submission")
        if c["pkey"] is None or not isinstance(answers, dict):
            continue
        for aid, v in answers.items():
            response = value_text(v)
            if response is None:
                continue
            mark = member_text(marks.get(aid), "correctness") if isinstance(marks, dict) else None
            sub = subs.get(aid) if isinstance(subs, dict) else None
            text = value_text(sub.get("answer")) if isinstance(sub, dict) else None
            groups[(c["course_key"], c["pkey"], aid, response)].append((c["who"], mark, text))
    out = []
    for (key, pkey, aid, response), rows in groups.items():
        correct = sum(1 for _w, m, _t in rows if m == "correct")
        texts = [t for _w, _m, t in rows if t is not None]
        out.append(
            {
                "course_id": course_id(key),
                "course_key": key,
                "module_id": pkey,
                "problem_url_name": block_name(pkey),
                "answer_id": aid,
                "response": response,
                "answer_text": min(texts) if texts else None,
                "n_checks": len(rows),
                "n_learners": len({w for w, _m, _t in rows if w is not None}),
                "n_correct": correct,
                "share_correct": float(correct) / len(rows),
            }
        )
    return out


def reference(settings: Settings) -> dict[str, list[tuple[Any, ...]]]:
    got = inputs(settings)
    pa = ref_problem_analysis(got["sm"])
    ci = ref_course_item(pa, got["blocks"])
    pi = ref_person_item(pa, ci)
    dicts = {
        "problem_analysis": pa,
        "course_item": ci,
        "person_item": pi,
        "person_problem": ref_person_problem(pi, ci),
        "course_problem": ref_course_problem(pi, ci),
        "problem_check": ref_problem_check(got["events"]),
        "problem_events": ref_problem_events(got["events"]),
        "problem_first_attempt_correct": ref_first_attempt(got["events"]),
        "problem_answer_distribution": ref_distribution(got["events"]),
    }
    tables = {t.name: t for t in TABLES}
    return {name: sorted((tuple(r[c] for c in tables[name].columns) for r in rows), key=_sort_key) for name, rows in dicts.items()}


# -- the sample package, on both engines -----------------------------------------------------------------
@pytest.fixture
def sample_on(tmp_path: Path, backend: dict[str, Any]) -> Settings:
    generate(tmp_path / "data", courses=2, learners=40, days=3, seed=11)
    settings = Settings(
        data_paths=[tmp_path / "data"],
        export_path=tmp_path / "exports",
        www_path=tmp_path / "www",
        memory_limit="1GB",
        **{"warehouse": str(tmp_path / "wh" / "optimus.duckdb"), **backend},
    )
    ingest(settings)
    return settings


def test_every_table_equals_the_reference_on_the_sample(sample_on: Settings) -> None:
    want = reference(sample_on)
    for table in TABLES:
        got = table_rows(sample_on, table)
        assert got, f"{table.name} is empty on the sample: the test would prove nothing"
        assert got == want[table.name], table.name


def test_a_second_ingest_recomputes_nothing(sample_on: Settings) -> None:
    before = {t.name: table_rows(sample_on, t) for t in TABLES}
    runs = query_rows(sample_on, "SELECT count(*) FROM service_runs WHERE service IN ('ProblemAnalysis', 'ProblemEvents') AND rows > 0")
    ingest(sample_on)
    assert (
        query_rows(sample_on, "SELECT count(*) FROM service_runs WHERE service IN ('ProblemAnalysis', 'ProblemEvents') AND rows > 0")
        == runs
    )
    assert {t.name: table_rows(sample_on, t) for t in TABLES} == before


# -- a hand-built course ------------------------------------------------------------------------------------
KEY, CID = "UQx+Prob+2024", "course-v1:UQx+Prob+2024"
P1, P2 = f"block-v1:{KEY}+type@problem+block@p1", f"block-v1:{KEY}+type@problem+block@p2"
SM_HEADER = "id module_type module_id student_id state grade created modified max_grade done course_id".split()
T0 = "2024-01-05 10:00:00"
ODD = 'x\ty "q" \\ é\nend'


def _state(answers: dict[str, Any] | None, marks: dict[str, str], attempts: int = 1) -> str:
    state: dict[str, Any] = {"attempts": attempts, "done": True, "seed": 1}
    state["correct_map"] = {k: {"correctness": v, "npoints": 1 if v == "correct" else 0, "msg": "", "hint": ""} for k, v in marks.items()}
    if answers is not None:
        state["student_answers"] = answers
    return json.dumps(state)


def write_crafted(data: Path) -> None:
    """p1 (in a split_test) has two inputs, p1_2_1 and p1_10_1 (response 10: after p1_2_1 in the
    problem, before it as a string); learners 1-6 answer it (6 rows: more than 5, so both items are
    kept), 1-4 have p1_2_1 right, 1-2 p1_10_1 right. Learner 7's correct_map is empty, learner 8's
    state has no student_answers, learner 9's state is not JSON: none of them is a row. p2 has 3
    learners (not kept in course_item)."""
    folder = data / "database_state" / "2024-01-07"
    rows: list[list[Any]] = []
    for uid in range(1, 7):
        marks = {"p1_2_1": "correct" if uid <= 4 else "incorrect", "p1_10_1": "correct" if uid <= 2 else "incorrect"}
        answers: dict[str, Any] = {"p1_2_1": "choice_1" if uid <= 4 else "choice_0"}
        if uid != 6:  # learner 6 never answered p1_10_1: item_response ''
            answers["p1_10_1"] = ["a", "b"] if uid <= 2 else ["a"]
        if uid == 5:  # a typed answer with what the TSV escapes and JSON quote
            answers["p1_10_1"] = ODD
        grade = (uid <= 4) + (uid <= 2)
        rows.append([uid, "problem", P1, uid, _state(answers, marks, attempts=uid), float(grade), T0, T0, 2.0, "na", CID])
    rows.append([7, "problem", P1, 7, _state({}, {}), None, T0, T0, 2.0, "na", CID])
    rows.append([8, "problem", P1, 8, _state(None, {"p1_2_1": "correct"}), 1.0, T0, T0, 2.0, "na", CID])
    rows.append([9, "problem", P1, 9, "{not json", 1.0, T0, T0, 2.0, "na", CID])
    for uid in (1, 2, 3):
        rows.append([20 + uid, "problem", P2, uid, _state({"p2_2_1": "x"}, {"p2_2_1": "correct"}), 1.0, T0, T0, 1.0, "na", CID])
    text = "\t".join(SM_HEADER) + "\n" + "".join("\t".join(tsv_value(v) for v in r) + "\n" for r in rows)
    (folder / "UQx-Prob-2024-courseware_studentmodule-prod-analytics.sql").write_text(text, encoding="utf-8")
    enrol = "id\tuser_id\tcourse_id\tcreated\tis_active\tmode\n" + "".join(f"{u}\t{u}\t{CID}\t{T0}\t1\taudit\n" for u in range(1, 10))
    (folder / "UQx-Prob-2024-student_courseenrollment-prod-analytics.sql").write_text(enrol, encoding="utf-8")

    def bid(kind: str, name: str) -> str:
        return f"block-v1:{KEY}+type@{kind}+block@{name}"

    blocks = {
        bid("course", "course"): {"category": "course", "children": [bid("chapter", "ch")], "metadata": {"display_name": "Prob"}},
        bid("chapter", "ch"): {"category": "chapter", "children": [bid("sequential", "sq")], "metadata": {"display_name": "ch"}},
        bid("sequential", "sq"): {"category": "sequential", "children": [bid("split_test", "ab"), bid("vertical", "v2")], "metadata": {}},
        bid("split_test", "ab"): {"category": "split_test", "children": [bid("vertical", "v1")], "metadata": {}},
        bid("vertical", "v1"): {"category": "vertical", "children": [P1], "metadata": {}},
        bid("vertical", "v2"): {"category": "vertical", "children": [P2], "metadata": {}},
        P1: {"category": "problem", "children": [], "metadata": {"display_name": "Problem one", "weight": 2.0}},
        P2: {"category": "problem", "children": [], "metadata": {"display_name": "Problem two"}},
    }
    (folder / "UQx-Prob-2024-course_structure-prod-analytics.json").write_text(json.dumps(blocks), encoding="utf-8")

    def check(time: str, uid: int, attempts: int, answer: str, ok: bool) -> dict[str, Any]:
        mark = "correct" if ok else "incorrect"
        return {
            "username": f"u{uid}",
            "event_source": "server",
            "event_type": "problem_check",
            "time": time,
            "event": {
                "problem_id": P1,
                "attempts": attempts,
                "success": mark,
                "grade": int(ok),
                "max_grade": 2,
                "answers": {"p1_10_1": ["a", "b"], "p1_2_1": answer},
                "correct_map": {"p1_2_1": {"correctness": mark}, "p1_10_1": {"correctness": "correct"}},
                "submission": {"p1_2_1": {"answer": "B" if ok else "A", "correct": ok}},
            },
            "context": {"course_id": CID, "org_id": "UQx", "user_id": uid, "path": "/x", "module": {"usage_key": P1}},
        }

    handler = {
        "username": "u2",
        "event_source": "server",
        "event_type": f"/courses/{CID}/xblock/{P1}/handler/xmodule_handler/problem_check",
        "time": "2024-01-06T10:05:00+00:00",
        "event": {"GET": {}, "POST": {}},
        "context": {"course_id": CID, "org_id": "UQx", "user_id": 2, "path": "/x"},
    }
    events = [
        check("2024-01-06T10:00:00+00:00", 1, 1, "choice_0", False),  # learner 1: wrong, then right
        check("2024-01-06T10:10:00+00:00", 1, 2, "choice_1", True),
        check("2024-01-06T10:01:00+00:00", 2, 1, "choice_1", True),  # learner 2: right at once
        check("2024-01-06T10:02:00+00:00", 3, 3, "choice_0", False),  # learner 3: attempt 3, first not in the logs
        handler,
    ]
    path = data / "clickstream_logs" / "events" / "uqx-edx-events-2024-01-06.log"
    path.write_text("".join(json.dumps(e) + "\n" for e in events), encoding="utf-8")


@pytest.fixture
def crafted(tmp_path: Path, settings_for: Any, backend: dict[str, Any]) -> Settings:
    data = make_data_path(tmp_path / "data")
    write_crafted(data)
    settings = settings_for(data, api_token=TOKEN, **backend)
    ingest(settings)
    return settings


def _dicts(settings: Settings, sql: str) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in r.items()} for r in query_rows(settings, sql, as_dicts=True)]


def test_crafted_problem_analysis_rows(crafted: Settings) -> None:
    rows = _dicts(crafted, "SELECT * FROM problem_analysis WHERE problem_url_name = 'p1' ORDER BY user_id, item_answer_id")
    assert {r["user_id"] for r in rows} == {1, 2, 3, 4, 5, 6}  # 7 (empty map), 8 (no answers), 9 (not JSON) left out
    first = [r for r in rows if r["user_id"] == 1]
    assert [(r["item_answer_id"], r["item_response"], r["item_correct_bool"], r["item_npoints"]) for r in first] == [
        ("p1_10_1", '["a","b"]', True, 1.0),
        ("p1_2_1", "choice_1", True, 1.0),
    ]
    assert [r["item_response"] for r in rows if r["user_id"] == 6 and r["item_answer_id"] == "p1_10_1"] == [""]
    assert [r["item_response"] for r in rows if r["user_id"] == 5 and r["item_answer_id"] == "p1_10_1"] == [ODD]
    assert {(r["attempts"], r["done"], r["grade"], r["max_grade"], r["course_id"]) for r in first} == {(1, True, 2.0, 2.0, "UQx/Prob/2024")}


def test_crafted_item_tables_are_worked_out_by_hand(crafted: Settings) -> None:
    items = _dicts(
        crafted,
        "SELECT item_id, item_number, item_nid, problem_nid, n_items, n_user_responses, is_split, split_name, problem_weight, problem_name, emperical_item_points_possible FROM course_item ORDER BY item_nid",
    )
    # p1_2_1 first (response 2 before response 10); p2 has 3 learners: not kept
    assert items == [
        {
            "item_id": "p1_2_1",
            "item_number": 1,
            "item_nid": 1,
            "problem_nid": 1,
            "n_items": 2,
            "n_user_responses": 6,
            "is_split": True,
            "split_name": "ab",
            "problem_weight": 2.0,
            "problem_name": "Problem one",
            "emperical_item_points_possible": 1.0,
        },
        {
            "item_id": "p1_10_1",
            "item_number": 2,
            "item_nid": 2,
            "problem_nid": 1,
            "n_items": 2,
            "n_user_responses": 6,
            "is_split": True,
            "split_name": "ab",
            "problem_weight": 2.0,
            "problem_name": "Problem one",
            "emperical_item_points_possible": 1.0,
        },
    ]
    scores = _dicts(crafted, "SELECT user_id, problem_raw_score, problem_pct_score, n_attempts FROM person_problem ORDER BY user_id")
    assert [(r["user_id"], r["problem_raw_score"], r["problem_pct_score"], r["n_attempts"]) for r in scores] == [
        (1, 2, 100.0, 1),
        (2, 2, 100.0, 2),
        (3, 1, 50.0, 3),
        (4, 1, 50.0, 4),
        (5, 0, 0.0, 5),
        (6, 0, 0.0, 6),
    ]
    (cp,) = _dicts(crafted, "SELECT * FROM course_problem")
    # raw scores 2, 2, 1, 1, 0, 0: mean 1; sample variance (6*10 - 6^2) / (6*5) = 0.8; percentages 100, 100, 50, 50, 0, 0
    assert (cp["avg_problem_raw_score"], cp["sdv_problem_raw_score"], cp["avg_problem_pct_score"]) == (1.0, math.sqrt(0.8), 50.0)
    assert (cp["n_unique_users_attempted"], cp["max_possible_raw_score"], cp["problem_id"], cp["is_split"]) == (6, 2.0, "p1", True)


def test_crafted_events_tables_are_worked_out_by_hand(crafted: Settings) -> None:
    first = _dicts(
        crafted,
        "SELECT user_id, n_checks, first_check_attempts, first_attempt_correct, final_correct FROM problem_first_attempt_correct ORDER BY user_id",
    )
    assert [tuple(r.values()) for r in first] == [(1, 2, 1, False, True), (2, 1, 1, True, True), (3, 1, 3, None, False)]
    dist = _dicts(
        crafted,
        "SELECT answer_id, response, answer_text, n_checks, n_learners, n_correct, share_correct FROM problem_answer_distribution ORDER BY answer_id, response",
    )
    assert [tuple(r.values()) for r in dist] == [
        ("p1_10_1", '["a","b"]', None, 4, 3, 4, 1.0),
        ("p1_2_1", "choice_0", "A", 2, 2, 0, 0.0),
        ("p1_2_1", "choice_1", "B", 2, 2, 2, 1.0),
    ]
    (answers,) = query_rows(crafted, "SELECT student_answers FROM problem_check WHERE user_id = 2")
    assert json.loads(answers[0]) == {"p1_2_1": "choice_1", "p1_10_1": ["a", "b"]} and answers[0].startswith('{"p1_2_1"')
    kinds = query_rows(crafted, "SELECT event_type, problem_url, count(*) FROM problem_events GROUP BY event_type, problem_url ORDER BY 1")
    assert kinds == [("problem_check", "p1", 5)]  # four server checks and the handler call, its type the handler's name


def test_problems_endpoint_is_open_and_has_no_learner_rows(crafted: Settings) -> None:
    with reading(crafted) as wh:
        client = TestClient(create_app(crafted, ReadViews(crafted, wh, size=2)))
        answer = client.get(f"/api/v1/courses/{CID}/problems")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["course_key"] == KEY
        p1 = next(p for p in body["problems"] if p["problem_id"] == "p1")
        assert (
            p1["avg_problem_raw_score"],
            p1["n_learners_checked"],
            p1["n_first_attempt_known"],
            p1["n_first_attempt_correct"],
            p1["n_final_correct"],
            p1["n_answers"],
        ) == (1.0, 3, 2, 1, 2, 3)
        assert not any("user_id" in p or "username" in p for p in body["problems"])
        # the per-learner rows need the token
        assert client.get(f"/api/v1/courses/{CID}/tables/problem_analysis").status_code in (401, 403)
        ok = client.get(f"/api/v1/courses/{CID}/tables/problem_analysis", headers={"Authorization": f"Bearer {TOKEN}"})
        assert ok.status_code == 200 and ok.json()["total"] == 15  # p1: 6 learners x 2 items; p2: 3 x 1
