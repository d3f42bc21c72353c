"""The asyncpg pool, and the one connection each request gets.

JSON and JSONB columns are decoded with msgspec on every connection so queries
can return structured payloads without a second parse in the handlers.
"""

from __future__ import annotations

import asyncpg
import msgspec


async def _init_connection(conn: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name,
            schema="pg_catalog",
            encoder=lambda value: msgspec.json.encode(value).decode(),
            decoder=msgspec.json.decode,
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Release without the reset query: the app sets no session state (no SET, no
    LISTEN, only transaction-scoped advisory locks), and asyncpg still rolls back any
    open transaction first. Saves a round trip per request."""


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """Open a pool; ``command_timeout`` keeps a stuck query from pinning a worker forever."""
    pool = await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        command_timeout=30,
        max_inactive_connection_lifetime=300,
    )
    assert pool is not None
    return pool


async def connect(dsn: str) -> asyncpg.Connection:
    """A single connection with the same codecs as the pool (CLI tools, migrations)."""
    conn = await asyncpg.connect(dsn)
    await _init_connection(conn)
    return conn
