"""Data versions per area, for ETags and caches that agree across replicas.

Every write that changes what a scorecard or ranking shows bumps the version of the
area it touches (a district for reports and its agreement, a province for its regions
and its own agreement) in the same transaction. Only that one row is written, so
concurrent reports from different districts never queue on a shared row. A scope's
version is the sum of the versions of the area and every area below it: versions only
grow, so any change inside the scope changes the sum.
"""

from __future__ import annotations

import asyncpg

from db import changes


async def bump(conn: asyncpg.Connection, area_code: str) -> None:
    version = await conn.fetchval(
        """
        INSERT INTO data_versions AS v (area_code, version, changed_at) VALUES ($1, 1, now())
        ON CONFLICT (area_code) DO UPDATE SET version = v.version + 1, changed_at = now()
        RETURNING version
        """,
        area_code,
    )
    changes.wrote_version(area_code, int(version))


async def bump_everywhere(conn: asyncpg.Connection) -> None:
    """A change every report shows (the indicator catalogue): every province's own version,
    since every scorecard's and ranking's key holds its province's scope or the country's."""
    rows = await conn.fetch(
        """
        INSERT INTO data_versions AS v (area_code, version, changed_at)
        SELECT code, 1, now() FROM areas WHERE kind = 'province' ORDER BY code
        ON CONFLICT (area_code) DO UPDATE SET version = v.version + 1, changed_at = now()
        RETURNING area_code, version
        """
    )
    for r in rows:
        changes.wrote_version(r["area_code"], int(r["version"]))


async def scope_versions(conn: asyncpg.Connection | asyncpg.Pool, areas: list[str]) -> list[int]:
    """The version of each scope in ``areas`` (the area plus everything below it)."""
    rows = await conn.fetch(
        """
        SELECT s.code,
               coalesce((SELECT sum(v.version) FROM data_versions v
                         JOIN areas a ON a.code = v.area_code
                         WHERE s.code = 'ID' OR a.code = s.code OR a.parent_code = s.code), 0)
                 AS version
        FROM unnest($1::text[]) AS s(code)
        """,
        areas,
    )
    found = {r["code"]: int(r["version"]) for r in rows}
    return [found[a] for a in areas]
