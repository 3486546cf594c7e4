"""The de-identified research release of person_course: k-anonymous and l-diverse, with a report.

The method is HarvardX and MITx's for their 2013 Person-Course release (Daries et al., "Privacy,
anonymity, and big data in the social sciences", CACM 57(9), 2014; the `jdaries/de_id` scripts,
`De-identification.py` and `de_id_functions.py`), made automatic: identifiers become keyed hashes,
every quasi-identifier is generalised along a fixed ladder (country to continent, year of birth in
bins with top-coded tails, education in categories, forum posts top-coded and binned, dates to the
day, week or month), the ladder step taken next is the one that leaves the fewest records in a class
smaller than k or with fewer than l distinct sensitive values (ties: the column with the most
distinct values, as Datafly's `genPicker` in de_id), and what still fails is suppressed whole.
docs/release.md is the data dictionary and says where we follow de_id and where we differ.

Everything here but `read_rows` and `write_release` is a pure function of rows (dicts), so the
tests can check each rule by hand. The warehouse is read with one SELECT (either engine); nothing
is read from exported files.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from fnmatch import fnmatch
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa

from optimus import exports, geo
from optimus.config import Settings, release_secret_path
from optimus.errors import OptimusError
from optimus.warehouse.base import Warehouse

# -- what is released ---------------------------------------------------------------------------------

# quasi-identifier name -> the released column that holds its generalised value
QI_COLUMNS: dict[str, str] = {
    "course": "course_id",
    "country": "final_cc_cname_DI",
    "yob": "YoB_DI",
    "gender": "gender_DI",
    "loe": "LoE_DI",
    "nforum_posts": "nforum_posts_DI",
    "start_time": "start_time_DI",
    "last_event": "last_event_DI",
}
DEFAULT_QIS = tuple(QI_COLUMNS)
SENSITIVE = ("grade", "certified")  # the columns l-diversity can be asked of (grade in bins of 0.1)
DEFAULT_SENSITIVE = SENSITIVE
# the release's columns, in order (HarvardX-MITx Person-Course names where there is one)
RELEASE_COLUMNS = [
    "userid_DI",
    "course_id",
    "registered",
    "viewed",
    "explored",
    "certified",
    "completed",
    "final_cc_cname_DI",
    "LoE_DI",
    "YoB_DI",
    "gender_DI",
    "grade",
    "start_time_DI",
    "last_event_DI",
    "nevents",
    "ndays_act",
    "nplay_video",
    "nchapters",
    "nforum_posts_DI",
    "incomplete_flag",
]
# person_course columns read (all of them portable; the identifiers only to make the hash and then dropped)
READ_COLUMNS = [
    "course_key",
    "course_id",
    "user_id",
    "username",
    "roles",
    "registered",
    "viewed",
    "explored",
    "certified",
    "completed",
    "grade",
    "cc_by_ip",
    "profile_country",
    "YoB",
    "gender",
    "LoE",
    "nforum_posts",
    "start_time",
    "last_event",
    "nevents",
    "ndays_act",
    "nplay_video",
    "nchapters",
    "inconsistent_flag",
]
UNKNOWN_COUNTRY = "Unknown/Other"  # de_id: country codes A1, A2, AP, EU and '' are not countries
NOT_COUNTRIES = {"", "A1", "A2", "AP", "EU", "O1", "XX", "ZZ"}
# de_id `eduClean`: edX's level_of_education codes -> the release's categories (None: not given)
LOE_CATEGORIES: dict[str, str | None] = {
    "el": "Less than Secondary",
    "jhs": "Less than Secondary",
    "hs": "Secondary",
    "a": "Secondary",
    "b": "Bachelor's",
    "m": "Master's",
    "p": "Doctorate",
    "p_se": "Doctorate",
    "p_oth": "Doctorate",
    "none": None,
    "other": None,
    "learn": None,
    "NA": None,
}
LOE_COARSE = {
    "Less than Secondary": "Secondary or less",
    "Secondary": "Secondary or less",
    "Bachelor's": "Bachelor's",
    "Master's": "Postgraduate",
    "Doctorate": "Postgraduate",
}
GENDERS = {"f": "f", "m": "m", "o": "o"}  # de_id: 'NA' and '' are the same (not given)


class ReleaseError(OptimusError):
    """The release could not be made; the message says why."""


# -- the secret and the identifiers -------------------------------------------------------------------


def check_secret_location(secret: Path, settings: Settings, out_dir: Path | None = None) -> None:
    """Refuse a secret kept where the data, the warehouse (a lake: its whole folder), the exports or the release are."""
    places: dict[str, Path] = {f"data path {p}": p for p in settings.data_paths}
    places["export_path"] = settings.export_path
    places["www_path"] = settings.www_path
    if out_dir is not None:
        places["the release folder"] = out_dir
    lake = settings.lake_path()
    wh = None if lake is not None else settings.warehouse_path()
    if lake is not None:  # the catalog, the tables and what lies beside them
        places["the lake folder"] = lake
    elif wh is not None:
        places["the warehouse file"] = wh
    real = secret.resolve()
    for what, place in places.items():
        where = place.resolve()
        if real == where or real.is_relative_to(where) or (place is wh and real.name.startswith(where.name)):
            raise ReleaseError(
                f"setting 'release_secret_file' ({secret}) lies in {what}: keep the release secret outside the warehouse, "
                "the data paths, the exports and the release"
            )


def load_secret(path: Path) -> bytes:
    """The release secret: created on first use (32 random bytes, hex, mode 0600 in a 0700 folder);
    refused when another user may read it or it is too short to be a key."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it just now: read theirs
        else:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_hex(32) + "\n")
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise ReleaseError(f"{path}: the release secret is readable by others (mode {mode:o}); chmod 600 it")
    key = path.read_bytes().strip()
    if len(key) < 32:
        raise ReleaseError(f"{path}: the release secret is too short (at least 32 characters)")
    return key


