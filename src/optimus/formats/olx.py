"""Course structure (REFERENCE §1.3, §3.5): an OLX export folder or a flat course_structure JSON in,
the original's nested JSON plus `courses` and `course_blocks` rows out. Pure: reads files, writes none.

Both inputs become one tree of `Node`s, and one walk turns the tree into rows, so the course axis
(chapter / sequential / vertical index), inheritance (start, due, graded, format) and publication
(drafts, `visible_to_staff_only`, and everything under an unpublished parent) follow the same rules.
XML is read with defusedxml: no DTD entities, no external references (an entity bomb is refused).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element, ParseError, tostring

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from optimus import courses
from optimus.errors import IngestError

# Elements whose children are blocks; the children of any other element are its content (problem
# markup, video sources...), which is not part of the course structure.
CONTAINERS = {
    "course",
    "chapter",
    "sequential",
    "vertical",
    "split_test",
    "conditional",
    "library_content",
    "randomize",
    "wrapper",
    "problemset",
    "videosequence",
    "unit",
    "itembank",
}
# Children of the course element that are settings, not courseware.
NOT_BLOCKS = {"wiki", "textbook", "about", "info", "static_tab", "custom_tag_template", "course_info"}
INHERITED = ("start", "due", "graded", "format")
_MAX_DEPTH = 64
# The problem response types edx2bigquery's course_axis counts (edx2course_axis.py, make_axis:
# known_problem_types), as direct children of <problem>.
RESPONSE_TYPES = (
    "multiplechoiceresponse",
    "numericalresponse",
    "choiceresponse",
    "optionresponse",
    "stringresponse",
    "formularesponse",
    "customresponse",
    "fieldset",
)
# Blocks that start a new path under their chapter in edx2bigquery's course_axis (`path`).
SEQUENCE_TAGS = ("problemset", "sequential", "videosequence", "proctor", "randomize")
# Children edx2bigquery's course_axis walk neither lists nor counts (edx2course_axis.py, walk).
UNCOUNTED = ("discussion", "source")
_YOUTUBE_EMBED = re.compile(r"embed/([^\"/?]+)")
_IFRAME = re.compile(r"<iframe\b[^>]*>", re.IGNORECASE)
_SRC = re.compile(r"""\bsrc\s*=\s*(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE)


class OlxError(IngestError):
    """A course export or course_structure file that cannot be read; the message names the file."""


@dataclass
class Node:
    """One block: its tag, its settings (XML attributes with policy applied, or JSON metadata), children."""

    tag: str
    attrs: dict[str, Any]
    children: list[Node] = field(default_factory=list)
    draft: bool = False
    # what the block's own markup says (OLX only): a problem's response tags, solution and image, an
    # html block's embedded YouTube video (edx2bigquery's course_axis `data`; see content_facts)
    content: dict[str, Any] = field(default_factory=dict)

    @property
    def url_name(self) -> str | None:
        value = self.attrs.get("url_name")
        return str(value) if value not in (None, "") else None


@dataclass
class ParsedCourse:
    """What one course's structure says: ids, the www tree, the `courses` row fields and block rows."""

    org: str
    course: str
    run: str
    source: str  # 'olx' or 'course_structure'
    id_form: str | None  # 'old' / 'new' when the input says (course_structure keys); None for OLX
    tree: dict[str, Any]
    info: dict[str, Any]
    blocks: list[dict[str, Any]]
    # grading_policy.json (OLX only): one dict per GRADER entry, and (label, cutoff) per GRADE_CUTOFFS entry
    graders: list[dict[str, Any]] = field(default_factory=list)
    cutoffs: list[tuple[str, float | None]] = field(default_factory=list)
    missing: str | None = None  # what the input lacked and was done without (a course_structure with no course block)


# -- values -----------------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """Old exports write attribute values JSON-encoded (start="&quot;2014-...&quot;"): unwrap them."""
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value[1:-1]
    return value


