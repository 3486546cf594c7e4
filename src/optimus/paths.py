"""One rule for every path Optimus writes: it must resolve to a place inside its folder.

Names read from data (a course's org, a table, an archive member) are checked for their shape
where they are read; this is the second, structural check at the moment a path is built, so
that no name that slipped through a shape check can still land outside www, the exports or a
data path (symbolic links on the way are resolved first).
"""

from __future__ import annotations

import os
from pathlib import Path

from optimus.errors import UnsafeName


def is_inside(path: Path | str, folder: Path | str) -> bool:
    """Whether `path`, resolved (links followed, `..` collapsed), is `folder` itself or below it."""
    real_folder = os.path.realpath(folder)
    real = os.path.realpath(path)
    return real == real_folder or real.startswith(real_folder.rstrip(os.sep) + os.sep)


def inside(folder: Path | str, *parts: str, what: str = "a name from data") -> Path:
    """`folder / parts...`, refused with UnsafeName unless it resolves inside `folder`.

    :param what: says where the parts came from, for the message (e.g. "course_structure.json of X").
    """
    for part in parts:
        if "\x00" in part:
            raise UnsafeName(f"{what}: {part!r} holds a NUL byte; it cannot be part of a path")
    path = Path(folder).joinpath(*parts)
    if not is_inside(path, folder):
        raise UnsafeName(f"{what}: {'/'.join(parts)!r} would write {os.path.realpath(path)}, outside {folder}; refused")
    return path
