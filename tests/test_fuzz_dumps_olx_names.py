"""Property-based fuzzing (issue 14) of the edX TSV decoder, the OLX parser and the file-name
classifier: whatever the input, it ends as loaded rows, quarantined lines with a reason, or a clear
OptimusError naming the file; never another exception, never a path outside its folder.

The number of examples comes from the hypothesis profile chosen in conftest.py.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from hypothesis import given
from hypothesis import strategies as st

from optimus import courses, discovery
from optimus.errors import OptimusError, UnsafeName
from optimus.formats import olx, sql_tables
from optimus.warehouse import connect

# -- the edX TSV decoder (header + escapes + NULL) ---------------------------------------------
# text with the characters the escapes are about, the escape decoder's own stand-in, and the rest
_TRICKY = st.sampled_from(["\t", "\n", "\r", "\\", "\\t", "\\\\", "NULL", "\ue000", "\x00", "é", "😀", " "])
_VALUE = st.one_of(
    st.none(),
    st.lists(st.one_of(_TRICKY, st.text(st.characters(blacklist_categories=("Cs",)), max_size=5)), max_size=6)
    .map("".join)
    .filter(lambda v: v != "NULL"),  # a text "NULL" is written as SQL NULL by edX: the two cannot differ
)
_IDENTIFIER = st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True)


def edx_escape(value: str | None) -> str:
    """How edX writes a value (REFERENCE §3.2), written independently of the decoder."""
    if value is None:
        return "NULL"
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


_STAGED = iter(range(1 << 30))


def _staged(wh: Any, path: Path) -> tuple[list[str], list[tuple], list[tuple[int, str, str]]]:
    staging = f"_fuzz_{next(_STAGED)}"  # a name per file, as Database State stages them (a plan is cached per statement)
    header, rejected = wh.stage_tsv(path, staging)
    try:
        rows = [r[:-1] for r in wh.query(f"SELECT {', '.join(wh.quote(h) for h in header)}, _line FROM {wh.quote(staging)} ORDER BY _line")]
        return header, rows, rejected
    finally:
        wh.drop_staged(staging)


def _with_warehouse(settings: Any, check: Callable[[Any, Path], None]) -> None:
    wh = connect(settings)
    # inside the data path: the warehouse's engine reads nothing outside its allowed folders
    folder = Path(tempfile.mkdtemp(prefix="optimus-fuzz-", dir=settings.data_paths[0]))
    try:
        check(wh, folder)
    finally:
        wh.close()
        shutil.rmtree(folder, ignore_errors=True)


def test_tsv_values_decode_to_what_edx_wrote(data_path: Path, settings_for: Any, backend: dict[str, Any]) -> None:
    def check(wh: Any, folder: Path) -> None:
        @given(
            st.lists(_IDENTIFIER, min_size=1, max_size=5, unique=True).flatmap(
                lambda header: st.tuples(
                    st.just(header), st.lists(st.lists(_VALUE, min_size=len(header), max_size=len(header)), max_size=6)
                )
            )
        )
        def decoded(case: tuple[list[str], list[list[str | None]]]) -> None:
            header, rows = case
            if wh.sql.name == "postgres":  # PostgreSQL text cannot hold NUL (documented): not a value it can load
                rows = [[v.replace("\x00", "") if v else v for v in r] for r in rows]
            rows = [r for r in rows if r != [""]]  # one empty value is an empty line: a blank line in the format, skipped
            path = folder / "UQx-A-1-fuzz-prod-analytics.sql"
            path.write_bytes(("\n".join("\t".join(edx_escape(v) for v in r) for r in [header, *rows]) + "\n").encode())
            got_header, got, rejected = _staged(wh, path)
            assert got_header == header and rejected == []
            assert sorted(got, key=repr) == sorted((tuple(r) for r in rows), key=repr)

        decoded()

    _with_warehouse(settings_for(data_path, **backend), check)


_LINE = st.one_of(
    st.binary(max_size=40),
    st.lists(st.text(max_size=6), max_size=5).map(lambda fields: "\t".join(fields).encode("utf-8", "surrogatepass")),
)


def test_any_dump_loads_quarantines_or_fails_naming_the_file(data_path: Path, settings_for: Any, backend: dict[str, Any]) -> None:
    def check(wh: Any, folder: Path) -> None:
        @given(st.lists(_LINE, min_size=1, max_size=8))
        def any_dump(lines: list[bytes]) -> None:
            path = folder / "UQx-A-1-auth_user-prod-analytics.sql"
            path.write_bytes(b"\n".join(lines) + b"\n")
            try:
                header, rows, rejected = _staged(wh, path)
            except OptimusError as exc:
                assert str(path) in str(exc)
                return
            assert all(sql_tables._COLUMN_NAME.match(name) for name in header)  # values never become columns
            assert all(len(r) == len(header) for r in rows)
            assert all(reason for _line, reason, _raw in rejected)

        any_dump()

    _with_warehouse(settings_for(data_path, **backend), check)


@given(
    st.one_of(
        st.binary(max_size=60), st.lists(st.text(max_size=8), max_size=6).map(lambda f: "\t".join(f).encode("utf-8", "surrogatepass"))
    )
)
def test_a_header_is_identifiers_or_the_file_fails(first_line: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.sql"
        path.write_bytes(first_line + b"\n1\n")
        try:
            names = sql_tables.read_header(path)
        except OptimusError as exc:
            assert str(path) in str(exc)
            return
        assert names and all(sql_tables._COLUMN_NAME.match(n) for n in names) and len(set(names)) == len(names)


# -- the OLX parser ------------------------------------------------------------------------------
_TAGS = st.sampled_from(["course", "chapter", "sequential", "vertical", "problem", "video", "html", "wiki", "split_test", "x"])
_ATTR_NAMES = st.sampled_from(
    [
        "url_name",
        "display_name",
        "start",
        "due",
        "graded",
        "format",
        "weight",
        "visible_to_staff_only",
        "org",
        "course",
        "youtube_id_1_0",
        "discussion_id",
        "xml:lang",
    ]
) | st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
_ATTR_VALUES = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12),
    st.sampled_from(
        [
            "../../../etc/passwd",
            "/tmp/evil",
            "a:b:c",
            "..",
            "true",
            "1e309",
            "nan",
            "2013-02-30T00:00:00Z",
            '"2013-09-01T00:00:00Z"',
            "9999-12-31T23:59:59+14:00",
            "-1",
            "Week_1",
            "R",
        ]
    ),
)


def _element(depth: int) -> st.SearchStrategy[str]:
    attrs = st.dictionaries(_ATTR_NAMES, _ATTR_VALUES, max_size=4).map(lambda a: "".join(f" {k}={quoteattr(v)}" for k, v in a.items()))
    if depth <= 0:
        return st.builds(lambda t, a, text: f"<{t}{a}>{escape(text)}</{t}>", _TAGS, attrs, st.text(max_size=5))
    return st.builds(lambda t, a, kids: f"<{t}{a}>{''.join(kids)}</{t}>", _TAGS, attrs, st.lists(_element(depth - 1), max_size=3))


def _deep(n: int, tag: str) -> str:
    return f"<{tag} url_name='d'>" * n + f"</{tag}>" * n


def _doctype(canary: Path) -> st.SearchStrategy[str]:
    return st.sampled_from(
        [
            "",
            f'<!DOCTYPE course [<!ENTITY x SYSTEM "file://{canary}">]>',
            f'<!DOCTYPE course SYSTEM "file://{canary}">',
            '<!DOCTYPE course [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">]>',
            f'<!DOCTYPE course [<!ENTITY % p SYSTEM "file://{canary}"> %p;]>',
        ]
    )


def _xml_document(canary: Path) -> st.SearchStrategy[str]:
    body = st.one_of(
        _element(3),
        st.builds(_deep, st.integers(1, 400), st.sampled_from(["chapter", "vertical", "x"])),
        st.text(max_size=30),
        st.just("<course display_name='&x;'/>"),
    )
    return st.builds(lambda d, b: f"<?xml version='1.0'?>{d}{b}", _doctype(canary), body)


def test_olx_exports_parse_or_fail_naming_the_file(tmp_path: Path) -> None:
    canary = tmp_path / "canary.txt"
    secret = secrets.token_hex(16)
    canary.write_text(secret)
    outside = tmp_path / "outside"
    outside.mkdir()

    @given(
        pointer=st.one_of(
            st.builds(
                lambda a: f"<course{a}/>",
                st.dictionaries(st.sampled_from(["url_name", "org", "course"]), _ATTR_VALUES, max_size=3).map(
                    lambda a: "".join(f" {k}={quoteattr(v)}" for k, v in {"url_name": "R", "org": "O", "course": "C", **a}.items())
                ),
            ),
            _xml_document(canary),
        ),
        course=_xml_document(canary),
        chapter=_xml_document(canary),
        policy=st.one_of(
            st.just("{}"),
            st.text(max_size=20),
            st.builds(json.dumps, st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)),
        ),
    )
    def parse(pointer: str, course: str, chapter: str, policy: str) -> None:
        folder = Path(tempfile.mkdtemp(prefix="optimus-olx-fuzz-", dir=tmp_path))
        try:
            files = {
                "course.xml": pointer,
                "course/R.xml": course,
                "chapter/d.xml": chapter,
                "chapter/Week_1.xml": chapter,
                "policies/R/policy.json": policy,
            }
            for name, text in files.items():
                (folder / name).parent.mkdir(parents=True, exist_ok=True)
                (folder / name).write_text(text, encoding="utf-8", errors="surrogatepass")
            try:
                parsed = olx.parse_export(folder)
            except OptimusError as exc:
                assert str(folder) in str(exc), exc  # names the file (or the export folder)
                return
            assert secret not in repr(parsed), "an external entity was read"
            courses.checked(parsed.org, parsed.course, parsed.run, "parsed")  # only a safe course comes out
            assert all(isinstance(b["position"], int) for b in parsed.blocks)
        finally:
            shutil.rmtree(folder)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["canary.txt", "outside"] and not any(outside.iterdir())

    parse()


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
_KEYS = st.sampled_from(
    [
        "block-v1:O+C+R+type@course+block@course",
        "i4x://O/C/course/R",
        "block-v1:O+C+R+type@chapter+block@w1",
        "block-v1:/tmp/x+C+R+type@course+block@course",
        "i4x://../C/course/R",
        "block-v1:O+C",
        "x",
    ]
) | st.text(max_size=12)


@given(
    st.dictionaries(
        _KEYS,
        st.one_of(
            st.fixed_dictionaries(
                {"category": st.sampled_from(["course", "chapter", "vertical", "problem"])},
                optional={"children": st.lists(_KEYS, max_size=3), "metadata": _JSON},
            ),
            _JSON,
        ),
        max_size=5,
    )
)
def test_course_structure_json_parses_or_fails_naming_the_file(data: dict[str, Any]) -> None:
    path = Path("/nowhere/UQx-A-1-course_structure-prod-analytics.json")
    try:
        parsed = olx.parse_structure(data, path)
    except OptimusError as exc:
        assert str(path) in str(exc)
        return
    courses.checked(parsed.org, parsed.course, parsed.run, path)


# -- the file-name classifier --------------------------------------------------------------------
_NAME_PARTS = st.sampled_from(
    [
        "UQx",
        "-",
        "BIO101",
        "1T2015",
        "auth_user",
        "prod",
        "edge",
        "analytics",
        ".sql",
        ".mongo",
        "events",
        "2024-01-07",
        ".log",
        ".gz",
        "course",
        "course_structure",
        ".json",
        ".xml.tar.gz",
        "..",
        "%2F",
        ":",
        "+",
        "email_opt_in",
        ".csv",
        "0123456789abcdef0123456789abcdef",
        "tracking.log-20240107",
    ]
)
_FILE_NAMES = st.one_of(
    st.lists(_NAME_PARTS | st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), max_size=4), max_size=10).map(
        "".join
    ),
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="/\x00"), max_size=40),
).filter(lambda n: n not in ("", ".", ".."))


@given(_FILE_NAMES)
def test_any_file_name_is_classified_without_error_and_names_stay_inside(name: str) -> None:
    info = discovery.classify(name)
    if info is None or isinstance(info, discovery.Skipped):
        return
    assert info.kind in (
        discovery.EVENTS,
        discovery.SQL,
        discovery.FORUM,
        discovery.COURSE_EXPORT,
        discovery.COURSE_STRUCTURE,
        discovery.EMAIL_OPT_IN,
    )
    if info.course_id is not None:  # a course the name tells: a key, and maybe a www path, are made of it
        parsed = courses.parse(info.course_id)
        if parsed is not None:
            try:
                cid = courses.checked(parsed.org, parsed.course, parsed.run, name)
            except UnsafeName as exc:
                assert name in str(exc)
            else:
                from optimus.paths import inside

                with tempfile.TemporaryDirectory() as www:
                    assert inside(www, f"{cid.file_form}.json").parent == Path(www)
    if info.table is not None:  # a table name from a file name is an identifier, or the file fails naming itself
        try:
            table = sql_tables.safe_table_name(info.table, name)
        except UnsafeName as exc:
            assert name in str(exc)
        else:
            assert table.isidentifier() and table.isascii() and table == table.lower()
    assert os.sep not in (info.org or "") and os.sep not in (info.course or "")