def truthy(value: Any) -> bool:
    value = _plain(value)
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def to_float(value: Any) -> float | None:
    value = _plain(value)
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def to_datetime(value: Any) -> datetime | None:
    """An ISO date-time (naive values are UTC) -> naive UTC; None when absent or unreadable."""
    value = _plain(value)
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


def youtube_id(attrs: dict[str, Any]) -> str | None:
    """`youtube_id_1_0`, else the 1.00 entry of `youtube="0.75:a,1.00:b,1.25:c"`."""
    direct = _plain(attrs.get("youtube_id_1_0"))
    if isinstance(direct, str) and direct.strip():
        return direct.strip()
    speeds = _plain(attrs.get("youtube"))
    if isinstance(speeds, str):
        for part in speeds.split(","):
            speed, _, vid = part.partition(":")
            if vid.strip() and speed.strip() in ("1.00", "1.0", "1"):
                return vid.strip()
    return None


def _text(value: Any) -> str | None:
    value = _plain(value)
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


# -- OLX folders --------------------------------------------------------------------------------
def find_root(folder: Path) -> Path:
    """The folder holding `course.xml`: the given one or its only sub-folder that has one."""
    if (folder / "course.xml").is_file():
        return folder
    if not folder.is_dir():
        raise OlxError(f"{folder}: not a course export folder")
    found = [child for child in sorted(folder.iterdir()) if child.is_dir() and (child / "course.xml").is_file()]
    if len(found) != 1:
        raise OlxError(
            f"{folder}: no course.xml found (looked in the folder and its sub-folders)"
            if not found
            else f"{folder}: {len(found)} sub-folders hold a course.xml; expected one course"
        )
    return found[0]


def _parse_xml(path: Path) -> Element:
    try:
        root = SafeET.parse(path).getroot()
    except DefusedXmlException as exc:
        raise OlxError(f"{path}: refused: the XML declares entities or external references ({type(exc).__name__})") from None
    except ParseError as exc:
        raise OlxError(f"{path}: not well-formed XML: {exc}") from None
    except OSError as exc:
        raise OlxError(f"{path}: cannot read: {exc}") from None
    if root is None:  # pragma: no cover - a parsed document always has a root element
        raise OlxError(f"{path}: no root element")
    return root


def _load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OlxError(f"{path}: not readable JSON: {exc}") from None


def problem_facts(kids: list[Element]) -> dict[str, Any]:
    """edx2bigquery's problem `data` (edx2course_axis.py, make_axis): the response tags among the
    problem's direct children (RESPONSE_TYPES, in order), whether it shows an image anywhere, and whether
    a <solution> has more than 65 characters of markup or an image (its children serialised)."""
    types = [str(k.tag) for k in kids if k.tag in RESPONSE_TYPES]
    image = solution = False
    for kid in kids:
        for el in kid.iter():
            if el.tag == "img":
                image = True
            elif el.tag == "solution":
                markup = "".join(tostring(child, encoding="unicode") for child in el)
                solution = solution or len(markup) > 65 or "img src" in markup
    return {"response_types": " ".join(types), "has_image": image, "has_solution": solution}


def iframe_youtube_id(markup: str) -> str | None:
    """The YouTube id of the first <iframe> of an html block when it embeds https://www.youtube.com/embed/
    (edx2course_axis.py, make_axis: an html block's `ytid`). Read with patterns: the markup is never parsed."""
    first = _IFRAME.search(markup)
    if first is None:
        return None
    src = _SRC.search(first.group(0))
    url = (src.group(1) or src.group(2) or "") if src else ""
    if "https://www.youtube.com/embed/" not in url:
        return None
    found = _YOUTUBE_EMBED.search(url)
    return found.group(1) if found else None


