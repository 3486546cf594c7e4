"""TimeFinder against a plain-Python reference of the day and gap rules (docs/person_course.md)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date
from pathlib import Path
from typing import Any

import pytest

import person_course_data as D
from conftest import ingest, query_rows
from test_person_course import gaps, in_day_table, normalise


def reference_days(events: list[dict[str, Any]], course_ids: dict[str, str], cutoff: float = 300) -> dict[tuple, dict[str, Any]]:
    kept = gaps(events, cutoff)
    names = {uid: u[0] for uid, u in D.USERS.items()}
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e["who"] is not None and in_day_table(e):  # no /xblock/ call, no empty username (edx2bigquery)
            groups[(e["key"], e["who"], e["day"])].append(e)
    out = {}
    for (key, who, day), evs in groups.items():
        g = [x for d, x in kept.get((key, who), []) if d == day]
        uid = evs[0]["uid"]
        out[(key, uid if uid is not None else who[1], day)] = {
            "course_id": course_ids.get(key) or min(e["cid"] for e in evs),
            "username": names.get(uid) if uid in names else min(e["username"] for e in evs if e["username"]),
            "nevents": len(evs),
            "first_event": min(e["time"] for e in evs),
            "last_event": max(e["time"] for e in evs),
            "nplay_video": sum(e["type"] in ("play_video", "edx.video.played") for e in evs),
            "nproblem_check": sum(e["type"] == "problem_check" for e in evs),  # browser and server (edx2bigquery)
            "nproblem_check_server": sum(e["type"] == "problem_check" and e["source"] == "server" for e in evs),
            "nforum_events": sum(e["type"].startswith("edx.forum.") for e in evs),
            "nchapters": len({e["chapter"] for e in evs if e["chapter"]}),
            "sum_dt": round(sum(g), 6),
            "n_dt": len(g),
            "max_dt": max(g) if g else None,
            "sum_dt_us": sum(round(x * 1_000_000) for x in g),
        }
    return out


def warehouse_days(settings: Any) -> dict[tuple, dict[str, Any]]:
    out = {}
    for r in query_rows(settings, "SELECT * FROM person_course_day", as_dicts=True):
        key = (r["course_key"], r["user_id"] if r["user_id"] is not None else r["username"], r["date"])
        out[key] = {
            k: (round(v, 6) if isinstance(v, float) else v)
            for k, v in r.items()
            if k not in ("course_key", "user_id", "date", "rules_version", "computed_at", "sum_dt2", "sum_dt2_us")
        }
    return out


def course_ids(settings: Any) -> dict[str, str]:
    return {r["course_key"]: r["course_id"] for r in query_rows(settings, "SELECT course_key, course_id FROM courses", as_dicts=True)}


def reference_anomalies(files: dict[int, tuple[date, list[dict[str, Any]]]]) -> set[tuple]:
    out = set()
    for fid, (day, evs) in files.items():
        per: dict[str, list[int]] = defaultdict(list)
        for e in evs:
            off = (e["day"] - day).days
            if abs(off) > 1:
                per[e["key"]].append(off)
        out |= {(fid, k, len(v), min(v), max(v)) for k, v in per.items()}
    return out


@pytest.fixture
def package(data_path: Path, settings_for: Any) -> Any:
    D.write_package(data_path)
    settings = settings_for(data_path)
    ingest(settings)
    return settings


def late_events() -> list[dict[str, Any]]:
    """A file dated 2024-01-05 with an event of 2024-01-02 23:59:30: it gives alice's first event of
    2024-01-03 (00:02:00, in the 2024-01-03 file) a previous event 150 s before it."""
    return [D.ev("2024-01-02T23:59:30+00:00", "alice", 1, D.A, "play_video", "mobile", "", None, {"id": "vid9"}, name="edx.video.played")]


def test_person_course_day_equals_the_reference_and_gaps_count_on_the_later_day(package: Any) -> None:
    settings = package
    events = normalise(D.day1_events())
    assert warehouse_days(settings) == reference_days(events, course_ids(settings))
    # alice's 23:58 -> 00:01:00.5 gap crosses midnight: it is counted on 2024-01-02, not 2024-01-01
    day1 = query_rows(
        settings,
        "SELECT * FROM person_course_day WHERE user_id = 1 AND course_key = ? AND date = ?",
        [D.A_KEY, date(2024, 1, 1)],
        as_dicts=True,
    )
    assert day1[0]["n_dt"] == 0 and day1[0]["sum_dt"] == 0
    day2 = query_rows(
        settings,
        "SELECT * FROM person_course_day WHERE user_id = 1 AND course_key = ? AND date = ?",
        [D.A_KEY, date(2024, 1, 2)],
        as_dicts=True,
    )
    assert day2[0]["max_dt"] == pytest.approx(180.5)
    # the mobile event five days before its file's date is on its own day, and reported
    assert query_rows(settings, "SELECT count(*) AS n FROM person_course_day WHERE date = ?", [date(2023, 12, 28)])[0][0] == 1


def test_xblock_calls_and_empty_usernames_are_out_of_the_day_table(package: Any) -> None:
    """Worked by hand (course V, 2024-01-02): vhal (79) has /courseware/ch1/ at 10:00, an /xblock/ handler
    call at 10:01, play_video at 10:02, and an event with an empty username (context user_id 79) at 10:03.
    Only 10:00 and 10:02 are day-table events: nevents 2, one gap of 120 s (not 60 + 60 + 60).
    vivy (80) has only the /xblock/ call: no day row."""
    settings = package
    rows = {
        r["user_id"]: r
        for r in query_rows(
            settings, "SELECT * FROM person_course_day WHERE course_key = ? AND user_id IN (79, 80)", [D.V_KEY], as_dicts=True
        )
    }
    assert set(rows) == {79}
    hal = rows[79]
    assert (hal["nevents"], hal["n_dt"], hal["sum_dt"], hal["max_dt"]) == (2, 1, 120.0, 120.0)
    assert hal["nchapters"] == 1  # the /courseware/ URL's ch1; the day table's chapters are URL chapters of its own events
    assert str(hal["last_event"]).endswith("10:02:00")


def test_event_time_anomalies_per_file_and_course(package: Any) -> None:
    settings = package
    fid = query_rows(settings, "SELECT id FROM ingest_files WHERE path LIKE '%2024-01-02.log'", as_dicts=True)[0]["id"]
    got = {
        (r["file_id"], r["course_key"], r["nevents"], r["min_offset_days"], r["max_offset_days"])
        for r in query_rows(settings, "SELECT * FROM event_time_anomalies", as_dicts=True)
    }
    assert got == reference_anomalies({fid: (date(2024, 1, 2), normalise(D.day1_events()))})
    assert got  # the data has one


def test_only_touched_days_are_recomputed_including_the_next_days_first_gap(package: Any) -> None:
    settings = package
    data = settings.data_paths[0]
    day2 = D.day2_events() + [D.ev("2024-01-03T00:02:00+00:00", "alice", 1, D.A, "seq_goto", "browser", "1.1.1.1", None, "{}")]
    D.write_events(data, "2024-01-03", day2)
    ingest(settings)
    stamps = {
        (r["course_key"], r["date"]): r["t"]
        for r in query_rows(settings, "SELECT course_key, date, max(computed_at) AS t FROM person_course_day GROUP BY ALL", as_dicts=True)
    }
    events = normalise(D.day1_events() + day2)
    assert warehouse_days(settings) == reference_days(events, course_ids(settings))

    D.write_events(data, "2024-01-05", late_events())
    ingest(settings)
    events = normalise(D.day1_events() + day2 + late_events())
    assert warehouse_days(settings) == reference_days(events, course_ids(settings))
    after = {
        (r["course_key"], r["date"]): r["t"]
        for r in query_rows(settings, "SELECT course_key, date, max(computed_at) AS t FROM person_course_day GROUP BY ALL", as_dicts=True)
    }
    changed = {k for k in after if after[k] != stamps.get(k)}
    assert changed == {(D.A_KEY, date(2024, 1, 2)), (D.A_KEY, date(2024, 1, 3))}
    first = query_rows(
        settings,
        "SELECT n_dt, sum_dt FROM person_course_day WHERE user_id = 1 AND course_key = ? AND date = ?",
        [D.A_KEY, date(2024, 1, 3)],
        as_dicts=True,
    )[0]
    # 23:59:30 (day before) -> 00:02:00 = 150 s, kept on 2024-01-03; 00:02 -> 09:00 over the cut-off; 09:00 -> 09:04 = 240 s
    assert first["n_dt"] == 2 and first["sum_dt"] == pytest.approx(150 + 240)
    fids = {
        r["path"].rsplit("-events-", 1)[1][:10]: r["id"]
        for r in query_rows(settings, "SELECT id, path FROM ingest_files WHERE service = 'Clickstream'", as_dicts=True)
    }
    got = {
        (r["file_id"], r["course_key"], r["nevents"], r["min_offset_days"], r["max_offset_days"])
        for r in query_rows(settings, "SELECT * FROM event_time_anomalies", as_dicts=True)
    }
    assert got == reference_anomalies(
        {
            fids["2024-01-02"]: (date(2024, 1, 2), normalise(D.day1_events())),
            fids["2024-01-03"]: (date(2024, 1, 3), normalise(day2)),
            fids["2024-01-05"]: (date(2024, 1, 5), normalise(late_events())),
        }
    )


def test_gap_cutoff_is_a_setting(data_path: Path, settings_for: Any, cli: Any) -> None:
    D.write_package(data_path)
    settings = settings_for(data_path)
    result = cli(["ingest"], settings, env={"OPTIMUS_TIME_GAP_CUTOFF": "60"})
    assert result.exit_code == 0, result.output
    assert warehouse_days(settings) == reference_days(normalise(D.day1_events()), course_ids(settings), cutoff=60)


def test_read_ranges_are_disjoint_and_cover_each_day_with_its_gap_span() -> None:
    from datetime import datetime, timedelta

    from optimus.services.time_finder import read_ranges

    d = date(2024, 3, 10)
    scope = {("A", d), ("A", d + timedelta(days=1)), ("A", d + timedelta(days=5)), ("B", None), ("B", d)}
    got = read_ranges(scope, 2)
    at = lambda day: datetime.combine(day, datetime.min.time())  # noqa: E731
    # days 10 and 11 need [8, 12) together; day 15 needs [13, 16); B is read whole
    assert got == [
        ["A", at(d - timedelta(days=2)), at(d + timedelta(days=2))],
        ["A", at(d + timedelta(days=3)), at(d + timedelta(days=6))],
        ["B", None, None],
    ]
    touching = read_ranges({("A", d), ("A", d + timedelta(days=3))}, 2)  # [8, 11) and [11, 14) join
    assert touching == [["A", at(d - timedelta(days=2)), at(d + timedelta(days=4))]]
    apart = read_ranges({("A", d), ("A", d + timedelta(days=6))}, 2)
    assert apart == [
        ["A", at(d - timedelta(days=2)), at(d + timedelta(days=1))],
        ["A", at(d + timedelta(days=4)), at(d + timedelta(days=7))],
    ]
    for (_k1, _lo1, hi1), (_k2, lo2, _hi2) in zip(apart, apart[1:], strict=False):
        assert hi1 < lo2  # disjoint: a join on them reads each event once
