"""Users and service accounts."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from db import changes as change_feed


class UserRow(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    username: str
    full_name: str
    role: str
    area_code: str
    division_id: UUID | None
    extra_areas: list[str]
    active: bool
    created_at: datetime
    updated_at: datetime


class Credentials(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    password_hash: str
    active: bool
    role: str
    #: Read with the hash: a token is of the generation its password was checked in.
    token_generation: int


_COLUMNS = (
    "id, username, full_name, role, area_code, division_id, extra_areas, active, "
    "created_at, updated_at"
)


def _user(row: asyncpg.Record | None) -> UserRow | None:
    return msgspec.convert(dict(row), UserRow) if row else None


async def insert_user(
    conn: asyncpg.Connection,
    *,
    username: str,
    full_name: str,
    role: str,
    area_code: str,
    division_id: UUID | None,
    extra_areas: list[str],
    password_hash: str,
    created_by: UUID | None,
) -> UserRow:
    row = await conn.fetchrow(
        f"""
        INSERT INTO users (username, full_name, role, area_code, division_id, extra_areas,
                           password_hash, created_by)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
        RETURNING {_COLUMNS}
        """,
        username,
        full_name,
        role,
        area_code,
        division_id,
        extra_areas,
        password_hash,
        created_by,
    )
    user = _user(row)
    assert user is not None
    return user


async def username_taken(conn: asyncpg.Connection, username: str) -> bool:
    return bool(
        await conn.fetchval("SELECT 1 FROM users WHERE lower(username) = lower($1)", username)
    )


async def get_user(
    conn: asyncpg.Connection, user_id: UUID, *, for_update: bool = False
) -> UserRow | None:
    # NO KEY: the id never changes, so references to the user (their Idempotency-Keys,
    # checked FOR KEY SHARE) need not wait for an edit of the row.
    lock = " FOR NO KEY UPDATE" if for_update else ""
    return _user(await conn.fetchrow(f"SELECT {_COLUMNS} FROM users WHERE id = $1{lock}", user_id))


async def login_name(conn: asyncpg.Connection, username: str) -> str:
    """The name as ``credentials_for`` matches it (PostgreSQL's ``lower``): the login
    throttle counts per this, so every spelling that reaches one account shares its
    counter. Python's ``str.lower`` folds some letters otherwise ('İ'), which on a UTF-8
    database gave one account a counter per spelling (found by review)."""
    folded: str = await conn.fetchval("SELECT lower($1)", username)
    return folded


async def credentials_for(conn: asyncpg.Connection, username: str) -> Credentials | None:
    row = await conn.fetchrow(
        "SELECT id, password_hash, active, role, token_generation FROM users "
        "WHERE lower(username) = lower($1)",
        username,
    )
    return msgspec.convert(dict(row), Credentials) if row else None


async def principal_row(conn: asyncpg.Connection, user_id: UUID) -> dict[str, Any] | None:
    """What authentication needs per request: scope, role, and whether still active."""
    row = await conn.fetchrow(
        "SELECT id, username, role, area_code, division_id, extra_areas, active, "
        "token_generation FROM users WHERE id = $1",
        user_id,
    )
    return dict(row) if row else None


async def list_users(
    conn: asyncpg.Connection,
    *,
    within_province: str | None,
    role: str | None,
    area: str | None,
    active: bool | None,
    limit: int,
    offset: int,
) -> tuple[list[UserRow], int]:
    """Users in code order; ``within_province`` limits to those bound inside a province
    (its own area and districts, every grant of a service account)."""
    where = """
        FROM users u JOIN areas a ON a.code = u.area_code
        WHERE ($1::text IS NULL OR (u.area_code = $1 OR a.parent_code = $1)
               AND NOT EXISTS (SELECT 1 FROM unnest(u.extra_areas) AS x(code)
                               LEFT JOIN areas xa ON xa.code = x.code
                               WHERE x.code <> $1 AND xa.parent_code IS DISTINCT FROM $1))
          AND ($2::text IS NULL OR u.role = $2)
          AND ($3::text IS NULL OR u.area_code = $3)
          AND ($4::boolean IS NULL OR u.active = $4)
    """
    args = (within_province, role, area, active)
    total = await conn.fetchval("SELECT count(*) " + where, *args)
    cols = ", ".join("u." + c.strip() for c in _COLUMNS.split(","))
    rows = await conn.fetch(
        f"SELECT {cols} {where} ORDER BY u.username LIMIT $5 OFFSET $6", *args, limit, offset
    )
    return [msgspec.convert(dict(r), UserRow) for r in rows], int(total)


async def update_user(
    conn: asyncpg.Connection, user_id: UUID, changes: dict[str, Any]
) -> UserRow | None:
    """Apply ``changes`` (column → value; column names come from code, never the client)."""
    allowed = {"full_name", "active", "password_hash", "role", "area_code", "division_id"}
    assert set(changes) <= allowed
    if not changes:
        return await get_user(conn, user_id)
    # Deactivating or a new password also moves the token generation (migration 0022).
    sets = ", ".join(f"{col} = ${i}" for i, col in enumerate(changes, start=2))
    row = await conn.fetchrow(
        f"UPDATE users SET {sets}, updated_at = now() WHERE id = $1 RETURNING {_COLUMNS}",
        user_id,
        *changes.values(),
    )
    change_feed.wrote_user(user_id)
    return _user(row)


async def division_district(
    conn: asyncpg.Connection | asyncpg.Pool, division_id: UUID
) -> str | None:
    return await conn.fetchval("SELECT district_code FROM divisions WHERE id = $1", division_id)


async def lock_seeding(conn: asyncpg.Connection) -> None:
    """Serialise demo seeding for the transaction: the demo exists once its admin user
    does, so a second seeder waits here, then finds that user."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('kinerja.demo'))")
