"""The de-identified release (optimus release, docs/release.md), checked apart from the code that made it.

On a sample package ingested into DuckDB and into PostgreSQL: the written files are read back and
measured with pycanon and with a few lines of plain Python (k, l), searched for identifiers, joined back
to the full person_course on the quasi-identifiers (no learner alone), and held to utility floors
(rows kept, country, year-of-birth bins) that a release suppressing everything or blanking every
quasi-identifier fails. The method's pure functions are checked on crafted rows worked out by hand.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import hmac
import json
import os
import re
import stat
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from pycanon import anonymity
from typer.testing import CliRunner

from conftest import ingest, query_rows, settings_env
from optimus import release as R
from optimus.cli import app
from optimus.config import Settings

K, L = 5, 2
QI_COLUMNS = ["course_id", "final_cc_cname_DI", "YoB_DI", "gender_DI", "LoE_DI", "nforum_posts_DI", "start_time_DI", "last_event_DI"]
IDENTIFYING = {"user_id", "username", "ip", "email_domain", "city", "region", "latitude", "longitude", "postal_code", "cc_by_ip"}
COUNTRIES_CSV = Path(__file__).resolve().parents[1] / "src" / "optimus" / "data" / "countries.csv"
CONTINENTS = {"Africa", "Antarctica", "Asia", "Europe", "North America", "Oceania", "South America", "Unknown/Other"}


def run_cli(args: list[str], settings: Settings) -> Any:
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("OPTIMUS_") and not k.startswith("OPTIMUS_TEST")}
    env.update(settings_env(settings))
    return CliRunner().invoke(app, args, env=env, catch_exceptions=False)


def read_release(folder: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(folder / "person_course_DI.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def grade_bin(grade: str) -> str:
    """The documented rule (docs/release.md): tenths of the grade, 1.0 in the last; `none` without a grade."""
    if grade == "":
        return "none"
    tenth = min(9, int(float(grade) * 10 + 1e-9))
    return f"{tenth / 10:.1f}-{(tenth + 1) / 10:.1f}"


# -- the sample package, once, on each engine ------------------------------------------------------------


@pytest.fixture(scope="module")
def sample_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from optimus.sample import generate

    root = tmp_path_factory.mktemp("release_sample")
    generate(root / "data", courses=2, learners=1000, days=2, seed=7)
    return root / "data"


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def released(request: pytest.FixtureRequest, sample_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The sample ingested into one engine, and released twice (per course, and --linkable)."""
    root = tmp_path_factory.mktemp(f"release_{request.param}")
    warehouse = str(root / "wh" / "optimus.duckdb")
    dropped = None
    if request.param == "postgres":
        from postgres_server import RUN_ID, create_database, drop_database

        server = request.getfixturevalue("pg_server")
        name = f"opt_{RUN_ID}_release"
        warehouse = create_database(server, name)
        dropped = (server, name)
    settings = Settings(
        data_paths=[sample_data],
        warehouse=warehouse,
        export_path=root / "exports",
        www_path=root / "www",
        release_secret_file=root / "secret" / "release-secret",
    )
    ingest(settings)
    out = {}
    for label, extra in (("course", []), ("linkable", ["--linkable"])):
        result = run_cli(["release", str(root / label), *extra], settings)
        assert result.exit_code == 0, result.output
        header, rows = read_release(root / label)
        report = json.loads((root / label / "release_report.json").read_text())
        out[label] = {"folder": root / label, "header": header, "rows": rows, "report": report, "output": result.output}
    full = query_rows(settings, "SELECT * FROM person_course", as_dicts=True)
    yield {"settings": settings, "full": full, **out}
    if dropped:
        drop_database(*dropped)


# -- k and l, measured apart -------------------------------------------------------------------------------


