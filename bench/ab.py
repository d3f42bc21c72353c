"""Signed ingest on two servers that differ only in their settings, taken in turns.

On this shared machine the same code measures 1,470 to 2,561 reports/s at 64
connections from one hour to the next, so a setting tried in one run and its default
in another say nothing. This starts one embedded PostgreSQL with the benchmark's
national dataset, two ``kinerja serve`` (``--a-env`` and ``--b-env`` add settings to
each), and drives the same kind of load at each in turns: a moment of the machine hits
both alike. Each load is ``cN`` (N connections, a closed loop) or ``rN`` (N reports/s
offered over 64 connections, an open loop), as ``bench.run`` drives them. It prints,
and writes as JSON, each side's median rate, p50, p99 and CPU per report, and B over A
as the median of each turn's ratio.

A change in the database rather than the server (a trigger, an index, a column's
storage) is compared the same way: ``--a-sql`` and ``--b-sql`` are statements run, as
the cluster's owner, before each of that side's turns. Both servers share the database,
so each side's statements must set everything it needs, A's undoing what B's did. Two
sides whose settings are the same share one server (see ``sides``).

    python -m bench.ab --b-env KINERJA_INGEST_BATCHES_IN_FLIGHT=1 --loads c64,r1000
    python -m bench.ab --loads c64,r1000 \
        --a-sql "ALTER TABLE submission_values ENABLE TRIGGER ALL" \
        --b-sql "ALTER TABLE submission_values DISABLE TRIGGER ALL"
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

import asyncpg

from bench import cpu
from bench.run import RESULTS, Bench, Mode, free_port, start_server
from db.embedded import EmbeddedPostgres

#: The figures kept of each run, and those B over A is given for.
_KEPT = ("rps", "p50_ms", "p99_ms", "server_cpu_us", "postgres_cpu_us", "load_cpu_us")
_RATIOS = ("rps", "p99_ms", "cpu_us")


def parse_env(pairs: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` arguments as an environment; a pair without ``=`` is refused."""
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"ab: settings are KEY=VALUE, not {pair!r}")
        env[key] = value
    return env


def parse_load(load: str) -> tuple[int, float | None]:
    """``c64`` → (64 connections, closed loop); ``r1000`` → (64, 1,000 reports/s)."""
    kind, number = load[:1], load[1:]
    if kind not in ("c", "r") or not number.isdigit() or int(number) <= 0:
        raise SystemExit(f"ab: a load is cN or rN with N > 0, not {load!r}")
    return (int(number), None) if kind == "c" else (64, float(number))


def _kept(run: dict[str, Any]) -> dict[str, float]:
    out = {k: float(run[k]) for k in _KEPT if k in run}
    if "server_cpu_us" in out:
        out["cpu_us"] = sum(out.get(k, 0.0) for k in _KEPT[3:])
    return out


def compare(turns: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """Each side's medians, and B over A: the median of each turn's ratio."""
    out: dict[str, Any] = {}
    for side, runs in turns.items():
        out[side] = {k: round(statistics.median(r[k] for r in runs), 1) for k in runs[0]}
    pairs = list(zip(turns["a"], turns["b"], strict=True))
    out["b_over_a"] = {
        k: round(statistics.median(b[k] / a[k] for a, b in pairs), 3)
        for k in _RATIOS
        if all(k in r and r[k] for r in turns["a"]) and all(k in r for r in turns["b"])
    }
    return out


def sides(envs: dict[str, dict[str, str]]) -> list[str]:
    """The sides that need a server of their own: both, unless their settings are the
    same, when B's turns go to A's server. Every server listens for the database's change
    notifications, so a second one idling beside the first hears each batch's too: with
    two, disabling the triggers that notify gave B 31% more reports/s at 64
    connections, with one the same (0.98, each in turns)."""
    return ["a"] if envs["a"] == envs["b"] else ["a", "b"]


async def apply_sql(conn: asyncpg.Connection, side: str, statements: list[str]) -> None:
    """Run a side's statements, in order; one that fails stops the comparison, named."""
    for statement in statements:
        try:
            await conn.execute(statement)
        except asyncpg.PostgresError as exc:
            raise SystemExit(f"ab: {side}'s statement {statement!r} failed: {exc}") from None


async def run(args: argparse.Namespace) -> dict[str, Any]:
    mode = Mode(args.quick)
    envs = {"a": parse_env(args.a_env), "b": parse_env(args.b_env)}
    sql = {"a": list(args.a_sql), "b": list(args.b_sql)}
    loads = [(load, *parse_load(load)) for load in args.loads.split(",")]
    base = Path(tempfile.mkdtemp(prefix="kinerja-ab-", dir="/tmp"))
    base.chmod(0o755)
    cluster = EmbeddedPostgres(base / "data")
    dsn = cluster.start()
    servers: dict[str, Any] = {}
    owner: asyncpg.Connection | None = None
    try:
        bench = Bench(mode, base)
        await bench.prepare(dsn)
        owner = await asyncpg.connect(dsn)
        bench.postgres_pid = cpu.postmaster_pid(cluster.pgdata)
        ports: dict[str, int] = {}
        for side in sides(envs):
            ports[side] = free_port()
            env = envs[side]
            servers[side] = start_server(dsn, ports[side], 2, base / f"server-{side}.log", env)
            bench.server_pids[ports[side]] = servers[side].pid
            bench.warm_ingest(ports[side])
        ports.setdefault("b", ports["a"])
        turns: dict[str, dict[str, list[dict[str, float]]]] = {
            load: {"a": [], "b": []} for load, _, _ in loads
        }
        for _ in range(args.turns):
            for load, connections, rate in loads:
                count = round(rate * mode.offered_seconds) if rate else mode.ingest_requests
                for side, port in ports.items():
                    await apply_sql(owner, side, sql[side])
                    done = bench.drive(port, bench.ingest_requests(count), connections, rate)
                    if done["errors"]:
                        raise SystemExit(f"ab: {side} answered {done['statuses']} ({load})")
                    turns[load][side].append(_kept(done))
        return {
            "env": envs,
            "sql": sql,
            "turns": args.turns,
            "loads": {load: compare(t) for load, t in turns.items()},
        }
    finally:
        if owner is not None:
            await owner.close()
        for process in servers.values():
            process.terminate()
            process.wait(timeout=20)
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)  # its cluster: 100+ MB a run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a-env", nargs="*", default=[], help="KEY=VALUE settings of A")
    parser.add_argument("--b-env", nargs="*", default=[], help="KEY=VALUE settings of B")
    parser.add_argument("--a-sql", nargs="*", default=[], help="SQL run before A's turns")
    parser.add_argument("--b-sql", nargs="*", default=[], help="SQL run before B's turns")
    parser.add_argument("--loads", default="c64,r1000", help="cN and rN, comma-separated")
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="smoke test: small loads")
    parser.add_argument("--out", default=str(RESULTS / "ab.json"))
    args = parser.parse_args()
    if args.turns < 1:
        raise SystemExit("ab: --turns is at least 1")
    result = asyncio.run(run(args))
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for load, figures in result["loads"].items():
        for side in ("a", "b"):
            print(load, side, figures[side])
        print(load, "b/a", figures["b_over_a"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
