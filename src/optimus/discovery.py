"""Find the files of each data path and say which service claims each one.

`classify` is pure (a file name in, a description out) so that the naming rules of the edX
package (REFERENCE §3.1) can be tested on literal names; `scan` walks the folders.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import date
from fnmatch import fnmatch
from pathlib import Path
from typing import TypedDict

from optimus import courses
from optimus.config import Settings

# What a service claims is a kind of file; the services name these in `claims`.
EVENTS = "events"
SQL = "sql"
FORUM = "mongo"
COURSE_EXPORT = "course_export"
COURSE_STRUCTURE = "course_structure"
EMAIL_OPT_IN = "email_opt_in"

_MD5 = re.compile(r"-[0-9a-f]{32}$")
_DATE = re.compile(r"(\d{4})-?(\d{2})-?(\d{2})")
_EVENTS = re.compile(r"^(?P<org>.+)-(?P<site>edx|edge|prod)-events-(?P<date>\d{4}-\d{2}-\d{2})\.log(?:\.gz)?$")
_COURSE_EVENTS = re.compile(r"^(?P<course>.+)-events-(?P<date>\d{4}-\d{2}-\d{2})\.log(?:\.gz)?$")
_TRACKING = re.compile(r"^tracking\.log-(?P<date>\d{8})(?:-\d+)?(?:\.gz)?$")
_SQL = re.compile(r"^(?P<course>.+)-(?P<table>[A-Za-z0-9_]+)-(?P<site>prod|edge)-analytics\.sql$")
_MONGO = re.compile(r"^(?P<course>.+)-(?P<site>prod|edge)\.mongo$")
_EXPORT = re.compile(r"^(?P<course>.+)-course-(?P<site>prod|edge)-analytics\.xml\.tar\.gz$")
_STRUCTURE = re.compile(r"^(?P<course>.+)-course_structure-(?P<site>prod|edge)-analytics\.json$")
_OPT_IN = re.compile(r"^(?P<org>[^-]+)-email_opt_in-(?P<site>prod|edge)-analytics\.csv$")


@dataclass(frozen=True)
class Classified:
    """What a file name says: its kind, and what it can tell of course, table, site and date."""

    kind: str
    course: str | None = None  # the file-name form `org-course-run`, or a bare course for old .mongo
    course_id: str | None = None  # set only when the name is unambiguous
    org: str | None = None
    table: str | None = None
    site: str = "prod"
    day: date | None = None
    shortened: bool = False  # a long name cut by edX and ended with -{md5}: read the course from the file


@dataclass(frozen=True)
class Skipped:
    """A file no service takes, and why: it is listed, never silently dropped."""

    path: Path
    reason: str  # 'failed export: ...', 'encrypted ...', 'unknown name: ...' (the rule it missed), 'excluded by configuration', ...


@dataclass(frozen=True)
class Found:
    """A claimed file (or extracted course folder) with what its name told."""

    path: Path  # the real path: relinking `latest` makes every file new
    data_path: Path
    info: Classified
    package_date: date | None = None


@dataclass
class ScanResult:
    found: list[Found] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)


def _site(site: str) -> str:
    return "edge" if site == "edge" else "prod"


class _CourseFields(TypedDict):
    """What a course file's name says of its course (the keywords of Classified it fills)."""

    course: str
    course_id: str | None
    org: str
    site: str


def _course_fields(name: str, site: str) -> _CourseFields:
    parsed = courses.from_file_form(name)
    return {
        "course": name,
        "course_id": parsed.old if parsed else None,
        "org": parsed.org if parsed else name.split("-", 1)[0],
        "site": _site(site),
    }


def _day(text: str) -> date | None:
    match = _DATE.search(text)
    if not match:
        return None
    try:
        return date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


FAILED_EXPORT = (
    "failed export: edX could not export this table and delivered its error instead (`.failed`); "
    "left alone, never ingested (ask edX for the table if you need it)"
)

