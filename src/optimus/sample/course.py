"""Sample courses: the block tree, the OLX export tarball and course_structure JSON.

One `Course` object is the single source of truth for a course's ids, chapters, videos and
problems, so the events, tables and exports that refer to them always agree.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import json
import random
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import quoteattr

SUBJECTS = [
    ("BIOIMG", "Biomedical Imaging"),
    ("HYPERS", "Hypersonics"),
    ("TROPIC", "Tropical Coastal Ecosystems"),
    ("THINK", "Critical Thinking"),
    ("ENERGY", "Energy Transitions"),
    ("WRITE", "Academic Writing"),
    ("SPORT", "Sports Science"),
    ("DATA", "Data Analysis for Decision Making"),
    ("QUANT", "Quantum Mechanics"),
    ("PSYC", "The Psychology of Learning"),
]
CHAPTER_TITLES = [
    "Welcome",
    "Foundations",
    "Methods",
    "Case Studies",
    "Applications",
    "Advanced Topics",
    "Assessment",
    "Wrap-up",
    "Extension",
    "Review",
]


def hex_id(*parts: object) -> str:
    """A stable 32-hex block id, like the ids Studio assigns."""
    return hashlib.md5(":".join(map(str, parts)).encode()).hexdigest()


@dataclass
class Block:
    """One OLX element: a container (course, chapter, ...) or a leaf (video, problem, ...)."""

    category: str
    url_name: str
    display_name: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Block] = field(default_factory=list)
    markup: str | None = None  # a problem's whole XML, an html block's text (sample/grading.py); None: the default


@dataclass
class Chapter:
    """What the event generator needs to know about one published chapter."""

    url_name: str
    sequentials: list[str]
    videos: list[tuple[str, str, str]]  # (url_name, youtube id, display name)
    problems: list[tuple[str, str]]  # (url_name, display name)
    units: list[list[str]] = field(default_factory=list)  # per sequential, its verticals' url_names


@dataclass
class Course:
    """A sample course in one of the two id forms."""

    index: int
    org: str
    code: str
    run: str
    new_form: bool
    display_name: str
    start: dt.datetime
    end: dt.datetime
    enrollment_start: dt.datetime
    enrollment_end: dt.datetime
    pass_mark: float
    root: Block
    chapters: list[Chapter]  # published chapters only
    all_chapter_ids: list[str]
    staff_chapter: str | None
    draft_vertical: Block | None

    @property
    def course_id(self) -> str:
        """The id as the course's own events and tables spell it."""
        return self.new_id if self.new_form else self.old_id

    @property
    def old_id(self) -> str:
        return f"{self.org}/{self.code}/{self.run}"

    @property
    def new_id(self) -> str:
        return f"course-v1:{self.org}+{self.code}+{self.run}"

    @property
    def prefix(self) -> str:
        """File-name form shared by both id forms."""
        return f"{self.org}-{self.code}-{self.run}"

    def usage_key(self, category: str, url_name: str) -> str:
        if self.new_form:
            return f"block-v1:{self.org}+{self.code}+{self.run}+type@{category}+block@{url_name}"
        return f"i4x://{self.org}/{self.code}/{category}/{url_name}"

    def old_video_id(self, url_name: str) -> str:
        """Browser video events name a video this way (dash-joined i4x, or bare hash in new courses)."""
        return f"i4x-{self.org}-{self.code}-video-{url_name}" if not self.new_form else url_name

    def input_id(self, url_name: str) -> str:
        """The input-name stem used in problem_check query strings."""
        if self.new_form:
            return url_name
        return f"i4x-{self.org}-{self.code}-problem-{url_name}"

    def walk(self) -> Iterator[tuple[Block, Block | None]]:
        """Yield (block, parent) over the whole published tree, depth first."""
        stack: list[tuple[Block, Block | None]] = [(self.root, None)]
        while stack:
            block, parent = stack.pop()
            yield block, parent
            stack.extend((c, block) for c in reversed(block.children))

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for block, _ in self.walk():
            out[block.category] = out.get(block.category, 0) + 1
        return out


