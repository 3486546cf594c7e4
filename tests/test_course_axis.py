"""CourseAxis on small course exports written here, of different OLX generations: a Studio tarball
(every chapter, sequential, vertical and problem in its own file, a draft, a hide_from_toc chapter, a
split test, a problem of each response type) and an extracted folder of an old export (the whole
course inline in course.xml), plus a course_structure JSON alone. Every expected row is worked out by
hand from docs/tables/course_axis.md (edx2bigquery's edx2course_axis.py rules)."""

from __future__ import annotations

import io
import json
import tarfile
from datetime import datetime
from pathlib import Path
from typing import Any

from conftest import ingest, query_rows

LONG = "Each step of the derivation is shown here, and the answer follows from the definition."
RESPONSE = {
    "mc": "<multiplechoiceresponse><choicegroup><choice correct='true'>a</choice></choicegroup></multiplechoiceresponse>",
    "choice": "<choiceresponse><checkboxgroup><choice correct='true'>a</choice></checkboxgroup></choiceresponse>",
    "num": "<numericalresponse answer='3'><formulaequationinput/></numericalresponse>",
    "opt": "<optionresponse><optioninput options=\"('a','b')\" correct='a'/></optionresponse>",
    "str": "<stringresponse answer='x'><textline/></stringresponse>",
    "formula": "<formularesponse answer='x+1'><textline/></formularesponse>",
    "custom": "<customresponse cfn='check'><textline/></customresponse>",
}
GA = "i4x://T/AX1/vertical/ga"
GROUPS = json.dumps({"0": GA, "1": "i4x://T/AX1/vertical/gb"})

