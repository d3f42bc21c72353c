"""``python -m bench.batch_cost``: what one ingest batch costs, fixed and per report.

At moderate rates a worker's batches hold one to three reports, so what a batch costs
whatever its size decides how much CPU a report takes there (and so the latency tail
below saturation). This drives the API's own batch path (``api.ingest.settle``, with
submissions checked by ``api.submissions.prepare``) on one connection, no HTTP, for
batches of several sizes, and reads the CPU the process and its PostgreSQL backend
spent on them; a straight line through the sizes gives the fixed and the per-report
part. It then says where PostgreSQL's part goes: the same batches with the triggers
that run on every append switched off, in alternating rounds on its private cluster
(the latest-values trigger, then every trigger: foreign-key checks and notifications
too); the differences are what those cost. The figures are written to
``bench/results/batch_cost.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import uvloop

from api import ingest
from api.auth.principal import Principal
from api.submissions import Prepared, prepare
from bench import cpu, dataset
from bench.run import RESULTS, Bench, Mode
from db.embedded import EmbeddedPostgres
from db.pool import create_pool


async def _measure(
    backend: int, batches: int, step: Callable[[], Awaitable[None]]
) -> dict[str, float]:
    """CPU of this process and of the backend per ``step``, after a few not counted."""
    for _ in range(20):
        await step()
    own, theirs = time.process_time(), cpu.cpu_seconds([backend])
    for _ in range(batches):
        await step()
    return {
        "worker_us": round(1e6 * (time.process_time() - own) / batches, 1),
        "postgres_us": round(1e6 * (cpu.cpu_seconds([backend]) - theirs) / batches, 1),
    }


#: The tables a batch writes: ``DISABLE TRIGGER ALL`` on them also stops their
#: foreign-key checks (superuser only; the cluster is this run's own).
_WRITTEN = (
    "submissions",
    "submission_values",
    "latest_values",
    "ledger_heads",
    "idempotency_keys",
    "data_versions",
)
_TRIGGER_SETTINGS: dict[str, list[str]] = {
    "all_on": [f"ALTER TABLE {t} ENABLE TRIGGER ALL" for t in _WRITTEN],
    "latest_values_trigger_off": [
        *(f"ALTER TABLE {t} ENABLE TRIGGER ALL" for t in _WRITTEN),
        "ALTER TABLE submission_values DISABLE TRIGGER submission_values_latest_insert",
    ],
    "all_triggers_off": [f"ALTER TABLE {t} DISABLE TRIGGER ALL" for t in _WRITTEN],
}


async def _triggers(
    conn: asyncpg.Connection,
    backend: int,
    rounds: int,
    per_round: int,
    batch: Callable[[], Awaitable[None]],
) -> dict[str, float]:
    """PostgreSQL CPU per batch under each of ``_TRIGGER_SETTINGS``, in alternating
    rounds (the first not counted) so a slower moment of the machine hits each alike."""
    spent = {name: 0.0 for name in _TRIGGER_SETTINGS}
    for counted in [False] + [True] * rounds:
        for name, statements in _TRIGGER_SETTINGS.items():
            async with conn.transaction():
                for statement in statements:
                    await conn.execute(statement)
            before = cpu.cpu_seconds([backend])
            for _ in range(per_round):
                await batch()
            if counted:
                spent[name] += cpu.cpu_seconds([backend]) - before
    for statement in _TRIGGER_SETTINGS["all_on"]:
        await conn.execute(statement)
    return {name: round(1e6 * s / (rounds * per_round), 1) for name, s in spent.items()}


def _line(points: list[tuple[int, float]]) -> tuple[float, float]:
    """Least squares through (size, cost): (fixed, per report)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    slope = sum((x - mx) * (y - my) for x, y in points) / sum((x - mx) ** 2 for x, _ in points)
    return round(my - slope * mx, 1), round(slope, 1)


