"""How long a small durable write takes in a directory's filesystem, over a few seconds.

Every commit waits for one such write (PostgreSQL's WAL fdatasync), so a stall here
holds every request answered meanwhile: recorded beside the speed probe, it says
whether a run's tail latencies had the disk against them."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.tails import percentile

#: The size of each write: one WAL page.
PAGE = 8192
#: The pages the probe's file has, written and synced before timing and then rewritten
#: in turn: a write that grew the file would also sync its size through the
#: filesystem's journal, which PostgreSQL's preallocated WAL segments do not.
PAGES = 1024
#: A write longer than this counts as a stall (ms).
STALL_MS = 50.0


def fsync_probe(directory: Path, seconds: float = 5.0, pace_s: float = 0.01) -> dict[str, float]:
    """Rewrite a page and fdatasync it every ``pace_s`` for ``seconds``: p50, p99 and the
    longest (ms), and how many took over ``STALL_MS``. Paced, as commits come at a
    moderate rate, with the machine idle between them; at least one write."""
    path = directory / f".fsync-probe-{os.getpid()}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    page = b"\0" * PAGE
    took: list[float] = []
    try:
        os.pwrite(fd, page * PAGES, 0)
        os.fsync(fd)
        end = time.perf_counter() + seconds
        while not took or time.perf_counter() < end:
            start = time.perf_counter()
            os.pwrite(fd, page, (len(took) % PAGES) * PAGE)
            os.fdatasync(fd)
            took.append((time.perf_counter() - start) * 1000)
            time.sleep(pace_s)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    took.sort()
    return {
        "writes": len(took),
        "p50_ms": round(percentile(took, 50), 3),
        "p99_ms": round(percentile(took, 99), 3),
        "max_ms": round(took[-1], 3),
        "over_50ms": sum(t > STALL_MS for t in took),
    }