def learner_hash(key: bytes, user_id: object, username: object, course_key: str | None) -> str | None:
    """HMAC-SHA256 (hex) of the learner, and of the course unless `course_key` is None (linkable);
    None when the row names no learner at all."""
    if user_id is not None:
        who = f"id\x1f{user_id}"
    elif username not in (None, ""):
        who = f"name\x1f{username}"
    else:
        return None
    message = who if course_key is None else f"{who}\x1fcourse\x1f{course_key}"
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).hexdigest()


# -- cleaning (level 0 of each ladder) ----------------------------------------------------------------


def clean_country(cc_by_ip: object, profile_country: object) -> tuple[str, str]:
    """(country name, continent) of the learner: the modal IP's country, else the profile's; unknown
    codes and the regional codes (A1, A2, AP, EU) are `Unknown/Other` on both levels."""
    table = geo.countries()
    for code in (cc_by_ip, profile_country):
        text = str(code or "").strip().upper()
        if text and text not in NOT_COUNTRIES and text in table:
            return table[text].name, table[text].continent
    return UNKNOWN_COUNTRY, UNKNOWN_COUNTRY


def clean_gender(value: object) -> str | None:
    return GENDERS.get(str(value or "").strip().lower())


def clean_loe(value: object) -> str | None:
    return LOE_CATEGORIES.get(str(value or "").strip())


def clean_yob(value: object) -> int | None:
    try:
        year = int(str(value).strip()) if value is not None else None
    except ValueError:
        return None
    return year if year is not None and 1900 <= year <= 2100 else None


def as_date(value: object) -> date | None:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return None


def grade_bin(grade: object) -> str:
    """The sensitive value of a grade: `none` without one, else its tenth (`0.3-0.4`; 1.0 in `0.9-1.0`)."""
    if grade is None:
        return "none"
    tenth = min(9, max(0, int(float(str(grade)) * 10 + 1e-9)))
    return f"{tenth / 10:.1f}-{(tenth + 1) / 10:.1f}"


def sensitive_value(row: dict[str, Any], column: str) -> object:
    return grade_bin(row["grade"]) if column == "grade" else int(row[column] or 0)


def cleaned(raw: dict[str, Any]) -> dict[str, Any]:
    """One person_course row as the release's level-0 values (identifiers still in, dropped later)."""
    country, continent = clean_country(raw.get("cc_by_ip"), raw.get("profile_country"))
    return {
        **raw,
        "country": country,
        "continent": continent,
        "yob": clean_yob(raw.get("YoB")),
        "gender": clean_gender(raw.get("gender")),
        "loe": clean_loe(raw.get("LoE")),
        "nforum_posts": int(raw.get("nforum_posts") or 0),
        "start_date": as_date(raw.get("start_time")),
        "last_date": as_date(raw.get("last_event")),
    }


# -- the ladders: each QI's levels, finest first, built from the release population ---------------------


@dataclass
class Level:
    """One step of a ladder: its name for the report, the function giving the released value, and the
    value mapping the report publishes (so anyone can apply the same generalisation)."""

    name: str
    value: Callable[[dict[str, Any]], object]
    mapping: dict[str, Any] = field(default_factory=dict)


