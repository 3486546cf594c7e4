"""CourseStructure: course exports into `courses`, `course_blocks` and the original's www JSON.

Reads course OLX exports (an extracted folder, or a `…-course-{site}-analytics.xml.tar.gz`
extracted safely into a temporary folder) and `…-course_structure-{site}-analytics.json` files,
parsed by formats/olx.py. Writes one `courses` row and the `course_blocks` rows of each course
(replaced together, in the file's transaction), and `{www}/course_structure/{org}-{course}-{run}.json`
(the nested JSON existing readers use, REFERENCE §1.3). Needs nothing.

A newer package replaces a course; an older one never does. Within one package the OLX export is
preferred for blocks (it has drafts, grading and enrolment dates); a course_structure file then
only fills what the export cannot tell, such as which course id form the course uses.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa

from optimus import archive, courses, discovery, paths
from optimus.errors import IngestError, UnsafeName
from optimus.formats import olx
from optimus.ledger import LedgerFile
from optimus.services.base import FileResult, RunContext, Service, register
from optimus.warehouse.base import Warehouse

COURSES = {
    "course_key": "VARCHAR",
    "course_id": "VARCHAR",
    "course_id_old": "VARCHAR",
    "course_id_new": "VARCHAR",
    "display_name": "VARCHAR",
    "start_date": "TIMESTAMP",
    "end_date": "TIMESTAMP",
    "enrollment_start": "TIMESTAMP",
    "enrollment_end": "TIMESTAMP",
    "pass_mark": "DOUBLE PRECISION",
    "chapters": "INTEGER",
    "published_chapters": "INTEGER",
    "package_date": "DATE",
    "source": "VARCHAR",
    "file_id": "BIGINT",
}
BLOCKS: dict[str, pa.DataType] = {
    "course_key": pa.string(),
    "position": pa.int32(),
    "block_id": pa.string(),
    "block_id_old": pa.string(),
    "block_id_new": pa.string(),
    "category": pa.string(),
    "display_name": pa.string(),
    "url_name": pa.string(),
    "parent_url_name": pa.string(),
    "chapter_index": pa.int32(),
    "sequential_index": pa.int32(),
    "vertical_index": pa.int32(),
    "graded": pa.bool_(),
    "format": pa.string(),
    "weight": pa.float64(),
    "start_date": pa.timestamp("us"),
    "due_date": pa.timestamp("us"),
    "published": pa.bool_(),
    "youtube_id": pa.string(),
    "discussion_id": pa.string(),
    "discussion_category": pa.string(),
    # rules version 2 (issue 18): what edx2bigquery's course_axis reads of the tree (docs/tables/course_axis.md)
    "draft": pa.bool_(),
    "parent_position": pa.int32(),
    "release_date": pa.timestamp("us"),
    "path": pa.string(),
    "hide_from_toc": pa.bool_(),
    "hidden_by_ancestor": pa.bool_(),
    "split_url_name": pa.string(),
    "group_id_to_child": pa.string(),
    "user_partition_id": pa.string(),
    "response_types": pa.string(),
    "has_solution": pa.bool_(),
    "has_image": pa.bool_(),
    "iframe_youtube_id": pa.string(),
}
# grading_policy.json of the course export: one row per GRADER entry, one per GRADE_CUTOFFS label
GRADERS = {
    "course_key": "VARCHAR",
    "position": "INTEGER",
    "assignment_type": "VARCHAR",
    "name": "VARCHAR",
    "fraction_of_overall_grade": "DOUBLE PRECISION",
    "short_label": "VARCHAR",
    "min_count": "INTEGER",
    "drop_count": "INTEGER",
}
CUTOFFS = {"course_key": "VARCHAR", "position": "INTEGER", "label": "VARCHAR", "cutoff": "DOUBLE PRECISION"}
_SQL = {
    pa.string(): "VARCHAR",
    pa.int32(): "INTEGER",
    pa.bool_(): "BOOLEAN",
    pa.float64(): "DOUBLE PRECISION",
    pa.timestamp("us"): "TIMESTAMP",
}
_RANK = {"olx": 1, "course_structure": 0}  # within one package, the export wins


@register
class CourseStructure(Service):
    name = "CourseStructure"
    claims = (discovery.COURSE_EXPORT, discovery.COURSE_STRUCTURE)
    writes = {"courses": "frozen", "course_blocks": "frozen", "course_graders": "frozen", "course_grade_cutoffs": "frozen"}
    # 2 (issue 18): course_blocks' course-axis columns (path, release_date, split and hidden ancestry, problem
    # content) and the grading policy tables. Recorded in service_runs only: a file service re-reads a file
    # only when asked, so an older warehouse gets the new columns empty until its course exports are ingested
    # again (`optimus ingest --file EXPORT`, docs/forums-and-course-structure.md)
    rules_version = 2

    def setup(self, wh: Warehouse) -> None:
        q = wh.quote
        wh.execute(f"CREATE TABLE IF NOT EXISTS courses ({', '.join(f'{q(n)} {t}' for n, t in COURSES.items())})")
        wh.execute(f"CREATE TABLE IF NOT EXISTS course_blocks ({', '.join(f'{q(n)} {_SQL[t]}' for n, t in BLOCKS.items())})")
        have = wh.columns("course_blocks")
        for name, kind in BLOCKS.items():
            if name not in have:  # a warehouse of rules version 1
                wh.execute(f"ALTER TABLE course_blocks ADD COLUMN {q(name)} {_SQL[kind]}")
        for table, columns in (("course_graders", GRADERS), ("course_grade_cutoffs", CUTOFFS)):
            wh.execute(f"CREATE TABLE IF NOT EXISTS {table} ({', '.join(f'{q(n)} {t}' for n, t in columns.items())})")

    # -- one file ------------------------------------------------------------------------------
    def ingest(self, wh: Warehouse, file: LedgerFile, ctx: RunContext) -> FileResult:
        parsed = self._parse(file)
        cid = courses.checked(parsed.org, parsed.course, parsed.run, file.path)  # olx checked them too: a key and a path follow
        key = cid.key
        existing = wh.query_dicts("SELECT course_id, package_date, source FROM courses WHERE course_key = ?", [key])
        current = existing[0] if existing else None
        mine = (file.package_date or date.max, _RANK[parsed.source])
        if current is not None:
            theirs = (current["package_date"] or date.max, _RANK.get(current["source"], 0))
            if theirs > mine:
                if theirs[0] == mine[0] and parsed.id_form:
                    return self._fill(wh, key, cid, parsed, ctx)
                return FileResult(
                    0, 0, f"the loaded {current['source']} of package {current['package_date']} is newer; kept", current["course_id"]
                )
        form = parsed.id_form or self._known_form(wh, key, current)
        course_id = cid.new if form == "new" else cid.old
        for table in ("course_blocks", "course_graders", "course_grade_cutoffs", "courses"):
            wh.execute(f"DELETE FROM {table} WHERE course_key = ?", [key])
        row = {
            "course_key": key,
            "course_id": course_id,
            "course_id_old": cid.old,
            "course_id_new": cid.new,
            **parsed.info,
            "package_date": file.package_date,
            "source": parsed.source,
            "file_id": file.id,
        }
        names = list(COURSES)
        wh.execute(
            f"INSERT INTO courses ({', '.join(wh.quote(n) for n in names)}) VALUES ({', '.join('?' for _ in names)})",
            [row[n] for n in names],
        )
        rows = self._load_blocks(wh, key, form, parsed.blocks)
        rows += self._load_grading(wh, key, parsed)
        ctx.wrote(rows)
        self._write_www(cid, parsed.tree)
        ctx.touch(key)
        info = parsed.info
        note = f"{rows} blocks, {info['published_chapters']} of {info['chapters']} chapters published ({parsed.source})"
        if parsed.missing:
            note += f"; {parsed.missing}"
            ctx.progress.note(f"{file.path}: {parsed.missing}")
        return FileResult(rows, 0, note, course_id)

    def _parse(self, file: LedgerFile) -> olx.ParsedCourse:
        path = file.path
        if not path.exists():
            raise IngestError(f"{path}: the course export is missing")
        if file.kind == discovery.COURSE_STRUCTURE or path.name.endswith(".json"):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise IngestError(f"{path}: not a readable course_structure JSON file: {exc}") from None
            return olx.parse_structure(data, path)
        if path.is_dir():
            return olx.parse_export(path)
        with tempfile.TemporaryDirectory(prefix="optimus-olx-") as tmp:
            folder = Path(tmp) / "export"
            archive.extract(path, folder, max_bytes=self.settings.max_archive_bytes)
            try:
                return olx.parse_export(folder)
            except (olx.OlxError, UnsafeName) as exc:
                # name the tarball, not the temporary folder it was unpacked into
                raise type(exc)(f"{path}: {str(exc).replace(str(folder), '').lstrip('/: ') or exc}") from None

    @staticmethod
    def _known_form(wh: Warehouse, key: str, current: dict[str, Any] | None) -> str:
        """An OLX export does not say which id form its course uses: ask what is already known."""
        if current and current["source"] == "course_structure" and current["course_id"]:
            return "new" if str(current["course_id"]).startswith("course-v1:") else "old"
        forms = {form for (form,) in wh.query("SELECT DISTINCT form FROM course_ids WHERE course_key = ?", [key])}
        return "new" if "new" in forms or not forms else "old"

    def _fill(self, wh: Warehouse, key: str, cid: courses.CourseId, parsed: olx.ParsedCourse, ctx: RunContext) -> FileResult:
        """A course_structure file of the package whose export is loaded: take only its id form."""
        course_id = cid.new if parsed.id_form == "new" else cid.old
        column = "block_id_new" if parsed.id_form == "new" else "block_id_old"
        wh.execute("UPDATE courses SET course_id = ? WHERE course_key = ? AND course_id <> ?", [course_id, key, course_id])
        wh.execute(f"UPDATE course_blocks SET block_id = {column} WHERE course_key = ? AND block_id IS DISTINCT FROM {column}", [key])
        return FileResult(0, 0, "blocks kept from the course export of the same package; course id form taken from this file", course_id)

    @staticmethod
    def _load_blocks(wh: Warehouse, key: str, form: str, blocks: list[dict[str, Any]]) -> int:
        for block in blocks:
            block["course_key"] = key
            block["block_id"] = block["block_id_new"] if form == "new" else block["block_id_old"]
        table = pa.table({name: pa.array([b.get(name) for b in blocks], type=kind) for name, kind in BLOCKS.items()})
        return wh.load_arrow("course_blocks", table) if blocks else 0

    @staticmethod
    def _load_grading(wh: Warehouse, key: str, parsed: olx.ParsedCourse) -> int:
        """The export's grading policy: GRADER entries and GRADE_CUTOFFS (a course_structure file has none)."""
        arrow = {"VARCHAR": pa.string(), "INTEGER": pa.int32(), "DOUBLE PRECISION": pa.float64()}
        graders = [{**g, "course_key": key} for g in parsed.graders]
        cutoffs = [{"course_key": key, "position": i, "label": label, "cutoff": c} for i, (label, c) in enumerate(parsed.cutoffs, start=1)]
        rows = 0
        for table, columns, data in (("course_graders", GRADERS, graders), ("course_grade_cutoffs", CUTOFFS, cutoffs)):
            if data:
                arrays = {n: pa.array([d.get(n) for d in data], type=arrow[t]) for n, t in columns.items()}
                rows += wh.load_arrow(table, pa.table(arrays))
        return rows

    def _write_www(self, cid: courses.CourseId, tree: dict[str, Any]) -> None:
        """Write to a temporary name and rename, so readers never see half a file."""
        folder = Path(self.settings.www_path) / "course_structure"
        folder.mkdir(parents=True, exist_ok=True)
        target = paths.inside(folder, f"{cid.file_form}.json", what=f"the www JSON of course {cid.key!r}")
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=folder)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(tree, fh, ensure_ascii=False, default=str)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