# the naming rules a file can miss, by what its name looks like (REFERENCE §3.1): said when no rule matches
_RULES = {
    EVENTS: "{org}-{edx|edge|prod}-events-{YYYY-MM-DD}.log[.gz], {course}-events-{YYYY-MM-DD}.log[.gz] or tracking.log-{YYYYMMDD}[.gz]",
    SQL: "{org}-{course}-{run}-{table}-{prod|edge}-analytics.sql",
    FORUM: "{org}-{course}-{run}-{prod|edge}.mongo",
    COURSE_STRUCTURE: "{org}-{course}-{run}-course_structure-{prod|edge}-analytics.json",
    COURSE_EXPORT: "{org}-{course}-{run}-course-{prod|edge}-analytics.xml.tar.gz",
    EMAIL_OPT_IN: "{org}-email_opt_in-{prod|edge}-analytics.csv",
}
_LOOKS = {
    EVENTS: "an event file",
    SQL: "a database dump",
    FORUM: "a forum dump",
    COURSE_STRUCTURE: "a course_structure file",
    COURSE_EXPORT: "a course export",
    EMAIL_OPT_IN: "an email opt-in file",
}


def unknown_reason(name: str, in_clickstream: bool) -> str:
    """Why a name no rule takes is not ingested: the rule it comes closest to and missed, so that a
    re-delivery named `...-events-2015-03-01-redelivered.log` is seen, not silently dropped."""
    looks_like = (
        EVENTS
        if "-events-" in name or name.startswith("tracking.log")
        else COURSE_STRUCTURE
        if "course_structure" in name
        else COURSE_EXPORT
        if name.endswith((".tar.gz", ".tgz"))
        else EMAIL_OPT_IN
        if "email_opt_in" in name
        else SQL
        if name.endswith(".sql") or "-analytics" in name
        else FORUM
        if name.endswith(".mongo")
        else None
    )
    if looks_like is None:
        folder = "clickstream_logs holds only event files" if in_clickstream else "no rule of database_state matches it"
        return f"unknown name: {folder} ({_RULES[EVENTS] if in_clickstream else ', '.join(v for k, v in _RULES.items() if k != EVENTS)})"
    return f"unknown name: looks like {_LOOKS[looks_like]} but does not match {_RULES[looks_like]}"


def classify(name: str) -> Classified | Skipped | None:
    """Classify one file name; None for a name no rule knows (the caller says why: `unknown_reason`)."""
    if name.endswith(".failed"):
        return Skipped(Path(name), FAILED_EXPORT)
    if name.endswith(".gpg"):
        return Skipped(Path(name), "encrypted (run 'optimus intake' to decrypt)")
    if m := _EVENTS.match(name):
        return Classified(EVENTS, org=m["org"], site=_site(m["site"]), day=_day(m["date"]))
    if m := _TRACKING.match(name):
        return Classified(EVENTS, day=_day(m["date"]))
    if m := _COURSE_EVENTS.match(name):
        return Classified(EVENTS, course=m["course"], day=_day(m["date"]))
    if m := _OPT_IN.match(name):
        return Classified(EMAIL_OPT_IN, org=m["org"], site=_site(m["site"]))
    if m := _STRUCTURE.match(name):
        return Classified(COURSE_STRUCTURE, **_course_fields(m["course"], m["site"]))
    if m := _EXPORT.match(name):
        return Classified(COURSE_EXPORT, **_course_fields(m["course"], m["site"]))
    if m := _SQL.match(name):
        return Classified(SQL, table=m["table"], **_course_fields(m["course"], m["site"]))
    if m := _MONGO.match(name):
        return Classified(FORUM, **_course_fields(m["course"], m["site"]))
    stem, dot, ext = name.partition(".")
    if _MD5.search(stem):
        # edX cut a long name and appended -{md5}: the kind comes from the extension,
        # the course and table from the file's own columns.
        kinds = {"sql": SQL, "mongo": FORUM, "json": COURSE_STRUCTURE, "xml.tar.gz": COURSE_EXPORT, "csv": EMAIL_OPT_IN}
        if ext in kinds:
            return Classified(kinds[ext], org=stem.split("-", 1)[0], site="edge" if "-edge" in stem else "prod", shortened=True)
    if name.endswith(".mongo") and "-" not in name:
        # very old packages: {course}.mongo
        return Classified(FORUM, course=name[: -len(".mongo")])
    return None