class _OlxReader:
    """Resolves url_name pointers into files, applying per-block policy, with a depth limit."""

    def __init__(self, root: Path, policy: dict[str, Any]) -> None:
        self.root = root
        self.policy = policy

    def _file(self, tag: str, url_name: str, draft: bool) -> Path | None:
        names = [url_name, url_name.replace(":", "_"), url_name.replace(":", "/")]
        places = (["drafts"] if draft else []) + [""]
        for place in places:
            for name in names:
                path = self.root / place / tag / f"{name}.xml" if place else self.root / tag / f"{name}.xml"
                # the name comes from the export: it must stay inside the export folder
                if path.is_file() and path.resolve().is_relative_to(self.root.resolve()):
                    return path
        return None

    def _named(self, tag: str, filename: str, suffix: str) -> Path | None:
        """The file an html or problem block names by `filename`, if it is inside the export."""
        name = filename if filename.endswith(suffix) else filename + suffix
        path = self.root / tag / name
        if path.is_file() and path.resolve().is_relative_to(self.root.resolve()):
            return path
        return None

    def _html_youtube(self, attrs: dict[str, Any], kids: list[Element]) -> str | None:
        markup = "".join(tostring(kid, encoding="unicode") for kid in kids)
        if not markup and attrs.get("filename"):
            path = self._named("html", str(attrs["filename"]), ".html")
            if path is not None:
                try:
                    markup = path.read_text(encoding="utf-8", errors="replace")
                except OSError:
                    markup = ""
        return iframe_youtube_id(markup)

    def node(self, element: Element, draft: bool = False, depth: int = 0, seen: tuple[str, ...] = ()) -> Node:
        if depth > _MAX_DEPTH:
            raise OlxError(f"{self.root}: the course tree is nested more than {_MAX_DEPTH} deep (a cycle of url_name references?)")
        tag = str(element.tag)
        attrs: dict[str, Any] = dict(element.attrib)
        url_name = attrs.get("url_name")
        kids = list(element)
        if url_name and not kids:
            path = self._file(tag, url_name, draft)
            if path is not None:
                key = f"{tag}/{url_name}"
                if key in seen:
                    raise OlxError(f"{path}: refers back to itself through its children")
                defined = _parse_xml(path)
                attrs = {**attrs, **defined.attrib, "url_name": url_name}
                kids = list(defined)
                seen = seen + (key,)
        if url_name:
            for name, value in (self.policy.get(f"{tag}/{url_name}") or {}).items():
                if not isinstance(value, (dict, list)):
                    attrs[name] = value
        node = Node(tag, attrs, draft=draft)
        if tag == "problem":
            if not kids and attrs.get("filename"):  # the oldest exports: <problem filename="..."/>
                path = self._named(tag, str(attrs["filename"]), ".xml")
                kids = list(_parse_xml(path)) if path is not None else []
            node.content = problem_facts(kids)
        elif tag == "html":
            node.content = {"iframe_youtube_id": self._html_youtube(attrs, kids)}
        if tag in CONTAINERS:
            node.children = [self.node(kid, draft, depth + 1, seen) for kid in kids if isinstance(kid.tag, str)]
        return node


