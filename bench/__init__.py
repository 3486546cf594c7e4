"""Optimus's benchmark suite: `python -m bench` (or ./scripts/bench). See docs/performance.md."""
