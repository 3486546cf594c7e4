"""The sample's textbook and wiki events: what a learner reads besides the courseware (the `text`
kind of edx2bigquery's time on task: `textbook.*` events and `/wiki/` pages).

Kept apart from events.py so that each writer stays small; `s` is an events.Session.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

HOST = "courses.edx.org"
HMS = [f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)]
IMPLICIT = '"{\\"POST\\": {}, \\"GET\\": {}}"'
WIKI_PAGES = ("", "week-1-notes/", "faq/", "glossary/")


def textbook_page(s: Any, t: str, rand: Any) -> str:
    """A browser `textbook.pdf.page.navigated` event of the course's PDF textbook (the LMS's pdfbook tab)."""
    et = "textbook.pdf.page.navigated"
    page = 1 + int(rand() * 40)
    return (
        f'{s.head}"event_source": "browser", "event_type": "{et}", "name": "{et}", '
        f'"event": "{{\\"chapter\\": \\"/static/book.pdf\\", \\"page\\": {page}, \\"name\\": \\"{et}\\"}}", '
        f'"page": "https://{HOST}/courses/{s.ct.cid}/pdfbook/0/", "context": {s.ctx}"/event"}}, "time": "{t}"}}\n'
    )


def wiki_page(s: Any, t: str, rand: Any) -> str:
    """An implicit (server) event of a page of the course wiki: its URL path is the event type."""
    path = f"/courses/{s.ct.cid}/wiki/course/{WIKI_PAGES[int(rand() * len(WIKI_PAGES))]}"
    return (
        f'{s.head}"event_source": "server", "event_type": "{path}", "event": {IMPLICIT}, '
        f'"page": null, "context": {s.ctx}"{path}"}}, "time": "{t}"}}\n'
    )


def session(s: Any, key: str, uid: int, prefix: str, sec: int) -> Iterator[tuple[str, str]]:
    """(kind, line) of the reading one learner-day session ends with: every fourth learner (uid % 4 == 1)
    turns 2 to 4 textbook pages, 20 s to 6 min apart (some gaps under 5 minutes, some between 5 and 30),
    then on one day in two opens a wiki page. Drawn from a random stream of its own (`key`), so that
    the other events of the sample are those written without it."""
    if uid % 4 != 1:
        return
    rng = random.Random(f"reading:{key}")
    rand = rng.random
    for _ in range(2 + int(rand() * 3)):
        sec = min(86399, sec + 20 + int(rand() * 340))
        t = f"{prefix}{HMS[sec]}.{int(rand() * 1e6):06d}+00:00"
        yield "textbook_page", textbook_page(s, t, rand)
    if rand() < 0.5:
        sec = min(86399, sec + 30 + int(rand() * 200))
        yield "wiki_page", wiki_page(s, f"{prefix}{HMS[sec]}.{int(rand() * 1e6):06d}+00:00", rand)