def parse_export(folder: Path) -> ParsedCourse:
    """An extracted OLX export (the folder holding course.xml, or its parent) -> a ParsedCourse."""
    root = find_root(folder)
    pointer = _parse_xml(root / "course.xml")
    run = pointer.get("url_name") or ""
    org = pointer.get("org") or ""
    code = pointer.get("course") or ""
    if run:  # the run names the policy and course files below: its shape first
        courses.checked(org or "org", code or "course", run, root / "course.xml")
    policy_file = next(
        (p for p in (root / "policies" / run / "policy.json", root / "policies" / f"{run}.json") if run and p.is_file()), None
    )
    policy: dict[str, Any] = _load_json(policy_file) if policy_file else {}
    if not isinstance(policy, dict):
        raise OlxError(f"{policy_file}: not a JSON object")
    reader = _OlxReader(root, policy)
    if len(pointer):  # very old exports: the whole course inline in course.xml
        course_el = pointer
    else:
        path = next((p for p in (root / "course" / f"{run}.xml", root / "course" / "course.xml") if p.is_file()), None)
        if path is None:
            raise OlxError(f"{root}: course.xml points at course/{run}.xml, which is missing")
        course_el = _parse_xml(path)
        org = org or course_el.get("org") or ""
        code = code or course_el.get("course") or ""
    if course_el.tag != "course":
        raise OlxError(f"{root}: the course file's root element is <{course_el.tag}>, not <course>")
    if not (org and code and run):
        raise OlxError(f"{root / 'course.xml'}: org, course and url_name (the run) are needed to name the course")
    courses.checked(org, code, run, root / "course.xml")
    course_el.attrib.setdefault("url_name", run)
    tree_root = reader.node(course_el)
    _add_drafts(root, reader, tree_root)
    grading_file = next(
        (p for p in (root / "policies" / run / "grading_policy.json", root / "policies" / "grading_policy.json") if p.is_file()), None
    )
    grading = _load_json(grading_file) if grading_file else {}
    cutoffs = grading.get("GRADE_CUTOFFS") if isinstance(grading, dict) else None
    marks = [v for v in (to_float(x) for x in (cutoffs or {}).values()) if v is not None] if isinstance(cutoffs, dict) else []
    tree = _tree(tree_root)
    tree["policy"] = policy
    parsed = _parsed(org, code, run, "olx", None, tree_root, tree, min(marks) if marks else None)
    parsed.graders, parsed.cutoffs = grading_tables(grading)
    return parsed


def _count(value: Any) -> int | None:
    number = to_float(value)
    return int(number) if number is not None and number.is_integer() else None


def grading_tables(grading: Any) -> tuple[list[dict[str, Any]], list[tuple[str, float | None]]]:
    """grading_policy.json's GRADER entries as rows (edx2bigquery's make_grading_policy_table.py,
    load_grading_policy: `type` -> assignment_type, `weight` -> fraction_of_overall_grade, `name`
    defaults to the type) and its GRADE_CUTOFFS as (label, cutoff) pairs, in the file's order."""
    if not isinstance(grading, dict):
        return [], []
    graders: list[dict[str, Any]] = []
    for entry in grading.get("GRADER") or []:
        if not isinstance(entry, dict):
            continue
        kind = _text(entry.get("type"))
        graders.append(
            {
                "position": len(graders) + 1,
                "assignment_type": kind,
                "name": _text(entry.get("name")) or kind,
                "fraction_of_overall_grade": to_float(entry.get("weight")),
                "short_label": _text(entry.get("short_label")),
                "min_count": _count(entry.get("min_count")),
                "drop_count": _count(entry.get("drop_count")),
            }
        )
    cutoffs = grading.get("GRADE_CUTOFFS")
    pairs = [(str(label), to_float(value)) for label, value in cutoffs.items()] if isinstance(cutoffs, dict) else []
    return graders, pairs


def _add_drafts(root: Path, reader: _OlxReader, course: Node) -> None:
    """Put the drafts/ blocks that have a parent (old: parent_sequential_url, newer: parent_url) into
    the tree as unpublished; a draft of a block that is already published is a pending edit and skipped."""
    drafts = root / "drafts"
    if not drafts.is_dir():
        return
    by_name: dict[str, Node] = {}
    present: set[tuple[str, str]] = set()
    for node in _walk(course):
        if node.url_name:
            by_name.setdefault(node.url_name, node)
            present.add((node.tag, node.url_name))
    pending: list[tuple[int, str, Node, Path]] = []
    for path in sorted(drafts.rglob("*.xml")):
        element = _parse_xml(path)
        parent_ref = element.get("parent_url") or element.get("parent_sequential_url")
        if not parent_ref:
            continue  # a child of another draft, reached through its parent
        element.attrib.setdefault("url_name", path.stem)
        node = reader.node(element, draft=True)
        if node.url_name and (node.tag, node.url_name) in present:
            continue
        parent_name = parent_ref.rsplit("@", 1)[-1] if "@" in parent_ref else parent_ref.rstrip("/").rsplit("/", 1)[-1]
        index = to_float(element.get("index_in_children_list"))
        pending.append((int(index) if index is not None else 1 << 30, parent_name, node, path))
    for index, parent_name, node, _path in sorted(pending, key=lambda p: p[0]):
        parent = by_name.get(parent_name)
        if parent is None:
            continue  # a draft of a block whose parent was deleted: not part of the course
        parent.children.insert(min(max(index, 0), len(parent.children)), node)


