"""The asyncpg pool, and the one connection each request gets.

JSON and JSONB columns are decoded with msgspec on every connection so queries
can return structured payloads without a second parse in the handlers.
"""

from __future__ import annotations

import asyncpg
import msgspec

#: The version byte that opens jsonb's binary form (the JSON text follows it).
_JSONB_V1 = b"\x01"

#: PostgreSQL's JSON numbers are numerics, of any size; msgspec refuses a float beyond
#: a double's range (1e400), so a number edited in with SQL made every read of its row
#: (a submission, a ledger verify) fail with a 500. Read as Python reads it: infinity,
#: which no signed value equals and which is written back out as null.
decode_json = msgspec.json.Decoder(float_hook=float).decode


def _jsonb_decode(data: bytes) -> object:
    if data[:1] != _JSONB_V1:
        raise ValueError("unknown jsonb binary format")
    return decode_json(data[1:])


async def _init_connection(conn: asyncpg.Connection) -> None:
    """JSON in binary form, which for these types is the JSON text itself: in text form
    an array of jsonb (a batch's payloads) went through asyncpg's text-array encoder,
    which escapes every quote, at about 10 us a payload (3 us in binary form)."""
    await conn.set_type_codec(
        "json",
        schema="pg_catalog",
        encoder=msgspec.json.encode,
        decoder=decode_json,
        format="binary",
    )
    await conn.set_type_codec(
        "jsonb",
        schema="pg_catalog",
        encoder=lambda value: _JSONB_V1 + msgspec.json.encode(value),
        decoder=_jsonb_decode,
        format="binary",
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


async def ping(conn: asyncpg.Connection, *, within_s: float) -> None:
    """A round trip that needs the server to answer (readiness), given ``within_s``."""
    await conn.fetchval("SELECT 1", timeout=within_s)
