"""What the sample's video events need for the video tables (services/video_analysis.py): each video's
length (the `duration` its `load_video`/`edx.video.loaded` events carry, and in current courses every
web play, pause and stop event), positions within it, and a
playback speed per learner on the web player. All derived from names, never from the wall clock or
the event stream's random numbers, so that adding them changed no other event of the sample."""

from __future__ import annotations

import zlib
from typing import Any


def video_duration(url_name: str) -> float:
    """The video's length in seconds, with milliseconds (2 to 12 minutes): what its player reports."""
    h = zlib.crc32(url_name.encode())
    return 120 + h % 600 + (h >> 12) % 1000 / 1000


def web_speed(user_id: int) -> str | None:
    """The speed the web player reports in a learner's play, pause and stop events: `1.50`, `1.0`, or
    none (older players sent none)."""
    return ("1.50", "1.0", None)[user_id % 3]


def speed_member(user_id: int) -> str:
    """The `speed` member of a browser payload (a JSON string, so escaped quotes), or nothing."""
    speed = web_speed(user_id)
    return "" if speed is None else f', \\"speed\\": \\"{speed}\\"'


def manifest(courses: list[Any]) -> dict[str, Any]:
    """The manifest's `video_analysis` key: per course id, each video's duration; the speeds by user id rule."""
    return {
        "durations": {
            c.course_id: {url_name: video_duration(url_name) for ch in c.chapters for url_name, _yt, _name in ch.videos} for c in courses
        },
        "speeds": "web play/pause/stop payloads carry speed ('1.50', '1.0', none) by user_id % 3",
    }