def _walk(node: Node) -> Iterator[Node]:
    yield node
    for child in node.children:
        yield from _walk(child)


def _tree(node: Node) -> dict[str, Any]:
    """The original's nested JSON: every attribute, `tag`, and `children` (drafts left out, as it did)."""
    out: dict[str, Any] = {k: _plain(v) if k in INHERITED + ("start", "end") else v for k, v in node.attrs.items()}
    out["tag"] = node.tag
    out["children"] = [_tree(child) for child in node.children if not child.draft]
    return out


# -- course_structure JSON ----------------------------------------------------------------------
def _split_key(key: str) -> tuple[str, str, str | None, str, str] | None:
    """(org, course, run or None, category, name) of a block key in either form."""
    if key.startswith("block-v1:"):
        try:
            course_part, type_part, block_part = (
                key[len("block-v1:") :].split("+type@")[0],
                key.split("+type@")[1].split("+block@")[0],
                key.split("+block@")[1],
            )
            org, code, run = course_part.split("+")[:3]
        except (IndexError, ValueError):
            return None
        return org, code, run, type_part, block_part
    if key.startswith("i4x://"):
        parts = key[len("i4x://") :].split("/")
        if len(parts) >= 4:
            return parts[0], parts[1], None, parts[2], parts[3]
    return None


def parse_structure(data: Any, path: Path) -> ParsedCourse:
    """A flat `{block key: {category, children, metadata}}` course_structure file -> a ParsedCourse."""
    if not isinstance(data, dict) or not data:
        raise OlxError(f"{path}: not a course_structure object")
    roots = [k for k, v in data.items() if isinstance(v, dict) and v.get("category") == "course"]
    if len(roots) > 1:
        raise OlxError(f"{path}: {len(roots)} blocks of category 'course'; expected one")
    if not roots:
        return _without_root(data, path)
    root_key = roots[0]
    split = _split_key(root_key)
    if split is None:
        raise OlxError(f"{path}: the course block key {root_key!r} is neither i4x:// nor block-v1:")
    org, code, run, _category, name = split
    id_form = "new" if root_key.startswith("block-v1:") else "old"
    run = run or name
    courses.checked(org, code, run, path)
    return _structure_tree(data, path, root_key, org, code, run, id_form, [])


def _without_root(data: dict[str, Any], path: Path) -> ParsedCourse:
    """A course_structure with no `course` block: its top chapters (and all below) under a course block
    made here, the course read from their keys (or the file name for i4x keys, which have no run)."""
    children = {c for v in data.values() if isinstance(v, dict) and isinstance(v.get("children"), list) for c in v["children"]}
    chapters = [k for k, v in data.items() if isinstance(v, dict) and v.get("category") == "chapter" and k not in children]
    if not chapters:
        raise OlxError(f"{path}: no block of category 'course' and no chapter: nothing to take")
    named_by_keys: set[tuple[str, str, str | None]] = set()
    for key in chapters:
        split = _split_key(key)
        if split is None:
            raise OlxError(f"{path}: no block of category 'course', and the chapter key {key!r} is neither i4x:// nor block-v1:")
        named_by_keys.add(split[:3])
    if len(named_by_keys) != 1:
        raise OlxError(f"{path}: no block of category 'course', and its chapters' keys name {len(named_by_keys)} courses")
    org, code, run = named_by_keys.pop()
    id_form = "new" if chapters[0].startswith("block-v1:") else "old"
    if run is None:  # i4x:// keys name no run: the file name does ({org}-{course}-{run}-course_structure-...)
        named = courses.from_file_form(path.name.split("-course_structure-")[0])
        if named is None or (named.org, named.course) != (org, code):
            raise OlxError(f"{path}: no block of category 'course', and neither its i4x:// keys nor its file name give the run")
        run = named.run
    courses.checked(org, code, run, path)
    missing = (
        f"no 'course' root block: took its {len(chapters)} top chapter(s) and everything below them; "
        "the course's name, dates and grading policy are not in the file"
    )
    return _structure_tree(data, path, None, org, code, run, id_form, chapters, missing)


