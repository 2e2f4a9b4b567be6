"""Wall time and peak memory of each long stage, for `results.json` under `timing.stages`."""

from __future__ import annotations

import resource
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator


def peak_rss_mb() -> float:
    """The process's peak resident memory so far (a high-water mark: it never goes down)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / (1 << 20) if sys.platform == "darwin" else kib / 1024  # macOS reports bytes


class Stages:
    """`with stages("etl"): ...` records {seconds, peak_rss_mb} under that name."""

    def __init__(self) -> None:
        self.record: dict[str, dict[str, Any]] = {}

    @contextmanager
    def __call__(self, name: str, **extra: Any) -> Iterator[None]:
        t = time.perf_counter()
        yield
        self.record[name] = {"seconds": round(time.perf_counter() - t, 2), "peak_rss_mb": round(peak_rss_mb()), **extra}
