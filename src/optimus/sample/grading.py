"""What the sample's course-axis and grade tables need (issue 18): due dates on graded subsections,
problems of several response types (with solutions and images), one split test per course, a grading
policy of two graders and three cut-offs, and a dump of persistent subsection grades.

Kept apart from course.py and tables.py: `add_course_features` changes a course's tree only after its
events are written (events never name these blocks), and ids and values come from hashes, not from the
generator's random streams, so nothing else in the sample moves.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

from optimus.sample.course import Block, Course, hex_id
from optimus.sample.people import Learner
from optimus.sample.tables import TsvFile

RESPONSES = (
    "multiplechoiceresponse",
    "choiceresponse",
    "numericalresponse",
    "optionresponse",
    "stringresponse",
    "formularesponse",
    "customresponse",
)
SUBSECTION_COLUMNS = (
    "id user_id course_id usage_key course_version subtree_edited_timestamp earned_all possible_all "
    "earned_graded possible_graded first_attempted created modified visible_blocks_hash"
)
_BODY = {
    "multiplechoiceresponse": '<choicegroup type="MultipleChoice"><choice correct="true">B</choice><choice correct="false">A</choice></choicegroup>',
    "choiceresponse": '<checkboxgroup><choice correct="true">x</choice><choice correct="false">y</choice></checkboxgroup>',
    "numericalresponse": '<responseparam type="tolerance" default="5%"/><formulaequationinput/>',
    "optionresponse": "<optioninput options=\"('yes','no')\" correct=\"yes\"/>",
    "stringresponse": '<textline size="20"/>',
    "formularesponse": '<responseparam type="tolerance" default="0.01"/><textline size="40"/>',
    "customresponse": '<textline size="10"/>',
}


def _unit(*parts: object) -> float:
    """A stable number in [0, 1) from its parts."""
    return int(hashlib.sha1(":".join(map(str, parts)).encode()).hexdigest()[:8], 16) / 0x100000000


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def problem_markup(k: int) -> tuple[str, list[str], bool, bool]:
    """The k-th problem's body (inside <problem>): (markup, response tags, has a long solution, has an image)."""
    types = [RESPONSES[k % len(RESPONSES)]]
    if k % 8 == 7:  # now and then two different responses: itype `mixed`
        types.append(RESPONSES[(k + 3) % len(RESPONSES)])
    solution, image = k % 3 == 0, k % 5 == 0
    parts: list[str] = []
    if image:
        parts.append('  <p>Look at the figure: <img src="/static/figure.png" alt="figure"/></p>')
    for t in types:
        parts.append(f"  <{t}>\n    <p>Answer this part.</p>\n    {_BODY[t]}\n  </{t}>")
    if solution:
        parts.append(
            '  <solution>\n    <div class="detailed-solution"><p>Explanation</p>'
            "<p>Work through each step of the derivation; the answer follows from the definition.</p></div>\n  </solution>"
        )
    return "\n".join(parts) + "\n", types, solution, image


def add_course_features(course: Course, key: str) -> dict:
    """Give the course due dates, varied problems and a split test; return its manifest facts."""
    due_count = 0
    for ci, chapter in enumerate(course.root.children):
        for seq in chapter.children:
            if seq.attrs.get("graded") == "true":
                seq.attrs["due"] = _iso(course.start + dt.timedelta(days=7 * (ci + 1), hours=23, minutes=59))
                due_count += 1
    types: dict[str, int] = {}
    k = 0
    for block, _parent in course.walk():
        if block.category == "problem":
            block.markup, found, _sol, _img = problem_markup(k)
            name = found[0] if len(set(found)) == 1 else "mixed"
            types[name] = types.get(name, 0) + 1
            k += 1
    # one split test (A/B content experiment) at the end of the first published chapter's first lesson
    first = next(c for c in course.root.children if c.url_name == course.chapters[0].url_name)
    arms = [
        Block(
            "vertical",
            hex_id(key, "split-arm", g),
            f"Group {g} unit",
            children=[Block("html", hex_id(key, "split-html", g), f"Arm {g} text")],
        )
        for g in (0, 1)
    ]
    arms[0].children[
        0
    ].markup = '<p>Watch this first:</p><iframe width="560" height="315" src="https://www.youtube.com/embed/SpLiT0vid01?rel=0"></iframe>\n'
    mapping = {str(g): course.usage_key("vertical", arm.url_name) for g, arm in enumerate(arms)}
    split = Block(
        "split_test",
        hex_id(key, "split"),
        "Content experiment",
        {"user_partition_id": "50", "group_id_to_child": json.dumps(mapping, sort_keys=True)},
        arms,
    )
    first.children[0].children.append(Block("vertical", hex_id(key, "split-unit"), "Experiment unit", children=[split]))
    return {
        "graded_with_due": due_count,
        "split_test": split.url_name,
        "split_children": [a.url_name for a in arms],
        "split_youtube_id": "SpLiT0vid01",
        "problem_types": dict(sorted(types.items())),
    }


def write_subsection_grades(
    folder: Path, course: Course, ci: int, learners: list[Learner], active: dict[int, list[int]]
) -> tuple[str, int]:
    """grades_persistentsubsectiongrade: one row per active enrolled learner and graded subsection of the
    published chapters, its scores the subsection's problem weights times a stable fraction."""
    name = f"{course.prefix}-grades_persistentsubsectiongrade-prod-analytics.sql"
    out = TsvFile(folder / name, SUBSECTION_COLUMNS)
    enrolled = {p.user_id for p in learners for e in p.enrollments if e.course == ci}
    published = {c.url_name for c in course.chapters}
    graded = [
        (seq, sum(float(b.attrs.get("weight", "1")) for b, _ in _walk(seq) if b.category == "problem"))
        for chapter in course.root.children
        if chapter.url_name in published
        for seq in chapter.children
        if seq.attrs.get("graded") == "true"
    ]
    at = dt.datetime.combine(course.start.date(), dt.time(10, 0))
    row_id = ci * 1_000_000
    for uid in sorted(u for u in active if u in enrolled):
        for seq, possible in graded:
            share = _unit(course.prefix, uid, seq.url_name)
            if share < 0.2:
                continue  # not attempted: edX keeps no row
            row_id += 1
            earned = round(possible * share, 2)
            first = at + dt.timedelta(hours=int(share * 100))
            out.row(
                [
                    row_id,
                    uid,
                    course.course_id,
                    course.usage_key("sequential", seq.url_name),
                    "v1",
                    first,
                    earned,
                    possible,
                    earned,
                    possible,
                    first if share >= 0.3 else None,
                    first,
                    first + dt.timedelta(days=1, microseconds=uid % 1000),
                    hashlib.sha1(seq.url_name.encode()).hexdigest()[:28],
                ]
            )
    return name, out.close()


def _walk(block: Block) -> list[tuple[Block, Block | None]]:
    found: list[tuple[Block, Block | None]] = [(block, None)]
    for child in block.children:
        found += _walk(child)
    return found
