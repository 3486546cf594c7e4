"""Course ids: the old `org/course/run`, the new `course-v1:org+course+run`, CCX, and the file-name form.

Every form maps to one `course_key` (`org+course+run`, plus `+ccx@N` for CCX), so that a course
renamed between id forms, or seen only in a file name, is still one course downstream.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from optimus.errors import UnsafeName

_NEW = re.compile(r"^(?:course-v1|ccx-v1):([^+/]+)\+([^+/]+)\+([^+/]+?)(?:\+ccx@(\d+))?$")
# no '+' in any part (opaque-keys' old ids allow none): `v1/courses/course-v1:X+Y+Z` is not a course
_OLD = re.compile(r"^([^/+\s]+)/([^/+\s]+)/([^/+\s]+)$")
# The characters edX's own course keys allow in org, course and run: opaque-keys'
# `Locator.ALLOWED_ID_CHARS = r'[\w\-~.:]'` (course-v1 keys) and `DEPRECATED_ALLOWED_ID_CHARS =
# r'[\w\-~.:%]'` (org/course/run ids), in openedx/opaque-keys opaque_keys/edx/locator.py. No '/',
# '\\', '+', white space or NUL: a part of this shape cannot leave a folder or split a key.
_PART = re.compile(r"[\w\-~.:%]+\Z")
_MAX_ID = 255  # edX's CourseKeyField is a VARCHAR(255); a longer id is no course of edX's
# `/courses/{course_id}`, skipping a `/courses/` followed by a version segment (`/api/courses/v1/courses/{id}`):
# the look-ahead is the analytics pipeline's COURSE_REGEX (edx/analytics/tasks/util/opaque_key_util.py)
_IN_URL = re.compile(r"/courses/(?!v[0-9]+/[^/]+)((?:course-v1|ccx-v1)(?::|%3A)[^/?#]+|[^/?#]+/[^/?#]+/[^/?#]+)(?=/|$|\?|#)", re.I)
# `/xblock/{block_id}`: the pipeline's BLOCK_REGEX (opaque_key_util.py: the first `/xblock/` followed by
# something shaped like a block id), then the id checked as a usage key of a course (`block-v1:` or
# `ccx-block-v1:`; opaque-keys' BlockUsageLocator: optional branch and version, then type and block)
_XBLOCK = re.compile(r"/xblock/([^/+]+[/+][^/+]+[/+][^/?#]+)")
_BLOCK_KEY = re.compile(
    r"^(block-v1|ccx-block-v1):([^+/]+)\+([^+/]+)\+([^+/]+)(?:\+ccx@([0-9]+))?"
    r"(?:\+branch@[^+/]+)?(?:\+version@[0-9a-fA-F]+)?\+type@[^+/]+\+block@[^+/]+\Z"
)


@dataclass(frozen=True)
class CourseId:
    """One course, whatever form it was written in."""

    org: str
    course: str
    run: str
    ccx: str | None = None

    @property
    def key(self) -> str:
        """The normalised key used to join every table of a course."""
        base = f"{self.org}+{self.course}+{self.run}"
        return f"{base}+ccx@{self.ccx}" if self.ccx else base

    @property
    def old(self) -> str:
        return f"{self.org}/{self.course}/{self.run}"

    @property
    def new(self) -> str:
        if self.ccx:
            return f"ccx-v1:{self.org}+{self.course}+{self.run}+ccx@{self.ccx}"
        return f"course-v1:{self.org}+{self.course}+{self.run}"

    @property
    def file_form(self) -> str:
        """How edX writes the course in package file names (ambiguous when a part has a '-')."""
        return f"{self.org}-{self.course}-{self.run}"


def checked(org: str, course: str, run: str, where: object) -> CourseId:
    """A CourseId from names read from data, refused (UnsafeName, naming `where` and the value)
    unless each part has the shape of an edX course-id part; only such a course may name a path
    or a key."""
    for field, value in (("org", org), ("course", course), ("run", run)):
        if not isinstance(value, str) or not _PART.match(value) or not value.strip("."):
            raise UnsafeName(
                f"{where}: unsafe {field} {value!r}: a course's org, course and run may hold only letters, digits "
                "and - _ ~ . : % (as edX's course keys), and not be dots alone"
            )
    cid = CourseId(org, course, run)
    if len(cid.new) > _MAX_ID or len(f"{cid.file_form}.json".encode()) > 255:
        raise UnsafeName(f"{where}: unsafe course id {cid.new[:80]!r}...: longer than edX's {_MAX_ID} characters")
    return cid


def parse(course_id: str | None) -> CourseId | None:
    """Parse any course id form (percent-encoded or not); None when it is not a course id."""
    if not course_id:
        return None
    text = decoded(course_id.strip()) if "%" in course_id else course_id.strip()
    if text is None:
        return None
    match = _NEW.match(text)
    if match:
        return CourseId(*match.groups())
    match = _OLD.match(text)
    if match:
        return CourseId(*match.groups())
    return None


def decoded(text: str) -> str | None:
    """`%XX` escapes decoded as UTF-8 (any other `%` and `+` kept); None when the bytes are not UTF-8
    (as the SQL twin, the dialects' url_decode_or_null)."""
    try:
        return unquote(text, errors="strict")
    except UnicodeDecodeError:
        return None


def course_key(course_id: str | None) -> str | None:
    parsed = parse(course_id)
    return parsed.key if parsed else None


def from_url(url: str | None) -> str | None:
    """The course of a URL or path, decoded; None if there is none (the analytics pipeline's
    get_course_key_from_url, block pattern first):

    - `/xblock/{block_id}`: the course of the block (`course-v1:…`, or `ccx-v1:…+ccx@N`); when the
      block id is not a usage key (`block-v1:DemoX+DemoX+T1_2014`, no `type@`), none, and no other
      rule is tried;
    - else `/courses/{course_id}/...`, a version segment skipped (`/api/courses/v1/courses/{id}/`).

    Never a course from a string that does not parse as a course id.
    """
    if not url:
        return None
    if "/xblock/" in url:
        block = _XBLOCK.search(url)
        if block:
            return course_of_block(decoded(block.group(1)))
    if "/courses/" not in url:
        return None
    match = _IN_URL.search(url)
    if not match:
        return None
    found = decoded(match.group(1))
    return found if found and parse(found) else None


def course_of_block(block_id: str | None) -> str | None:
    """The course id (`course-v1:…` or `ccx-v1:…+ccx@N`) of a usage key `block-v1:…+type@…+block@…`;
    None when the text is not one (a CCX block needs its `ccx@`, a plain one has none)."""
    match = _BLOCK_KEY.match(block_id or "")
    if not match:
        return None
    kind, org, course, run, ccx = match.groups()
    if (kind == "ccx-block-v1") != (ccx is not None):
        return None
    found = f"ccx-v1:{org}+{course}+{run}+ccx@{ccx}" if ccx else f"course-v1:{org}+{course}+{run}"
    return found if parse(found) else None


def event_course(context_course: object, top_course: object, event_type: object, page: object) -> str | None:
    """The course of a tracking-log event (formats/events.parse_sql is the SQL twin): `context.course_id`,
    else a top-level `course_id` (old logs without context; edx2bigquery reads it, the analytics
    pipeline does not), each stripped of white space (the pipeline's normalize_course_id) and kept as
    written when not empty; else the course of the URL in `event_type`, else in `page` (whatever the
    event source)."""
    for given in (context_course, top_course):
        if isinstance(given, str) and given.strip():
            return given.strip()
    for url in (event_type, page):
        found = from_url(url) if isinstance(url, str) else None
        if found:
            return found
    return None


def from_file_form(name: str) -> CourseId | None:
    """Split `org-course-run` when it is unambiguous (exactly three parts); otherwise None."""
    parts = name.split("-")
    if len(parts) == 3 and all(parts):
        return CourseId(*parts)
    return None


def matches_file_form(course_id: str, name: str) -> bool:
    """Whether a course id, written in the file-name form, is `name` (resolves ambiguous names)."""
    parsed = parse(course_id)
    return parsed is not None and parsed.file_form == name
