"""CourseStructure: OLX exports and course_structure JSON give the course axis, publication and www JSON."""

from __future__ import annotations

import datetime as dt
import io
import json
import tarfile
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import pytest

from conftest import ingest, query_rows
from optimus.sample.course import Block, Course, course_structure, make_course, olx_files, write_olx

START = dt.date(2024, 3, 4)


def _expected_blocks(course: Course) -> list[dict[str, Any]]:
    """The published tree walked on its own: order, axis (1-based among same-category siblings),
    publication (staff-only hides a whole subtree), inherited graded/format, video ids, weights."""
    out: list[dict[str, Any]] = []

    def visit(block: Block, axis: dict[str, int], published: bool, graded: bool, fmt: str | None) -> None:
        published = published and block.attrs.get("visible_to_staff_only") != "true"
        graded = graded or block.attrs.get("graded") == "true"
        fmt = block.attrs.get("format", fmt)
        out.append(
            {
                "category": block.category,
                "url_name": block.url_name,
                "display_name": block.display_name,
                "chapter_index": axis.get("chapter"),
                "sequential_index": axis.get("sequential"),
                "vertical_index": axis.get("vertical"),
                "published": published,
                "graded": graded,
                "format": fmt,
                "youtube_id": block.attrs.get("youtube_id_1_0"),
                "weight": float(block.attrs["weight"]) if "weight" in block.attrs else None,
                "discussion_id": block.attrs.get("discussion_id"),
            }
        )
        seen: dict[str, int] = {}
        for child in block.children:
            sub = dict(axis)
            if child.category in ("chapter", "sequential", "vertical"):
                seen[child.category] = seen.get(child.category, 0) + 1
                sub[child.category] = seen[child.category]
                if child.category == "chapter":
                    sub.pop("sequential", None)
                    sub.pop("vertical", None)
                elif child.category == "sequential":
                    sub.pop("vertical", None)
            visit(child, sub, published, graded, fmt)

    visit(course.root, {}, True, False, None)
    return out


