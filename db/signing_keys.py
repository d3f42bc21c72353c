"""Public keys that people register to sign agreements and submissions."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec


class SigningKey(msgspec.Struct, frozen=True, kw_only=True):
    kid: str
    owner_id: UUID
    kty: str
    alg: str
    jwk: dict[str, Any]
    label: str | None
    created_at: datetime
    revoked_at: datetime | None


_COLUMNS = "kid, owner_id, kty, alg, jwk, label, created_at, revoked_at"


async def insert_key(
    conn: asyncpg.Connection,
    *,
    kid: str,
    owner_id: UUID,
    kty: str,
    alg: str,
    jwk: dict[str, Any],
    label: str | None,
) -> SigningKey | None:
    """Insert, or None when the key (by thumbprint) is already registered."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO signing_keys (kid, owner_id, kty, alg, jwk, label)
        VALUES ($1, $2, $3, $4, $5, $6)
        ON CONFLICT (kid) DO NOTHING
        RETURNING {_COLUMNS}
        """,
        kid,
        owner_id,
        kty,
        alg,
        jwk,
        label,
    )
    return msgspec.convert(dict(row), SigningKey) if row else None


async def lock_for_signing(
    conn: asyncpg.Connection, kid: str
) -> tuple[SigningKey, datetime] | None:
    """The key, share-locked until commit, and the database clock, in one round trip.

    A revocation either committed before (and shows here, re-read after waiting for its
    lock) or waits for this transaction, so it can never fall between the check and an
    entry received under the key; its ``revoked_at`` then comes after our clock.
    """
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS}, clock_timestamp() AS now FROM signing_keys WHERE kid = $1 FOR SHARE",
        kid,
    )
    if row is None:
        return None
    found = dict(row)
    now: datetime = found.pop("now")
    return msgspec.convert(found, SigningKey), now


async def get_key(conn: asyncpg.Connection | asyncpg.Pool, kid: str) -> SigningKey | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM signing_keys WHERE kid = $1", kid)
    return msgspec.convert(dict(row), SigningKey) if row else None


async def list_keys(
    conn: asyncpg.Connection, *, owner_id: UUID | None, limit: int, offset: int
) -> tuple[list[SigningKey], int]:
    where = " FROM signing_keys WHERE ($1::uuid IS NULL OR owner_id = $1)"
    total = await conn.fetchval("SELECT count(*)" + where, owner_id)
    rows = await conn.fetch(
        f"SELECT {_COLUMNS}{where} ORDER BY created_at, kid LIMIT $2 OFFSET $3",
        owner_id,
        limit,
        offset,
    )
    return [msgspec.convert(dict(r), SigningKey) for r in rows], int(total)


async def revoke(conn: asyncpg.Connection, kid: str) -> SigningKey | None:
    """Set ``revoked_at`` once, in the caller's transaction; revoking again keeps the
    first time.

    The time must come after every submission received under the key. Those in flight
    hold it shared (``lock_for_signing``), and new ones may still take it shared while a
    writer waits for them; an UPDATE works out its new row before it waits, so its
    ``clock_timestamp()`` could precede a submission let in meanwhile, and verify would
    then call that submission's signature invalid. So the key is taken first, and its
    time read once it is held, when no submission can take it any more.
    """
    await conn.execute("SELECT 1 FROM signing_keys WHERE kid = $1 FOR UPDATE", kid)
    row = await conn.fetchrow(
        "UPDATE signing_keys SET revoked_at = coalesce(revoked_at, clock_timestamp()) "
        f"WHERE kid = $1 RETURNING {_COLUMNS}",
        kid,
    )
    return msgspec.convert(dict(row), SigningKey) if row else None
