"""One transaction on a pooled connection, its writes applied to the worker's change
feed the moment it commits (so the caller's next request sees them; other workers hear
of them through PostgreSQL notifications)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from api.change_feed import ChangeFeed
from db import changes


@asynccontextmanager
async def transaction(
    pool: asyncpg.Pool, feed: ChangeFeed | None
) -> AsyncIterator[asyncpg.Connection]:
    """Commit when the block ends, roll back when it raises.

    The versions and users written are those recorded since ``changes.record_writes``
    in this task (by the request middleware, or by whoever runs the block).
    """
    written = changes.recorded_writes()
    del written[:]  # from this transaction only
    async with pool.acquire() as conn:
        async with conn.transaction():
            yield conn
    if feed is not None and written:
        feed.committed(written)