STUDIO: dict[str, str] = {
    "course.xml": '<course url_name="2020" org="T" course="AX1"/>',
    "course/2020.xml": '<course display_name="Axis One"><chapter url_name="c1"/><chapter url_name="hid"/><wiki slug="ax1"/></course>',
    "policies/2020/policy.json": json.dumps({"course/2020": {"start": "2020-01-01T00:00:00Z"}}),
    "policies/2020/grading_policy.json": json.dumps(
        {
            "GRADER": [
                {"type": "Homework", "min_count": 2, "drop_count": 1, "short_label": "HW", "weight": 0.6},
                {"type": "Final", "name": "Final Exam", "weight": 0.4},
            ],
            "GRADE_CUTOFFS": {"A": 0.85, "Pass": 0.5},
        }
    ),
    "chapter/c1.xml": '<chapter display_name="Week 1"><sequential url_name="s1"/><sequential url_name="s2"/></chapter>',
    "sequential/s1.xml": '<sequential display_name="Lesson"><vertical url_name="v1"/></sequential>',
    "sequential/s2.xml": '<sequential display_name="HW 1" graded="true" format="Homework" due="2020-02-01T00:00:00Z" '
    'start="2020-01-10T00:00:00Z"><vertical url_name="v2"/><vertical url_name="v3"/></sequential>',
    "vertical/v1.xml": '<vertical display_name="U1"><video url_name="vid1"/><discussion url_name="d1"/><html url_name="h1"/>'
    '<problem url_name="p_mc"/></vertical>',
    "video/vid1.xml": '<video display_name="Intro" youtube="0.75:slow1,1.00:YT1,1.25:fast1"/>',
    "discussion/d1.xml": '<discussion discussion_id="d1" display_name="Talk"/>',
    "html/h1.xml": '<html display_name="Reading" filename="h1"/>',
    "html/h1.html": '<p>Watch:</p><iframe width="5" src="https://www.youtube.com/embed/EMB1?rel=0"></iframe>',
    "problem/p_mc.xml": f'<problem display_name="MC" weight="2">{RESPONSE["mc"]}<solution><div><p>{LONG}</p></div></solution></problem>',
    "vertical/v2.xml": '<vertical><problem url_name="p_choice"/><problem url_name="p_num"/><problem url_name="p_opt"/>'
    '<problem url_name="p_str"/></vertical>',
    "problem/p_choice.xml": f"<problem>{RESPONSE['choice']}<solution><p>Short.</p></solution></problem>",
    "problem/p_num.xml": f"<problem>{RESPONSE['num']}</problem>",
    "problem/p_opt.xml": f"<problem>{RESPONSE['opt']}</problem>",
    "problem/p_str.xml": f"<problem>{RESPONSE['str']}</problem>",
    "vertical/v3.xml": '<vertical display_name="U3"><problem url_name="p_formula"/><problem url_name="p_custom"/>'
    '<problem url_name="p_mixed"/><problem url_name="p_none"/><split_test url_name="ab"/></vertical>',
    "problem/p_formula.xml": f"<problem>{RESPONSE['formula']}</problem>",
    "problem/p_custom.xml": f"<problem><p><img src='/static/f.png'/></p>{RESPONSE['custom']}</problem>",
    "problem/p_mixed.xml": f"<problem>{RESPONSE['str']}{RESPONSE['num']}</problem>",
    "problem/p_none.xml": "<problem><p>Tell us what you think.</p></problem>",
    "split_test/ab.xml": f'<split_test display_name="Experiment" user_partition_id="7" group_id_to_child=\'{GROUPS}\'>'
    '<vertical url_name="ga"/><vertical url_name="gb"/></split_test>',
    "vertical/ga.xml": '<vertical display_name="A"><html url_name="hga"/></vertical>',
    "html/hga.xml": '<html display_name="Arm A" filename="hga"/>',
    "html/hga.html": "<p>No video here.</p>",
    "vertical/gb.xml": '<vertical display_name="B"><problem url_name="p_b"/></vertical>',
    "problem/p_b.xml": f"<problem>{RESPONSE['opt']}</problem>",
    # a hidden chapter: its own row, nothing under it
    "chapter/hid.xml": '<chapter display_name="Hidden" hide_from_toc="true"><sequential url_name="hs"/></chapter>',
    "sequential/hs.xml": '<sequential><vertical url_name="hv"/></sequential>',
    "vertical/hv.xml": '<vertical><problem url_name="hp"/></vertical>',
    "problem/hp.xml": f"<problem>{RESPONSE['mc']}</problem>",
    # a draft unit placed first in s1: not a row, and not counted in v1's path
    "drafts/vertical/dv.xml": '<vertical display_name="Draft" parent_url="i4x://T/AX1/sequential/s1" index_in_children_list="0">'
    '<html url_name="dh"/></vertical>',
    "drafts/html/dh.xml": '<html display_name="Draft text"/>',
}
C1, S2 = "T/AX1/chapter/c1", datetime(2020, 2, 1)
T0, T1 = datetime(2020, 1, 1), datetime(2020, 1, 10)
# (index, category, url_name, path, parent, chapter_mid, graded, gformat, due, start, is_split, split_url_name,
#  data_ytid, data_weight, data_itype, data_num_items, data_has_solution, data_has_image)
STUDIO_ROWS = [
    (1, "course", "2020", "/1", None, None, "false", None, None, T0, False, None, None, None, None, None, None, None),
    (2, "chapter", "c1", "/c1", "2020", None, "false", None, None, T0, False, None, None, None, None, None, None, None),
    (3, "sequential", "s1", "/c1/s1", "c1", C1, "false", None, None, T0, False, None, None, None, None, None, None, None),
    (4, "vertical", "v1", "/c1/s1/1", "s1", C1, "false", None, None, T0, False, None, None, None, None, None, None, None),
    (5, "video", "vid1", "/c1/s1/1/1", "v1", C1, "false", None, None, T0, False, None, "YT1", None, None, None, None, None),
    (6, "html", "h1", "/c1/s1/1/2", "v1", C1, "false", None, None, T0, False, None, "EMB1", None, None, None, None, None),
    (
        7,
        "problem",
        "p_mc",
        "/c1/s1/1/3",
        "v1",
        C1,
        "false",
        None,
        None,
        T0,
        False,
        None,
        None,
        2.0,
        "multiplechoiceresponse",
        1,
        True,
        False,
    ),
    (8, "sequential", "s2", "/c1/s2", "c1", C1, "true", "Homework", S2, T1, False, None, None, None, None, None, None, None),
    (9, "vertical", "v2", "/c1/s2/1", "s2", C1, "true", "Homework", S2, T1, False, None, None, None, None, None, None, None),
    (
        10,
        "problem",
        "p_choice",
        "/c1/s2/1/1",
        "v2",
        C1,
        "true",
        "Homework",
        S2,
        T1,
        False,
        None,
        None,
        None,
        "choiceresponse",
        1,
        False,
        False,
    ),
    (
        11,
        "problem",
        "p_num",
        "/c1/s2/1/2",
        "v2",
        C1,
        "true",
        "Homework",
        S2,
        T1,
        False,
        None,
        None,
        None,
        "numericalresponse",
        1,
        False,
        False,
    ),
    (
        12,
        "problem",
        "p_opt",
        "/c1/s2/1/3",
        "v2",
        C1,
        "true",
        "Homework",
        S2,
        T1,
        False,
        None,
        None,
        None,
        "optionresponse",
        1,
        False,
        False,
    ),
    (
        13,
        "problem",
        "p_str",
        "/c1/s2/1/4",
        "v2",
        C1,
        "true",
        "Homework",
        S2,
        T1,
        False,
        None,
        None,
        None,
        "stringresponse",
        1,
        False,
        False,
    ),
    (14, "vertical", "v3", "/c1/s2/2", "s2", C1, "true", "Homework", S2, T1, False, None, None, None, None, None, None, None),
    (
        15,
        "problem",
        "p_formula",
        "/c1/s2/2/1",
        "v3",
        C1,
        "true",
        "Homework",
        S2,
        T1,
        False,
        None,
        None,
        None,
        "formularesponse",
        1,
        False,
        False,
    ),
    (
        16,
        "problem",
        "p_custom",
        "/c1/s2/2/2",
        "v3",
        C1,
        "true",
        "Homework",
        S2,
        T1,
        False,
        None,
        None,
        None,
        "customresponse",
        1,
        False,
        True,
    ),
    (17, "problem", "p_mixed", "/c1/s2/2/3", "v3", C1, "true", "Homework", S2, T1, False, None, None, None, "mixed", 2, False, False),
    (18, "problem", "p_none", "/c1/s2/2/4", "v3", C1, "true", "Homework", S2, T1, False, None, None, None, None, None, False, False),
    (19, "split_test", "ab", "/c1/s2/2/5", "v3", C1, "true", "Homework", S2, T1, False, None, None, None, None, None, None, None),
    (20, "vertical", "ga", "/c1/s2/2/5/1", "ab", C1, "true", "Homework", S2, T1, True, "ab", None, None, None, None, None, None),
    (21, "html", "hga", "/c1/s2/2/5/1/1", "ga", C1, "true", "Homework", S2, T1, True, "ab", None, None, None, None, None, None),
    (22, "vertical", "gb", "/c1/s2/2/5/2", "ab", C1, "true", "Homework", S2, T1, True, "ab", None, None, None, None, None, None),
    (
        23,
        "problem",
        "p_b",
        "/c1/s2/2/5/2/1",
        "gb",
        C1,
        "true",
        "Homework",
        S2,
        T1,
        True,
        "ab",
        None,
        None,
        "optionresponse",
        1,
        False,
        False,
    ),
    (24, "chapter", "hid", "/hid", "2020", None, "false", None, None, T0, False, None, None, None, None, None, None, None),
]
COLUMNS = (
    '"index", category, url_name, path, parent, chapter_mid, graded, gformat, due, start, is_split, split_url_name, '
    "data_ytid, data_weight, data_itype, data_num_items, data_has_solution, data_has_image"
)

