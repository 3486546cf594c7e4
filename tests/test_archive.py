"""Safe archive extraction: good archives unpack whole; every unsafe member is refused, leaving nothing."""

from __future__ import annotations

import io
import os
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from optimus.archive import extract
from optimus.errors import ArchiveError

LIMIT = 10_000_000


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
            else:
                tar.addfile(info)
    return path


def _file(name: str) -> tarfile.TarInfo:
    return tarfile.TarInfo(name)


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def _refused(archive: Path, dest: Path, *words: str, **limits: int) -> str:
    with pytest.raises(ArchiveError) as err:
        extract(archive, dest, max_bytes=limits.get("max_bytes", LIMIT), max_files=limits.get("max_files", 100_000))
    message = str(err.value)
    assert str(archive) in message
    for word in words:
        assert word in message, message
    assert not dest.exists(), "a refused archive must leave no target folder"
    assert _leftovers(dest.parent) == [], "a refused archive must leave no temporary folder"
    return message


@pytest.mark.parametrize("suffix,mode", [(".tar.gz", "w:gz"), (".tgz", "w:gz"), (".tar", "w")])
def test_tar_extracts_whole(tmp_path: Path, suffix: str, mode: str) -> None:
    content = {"course/course.xml": b"<course/>", "course/chapter/a.xml": b"<chapter/>" * 100, "course/empty.txt": b""}
    members: list[tuple[tarfile.TarInfo, bytes | None]] = []
    folder = _file("course")
    folder.type = tarfile.DIRTYPE
    members.append((folder, None))
    members += [(_file(name), data) for name, data in content.items()]
    archive = _tar(tmp_path / f"x{suffix}", members, mode)
    dest = tmp_path / "out" / "x"
    files = extract(archive, dest, max_bytes=LIMIT)
    assert sorted(p.relative_to(dest).as_posix() for p in files) == sorted(content)
    for name, data in content.items():
        assert (dest / name).read_bytes() == data
    assert _leftovers(dest.parent) == []


def test_zip_extracts_whole(tmp_path: Path) -> None:
    content = {"UQx-2024-01-07/a.sql.gpg": b"abc" * 1000, "UQx-2024-01-07/ora/b.sql.gpg": b"x"}
    archive = tmp_path / "UQx-2024-01-07.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("UQx-2024-01-07/", b"")
        for name, data in content.items():
            zf.writestr(name, data)
    dest = tmp_path / "out"
    dest.mkdir()  # an empty existing folder is fine
    files = extract(archive, dest, max_bytes=LIMIT)
    assert {p.relative_to(dest).as_posix(): p.read_bytes() for p in files} == content


@pytest.mark.parametrize("bad", ["../evil.txt", "course/../../evil.txt", "/etc/evil.txt"])
def test_tar_path_escape_refused(tmp_path: Path, bad: str) -> None:
    archive = _tar(tmp_path / "x.tar.gz", [(_file("course/ok.xml"), b"ok"), (_file(bad), b"evil")])
    _refused(archive, tmp_path / "out" / "x", repr(bad))
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()


@pytest.mark.parametrize("bad", ["../evil.txt", "a/../../evil.txt", "/abs/evil.txt", "..\\evil.txt", "C:/evil.txt"])
def test_zip_path_escape_refused(tmp_path: Path, bad: str) -> None:
    archive = tmp_path / "x.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", b"ok")
        info = zipfile.ZipInfo("placeholder")
        info.filename = bad  # ZipInfo would sanitise the name; a hostile zip is not so kind
        zf.writestr(info, b"evil")
    _refused(archive, tmp_path / "out" / "x", "archive refused")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out" / "evil.txt").exists()


@pytest.mark.parametrize(
    "kind,word",
    [
        (tarfile.SYMTYPE, "symbolic link"),
        (tarfile.LNKTYPE, "hard link"),
        (tarfile.CHRTYPE, "device"),
        (tarfile.BLKTYPE, "device"),
        (tarfile.FIFOTYPE, "FIFO"),
    ],
)
def test_tar_links_devices_fifos_refused(tmp_path: Path, kind: bytes, word: str) -> None:
    special = _file("course/special")
    special.type = kind
    special.linkname = "/etc/passwd"
    archive = _tar(tmp_path / "x.tar.gz", [(_file("course/ok.xml"), b"ok"), (special, None)])
    _refused(archive, tmp_path / "out" / "x", "'course/special'", word)


@pytest.mark.parametrize("kind,word", [(stat.S_IFLNK, "symbolic link"), (stat.S_IFIFO, "FIFO"), (stat.S_IFCHR, "device")])
def test_zip_symlinks_devices_fifos_refused(tmp_path: Path, kind: int, word: str) -> None:
    archive = tmp_path / "x.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        info = zipfile.ZipInfo("link")
        info.create_system = 3
        info.external_attr = (kind | 0o777) << 16
        zf.writestr(info, "/etc/passwd")
    _refused(archive, tmp_path / "out" / "x", "'link'", word)


