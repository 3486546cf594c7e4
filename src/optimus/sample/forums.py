"""Forum `.mongo` files: mongoexport Extended JSON, one document per line.

Mixes the two `$date` spellings (epoch milliseconds and ISO strings) and adds an invalid
line, since the original ingestor died on exactly that.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

from optimus.sample.course import Course
from optimus.sample.people import Learner

EPOCH = dt.datetime(1970, 1, 1)
TITLES = [
    "Stuck on the week {w} quiz",
    "Is the video for lesson {w}.2 missing subtitles?",
    "Great resource for week {w}",
    "Study group for week {w}?",
    "Question about the ¿examples? in week {w}",
    "Deadline for assignment {w}",
]
BODIES = [
    "I tried the second example twice and got a different answer. What am I missing?",
    "Thanks for the clear explanation!\nOne follow-up: does this hold in general?",
    "Here is a link that helped me: https://en.wikipedia.org/wiki/Example",
    "Ich habe eine Frage zu Aufgabe 3 — danke!",
    "我也有同样的问题。",
    "Agreed, +1",
]


def _oid(rng: random.Random, when: dt.datetime) -> dict[str, str]:
    """An ObjectId whose first 4 bytes are its creation time, as MongoDB makes them."""
    return {"$oid": f"{int((when - EPOCH).total_seconds()):08x}{rng.getrandbits(64):016x}"}


def _date(when: dt.datetime, iso: bool) -> dict[str, object]:
    if iso:
        return {"$date": when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"}
    return {"$date": int((when - EPOCH).total_seconds() * 1000)}


def _votes(rng: random.Random) -> dict:
    up = rng.randint(0, 4)
    return {"up": [str(rng.randint(4000, 9000)) for _ in range(up)], "down": [], "up_count": up, "down_count": 0, "count": up, "point": up}


def write_forum(
    folder: Path, course: Course, ci: int, learners: list[Learner], start: dt.date, days: int, seed: int, malformed: bool
) -> tuple[str, dict]:
    """Write the course's `.mongo` file; return its name and counts for the manifest."""
    rng = random.Random(f"{seed}:forum:{ci}")
    enrolled = [learner for learner in learners if any(e.course == ci for e in learner.enrollments)]
    posters = [learner for learner in enrolled if learner.kind == "forum_only" or (learner.kind == "active" and rng.random() < 0.15)]
    if not posters and enrolled:
        posters = enrolled[:1]
    t0 = dt.datetime.combine(start, dt.time()) - dt.timedelta(days=5)
    span = (days + 5) * 86400
    discussions = [b.attrs["discussion_id"] for b, _ in course.walk() if b.category == "discussion"] or ["course"]
    posts: dict[str, int] = {}
    threads = comments = replies = lines = n_bad = 0
    name = f"{course.prefix}-prod.mongo"
    # the invalid line goes before this poster's threads (or at the end when nobody posts)
    bad_at = rng.randint(0, len(posters)) if malformed else -1
    with open(folder / name, "w", encoding="utf-8", newline="\n") as fh:
        for pi, author in enumerate(posters + [None]):
            if pi == bad_at:
                fh.write('{ "_id" : { "$oid" : "65e5a1b2c3d4e5f6a7b8c9d0" }, "_type" : "Comment", "body" : "unterminated\n')
                n_bad += 1
            if author is None:
                break
            for _ in range(1 + (author.user_id % 2)):
                created = t0 + dt.timedelta(seconds=rng.randint(0, span - 1), milliseconds=rng.randint(0, 999))
                tid = _oid(rng, created)
                iso = rng.random() < 0.5
                kids: list[dict] = []
                last = created
                first = threads == 0  # the first thread always has a response and a reply
                for ri in range(rng.randint(1 if first else 0, 3)):
                    when = last = last + dt.timedelta(minutes=rng.randint(5, 600))
                    resp = _comment(rng, course, rng.choice(posters), tid, when, None, depth=0)
                    kids.append(resp)
                    if (first and ri == 0) or rng.random() < 0.4:
                        when = last = last + dt.timedelta(minutes=rng.randint(1, 90))
                        kids.append(_comment(rng, course, rng.choice(posters), tid, when, resp["_id"], depth=1))
                thread = {
                    "_id": tid,
                    "votes": _votes(rng),
                    "visible": True,
                    "abuse_flaggers": [],
                    "historical_abuse_flaggers": [],
                    "thread_type": rng.choice(["discussion", "question"]),
                    "context": "course",
                    "comment_count": len(kids),
                    "at_position_list": [],
                    "title": rng.choice(TITLES).format(w=rng.randint(1, 6)),
                    "body": rng.choice(BODIES),
                    "course_id": course.course_id,
                    "commentable_id": rng.choice(discussions),
                    "_type": "CommentThread",
                    "endorsed": False,
                    "anonymous": False,
                    "anonymous_to_peers": False,
                    "author_id": str(author.user_id),
                    "author_username": author.username,
                    "created_at": _date(created, iso),
                    "updated_at": _date(last, iso),
                    "last_activity_at": _date(last, iso),
                    "closed": False,
                    "pinned": rng.random() < 0.05,
                    "tags_array": [],
                }
                if rng.random() < 0.3:
                    thread["group_id"] = None
                fh.write(json.dumps(thread, ensure_ascii=False) + "\n")
                posts[str(author.user_id)] = posts.get(str(author.user_id), 0) + 1
                threads += 1
                for k in kids:
                    fh.write(json.dumps(k, ensure_ascii=False) + "\n")
                    posts[k["author_id"]] = posts.get(k["author_id"], 0) + 1
                    comments += 1
                    replies += "parent_id" in k
                lines += 1 + len(kids)
    return name, {
        "threads": threads,
        "comments": comments,
        "replies": replies,
        "malformed": n_bad,
        "lines": lines + n_bad,
        "posts_by_user": dict(sorted(posts.items(), key=lambda kv: int(kv[0]))),
    }


def _comment(rng: random.Random, course: Course, who: Learner, tid: dict, when: dt.datetime, parent: dict | None, depth: int) -> dict:
    iso = rng.random() < 0.5
    doc = {
        "_id": _oid(rng, when),
        "votes": _votes(rng),
        "visible": True,
        "abuse_flaggers": [],
        "historical_abuse_flaggers": [],
        "parent_ids": [parent] if parent else [],
        "at_position_list": [],
        "body": rng.choice(BODIES),
        "course_id": course.course_id,
        "_type": "Comment",
        "endorsed": False,
        "anonymous": False,
        "anonymous_to_peers": False,
        "author_id": str(who.user_id),
        "author_username": who.username,
        "comment_thread_id": tid,
        "created_at": _date(when, iso),
        "updated_at": _date(when, iso),
        "depth": depth,
        "sk": f"{tid['$oid']}",
        "endorsement": None,
    }
    if parent:
        doc["parent_id"] = parent
    elif rng.random() < 0.2:
        doc["endorsed"] = True
        doc["endorsement"] = {"user_id": str(4000 + rng.randint(0, 999)), "time": _date(when + dt.timedelta(hours=3), True)}
    return doc