# An old export: the whole course inline in course.xml, no policy file; two units share a url_name.
OLD_COURSE = (
    '<course org="T" course="AX2" url_name="2013" display_name="Old">'
    '<chapter url_name="w1" display_name="W1"><sequential url_name="q1" format="Quiz" graded="true">'
    '<vertical url_name="u1"><problem url_name="pb1"><stringresponse answer="x"><textline/></stringresponse></problem>'
    '<video url_name="vv" youtube_id_1_0="OLDYT"/></vertical>'
    '<vertical url_name="u2"><html url_name="hh"><p>hello</p></html></vertical></sequential></chapter>'
    '<chapter url_name="w2" display_name="W2"><sequential url_name="q2"><vertical url_name="u1">'
    '<problem url_name="pb2"><numericalresponse answer="1"/><numericalresponse answer="2"/></problem>'
    "</vertical></sequential></chapter></course>"
)
W1, W2 = "T/AX2/chapter/w1", "T/AX2/chapter/w2"
# (index, category, url_name, module_id, path, parent, chapter_mid, graded, gformat, data_ytid, data_itype, data_num_items)
OLD_ROWS = [
    (1, "course", "2013", "T/AX2/course/2013", "/1", None, None, "false", None, None, None, None),
    (2, "chapter", "w1", "T/AX2/chapter/w1", "/w1", "2013", None, "false", None, None, None, None),
    (3, "sequential", "q1", "T/AX2/sequential/q1", "/w1/q1", "w1", W1, "true", "Quiz", None, None, None),
    (4, "vertical", "u1_vertical", "T/AX2/vertical/u1", "/w1/q1/1", "q1", W1, "true", "Quiz", None, None, None),
    (5, "problem", "pb1", "T/AX2/problem/pb1", "/w1/q1/1/1", "u1", W1, "true", "Quiz", None, "stringresponse", 1),
    (6, "video", "vv", "T/AX2/video/vv", "/w1/q1/1/2", "u1", W1, "true", "Quiz", "OLDYT", None, None),
    (7, "vertical", "u2", "T/AX2/vertical/u2", "/w1/q1/2", "q1", W1, "true", "Quiz", None, None, None),
    (8, "html", "hh", "T/AX2/html/hh", "/w1/q1/2/1", "u2", W1, "true", "Quiz", None, None, None),
    (9, "chapter", "w2", "T/AX2/chapter/w2", "/w2", "2013", None, "false", None, None, None, None),
    (10, "sequential", "q2", "T/AX2/sequential/q2", "/w2/q2", "w2", W2, "false", None, None, None, None),
    (11, "vertical", "u1_vertical", "T/AX2/vertical/u1", "/w2/q2/1", "q2", W2, "false", None, None, None, None),
    (12, "problem", "pb2", "T/AX2/problem/pb2", "/w2/q2/1/1", "u1", W2, "false", None, None, "numericalresponse", 2),
]


