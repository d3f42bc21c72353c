"""The benchmark's look at where slow requests fell (``bench.tails``) and its disk
probe (``bench.disk``)."""

from __future__ import annotations

from pathlib import Path

from bench import disk, tails


def run_of(slow_at: list[float], count: int = 1000, seconds: float = 10.0) -> tuple:
    """Latencies and answer times of ``count`` requests over ``seconds``, 5 ms each
    except those answered at ``slow_at``, which took 200 ms."""
    done = [i * seconds / count for i in range(count)]
    latencies = [0.005] * count
    for at in slow_at:
        done.append(at)
        latencies.append(0.2)
    return latencies, done


def test_slow_requests_in_one_stall_are_all_in_one_half_second() -> None:
    latencies, done = run_of([3.0 + i * 0.04 for i in range(10)])
    assert tails.worst_span(latencies, done)[0] == 1.0


def test_slow_requests_spread_over_the_run_are_not() -> None:
    latencies, done = run_of([0.5, 2.5, 4.5, 6.5, 8.5, 9.9, 1.5, 3.5, 5.5, 7.5])
    assert tails.worst_span(latencies, done)[0] == 0.1


def test_the_span_counts_from_each_slow_request() -> None:
    # Four within 0.5 s of 6.0, three within 0.5 s of 2.0: the four win, wherever the
    # half-second starts.
    latencies, done = run_of([2.0, 2.2, 2.4, 6.0, 6.1, 6.3, 6.5, 9.0, 9.6, 0.1])
    assert tails.worst_span(latencies, done)[0] == 0.4


def test_no_requests_no_share() -> None:
    assert tails.worst_span([], []) == (0.0, 0.0)


def test_the_p99_outside_the_worst_half_second_leaves_the_stall_out() -> None:
    latencies, done = run_of([3.0 + i * 0.04 for i in range(10)])
    share, start = tails.worst_span(latencies, done)
    assert (share, start) == (1.0, 3.0)
    assert tails.p99_outside(latencies, done, start) == 0.005
    # Spread (30 slow, one every 0.33 s), the slow ones stay: at most two of them are
    # in any half-second.
    latencies, done = run_of([0.1 + i * 0.33 for i in range(30)])
    share, start = tails.worst_span(latencies, done)
    assert share <= 0.2
    assert tails.p99_outside(latencies, done, start) == 0.2


def test_nothing_outside_is_no_p99() -> None:
    assert tails.p99_outside([0.1, 0.2], [0.0, 0.1], 0.0) is None


def test_the_disk_probe_writes_and_leaves_nothing(tmp_path: Path) -> None:
    probe = disk.fsync_probe(tmp_path, seconds=0.05, pace_s=0.0)
    assert probe["writes"] >= 1
    assert 0 <= probe["p50_ms"] <= probe["p99_ms"] <= probe["max_ms"]
    assert 0 <= probe["over_50ms"] <= probe["writes"]
    assert list(tmp_path.iterdir()) == []


def test_the_disk_probe_makes_at_least_one_write(tmp_path: Path) -> None:
    assert disk.fsync_probe(tmp_path, seconds=0.0, pace_s=0.0)["writes"] == 1