def qi_frame(rows: list[dict[str, str]], linkable: bool) -> pd.DataFrame:
    frame = pd.DataFrame([{c: (r[c] or "(empty)") for c in QI_COLUMNS} for r in rows])
    frame["grade_bin"] = [grade_bin(r["grade"]) for r in rows]
    frame["certified"] = [r["certified"] for r in rows]
    if linkable:
        seen: dict[str, set[str]] = defaultdict(set)
        for r in rows:
            seen[r["userid_DI"]].add(r["course_id"])
        frame["course_set"] = ["|".join(sorted(seen[r["userid_DI"]])) for r in rows]
    return frame


@pytest.mark.parametrize("label", ["course", "linkable"])
def test_every_class_has_k_rows_and_l_sensitive_values(released: dict[str, Any], label: str) -> None:
    rows = released[label]["rows"]
    assert rows
    frame = qi_frame(rows, label == "linkable")
    qis = QI_COLUMNS + (["course_set"] if label == "linkable" else [])
    assert anonymity.k_anonymity(frame, qis) >= K
    assert anonymity.l_diversity(frame, qis, ["grade_bin", "certified"]) >= L
    # and by hand
    classes: dict[tuple, list[int]] = defaultdict(list)
    for i, rec in enumerate(frame.to_dict("records")):
        classes[tuple(rec[q] for q in qis)].append(i)
    assert min(len(m) for m in classes.values()) >= K
    for members in classes.values():
        assert len({frame["grade_bin"][i] for i in members}) >= L
        assert len({frame["certified"][i] for i in members}) >= L
    report = released[label]["report"]
    assert report["classes"]["smallest"] == min(len(m) for m in classes.values())
    assert report["classes"]["count"] == len(classes)


def test_no_identifying_column_and_no_empty_hash(released: dict[str, Any]) -> None:
    header, rows = released["course"]["header"], released["course"]["rows"]
    assert header == R.RELEASE_COLUMNS
    assert not set(header) & IDENTIFYING
    assert all(re.fullmatch(r"[0-9a-f]{64}", r["userid_DI"]) for r in rows)
    text = (released["course"]["folder"] / "person_course_DI.csv").read_text(encoding="utf-8")
    cells = set(re.split(r"[,\r\n]", text))
    full = released["full"]
    assert not cells & {str(r["username"]) for r in full if r["username"]}
    assert not cells & {str(r["ip"]) for r in full if r["ip"]}
    assert "@" not in text
    # per learner and course: no hash in two courses, though learners are (the sample enrols every fifth in two)
    courses_of: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        courses_of[r["userid_DI"]].add(r["course_id"])
    assert all(len(c) == 1 for c in courses_of.values())
    assert len(courses_of) == len(rows)
    for p in released["course"]["folder"].iterdir():
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


def test_the_hash_is_hmac_sha256_of_learner_and_course_with_the_secret(released: dict[str, Any]) -> None:
    key = released["settings"].release_secret_file.read_bytes().strip()
    assert stat.S_IMODE(released["settings"].release_secret_file.stat().st_mode) == 0o600
    want = {
        hmac.new(key, f"id\x1f{r['user_id']}\x1fcourse\x1f{r['course_key']}".encode(), hashlib.sha256).hexdigest() for r in released["full"]
    }
    got = {r["userid_DI"] for r in released["course"]["rows"]}
    assert got <= want
    linkable = {r["userid_DI"] for r in released["linkable"]["rows"]}
    assert linkable <= {hmac.new(key, f"id\x1f{r['user_id']}".encode(), hashlib.sha256).hexdigest() for r in released["full"]}
    assert not got & linkable


def test_linkable_release_links_a_learners_courses(released: dict[str, Any]) -> None:
    rows = released["linkable"]["rows"]
    courses_of: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        courses_of[r["userid_DI"]].add(r["course_id"])
    assert any(len(c) == 2 for c in courses_of.values())  # learners in both courses keep one id


# -- joining back to the full person_course ------------------------------------------------------------------