def _tarball(path: Path, files: dict[str, str], top: str) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _structure_json() -> dict[str, Any]:
    """A course_structure file alone (no OLX): course > chapter > sequential > vertical > problem, video, split_test."""

    def key(category: str, name: str) -> str:
        return f"block-v1:T+AX3+R1+type@{category}+block@{name}"

    return {
        key("course", "course"): {"category": "course", "metadata": {"display_name": "JSON"}, "children": [key("chapter", "k1")]},
        key("chapter", "k1"): {"category": "chapter", "metadata": {"display_name": "K1"}, "children": [key("sequential", "ks")]},
        key("sequential", "ks"): {
            "category": "sequential",
            "metadata": {"graded": True, "format": "Exam", "due": "2021-05-01T12:00:00Z"},
            "children": [key("vertical", "kv")],
        },
        key("vertical", "kv"): {
            "category": "vertical",
            "metadata": {},
            "children": [key("problem", "kp"), key("video", "kvid"), key("split_test", "ksp")],
        },
        key("problem", "kp"): {"category": "problem", "metadata": {"weight": 3.0}, "children": []},
        key("video", "kvid"): {"category": "video", "metadata": {"youtube_id_1_0": "JSONYT"}, "children": []},
        key("split_test", "ksp"): {
            "category": "split_test",
            "metadata": {"user_partition_id": 9, "group_id_to_child": {"0": key("vertical", "kg")}},
            "children": [key("vertical", "kg")],
        },
        key("vertical", "kg"): {"category": "vertical", "metadata": {}, "children": []},
    }


