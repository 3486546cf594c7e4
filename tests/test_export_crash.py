"""Exports are all-or-nothing per run: a run killed while it exports leaves no partial set and no
temporary file once the next run is done, and the Email CRM delta is written exactly once (issue 14, item 7).

Each case kills a real `optimus ingest` (SIGKILL) at a pause point of the export path, reruns it, and
compares the export folder and the warehouse with a clean run of the same package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import RUN_RECORDS, assert_same_exports, assert_same_tables, kill_when_paused, optimus_process
from optimus.config import Settings
from optimus.sample import generate


@pytest.fixture(scope="module")
def package(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A small sample package and a clean, uninterrupted ingest of it."""
    root = tmp_path_factory.mktemp("export-crash")
    generate(root / "data", courses=2, learners=30, days=2, seed=3)
    clean = sample_settings(root, "clean")
    proc = optimus_process(clean)
    assert proc.wait(180) == 0, proc.stdout.read().decode()
    return {"root": root, "clean": clean}


def sample_settings(root: Path, name: str) -> Settings:
    return Settings(
        data_paths=[root / "data"],
        warehouse=str(root / f"{name}.duckdb"),
        export_path=root / f"{name}-exports",
        www_path=root / f"{name}-www",
        memory_limit="1GB",
    )


@pytest.mark.parametrize(
    "point",
    [
        "export-writing#1",  # the first export file half written
        "export-writing#3",  # some files of a run's set written, the rest not
        "export-written#1",  # Person Course's set written, its run not committed
        "export-written#2",  # the Email CRM delta written, its record not committed
        "export-committed#1",  # Person Course's run committed, its files not yet in place
        "export-committed#2",  # the Email CRM record committed, its file not yet in place
        "export-publishing#2",  # Person Course's run committed, two of its files renamed into place
    ],
)
def test_a_run_killed_while_exporting_leaves_the_clean_runs_exports(package: dict[str, Any], point: str) -> None:
    root = package["root"]
    settings = sample_settings(root, "killed-" + point.replace("#", "-"))
    marker = root / f"paused-{point}"
    proc = optimus_process(settings, OPTIMUS_TEST_PAUSE_AT=point, OPTIMUS_TEST_PAUSE_MARKER=str(marker))
    assert kill_when_paused(proc, marker, timeout=120), proc.stdout.read().decode()
    rerun = optimus_process(settings)
    assert rerun.wait(180) == 0, rerun.stdout.read().decode()
    assert_same_exports(Path(settings.export_path), Path(package["clean"].export_path))
    assert_same_tables(settings.warehouse, package["clean"].warehouse, ignore=RUN_RECORDS)


def test_export_paths_stay_inside_the_export_folder(tmp_path: Path) -> None:
    from optimus import exports
    from optimus.errors import UnsafeName

    root = tmp_path / "exports"
    root.mkdir()
    (root / "link").symlink_to(tmp_path)  # a link inside that points outside
    staged = exports.ExportSet(root, exports.set_name("test"))
    for name in ("../escape.csv", "link/escape.csv", "/etc/escape.csv", ".staging/other/x.csv", "a\x00.csv"):
        with pytest.raises(UnsafeName):
            staged.path(name)
    exports.write_csv(staged.path("deidentified/ok.csv"), ["a"], [[1]])
    staged.seal()
    assert not (root / "deidentified" / "ok.csv").exists()  # nothing visible before the publish
    assert staged.publish() == [root / "deidentified" / "ok.csv"]
    assert (root / "deidentified" / "ok.csv").read_bytes() == b"a\r\n1\r\n"
    assert not (root / ".staging" / staged.name).exists()  # the staging folder goes with the publish
