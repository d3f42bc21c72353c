"""Queries the authorization layer asks: is this area inside that one?

The area tree is reference data (Kemendagri codes, loaded at start-up and never edited
through the API), so each process reads its parent links once and answers containment
from memory: scope checks on every request cost no database round trip.
"""

from __future__ import annotations

from uuid import UUID

import asyncpg

_PARENTS: dict[str, str | None] = {}


async def _parents(conn: asyncpg.Connection | asyncpg.Pool) -> dict[str, str | None]:
    if not _PARENTS:
        rows = await conn.fetch("SELECT code, parent_code FROM areas")
        _PARENTS.update({r["code"]: r["parent_code"] for r in rows})
    return _PARENTS


async def area_tree(conn: asyncpg.Connection) -> dict[str, str | None]:
    """Every area's parent (None for the country), read once per process."""
    return await _parents(conn)


async def area_kind(conn: asyncpg.Connection | asyncpg.Pool, code: str) -> str | None:
    """'country', 'province' or 'district' (the tree has three levels), None if unknown."""
    parents = await _parents(conn)
    if code not in parents:
        return None
    parent = parents[code]
    if parent is None:
        return "country"
    return "province" if parents.get(parent) is None else "district"


async def area_within(
    conn: asyncpg.Connection | asyncpg.Pool, area_code: str, container: str
) -> bool:
    """True when ``area_code`` is ``container`` or lies below it (country → province →
    district)."""
    parents = await _parents(conn)
    if area_code not in parents:
        return False
    code: str | None = area_code
    while code is not None:
        if code == container:
            return True
        code = parents.get(code)
    return False


async def district_coordinated_by(
    conn: asyncpg.Connection | asyncpg.Pool, area_code: str, user_id: UUID
) -> bool:
    """True when the user coordinates the district's most recent region: a coordinator
    whose district moved to another region (or whose region was dropped) loses it."""
    return bool(
        await conn.fetchval(
            "SELECT r.coordinator_id = $2 FROM region_members m "
            "JOIN regions r ON r.id = m.region_id "
            "WHERE m.district_code = $1 ORDER BY m.year DESC LIMIT 1",
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
