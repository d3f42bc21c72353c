"""The server's token-signing keys, shared by every replica through the database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec

#: Serialises first-start key creation across replicas.
KEY_LOCK = 0x6B65797321


class ServerKey(msgspec.Struct, frozen=True, kw_only=True):
    kid: str
    private_pem: str
    public_jwk: dict[str, Any]
    created_at: datetime


async def all_keys(conn: asyncpg.Connection) -> list[ServerKey]:
    """Newest first: the first one signs."""
    rows = await conn.fetch(
        "SELECT kid, private_pem, public_jwk, created_at FROM server_keys "
        "ORDER BY created_at DESC, kid"
    )
    return [msgspec.convert(dict(r), ServerKey) for r in rows]


async def insert_key(
    conn: asyncpg.Connection, kid: str, private_pem: str, public_jwk: dict[str, Any]
) -> None:
    await conn.execute(
        "INSERT INTO server_keys (kid, private_pem, public_jwk) VALUES ($1, $2, $3)",
        kid,
        private_pem,
        public_jwk,
    )


async def lock_keys(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock($1)", KEY_LOCK)
