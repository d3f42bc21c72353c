"""Wait for a request to reach a PostgreSQL lock the test holds, instead of sleeping.

A fixed ``asyncio.sleep`` only guesses that the request got there: on a stalled machine
it has not yet, and the test then checks the wrong thing. PostgreSQL itself knows which
sessions wait on a lock (``pg_stat_activity.wait_event_type = 'Lock'``), so ask it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import asyncpg

_WAITING = """
    SELECT count(*) FROM pg_stat_activity
    WHERE datname = current_database() AND wait_event_type = 'Lock'
      AND pid <> pg_backend_pid()
"""
_OTHERS = """
    SELECT coalesce(string_agg(
        format('%s %s/%s: %s', pid, state, wait_event, left(query, 60)), '; '), 'none')
    FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
"""


async def lock_waiters(conn: asyncpg.Connection, count: int, seconds: float = 10.0) -> None:
    """Return once at least `count` other sessions of this database wait on a lock (row,
    advisory or transaction id): the requests under test reached the lock the test holds.

    At least, not exactly: a waiter queued behind another waiter (a tuple lock, then the
    holder's transaction id) counts as one session either way, and a count that never
    falls short is what the caller needs. Each test has its own database, so no other
    test's sessions are counted. `conn` may be the test's own connection, even inside a
    transaction: the session list is re-read on every poll (``pg_stat_clear_snapshot``),
    since PostgreSQL otherwise keeps the first one a transaction read and would miss a
    pool connection opened after it. Fails with AssertionError after `seconds`.
    """
    deadline = time.monotonic() + seconds
    while True:
        await conn.execute("SELECT pg_stat_clear_snapshot()")
        waiting: int = await conn.fetchval(_WAITING)
        if waiting >= count:
            return
        if time.monotonic() >= deadline:
            others = await conn.fetchval(_OTHERS)
            raise AssertionError(
                f"timed out: {waiting} of {count} sessions waiting on a lock (others: {others})"
            )
        await asyncio.sleep(0.02)


async def wait_until(predicate: Callable[[], object], seconds: float = 10.0) -> None:
    """Return once ``predicate()`` holds, for a state held in this process (a worker's
    queue, its change feed), where PostgreSQL cannot see it. Fails after `seconds`."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def status_back(client: Any, path: str, *, tries: int = 50, pause_s: float = 0.1) -> int:
    """GET ``path`` until it answers 200 (the database is back) or ``tries`` run out;
    the last status, for the caller to assert."""
    status = 0
    for _ in range(tries):
        status = (await client.get(path)).status_code
        if status == 200:
            break
        await asyncio.sleep(pause_s)
    return status
