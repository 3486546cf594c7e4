"""Take in edX deliveries: a weekly package becomes `database_state/{date}/`, event files join `events/`.

A weekly package (`{org}-{date}.zip`, or its extracted folder `{org}-{date}/`) is extracted
safely, every `.gpg` file in it is decrypted (files 0600, folders 0700) into a private work
folder, and only when the whole package decrypted is the folder renamed to
`database_state/{date}` and, when it is the newest, `database_state/latest` swapped to it (a new
symlink renamed over the old one: never a moment without a `latest`). Daily event files
(`{org}-{site}-events-{date}.log.gz.gpg`) are decrypted under a temporary name and renamed into
`clickstream_logs/events/`. Anything that fails leaves no trace but its report line.

Each delivered file is recorded in `intake_files` with its checksum, so a delivery is taken in
once; the same name with other content is taken in again and reported as re-delivered.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from optimus import discovery, paths
from optimus.config import Settings
from optimus.errors import OptimusError
from optimus.intake import gpg
from optimus.ledger import fingerprint, stat_path, utcnow
from optimus.warehouse.base import Warehouse

_PACKAGE = re.compile(r"^(?P<org>.+?)-(?P<date>\d{4}-\d{2}-\d{2})(?:\.zip)?$")
_WORK_PREFIX = ".intake-"  # work folders: .intake-{pid}-{letters}, no 8 digits in a row (not a dated folder)
DIR_MODE, FILE_MODE = 0o700, 0o600


class IntakeError(OptimusError):
    """A delivery cannot be taken in; the message names the delivered file."""


@dataclass(frozen=True)
class Delivery:
    """One delivered thing: a weekly package (zip or folder) or a daily event file."""

    source: Path
    kind: str  # 'package' or 'events'
    org: str | None
    day: date | None
    plain_name: str  # the name once decrypted (events), or the package's folder name


@dataclass
class IntakeReport:
    """What one intake did, per delivery."""

    taken: list[tuple[Path, Path]] = field(default_factory=list)  # (delivered, where it went)
    redelivered: list[Path] = field(default_factory=list)  # taken again: other content under a known name
    unchanged: list[Path] = field(default_factory=list)  # taken in before, skipped
    excluded: list[tuple[Path, str]] = field(default_factory=list)  # left by the configuration
    failed: list[tuple[Path, str]] = field(default_factory=list)
    failed_exports: list[Path] = field(default_factory=list)  # `.failed` files edX put in a package
    latest: list[tuple[Path, str]] = field(default_factory=list)  # (latest link, what it now points at)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


# -- the ledger of deliveries ---------------------------------------------------------------------
def ensure_table(wh: Warehouse) -> None:
    wh.execute("CREATE SEQUENCE IF NOT EXISTS intake_files_id")
    wh.execute(
        "CREATE TABLE IF NOT EXISTS intake_files (id BIGINT PRIMARY KEY DEFAULT nextval('intake_files_id'), "
        "name VARCHAR NOT NULL, path VARCHAR NOT NULL, data_path VARCHAR NOT NULL, checksum VARCHAR NOT NULL, "
        "size BIGINT NOT NULL, mtime DOUBLE PRECISION NOT NULL, kind VARCHAR NOT NULL, org VARCHAR, package_date DATE, "
        "target VARCHAR, state VARCHAR NOT NULL, taken_at TIMESTAMP NOT NULL, note VARCHAR)"
    )


def _last(wh: Warehouse, d: Delivery, data_path: Path) -> dict | None:
    rows = wh.query_dicts(
        "SELECT id, checksum, size, mtime, state, target FROM intake_files WHERE name = ? AND data_path = ? AND kind = ? "
        "AND state IN ('done', 'failed') ORDER BY id DESC LIMIT 1",
        [d.source.name, str(data_path), d.kind],
    )
    return rows[0] if rows else None


def _last_done(wh: Warehouse, d: Delivery, data_path: Path) -> dict | None:
    rows = wh.query_dicts(
        "SELECT id, checksum, size, mtime, target FROM intake_files WHERE name = ? AND data_path = ? AND kind = ? AND state = 'done' "
        "ORDER BY id DESC LIMIT 1",
        [d.source.name, str(data_path), d.kind],
    )
    return rows[0] if rows else None


def _record(wh: Warehouse, rows: list[list[object]]) -> None:
    wh.executemany(
        "INSERT INTO intake_files (name, path, data_path, checksum, size, mtime, kind, org, package_date, target, state, taken_at, note) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )


# The ledger's own measures: one definition of "same file" for intake and ingest.
_stat = stat_path
checksum = fingerprint


# -- what a source is -----------------------------------------------------------------------------
def _day(text: str) -> date | None:
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _package(path: Path) -> Delivery | None:
    m = _PACKAGE.match(path.name)
    if not m or (path.is_file() and not path.name.endswith(".zip")) or not _day(m["date"]):
        return None
    return Delivery(path, "package", m["org"], _day(m["date"]), path.name.removesuffix(".zip"))


def _event_file(path: Path) -> Delivery | None:
    if not path.name.endswith(".gpg"):
        return None
    plain = path.name[: -len(".gpg")]
    info = discovery.classify(plain)
    if not isinstance(info, discovery.Classified) or info.kind != discovery.EVENTS:
        return None
    return Delivery(path, "events", info.org, info.day, plain)


def _package_folder(path: Path) -> Delivery | None:
    """The package a folder is (named like one, holding encrypted files), or None."""
    package = _package(path)
    return package if package is not None and next(path.rglob("*.gpg"), None) is not None else None


def deliveries(sources: Iterable[Path], report: IntakeReport) -> list[Delivery]:
    """What each source holds: packages (oldest first, so `latest` ends on the newest) then event files."""
    found: list[Delivery] = []
    for source in sources:
        source = Path(source)
        if not source.exists():
            report.failed.append((source, f"{source}: does not exist"))
        elif source.is_dir() and (package := _package_folder(source)) is not None:
            found.append(package)
        elif source.is_dir():
            for child in sorted(source.iterdir()):
                if child.name.startswith("."):
                    continue
                d = (
                    _package(child)
                    if (child.is_dir() and _package_folder(child) is not None) or child.suffix == ".zip"
                    else _event_file(child)
                )
                if d is not None:
                    found.append(d)
                elif child.is_file():
                    report.notes.append(f"{child}: not a weekly package or an encrypted event file; left alone")
        elif (d := _package(source) or _event_file(source)) is not None:
            found.append(d)
        else:
            report.failed.append(
                (
                    source,
                    f"{source}: not a weekly package ({{org}}-YYYY-MM-DD.zip) or an encrypted "
                    "event file ({org}-{site}-events-YYYY-MM-DD.log.gz.gpg)",
                )
            )
    packages = sorted((d for d in found if d.kind == "package"), key=lambda d: (d.day or date.min, d.source.name))
    return packages + [d for d in found if d.kind == "events"]


def _data_path(settings: Settings, d: Delivery, explicit: Path | None) -> Path:
    """Absolute, so that intake_files matches a data path however it was written."""
    if explicit is not None:
        return Path(os.path.abspath(explicit))
    paths = [Path(os.path.abspath(p)) for p in settings.data_paths]
    if len(paths) == 1:
        return paths[0]
    if not paths:
        raise IntakeError(f"{d.source}: no data path to take it into (give --data-path, or set data_paths)")
    named = [p for p in paths if d.org and p.name.lower() == d.org.lower()]
    if len(named) == 1:
        return named[0]
    raise IntakeError(f"{d.source}: {len(paths)} data paths are configured and none is named after org {d.org!r}; give --data-path")


# -- files and folders that are never half there ---------------------------------------------------
def _private_dir(path: Path) -> None:
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)


def _work_dir(base: Path) -> Path:
    _private_dir(base)
    letters = "".join(secrets.choice(string.ascii_lowercase) for _ in range(8))
    work = base / f"{_WORK_PREFIX}{os.getpid()}-{letters}"
    work.mkdir(mode=DIR_MODE)
    return work


def _clean_stale(base: Path) -> None:
    """Remove work folders and temporary links left by an intake that was killed (its process is gone)."""
    if not base.is_dir():
        return
    for child in base.iterdir():
        if not child.name.startswith((_WORK_PREFIX, ".latest-")):
            continue
        pid = child.name.split("-")[1] if child.name.count("-") >= 2 else ""
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            if child.is_symlink() or child.is_file():
                child.unlink(missing_ok=True)
            else:
                shutil.rmtree(child, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _copy_private(source: Path, dest: Path) -> None:
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with open(source, "rb") as src, os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)


def point_latest(base: Path, target: str) -> None:
    """Point `base/latest` at `target` (a name in `base`): a new link renamed over the old, atomically."""
    letters = "".join(secrets.choice(string.ascii_lowercase) for _ in range(8))
    tmp = base / f".latest-{os.getpid()}-{letters}"
    os.symlink(target, tmp)
    try:
        os.replace(tmp, base / "latest")
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _latest_day(base: Path) -> tuple[bool, date | None]:
    """(may we move it, the date it points at): a real folder named latest is the user's; we leave it."""
    link = base / "latest"
    if link.is_symlink():
        return True, discovery._day(Path(os.readlink(link)).name) if link.exists() else None
    return not link.exists(), None


