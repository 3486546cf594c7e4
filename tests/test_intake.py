"""Intake: real GnuPG, real zips, real DuckDB. One key per test session (made by `optimus sample --encrypt`)."""

from __future__ import annotations

import gzip
import os
import shutil
import stat
import zipfile
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from typer.testing import CliRunner

from conftest import ingest, query_rows
from optimus.cli import app
from optimus.config import Settings
from optimus.intake import gpg, take_in, take_in_folder
from optimus.services import load_services
from optimus.warehouse import connect

PROVENANCE = {"file_id", "package_date"}


# -- one sample, one key, one delivery per session ------------------------------------------------
@pytest.fixture(scope="session")
def delivery(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """`optimus sample DIR --encrypt --gnupg-home H`, plus a second GnuPG home with another key."""
    if shutil.which("gpg") is None:
        pytest.fail("gpg not found: run scripts/setup-env test (installs Debian's gnupg)")
    root = tmp_path_factory.mktemp("intake")
    home, other = root / "gnupg", root / "gnupg-other"
    result = CliRunner().invoke(
        app,
        ["sample", str(root / "sample"), "--courses", "2", "--learners", "16", "--days", "2", "--encrypt", "--gnupg-home", str(home)],
        env={k: None for k in os.environ if k.startswith("OPTIMUS_") and not k.startswith("OPTIMUS_TEST")},
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    other_key = gpg.generate_key(other, "Someone else <other@optimus.invalid>")
    folder = root / "sample-delivery"
    zips = sorted(folder.glob("*.zip"))
    events = sorted(folder.glob("*.log.gz.gpg"))
    yield {
        "sample": root / "sample",
        "folder": folder,
        "zip": zips[0],
        "events": events,
        "home": home,
        "other": other,
        "other_key": other_key,
    }
    gpg.stop_agent(home)
    gpg.stop_agent(other)


def _package_date(zip_path: Path) -> date:
    return date.fromisoformat(zip_path.name[len("UQx-") : -len(".zip")])


def repackage(
    source: Path,
    day: date,
    out_dir: Path,
    *,
    mutate: Callable[[str, bytes], bytes | None] | None = None,
    extra: dict[str, bytes] | None = None,
) -> Path:
    """The same package under another date (members renamed), optionally with a member changed or dropped."""
    out_dir.mkdir(parents=True, exist_ok=True)
    new_folder = f"UQx-{day.isoformat()}"
    target = out_dir / f"{new_folder}.zip"
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            rel = info.filename.split("/", 1)[1]
            if mutate is not None:
                data = mutate(rel, data)
                if data is None:
                    continue
            dst.writestr(f"{new_folder}/{rel}", data)
        for name, data in (extra or {}).items():
            dst.writestr(name, data)
    return target


def env_for(settings: Settings, home: Path) -> dict[str, str]:
    return {"OPTIMUS_GNUPG_HOME": str(home), "COLUMNS": "2000"}  # wide: messages on one line each


def leftovers(root: Path) -> list[Path]:
    """Temporary files or folders of an intake anywhere under the data path."""
    return [p for p in root.rglob("*") if p.name.startswith((".intake-", ".latest-")) or ".partial-" in p.name]


# -- the whole loop -------------------------------------------------------------------------------
def test_encrypted_delivery_ingests_to_the_same_tables_as_the_plain_sample(delivery, tmp_path, settings_for, cli) -> None:
    plain = settings_for(delivery["sample"], warehouse=str(tmp_path / "plain.duckdb"))
    data = tmp_path / "data"
    data.mkdir()
    taken = settings_for(data, warehouse=str(tmp_path / "taken.duckdb"))

    # the delivery really is encrypted: no member is readable as the plain file
    with zipfile.ZipFile(delivery["zip"]) as zf:
        names = zf.namelist()
        assert names and all(n.endswith((".gpg", ".failed")) for n in names)
        sql_member = next(n for n in names if n.endswith("-auth_user-prod-analytics.sql.gpg"))
        assert b"username" not in zf.read(sql_member)

    result = cli(["intake", *map(str, [delivery["zip"], *delivery["events"]])], settings=taken, env=env_for(taken, delivery["home"]))
    assert result.exit_code == 0, result.output
    assert "failed export" in result.output  # the sample's .failed file is reported
    day = _package_date(delivery["zip"])
    assert os.readlink(data / "database_state" / "latest") == day.isoformat()
    assert os.readlink(data / "clickstream_logs" / "latest") == "events"

    # what was decrypted is byte for byte what the sample wrote (the .failed file is reported, not copied)
    sample_state = (delivery["sample"] / "database_state" / "latest").resolve()
    expected = {p.relative_to(sample_state) for p in sample_state.rglob("*") if p.is_file() and not p.name.endswith(".failed")}
    got_dir = data / "database_state" / day.isoformat()
    got = {p.relative_to(got_dir) for p in got_dir.rglob("*") if p.is_file()}
    assert got == expected
    for rel in expected:
        assert (got_dir / rel).read_bytes() == (sample_state / rel).read_bytes(), rel
        assert stat.S_IMODE((got_dir / rel).stat().st_mode) == 0o600
    for folder in [got_dir, *[p for p in got_dir.rglob("*") if p.is_dir()], data / "clickstream_logs" / "events"]:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for enc in delivery["events"]:
        plain_name = enc.name.removesuffix(".gpg")
        mine = data / "clickstream_logs" / "events" / plain_name
        assert gzip.decompress(mine.read_bytes()) == gzip.decompress(
            (delivery["sample"] / "clickstream_logs" / "events" / plain_name).read_bytes()
        )
        assert stat.S_IMODE(mine.stat().st_mode) == 0o600

    services = ["DatabaseState"]
    if discovery_claims_events():
        services.append("Clickstream")
    for settings in (plain, taken):
        for service in services:
            ingest(settings, service)

    con = duckdb.connect(str(tmp_path / "plain.duckdb"))
    con.execute(f"ATTACH '{tmp_path / 'taken.duckdb'}' AS taken (READ_ONLY)")
    tables = sorted(r[0] for r in con.execute("SELECT DISTINCT table_name FROM db_state_loads WHERE NOT empty").fetchall())
    assert tables == sorted(r[0] for r in con.execute("SELECT DISTINCT table_name FROM taken.db_state_loads WHERE NOT empty").fetchall())
    assert "auth_user" in tables and "student_courseenrollment" in tables
    schemas = {t: "edx" for t in tables}  # the raw edX tables, in their own schema
    if "Clickstream" in services:
        tables.append("events")
        schemas["events"] = "main"
    for table in tables:
        cols = [
            r[0]
            for r in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = 'plain' AND schema_name = ? "
                "AND table_name = ? ORDER BY column_index",
                [schemas[table], table],
            ).fetchall()
            if r[0] not in PROVENANCE
        ]
        their = [
            r[0]
            for r in con.execute(
                "SELECT column_name FROM duckdb_columns() WHERE database_name = 'taken' AND schema_name = ? "
                "AND table_name = ? ORDER BY column_index",
                [schemas[table], table],
            ).fetchall()
            if r[0] not in PROVENANCE
        ]
        assert cols == their, table
        select = ", ".join(f'"{c}"' for c in cols)
        n = con.execute(f'SELECT count(*) FROM plain.{schemas[table]}."{table}"').fetchone()[0]
        assert n > 0, table
        for a, b in (("plain", "taken"), ("taken", "plain")):
            diff = con.execute(
                f'SELECT count(*) FROM (SELECT {select} FROM {a}.{schemas[table]}."{table}" '
                f'EXCEPT ALL SELECT {select} FROM {b}.{schemas[table]}."{table}")'
            ).fetchone()[0]
            assert diff == 0, f"{table}: {diff} row(s) in {a} and not in {b}"
    con.close()


def discovery_claims_events() -> bool:
    from optimus import discovery

    service = load_services().get("Clickstream")
    return service is not None and discovery.EVENTS in service.claims


# -- failures leave nothing half-done -------------------------------------------------------------
@pytest.fixture
def taken_once(delivery, tmp_path, settings_for) -> tuple[Settings, Path, date]:
    """A data path that took in the sample delivery: latest points at its date."""
    data = tmp_path / "data"
    data.mkdir()
    settings = settings_for(data, gnupg_home=delivery["home"])
    wh = connect(settings)
    try:
        report = take_in(settings, [delivery["zip"], *delivery["events"]], wh)
    finally:
        wh.close()
    assert report.ok, report.failed
    day = _package_date(delivery["zip"])
    assert os.readlink(data / "database_state" / "latest") == day.isoformat()
    return settings, data, day


def assert_nothing_changed(data: Path, day: date, newer: date) -> None:
    assert os.readlink(data / "database_state" / "latest") == day.isoformat()
    assert not (data / "database_state" / newer.isoformat()).exists()
    assert leftovers(data) == []


def test_a_corrupt_member_fails_the_package_naming_the_file(delivery, taken_once, tmp_path, cli) -> None:
    settings, data, day = taken_once
    newer = day + timedelta(days=7)

    def truncate(rel: str, blob: bytes) -> bytes:
        return blob[: len(blob) // 2] if rel.endswith("-auth_user-prod-analytics.sql.gpg") and "HYPERS" in rel else blob

    bad = repackage(delivery["zip"], newer, tmp_path / "in", mutate=truncate)
    result = cli(["intake", str(bad)], settings=settings, env=env_for(settings, delivery["home"]))
    assert result.exit_code == 1
    text = result.output
    assert "HYPERS" in text and "-auth_user-prod-analytics.sql.gpg" in text and "does not decrypt" in text
    assert_nothing_changed(data, day, newer)
    assert query_rows(settings, "SELECT state FROM intake_files WHERE name = 'UQx-" + newer.isoformat() + ".zip'") == [("failed",)]


def test_garbage_in_a_member_fails_the_package(delivery, taken_once, tmp_path) -> None:
    settings, data, day = taken_once
    newer = day + timedelta(days=7)

    def garble(rel: str, blob: bytes) -> bytes:
        return blob[:40] + bytes(b ^ 0xFF for b in blob[40:80]) + blob[80:] if rel.endswith("prod.mongo.gpg") else blob

    bad = repackage(delivery["zip"], newer, tmp_path / "in", mutate=garble)
    wh = connect(settings)
    try:
        report = take_in(settings, [bad], wh)
    finally:
        wh.close()
    assert [p for p, _ in report.failed] == [bad]
    assert "prod.mongo.gpg" in report.failed[0][1]
    assert report.taken == [] and report.latest == []
    assert_nothing_changed(data, day, newer)


def test_a_wrong_key_fails_with_a_clear_message(delivery, taken_once, tmp_path, cli) -> None:
    settings, data, day = taken_once
    newer = day + timedelta(days=7)
    package = repackage(delivery["zip"], newer, tmp_path / "in")
    result = cli(["intake", str(package)], settings=settings, env=env_for(settings, delivery["other"]))
    assert result.exit_code == 1
    text = result.output
    assert "No secret key" in text and str(delivery["other"]) in text and ".gpg" in text
    assert_nothing_changed(data, day, newer)
    # an event file with the wrong key: not in events/, no temporary file
    day_file = delivery["events"][0]
    (data / "clickstream_logs" / "events" / day_file.name.removesuffix(".gpg")).unlink()
    result = cli(["intake", str(day_file)], settings=settings, env=env_for(settings, delivery["other"]))
    assert result.exit_code == 1 and day_file.name in result.output and "No secret key" in result.output
    assert not (data / "clickstream_logs" / "events" / day_file.name.removesuffix(".gpg")).exists()
    assert leftovers(data) == []


def test_a_zip_with_a_dot_dot_entry_is_refused(delivery, taken_once, tmp_path, cli) -> None:
    settings, data, day = taken_once
    newer = day + timedelta(days=7)
    evil = repackage(delivery["zip"], newer, tmp_path / "in", extra={f"UQx-{newer}/../../../escaped.sql.gpg": b"x"})
    result = cli(["intake", str(evil)], settings=settings, env=env_for(settings, delivery["home"]))
    assert result.exit_code == 1
    text = result.output
    assert "'..'" in text and "escaped.sql.gpg" in text and evil.name in text
    assert not list(tmp_path.rglob("escaped.sql*"))
    assert_nothing_changed(data, day, newer)


def test_a_truncated_event_file_is_not_taken_in(delivery, taken_once, tmp_path) -> None:
    settings, data, _day = taken_once
    source = delivery["events"][0]
    later = tmp_path / "in" / source.name.replace(source.name.split("-events-")[1][:10], "2030-01-01")
    later.parent.mkdir(parents=True)
    later.write_bytes(source.read_bytes()[: source.stat().st_size - 30])
    wh = connect(settings)
    try:
        report = take_in(settings, [later], wh)
    finally:
        wh.close()
    assert len(report.failed) == 1 and later.name in report.failed[0][1]
    assert not (data / "clickstream_logs" / "events" / later.name.removesuffix(".gpg")).exists()
    assert leftovers(data) == []


# -- incremental ----------------------------------------------------------------------------------
def test_taking_in_the_same_delivery_twice_does_nothing_the_second_time(delivery, taken_once) -> None:
    settings, data, day = taken_once
    files = sorted(p for p in data.rglob("*") if p.is_file())
    before = {p: p.stat().st_mtime_ns for p in files}
    count = query_rows(settings, "SELECT count(*) FROM intake_files")[0][0]
    wh = connect(settings)
    try:
        report = take_in(settings, [delivery["folder"]], wh)
    finally:
        wh.close()
    assert report.taken == [] and report.failed == [] and report.latest == []
    assert sorted(report.unchanged) == sorted([delivery["zip"], *delivery["events"]])
    assert {p: p.stat().st_mtime_ns for p in sorted(p for p in data.rglob("*") if p.is_file())} == before
    assert query_rows(settings, "SELECT count(*) FROM intake_files")[0][0] == count
    # recorded: the package, each of its members, each event file
    with zipfile.ZipFile(delivery["zip"]) as zf:
        members = [n for n in zf.namelist() if not n.endswith(".failed")]
    kinds = dict(query_rows(settings, "SELECT kind, count(*) FROM intake_files WHERE state = 'done' GROUP BY kind"))
    assert kinds == {"package": 1, "package_file": len(members), "events": len(delivery["events"])}


def test_a_newer_package_moves_latest_and_an_older_one_does_not(delivery, taken_once, tmp_path) -> None:
    settings, data, day = taken_once
    newer, older = day + timedelta(days=7), day - timedelta(days=7)
    wh = connect(settings)
    try:
        report = take_in(settings, [repackage(delivery["zip"], newer, tmp_path / "in")], wh)
        assert report.ok and os.readlink(data / "database_state" / "latest") == newer.isoformat()
        report = take_in(settings, [repackage(delivery["zip"], older, tmp_path / "in")], wh)
        assert report.ok and report.latest == []
        assert os.readlink(data / "database_state" / "latest") == newer.isoformat()
        assert (data / "database_state" / older.isoformat()).is_dir()  # taken in, just not latest
        assert any("older" in n for n in report.notes)
    finally:
        wh.close()
    assert leftovers(data) == []


def test_a_redelivered_package_with_other_content_is_taken_in_again(delivery, taken_once, tmp_path) -> None:
    settings, data, day = taken_once
    newer = day + timedelta(days=7)
    wh = connect(settings)
    try:
        first = take_in(settings, [repackage(delivery["zip"], newer, tmp_path / "a")], wh)
        assert first.ok and first.redelivered == []
        dropped = "-prod.mongo.gpg"
        second_zip = repackage(delivery["zip"], newer, tmp_path / "b", mutate=lambda rel, blob: None if rel.endswith(dropped) else blob)
        again = take_in(settings, [second_zip], wh)
    finally:
        wh.close()
    assert again.redelivered == [second_zip] and len(again.taken) == 1
    folder = data / "database_state" / newer.isoformat()
    assert not list(folder.glob("*-prod.mongo")) and list(folder.glob("*-auth_user-prod-analytics.sql"))
    notes = query_rows(settings, f"SELECT note FROM intake_files WHERE kind = 'package' AND name = 'UQx-{newer}.zip' ORDER BY id")
    assert [n for (n,) in notes][-1].startswith("re-delivered")
    assert leftovers(data) == []


# -- options and the daemon's entry point ---------------------------------------------------------
def test_course_and_org_settings_leave_files_undecrypted(delivery, tmp_path, settings_for) -> None:
    data = tmp_path / "data"
    data.mkdir()
    settings = settings_for(data, gnupg_home=delivery["home"], exclude_courses=["*HYPERS*"])
    wh = connect(settings)
    try:
        report = take_in(settings, [delivery["zip"]], wh)
        assert report.ok
        folder = data / "database_state" / _package_date(delivery["zip"]).isoformat()
        names = [p.name for p in folder.rglob("*") if p.is_file()]
        with zipfile.ZipFile(delivery["zip"]) as zf:
            expected = [n for n in zf.namelist() if "HYPERS" not in n and n.endswith(".gpg")]
        assert names and not [n for n in names if "HYPERS" in n] and len(names) == len(expected)
        assert report.excluded and "course" in report.excluded[0][1]

        other = tmp_path / "data2"
        other.mkdir()
        left = settings_for(other, gnupg_home=delivery["home"], exclude_orgs=["UQx"])
        report = take_in(left, [delivery["zip"], *delivery["events"]], wh)
        assert report.ok and report.taken == [] and len(report.excluded) == 1 + len(delivery["events"])
        assert not any(p.is_file() for p in other.rglob("*"))
    finally:
        wh.close()


def test_edge_files_are_decrypted_only_when_edge_is_on(delivery, tmp_path, settings_for) -> None:
    with zipfile.ZipFile(delivery["zip"]) as zf:
        member = next(n for n in zf.namelist() if n.endswith("-auth_user-prod-analytics.sql.gpg"))
        blob = zf.read(member)
    edge_member = member.replace("-prod-analytics", "-edge-analytics")
    package = repackage(delivery["zip"], _package_date(delivery["zip"]), tmp_path / "in", extra={edge_member: blob})
    for edge in (False, True):
        data = tmp_path / f"data-{edge}"
        settings = settings_for(data, gnupg_home=delivery["home"], edge=edge)
        wh = connect(settings)
        try:
            assert take_in(settings, [package], wh).ok
        finally:
            wh.close()
        decrypted = data / "database_state" / "latest" / Path(edge_member).name.removesuffix(".gpg")
        assert decrypted.exists() == edge
        if edge:
            assert decrypted.read_bytes() == (decrypted.parent / decrypted.name.replace("-edge-", "-prod-")).read_bytes()


def test_take_in_folder_takes_what_arrived_and_does_not_retry_an_unchanged_failure(delivery, tmp_path, settings_for) -> None:
    data, incoming = tmp_path / "data", tmp_path / "incoming"
    data.mkdir()
    incoming.mkdir()
    settings = settings_for(data, gnupg_home=delivery["home"], intake_path=incoming)
    shutil.copy2(delivery["zip"], incoming)
    broken = incoming / "UQx-edx-events-2031-02-03.log.gz.gpg"
    broken.write_bytes(b"not OpenPGP at all")
    wh = connect(settings)
    try:
        report = take_in_folder(settings, incoming, wh, min_age=0)
        assert [s.name for s, _ in report.taken] == [delivery["zip"].name]
        assert [s for s, _ in report.failed] == [broken]
        again = take_in_folder(settings, incoming, wh, min_age=0)
        assert again.failed == [] and again.taken == [] and [p.name for p in again.unchanged] == [delivery["zip"].name]
        assert any("not tried again" in n for n in again.notes)
        fresh = take_in_folder(settings, incoming, wh, min_age=3600)  # everything "still arriving"
        assert fresh.taken == [] and fresh.unchanged == [] and len(fresh.notes) == 2
    finally:
        wh.close()
    assert (data / "database_state" / "latest").is_symlink()
    assert leftovers(data) == []


def test_an_extracted_package_folder_is_taken_in_and_left_as_delivered(delivery, tmp_path, settings_for) -> None:
    incoming = tmp_path / "incoming"
    with zipfile.ZipFile(delivery["zip"]) as zf:
        zf.extractall(incoming)
    folder = incoming / delivery["zip"].name.removesuffix(".zip")
    before = sorted(p.name for p in folder.rglob("*"))
    data = tmp_path / "data"
    settings = settings_for(data, gnupg_home=delivery["home"])
    wh = connect(settings)
    try:
        report = take_in(settings, [folder], wh)
        assert report.ok and len(report.taken) == 1
        assert take_in(settings, [folder], wh).unchanged == [folder]
    finally:
        wh.close()
    assert sorted(p.name for p in folder.rglob("*")) == before
    got = data / "database_state" / "latest"
    expected = {str(p.relative_to(folder)).removesuffix(".gpg") for p in folder.rglob("*.gpg")}
    assert {str(p.relative_to(got.resolve())) for p in got.resolve().rglob("*") if p.is_file()} == expected


def test_a_key_with_a_passphrase_needs_the_passphrase_file(delivery, tmp_path, settings_for) -> None:
    import subprocess

    home = tmp_path / "gnupg-pass"
    gpg.prepare_home(home)
    (home / "gpg-agent.conf").write_text("s2k-count 65536\n")  # a fixed, cheap key hash: no seconds of calibration
    uid = "Protected <protected@optimus.invalid>"
    subprocess.run(
        [
            "gpg",
            "--batch",
            "--homedir",
            str(home),
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "sekrit",
            "--quick-gen-key",
            uid,
            "future-default",
            "default",
            "never",
        ],
        check=True,
        capture_output=True,
    )
    try:
        plain = delivery["sample"] / "clickstream_logs" / "events" / delivery["events"][0].name.removesuffix(".gpg")
        source = tmp_path / delivery["events"][0].name
        gpg.encrypt(plain, source, home=home, recipient=gpg.find_key(home, uid))
        data = tmp_path / "data"
        right, wrong = tmp_path / "pass", tmp_path / "wrong"
        right.write_text("sekrit\n")
        wrong.write_text("guess\n")
        target = data / "clickstream_logs" / "events" / plain.name
        wh = connect(settings_for(data))
        try:
            for passphrase_file, expected in ((None, "set 'gnupg_passphrase_file'"), (wrong, "is wrong")):
                report = take_in(settings_for(data, gnupg_home=home, gnupg_passphrase_file=passphrase_file), [source], wh)
                assert len(report.failed) == 1 and expected in report.failed[0][1] and source.name in report.failed[0][1]
                assert not target.exists() and leftovers(data) == []
            report = take_in(settings_for(data, gnupg_home=home, gnupg_passphrase_file=right), [source], wh)
        finally:
            wh.close()
        assert report.ok and target.read_bytes() == plain.read_bytes()
    finally:
        gpg.stop_agent(home)


def test_with_several_data_paths_a_delivery_goes_to_the_one_named_after_its_org(delivery, tmp_path, settings_for) -> None:
    uqx, other = tmp_path / "uqx", tmp_path / "other"
    settings = settings_for(uqx, gnupg_home=delivery["home"], data_paths=[other, uqx])
    wh = connect(settings)
    try:
        assert take_in(settings, [delivery["zip"]], wh).ok
        assert (uqx / "database_state" / "latest").is_symlink() and not other.exists()
        unnamed = settings_for(uqx, gnupg_home=delivery["home"], data_paths=[other, tmp_path / "third"])
        report = take_in(unnamed, [delivery["zip"]], wh)
        assert len(report.failed) == 1 and "--data-path" in report.failed[0][1]
    finally:
        wh.close()


def test_the_daemon_takes_in_the_intake_folder_before_it_scans(delivery, tmp_path, settings_for) -> None:
    from optimus.daemon import Daemon
    from optimus.pipeline import Pipeline

    data, incoming = tmp_path / "data", tmp_path / "incoming"
    data.mkdir()
    incoming.mkdir()
    settings = settings_for(data, gnupg_home=delivery["home"], intake_path=incoming)
    arrived = incoming / delivery["zip"].name
    shutil.copy2(delivery["zip"], arrived)
    os.utime(arrived, (1_000_000_000, 1_000_000_000))  # arrived long ago: no longer "still arriving"
    daemon = Daemon(settings, settle=0.0, watch=False)
    daemon.wh = connect(settings)
    try:
        daemon.pipeline = Pipeline(settings, daemon.wh)
        daemon.pipeline.setup()
        daemon.scan()
        daemon.scan()  # the stability filter registers what two looks agree on
        queued = daemon.wh.query("SELECT count(*) FROM ingest_files WHERE service = 'DatabaseState'")[0][0]
    finally:
        daemon.wh.close()
    assert (data / "database_state" / "latest").is_symlink()
    assert queued > 0
