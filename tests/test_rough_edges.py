"""Issue 20's rough edges, each shown as a new user meets it (the dashboard's are in tests/test_dashboard.py)."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from conftest import make_data_path, query_rows
from optimus.config import Settings

REPO = Path(__file__).resolve().parents[1]


def _run_fixture_test(tmp_path: Path, ci: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env.update(OPTIMUS_TEST_SHARED=str(tmp_path / "no-shared"), CI=ci)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_clickstream.py::test_second_ingest_does_nothing"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_without_shared_fixtures_tests_skip_outside_ci_and_fail_under_ci(tmp_path: Path) -> None:
    outside = _run_fixture_test(tmp_path, "")
    assert outside.returncode == 0, outside.stdout + outside.stderr
    assert "skipped" in outside.stdout and "error" not in outside.stdout.lower(), outside.stdout
    under = _run_fixture_test(tmp_path, "true")
    assert under.returncode != 0, under.stdout
    assert "../shared" in under.stdout and "OPTIMUS_TEST_SHARED" in under.stdout, under.stdout


def test_optimus_toml_is_ignored_by_git() -> None:
    lines = (REPO / ".gitignore").read_text().splitlines()
    assert "optimus.toml" in lines or "/optimus.toml" in lines


def test_readme_says_the_tests_need_shared() -> None:
    readme = (REPO / "README.md").read_text()
    assert "../shared" in readme and "OPTIMUS_TEST_SHARED" in readme


def test_setup_env_as_non_root_with_packages_missing_fails_at_once_with_the_command(tmp_path: Path) -> None:
    """scripts/setup-env test, run by a user who is not root and lacks Chromium or GnuPG, stops before installing
    anything and prints the apt-get command to run (it never calls sudo itself)."""
    root = tmp_path / "project"
    (root / "scripts").mkdir(parents=True)
    (root / "scripts" / "setup-env").write_bytes((REPO / "scripts" / "setup-env").read_bytes())
    (root / "scripts" / "setup-env").chmod(0o755)
    bin_dir = tmp_path / "bin"  # a PATH with python3 and the few tools the script uses, but no chromium, gpg or pg_ctl
    bin_dir.mkdir()
    for tool in ("python3", "bash", "ls", "dirname", "grep", "cat"):
        found = next((Path(d) / tool for d in ("/usr/local/bin", "/usr/bin", "/bin") if (Path(d) / tool).exists()), None)
        if found is not None:
            (bin_dir / tool).symlink_to(found)
    (bin_dir / "id").write_text("#!/bin/sh\necho 1000\n")  # not root
    (bin_dir / "id").chmod(0o755)
    (bin_dir / "sudo").write_text(f"#!/bin/sh\ntouch {tmp_path}/sudo-called\nexit 1\n")
    (bin_dir / "sudo").chmod(0o755)
    done = subprocess.run(
        ["bash", str(root / "scripts" / "setup-env"), "test"],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert "sudo apt-get install -y chromium gnupg" in done.stderr, done.stderr
    assert not (root / ".venv").exists(), "it stopped before making the venv and installing Python packages"
    assert not (tmp_path / "sudo-called").exists()


def test_every_command_says_its_config_and_warehouse_on_stderr_and_status_shows_them(tmp_path: Path, cli: Any) -> None:
    """A shell left with OPTIMUS_CONFIG set (as the demo suggests) must not ingest into the demo warehouse unnoticed."""
    make_data_path(tmp_path / "data")
    config_file = tmp_path / "demo.toml"
    config_file.write_text('data_paths = ["data"]\nwarehouse = "wh/my.duckdb"\n')
    env = {"OPTIMUS_CONFIG": str(config_file)}
    warehouse = str((tmp_path / "wh" / "my.duckdb").resolve())
    said = f"config {config_file.resolve()} (from $OPTIMUS_CONFIG); warehouse {warehouse}"
    ingest = cli(["ingest"], env=env)
    assert ingest.exit_code == 0, ingest.output
    assert said in ingest.stderr and said not in ingest.stdout
    query = cli(["sql", "--csv", "SELECT 1 AS one"], env=env)
    assert query.exit_code == 0, query.output
    assert query.stdout.splitlines() == ["one", "1"]  # stdout stays data only
    assert said in query.stderr
    status = cli(["status"], env=env)
    assert said in status.stdout
    data = json.loads(cli(["status", "--json"], env=env).stdout)
    assert data["config"] == str(config_file.resolve()) and data["warehouse"] == warehouse
    explicit = cli(["status", "--config", str(config_file)])
    assert f"config {config_file.resolve()} (from --config)" in explicit.stderr


def test_a_server_warehouse_is_named_without_its_password() -> None:
    settings = Settings(warehouse="postgresql://writer:hunter2@db.example:5432/optimus")
    assert "hunter2" not in settings.describe()
    assert "postgresql://writer:***@db.example:5432/optimus" in settings.describe()


def test_sample_and_ingest_count_malformed_lines_alike_and_say_the_failed_export_is_left_alone(tmp_path: Path, cli: Any) -> None:
    """The sample says how many malformed lines it wrote (events and forums apart); the ingest quarantines as many,
    per service; the README's recipe shows every one of them; the deliberately failed export is said to be left alone."""
    sample = cli(["sample", str(tmp_path / "data"), "--courses", "2", "--learners", "20", "--days", "2", "--seed", "3"])
    assert sample.exit_code == 0, sample.output
    said = re.search(r"on purpose: (\d+) malformed lines \((\d+) in the event files, (\d+) in the forum dumps\)", sample.stdout)
    assert said, sample.stdout
    total, events, forums = (int(g) for g in said.groups())
    assert total == events + forums and events > 0 and forums > 0
    assert "deliberately failed export" in sample.stdout and "Optimus leaves alone" in sample.stdout
    settings = Settings(
        data_paths=[tmp_path / "data"], warehouse=str(tmp_path / "wh.duckdb"), export_path=tmp_path / "x", www_path=tmp_path / "w"
    )
    ingest = cli(["ingest"], settings)
    assert ingest.exit_code == 0, ingest.output
    assert f"{total:,} malformed line(s) quarantined (Clickstream {events:,}, DiscussionForums {forums:,})" in ingest.stdout
    assert "failed export: edX could not export this table" in ingest.stdout and "left alone" in ingest.stdout
    # TimeFinder's rows per table, not added up (rough edge 6): a first run writes every row of each
    days = query_rows(settings, "SELECT count(*) FROM person_course_day")[0][0]
    anomalies = query_rows(settings, "SELECT count(*) FROM event_time_anomalies")[0][0]
    assert days > 0 and anomalies > 0, "the sample has late events"
    assert f"TimeFinder rows per table: person_course_day {days:,}, event_time_anomalies {anomalies:,}" in ingest.stdout
    assert query_rows(settings, "SELECT rows FROM service_runs WHERE service = 'TimeFinder'") == [(days,)]
    recipe = re.search(r'optimus sql "(SELECT \'events\' AS kind.*?)"\n', (REPO / "README.md").read_text())
    assert recipe, "the README's recipe for quarantined lines"
    shown = cli(["sql", "--csv", recipe.group(1)], settings)
    assert shown.exit_code == 0, shown.output
    rows = list(csv.DictReader(io.StringIO(shown.stdout)))
    assert len(rows) == total
    assert {r["kind"] for r in rows} == {"events", "forum"}
    assert all(r["path"] and r["line"] and r["reason"] for r in rows)
