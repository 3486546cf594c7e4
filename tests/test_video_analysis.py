"""VideoAnalysis (docs/tables/video_analysis.md) against a plain-Python reference written from the
dictionary, on a sample package in DuckDB and PostgreSQL; crafted cases worked out by hand; a second
ingest recomputes nothing; the API's video summary is open and the per-learner tables are not.

The reference reads the raw event files the sample wrote, and the two inputs other services derive
(`course_blocks` for the axis, `person_course` for the learners' flags)."""

from __future__ import annotations

import gzip
import json
import math
import re
from collections import defaultdict
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import person_course_data as D
from conftest import ingest, query_rows
from optimus.api.app import create_app
from optimus.api.state import ReadViews
from optimus.sample import generate
from optimus.services.learner_events import VIDEO_ANY, VIDEO_PAUSE, VIDEO_PLAY, VIDEO_SEEK, VIDEO_STOP, VIDEO_TRANSCRIPT, VIDEO_VIEW
from optimus.services.video_analysis import VIDEO_AXIS, VIDEO_ENGAGEMENT, VIDEO_STATS, VIDEO_STATS_DAY, VideoAnalysis
from optimus.warehouse import connect

TOKEN = "video-token"
TABLES = VideoAnalysis.tables
NUMBER = re.compile(r"-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?")


# -- the reference (docs/tables/video_analysis.md), from the raw event lines ---------------------------


def course_key(cid: str) -> str:
    return cid[len("course-v1:") :] if cid.startswith("course-v1:") else cid.replace("/", "+")


def course_id(key: str) -> str:
    return key.replace("+", "/")


def read_events(folder: Path) -> list[dict[str, Any]]:
    """Every distinct event object of the files (text from the first `{`; unparsable lines skipped)."""
    seen: set[str] = set()
    out: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.log*")):
        raw = gzip.open(path, "rb").read() if path.suffix == ".gz" else path.read_bytes()
        for line in raw.decode("utf-8", errors="replace").splitlines():
            start = line.find("{")
            if start < 0 or line[start:] in seen:
                continue
            try:
                ev = json.loads(line[start:])
            except ValueError:
                continue
            if isinstance(ev, dict) and isinstance(ev.get("time"), str):
                seen.add(line[start:])
                out.append(ev)
    return out