def make_course(index: int, org: str, start: dt.date, days: int, seed: int) -> Course:
    """Build course number `index` (0-based); even indexes use the old id form."""
    rng = random.Random(f"{seed}:course:{index}")
    subj, title = SUBJECTS[index % len(SUBJECTS)]
    code = f"{subj}{101 + 100 * (index // len(SUBJECTS))}x"
    new_form = index % 2 == 1
    run = f"{1 + index % 3}T{start.year}" if new_form else f"{start.year}_{1 + index % 3}"
    c_start = dt.datetime.combine(start - dt.timedelta(days=7 + index), dt.time(0, 0))
    c_end = dt.datetime.combine(start + dt.timedelta(days=days + 60), dt.time(23, 59))
    n_chapters = rng.randint(5, 7)
    key = f"{seed}:{index}"
    chapters: list[Chapter] = []
    root = Block("course", run, title)
    staff_chapter = None
    draft = None
    for ci in range(n_chapters):
        ch_id = hex_id(key, "chapter", ci)
        ch = Block("chapter", ch_id, f"Week {ci}: {CHAPTER_TITLES[ci % len(CHAPTER_TITLES)]}")
        # The first (old-form) course hides its last chapter from learners, as staff often do.
        hidden = index == 0 and ci == n_chapters - 1
        if hidden:
            ch.attrs["visible_to_staff_only"] = "true"
            staff_chapter = ch_id
        info = Chapter(ch_id, [], [], [])
        for si in range(rng.randint(2, 3)):
            seq_id = hex_id(key, "seq", ci, si)
            graded = si == 1 and ci > 0
            seq = Block("sequential", seq_id, f"Lesson {ci}.{si + 1}")
            if graded:
                seq.attrs.update(graded="true", format="Homework")
            info.sequentials.append(seq_id)
            info.units.append([])
            for vi in range(rng.randint(1, 3)):
                vert = Block("vertical", hex_id(key, "vert", ci, si, vi), f"Unit {ci}.{si + 1}.{vi + 1}")
                info.units[-1].append(vert.url_name)
                for li, cat in enumerate(rng.sample(["video", "html", "problem", "problem", "discussion"], 3)):
                    leaf_id = hex_id(key, cat, ci, si, vi, li)
                    leaf = Block(cat, leaf_id, f"{cat.title()} {ci}.{si + 1}.{vi + 1}.{li + 1}")
                    if cat == "video":
                        yt = hashlib.sha1(leaf_id.encode()).hexdigest()[:11]
                        leaf.attrs["youtube_id_1_0"] = yt
                        leaf.attrs["youtube"] = f"1.00:{yt}"
                        info.videos.append((leaf_id, yt, leaf.display_name))
                    elif cat == "problem":
                        leaf.attrs["weight"] = str(rng.choice([1, 2, 5])) if graded else "0"
                        leaf.attrs["max_attempts"] = str(rng.choice([1, 2, 3]))
                        leaf.attrs["showanswer"] = "finished"
                        info.problems.append((leaf_id, leaf.display_name))
                    elif cat == "discussion":
                        leaf.attrs["discussion_id"] = hex_id(key, "disc", ci, si, vi)
                        leaf.attrs["discussion_category"] = ch.display_name
                        leaf.attrs["discussion_target"] = f"Discuss {ci}.{si + 1}"
                    vert.children.append(leaf)
                seq.children.append(vert)
            ch.children.append(seq)
        # every chapter needs a video and a problem for the event shapes to be exercised
        if not info.videos:
            vid = hex_id(key, "video-extra", ci)
            yt = hashlib.sha1(vid.encode()).hexdigest()[:11]
            ch.children[0].children[0].children.append(Block("video", vid, f"Video {ci}", {"youtube_id_1_0": yt, "youtube": f"1.00:{yt}"}))
            info.videos.append((vid, yt, f"Video {ci}"))
        if not info.problems:
            pid = hex_id(key, "problem-extra", ci)
            ch.children[0].children[0].children.append(
                Block("problem", pid, f"Problem {ci}", {"weight": "0", "max_attempts": "1", "showanswer": "finished"})
            )
            info.problems.append((pid, f"Problem {ci}"))
        root.children.append(ch)
        if not hidden:
            chapters.append(info)
    if index == 0:
        draft = Block(
            "vertical",
            hex_id(key, "draft"),
            "Draft unit (unpublished)",
            {"parent_sequential_url": f"i4x://{org}/{code}/sequential/{chapters[0].sequentials[0]}", "index_in_children_list": "1"},
            [Block("html", hex_id(key, "draft-html"), "Draft text")],
        )
    return Course(
        index,
        org,
        code,
        run,
        new_form,
        title,
        c_start,
        c_end,
        c_start - dt.timedelta(days=30),
        c_end - dt.timedelta(days=14),
        [0.5, 0.6, 0.55][index % 3],
        root,
        chapters,
        [c.url_name for c in root.children],
        staff_chapter,
        draft,
    )


