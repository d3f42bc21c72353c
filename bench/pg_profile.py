"""``python -m bench.pg_profile``: where PostgreSQL's CPU goes while reports arrive.

Below saturation the ingest latency tail follows the CPU a report costs, and
PostgreSQL's share of it is most of what the API spends beyond the issue's bare route
(one insert a request). This offers signed reports at a rate to a two-worker server
on a private cluster, samples the client backends' stacks with ``perf`` (Linux
``perf record --call-graph dwarf``, root or ``perf_event_paranoid`` <= 1) and sorts
every sample into the part of a batch it was spent in: the locking read
(``begin_ingest_batch``), the write's statement, the PL/pgSQL triggers it fires
(latest values, notifications), foreign-key checks, the commit (the WAL flush apart),
and the protocol. Executor start-up (building plan state, once per statement) is
counted across them too. The figures go to ``bench/results/pg_profile.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import asyncpg

from bench import cpu
from bench.run import RESULTS, Bench, Mode, free_port, start_server
from db.embedded import EmbeddedPostgres

#: A sample's part: the first whose frames it holds. Only ``begin_ingest_batch`` has
#: a ``SET`` clause among the functions a batch calls (migration 0025), which is what
#: sends its calls through ``fmgr_security_definer``. The foreign-key checks' own
#: frames are static (no symbol); the query each runs goes through
#: ``SPI_execute_snapshot``, which PL/pgSQL does not use. Checks of a trigger's own
#: writes count as checks.
PARTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("begin_ingest_batch", ("fmgr_security_definer",)),
    ("foreign_key_checks", ("SPI_execute_snapshot",)),
    ("triggers_plpgsql", ("plpgsql_exec_trigger",)),
    ("commit_wal_flush", ("XLogFlush",)),
    ("commit_other", ("CommitTransactionCommand",)),
    ("statements", ("PortalRun",)),
    ("bind", ("exec_bind_message", "PortalStart")),
    ("read_from_client", ("secure_read", "pq_getbyte")),
    ("write_to_client", ("secure_write", "pq_flush")),
)
#: Counted across the parts: a sample in any of these frames.
ACROSS: dict[str, tuple[str, ...]] = {
    "executor_startup": ("standard_ExecutorStart",),
    "plan_cache": ("GetCachedPlan",),
}


def stacks(perf_script: Iterable[str]) -> Iterator[list[str]]:
    """The samples of ``perf script -F ip,sym`` output: one list of symbols each."""
    frames: list[str] = []
    for line in perf_script:
        fields = line.split(None, 1)
        if not fields:
            if frames:
                yield frames
                frames = []
            continue
        frames.append(fields[1].strip() if len(fields) > 1 else "[unknown]")
    if frames:
        yield frames


def shares(samples: Iterable[list[str]]) -> dict[str, Any]:
    """Each part's share of the samples, and the shares counted across parts."""
    parts: Counter[str] = Counter()
    across: Counter[str] = Counter()
    total = 0
    for frames in samples:
        total += 1
        held = set(frames)
        part = next((name for name, marks in PARTS if held.intersection(marks)), "other")
        parts[part] += 1
        for name, marks in ACROSS.items():
            if held.intersection(marks):
                across[name] += 1
    if not total:
        raise ValueError("perf recorded no samples of the backends")
    return {
        "samples": total,
        "parts": {name: round(parts[name] / total, 3) for name, _ in (*PARTS, ("other", ()))},
        "across": {name: round(across[name] / total, 3) for name in ACROSS},
    }


async def _backends(dsn: str) -> list[int]:
    """The client backends now connected (the server's pools and its listeners)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT pid FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
        )
        return [r["pid"] for r in rows]
    finally:
        await conn.close()


def _profile(bench: Bench, dsn: str, port: int, rate: float, seconds: float) -> dict[str, Any]:
    """One offered rate, its backends sampled for all but its first and last second."""
    pids = asyncio.run(_backends(dsn))
    recording = bench.workdir / "perf.data"
    sampled = max(1, round(seconds) - 2)
    perf = subprocess.Popen(
        [
            *("perf", "record", "-q", "-F", "499", "--call-graph", "dwarf,16384"),
            *("-p", ",".join(map(str, pids)), "-o", str(recording)),
            *("--", "sleep", str(sampled)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    time.sleep(0.5)
    done = bench.drive(port, bench.ingest_requests(round(rate * seconds)), 64, rate)
    _, err = perf.communicate(timeout=120)
    if perf.returncode:
        raise SystemExit(f"pg_profile: perf record failed: {err.decode().strip()}")
    script = subprocess.run(
        ["perf", "script", "-F", "ip,sym", "-i", str(recording)],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout
    recording.unlink()
    return {
        "offered_rps": rate,
        "seconds": seconds,
        "sampled_seconds": sampled,
        "achieved_rps": round(done["rps"], 1),
        "p50_ms": round(done["p50_ms"], 2),
        "p99_ms": round(done["p99_ms"], 2),
        "server_cpu_us": done.get("server_cpu_us"),
        "postgres_cpu_us": done.get("postgres_cpu_us"),
        "backends": len(pids),
        **shares(stacks(script.splitlines())),
    }


def run(rates: list[float], seconds: float, quick: bool, work: Path) -> list[dict[str, Any]]:
    cluster = EmbeddedPostgres(work / "data")
    dsn = cluster.start()
    server = None
    try:
        bench = Bench(Mode(quick), work)
        asyncio.run(bench.prepare(dsn))
        bench.postgres_pid = cpu.postmaster_pid(cluster.pgdata)
        port = free_port()
        server = start_server(dsn, port, 2, work / "server.log", {})
        bench.server_pids[port] = server.pid
        # The pools are at their working size after this, so the backends each rate
        # lists are the ones its reports use.
        bench.warm_ingest(port)
        return [_profile(bench, dsn, port, rate, seconds) for rate in rates]
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        cluster.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--rates", default="1000,1500", help="reports a second offered, comma-separated"
    )
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--quick", action="store_true", help="smoke test: a small dataset")
    parser.add_argument("--out", default=str(RESULTS / "pg_profile.json"))
    args = parser.parse_args()
    if shutil.which("perf") is None:
        raise SystemExit("pg_profile: needs perf (Debian: apt-get install linux-perf)")
    try:
        rates = [float(r) for r in args.rates.split(",")]
    except ValueError:
        raise SystemExit(f"pg_profile: --rates {args.rates!r} is not numbers") from None
    if min(rates) <= 0 or args.seconds < 3:
        raise SystemExit("pg_profile: --rates above 0 and --seconds at least 3")
    work = Path(tempfile.mkdtemp(prefix="kinerja-pgprof-", dir="/tmp"))
    work.chmod(0o755)  # the cluster's owner reads it when run as root
    try:
        result = {"runs": run(rates, args.seconds, args.quick, work)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