def _write_folder(course: Course, folder: Path) -> None:
    for name, data in olx_files(course).items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def test_generated_exports_give_axis_publication_and_www_json(data_path: Path, settings_for: Any, backend: dict[str, Any]) -> None:
    old = make_course(0, "UQx", START, 7, 1)  # old id form, a staff-only chapter, a draft vertical
    new = make_course(1, "UQx", START, 7, 1)  # new id form
    package = data_path / "database_state" / "latest"
    write_olx(old, package / f"{old.prefix}-course-prod-analytics.xml.tar.gz", 0)
    (package / f"{old.prefix}-course_structure-prod-analytics.json").write_text(json.dumps(course_structure(old)))
    _write_folder(new, package / new.prefix / "export")  # an extracted export: course.xml one level down
    settings = settings_for(data_path, **backend)
    ingest(settings, "CourseStructure")

    for course in (old, new):
        key = f"{course.org}+{course.code}+{course.run}"
        (row,) = query_rows(settings, "SELECT * FROM courses WHERE course_key = ?", [key], as_dicts=True)
        assert row["course_id_old"] == course.old_id and row["course_id_new"] == course.new_id
        assert row["display_name"] == course.display_name
        assert (row["start_date"], row["end_date"]) == (course.start, course.end)
        assert (row["enrollment_start"], row["enrollment_end"]) == (course.enrollment_start, course.enrollment_end)
        assert row["pass_mark"] == course.pass_mark
        assert row["chapters"] == len(course.all_chapter_ids)
        assert row["published_chapters"] == len(course.chapters)
        assert row["source"] == "olx"

        got = query_rows(settings, "SELECT * FROM course_blocks WHERE course_key = ? ORDER BY position", [key], as_dicts=True)
        assert [b["position"] for b in got] == list(range(1, len(got) + 1))
        published_tree = [b for b in got if b["url_name"] not in _draft_names(course)]
        fields = list(_expected_blocks(course)[0])
        assert [{f: b[f] for f in fields} for b in published_tree] == _expected_blocks(course)
        for b in published_tree:
            assert b["start_date"] == course.start  # inherited from the course policy

        # the www JSON keeps the original's nesting: course -> chapter -> sequential -> vertical -> leaf
        www = json.loads((settings.www_path / "course_structure" / f"{course.prefix}.json").read_text())
        assert www["tag"] == "course" and www["display_name"] == course.display_name
        assert www["start"] == course.start.strftime("%Y-%m-%dT%H:%M:%SZ")  # from the policy, not the root
        assert "policy" in www
        assert [c["url_name"] for c in www["children"]] == course.all_chapter_ids
        for chapter_json, chapter in zip(www["children"], course.root.children, strict=True):
            for seq_json, seq in zip(chapter_json["children"], chapter.children, strict=True):
                assert seq_json["tag"] == "sequential" and seq_json["display_name"] == seq.display_name
                assert [v["url_name"] for v in seq_json["children"]] == [v.url_name for v in seq.children]
                for vert_json, vert in zip(seq_json["children"], seq.children, strict=True):
                    assert [(leaf["tag"], leaf["url_name"]) for leaf in vert_json["children"]] == [
                        (leaf.category, leaf.url_name) for leaf in vert.children
                    ]

    # the old course's draft vertical is a block, unpublished, under its sequential, with no index of its own
    draft = old.draft_vertical
    assert draft is not None
    (d,) = query_rows(settings, "SELECT * FROM course_blocks WHERE url_name = ?", [draft.url_name], as_dicts=True)
    assert (d["published"], d["category"], d["parent_url_name"]) == (False, "vertical", old.chapters[0].sequentials[0])
    assert (d["chapter_index"], d["sequential_index"], d["vertical_index"]) == (1, 1, None)
    # the id form: the old course's course_structure keys say 'old'; its blocks use i4x ids
    assert query_rows(settings, "SELECT course_id FROM courses WHERE course_key = ?", [f"UQx+{old.code}+{old.run}"]) == [(old.old_id,)]
    assert query_rows(
        settings, "SELECT count(*) FROM course_blocks WHERE course_key = ? AND block_id NOT LIKE 'i4x://%'", [f"UQx+{old.code}+{old.run}"]
    ) == [(0,)]

    # a second run changes nothing
    before = query_rows(settings, "SELECT * FROM course_blocks ORDER BY course_key, position")
    www_files = {p: p.stat().st_mtime_ns for p in (settings.www_path / "course_structure").iterdir()}
    ingest(settings, ok=None)  # every service: other services' outcomes are their tests' business
    assert query_rows(settings, "SELECT count(*) FROM ingest_files WHERE state <> 'done'") == [(0,)]
    assert query_rows(settings, "SELECT * FROM course_blocks ORDER BY course_key, position") == before
    assert {p: p.stat().st_mtime_ns for p in (settings.www_path / "course_structure").iterdir()} == www_files
    assert query_rows(settings, "SELECT count(*) FROM service_runs WHERE service = 'CourseStructure'") == [(1,)]


def _draft_names(course: Course) -> set[str]:
    draft = course.draft_vertical
    if draft is None:
        return set()
    return {draft.url_name} | {c.url_name for c in draft.children}


def test_course_structure_json_alone(data_path: Path, settings_for: Any) -> None:
    course = make_course(1, "UQx", START, 7, 2)
    package = data_path / "database_state" / "latest"
    (package / f"{course.prefix}-course_structure-prod-analytics.json").write_text(json.dumps(course_structure(course)))
    settings = settings_for(data_path)
    ingest(settings, "CourseStructure")
    (row,) = query_rows(settings, "SELECT * FROM courses", as_dicts=True)
    assert (row["course_id"], row["source"], row["published_chapters"]) == (course.new_id, "course_structure", len(course.chapters))
    got = query_rows(settings, "SELECT * FROM course_blocks ORDER BY position", as_dicts=True)
    fields = list(_expected_blocks(course)[0])
    assert [{f: b[f] for f in fields} for b in got] == _expected_blocks(course)
    assert all(b["block_id"].startswith("block-v1:") for b in got)