def _iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def _xml(block: Block, inline_leaf: bool = False) -> str:
    """One OLX file for a block: its attributes, children referenced by url_name."""
    attrs = "".join(f" {k}={quoteattr(v)}" for k, v in [("display_name", block.display_name), *sorted(block.attrs.items())])
    if not block.children:
        if block.category == "problem" and block.markup:
            return f"<problem{attrs}>\n{block.markup}</problem>\n"
        if block.category == "problem":
            return (
                f"<problem{attrs}>\n  <multiplechoiceresponse>\n    <p>Which option is right?</p>\n"
                '    <choicegroup type="MultipleChoice">\n'
                '      <choice correct="false">A</choice>\n      <choice correct="true">B</choice>\n'
                "    </choicegroup>\n  </multiplechoiceresponse>\n</problem>\n"
            )
        if block.category == "html":
            return f"<html{attrs} filename={quoteattr(block.url_name)}/>\n"
        return f"<{block.category}{attrs}/>\n"
    kids = "".join(f'  <{c.category} url_name="{c.url_name}"/>\n' for c in block.children)
    return f"<{block.category}{attrs}>\n{kids}</{block.category}>\n"


def olx_files(course: Course) -> dict[str, bytes]:
    """Every file of the OLX export, keyed by path inside the top folder."""
    files: dict[str, bytes] = {}
    files["course.xml"] = (f'<course url_name="{course.run}" org="{course.org}" course="{course.code}"/>\n').encode()
    for block, _ in course.walk():
        name = course.run if block.category == "course" else block.url_name
        files[f"{block.category}/{name}.xml"] = _xml(block).encode()
        if block.category == "html":
            files[f"html/{block.url_name}.html"] = (block.markup or f"<p>{block.display_name}: reading notes.</p>\n").encode()
    if course.draft_vertical is not None:
        d = course.draft_vertical
        files[f"drafts/vertical/{d.url_name}.xml"] = _xml(d).encode()
        for c in d.children:
            files[f"drafts/html/{c.url_name}.xml"] = _xml(c).encode()
    policy = {
        f"course/{course.run}": {
            "start": _iso(course.start),
            "end": _iso(course.end),
            "display_name": course.display_name,
            "enrollment_start": _iso(course.enrollment_start),
            "enrollment_end": _iso(course.enrollment_end),
            "discussion_topics": {"General": {"id": "course"}},
            "tabs": [{"type": "courseware"}, {"type": "progress"}],
        }
    }
    files[f"policies/{course.run}/policy.json"] = json.dumps(policy, indent=4, sort_keys=True).encode()
    n_hw = sum(1 for b, _ in course.walk() if b.attrs.get("format") == "Homework")
    grading = grading_policy(course, n_hw)
    files[f"policies/{course.run}/grading_policy.json"] = json.dumps(grading, indent=4, sort_keys=True).encode()
    return files


def grading_policy(course: Course, n_homework: int) -> dict:
    """grading_policy.json: homework and a final exam; cut-offs A, B and the pass mark (the lowest)."""
    return {
        "GRADER": [
            {"type": "Homework", "min_count": n_homework, "drop_count": 1, "short_label": "HW", "weight": 0.75},
            {"type": "Exam", "name": "Final Exam", "min_count": 1, "drop_count": 0, "short_label": "Final", "weight": 0.25},
        ],
        "GRADE_CUTOFFS": {"A": 0.9, "B": round((0.9 + course.pass_mark) / 2, 2), "Pass": course.pass_mark},
    }


def write_olx(course: Course, path: Path, mtime: int) -> int:
    """Write the export tarball reproducibly (fixed mtimes, owners and gzip header); return member count."""
    top = course.prefix
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        dirs: set[str] = set()
        members = sorted(olx_files(course).items())
        for name, data in members:
            parts = f"{top}/{name}".split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    ti = tarfile.TarInfo(d)
                    ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, mtime
                    tar.addfile(ti)
            ti = tarfile.TarInfo(f"{top}/{name}")
            ti.size, ti.mode, ti.mtime = len(data), 0o644, mtime
            tar.addfile(ti, io.BytesIO(data))
    with open(path, "wb") as fh, gzip.GzipFile(filename="", mode="wb", fileobj=fh, mtime=0) as gz:
        gz.write(buf.getvalue())
    return len(members)


def course_structure(course: Course) -> dict[str, dict]:
    """The flat `{block key: {category, children, metadata}}` JSON of the published course."""
    out: dict[str, dict] = {}
    for block, _ in course.walk():
        name = course.run if block.category == "course" else block.url_name
        if block.category == "course" and not course.new_form:
            key = f"i4x://{course.org}/{course.code}/course/{course.run}"
        else:
            key = course.usage_key(block.category, name)
        meta: dict[str, object] = {"display_name": block.display_name}
        for k, v in block.attrs.items():
            meta[k] = True if v == "true" else (float(v) if k == "weight" else v)
        if block.category == "course":
            meta.update(start=_iso(course.start), end=_iso(course.end))
        out[key] = {
            "category": block.category,
            "metadata": meta,
            "children": [course.usage_key(c.category, c.url_name) for c in block.children],
        }
    return out