def test_course_axis_of_a_studio_tarball_an_old_inline_folder_and_a_structure_file(
    data_path: Path, settings_for: Any, backend: dict[str, Any]
) -> None:
    package = data_path / "database_state" / "latest"
    _tarball(package / "T-AX1-2020-course-prod-analytics.xml.tar.gz", STUDIO, "ax1")
    (package / "T-AX2-2013" / "export").mkdir(parents=True)
    (package / "T-AX2-2013" / "export" / "course.xml").write_text(OLD_COURSE)
    (package / "T-AX3-R1-course_structure-prod-analytics.json").write_text(json.dumps(_structure_json()))
    settings = settings_for(data_path, **backend)
    ingest(settings, "CourseStructure", "CourseAxis")

    got = query_rows(settings, f"SELECT {COLUMNS} FROM course_axis WHERE course_key = 'T+AX1+2020' ORDER BY \"index\"")
    assert got == STUDIO_ROWS
    # the names, module ids and the split test's own data
    assert query_rows(settings, "SELECT name FROM course_axis WHERE course_key = 'T+AX1+2020' AND url_name IN ('s2', 'v2') ORDER BY 1") == [
        ("HW 1",),
        ("v2",),  # no display_name: the url_name
    ]
    assert query_rows(settings, "SELECT module_id, course_id FROM course_axis WHERE url_name = 'p_b'") == [
        ("T/AX1/problem/p_b", "T/AX1/2020")
    ]
    assert query_rows(settings, "SELECT data_group_id_to_child, data_user_partition_id FROM course_axis WHERE url_name = 'ab'") == [
        (GROUPS, "7")
    ]
    # hand counts: 24 rows; 11 problems written, 10 rows (hp is under the hidden chapter); 7 verticals written, 5 rows
    # (hv is hidden, dv a draft); no discussion, no wiki
    counts = dict(query_rows(settings, "SELECT category, count(*) FROM course_axis WHERE course_key = 'T+AX1+2020' GROUP BY 1"))
    assert counts == {"course": 1, "chapter": 2, "sequential": 2, "vertical": 5, "video": 1, "html": 2, "problem": 10, "split_test": 1}

    old = query_rows(
        settings,
        'SELECT "index", category, url_name, module_id, path, parent, chapter_mid, graded, gformat, data_ytid, data_itype, data_num_items '
        "FROM course_axis WHERE course_key = 'T+AX2+2013' ORDER BY \"index\"",
    )
    assert old == OLD_ROWS

    # no OLX: what only the markup tells is NULL
    from_json = query_rows(
        settings,
        'SELECT "index", category, url_name, path, parent, graded, gformat, due, is_split, data_ytid, data_weight, '
        "data_user_partition_id, data_itype, data_num_items, data_has_solution, data_has_image "
        "FROM course_axis WHERE course_key = 'T+AX3+R1' ORDER BY \"index\"",
    )
    due = datetime(2021, 5, 1, 12)
    assert from_json == [
        (1, "course", "R1", "/1", None, "false", None, None, False, None, None, None, None, None, None, None),
        (2, "chapter", "k1", "/k1", "R1", "false", None, None, False, None, None, None, None, None, None, None),
        (3, "sequential", "ks", "/k1/ks", "k1", "true", "Exam", due, False, None, None, None, None, None, None, None),
        (4, "vertical", "kv", "/k1/ks/1", "ks", "true", "Exam", due, False, None, None, None, None, None, None, None),
        (5, "problem", "kp", "/k1/ks/1/1", "kv", "true", "Exam", due, False, None, 3.0, None, None, None, None, None),
        (6, "video", "kvid", "/k1/ks/1/2", "kv", "true", "Exam", due, False, "JSONYT", None, None, None, None, None, None),
        (7, "split_test", "ksp", "/k1/ks/1/3", "kv", "true", "Exam", due, False, None, None, "9", None, None, None, None),
        (8, "vertical", "kg", "/k1/ks/1/3/1", "ksp", "true", "Exam", due, True, None, None, None, None, None, None, None),
    ]

    # the grading policy: one row per grader, the cut-offs one per label
    assert query_rows(
        settings,
        "SELECT course_id, grader_index, assignment_type, name, fraction_of_overall_grade, short_label, min_count, drop_count "
        "FROM grading_policy ORDER BY course_key, grader_index",
    ) == [
        ("T/AX1/2020", 1, "Homework", "Homework", 0.6, "HW", 2, 1),
        ("T/AX1/2020", 2, "Final", "Final Exam", 0.4, None, None, None),
    ]
    assert query_rows(settings, "SELECT course_key, label, cutoff FROM grading_policy_cutoffs ORDER BY cutoff") == [
        ("T+AX1+2020", "Pass", 0.5),
        ("T+AX1+2020", "A", 0.85),
    ]

    # a second ingest of the same files recomputes nothing
    runs = "SELECT count(*) FROM service_runs WHERE service = 'CourseAxis'"
    before = query_rows(settings, runs)
    ingest(settings)
    assert query_rows(settings, runs) == before