def generalise(row: dict[str, Any], report: dict[str, Any], names: dict[str, tuple[str, str]]) -> tuple:
    """A person_course row's quasi-identifiers as the report says the release wrote them (written from
    docs/release.md and the report's published mappings, not from the release code)."""
    g = report["generalisations"]
    out: list[Any] = [row["course_id"]]
    code = (row["cc_by_ip"] or "").upper()
    if code not in names:
        code = (row["profile_country"] or "").upper()
    country, continent = names[code] if code in names else ("Unknown/Other", "Unknown/Other")
    # a country no learner of the release is from (staff only) is not in the mapping: above level 0, its continent
    level = g["final_cc_cname_DI"]["level"]
    out.append(g["final_cc_cname_DI"]["values"].get(country, country if level == 0 else continent))
    yob = g["YoB_DI"]
    y = row["YoB"]
    if y is None:
        out.append(None)
    elif yob["low_tail_end"] is not None and y <= yob["low_tail_end"]:
        out.append(f"<={yob['low_tail_end']}")
    elif yob["high_tail_start"] is not None and y >= yob["high_tail_start"]:
        out.append(f">={yob['high_tail_start']}")
    elif yob["width"] == 1:
        out.append(str(y))
    else:
        start = y // yob["width"] * yob["width"]
        out.append(f"{start}-{start + yob['width'] - 1}")
    gender = {"f": "f", "m": "m", "o": "o"}.get(row["gender"] or "")
    out.append(
        None
        if g["gender_DI"].get("blank")
        else gender
        if g["gender_DI"]["level"] == 0
        else gender
        if gender in ("f", "m")
        else "other/unknown"
    )
    out.append(None if g["LoE_DI"].get("blank") else g["LoE_DI"]["values"].get(row["LoE"] or ""))
    posts = g["nforum_posts_DI"]
    n = row["nforum_posts"] or 0
    if posts.get("blank"):
        out.append(None)
    elif n == 0:
        out.append("0")
    elif n >= posts["top"]:
        out.append(f">={posts['top']}")
    elif posts["width"] == 1:
        out.append(str(n))
    else:
        s = (n - 1) // posts["width"] * posts["width"] + 1
        out.append(f"{s}-{s + posts['width'] - 1}")
    for col, src in (("start_time_DI", "start_time"), ("last_event_DI", "last_event")):
        d = row[src].date() if isinstance(row[src], datetime) else None
        kind = g[col].get("granularity")
        if g[col].get("blank") or d is None:
            out.append(None)
        elif kind == "day":
            out.append(d.isoformat())
        elif kind == "week":
            iso = d.isocalendar()
            out.append(f"{iso[0]}-W{iso[1]:02d}")
        else:
            out.append(f"{d:%Y-%m}")
    return tuple(out)


def test_joining_back_to_person_course_finds_no_learner_alone(released: dict[str, Any]) -> None:
    with open(COUNTRIES_CSV, newline="", encoding="utf-8") as fh:
        names = {r["code"]: (r["name"], r["continent"]) for r in csv.DictReader(fh)}
    report = released["course"]["report"]
    candidates = Counter(generalise(r, report, names) for r in released["full"])
    published = Counter(tuple(r[c] or None for c in QI_COLUMNS) for r in released["course"]["rows"])
    for qis, n in published.items():
        assert candidates[qis] >= n, qis  # the join finds every released row's learners ...
        assert candidates[qis] >= K, qis  # ... and never fewer than k of them


# -- utility floors -------------------------------------------------------------------------------------


def assert_utility_floors(rows: list[dict[str, str]], learners: int) -> None:
    """At least 80% of the learners' rows kept, country at least at continent level, year-of-birth bins no
    wider than 10 years (open tails hold at most a tenth of the rows)."""
    assert len(rows) >= 0.8 * learners, f"{len(rows)} of {learners} rows kept"
    countries = {r["final_cc_cname_DI"] for r in rows}
    assert "" not in countries and countries <= CONTINENTS | {n for n, _ in _names().values()}, countries
    assert [r for r in rows if r["final_cc_cname_DI"] != "Unknown/Other"], "every country blank"
    years = [r["YoB_DI"] for r in rows if r["YoB_DI"]]
    assert len(years) >= 0.8 * len(rows), "year of birth blanked"
    tails = 0
    for y in years:
        if m := re.fullmatch(r"(\d{4})-(\d{4})", y):
            assert int(m[2]) - int(m[1]) + 1 <= 10, y
        elif re.fullmatch(r"(<=|>=)\d{4}", y):
            tails += 1
        else:
            assert re.fullmatch(r"\d{4}", y), y
    assert tails <= 0.1 * len(rows)


