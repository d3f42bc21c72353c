"""The benchmark's quick mode completes and writes its results (speed is not judged)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.modules import run_module


def test_quick_benchmark_writes_its_file(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    run_module("bench.run", "--quick", "--out", str(out))
    result = json.loads(out.read_text())
    assert result["mode"] == "quick"
    figures = result["figures"]
    assert figures["dataset"]["districts"] == 514
    for name in (
        "plain_json_health_live",
        "ingest_signed_c64",
        "ingest_signed_offered_100",
        "ingest_batched_c64_in_turns",
        "ingest_one_transaction_each_c64",
        "bare_jws_insert_c64_in_turns",
        "bare_jws_insert_own_sockets_c64_in_turns",
        "ingest_batched_offered_100_in_turns",
        "bare_jws_insert_own_sockets_offered_100_in_turns",
        "direct_insert_asyncpg_4conn",
        "direct_batched_insert_asyncpg_2conn",
        "ranking_national_cold_c1",
        "ranking_national_warm_c32",
        "scorecard_district_cold_c1",
        "ranking_national_same_bytes_from_memory_c32",
    ):
        assert name in figures, name
        assert figures[name].get("errors", 0) == 0, (name, figures[name])
    assert figures["server_peak_memory_mib"] > 0
    # How fast the shared machine was at the start, before the ingest figures and at the end.
    probe = result["machine"]["speed_probe_us"]
    assert set(probe) == {"start", "before_ingest", "end"}
    assert all(v > 0 for v in probe.values()), probe
    assert "Speed probe (one Ed25519 verification" in out.with_suffix(".md").read_text()
    # How long a durable write took meanwhile (bench.disk), at the same three moments.
    disk = result["machine"]["disk_probe"]
    assert set(disk) == {"start", "before_ingest", "end"}
    assert all(d["writes"] >= 1 and d["max_ms"] >= d["p50_ms"] >= 0 for d in disk.values())
    assert "Disk probe (an 8 KiB write and fdatasync" in out.with_suffix(".md").read_text()
    # Offered at a fixed rate (an open loop): every report answered, the rate recorded.
    offered = figures["ingest_signed_offered_100"]
    assert offered["offered_rps"] == 100
    assert offered["p99_ms"]["median"] > 0
    assert "64, 100/s offered" in out.with_suffix(".md").read_text()
    # Whether its p99 was one stall (bench.tails), in a table of its own.
    assert offered["p99_outside_worst_half_s_ms"]["median"] > 0
    table = out.with_suffix(".md").read_text().split("| p99 ms outside it |")[1]
    assert "| ingest_signed_offered_100 | " in table
    # CPU per request, by who spent it (bench.cpu): the load generator reports its own;
    # the server and PostgreSQL are read from /proc, charged by the tick.
    for name in ("ingest_signed_c64", "bare_jws_insert_c64_in_turns"):
        assert figures[name]["load_cpu_us"] > 0, figures[name]
        assert figures[name]["server_cpu_us"] + figures[name]["postgres_cpu_us"] > 0
        assert figures[name]["stolen_cpu_us"] >= 0
    assert "| req/s filling the cores | stolen |" in out.with_suffix(".md").read_text()
    assert figures["ratios"]["ingest_batched_over_bare_jws_insert_by_cpu"] > 0
    assert figures["ratios"]["ingest_batched_over_bare_jws_insert"] > 0
    assert figures["ratios"]["ingest_batched_over_bare_jws_insert_own_sockets"] > 0
    # The same rate offered to the API and to the bare route in the same turns.
    for name in (
        "ingest_batched_offered_100_in_turns",
        "bare_jws_insert_own_sockets_offered_100_in_turns",
    ):
        assert figures[name]["offered_rps"] == 100, figures[name]
        assert figures[name]["p99_ms"]["median"] > 0
    assert figures["ratios"]["ingest_p99_over_bare_p99_offered_in_turns"] > 0
    assert out.with_suffix(".md").read_text().startswith("# Benchmark (quick)")


def test_the_batch_cost_benchmark_writes_its_file(tmp_path: Path) -> None:
    """``bench.batch_cost`` drives the API's batch path and writes what a batch costs."""
    out = tmp_path / "batch_cost.json"
    run_module("bench.batch_cost", "--batches", "5", "--out", str(out))
    result = json.loads(out.read_text())
    for size in (1, 4, 16):
        assert set(result[f"batch_of_{size}"]) == {"worker_us", "postgres_us"}
    # Process CPU is counted by the tick: a few small batches may read 0, never less.
    assert result["batch_of_16"]["worker_us"] > 0
    assert set(result["fit_worker_us"]) == {"fixed", "per_report"}
    for size in (1, 16):
        by_triggers = result[f"postgres_us_batch_of_{size}_by_triggers"]
        assert {"all_on", "latest_values_trigger_off", "all_triggers_off"} <= set(by_triggers)