# -- a hand-written, old-style export with every quirk ---------------------------------------
TRICKY = {
    "course.xml": '<course url_name="2013_Fall" org="MITx" course="6.00x"/>',
    # old style: start on the root, JSON-quoted; end only in the policy
    "course/2013_Fall.xml": (
        '<course display_name="Intro to CS" start="&quot;2013-09-01T00:00:00Z&quot;">'
        '<chapter url_name="Week_1"/><chapter url_name="Staff"/><chapter url_name="Week_2"/><wiki slug="6.00x"/></course>'
    ),
    "chapter/Week_1.xml": '<chapter display_name="Week 1"><sequential url_name="Lecture_1"/><sequential url_name="PS1"/></chapter>',
    # a chapter only staff can see: it and everything under it are unpublished
    "chapter/Staff.xml": '<chapter display_name="Staff notes" visible_to_staff_only="true"><sequential url_name="Notes"/></chapter>',
    "chapter/Week_2.xml": '<chapter display_name="Week 2" start="2013-09-08T00:00:00+10:00"><sequential url_name="Lecture_2"/></chapter>',
    # inline children (old exports): the vertical and its leaves are written inside the sequential
    "sequential/Lecture_1.xml": (
        '<sequential display_name="Lecture 1"><vertical url_name="L1_v1" display_name="Intro">'
        '<video url_name="vid1" display_name="Welcome" youtube="0.75:slowId,1.00:normalId,1.25:fastId"/>'
        '<discussion url_name="disc1" display_name="Say hi" discussion_id="d_hello" discussion_category="Week 1"/>'
        "</vertical></sequential>"
    ),
    "sequential/PS1.xml": (
        '<sequential display_name="Problem Set 1" graded="true" format="Homework" due="2013-09-15T23:59:00Z">'
        '<vertical url_name="PS1_v1"/></sequential>'
    ),
    "vertical/PS1_v1.xml": '<vertical display_name="Problems"><problem url_name="p1"/><html url_name="h1"/></vertical>',
    "problem/p1.xml": '<problem display_name="Sum" weight="2.5"><p>1+1?</p><numericalresponse answer="2"/></problem>',
    "html/h1.xml": '<html display_name="Hint" filename="h1"/>',
    "sequential/Notes.xml": '<sequential display_name="Notes"><vertical url_name="N_v1"/></sequential>',
    "vertical/N_v1.xml": '<vertical display_name="Notes unit"/>',
    "sequential/Lecture_2.xml": '<sequential display_name="Lecture 2"><vertical url_name="L2_v1"/></sequential>',
    "vertical/L2_v1.xml": '<vertical display_name="Only unit"><video url_name="vid2" youtube_id_1_0="secondId"/></vertical>',
    # drafts: a never-published vertical (old attribute name), and a pending edit of a published one (skipped)
    "drafts/vertical/New_unit.xml": (
        '<vertical display_name="Coming soon" parent_sequential_url="i4x://MITx/6.00x/sequential/Lecture_2" '
        'index_in_children_list="0"><html url_name="draft_html"/></vertical>'
    ),
    "drafts/html/draft_html.xml": '<html display_name="Draft words" filename="draft_html"/>',
    "drafts/vertical/L2_v1.xml": (
        '<vertical display_name="Only unit (edited)" parent_url="i4x://MITx/6.00x/sequential/Lecture_2" index_in_children_list="0"/>'
    ),
    "policies/2013_Fall/policy.json": json.dumps(
        {"course/2013_Fall": {"end": "2013-12-20T00:00:00Z", "enrollment_start": "2013-08-01T00:00:00Z"}}
    ),
    "policies/2013_Fall/grading_policy.json": json.dumps({"GRADER": [], "GRADE_CUTOFFS": {"A": 0.9, "B": 0.75, "Pass": 0.42}}),
}

# (url_name, category, chapter, sequential, vertical, published, graded, format, due, youtube_id)
TRICKY_BLOCKS = [
    ("2013_Fall", "course", None, None, None, True, False, None, None, None),
    ("Week_1", "chapter", 1, None, None, True, False, None, None, None),
    ("Lecture_1", "sequential", 1, 1, None, True, False, None, None, None),
    ("L1_v1", "vertical", 1, 1, 1, True, False, None, None, None),
    ("vid1", "video", 1, 1, 1, True, False, None, None, "normalId"),
    ("disc1", "discussion", 1, 1, 1, True, False, None, None, None),
    ("PS1", "sequential", 1, 2, None, True, True, "Homework", dt.datetime(2013, 9, 15, 23, 59), None),
    ("PS1_v1", "vertical", 1, 2, 1, True, True, "Homework", dt.datetime(2013, 9, 15, 23, 59), None),
    ("p1", "problem", 1, 2, 1, True, True, "Homework", dt.datetime(2013, 9, 15, 23, 59), None),
    ("h1", "html", 1, 2, 1, True, True, "Homework", dt.datetime(2013, 9, 15, 23, 59), None),
    ("Staff", "chapter", 2, None, None, False, False, None, None, None),
    ("Notes", "sequential", 2, 1, None, False, False, None, None, None),
    ("N_v1", "vertical", 2, 1, 1, False, False, None, None, None),
    ("Week_2", "chapter", 3, None, None, True, False, None, None, None),
    ("Lecture_2", "sequential", 3, 1, None, True, False, None, None, None),
    ("New_unit", "vertical", 3, 1, None, False, False, None, None, None),
    ("draft_html", "html", 3, 1, None, False, False, None, None, None),
    ("L2_v1", "vertical", 3, 1, 1, True, False, None, None, None),
    ("vid2", "video", 3, 1, 1, True, False, None, None, "secondId"),
]


