"""Forum activity in the logs: reads, searches and votes of the threads the forum dumps hold.

The forum `.mongo` files are written first (their generator is independent of the events); the
threads read back from them (`threads_of`) are what the event writer's forum URL events name, so
that edx2bigquery's forum_person (reads joined to posts by thread) has rows to count. The URLs are
those of the LMS's discussion views (make_forum_analysis.py lists the forms).
"""

from __future__ import annotations

import json
from pathlib import Path

SEARCH_WORDS = ("week", "quiz", "deadline", "video", "example")


def threads_of(path: Path) -> list[tuple[str, str]]:
    """The (thread id, discussion id) of every thread in a forum `.mongo` file, in file order
    (the invalid line the generator writes is skipped)."""
    found: list[tuple[str, str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict) and doc.get("_type") == "CommentThread":
            found.append((doc["_id"]["$oid"], str(doc.get("commentable_id") or "course")))
    return found


def url_event(head: str, ctx: str, path: str, get: str, t: str) -> str:
    """An implicit (server) event of a discussion URL: its payload is the request's GET and POST, as a string."""
    payload = json.dumps(json.dumps({"GET": json.loads(get), "POST": {}}, separators=(",", ":")))
    return (
        f'{head}"event_source": "server", "event_type": "{path}", "name": "{path}", "event": {payload}, '
        f'"page": null, "context": {ctx}"{path}"}}, "time": "{t}"}}\n'
    )


def read_path(cid: str, thread: tuple[str, str]) -> str:
    return f"/courses/{cid}/discussion/forum/{thread[1]}/threads/{thread[0]}"


def search_path(cid: str) -> str:
    return f"/courses/{cid}/discussion/forum/search"


def upvote_path(cid: str, thread: tuple[str, str]) -> str:
    return f"/courses/{cid}/discussion/threads/{thread[0]}/upvote"


def searched_event(head: str, ctx: str, cid: str, query: str, total: int, t: str) -> str:
    """The server's `edx.forum.searched` event."""
    body = json.dumps({"query": query, "page": 1, "total_results": total, "corrected_text": None, "group_id": None})
    return (
        f'{head}"event_source": "server", "event_type": "edx.forum.searched", "name": "edx.forum.searched", '
        f'"event": {body}, "page": null, "context": {ctx}"/courses/{cid}/discussion/forum/search"}}, "time": "{t}"}}\n'
    )
