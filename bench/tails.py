"""Whether a run's slowest requests were one stall or spread over the run.

On this shared machine a run's p99 at a moderate offered rate is often set by one
episode of 100-600 ms in which every commit waited (the disk probe, ``bench.disk``,
shows such fdatasync stalls on an idle machine at some hours and none at others),
rather than by queueing. The share of the slowest 1% that were answered within the
half-second holding most of them tells the two apart: near 1, one stall; a few
hundredths, spread."""

from __future__ import annotations

from bisect import bisect_right

#: The span the slow requests are looked for in (seconds).
SPAN_S = 0.5


def slow_in_worst_span(
    latencies: list[float], done_s: list[float], span_s: float = SPAN_S
) -> float:
    """Of the slowest 1% of the requests (at least one), the largest share answered
    within any ``span_s`` (``latencies`` and ``done_s`` per request, in the same order)."""
    if not latencies:
        return 0.0
    count = max(1, len(latencies) // 100)
    by_latency = sorted(zip(latencies, done_s, strict=True), reverse=True)
    times = sorted(t for _, t in by_latency[:count])
    most = max(bisect_right(times, t + span_s) - i for i, t in enumerate(times))
    return round(most / count, 3)