def _tarball(path: Path, files: dict[str, str | bytes], top: str = "6.00x") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode() if isinstance(text, str) else text
            info = tarfile.TarInfo(f"{top}/{name}" if top else name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_hand_written_old_style_export(data_path: Path, settings_for: Any, backend: dict[str, Any]) -> None:
    _tarball(data_path / "database_state" / "latest" / "MITx-6.00x-2013_Fall-course-prod-analytics.xml.tar.gz", TRICKY)
    settings = settings_for(data_path, www_path=data_path.parent / "www", **backend)
    ingest(settings, "CourseStructure")
    (course,) = query_rows(settings, "SELECT * FROM courses", as_dicts=True)
    assert course["course_key"] == "MITx+6.00x+2013_Fall"
    assert course["display_name"] == "Intro to CS"
    assert course["start_date"] == dt.datetime(2013, 9, 1)  # root attribute, JSON-quoted
    assert course["end_date"] == dt.datetime(2013, 12, 20)  # policy
    assert course["enrollment_start"] == dt.datetime(2013, 8, 1)
    assert course["pass_mark"] == 0.42
    assert (course["chapters"], course["published_chapters"]) == (3, 2)
    got = query_rows(
        settings,
        "SELECT url_name, category, chapter_index, sequential_index, vertical_index, published, graded, format, "
        "due_date, youtube_id FROM course_blocks ORDER BY position",
    )
    assert got == TRICKY_BLOCKS
    assert query_rows(settings, "SELECT weight FROM course_blocks WHERE url_name = 'p1'") == [(2.5,)]
    assert query_rows(settings, "SELECT discussion_id, discussion_category FROM course_blocks WHERE url_name = 'disc1'") == [
        ("d_hello", "Week 1")
    ]
    # a start on a chapter (with a zone) is inherited below it, in UTC
    assert query_rows(settings, "SELECT DISTINCT start_date FROM course_blocks WHERE chapter_index = 3") == [
        (dt.datetime(2013, 9, 7, 14, 0),)
    ]
    assert query_rows(settings, "SELECT display_name FROM course_blocks WHERE url_name = 'L2_v1'") == [
        ("Only unit",)
    ]  # the edit is a draft
    www = json.loads((settings.www_path / "course_structure" / "MITx-6.00x-2013_Fall.json").read_text())
    assert www["start"] == "2013-09-01T00:00:00Z" and www["end"] == "2013-12-20T00:00:00Z"
    assert [c["url_name"] for c in www["children"] if c["tag"] == "chapter"] == ["Week_1", "Staff", "Week_2"]
    lecture_2 = www["children"][2]["children"][0]
    assert [v["url_name"] for v in lecture_2["children"]] == ["L2_v1"]  # drafts are not in the original's JSON


def _failed(settings: Any) -> str:
    ingest(settings, "CourseStructure", ok=False)
    ((state, error, rows),) = query_rows(settings, "SELECT state, error, rows_loaded FROM ingest_files")
    assert state == "failed" and rows is None
    assert query_rows(settings, "SELECT count(*) FROM courses") == [(0,)]
    assert query_rows(settings, "SELECT count(*) FROM course_blocks") == [(0,)]
    assert not (settings.www_path / "course_structure").exists() or not any((settings.www_path / "course_structure").iterdir())
    return str(error)


def test_tarball_with_parent_path_is_refused(data_path: Path, settings_for: Any) -> None:
    name = "MITx-6.00x-2013_Fall-course-prod-analytics.xml.tar.gz"
    _tarball(data_path / "database_state" / "latest" / name, {**TRICKY, "../../escaped.xml": "<x/>"})
    error = _failed(settings_for(data_path))
    assert name in error and "'6.00x/../../escaped.xml'" in error and "escape" in error
    assert not (data_path / "database_state" / "escaped.xml").exists()


def test_xml_entity_bomb_is_refused(data_path: Path, settings_for: Any) -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
        '<chapter display_name="&lol3;"><sequential url_name="Lecture_1"/></chapter>'
    )
    name = "MITx-6.00x-2013_Fall-course-prod-analytics.xml.tar.gz"
    _tarball(data_path / "database_state" / "latest" / name, {**TRICKY, "chapter/Week_1.xml": bomb})
    error = _failed(settings_for(data_path))
    assert name in error and "chapter/Week_1.xml" in error and "entities" in error