def _names() -> dict[str, tuple[str, str]]:
    with open(COUNTRIES_CSV, newline="", encoding="utf-8") as fh:
        return {r["code"]: (r["name"], r["continent"]) for r in csv.DictReader(fh)}


def test_utility_floors_hold_and_fail_for_a_useless_release(released: dict[str, Any]) -> None:
    learners = sum(1 for r in released["full"] if r["roles"] != "Staff")
    rows = released["course"]["rows"]
    assert_utility_floors(rows, learners)
    assert released["course"]["report"]["records"]["learners"] == learners
    assert released["course"]["report"]["records"]["kept"] == len(rows)
    with pytest.raises(AssertionError):
        assert_utility_floors([], learners)  # everything suppressed
    blanked = [{**r, **{c: "" for c in QI_COLUMNS if c != "course_id"}} for r in rows]
    with pytest.raises(AssertionError):
        assert_utility_floors(blanked, learners)  # every quasi-identifier blank
    with pytest.raises(AssertionError):
        assert_utility_floors([{**r, "YoB_DI": "1950-1979"} for r in rows], learners)  # 30-year bins


def test_the_report_says_what_was_done(released: dict[str, Any]) -> None:
    report = released["course"]["report"]
    rows = released["course"]["rows"]
    rec = report["records"]
    assert rec["kept"] + rec["suppressed"] == rec["learners"]
    assert sum(c["kept"] for c in rec["per_course"].values()) == len(rows)
    for cid, c in rec["per_course"].items():
        assert c["kept"] == sum(1 for r in rows if r["course_id"] == cid)
    assert set(report["generalisations"]) == set(QI_COLUMNS)
    cert = report["utility"]["certification_rate"]
    assert cert["after"] == round(sum(int(r["certified"]) for r in rows) / len(rows), 4)
    md = (released["course"]["folder"] / "release_report.md").read_text()
    assert f"kept: {rec['kept']}" in md and "## Generalisations" in md and "## Utility" in md
    assert f"kept {rec['kept']} of {rec['learners']} learners" in released["course"]["output"]


def test_export_deidentified_writes_the_release(released: dict[str, Any]) -> None:
    settings = released["settings"]
    result = run_cli(["export", "--deidentified"], settings)
    assert result.exit_code == 0, result.output
    folders = sorted((Path(settings.export_path) / "deidentified").glob("release_*"))
    assert folders
    header, rows = read_release(folders[-1])
    assert header == R.RELEASE_COLUMNS
    assert {r["userid_DI"] for r in rows} == {r["userid_DI"] for r in released["course"]["rows"]}  # same key, same release
    assert run_cli(["export", "--deidentified", "--format", "edx2bigquery"], settings).exit_code != 0


# -- the secret ------------------------------------------------------------------------------------------


def test_the_secret_is_made_once_private_and_refused_where_data_lives(tmp_path: Path) -> None:
    secret = tmp_path / "keys" / "release-secret"
    key = R.load_secret(secret)
    assert len(key) == 64 and stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert R.load_secret(secret) == key
    secret.chmod(0o644)
    with pytest.raises(R.ReleaseError, match="readable by others"):
        R.load_secret(secret)
    short = tmp_path / "short"
    short.write_text("abc")
    short.chmod(0o600)
    with pytest.raises(R.ReleaseError, match="too short"):
        R.load_secret(short)
    settings = Settings(data_paths=[tmp_path / "data"], export_path=tmp_path / "exports", warehouse=str(tmp_path / "wh.duckdb"))
    for inside in (tmp_path / "data" / "k", tmp_path / "exports" / "k", tmp_path / "out" / "k", tmp_path / "wh.duckdb"):
        with pytest.raises(R.ReleaseError, match="outside"):
            R.check_secret_location(inside, settings, tmp_path / "out")
    R.check_secret_location(tmp_path / "keys" / "k", settings, tmp_path / "out")
    # a lake warehouse: anywhere in its folder (its tables, its catalog, beside them) is the warehouse
    lake = dataclasses.replace(settings, warehouse=f"spark:///{tmp_path / 'lake'}")
    for inside in (tmp_path / "lake" / "k", tmp_path / "lake" / "tables" / "k", tmp_path / "lake" / "_catalog.duckdb"):
        with pytest.raises(R.ReleaseError, match="lake folder"):
            R.check_secret_location(inside, lake, tmp_path / "out")
    R.check_secret_location(tmp_path / "keys" / "k", lake, tmp_path / "out")


