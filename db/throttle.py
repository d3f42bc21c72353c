"""Failed-login counters in PostgreSQL, so every replica sees the same lockouts."""

from __future__ import annotations

import time
from datetime import datetime

import asyncpg


async def hold(conn: asyncpg.Connection, *keys: str, wait_s: float) -> None:
    """Lock each of ``keys``' counters (made if missing), in the order given, until the
    caller's transaction ends, so attempts on one account, or from one address, are
    judged one after another, each seeing the failures the ones before it counted: read
    before the password check and written after it, a limit could be passed by as many
    guesses as were in flight. Every caller names the account, then the address, so two
    attempts never wait for each other crosswise. Waiting holds a pooled connection, so
    it is bounded: ``asyncpg.LockNotAvailableError`` after ``wait_s`` seconds in all."""
    deadline = time.monotonic() + wait_s

    async def within(query: str, key: str) -> None:
        # PostgreSQL bounds each wait on its own: each statement gets what is left of
        # the whole (an insert waits too, behind another attempt making the same row).
        left_ms = max(1, round((deadline - time.monotonic()) * 1000))
        await conn.execute("SELECT set_config('lock_timeout', $1, true)", f"{left_ms}ms")
        await conn.execute(query, key)

    for key in keys:
        await within(
            "INSERT INTO login_throttle (key) VALUES ($1) ON CONFLICT (key) DO NOTHING", key
        )
        await within("SELECT 1 FROM login_throttle WHERE key = $1 FOR UPDATE", key)
    await conn.execute("SET LOCAL lock_timeout TO DEFAULT")


async def locked_until(conn: asyncpg.Connection, keys: list[str]) -> datetime | None:
    """The latest lock still in force among ``keys``, if any."""
    return await conn.fetchval(
        "SELECT max(locked_until) FROM login_throttle "
        "WHERE key = ANY($1::text[]) AND locked_until > now()",
        keys,
    )


async def record_failure(
    conn: asyncpg.Connection, key: str, *, limit: int, window_s: int, lock_s: int
) -> None:
    """Count a failure; lock the key once ``limit`` failures fall within the last
    ``window_s`` seconds (a sliding window: migration 0016)."""
    await conn.execute(
        """
        INSERT INTO login_throttle AS t (key, recent) VALUES ($1, ARRAY[now()])
        ON CONFLICT (key) DO UPDATE SET recent = ARRAY(
            SELECT f FROM unnest(t.recent) AS f
             WHERE f > now() - make_interval(secs => $2) ORDER BY f
        ) || now()
        """,
        key,
        window_s,
    )
    await conn.execute(
        "UPDATE login_throttle SET locked_until = now() + make_interval(secs => $3), "
        "recent = '{}' WHERE key = $1 AND cardinality(recent) >= $2",
        key,
        limit,
        lock_s,
    )


async def clear(conn: asyncpg.Connection, key: str) -> None:
    """Forget the key's failures. The row stays: attempts waiting to ``hold`` it would
    find no row to lock if it were deleted, and pass the lock together."""
    await conn.execute(
        "UPDATE login_throttle SET recent = '{}', locked_until = NULL WHERE key = $1", key
    )
