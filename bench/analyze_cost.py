"""What an ANALYZE of the tables ingest grows costs, and what it does to ingest's tail.

Autovacuum analyzes a table again after every 10% of growth. With the default statistics
target it samples 30,000 rows and sorts each column's values, a burst of CPU that on
these 2 cores the server and PostgreSQL were already sharing at 2,000 reports/s. This
compares the targets migration 0028 sets ("bounded") with the default ("default", every
column back to -1), in turns on the same database: each turn offers reports at a fixed
rate and runs ``ANALYZE`` of the three tables ``--at`` seconds in, then reads the p99
of the whole run and of the requests answered in the two seconds from then. Autovacuum
is off in this cluster, so the injected ANALYZE is the only one. After the turns each
side's ANALYZE is timed on the quiet database (best of three).

    python -m bench.analyze_cost --rate 2000 --seconds 8 --at 3 --turns 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench.run import RESULTS, Bench, Mode, free_port, load_run, start_server
from bench.tails import percentile
from db.embedded import EmbeddedPostgres
from db.migrate import load_migrations

#: The tables every report grows, analyzed together as autovacuum would one after another.
TABLES = ("submissions", "submission_values", "idempotency_keys")
_ANALYZE = "ANALYZE " + ", ".join(TABLES)
#: The requests answered this long after ANALYZE starts are the ones it can delay.
WINDOW_S = 2.0


def bounded_sql() -> str:
    """The statistics targets the migrations set, as shipped."""
    (migration,) = (m for m in load_migrations() if m.name == "0028_bounded_analyze.sql")
    return migration.sql


async def default_sql(conn: asyncpg.Connection) -> str:
    """Every column of ``TABLES`` back to the default target."""
    rows = await conn.fetch(
        "SELECT c.relname, a.attname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "WHERE c.relname = ANY($1::text[]) AND c.relnamespace = 'public'::regnamespace "
        "AND a.attnum > 0 AND NOT a.attisdropped ORDER BY 1, a.attnum",
        list(TABLES),
    )
    return ";".join(
        f'ALTER TABLE {r["relname"]} ALTER COLUMN "{r["attname"]}" SET STATISTICS -1' for r in rows
    )


def window_p99(result: dict[str, Any], start_s: float, span_s: float = WINDOW_S) -> float:
    """The p99 (ms) of the requests answered within ``[start_s, start_s + span_s]`` of the
    run's start (nan when none was)."""
    inside = sorted(
        lat
        for lat, t in zip(result["latencies_s"], result["done_s"], strict=True)
        if start_s <= t <= start_s + span_s
    )
    return percentile(inside, 99) * 1000


async def _analyze_during(dsn: str, at_s: float) -> float:
    """Wait ``at_s``, run the ANALYZE on a connection of its own; its wall time (s)."""
    await asyncio.sleep(at_s)
    conn = await asyncpg.connect(dsn)
    try:
        started = time.perf_counter()
        await conn.execute(_ANALYZE)
        return time.perf_counter() - started
    finally:
        await conn.close()


async def quiet_analyze_ms(conn: asyncpg.Connection) -> dict[str, float]:
    """Each table's ANALYZE on an idle database, best of three (ms)."""
    out = {}
    for table in TABLES:
        best = float("inf")
        for _ in range(3):
            started = time.perf_counter()
            await conn.execute(f"ANALYZE {table}")
            best = min(best, time.perf_counter() - started)
        out[table] = round(best * 1000, 1)
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="kinerja-analyze-", dir="/tmp"))
    base.chmod(0o755)
    cluster = EmbeddedPostgres(base / "data")
    dsn = cluster.start()
    server = None
    owner: asyncpg.Connection | None = None
    try:
        bench = Bench(Mode(args.quick), base)
        await bench.prepare(dsn)
        owner = await asyncpg.connect(dsn)
        await owner.execute("ALTER SYSTEM SET autovacuum = off")
        await owner.execute("SELECT pg_reload_conf()")
        statements = {"bounded": bounded_sql(), "default": await default_sql(owner)}
        port = free_port()
        server = start_server(dsn, port, 2, base / "server.log", {})
        bench.warm_ingest(port)
        turns: dict[str, list[dict[str, float]]] = {side: [] for side in statements}
        for _ in range(args.turns):
            for side, sql in statements.items():
                await owner.execute(sql)
                requests = bench.ingest_requests(round(args.rate * args.seconds))
                result, analyze_s = await asyncio.gather(
                    asyncio.to_thread(load_run, port, requests, 64, base, args.rate),
                    _analyze_during(dsn, args.at),
                )
                if bad := sorted({s for s in result["statuses"] if s >= 400}):
                    raise SystemExit(f"analyze_cost: the server answered {bad}")
                latencies = sorted(result["latencies_s"])
                turns[side].append(
                    {
                        "analyze_ms": round(analyze_s * 1000, 1),
                        "p99_ms": round(percentile(latencies, 99) * 1000, 1),
                        "p99_after_analyze_ms": round(window_p99(result, args.at), 1),
                    }
                )
        quiet = {}
        for side, sql in statements.items():
            await owner.execute(sql)
            quiet[side] = await quiet_analyze_ms(owner)
        rows = await owner.fetchval("SELECT count(*) FROM submissions")
        await owner.execute(statements["bounded"])
        return {
            "rate": args.rate,
            "seconds": args.seconds,
            "analyze_at_s": args.at,
            "submissions_after": rows,
            "quiet_analyze_ms": quiet,
            "turns": turns,
            "median": {
                side: {k: statistics.median(t[k] for t in runs) for k in runs[0]}
                for side, runs in turns.items()
            },
        }
    finally:
        if owner is not None:
            await owner.close()
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=2000.0, help="reports/s offered")
    parser.add_argument("--seconds", type=float, default=8.0, help="each run's length")
    parser.add_argument("--at", type=float, default=3.0, help="seconds before ANALYZE")
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="smoke test: small loads")
    parser.add_argument("--out", default=str(RESULTS / "analyze_cost.json"))
    args = parser.parse_args()
    if args.turns < 1 or args.rate <= 0 or not 0 <= args.at < args.seconds:
        raise SystemExit("analyze_cost: --turns ≥ 1, --rate > 0 and 0 ≤ --at < --seconds")
    result = asyncio.run(run(args))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print("quiet ANALYZE ms", json.dumps(result["quiet_analyze_ms"]))
    for side, figures in result["median"].items():
        print(side, json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