# -- a weekly package -----------------------------------------------------------------------------
def _package_root(extracted: Path) -> Path:
    entries = [p for p in extracted.iterdir()]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return extracted


def _take_package(settings: Settings, d: Delivery, data_path: Path, report: IntakeReport) -> tuple[Path, list[list[object]]]:
    """Decrypt the package into a work folder and publish it; returns its folder and the member rows."""
    from optimus.archive import extract

    state_dir = data_path / "database_state"
    work = _work_dir(state_dir)
    try:
        if d.source.is_file():
            extract(d.source, work / "in", max_bytes=settings.max_archive_bytes)
            root = _package_root(work / "in")
            if root.name != d.plain_name and root != work / "in":
                report.notes.append(f"{d.source}: its folder is {root.name!r}, not {d.plain_name!r}; taken in as {d.day}")
        else:
            root = d.source
        out = work / "out"
        _private_dir(out)
        members: list[list[object]] = []
        excluded = 0
        for path in sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink()):
            rel = path.relative_to(root)
            if path.is_symlink():
                raise IntakeError(f"{d.source}: {rel} is a link; a delivered package holds plain files only")
            if path.name.endswith(".failed"):
                report.failed_exports.append(d.source / rel)
                continue
            plain = path.name.removesuffix(".gpg")
            info = discovery.classify(plain)
            if isinstance(info, discovery.Classified) and not discovery.wanted(info, settings):
                excluded += 1
                continue
            target = paths.inside(out, *rel.parent.parts, plain, what=f"{d.source}: member {rel}")
            _private_dir(target.parent)
            if path.name.endswith(".gpg"):
                gpg.decrypt(path, target, home=settings.gnupg_home, passphrase_file=settings.gnupg_passphrase_file)
                note = None
            else:
                _copy_private(path, target)
                note = "delivered unencrypted; copied"
            st = path.stat()
            members.append(
                [
                    str(rel),
                    str(d.source / rel),
                    str(data_path),
                    checksum(path),
                    st.st_size,
                    st.st_mtime,
                    "package_file",
                    d.org,
                    d.day,
                    str(rel.parent / plain),
                    "done",
                    utcnow(),
                    note,
                ]
            )
            if d.source.is_file():
                path.unlink()  # the encrypted copy is no longer needed: keep the peak disk use down
        if excluded:
            report.excluded.append((d.source, f"{excluded} file(s) left by the org, edge or course settings"))
        if not members:
            if excluded:
                raise _AllExcluded()
            raise IntakeError(f"{d.source}: the package holds no files; not taken in")
        assert d.day is not None  # a package's name always holds its date (_package)
        final = paths.inside(state_dir, d.day.isoformat(), what=str(d.source))
        _publish(out, final, d.org, work)
        may_move, current = _latest_day(state_dir)
        if may_move and (current is None or current < d.day):
            point_latest(state_dir, final.name)
            report.latest.append((state_dir / "latest", final.name))
        elif not may_move:
            report.notes.append(f"{state_dir / 'latest'} is a folder, not a link; left as it is")
        elif current is not None and current > d.day:
            report.notes.append(f"{d.source}: older than the package at {state_dir / 'latest'} ({current}); latest not moved")
        return final, members
    finally:
        shutil.rmtree(work, ignore_errors=True)


