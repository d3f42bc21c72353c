"""Whether a run's slowest requests were one stall or spread over the run.

On this shared machine a run's p99 at a moderate offered rate is often set by one
episode of 100-600 ms in which every commit waited (the disk probe, ``bench.disk``,
shows such fdatasync stalls on an idle machine at some hours and none at others),
rather than by queueing. Two figures tell the two apart: the share of the slowest 1%
answered within the half-second holding most of them, and the p99 of the requests
answered outside that half-second. A stall shows as a high share and a much lower p99
outside it; queueing, as a p99 that hardly moves."""

from __future__ import annotations

from bisect import bisect_right

#: The span the slow requests are looked for in (seconds).
SPAN_S = 0.5


def percentile(sorted_values: list[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile of values already sorted (nan for none)."""
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * (len(sorted_values) - 1))))
    return sorted_values[index]


def worst_span(
    latencies: list[float], done_s: list[float], span_s: float = SPAN_S
) -> tuple[float, float]:
    """Of the slowest 1% of the requests (at least one), the largest share answered
    within any ``span_s``, and when that span starts (``latencies`` and ``done_s`` per
    request, in the same order; (0, 0) for none)."""
    if not latencies:
        return 0.0, 0.0
    count = max(1, len(latencies) // 100)
    by_latency = sorted(zip(latencies, done_s, strict=True), reverse=True)
    times = sorted(t for _, t in by_latency[:count])
    most, start = max((bisect_right(times, t + span_s) - i, t) for i, t in enumerate(times))
    return round(most / count, 3), start


def p99_outside(
    latencies: list[float], done_s: list[float], start: float, span_s: float = SPAN_S
) -> float | None:
    """The p99 (seconds) of the requests answered outside ``[start, start + span_s]``
    (None if none is)."""
    rest = sorted(
        lat for lat, t in zip(latencies, done_s, strict=True) if not start <= t <= start + span_s
    )
    return percentile(rest, 99) if rest else None