def as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def number(value: Any) -> float | None:
    """try_cast to DOUBLE PRECISION of a member's text: a JSON number, or a string holding one."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return float(value)
    return float(value) if isinstance(value, str) and NUMBER.fullmatch(value) else None


def video_id(raw: Any) -> str | None:
    """The dictionary's video id: the block's own id, `.` written `_`."""
    if not isinstance(raw, str):
        return None
    v = raw.strip()
    if "+block@" in v:
        v = v.split("+block@")[1]
    elif "/video/" in v:
        v = v.split("/video/")[1]
    elif "/videoalpha/" in v:
        v = v.split("/videoalpha/")[1]
    elif v.startswith("i4x-") and "-video-" in v:
        v = v[v.index("-video-") + 7 :]
    elif v.startswith("i4x-") and "-videoalpha-" in v:
        v = v[v.index("-videoalpha-") + 12 :]
    return v.replace(".", "_") or None


def video_events(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for ev in lines:
        etype = ev.get("name") or ev.get("event_type")
        cid = (as_dict(ev.get("context")).get("course_id") or "").strip()
        if etype not in VIDEO_ANY or not cid:
            continue
        payload, context = as_dict(ev.get("event")), as_dict(ev.get("context"))
        t = datetime.fromisoformat(ev["time"])
        t = t.astimezone(UTC).replace(tzinfo=None) if t.tzinfo else t
        duration = number(payload.get("duration"))
        out.append(
            {
                "course_key": course_key(cid),
                "day": t.date(),
                "username": (ev.get("username") or "").strip() or None,
                "type": etype,
                "source": ev.get("event_source"),
                "video_id": video_id(payload.get("id")),
                "ct": number(payload.get("currentTime")),
                "speed": number(payload.get("speed")),
                "duration": duration if duration is not None else number(context.get("duration")),
            }
        )
    return out


def lengths(events: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    best: dict[tuple[str, str], float] = {}
    for e in events:
        d = e["duration"]
        if e["video_id"] is not None and d is not None and 1 <= d < 2**31:
            k = (e["course_key"], e["video_id"])
            best[k] = max(best.get(k, d), d)
    return {k: math.floor(d) for k, d in best.items()}


def reference(events: list[dict[str, Any]], blocks: list[dict[str, Any]], people: list[dict[str, Any]]) -> dict[str, list[dict]]:
    length = lengths(events)
    # video_axis
    # a chapter index's smallest position and smallest name (one chapter per index in practice)
    chapters: dict[tuple[str, int], dict[str, Any]] = {}
    for b in blocks:
        if b["category"] == "chapter" and b["published"] is not False and b["chapter_index"] is not None:
            ch = chapters.setdefault((b["course_key"], b["chapter_index"]), {"position": b["position"], "display_name": b["display_name"]})
            ch["position"] = min(ch["position"], b["position"])
            names = [n for n in (ch["display_name"], b["display_name"]) if n is not None]
            ch["display_name"] = min(names) if names else None
    axis = []
    for b in blocks:
        if b["category"] != "video" or b["published"] is False or not b["url_name"]:
            continue
        ch = chapters.get((b["course_key"], b["chapter_index"]))
        vid = b["url_name"].replace(".", "_")
        axis.append(
            {
                "course_key": b["course_key"],
                "index_chapter": ch["position"] if ch else None,
                "index_video": b["position"],
                "category": "video",
                "course_id": course_id(b["course_key"]),
                "name": b["display_name"],
                "video_id": vid,
                "youtube_id": b["youtube_id"],
                "chapter_name": ch["display_name"] if ch else None,
                "video_length": length.get((b["course_key"], vid)),
            }
        )
    # video_stats_day
    groups: dict[tuple, list[float | None]] = defaultdict(list)
    for e in events:
        if e["type"] in VIDEO_VIEW and e["username"] and e["video_id"]:
            pos = e["speed"] * e["ct"] if e["speed"] is not None and e["ct"] is not None else e["ct"] if e["speed"] is None else None
            groups[(e["course_key"], e["day"], e["username"], e["video_id"])].append(pos)
    day_rows = []
    for (key, day, user, vid), positions in groups.items():
        known = [p for p in positions if p is not None]
        day_rows.append(
            {
                "course_key": key,
                "course_id": course_id(key),
                "date": day,
                "username": user,
                "video_id": vid,
                "position": max(known) if known else None,
            }
        )
    # video_stats
    best: dict[tuple[str, str, str], float | None] = {}
    for r in day_rows:
        k = (r["course_key"], r["username"], r["video_id"])
        old, new = best.get(k), r["position"]
        best[k] = new if old is None else old if new is None else max(old, new)
    by_axis = {(a["course_key"], a["video_id"]): a for a in axis}
    stats: dict[tuple[str, str], dict[str, Any]] = {}
    for (key, _user, vid), pos in best.items():
        a = by_axis.get((key, vid), {})
        row = stats.setdefault(
            (key, vid),
            {
                "course_key": key,
                "course_id": course_id(key),
                "index_chapter": a.get("index_chapter"),
                "index_video": a.get("index_video"),
                "name": a.get("name"),
                "video_id": vid,
                "chapter_name": a.get("chapter_name"),
                "videos_viewed": 0,
                "videos_watched": 0,
            },
        )
        row["videos_viewed"] += pos is not None and pos > 0
        vl = a.get("video_length")
        row["videos_watched"] += pos is not None and vl is not None and pos > float(vl) * 0.95
    # person_course_video_watched
    total = defaultdict(int)
    for a in axis:
        total[a["course_key"]] += 1
    seen: dict[tuple[str, str], set[str]] = defaultdict(set)
    for r in day_rows:
        seen[(r["course_key"], r["username"])].add(r["video_id"])
    watched = []
    for p in people:
        vids = seen.get((p["course_key"], p["username"]))
        if not vids or p["roles"] not in ("Student", None):
            continue
        watched.append(
            {
                "course_key": p["course_key"],
                "user_id": p["user_id"],
                "course_id": course_id(p["course_key"]),
                "n_unique_videos_watched": len(vids),
                "fract_total_videos_watched": len(vids) / total[p["course_key"]] if total[p["course_key"]] else None,
                "viewed": p["viewed"],
                "certified": p["certified"],
                "verified": None if p["mode"] is None else p["mode"] == "verified",
            }
        )
    # video_engagement
    engagement = []
    per_video: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        if e["video_id"] is not None:
            per_video[(e["course_key"], e["video_id"])].append(e)
    for (key, vid), evs in per_video.items():
        vl = length.get((key, vid))
        reach: dict[str, float | None] = {}
        for e in evs:
            if e["type"] in VIDEO_VIEW and e["username"]:
                ct = e["ct"] if e["ct"] is not None and e["ct"] >= 0 else None
                old = reach.get(e["username"])
                reach[e["username"]] = ct if old is None else old if ct is None else max(old, ct)
        ms = [math.floor(min(r, float(vl)) * 1000) for r in reach.values() if r is not None] if vl is not None else []
        lms = vl * 1000 if vl is not None else None
        row = {
            "course_key": key,
            "course_id": course_id(key),
            "video_id": vid,
            "video_length": vl,
            "events": len(evs),
            "web_events": sum(e["source"] == "browser" for e in evs),
            "mobile_events": sum(e["source"] == "mobile" for e in evs),
            "plays": sum(e["type"] in VIDEO_PLAY for e in evs),
            "pauses": sum(e["type"] in VIDEO_PAUSE for e in evs),
            "seeks": sum(e["type"] in VIDEO_SEEK for e in evs),
            "stops": sum(e["type"] in VIDEO_STOP for e in evs),
            "speed_changes": sum(e["type"] == "speed_change_video" for e in evs),
            "transcript_shows": sum(e["type"] in VIDEO_TRANSCRIPT for e in evs),
            "viewers": len(reach),
            "mean_fraction_watched": sum(ms) / (len(ms) * lms) if ms and lms else None,
            "median_fraction_watched": sorted(m / lms for m in ms)[(len(ms) - 1) // 2] if ms and lms else None,
        }
        for k in range(1, 11):
            row[f"viewers_decile_{k}"] = None if lms is None else sum(10 * m > (k - 1) * lms for m in ms)
        engagement.append(row)
    return {
        "video_axis": axis,
        "video_stats_day": day_rows,
        "video_stats": list(stats.values()),
        "person_course_video_watched": watched,
        "video_engagement": engagement,
    }


def warehouse_inputs(settings: Any) -> tuple[list[dict], list[dict]]:
    blocks = query_rows(
        settings,
        "SELECT course_key, position, category, url_name, display_name, youtube_id, chapter_index, published FROM course_blocks",
        as_dicts=True,
    )
    people = query_rows(settings, "SELECT course_key, user_id, username, viewed, certified, mode, roles FROM person_course", as_dicts=True)
    return blocks, people


def ours(settings: Any, table: str) -> list[dict[str, Any]]:
    return query_rows(settings, f"SELECT * FROM {table}", as_dicts=True)


def canonical(rows: list[dict[str, Any]], columns: list[str]) -> list[tuple]:
    """Rows as tuples in column order, sorted by every column (None first): the order of rows is not the rule."""
    out = [tuple(r[c] for c in columns) for r in rows]
    return sorted(out, key=lambda t: tuple((v is not None, str(v) if isinstance(v, date) else v) for v in t))


def assert_tables_equal(settings: Any, expected: dict[str, list[dict]]) -> None:
    for table in TABLES:
        cols = list(table.columns)
        got = canonical(ours(settings, table.name), cols)
        want = canonical(expected[table.name], cols)
        assert got == want, table.name


# -- the sample, on both engines ---------------------------------------------------------------------


@pytest.fixture
def sample_on(tmp_path: Path, settings_for: Any, backend: dict[str, Any]) -> Any:
    data = tmp_path / "data"
    generate(data, courses=2, learners=30, days=3, seed=7)
    settings = settings_for(data, **backend)
    ingest(settings)
    return settings


def test_tables_equal_the_reference_on_the_sample(sample_on: Any) -> None:
    settings = sample_on
    events = video_events(read_events(Path(settings.data_paths[0]) / "clickstream_logs" / "events"))
    expected = reference(events, *warehouse_inputs(settings))
    # the sample exercises every rule: web and mobile ids of one video, speeds, lengths, watchers past 95%
    assert {e["source"] for e in events} == {"browser", "mobile"}
    assert any(e["speed"] not in (None, 1.0) for e in events)
    assert sum(r["videos_watched"] for r in expected["video_stats"]) > 0
    assert any(r["video_length"] is not None for r in expected["video_axis"])
    assert any(r["mobile_events"] and r["web_events"] and r["viewers"] for r in expected["video_engagement"])
    assert expected["person_course_video_watched"]
    assert_tables_equal(settings, expected)


def test_sample_video_lengths_are_the_manifests(tmp_path: Path, settings_for: Any) -> None:
    data = tmp_path / "data"
    manifest = generate(data, courses=2, learners=20, days=2, seed=3)
    settings = settings_for(data)
    ingest(settings)
    durations = manifest["video_analysis"]["durations"]
    rows = query_rows(settings, "SELECT course_key, video_id, video_length FROM video_axis WHERE video_length IS NOT NULL")
    assert rows
    for key, vid, vl in rows:
        cid = next(c for c in durations if course_key(c) == key)
        assert vl == math.floor(durations[cid][vid])


def test_second_ingest_recomputes_nothing(tmp_path: Path, settings_for: Any) -> None:
    data = tmp_path / "data"
    generate(data, courses=2, learners=12, days=2, seed=5)
    settings = settings_for(data)
    ingest(settings)
    runs = "SELECT count(*) FROM service_runs WHERE service = 'VideoAnalysis'"
    before = query_rows(settings, runs)[0][0]
    tables = {t.name: ours(settings, t.name) for t in TABLES}
    assert before == 1 and tables["video_stats_day"]
    ingest(settings)
    assert query_rows(settings, runs)[0][0] == before
    assert {t.name: ours(settings, t.name) for t in TABLES} == tables


# -- crafted cases, worked out by hand ---------------------------------------------------------------

K, K_KEY = "course-v1:UQx+Vid+2024", "UQx+Vid+2024"
CRAFTED_USERS = {201: ("sam", "verified"), 202: ("wes", "audit"), 203: ("pat", "audit"), 204: ("mo", "audit")}


def kblock(kind: str, name: str) -> str:
    return f"block-v1:{K_KEY}+type@{kind}+block@{name}"


def web(time: str, user: str, uid: int, etype: str, payload: dict[str, Any]) -> dict[str, Any]:
    return D.ev(time, user, uid, K, etype, "browser", "", None, json.dumps(payload))


def mobile(time: str, user: str, uid: int, name: str, old: str, payload: dict[str, Any], **context: Any) -> dict[str, Any]:
    line = D.ev(time, user, uid, K, old, "mobile", "", None, payload, name=name)
    line["context"].update(context)
    return line


def crafted_events() -> dict[str, list[dict[str, Any]]]:
    va, vb_web, vb_mobile = "va", "i4x-UQx-Vid-video-vb", kblock("video", "vb")
    day1 = [
        # va: its length from a web load (a string: 300.9 -> 300 s)
        web("2024-01-02T08:00:00+00:00", "sam", 201, "load_video", {"id": va, "duration": "300.9"}),
        # sam at speed 1.5: positions 150 and 300 (= 1.5 x 200); reach 200 s (currentTime, not x speed)
        web("2024-01-02T08:01:00+00:00", "sam", 201, "play_video", {"id": va, "currentTime": 100, "speed": "1.50"}),
        web("2024-01-02T08:02:00+00:00", "sam", 201, "pause_video", {"id": va, "currentTime": 200, "speed": "1.50"}),
        web(
            "2024-01-02T08:02:30+00:00",
            "sam",
            201,
            "speed_change_video",
            {"id": va, "current_time": 200, "old_speed": "1.0", "new_speed": "1.50"},
        ),
        # wes passes 95% of 300 s (285) at 286
        web("2024-01-02T09:00:00+00:00", "wes", 202, "play_video", {"id": va, "currentTime": 10}),
        web("2024-01-02T09:00:10+00:00", "wes", 202, "seek_video", {"id": va, "old_time": 10, "new_time": 280}),
        web("2024-01-02T09:01:00+00:00", "wes", 202, "stop_video", {"id": va, "currentTime": 286}),
        # pat stops exactly at 95%: not past it
        web("2024-01-02T10:00:00+00:00", "pat", 203, "pause_video", {"id": va, "currentTime": 285}),
        web("2024-01-02T10:00:05+00:00", "pat", 203, "show_transcript", {"id": va, "currentTime": 285}),
        # vb: its length from a mobile load's context (200.5 -> 200 s); mo plays it on the app (block-v1 id) ...
        mobile(
            "2024-01-02T11:00:00+00:00", "mo", 204, "edx.video.loaded", "load_video", {"id": vb_mobile, "code": "mobile"}, duration=200.5
        ),
        mobile(
            "2024-01-02T11:00:01+00:00", "mo", 204, "edx.video.played", "play_video", {"id": vb_mobile, "code": "mobile", "currentTime": 50}
        ),
    ]
    # ... and pauses it the next day on the web (the i4x- id of the same block)
    day2 = [web("2024-01-03T07:00:00+00:00", "mo", 204, "pause_video", {"id": vb_web, "currentTime": 150})]
    return {"2024-01-02": day1, "2024-01-03": day2}


def write_crafted(data: Path) -> None:
    for day, events in crafted_events().items():
        D.write_events(data, day, events)
    folder = data / "database_state" / D.PACKAGE
    stem = K_KEY.replace("+", "-")
    D._tsv(
        folder / f"{stem}-auth_user-prod-analytics.sql",
        ["id", "username", "email", "is_staff", "is_active", "date_joined"],
        [[u, name, f"{name}@example.org", 0, 1, "2023-11-01 00:00:00"] for u, (name, _m) in CRAFTED_USERS.items()],
    )
    D._tsv(
        folder / f"{stem}-student_courseenrollment-prod-analytics.sql",
        ["id", "user_id", "course_id", "created", "is_active", "mode"],
        [[300 + u, u, K, "2023-12-01 09:00:00", 1, mode] for u, (_n, mode) in CRAFTED_USERS.items()],
    )
    blocks: dict[str, Any] = {
        kblock("course", "course"): {"category": "course", "children": [kblock("chapter", "c1")], "metadata": {"display_name": "Vid"}},
        kblock("chapter", "c1"): {"category": "chapter", "children": [kblock("sequential", "s1")], "metadata": {"display_name": "Week 1"}},
        kblock("sequential", "s1"): {"category": "sequential", "children": [kblock("vertical", "u1")], "metadata": {"display_name": "S"}},
        kblock("vertical", "u1"): {"category": "vertical", "children": [kblock("video", "va"), kblock("video", "vb")], "metadata": {}},
        kblock("video", "va"): {"category": "video", "children": [], "metadata": {"display_name": "Video A", "youtube_id_1_0": "ytA"}},
        kblock("video", "vb"): {"category": "video", "children": [], "metadata": {"display_name": "Video B"}},
    }
    (folder / f"{stem}-course_structure-prod-analytics.json").write_text(json.dumps(blocks), encoding="utf-8")


@pytest.fixture
def crafted_on(data_path: Path, settings_for: Any, backend: dict[str, Any]) -> Any:
    write_crafted(data_path)
    settings = settings_for(data_path, **backend)
    ingest(settings)
    return settings


def test_crafted_course_by_hand(crafted_on: Any) -> None:
    s = crafted_on
    cid = "UQx/Vid/2024"
    axis = query_rows(
        s, "SELECT index_chapter, index_video, category, course_id, name, video_id, youtube_id, chapter_name, video_length FROM video_axis"
    )
    assert sorted(axis) == [
        (2, 5, "video", cid, "Video A", "va", "ytA", "Week 1", 300),
        (2, 6, "video", cid, "Video B", "vb", None, "Week 1", 200),
    ]
    day = query_rows(s, "SELECT date, username, video_id, position FROM video_stats_day ORDER BY date, username, video_id")
    assert day == [
        (date(2024, 1, 2), "mo", "vb", 50.0),
        (date(2024, 1, 2), "pat", "va", 285.0),
        (date(2024, 1, 2), "sam", "va", 300.0),  # 1.5 x 200
        (date(2024, 1, 2), "wes", "va", 286.0),
        (date(2024, 1, 3), "mo", "vb", 150.0),  # the web pause of the block mo played on the app
    ]
    stats = query_rows(s, "SELECT video_id, name, videos_viewed, videos_watched FROM video_stats ORDER BY video_id")
    # va: sam (300 > 285) and wes (286 > 285) watched, pat (285) not; vb: 150 is not past 190
    assert stats == [("va", "Video A", 3, 2), ("vb", "Video B", 1, 0)]
    watched = query_rows(
        s,
        "SELECT user_id, course_id, n_unique_videos_watched, fract_total_videos_watched, viewed, certified, verified FROM person_course_video_watched ORDER BY user_id",
    )
    assert watched == [
        (201, cid, 1, 0.5, 1, 0, True),
        (202, cid, 1, 0.5, 1, 0, False),
        (203, cid, 1, 0.5, 1, 0, False),
        (204, cid, 1, 0.5, 1, 0, False),
    ]
    cols = [c for c in VIDEO_ENGAGEMENT.columns if c not in ("course_key", "course_id")]
    eng = {r["video_id"]: r for r in query_rows(s, f"SELECT {', '.join(cols)} FROM video_engagement", as_dicts=True)}
    assert set(eng) == {"va", "vb"}
    # va: 9 web events; reaches 200, 286, 285 s of 300: mean 771000 / 900000, lower median 285/300;
    # tenths: 10 x reach > (k-1) x 300 s holds for all three up to k = 7, then only wes and pat
    assert eng["va"] == {
        "video_id": "va", "video_length": 300, "events": 9, "web_events": 9, "mobile_events": 0, "plays": 2, "pauses": 2, "seeks": 1,
        "stops": 1, "speed_changes": 1, "transcript_shows": 1, "viewers": 3, "mean_fraction_watched": 771000 / 900000,
        "median_fraction_watched": 285000 / 300000, **{f"viewers_decile_{k}": 3 if k <= 7 else 2 for k in range(1, 11)},
    }  # fmt: skip
    # vb: one learner on both app and web reaching 150 of 200 s: past the start of tenths 1..8 (10 x 150 > 7 x 200)
    assert eng["vb"] == {
        "video_id": "vb", "video_length": 200, "events": 3, "web_events": 1, "mobile_events": 2, "plays": 1, "pauses": 1, "seeks": 0,
        "stops": 0, "speed_changes": 0, "transcript_shows": 0, "viewers": 1, "mean_fraction_watched": 0.75,
        "median_fraction_watched": 0.75, **{f"viewers_decile_{k}": 1 if k <= 8 else 0 for k in range(1, 11)},
    }  # fmt: skip
    # and the reference, from the same lines, agrees with every table
    events = video_events([e for evs in crafted_events().values() for e in evs])
    assert_tables_equal(s, reference(events, *warehouse_inputs(s)))


def test_videos_endpoint_is_open_and_learner_rows_need_the_token(data_path: Path, settings_for: Any) -> None:
    write_crafted(data_path)
    settings = settings_for(data_path, api_token=TOKEN)
    ingest(settings)
    wh = connect(settings, read_only=True)
    try:
        client = TestClient(create_app(settings, ReadViews(settings, wh, size=2)))
        body = client.get(f"/api/v1/courses/{K}/videos").json()
        assert [(v["video_id"], v["video_length"], v["videos_viewed"], v["videos_watched"], v["viewers"]) for v in body["videos"]] == [
            ("va", 300, 3, 2, 3),
            ("vb", 200, 1, 0, 1),
        ]
        assert body["videos_not_in_axis"] == []
        assert not any("username" in v or "user_id" in v for v in body["videos"])
        for table in (VIDEO_STATS_DAY.name, "person_course_video_watched"):
            assert client.get(f"/api/v1/courses/{K}/tables/{table}").status_code == 401
            assert client.get(f"/api/v1/courses/{K}/tables/{table}", headers={"Authorization": "Bearer " + TOKEN}).status_code == 200
        for table in (VIDEO_AXIS.name, VIDEO_STATS.name, VIDEO_ENGAGEMENT.name):
            assert client.get(f"/api/v1/courses/{K}/tables/{table}").status_code == 200
        assert client.get("/api/v1/courses/course-v1:UQx+Nope+1/videos").status_code == 404
    finally:
        wh.close()