class _AllExcluded(Exception):
    """Every file of a package was left by the configuration: nothing to publish, nothing failed."""


def _publish(out: Path, final: Path, org: str | None, work: Path) -> None:
    """Rename the decrypted package into place; other orgs' files of the same date are kept."""
    if final.exists() or final.is_symlink():
        if final.is_dir() and not final.is_symlink():
            for path in final.rglob("*"):
                rel = path.relative_to(final)
                if path.is_file() and not path.name.startswith(f"{org}-") and not (out / rel).exists():
                    _private_dir((out / rel).parent)
                    os.link(path, out / rel)
        os.rename(final, work / "old")
    os.rename(out, final)


# -- a daily event file ---------------------------------------------------------------------------
def _take_events(settings: Settings, d: Delivery, data_path: Path, report: IntakeReport) -> Path:
    logs = data_path / "clickstream_logs"
    events = logs / "events"
    _private_dir(events)
    work = _work_dir(logs)
    try:
        tmp = paths.inside(work, d.plain_name, what=str(d.source))
        gpg.decrypt(d.source, tmp, home=settings.gnupg_home, passphrase_file=settings.gnupg_passphrase_file)
        final = paths.inside(events, d.plain_name, what=str(d.source))
        os.replace(tmp, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    latest = logs / "latest"
    if not latest.exists() and not latest.is_symlink():
        point_latest(logs, "events")
        report.latest.append((latest, "events"))
    elif latest.resolve() != events.resolve():
        report.notes.append(f"{latest} does not point at {events}; the new event files are not visible to 'optimus scan'")
    return final


# -- the entry points -----------------------------------------------------------------------------
def take_in(
    settings: Settings, sources: Iterable[Path], wh: Warehouse, *, data_path: Path | None = None, retry_failed: bool = True
) -> IntakeReport:
    """Take in packages and event files (zips, package folders, `.gpg` files, or folders of them).

    :param data_path: where to put them (default: the one configured data path, or the one named after the org).
    :param retry_failed: False skips a delivery that failed before and has not changed since (the daemon).
    """
    ensure_table(wh)
    report = IntakeReport()
    cleaned: set[Path] = set()
    for d in deliveries(sources, report):
        try:
            target_path = _data_path(settings, d, data_path)
        except IntakeError as exc:
            report.failed.append((d.source, str(exc)))
            continue
        if target_path not in cleaned:
            _clean_stale(target_path / "database_state")
            _clean_stale(target_path / "clickstream_logs")
            cleaned.add(target_path)
        _take_one(settings, d, target_path, wh, report, retry_failed)
    return report


def take_in_folder(settings: Settings, folder: Path, wh: Warehouse, *, min_age: float = 30.0) -> IntakeReport:
    """Take in what has arrived in an incoming folder (the daemon calls this before each scan).

    Files changed in the last `min_age` seconds may still be arriving and wait for the next call;
    a delivery that failed and has not changed since is not tried again.
    """
    import time

    folder = Path(folder)
    if not folder.is_dir():
        report = IntakeReport()
        report.failed.append((folder, f"{folder}: the intake folder (setting 'intake_path') does not exist"))
        return report
    now = time.time()
    ready: list[Path] = []
    waiting: list[Path] = []
    for child in sorted(folder.iterdir()):
        if child.name.startswith("."):
            continue
        (ready if now - _stat(child)[1] >= min_age else waiting).append(child)
    report = take_in(settings, ready, wh, retry_failed=False)
    report.notes.extend(f"{p}: still arriving (changed in the last {min_age:.0f}s); next time" for p in waiting)
    return report


def _take_one(settings: Settings, d: Delivery, data_path: Path, wh: Warehouse, report: IntakeReport, retry_failed: bool) -> None:
    if d.kind == "package" and d.org:
        probe = discovery.Classified(discovery.SQL, org=d.org)
        if not discovery.wanted(probe, settings):
            report.excluded.append((d.source, f"org {d.org} is left by the include_orgs/exclude_orgs settings"))
            return
    if d.kind == "events":
        info = discovery.classify(d.plain_name)
        if isinstance(info, discovery.Classified) and not discovery.wanted(info, settings):
            report.excluded.append((d.source, "left by the org or edge settings"))
            return
    size, mtime = _stat(d.source)
    last = _last(wh, d, data_path)
    if last and last["state"] == "done" and not (last["target"] and Path(last["target"]).exists()):
        report.notes.append(f"{d.source}: taken in before, but {last['target']} is gone; taking it in again")
        last = None
    if last and last["size"] == size and last["mtime"] == mtime and (last["state"] == "done" or not retry_failed):
        if last["state"] == "done":
            report.unchanged.append(d.source)
        else:
            report.notes.append(f"{d.source}: failed before and unchanged since; not tried again (run 'optimus intake' on it)")
        return
    digest = checksum(d.source)
    done = _last_done(wh, d, data_path)
    if done and done["checksum"] == digest and last is not None:
        wh.execute("UPDATE intake_files SET size = ?, mtime = ?, path = ? WHERE id = ?", [size, mtime, str(d.source), done["id"]])
        report.unchanged.append(d.source)
        return
    row: list[object] = [d.source.name, str(d.source), str(data_path), digest, size, mtime, d.kind, d.org, d.day]
    try:
        if d.kind == "package":
            target, members = _take_package(settings, d, data_path, report)
        else:
            target, members = _take_events(settings, d, data_path, report), []
    except _AllExcluded:
        return
    except (OptimusError, OSError) as exc:
        message = str(exc) if isinstance(exc, OptimusError) else f"{d.source}: {exc}"
        report.failed.append((d.source, message))
        _record(wh, [row + [None, "failed", utcnow(), message]])
        return
    redelivered = done is not None and done["checksum"] != digest
    note = "re-delivered with other content; taken in again" if redelivered else None
    with wh.transaction():
        _record(wh, [row + [str(target), "done", utcnow(), note]] + members)
    report.taken.append((d.source, target))
    if redelivered:
        report.redelivered.append(d.source)
