"""Timing and memory of commands: each figure is the median of several runs, with min and max."""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Figure:
    """Seconds (and peak RSS) of one measurement over several runs."""

    seconds: list[float] = field(default_factory=list)
    peak_rss_mb: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    def as_dict(self) -> dict:
        out = {
            "median_s": round(self.median, 4),
            "min_s": round(min(self.seconds), 4),
            "max_s": round(max(self.seconds), 4),
            "runs": len(self.seconds),
        }
        if self.peak_rss_mb:
            out["peak_rss_mb"] = round(max(self.peak_rss_mb), 1)
        return out


def run_process(argv: list[str], env: dict[str, str] | None = None, stdout: int | None = subprocess.DEVNULL) -> tuple[float, float]:
    """Run a command to completion; its wall time and its peak resident memory (MB)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=stdout, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} failed ({os.waitstatus_to_exitcode(status)}): {stderr[-2000:]}")
    return seconds, usage.ru_maxrss / 1024


def repeat(runs: int, prepare: Callable[[], None] | None, measure: Callable[[], tuple[float, float]]) -> Figure:
    figure = Figure()
    for _ in range(runs):
        if prepare:
            prepare()
        seconds, rss = measure()
        figure.seconds.append(seconds)
        figure.peak_rss_mb.append(rss)
    return figure


def gunzip_floor(files: list[Path]) -> Callable[[], tuple[float, float]]:
    """`gzip -dc FILE > /dev/null` over the files: the decompression no ingester avoids."""

    def measure() -> tuple[float, float]:
        total = 0.0
        for path in files:
            seconds, _ = run_process(["gzip", "-dc", str(path)])
            total += seconds
        return total, 0.0

    return measure


def optimus_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "optimus", *args]


def fresh(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    for suffix in (".wal",):
        extra = path.with_name(path.name + suffix)
        if extra.exists():
            extra.unlink()
