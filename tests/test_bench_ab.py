"""``bench.ab`` compares two servers' settings in turns (speed is not judged)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.ab import compare, parse_env, parse_load
from tests.modules import run_module


def test_two_servers_in_turns_write_each_side_and_their_ratio(tmp_path: Path) -> None:
    out = tmp_path / "ab.json"
    command = ["bench.ab", "--quick", "--turns", "1", "--loads", "c8,r50"]
    command += ["--b-env", "KINERJA_INGEST_BATCH_MAX=0", "--out", str(out)]
    done = run_module(*command, timeout=240)
    result = json.loads(out.read_text())
    assert result["env"] == {"a": {}, "b": {"KINERJA_INGEST_BATCH_MAX": "0"}}
    assert set(result["loads"]) == {"c8", "r50"}
    for figures in result["loads"].values():
        for side in ("a", "b"):
            assert figures[side]["rps"] > 0, figures
            assert figures[side]["p99_ms"] > 0, figures
        assert figures["b_over_a"]["rps"] > 0, figures
    assert "c8 b/a" in done.stdout


def test_b_over_a_is_the_median_of_each_turns_ratio() -> None:
    turns = {
        "a": [{"rps": 100.0}, {"rps": 200.0}, {"rps": 400.0}],
        "b": [{"rps": 150.0}, {"rps": 100.0}, {"rps": 400.0}],
    }
    # Turn ratios 1.5, 0.5, 1.0: their median, not the ratio of the medians (100/200).
    assert compare(turns)["b_over_a"] == {"rps": 1.0}
    assert compare(turns)["a"] == {"rps": 200.0}


@pytest.mark.parametrize("bad", ["KINERJA_WORKERS", "=3"])
def test_a_setting_without_a_name_and_value_is_refused(bad: str) -> None:
    with pytest.raises(SystemExit):
        parse_env([bad])


@pytest.mark.parametrize("bad", ["x64", "c", "c0", "r-5", "rabc"])
def test_a_load_that_is_not_cN_or_rN_is_refused(bad: str) -> None:
    with pytest.raises(SystemExit):
        parse_load(bad)


def test_loads_read_as_connections_and_rate() -> None:
    assert parse_load("c8") == (8, None)
    assert parse_load("r1000") == (64, 1000.0)
    assert parse_env(["A=1", "B=x=y"]) == {"A": "1", "B": "x=y"}