def test_a_learner_hash_is_never_empty() -> None:
    key = b"k" * 32
    assert R.learner_hash(key, None, None, "A+B+C") is None  # no learner: the row is left out, never written with ""
    by_name = R.learner_hash(key, None, "ann", "A+B+C")
    assert by_name == hmac.new(key, b"name\x1fann\x1fcourse\x1fA+B+C", hashlib.sha256).hexdigest()
    assert R.learner_hash(key, 7, "ann", None) == hmac.new(key, b"id\x1f7", hashlib.sha256).hexdigest()
    assert R.learner_hash(key, 7, None, "A+B+C") != R.learner_hash(key, 7, None, "A+B+D")


# -- the method on crafted rows, worked out by hand -------------------------------------------------------


def test_cleaning_follows_de_id() -> None:
    assert R.clean_loe("a") == "Secondary" and R.clean_loe("jhs") == "Less than Secondary" and R.clean_loe("p_oth") == "Doctorate"
    assert R.clean_loe("learn") is None and R.clean_loe("") is None and R.clean_loe(None) is None
    assert R.clean_gender("NA") is None and R.clean_gender("") is None and R.clean_gender("f") == "f"
    assert R.clean_country("AU", "US") == ("Australia", "Oceania")
    assert R.clean_country("", "US") == ("United States", "North America")
    assert R.clean_country("EU", None) == ("Unknown/Other", "Unknown/Other")
    assert R.grade_bin(None) == "none" and R.grade_bin(0.0) == "0.0-0.1" and R.grade_bin(0.35) == "0.3-0.4"
    assert R.grade_bin(1.0) == "0.9-1.0" and R.grade_bin(0.3) == "0.3-0.4"


def test_year_of_birth_tails_by_hand() -> None:
    # 5-year bins: 1940-44: 1 learner, 1945-49: 2, 1950-54: 3 (the low tail reaches k=5 here), 1960-64: 9, 2000-04: 2, 2005-09: 4
    counts = Counter({1941: 1, 1946: 2, 1952: 3, 1960: 9, 2001: 2, 2007: 4})
    assert R._tails(counts, 5, 5) == (1954, 2000)
    assert R._year_label(1953, 5, 1954, 2000) == "<=1954"
    assert R._year_label(1961, 5, 1954, 2000) == "1960-1964"
    assert R._year_label(2003, 5, 1954, 2000) == ">=2000"
    assert R._tails(Counter({1960: 9, 1975: 8}), 10, 5) == (None, None)  # no bin below k: no tail


def test_forum_posts_by_hand() -> None:
    rows = [{"nforum_posts": n} for n in [0] * 10 + [1] * 6 + [2] * 3 + [3, 7, 12]]
    number, bins5, any_post = R.posts_ladder(rows, 5)
    # from the top: 12, 7, 3 (3 learners), then 2 (6 >= 5): top-coded at >=2
    assert number.mapping == {"width": 1, "top": 2}
    assert [number.value(r) for r in rows[9:17]] == ["0", "1", "1", "1", "1", "1", "1", ">=2"]
    # bins of 5 (1-5, 6-10, 11-15): from the top 11-15 (1), 6-10 (2), 1-5 (12): top-coded at >=1
    assert bins5.mapping == {"width": 5, "top": 1}
    assert any_post.value({"nforum_posts": 4}) == ">=1" and any_post.value({"nforum_posts": 0}) == "0"