def test_tar_size_limit_counts_declared_and_real_bytes(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "big.tar.gz", [(_file("a.bin"), b"\0" * 6000), (_file("b.bin"), b"\0" * 6000)])
    _refused(archive, tmp_path / "out" / "x", "'b.bin'", "10000 bytes", max_bytes=10_000)
    assert extract(archive, tmp_path / "ok", max_bytes=12_000)


def test_zip_bomb_refused_by_declared_size(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * 2_000_000)
    assert archive.stat().st_size < 20_000  # a real bomb: tiny on disk
    _refused(archive, tmp_path / "out" / "x", "declares 2000000", max_bytes=1_000_000)


def test_zip_that_lies_about_its_size_is_stopped_while_writing(tmp_path: Path) -> None:
    archive = tmp_path / "liar.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("a.bin", b"A" * 50_000)
    # rewrite the declared (uncompressed) size in both headers to 10 bytes
    data = bytearray(archive.read_bytes())
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    data[local + 22 : local + 26] = (10).to_bytes(4, "little")
    data[central + 24 : central + 28] = (10).to_bytes(4, "little")
    archive.write_bytes(bytes(data))
    dest = tmp_path / "out" / "x"
    try:
        files = extract(archive, dest, max_bytes=1_000)
    except ArchiveError as exc:
        assert str(archive) in str(exc) and "'a.bin'" in str(exc)
        assert not dest.exists() and _leftovers(dest.parent) == []
    else:  # zipfile stops at the declared size: never more than the limit reaches the disk
        assert sum(p.stat().st_size for p in files) <= 1_000


def test_file_count_limit(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "many.tar", [(_file(f"f{i}.txt"), b"x") for i in range(6)], "w")
    _refused(archive, tmp_path / "out" / "x", "more than 5 entries", max_files=5)
    archive_zip = tmp_path / "many.zip"
    with zipfile.ZipFile(archive_zip, "w") as zf:
        for i in range(6):
            zf.writestr(f"f{i}.txt", b"x")
    _refused(archive_zip, tmp_path / "out" / "y", "more than 5 entries", max_files=5)


def test_corrupt_and_truncated_archives(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "x.tar.gz", [(_file("a.bin"), os.urandom(200_000))])
    truncated = tmp_path / "cut.tar.gz"
    truncated.write_bytes(archive.read_bytes()[:50_000])
    _refused(truncated, tmp_path / "out" / "cut")
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is not a zip file at all")
    _refused(junk, tmp_path / "out" / "junk", "not a readable zip")


def test_existing_target_is_not_overwritten(tmp_path: Path) -> None:
    archive = _tar(tmp_path / "x.tar.gz", [(_file("a.txt"), b"a")])
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("keep")
    with pytest.raises(ArchiveError, match="already exists"):
        extract(archive, dest, max_bytes=LIMIT)
    assert (dest / "keep.txt").read_text() == "keep"


def _writes_spied(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files extraction opens for writing (archive.py's own `open`), in order."""
    import builtins

    import optimus.archive

    written: list[str] = []

    def spy(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+"):
            written.append(str(file))
        return builtins.open(file, mode, *args, **kwargs)

    monkeypatch.setattr(optimus.archive, "open", spy, raising=False)
    return written


@pytest.mark.parametrize("suffix,mode", [(".tar.gz", "w:gz"), (".tar", "w")])
def test_entry_and_size_limits_are_checked_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str, mode: str
) -> None:
    """Issue 14 item 6: a tarball of many entries was extracted up to the limit before it was refused."""
    written = _writes_spied(monkeypatch)
    many = _tar(tmp_path / f"many{suffix}", [(_file(f"d/f{i}.xml"), b"") for i in range(50)], mode)
    _refused(many, tmp_path / "out" / "many", "more than 40 entries", max_files=40)
    assert written == [], "the entry limit must trip before any member is written"
    big = _tar(tmp_path / f"big{suffix}", [(_file("small.bin"), b"x" * 10), (_file("large.bin"), b"\0" * 20_000)], mode)
    _refused(big, tmp_path / "out" / "big", "'large.bin'", "10000 bytes", max_bytes=10_000)
    assert written == [], "the size limit (declared sizes) must trip before any member is written"
    bad = _tar(tmp_path / f"bad{suffix}", [(_file("ok.xml"), b"<x/>"), (_file("../escape.xml"), b"<x/>")], mode)
    _refused(bad, tmp_path / "out" / "bad", "escape")
    assert written == [], "a member that escapes is found before any member is written"
    assert extract(many, tmp_path / "ok", max_bytes=LIMIT, max_files=60) and len(written) == 50
