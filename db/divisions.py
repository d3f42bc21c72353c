"""Divisions (bidang) of district offices."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

import asyncpg
import msgspec


class DivisionRow(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    district_code: str
    code: str
    name: str
    created_at: datetime


_COLUMNS = "id, district_code, code, name, created_at"


async def list_divisions(conn: asyncpg.Connection, district_code: str) -> list[DivisionRow]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM divisions WHERE district_code = $1 ORDER BY code", district_code
    )
    return [msgspec.convert(dict(r), DivisionRow) for r in rows]


async def page_divisions(
    conn: asyncpg.Connection, district_code: str, *, limit: int, offset: int
) -> tuple[list[DivisionRow], int]:
    """One page of the district's divisions in code order, and how many it has."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM divisions WHERE district_code = $1 ORDER BY code "
        "LIMIT $2 OFFSET $3",
        district_code,
        limit,
        offset,
    )
    total = await conn.fetchval(
        "SELECT count(*) FROM divisions WHERE district_code = $1", district_code
    )
    return [msgspec.convert(dict(r), DivisionRow) for r in rows], int(total)


async def get_division(conn: asyncpg.Connection, division_id: UUID) -> DivisionRow | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM divisions WHERE id = $1", division_id)
    return msgspec.convert(dict(row), DivisionRow) if row else None


async def insert_division(
    conn: asyncpg.Connection, district_code: str, code: str, name: str
) -> DivisionRow | None:
    """Insert; None when the district already has a division with that code."""
    row = await conn.fetchrow(
        f"INSERT INTO divisions (district_code, code, name) VALUES ($1, $2, $3) "
        f"ON CONFLICT (district_code, code) DO NOTHING RETURNING {_COLUMNS}",
        district_code,
        code,
        name,
    )
    return msgspec.convert(dict(row), DivisionRow) if row else None