def _structure_tree(
    data: dict[str, Any],
    path: Path,
    root_key: str | None,
    org: str,
    code: str,
    run: str,
    id_form: str,
    chapters: list[str],
    missing: str | None = None,
) -> ParsedCourse:
    """The tree under `root_key`, or (None) under a course block made here over `chapters`."""

    def build(key: str, depth: int, seen: frozenset[str]) -> Node:
        if depth > _MAX_DEPTH or key in seen:
            raise OlxError(f"{path}: block {key!r} is its own ancestor or the tree is too deep")
        entry = data[key]
        meta = entry.get("metadata") if isinstance(entry.get("metadata"), dict) else {}
        parts = _split_key(key)
        category = str(entry.get("category") or (parts[3] if parts else "unknown"))
        attrs = dict(meta)
        attrs["url_name"] = run if category == "course" else (parts[4] if parts else key)
        node = Node(category, attrs)
        children = entry.get("children") if isinstance(entry.get("children"), list) else []
        node.children = [build(child, depth + 1, seen | {key}) for child in children if child in data and isinstance(data[child], dict)]
        return node

    if root_key is not None:
        tree_root = build(root_key, 0, frozenset())
    else:
        tree_root = Node("course", {"url_name": run}, [build(key, 1, frozenset()) for key in chapters])
    parsed = _parsed(org, code, run, "course_structure", id_form, tree_root, _tree(tree_root), None)
    parsed.missing = missing
    return parsed


# -- rows ---------------------------------------------------------------------------------------
def block_ids(org: str, code: str, run: str, category: str, url_name: str | None) -> tuple[str | None, str | None]:
    """(old i4x id, new block-v1 id) of a block; the course block has its own forms."""
    if category == "course":
        return f"i4x://{org}/{code}/course/{run}", f"block-v1:{org}+{code}+{run}+type@course+block@course"
    if not url_name:
        return None, None
    return f"i4x://{org}/{code}/{category}/{url_name}", f"block-v1:{org}+{code}+{run}+type@{category}+block@{url_name}"


def _parsed(
    org: str, code: str, run: str, source: str, id_form: str | None, root: Node, tree: dict[str, Any], pass_mark: float | None
) -> ParsedCourse:
    blocks = list(_rows(org, code, run, root))
    chapters = [b for b in blocks if b["category"] == "chapter" and not b["draft"]]
    attrs = root.attrs
    info = {
        "display_name": _text(attrs.get("display_name")),
        "start_date": to_datetime(attrs.get("start")),
        "end_date": to_datetime(attrs.get("end")),
        "enrollment_start": to_datetime(attrs.get("enrollment_start")),
        "enrollment_end": to_datetime(attrs.get("enrollment_end")),
        "pass_mark": pass_mark,
        "chapters": len(chapters),
        "published_chapters": sum(1 for b in chapters if b["published"]),
    }
    for key in ("display_name", "start", "end"):
        if key not in tree and attrs.get(key) is not None:
            tree[key] = _plain(attrs[key])
    return ParsedCourse(org, code, run, source, id_form, tree, info, blocks)


