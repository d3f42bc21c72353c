"""Data versions per scope, for ETags and caches that agree across replicas.

Any write that changes what a scorecard or ranking shows bumps the version of the
district, its province and the country in the same transaction, so a reader
comparing versions never serves stale numbers and never recomputes needlessly.
"""

from __future__ import annotations

import asyncpg


async def bump(conn: asyncpg.Connection, area_code: str) -> None:
    """Bump ``area_code`` and every area above it (district → province → country)."""
    await conn.execute(
        """
        WITH RECURSIVE chain(code) AS (
            SELECT code FROM areas WHERE code = $1
            UNION ALL
            SELECT a.parent_code FROM areas a JOIN chain c ON a.code = c.code
            WHERE a.parent_code IS NOT NULL
        )
        INSERT INTO data_versions AS v (area_code, version, changed_at)
        SELECT code, 1, now() FROM chain
        ON CONFLICT (area_code) DO UPDATE SET version = v.version + 1, changed_at = now()
        """,
        area_code,
    )


async def version_of(conn: asyncpg.Connection, area_code: str) -> int:
    return int(
        await conn.fetchval(
            "SELECT coalesce((SELECT version FROM data_versions WHERE area_code = $1), 0)",
            area_code,
        )
    )
