"""The small-cell rule of the open aggregate endpoints (docs/dashboard.md, "Small cells"): a count of
1 to 4 learners can point at a person, so it is withheld (null, shown "<5")."""

from __future__ import annotations

from typing import Any

MIN_CELL = 5  # a count of 1 to MIN_CELL - 1 learners is withheld (shown "<5")
WITHHELD = f"<{MIN_CELL}"


def shown(n: int | None) -> str | None:
    """How a count of learners is shown: exact when 0 or at least MIN_CELL, else '<5'."""
    if n is None:
        return None
    return WITHHELD if 0 < n < MIN_CELL else str(n)


def one(n: int | None) -> int | None:
    """A single count of learners: None (shown '<5') when 1 to MIN_CELL - 1."""
    return None if n is not None and 0 < n < MIN_CELL else n


def breakdown(counts: list[tuple[str, int]], key: str = "learners") -> list[dict[str, Any]]:
    """A partition of the course's learners (its total is published): counts of 1 to 4 withheld, and when
    only one is withheld the next smallest count too, so that no withheld count follows by subtraction."""
    items: list[dict[str, Any]] = [{"label": label, key: int(n)} for label, n in counts]
    small = [i for i, item in enumerate(items) if 0 < item[key] < MIN_CELL]
    if len(small) == 1:
        rest = sorted((item[key], i) for i, item in enumerate(items) if item[key] >= MIN_CELL)
        if rest:
            small.append(rest[0][1])
    for i, item in enumerate(items):
        item["shown"] = WITHHELD if i in small else str(item[key])
        if i in small:
            item[key] = None
    return items
