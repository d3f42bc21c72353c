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
    conn: asyncpg.Connection | asyncpg.Pool,
    area_code: str,
    user_id: UUID,
    province_code: str,
    year: int,
) -> bool:
    """True when the district's region for ``year`` is one the user coordinates in their
    province ``province_code``: a coordinator whose district moved to another region for
    a later year keeps it for the years before; one moved to another province has none."""
    return bool(
        await conn.fetchval(
            "SELECT district_coordinated($1, $2, $3, $4)",
            area_code,
            user_id,
            province_code,
            year,
        )
    )


async def coordinated_districts(
    conn: asyncpg.Connection, user_id: UUID, province_code: str, year: int
) -> set[str]:
    """A coordinator's districts for ``year`` (``district_coordinated``, migration 0018:
    the region each district has for that year, drawn for it or carried over, is one they
    coordinate in their own province)."""
    rows = await conn.fetch(
        "SELECT DISTINCT district_code FROM region_spans "
        "WHERE district_coordinated(district_code, $1, $2, $3)",
        user_id,
        province_code,
        year,
    )
    return {r["district_code"] for r in rows}