def _tails(counts: Counter[int], width: int, k: int) -> tuple[int | None, int | None]:
    """Top-coding of a width-`width` binning (bins aligned to multiples of the width): the low tail
    takes bins from the lowest up while they hold fewer than k values together, and then the bin that
    brings them to k (de_id `tailFinder` with catSize k, cut where the bins are synchronised, as its
    README asks); the same from the highest down. Returns (low tail end year, high tail start year)."""
    if not counts:
        return None, None
    bins = sorted({y // width * width for y in counts})
    per_bin = Counter({b: sum(n for y, n in counts.items() if y // width * width == b) for b in bins})
    low = high = None
    total = 0
    for b in bins:
        if per_bin[b] >= k and total == 0:
            break
        total += per_bin[b]
        low = b + width - 1
        if total >= k:
            break
    total = 0
    for b in reversed(bins):
        if per_bin[b] >= k and total == 0:
            break
        total += per_bin[b]
        high = b
        if total >= k:
            break
    if low is not None and high is not None and high <= low:
        return low, None  # the tails meet: one tail takes all (a population of fewer than 2k)
    return low, high


def _year_label(year: int | None, width: int, low: int | None, high: int | None) -> str | None:
    if year is None:
        return None
    if low is not None and year <= low:
        return f"<={low}"
    if high is not None and year >= high:
        return f">={high}"
    if width == 1:
        return str(year)
    start = year // width * width
    return f"{start}-{start + width - 1}"


def _yob_value(row: dict[str, Any], width: int, low: int | None, high: int | None) -> str | None:
    return _year_label(row["yob"], width, low, high)


def _mapped(column: str, mapping: dict[str, Any], row: dict[str, Any]) -> object:
    return mapping[row[column]]


def _posts_value(row: dict[str, Any], width: int, top: int | None) -> str:
    return _posts_label(row["nforum_posts"], width, top)


def yob_ladder(rows: Sequence[dict[str, Any]], k: int) -> list[Level]:
    """Year of birth: the year, then bins of 2 (HarvardX's `numBinner(bw=2)`), 5 and 10 years, each with
    top-coded tails; never wider than 10 years (a release floor)."""
    counts = Counter(r["yob"] for r in rows if r["yob"] is not None)
    levels = []
    for width in (1, 2, 5, 10):
        low, high = _tails(counts, width, k)
        name = "year" if width == 1 else f"{width}-year bins"
        tails = [t for t in (f"<={low}" if low is not None else "", f">={high}" if high is not None else "") if t]
        levels.append(
            Level(
                f"{name}" + (f", top-coded {' and '.join(tails)}" if tails else ""),
                partial(_yob_value, width=width, low=low, high=high),
                {"width": width, "low_tail_end": low, "high_tail_start": high},
            )
        )
    return levels


def country_ladder(rows: Sequence[dict[str, Any]], k: int) -> list[Level]:
    """Country: the name; then countries with fewer than 10·k learners in the release as their continent
    (de_id `contSwap`, which HarvardX ran with a threshold of 5000); then every country as its continent."""
    counts = Counter(r["country"] for r in rows)
    continent = {r["country"]: r["continent"] for r in rows}
    rare = 10 * k
    levels = []
    for name, keep in (
        ("country", lambda c: True),
        (f"countries with fewer than {rare} learners as their continent", lambda c: counts[c] >= rare),
        ("continent", lambda c: False),
    ):
        mapping = {c: (c if keep(c) else continent[c]) for c in sorted(counts)}
        levels.append(Level(name, partial(_mapped, "country", mapping), {"values": mapping}))
    return levels


def _posts_label(n: int, width: int, top: int | None) -> str:
    if n == 0:
        return "0"  # de_id keeps zero apart ('zero') before binning
    if top is not None and n >= top:
        return f">={top}"
    if width == 1:
        return str(n)
    start = (n - 1) // width * width + 1
    return f"{start}-{start + width - 1}"


def posts_ladder(rows: Sequence[dict[str, Any]], k: int) -> list[Level]:
    """Forum posts: the number, top-coded; then bins of 5 (de_id `tailFinder(catSize=5)` and
    `numBinner(bw=5)`), top-coded; then 0 or more; zero always apart."""
    counts = Counter(r["nforum_posts"] for r in rows if r["nforum_posts"] > 0)
    levels = []
    for width in (1, 5):
        # the top code: the smallest bin start from which the posts above hold at least k learners
        starts = sorted({(n - 1) // width * width + 1 for n in counts}, reverse=True)
        top, total = None, 0
        for s in starts:
            total += sum(c for n, c in counts.items() if (n - 1) // width * width + 1 == s)
            if total >= k:
                top = s
                break
        if top is None and starts:
            top = starts[-1]
        name = "number" if width == 1 else f"bins of {width}"
        levels.append(
            Level(
                f"{name}, top-coded at >={top}",
                partial(_posts_value, width=width, top=top),
                {"width": width, "top": top},
            )
        )
    levels.append(Level("0 or >=1", lambda r: "0" if r["nforum_posts"] == 0 else ">=1", {"width": None, "top": 1}))
    return levels


def _week(d: date | None) -> str | None:
    if d is None:
        return None
    year, week, _ = d.isocalendar()
    return f"{year}-W{week:02d}"


def date_ladder(column: str) -> list[Level]:
    """A date kept: the day (de_id `dateSplit` drops the time), the ISO week, the month."""
    return [
        Level("day", lambda r: None if r[column] is None else r[column].isoformat(), {"granularity": "day"}),
        Level("ISO week", lambda r: _week(r[column]), {"granularity": "week"}),
        Level("month", lambda r: None if r[column] is None else f"{r[column]:%Y-%m}", {"granularity": "month"}),
    ]


def ladders(rows: Sequence[dict[str, Any]], k: int) -> dict[str, list[Level]]:
    """Every QI's ladder. The last step of gender, education, forum posts and the dates is the
    column left empty (released as nothing); country and year of birth stop at continent and 10 years."""
    blank = Level("not released", lambda r: None, {"blank": True})
    return {
        "course": [Level("course", lambda r: r["course_id"])],
        "country": country_ladder(rows, k),
        "yob": yob_ladder(rows, k),
        "gender": [
            Level("f, m, o", lambda r: r["gender"], {"values": dict(GENDERS)}),
            Level("f, m, other or not given", lambda r: r["gender"] if r["gender"] in ("f", "m") else "other/unknown", {}),
            blank,
        ],
        "loe": [
            Level("categories", lambda r: r["loe"], {"values": {c: v for c, v in LOE_CATEGORIES.items()}}),
            Level(
                "coarse categories",
                lambda r: None if r["loe"] is None else LOE_COARSE[r["loe"]],
                {"values": {c: (None if v is None else LOE_COARSE[v]) for c, v in LOE_CATEGORIES.items()}},
            ),
            blank,
        ],
        "nforum_posts": [*posts_ladder(rows, k), blank],
        "start_time": [*date_ladder("start_date"), blank],
        "last_event": [*date_ladder("last_date"), blank],
    }


# -- classes, the search, suppression -------------------------------------------------------------------


@dataclass(frozen=True)
class Params:
    k: int = 5
    l: int = 2  # noqa: E741  (the l of l-diversity)
    qis: tuple[str, ...] = DEFAULT_QIS
    sensitive: tuple[str, ...] = DEFAULT_SENSITIVE
    linkable: bool = False
    max_suppression: float = 0.05  # the search stops generalising once at most this share would be suppressed


def course_sets(rows: Iterable[dict[str, Any]]) -> dict[str, str]:
    """Linkable hash -> the sorted courses it is in (what a reader of a linkable release sees)."""
    found: dict[str, set[str]] = defaultdict(set)
    for r in rows:
        found[r["userid_DI"]].add(r["course_key"])
    return {h: "|".join(sorted(c)) for h, c in found.items()}


def class_key(row: dict[str, Any], qis: Sequence[str], chosen: dict[str, Level], sets: dict[str, str] | None) -> tuple:
    key = tuple(chosen[q].value(row) for q in qis)
    return key if sets is None else (sets[row["userid_DI"]], *key)


def failing_of(keys: Sequence[tuple], sensitive: Sequence[Sequence[object]], k: int, l: int) -> list[int]:  # noqa: E741
    """Indexes of the rows (by their class keys and sensitive columns) whose class is smaller than k or has
    fewer than l distinct values in one of the sensitive columns."""
    classes: dict[tuple, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        classes[key].append(i)
    bad: list[int] = []
    for members in classes.values():
        if len(members) < k or (l > 1 and any(len({col[i] for i in members}) < l for col in sensitive)):
            bad.extend(members)
    return sorted(bad)


def failing(rows: Sequence[dict[str, Any]], params: Params, chosen: dict[str, Level], sets: dict[str, str] | None) -> list[int]:
    """Indexes of the rows whose class is smaller than k or has fewer than l distinct values of a sensitive column."""
    keys = [class_key(r, params.qis, chosen, sets) for r in rows]
    return failing_of(keys, [[sensitive_value(r, s) for r in rows] for s in params.sensitive], params.k, params.l)


def search(rows: Sequence[dict[str, Any]], params: Params, ladder: dict[str, list[Level]]) -> dict[str, int]:
    """The level of each QI. Up: from the finest, one step at a time on the QI whose step leaves the
    fewest failing rows (ties: the QI with the most distinct released values, as de_id's `genPicker`;
    then the QI order), while more than `max_suppression` of the rows fail and a step is left; from the
    first levels that failed fewest, down: each QI is taken back to the finest level that fails no more
    rows, in turn, until none can be (a step that bought nothing is undone)."""
    sets = course_sets(rows) if params.linkable else None
    prefix = [sets[r["userid_DI"]] for r in rows] if sets is not None else None
    sensitive = [[sensitive_value(r, s) for r in rows] for s in params.sensitive]
    columns: dict[tuple[str, int], list[object]] = {}  # each QI's values at a level, computed once

    def column(q: str, level: int) -> list[object]:
        if (q, level) not in columns:
            columns[q, level] = [ladder[q][level].value(r) for r in rows]
        return columns[q, level]

    def bad_at(lv: dict[str, int]) -> int:
        cols = [column(q, lv[q]) for q in params.qis] + ([prefix] if prefix is not None else [])
        return len(failing_of(list(zip(*cols, strict=True)), sensitive, params.k, params.l))

    levels = {q: 0 for q in params.qis}
    bad = bad_at(levels)
    best = (bad, dict(levels))
    while bad > params.max_suppression * len(rows):
        options = []
        for order, q in enumerate(params.qis):
            if levels[q] + 1 < len(ladder[q]):
                distinct = len(set(column(q, levels[q])))
                options.append((bad_at({**levels, q: levels[q] + 1}), -distinct, order, q))
        if not options:
            break
        bad, _, _, q = min(options)
        levels[q] += 1
        if bad < best[0]:
            best = (bad, dict(levels))
    bad, levels = best
    lowered = True
    while lowered:
        lowered = False
        for q in params.qis:
            for lower in range(levels[q]):
                trial = {**levels, q: lower}
                if (found := bad_at(trial)) <= bad:
                    levels, bad, lowered = trial, found, True
                    break
    return levels


def suppress(rows: list[dict[str, Any]], params: Params, chosen: dict[str, Level]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(kept, suppressed): rows of failing classes removed whole. Linkable: the courses a learner is
    seen in change when one of their rows goes, so repeat until nothing fails (it only ever removes)."""
    kept, gone = rows, list[dict[str, Any]]()
    while True:
        sets = course_sets(kept) if params.linkable else None
        bad = set(failing(kept, params, chosen, sets))
        if not bad:
            return kept, gone
        gone += [r for i, r in enumerate(kept) if i in bad]
        kept = [r for i, r in enumerate(kept) if i not in bad]


# -- the whole release ----------------------------------------------------------------------------------


@dataclass
class Release:
    rows: list[dict[str, Any]]  # the released rows, RELEASE_COLUMNS only
    report: dict[str, Any]


def released_row(r: dict[str, Any], written: dict[str, Level]) -> dict[str, Any]:
    values = {col: written[q].value(r) for q, col in QI_COLUMNS.items()}
    return {
        "userid_DI": r["userid_DI"],
        "course_id": r["course_id"],
        "registered": r["registered"],
        "viewed": r["viewed"],
        "explored": r["explored"],
        "certified": r["certified"],
        "completed": r["completed"],
        **{c: values[c] for c in QI_COLUMNS.values() if c != "course_id"},
        "grade": r["grade"],
        "nevents": r["nevents"],
        "ndays_act": r["ndays_act"],
        "nplay_video": r["nplay_video"],
        "nchapters": r["nchapters"],
        "incomplete_flag": r["inconsistent_flag"],
    }


def _rate(rows: Iterable[dict[str, Any]], group: Callable[[dict[str, Any]], object], k: int) -> dict[str, dict[str, Any]]:
    """Certification per group; a group of fewer than k learners is only said to be that small (the
    report sits beside the release: it must not tell what the suppressed rows were, one by one)."""
    n: Counter[str] = Counter()
    cert: Counter[str] = Counter()
    for r in rows:
        g = str(group(r))
        n[g] += 1
        cert[g] += int(r["certified"] or 0)
    return {
        g: {"learners": n[g], "certified": cert[g], "rate": round(cert[g] / n[g], 4)} if n[g] >= k else {"learners": f"<{k}", "rate": None}
        for g in sorted(n)
    }


def _ages(rows: Iterable[dict[str, Any]], k: int) -> dict[str, int | str]:
    """Learners per decade of birth (fewer than k: only said to be fewer)."""
    found = Counter("not given" if r["yob"] is None else f"{r['yob'] // 10 * 10}s" for r in rows)
    return {g: (n if n >= k else f"<{k}") for g, n in sorted(found.items())}


def make_release(raw: Sequence[dict[str, Any]], key: bytes, params: Params) -> Release:
    """The release of these person_course rows (already limited to the chosen courses)."""
    if params.k < 2 or params.l < 1:
        raise ReleaseError("k must be at least 2 and l at least 1")
    if not 0 <= params.max_suppression <= 1:
        raise ReleaseError("max_suppression is a share of the rows, from 0 to 1")
    unknown = [q for q in params.qis if q not in QI_COLUMNS] + [s for s in params.sensitive if s not in SENSITIVE]
    if unknown:
        raise ReleaseError(f"unknown quasi-identifier or sensitive column: {', '.join(unknown)}")
    qis = params.qis if "course" in params.qis else ("course", *params.qis)  # classes are always per course
    params = Params(params.k, params.l, qis, params.sensitive, params.linkable, params.max_suppression)
    staff = [r for r in raw if r.get("roles") == "Staff"]
    rows, nameless = [], 0
    for r in raw:
        if r.get("roles") == "Staff":
            continue  # de_id: "Delete staff"
        h = learner_hash(key, r.get("user_id"), r.get("username"), None if params.linkable else r["course_key"])
        if h is None:
            nameless += 1
            continue
        rows.append({**cleaned(r), "userid_DI": h})
    ladder = ladders(rows, params.k)
    levels = search(rows, params, ladder)
    chosen = {q: ladder[q][levels[q]] for q in params.qis}
    kept, _gone = suppress(rows, params, chosen)
    # a column the owner does not count as a quasi-identifier is released at its finest level (dates: the day)
    written = {q: chosen.get(q, ladder[q][0]) for q in QI_COLUMNS}
    released = sorted((released_row(r, written) for r in kept), key=lambda r: (r["course_id"], r["userid_DI"]))
    sets = course_sets(kept) if params.linkable else None
    classes: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in kept:
        classes[class_key(r, params.qis, chosen, sets)].append(r)
    learners = len(raw) - len(staff)  # the rows the release is made of; staff are never released
    all_rows = Counter(r["course_id"] for r in raw)
    learner_rows = Counter(r["course_id"] for r in raw if r.get("roles") != "Staff")
    kept_rows = Counter(r["course_id"] for r in kept)
    per_course = {
        cid: {
            "rows": all_rows[cid],
            "learners": learner_rows[cid],
            "kept": kept_rows[cid],
            "suppressed": learner_rows[cid] - kept_rows[cid],
            "share_suppressed": round((learner_rows[cid] - kept_rows[cid]) / learner_rows[cid], 4) if learner_rows[cid] else 0.0,
        }
        for cid in sorted(all_rows)
    }
    country = chosen.get("country") or ladder["country"][0]
    report = {
        "method": "HarvardX-MITx Person-Course de-identification (Daries et al., CACM 2014; jdaries/de_id), see docs/release.md",
        "parameters": {
            "k": params.k,
            "l": params.l,
            "quasi_identifiers": list(params.qis) + (["course_set"] if params.linkable else []),
            "sensitive": list(params.sensitive),
            "linkable": params.linkable,
            "max_suppression": params.max_suppression,
            "identifier": "HMAC-SHA256 of the learner" + ("" if params.linkable else " and the course"),
        },
        "generalisations": {
            col: {
                "quasi_identifier": q if q in params.qis else None,
                "level": levels.get(q, 0),
                "of": len(ladder[q]) - 1,
                "rule": written[q].name + ("" if q in params.qis else " (not a quasi-identifier here)"),
                **written[q].mapping,
            }
            for q, col in QI_COLUMNS.items()
        },
        "records": {
            "person_course_rows": len(raw),
            "staff_left_out": len(staff),
            "learners": learners,
            "without_identifier": nameless,
            "suppressed": learners - len(kept),
            "kept": len(kept),
            "share_kept": round(len(kept) / learners, 4) if learners else 0.0,
            "share_suppressed": round((learners - len(kept)) / learners, 4) if learners else 0.0,
            "per_course": per_course,
        },
        "classes": {
            "count": len(classes),
            "smallest": min((len(m) for m in classes.values()), default=0),
            "fewest_distinct_sensitive": {
                s: min((len({sensitive_value(r, s) for r in m}) for m in classes.values()), default=0) for s in params.sensitive
            },
        },
        "utility": {
            "certification_rate_by_country": {
                "before": _rate(rows, country.value, params.k),
                "after": _rate(kept, country.value, params.k),
            },
            "age_distribution": {"before": _ages(rows, params.k), "after": _ages(kept, params.k)},
            "mean_year_of_birth": {
                "before": _mean([r["yob"] for r in rows]),
                "after": _mean([r["yob"] for r in kept]),
            },
            "certification_rate": {
                "before": round(sum(int(r["certified"] or 0) for r in rows) / len(rows), 4) if rows else None,
                "after": round(sum(int(r["certified"] or 0) for r in kept) / len(kept), 4) if kept else None,
            },
        },
    }
    return Release(released, report)


def _mean(values: list[int | None]) -> float | None:
    known = [v for v in values if v is not None]
    return round(sum(known) / len(known), 2) if known else None


# -- reading the warehouse, writing the files ---------------------------------------------------------


def select_courses(wh: Warehouse, patterns: Sequence[str]) -> list[str]:
    """The course keys of person_course matching any pattern (fnmatch on the course id, the key or the
    file-name form); every course when there is no pattern."""
    found = wh.query("SELECT DISTINCT course_key, course_id FROM person_course ORDER BY course_key")
    keys = []
    for key, cid in found:
        names = (str(cid), str(key), exports.safe_name(str(key).replace("+", "-")))
        if not patterns or any(fnmatch(n, p) for n in names for p in patterns):
            keys.append(str(key))
    return sorted(set(keys))


def read_rows(wh: Warehouse, course_keys: Sequence[str]) -> list[dict[str, Any]]:
    """The person_course rows of these courses (one SELECT; the same rows on either engine)."""
    if not course_keys:
        return []
    have = set(wh.columns("person_course"))
    cols = ", ".join(f"p.{wh.quote(c)}" if c in have else f"NULL AS {wh.quote(c)}" for c in READ_COLUMNS)
    marks = ", ".join("?" for _ in course_keys)
    sql = f"SELECT {cols} FROM person_course p WHERE p.course_key IN ({marks}) ORDER BY p.course_key, p.user_id, p.username"
    return wh.query_dicts(sql, list(course_keys))


def read_profiles(wh: Warehouse, course_keys: Sequence[str]) -> pa.Table:
    marks = ", ".join("?" for _ in course_keys) or "NULL"
    cols = [c for c in wh.columns("course_profile") if c not in ("rules_version", "computed_at")]
    sql = f"SELECT {', '.join(wh.quote(c) for c in cols)} FROM course_profile WHERE course_key IN ({marks}) ORDER BY course_key"
    return wh.query_arrow(sql, list(course_keys))


ARROW = {
    "userid_DI": pa.string(),
    "course_id": pa.string(),
    "registered": pa.int64(),
    "viewed": pa.int64(),
    "explored": pa.int64(),
    "certified": pa.int64(),
    "completed": pa.int64(),
    "grade": pa.float64(),
    "nevents": pa.int64(),
    "ndays_act": pa.int64(),
    "nplay_video": pa.int64(),
    "nchapters": pa.int64(),
    "incomplete_flag": pa.int64(),
}


def write_release(wh: Warehouse, settings: Settings, out_dir: Path, patterns: Sequence[str], params: Params) -> tuple[list[Path], Release]:
    """Read person_course, make the release and write it into `out_dir` (mode 0600): person_course_DI
    and course_profile as CSV and Parquet, release_report.json and .md."""
    if not wh.table_exists("person_course"):
        raise ReleaseError("no person_course table yet; run 'optimus ingest' first")
    out_dir = Path(out_dir)
    for p in settings.data_paths:
        if out_dir.resolve().is_relative_to(p.resolve()):
            raise ReleaseError(f"{out_dir} is inside data path {p}: write the release elsewhere")
    secret = release_secret_path(settings)
    check_secret_location(secret, settings, out_dir)
    key = load_secret(secret)
    keys = select_courses(wh, patterns)
    if not keys:
        raise ReleaseError(f"no course in person_course matches {', '.join(patterns) or 'anything'}")
    release = make_release(read_rows(wh, keys), key, params)
    written = []
    table = pa.Table.from_pylist(release.rows, schema=pa.schema([pa.field(c, ARROW.get(c, pa.string())) for c in RELEASE_COLUMNS]))
    base = out_dir / "person_course_DI"
    exports.write_csv(base.with_suffix(".csv"), RELEASE_COLUMNS, ([r[c] for c in RELEASE_COLUMNS] for r in release.rows))
    exports.write_parquet(base.with_suffix(".parquet"), table)
    profiles = read_profiles(wh, keys)
    prof = out_dir / "course_profile"
    exports.write_csv(prof.with_suffix(".csv"), profiles.column_names, zip(*[c.to_pylist() for c in profiles.columns], strict=True))
    exports.write_parquet(prof.with_suffix(".parquet"), profiles)
    written += [base.with_suffix(".csv"), base.with_suffix(".parquet"), prof.with_suffix(".csv"), prof.with_suffix(".parquet")]
    with exports.atomic_path(out_dir / "release_report.json") as tmp:
        tmp.write_text(json.dumps(release.report, indent=2, default=str) + "\n", encoding="utf-8")
    with exports.atomic_path(out_dir / "release_report.md") as tmp:
        tmp.write_text(report_markdown(release.report), encoding="utf-8")
    written += [out_dir / "release_report.json", out_dir / "release_report.md"]
    return written, release


def report_markdown(report: dict[str, Any]) -> str:
    """The report for people: what was generalised, what was suppressed, what it cost."""
    p, rec, cls, util = report["parameters"], report["records"], report["classes"], report["utility"]
    lines = [
        "# De-identified release: report",
        "",
        f"k = {p['k']}, l = {p['l']} (sensitive: {', '.join(p['sensitive']) or 'none'}); quasi-identifiers: "
        f"{', '.join(p['quasi_identifiers'])}; identifier: {p['identifier']}.",
        "",
        "## Generalisations",
        "",
        "| column | rule | level |",
        "|---|---|---|",
    ]
    for col, g in report["generalisations"].items():
        lines.append(f"| {col} | {g['rule']} | {g['level']} of {g['of']} |")
    lines += [
        "",
        "## Records",
        "",
        f"person_course rows: {rec['person_course_rows']}; staff left out: {rec['staff_left_out']}; learners: {rec['learners']} "
        f"(without an identifier: {rec['without_identifier']}); suppressed: {rec['suppressed']}; kept: {rec['kept']} ({rec['share_kept']:.1%}).",
        "",
        "| course | rows | learners | kept | suppressed | share of learners suppressed |",
        "|---|---|---|---|---|---|",
    ]
    for cid, c in rec["per_course"].items():
        lines.append(f"| {cid} | {c['rows']} | {c['learners']} | {c['kept']} | {c['suppressed']} | {c['share_suppressed']:.1%} |")
    fewest = ", ".join(f"{s} {n}" for s, n in cls["fewest_distinct_sensitive"].items())
    lines += [
        "",
        f"Classes: {cls['count']}; the smallest holds {cls['smallest']} rows; fewest distinct sensitive values in a class: {fewest or '-'}.",
        "",
        "## Utility",
        "",
        f"Certification rate: {util['certification_rate']['before']} before, {util['certification_rate']['after']} after; "
        f"mean year of birth: {util['mean_year_of_birth']['before']} before, {util['mean_year_of_birth']['after']} after.",
        "",
        "| country (as released) | learners before | rate before | learners after | rate after |",
        "|---|---|---|---|---|",
    ]
    before, after = util["certification_rate_by_country"]["before"], util["certification_rate_by_country"]["after"]
    for g in sorted(set(before) | set(after)):
        b, a = before.get(g, {}), after.get(g, {})
        rate_b, rate_a = b.get("rate"), a.get("rate")
        lines.append(
            f"| {g} | {b.get('learners', 0)} | {'-' if rate_b is None else rate_b} | {a.get('learners', 0)} | {'-' if rate_a is None else rate_a} |"
        )
    lines += ["", "| born | learners before | learners after |", "|---|---|---|"]
    ages_b, ages_a = util["age_distribution"]["before"], util["age_distribution"]["after"]
    for g in sorted(set(ages_b) | set(ages_a)):
        lines.append(f"| {g} | {ages_b.get(g, 0)} | {ages_a.get(g, 0)} |")
    return "\n".join(lines) + "\n"