def test_a_warehouse_of_course_structure_rules_1_gets_the_new_columns(data_path: Path, settings_for: Any) -> None:
    """An older warehouse's course_blocks lacks the course-axis columns: set-up adds them, empty, and the
    axis is filled once the export is ingested again (docs/forums-and-course-structure.md)."""
    from optimus.pipeline import open_warehouse
    from optimus.services.course_structure import _SQL, BLOCKS

    settings = settings_for(data_path)
    _tarball(data_path / "database_state" / "latest" / "T-AX1-2020-course-prod-analytics.xml.tar.gz", STUDIO, "ax1")
    wh = open_warehouse(settings)
    try:
        old = [c for c in BLOCKS if c not in ("draft", "path", "release_date", "response_types", "split_url_name")]
        wh.execute(f"CREATE TABLE course_blocks ({', '.join(f'{wh.quote(c)} {_SQL[BLOCKS[c]]}' for c in old)})")
    finally:
        wh.close()
    ingest(settings, "CourseStructure", "CourseAxis")
    assert query_rows(settings, "SELECT count(*) FROM course_axis WHERE course_key = 'T+AX1+2020'") == [(24,)]


def test_the_sample_fills_the_axis_as_its_manifest_says(tmp_path: Path) -> None:
    """The sample generator's own counts (manifest `course_axis`) against the tables: the problems of each
    response type, the split test and its arms, the graded subsections with a due date, the grading policy."""
    from conftest import ingest_sample

    settings = ingest_sample(tmp_path)
    manifest = json.loads((tmp_path / "data" / "sample_manifest.json").read_text())
    for course in manifest["courses"]:
        facts = manifest["course_axis"][course["course_id"]]
        key = course["old_id"].replace("/", "+")
        types = dict(
            query_rows(
                settings, "SELECT data_itype, count(*) FROM course_axis WHERE course_key = ? AND category = 'problem' GROUP BY 1", [key]
            )
        )
        assert types == facts["problem_types"]
        split = query_rows(
            settings,
            "SELECT url_name FROM course_axis WHERE course_key = ? AND split_url_name = ? AND category = 'vertical' ORDER BY path",
            [key, facts["split_test"]],
        )
        assert [u for (u,) in split] == facts["split_children"]
        assert query_rows(
            settings, "SELECT count(*) FROM course_axis WHERE course_key = ? AND data_ytid = ?", [key, facts["split_youtube_id"]]
        ) == [(1,)]
        due = query_rows(
            settings, "SELECT count(*) FROM course_axis WHERE course_key = ? AND category = 'sequential' AND due IS NOT NULL", [key]
        )
        assert due == [(facts["graded_with_due"],)]
        assert query_rows(settings, "SELECT count(*) FROM grading_policy WHERE course_key = ?", [key]) == [(2,)]
        cutoffs = query_rows(settings, "SELECT min(cutoff) FROM grading_policy_cutoffs WHERE course_key = ?", [key])
        assert cutoffs == [(course["pass_mark"],)]