def _rows(org: str, code: str, run: str, root: Node) -> Iterator[dict[str, Any]]:
    """Blocks in course order (depth first), with the course axis, inheritance and publication, and
    what edx2bigquery's course_axis needs of the tree (path, release date, hidden and split_test
    ancestry; edx2course_axis.py, make_axis: walk)."""
    position = 0

    @dataclass
    class Up:
        """What a block hands down to its children."""

        node: Node | None = None
        position: int | None = None
        inherited: dict[str, Any] = field(default_factory=dict)
        published: bool = True
        release: datetime | None = None
        path: tuple[str, ...] = ()
        hidden: bool = False  # a hide_from_toc block is above
        split: str | None = None  # url_name of the outermost split_test above

    def visit(node: Node, up: Up, axis: dict[str, int | None], seq_num: int) -> Iterator[dict[str, Any]]:
        nonlocal position
        position += 1
        mine = position
        attrs = node.attrs
        values = {k: attrs.get(k, up.inherited.get(k)) for k in INHERITED}
        published = up.published and not node.draft and not truthy(attrs.get("visible_to_staff_only"))
        old, new = block_ids(org, code, run, node.tag, node.url_name)
        start = to_datetime(values["start"])
        # edx2bigquery: a block never starts before its parent (edX shows it only once every ancestor started)
        release = max((t for t in (start, up.release) if t is not None), default=None)
        if node.tag == "chapter":
            path: tuple[str, ...] = (node.url_name or "",)
        elif node.tag in SEQUENCE_TAGS:
            path = (up.path[0], node.url_name or "") if up.path else (node.url_name or "",)
        else:
            path = (*up.path, str(seq_num))
        hide = truthy(attrs.get("hide_from_toc"))
        yield {
            "position": mine,
            "block_id_old": old,
            "block_id_new": new,
            "category": node.tag,
            "display_name": _text(attrs.get("display_name")),
            "url_name": node.url_name,
            "parent_url_name": up.node.url_name if up.node else None,
            "parent_position": up.position,
            "chapter_index": axis.get("chapter"),
            "sequential_index": axis.get("sequential"),
            "vertical_index": axis.get("vertical"),
            "graded": truthy(values["graded"]),
            "format": _text(values["format"]),
            "weight": to_float(attrs.get("weight")),
            "start_date": start,
            "due_date": to_datetime(values["due"]),
            "published": published,
            "youtube_id": youtube_id(attrs) if node.tag == "video" else None,
            "discussion_id": _text(attrs.get("discussion_id")),
            "discussion_category": _text(attrs.get("discussion_category")),
            "draft": node.draft,
            "release_date": release,
            "path": None if node.draft else "/" + "/".join(path),
            "hide_from_toc": hide,
            "hidden_by_ancestor": up.hidden,
            "split_url_name": up.split,
            "group_id_to_child": _text(attrs.get("group_id_to_child")) if node.tag == "split_test" else None,
            "user_partition_id": _text(attrs.get("user_partition_id")) if node.tag == "split_test" else None,
            "response_types": node.content.get("response_types"),
            "has_solution": node.content.get("has_solution"),
            "has_image": node.content.get("has_image"),
            "iframe_youtube_id": node.content.get("iframe_youtube_id"),
        }
        counts: dict[str, int] = {}
        down = Up(
            node,
            mine,
            values,
            published,
            release,
            path,
            up.hidden or hide,
            up.split or (node.url_name if node.tag == "split_test" else None),
        )
        child_num = 0
        for child in node.children:
            # edx2bigquery numbers a block's children (its `path`) skipping discussion and source
            # elements; drafts are not in the export's tree it reads
            if not child.draft and child.tag not in UNCOUNTED:
                child_num += 1
            if node.tag == "course" and child.tag in NOT_BLOCKS:
                continue
            child_axis = dict(axis)
            if child.tag in ("chapter", "sequential", "vertical"):
                # the axis of the course as authored (staff-only blocks count, as in edx2bigquery's
                # course_axis); a draft is not in the course tree, so it has no index of its own
                if not child.draft:
                    counts[child.tag] = counts.get(child.tag, 0) + 1
                child_axis[child.tag] = None if child.draft else counts[child.tag]
                # a new chapter (sequential) starts its sequentials (verticals) from 1
                for lower in {"chapter": ("sequential", "vertical"), "sequential": ("vertical",), "vertical": ()}[child.tag]:
                    child_axis[lower] = None
            yield from visit(child, down, child_axis, child_num)

    yield from visit(root, Up(), {}, 1)
