"""Regions (wilayah) of a province for a year, replaced as a whole."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg


async def replace_regions(
    conn: asyncpg.Connection,
    province_code: str,
    year: int,
    regions: list[tuple[str, UUID | None, list[str]]],
) -> None:
    """Drop the province-year's regions and insert ``(name, coordinator, districts)``.

    Serialised per province-year: two concurrent replacements would otherwise each
    delete only the rows they saw and leave a mix of both.
    """
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        f"regions:{province_code}:{year}",
    )
    await conn.execute(
        "DELETE FROM regions WHERE province_code = $1 AND year = $2", province_code, year
    )
    # Drawn, even as no regions: the previous year's no longer carry over (0017).
    await conn.execute(
        "INSERT INTO region_drawings (province_code, year) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        province_code,
        year,
    )
    for name, coordinator_id, districts in regions:
        region_id = await conn.fetchval(
            "INSERT INTO regions (province_code, year, name, coordinator_id) "
            "VALUES ($1, $2, $3, $4) RETURNING id",
            province_code,
            year,
            name,
            coordinator_id,
        )
        await conn.executemany(
            "INSERT INTO region_members (region_id, district_code, year) VALUES ($1, $2, $3)",
            [(region_id, code, year) for code in districts],
        )


async def drawing_year(conn: asyncpg.Connection, province_code: str, year: int) -> int | None:
    """The year whose regions apply in ``year``: the latest the province drew regions
    for up to it (they carry over until redrawn, migration 0017); None before any."""
    found: int | None = await conn.fetchval(
        "SELECT max(year) FROM region_drawings WHERE province_code = $1 AND year <= $2",
        province_code,
        year,
    )
    return found


async def regions_of(
    conn: asyncpg.Connection, province_code: str, drawn_for: int | None
) -> list[dict[str, Any]]:
    """The regions drawn for ``drawing_year`` with coordinator and member districts
    (code, name), in name order."""
    rows = await conn.fetch(
        """
        SELECT r.id, r.name, r.coordinator_id, u.username AS coordinator_username,
               u.full_name AS coordinator_name,
               coalesce(array_agg(a.code ORDER BY a.code) FILTER (WHERE a.code IS NOT NULL),
                        '{}') AS codes,
               coalesce(array_agg(a.name ORDER BY a.code) FILTER (WHERE a.code IS NOT NULL),
                        '{}') AS names
        FROM regions r
        LEFT JOIN users u ON u.id = r.coordinator_id
        LEFT JOIN region_members m ON m.region_id = r.id
        LEFT JOIN areas a ON a.code = m.district_code
        WHERE r.province_code = $1 AND r.year = $2
        GROUP BY r.id, u.username, u.full_name
        ORDER BY r.name
        """,
        province_code,
        drawn_for,
    )
    return [dict(r) for r in rows]


async def unassigned_districts(
    conn: asyncpg.Connection, province_code: str, drawn_for: int | None
) -> list[dict[str, Any]]:
    """The province's districts in none of the regions drawn for ``drawn_for``."""
    rows = await conn.fetch(
        """
        SELECT a.code, a.name FROM areas a
        WHERE a.parent_code = $1 AND a.kind = 'district'
          AND NOT EXISTS (SELECT 1 FROM region_members m JOIN regions r ON r.id = m.region_id
                          WHERE m.district_code = a.code AND r.province_code = $1
                            AND r.year = $2)
        ORDER BY a.code
        """,
        province_code,
        drawn_for,
    )
    return [dict(r) for r in rows]


async def districts_of(conn: asyncpg.Connection, province_code: str) -> dict[str, dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT code, name, population FROM areas WHERE parent_code = $1 AND kind = 'district' "
        "ORDER BY code",
        province_code,
    )
    return {r["code"]: dict(r) for r in rows}


async def coordinators(conn: asyncpg.Connection, ids: list[UUID]) -> dict[UUID, dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT id, role, area_code, active FROM users WHERE id = ANY($1::uuid[])", ids
    )
    return {r["id"]: dict(r) for r in rows}


async def coordinated_from(conn: asyncpg.Connection, user_id: UUID, year: int) -> int | None:
    """The first year of a drawing still in force in ``year`` or later (not replaced by
    a later drawing of its province by then) that names the user coordinator, if any."""
    found: int | None = await conn.fetchval(
        """
        SELECT min(r.year) FROM regions r
         WHERE r.coordinator_id = $1
           AND NOT EXISTS (SELECT 1 FROM region_drawings d
                            WHERE d.province_code = r.province_code
                              AND d.year > r.year AND d.year <= $2)
        """,
        user_id,
        year,
    )
    return found