def test_missing_or_broken_export_fails(data_path: Path, settings_for: Any) -> None:
    name = "MITx-6.00x-2013_Fall-course-prod-analytics.xml.tar.gz"
    broken = {k: v for k, v in TRICKY.items() if k != "course/2013_Fall.xml"}
    _tarball(data_path / "database_state" / "latest" / name, broken)
    error = _failed(settings_for(data_path))
    assert name in error and "course/2013_Fall.xml" in error and "missing" in error


def test_newer_package_replaces_a_course(tmp_path: Path, settings_for: Any) -> None:
    from conftest import make_data_path

    data = make_data_path(tmp_path / "data", "2024-01-07")
    name = "MITx-6.00x-2013_Fall-course-prod-analytics.xml.tar.gz"
    _tarball(data / "database_state" / "2024-01-07" / name, TRICKY)
    settings = settings_for(data)
    ingest(settings, "CourseStructure")
    renamed = {
        **TRICKY,
        "course/2013_Fall.xml": TRICKY["course/2013_Fall.xml"]
        .replace("Intro to CS", "Intro to CS (2nd)")
        .replace('<chapter url_name="Staff"/>', ""),
    }
    (data / "database_state" / "2024-01-14").mkdir()
    _tarball(data / "database_state" / "2024-01-14" / name, renamed)
    (data / "database_state" / "latest").unlink()
    (data / "database_state" / "latest").symlink_to("2024-01-14")
    ingest(settings, "CourseStructure")
    assert query_rows(settings, "SELECT display_name, chapters, published_chapters, package_date FROM courses") == [
        ("Intro to CS (2nd)", 2, 2, dt.date(2024, 1, 14))
    ]
    assert query_rows(settings, "SELECT count(*) FROM course_blocks WHERE url_name IN ('Staff', 'Notes', 'N_v1')") == [(0,)]
    assert query_rows(settings, "SELECT count(*), count(DISTINCT position) FROM course_blocks") == [(len(TRICKY_BLOCKS) - 3,) * 2]


# -- names from data never become paths or keys unchecked (issue 13 item 3) --------------------
_UNSAFE_PARTS = ["/tmp/x/evil", "../evil", "a/b", "..", "ev\x00il", "a b", "a\\b"]


@pytest.mark.parametrize("field", ["org", "course", "url_name"])
@pytest.mark.parametrize("bad", _UNSAFE_PARTS)
def test_export_with_unsafe_course_name_fails_and_writes_nothing(
    data_path: Path, settings_for: Any, tmp_path: Path, field: str, bad: str
) -> None:
    evil_dir = tmp_path / "x"
    value = bad.replace("/tmp/x", str(evil_dir))
    attrs = {"url_name": "R", "org": "O", "course": "C", field: value}
    pointer = "<course " + " ".join(f"{k}={quoteattr(v.replace(chr(0), '&#0;'))}" for k, v in attrs.items()) + "/>"
    files = {**TRICKY, "course.xml": pointer, "course/R.xml": TRICKY["course/2013_Fall.xml"]}
    name = "O-C-R-course-prod-analytics.xml.tar.gz"
    _tarball(data_path / "database_state" / "latest" / name, files, top="")
    settings = settings_for(data_path)
    error = _failed(settings)
    if "\x00" not in bad:  # NUL is not even well-formed XML: refused as such
        assert name in error and field.replace("url_name", "run") in error and "unsafe" in error.lower(), error
    assert not evil_dir.exists() and not list(tmp_path.glob("**/*evil*"))
    assert query_rows(settings, "SELECT count(*) FROM course_ids WHERE course_key LIKE '%evil%' OR course_key LIKE '%/%'") == [(0,)]