async def run(batches: int, sizes: tuple[int, ...]) -> dict[str, Any]:
    base = Path(tempfile.mkdtemp(prefix="kinerja-batch-", dir="/tmp"))
    base.chmod(0o755)
    cluster = EmbeddedPostgres(base / "data")
    dsn = cluster.start()
    try:
        bench = Bench(Mode(quick=True), base)
        await bench.prepare(dsn)
        # Checking needs the pool (keys, callers); the batches get a connection of their own.
        checks = await create_pool(dsn, min_size=1, max_size=2)
        writes = await create_pool(dsn, min_size=1, max_size=1)
        heads = list(bench.data.heads.values())
        made = 0

        async def jobs(size: int) -> list[Prepared]:
            nonlocal made
            out = []
            for _ in range(size):
                head = heads[made % len(heads)]
                made += 1
                values = dataset.values_for(head, 40 + made // len(heads))
                jws, _ = dataset.signed_submission(head, bench.today, values)
                caller = Principal(
                    id=head.user_id, username="bench", role="district_head", area_code=head.district
                )
                job = await prepare(
                    checks,
                    bench.settings,
                    caller,
                    jws.encode(),
                    content_type="application/jose",
                    idempotency_key=uuid.uuid4().hex,
                )
                assert isinstance(job, Prepared), job
                out.append(job)
            return out

        figures: dict[str, Any] = {}
        async with writes.acquire() as conn:
            backend = await conn.fetchval("SELECT pg_backend_pid()")

            async def round_trip() -> None:
                await conn.fetchval("SELECT 1")

            async def begin_commit() -> None:
                async with conn.transaction():
                    pass

            figures["round_trip"] = await _measure(backend, 2000, round_trip)
            figures["begin_commit"] = await _measure(backend, 2000, begin_commit)
            for size in sizes:
                ready = iter([await jobs(size) for _ in range(batches + 20)])

                async def batch(ready: Any = ready) -> None:
                    async with conn.transaction():
                        outcomes, _ = await ingest.settle(
                            conn, bench.settings, next(ready), make_heads=False
                        )
                    assert not any(isinstance(o, Exception) for o in outcomes), outcomes

                figures[f"batch_of_{size}"] = await _measure(backend, batches, batch)
            rounds, per_round = 6, max(1, batches // 10)
            for size in (1, 16):
                ready = iter([await jobs(size) for _ in range((rounds + 1) * 3 * per_round)])

                async def batch(ready: Any = ready) -> None:
                    async with conn.transaction():
                        outcomes, _ = await ingest.settle(
                            conn, bench.settings, next(ready), make_heads=False
                        )
                    assert not any(isinstance(o, Exception) for o in outcomes), outcomes

                spent = await _triggers(conn, backend, rounds, per_round, batch)
                on = spent["all_on"]
                figures[f"postgres_us_batch_of_{size}_by_triggers"] = {
                    **spent,
                    "latest_values_trigger_share": round(
                        (on - spent["latest_values_trigger_off"]) / on, 3
                    )
                    if on
                    else None,
                    "all_triggers_share": round((on - spent["all_triggers_off"]) / on, 3)
                    if on
                    else None,
                }
        await checks.close()
        await writes.close()
        for side in ("worker_us", "postgres_us"):
            fixed, per_report = _line([(s, figures[f"batch_of_{s}"][side]) for s in sizes])
            figures[f"fit_{side}"] = {"fixed": fixed, "per_report": per_report}
        return figures
    finally:
        cluster.stop()
        shutil.rmtree(base, ignore_errors=True)  # its cluster: 100+ MB a run


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=400, help="batches measured per size")
    parser.add_argument("--out", default=str(RESULTS / "batch_cost.json"))
    args = parser.parse_args()
    figures = uvloop.run(run(args.batches, (1, 4, 16)))
    result = {"machine": {"cores": os.cpu_count(), "python": sys.version.split()[0]}, **figures}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    for name, value in figures.items():
        print(f"{name:24s} {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
