"""Idempotency-Key records: a retried request gets the response its first attempt got.

Keys are scoped per user. Two requests with the same key are serialised by a
transaction-scoped advisory lock on (user, key), so they can never both do the
work; the second finds the first one's record once it commits.
"""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg
import msgspec


class IdempotencyRecord(msgspec.Struct, frozen=True, kw_only=True):
    request_sha256: str
    status_code: int
    response: bytes
    created_at: datetime


async def lock(conn: asyncpg.Connection, user_id: UUID, key: str) -> None:
    """Hold (user, key) until the transaction ends; a hash collision only adds a wait."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"idempotency:{user_id}:{key}"
    )


async def find(
    conn: asyncpg.Connection | asyncpg.Pool, user_id: UUID, key: str, *, ttl_s: int
) -> IdempotencyRecord | None:
    """The live record for (user, key); one older than ``ttl_s`` no longer counts."""
    row = await conn.fetchrow(
        "SELECT request_sha256, status_code, response, created_at FROM idempotency_keys "
        "WHERE user_id = $1 AND key = $2 AND created_at > now() - make_interval(secs => $3)",
        user_id,
        key,
        float(ttl_s),
    )
    return msgspec.convert(dict(row), IdempotencyRecord) if row else None


async def save(
    conn: asyncpg.Connection,
    user_id: UUID,
    key: str,
    *,
    request_sha256: str,
    status_code: int,
    response: bytes,
) -> None:
    """Store the response given for (user, key), replacing an expired record of it."""
    await conn.execute(
        """
        INSERT INTO idempotency_keys (user_id, key, request_sha256, status_code, response)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (user_id, key) DO UPDATE SET
            request_sha256 = EXCLUDED.request_sha256, status_code = EXCLUDED.status_code,
            response = EXCLUDED.response, created_at = now()
        """,
        user_id,
        key,
        request_sha256,
        status_code,
        response,
    )


async def purge_expired(conn: asyncpg.Connection, *, ttl_s: int, limit: int = 100) -> int:
    """Delete a bounded batch of expired records, skipping any another request holds."""
    result = await conn.execute(
        """
        DELETE FROM idempotency_keys WHERE (user_id, key) IN (
            SELECT user_id, key FROM idempotency_keys
            WHERE created_at < now() - make_interval(secs => $1)
            ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)
        """,
        float(ttl_s),
        limit,
    )
    return int(result.split()[-1])
