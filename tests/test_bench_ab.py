"""``bench.ab`` compares two servers' settings, or two states of the database, in turns
(speed is not judged)."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import pytest

from bench.ab import apply_sql, compare, parse_env, parse_load, sides
from tests.modules import run_module

_LATEST = "submission_values_latest_insert"


def test_two_servers_in_turns_write_each_side_and_their_ratio(tmp_path: Path) -> None:
    out = tmp_path / "ab.json"
    command = ["bench.ab", "--quick", "--turns", "1", "--loads", "c8,r50"]
    command += ["--b-env", "KINERJA_INGEST_BATCH_MAX=0", "--out", str(out)]
    done = run_module(*command, timeout=240)
    result = json.loads(out.read_text())
    assert result["env"] == {"a": {}, "b": {"KINERJA_INGEST_BATCH_MAX": "0"}}
    assert result["sql"] == {"a": [], "b": []}
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


def test_each_sides_statements_run_before_its_turns(tmp_path: Path) -> None:
    out = tmp_path / "ab.json"
    enable = f"ALTER TABLE submission_values ENABLE TRIGGER {_LATEST}"
    disable = f"ALTER TABLE submission_values DISABLE TRIGGER {_LATEST}"
    command = ["bench.ab", "--quick", "--turns", "1", "--loads", "c8", "--out", str(out)]
    run_module(*command, "--a-sql", enable, "--b-sql", disable, timeout=240)
    result = json.loads(out.read_text())
    assert result["sql"] == {"a": [enable], "b": [disable]}
    assert result["loads"]["c8"]["b"]["rps"] > 0


def test_a_statement_that_fails_stops_the_comparison_naming_it(tmp_path: Path) -> None:
    command = ["bench.ab", "--quick", "--turns", "1", "--loads", "c8"]
    command += ["--b-sql", "ALTER TABLE no_such_table DISABLE TRIGGER ALL"]
    command += ["--out", str(tmp_path / "ab.json")]
    done = run_module(*command, timeout=240, succeeds=False)
    assert "ab: b's statement 'ALTER TABLE no_such_table DISABLE TRIGGER ALL' failed" in (
        done.stderr
    )
    assert not (tmp_path / "ab.json").exists()


async def test_apply_sql_runs_the_statements_in_order(conn: asyncpg.Connection) -> None:
    enabled = "SELECT tgenabled FROM pg_trigger WHERE tgname = $1"  # "char": bytes
    await apply_sql(
        conn,
        "b",
        [
            f"ALTER TABLE submission_values DISABLE TRIGGER {_LATEST}",
            f"ALTER TABLE submission_values ENABLE TRIGGER {_LATEST}",
            f"ALTER TABLE submission_values DISABLE TRIGGER {_LATEST}",
        ],
    )
    assert await conn.fetchval(enabled, _LATEST) == b"D"
    await apply_sql(conn, "a", [f"ALTER TABLE submission_values ENABLE TRIGGER {_LATEST}"])
    assert await conn.fetchval(enabled, _LATEST) == b"O"


def test_sides_with_the_same_settings_share_one_server() -> None:
    assert sides({"a": {}, "b": {}}) == ["a"]
    assert sides({"a": {"X": "1"}, "b": {"X": "1"}}) == ["a"]
    assert sides({"a": {}, "b": {"X": "1"}}) == ["a", "b"]