def _is_course_folder(path: Path) -> bool:
    return (path / "course.xml").is_file() or any((child / "course.xml").is_file() for child in path.iterdir() if child.is_dir())


def latest_folder(base: Path) -> Path | None:
    """`base/latest` (a link or a folder), else the newest dated sub-folder by its date, not by name order."""
    latest = base / "latest"
    if latest.exists():
        return latest.resolve()
    if not base.is_dir():
        return None
    dated = [(d, p) for p in base.iterdir() if p.is_dir() and (d := _day(p.name))]
    return max(dated)[1].resolve() if dated else None


def _wanted(info: Classified, settings: Settings) -> bool:
    org = info.org
    if org and settings.include_orgs and org not in settings.include_orgs:
        return False
    if org and org in settings.exclude_orgs:
        return False
    if info.site == "edge" and not settings.edge:
        return False
    names = [n for n in (info.course, info.course_id) if n]
    if names and settings.include_courses and not any(fnmatch(n, p) for n in names for p in settings.include_courses):
        return False
    if names and any(fnmatch(n, p) for n in names for p in settings.exclude_courses):
        return False
    return True


wanted = _wanted  # public: intake filters deliveries by the same org, edge and course rules


def scan_data_path(data_path: Path, settings: Settings) -> ScanResult:
    """List every file under clickstream_logs/latest and database_state/latest (sub-folders included)."""
    result = ScanResult()
    events_dir = latest_folder(data_path / "clickstream_logs")
    state_dir = latest_folder(data_path / "database_state")
    package_date = _day(state_dir.name) if state_dir else None
    for top, only_events in ((events_dir, True), (state_dir, False)):
        if top is None:
            continue
        for root, dirs, files in os.walk(top, followlinks=False):
            root_path = Path(root)
            for d in list(dirs):
                folder = root_path / d
                if not only_events and _is_course_folder(folder):
                    dirs.remove(d)  # an extracted course export is one unit
                    export = Classified(COURSE_EXPORT, **_course_fields(d, "prod"))
                    if _wanted(export, settings):
                        result.found.append(Found(folder.resolve(), data_path, export, package_date))
            for name in sorted(files):
                path = (root_path / name).resolve()
                info = classify(name)
                if info is None:
                    result.skipped.append(Skipped(path, unknown_reason(name, only_events)))
                elif isinstance(info, Skipped):
                    result.skipped.append(Skipped(path, info.reason))
                elif only_events != (info.kind == EVENTS):
                    where = (
                        "clickstream_logs holds only event files"
                        if only_events
                        else "an event file under database_state (event files are read from clickstream_logs/latest)"
                    )
                    result.skipped.append(Skipped(path, f"unknown name: {where}"))
                elif info.kind == EVENTS and settings.event_file_prefix and not name.startswith(settings.event_file_prefix):
                    result.skipped.append(Skipped(path, "event file prefix does not match"))
                elif _wanted(info, settings):
                    result.found.append(Found(path, data_path, info, None if only_events else package_date))
                else:
                    result.skipped.append(Skipped(path, "excluded by configuration"))
    return result


def scan(settings: Settings) -> ScanResult:
    """Scan every configured data path."""
    total = ScanResult()
    for data_path in settings.data_paths:
        part = scan_data_path(data_path, settings)
        total.found.extend(part.found)
        total.skipped.extend(part.skipped)
    return total
