"""Failed-login counters in PostgreSQL, so every replica sees the same lockouts."""

from __future__ import annotations

from datetime import datetime

import asyncpg


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
    """Count a failure in the current window; lock the key when it reaches ``limit``."""
    await conn.execute(
        """
        INSERT INTO login_throttle AS t (key, failures, window_start)
        VALUES ($1, 1, now())
        ON CONFLICT (key) DO UPDATE SET
            failures = CASE WHEN t.window_start < now() - make_interval(secs => $2)
                            THEN 1 ELSE t.failures + 1 END,
            window_start = CASE WHEN t.window_start < now() - make_interval(secs => $2)
                                THEN now() ELSE t.window_start END
        """,
        key,
        window_s,
    )
    await conn.execute(
        "UPDATE login_throttle SET locked_until = now() + make_interval(secs => $3), "
        "failures = 0, window_start = now() WHERE key = $1 AND failures >= $2",
        key,
        limit,
        lock_s,
    )


async def clear(conn: asyncpg.Connection, key: str) -> None:
    await conn.execute("DELETE FROM login_throttle WHERE key = $1", key)
