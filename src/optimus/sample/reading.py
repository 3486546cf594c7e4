"""The sample's textbook and wiki events: what a learner reads besides the courseware (the `text`
kind of edx2bigquery's time on task: `textbook.*` events and `/wiki/` pages).

Kept apart from events.py so that each writer stays small; `s` is an events.Session.
"""

from __future__ import annotations

from typing import Any

HOST = "courses.edx.org"
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