def test_country_ladder_by_hand() -> None:
    rows = [{"country": "Australia", "continent": "Oceania"}] * 50 + [{"country": "Fiji", "continent": "Oceania"}] * 3
    country, rare, continent = R.country_ladder(rows, 5)  # rare: fewer than 10·k = 50
    assert country.mapping["values"] == {"Australia": "Australia", "Fiji": "Fiji"}
    assert rare.mapping["values"] == {"Australia": "Australia", "Fiji": "Oceania"}
    assert continent.mapping["values"] == {"Australia": "Oceania", "Fiji": "Oceania"}


def _row(uid: int, course: str, yob: int, gender: str, grade: float, certified: int) -> dict[str, Any]:
    return {
        "course_key": course.replace("/", "+"),
        "course_id": course,
        "user_id": uid,
        "username": f"u{uid}",
        "roles": None,
        "registered": 1,
        "viewed": 1,
        "explored": 0,
        "certified": certified,
        "completed": certified,
        "grade": grade,
        "cc_by_ip": "AU",
        "profile_country": None,
        "YoB": yob,
        "gender": gender,
        "LoE": "b",
        "nforum_posts": 0,
        "start_time": datetime(2024, 1, 1, 10),
        "last_event": datetime(2024, 1, 2, 10),
        "nevents": 1,
        "ndays_act": 1,
        "nplay_video": 0,
        "nchapters": None,
        "inconsistent_flag": 0,
    }


def test_a_crafted_search_by_hand() -> None:
    """Six learners of one course born 1990 to 1995 (one a year), f f f m m m; k = 3, l = 2 on grade; QIs yob, gender.
    Up: at (year, gender) the tails are <=1992 (1990-92 reach 3) and >=1993: classes {1,2} {4} {3} {5,6}, 6 fail.
    2-year bins: tails <=1993 and 1994-1995: {1,2,3} holds, {4} and {5,6} fail: 3 (gender's step: still 6). Then ties
    at 3 (5-year bins: everything >=1990, the m class has one grade bin), 10-year bins vs gender's 2nd step tie at 3
    and gender has more distinct values; gender blank with >=1990: one class of 6, 0 fail. Down: year with gender
    blank gives {1,2,4} and {3,5,6}, grades {0.1,0.2,0.5} and {0.9,0.5,0.5}: 0 fail, so the year level is kept."""
    rows = [
        _row(1, "A/B/C", 1990, "f", 0.1, 0),
        _row(2, "A/B/C", 1991, "f", 0.2, 0),
        _row(3, "A/B/C", 1993, "f", 0.9, 1),
        _row(4, "A/B/C", 1992, "m", 0.5, 0),
        _row(5, "A/B/C", 1994, "m", 0.5, 1),
        _row(6, "A/B/C", 1995, "m", 0.5, 0),
    ]
    made = R.make_release(rows, b"s" * 32, R.Params(k=3, l=2, qis=("course", "yob", "gender"), sensitive=("grade",)))
    g = made.report["generalisations"]
    assert (g["YoB_DI"]["level"], g["gender_DI"]["level"]) == (0, 2)
    assert (g["YoB_DI"]["low_tail_end"], g["YoB_DI"]["high_tail_start"]) == (1992, 1993)
    assert sorted((r["YoB_DI"], r["gender_DI"], r["grade"]) for r in made.rows) == [
        ("<=1992", None, 0.1),
        ("<=1992", None, 0.2),
        ("<=1992", None, 0.5),
        (">=1993", None, 0.5),
        (">=1993", None, 0.5),
        (">=1993", None, 0.9),
    ]
    assert made.report["records"]["suppressed"] == 0
    assert made.report["classes"] == {"count": 2, "smallest": 3, "fewest_distinct_sensitive": {"grade": 2}}
    # a column that is not a quasi-identifier here is released at its finest level: the day
    assert {r["start_time_DI"] for r in made.rows} == {"2024-01-01"}
    assert g["start_time_DI"]["rule"] == "day (not a quasi-identifier here)"


