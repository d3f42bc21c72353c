"""Queries the authorization layer asks: is this area inside that one?"""

from __future__ import annotations

from uuid import UUID

import asyncpg


async def area_within(conn: asyncpg.Connection, area_code: str, container: str) -> bool:
    """True when ``area_code`` is ``container`` or lies below it (province → district)."""
    if area_code == container:
        return await conn.fetchval("SELECT 1 FROM areas WHERE code = $1", area_code) is not None
    return bool(
        await conn.fetchval(
            "SELECT 1 FROM areas a LEFT JOIN areas p ON p.code = a.parent_code "
            "WHERE a.code = $1 AND (a.parent_code = $2 OR p.parent_code = $2)",
            area_code,
            container,
        )
    )


async def district_coordinated_by(conn: asyncpg.Connection, area_code: str, user_id: UUID) -> bool:
    """True when the district is in a region the user coordinates (any year)."""
    return bool(
        await conn.fetchval(
            "SELECT 1 FROM region_members m JOIN regions r ON r.id = m.region_id "
            "WHERE m.district_code = $1 AND r.coordinator_id = $2 LIMIT 1",
            area_code,
            user_id,
        )
    )


async def coordinated_districts(conn: asyncpg.Connection, user_id: UUID, year: int) -> set[str]:
    rows = await conn.fetch(
        "SELECT m.district_code FROM region_members m JOIN regions r ON r.id = m.region_id "
        "WHERE r.coordinator_id = $1 AND r.year = $2",
        user_id,
        year,
    )
    return {r["district_code"] for r in rows}
