"""One transaction on a pooled connection, its writes applied to the worker's change
feed the moment it commits (so the caller's next request sees them; other workers hear
of them through PostgreSQL notifications)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from api.change_feed import ChangeFeed
from db import changes

log = logging.getLogger("kinerja.transactions")


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
    committed = False
    try:
        async with pool.acquire() as conn:
            async with conn.transaction():
                yield conn
            committed = True
    except Exception:
        if not committed:
            raise
        # Stored: failing now would tell a district head a report it sent was not, and
        # its resend would be refused as a replay.
        log.warning("a connection failed after its transaction committed", exc_info=True)
    if feed is not None and written:
        feed.committed(written)
