"""``bench.analyze_cost`` times ANALYZE of the tables ingest grows under the migrated
statistics targets and the default, in turns during ingest (speed is not judged)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from bench.analyze_cost import TABLES, window_p99
from tests.modules import run_module


def test_both_targets_are_measured_in_turns_and_written(tmp_path: Path) -> None:
    out = tmp_path / "analyze.json"
    command = ["bench.analyze_cost", "--quick", "--rate", "100", "--seconds", "2"]
    done = run_module(*command, "--at", "0.5", "--turns", "1", "--out", str(out), timeout=240)
    result = json.loads(out.read_text())
    assert set(result["turns"]) == {"bounded", "default"}
    for side in ("bounded", "default"):
        (turn,) = result["turns"][side]
        assert turn["analyze_ms"] > 0 and turn["p99_ms"] > 0, turn
        assert set(result["quiet_analyze_ms"][side]) == set(TABLES)
    # 200 reports offered in each of two runs, and the warm-up's.
    assert result["submissions_after"] >= 400
    assert "quiet ANALYZE ms" in done.stdout


def test_window_p99_reads_only_the_requests_answered_within_it() -> None:
    result = {"latencies_s": [0.001, 0.5, 0.002, 0.9], "done_s": [0.1, 1.2, 2.5, 4.0]}
    assert window_p99(result, 1.0, 2.0) == 500.0  # 0.5 and 0.002: the slower is p99
    assert math.isnan(window_p99(result, 5.0, 1.0))


def test_a_bad_argument_is_refused() -> None:
    done = run_module("bench.analyze_cost", "--at", "9", "--seconds", "8", succeeds=False)
    assert "--at < --seconds" in done.stderr