def test_a_class_with_one_sensitive_value_is_suppressed() -> None:
    """k = 2, l = 2, QI course only: course A's grades 0.1 and 0.6 (two bins) are kept; course B's are 0.5 and 0.55
    (one bin, 0.5-0.6): B fails l-diversity and nothing can be generalised (course is never), so B is suppressed."""
    rows = [
        _row(1, "A/X/1", 1990, "f", 0.1, 0),
        _row(2, "A/X/1", 1991, "f", 0.6, 0),
        _row(3, "B/X/1", 1990, "f", 0.5, 0),
        _row(4, "B/X/1", 1990, "f", 0.55, 0),
    ]
    made = R.make_release(rows, b"s" * 32, R.Params(k=2, l=2, qis=("course",), sensitive=("grade",)))
    assert sorted(r["grade"] for r in made.rows) == [0.1, 0.6]
    assert made.report["records"]["per_course"]["B/X/1"] == {"rows": 2, "learners": 2, "kept": 0, "suppressed": 2, "share_suppressed": 1.0}
    assert len(R.make_release(rows, b"s" * 32, R.Params(k=2, l=1, qis=("course",), sensitive=("grade",))).rows) == 4


def test_linkable_suppression_repeats_until_course_sets_hold() -> None:
    """Linkable, k = 2, QIs course and start day, no generalisation (max_suppression 1). Learners 1 and 2 are in
    A and B, started A on 1 January and B on 1 and 5 January; learner 3 is in A alone (1 January).
    Pass 1: (A, A|B, 1 Jan) = {1, 2} holds; (B, A|B, 1 Jan) = {1} and (B, A|B, 5 Jan) = {2} fail; (A, A, 1 Jan) = {3}
    fails. Pass 2: 1 and 2 are now seen in A alone: (A, A, 1 Jan) = {1, 2} holds. Kept: the A rows of 1 and 2."""
    rows = [
        _row(1, "A/X/1", 1990, "f", 0.1, 0),
        _row(1, "B/X/1", 1990, "f", 0.1, 0),
        _row(2, "A/X/1", 1990, "f", 0.2, 0),
        {**_row(2, "B/X/1", 1990, "f", 0.2, 0), "start_time": datetime(2024, 1, 5, 9)},
        _row(3, "A/X/1", 1990, "f", 0.2, 0),
    ]
    params = R.Params(k=2, l=1, qis=("course", "start_time"), sensitive=(), linkable=True, max_suppression=1.0)
    made = R.make_release(rows, b"s" * 32, params)
    assert sorted((r["course_id"], r["grade"]) for r in made.rows) == [("A/X/1", 0.1), ("A/X/1", 0.2)]
    key = b"s" * 32
    assert {r["userid_DI"] for r in made.rows} == {hmac.new(key, f"id\x1f{u}".encode(), hashlib.sha256).hexdigest() for u in (1, 2)}
    assert made.report["records"]["suppressed"] == 3


def test_dates_are_released_at_most_to_the_day() -> None:
    day, week, month = R.date_ladder("d")
    row = {"d": date(2024, 1, 31)}
    assert (day.value(row), week.value(row), month.value(row)) == ("2024-01-31", "2024-W05", "2024-01")


def test_release_refuses_a_folder_in_the_data_or_a_secret_among_the_exports(released: dict[str, Any], tmp_path: Path) -> None:
    settings = released["settings"]
    inside = Path(settings.data_paths[0]) / "release"
    result = run_cli(["release", str(inside)], settings)
    assert result.exit_code != 0 and "inside data path" in result.output
    assert not inside.exists()
    moved = Settings(**{**settings.__dict__, "release_secret_file": Path(settings.export_path) / "release-secret"})
    result = run_cli(["release", str(tmp_path / "out")], moved)
    assert result.exit_code != 0 and "outside the warehouse" in result.output
    assert not (tmp_path / "out").exists() and not (Path(settings.export_path) / "release-secret").exists()
    assert run_cli(["release", str(tmp_path / "none"), "--course", "No/Such/*"], settings).exit_code != 0
