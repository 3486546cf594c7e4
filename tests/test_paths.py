"""paths.inside: the one check that a path built from a name stays inside its folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from optimus.errors import UnsafeName
from optimus.paths import inside, is_inside


@pytest.mark.parametrize("name", ["../x.json", "/etc/passwd", "a/../../x", "ev\x00il.json"])
def test_a_name_that_leaves_the_folder_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsafeName) as err:
        inside(tmp_path / "www", name, what="course X")
    assert "course X" in str(err.value)


def test_a_link_inside_the_folder_that_points_outside_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "www"
    folder.mkdir()
    (folder / "out").symlink_to(tmp_path)
    with pytest.raises(UnsafeName):
        inside(folder, "out", "x.json")
    assert not is_inside(folder / "out" / "x.json", folder)


def test_names_inside_are_given_back(tmp_path: Path) -> None:
    assert inside(tmp_path, "a", "b.json") == tmp_path / "a" / "b.json"
    assert is_inside(tmp_path / "a" / ".." / "b", tmp_path)
    assert not is_inside(tmp_path.parent / (tmp_path.name + "x"), tmp_path)  # a sibling sharing its prefix