@pytest.mark.parametrize(
    "root_key",
    [
        "block-v1:/tmp/x/evil+C+R+type@course+block@course",
        "block-v1:O+..+R+type@course+block@course",
        "i4x://../C/course/R",
    ],
)
def test_course_structure_json_with_unsafe_course_name_fails(data_path: Path, settings_for: Any, tmp_path: Path, root_key: str) -> None:
    root_key = root_key.replace("/tmp/x", str(tmp_path / "x"))
    name = "O-C-R-course_structure-prod-analytics.json"
    (data_path / "database_state" / "latest" / name).write_text(
        json.dumps({root_key: {"category": "course", "children": [], "metadata": {}}})
    )
    settings = settings_for(data_path)
    error = _failed(settings)
    assert name in error and "unsafe" in error.lower(), error
    assert not (tmp_path / "x").exists() and not list(tmp_path.glob("**/*evil*"))


def test_course_structure_json_without_a_course_block_takes_its_chapters_and_says_what_was_missing(
    data_path: Path, settings_for: Any
) -> None:
    """No `course` root block: every chapter and all below them are loaded as with the root (same order, axis and
    publication), the course's own fields are empty, and the file's note says the root was missing."""
    course = make_course(1, "UQx", START, 7, 2)
    data = course_structure(course)
    (root_key,) = [k for k, v in data.items() if v["category"] == "course"]
    del data[root_key]
    package = data_path / "database_state" / "latest"
    (package / f"{course.prefix}-course_structure-prod-analytics.json").write_text(json.dumps(data))
    settings = settings_for(data_path)
    ingest(settings, "CourseStructure")
    (state, note) = query_rows(settings, "SELECT state, note FROM ingest_files WHERE service = 'CourseStructure'")[0]
    assert state == "done"
    assert "no 'course' root block" in note and f"{len(course.chapters)} top chapter(s)" in note and "dates" in note
    (row,) = query_rows(settings, "SELECT * FROM courses", as_dicts=True)
    assert (row["course_id"], row["display_name"], row["start_date"]) == (course.new_id, None, None)
    assert (row["chapters"], row["published_chapters"]) == (len(course.chapters), len(course.chapters))
    got = query_rows(settings, "SELECT * FROM course_blocks ORDER BY position", as_dicts=True)
    expected = _expected_blocks(course)
    fields = [f for f in expected[0] if f != "display_name"]
    assert [{f: b[f] for f in fields} for b in got][1:] == [{f: b[f] for f in fields} for b in expected][1:]
    assert [b["display_name"] for b in got][1:] == [b["display_name"] for b in expected][1:]


def test_i4x_course_structure_without_a_course_block_takes_the_run_from_the_file_name(tmp_path: Path) -> None:
    from optimus.formats import olx

    data = {
        "i4x://MITx/6.00x/chapter/Week_1": {"category": "chapter", "children": ["i4x://MITx/6.00x/sequential/L1"], "metadata": {}},
        "i4x://MITx/6.00x/sequential/L1": {"category": "sequential", "children": [], "metadata": {"display_name": "Lecture 1"}},
        "i4x://MITx/6.00x/chapter/Week_2": {"category": "chapter", "children": [], "metadata": {}},
    }
    parsed = olx.parse_structure(data, tmp_path / "MITx-6.00x-2013_Fall-course_structure-prod-analytics.json")
    assert (parsed.org, parsed.course, parsed.run, parsed.id_form) == ("MITx", "6.00x", "2013_Fall", "old")
    assert [(b["category"], b["url_name"]) for b in parsed.blocks] == [
        ("course", "2013_Fall"),
        ("chapter", "Week_1"),
        ("sequential", "L1"),
        ("chapter", "Week_2"),
    ]
    assert parsed.missing and "2 top chapter(s)" in parsed.missing
    with pytest.raises(olx.OlxError, match="no chapter"):
        olx.parse_structure({"i4x://MITx/6.00x/sequential/L1": data["i4x://MITx/6.00x/sequential/L1"]}, tmp_path / "x.json")
