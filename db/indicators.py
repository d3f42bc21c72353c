"""The indicator catalogue."""

from __future__ import annotations

from datetime import datetime

import asyncpg
import msgspec


class IndicatorRow(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    name_id: str
    name_en: str
    unit: str
    polarity: str
    cap: float
    numerator_definition: str
    denominator_definition: str
    age_band: str | None
    core: bool
    created_at: datetime


_COLUMNS = (
    "code, name_id, name_en, unit, polarity, cap::float8 AS cap, numerator_definition, "
    "denominator_definition, age_band, core, created_at"
)


async def list_indicators(conn: asyncpg.Connection) -> list[IndicatorRow]:
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM indicators ORDER BY core DESC, code")
    return [msgspec.convert(dict(r), IndicatorRow) for r in rows]


async def page_indicators(
    conn: asyncpg.Connection, *, limit: int, offset: int
) -> tuple[list[IndicatorRow], int]:
    """One page of the catalogue (core first, then by code), and its size."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM indicators ORDER BY core DESC, code LIMIT $1 OFFSET $2",
        limit,
        offset,
    )
    total = await conn.fetchval("SELECT count(*) FROM indicators")
    return [msgspec.convert(dict(r), IndicatorRow) for r in rows], int(total)


async def get_indicator(conn: asyncpg.Connection, code: str) -> IndicatorRow | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM indicators WHERE code = $1", code)
    return msgspec.convert(dict(row), IndicatorRow) if row else None


async def insert_indicator(conn: asyncpg.Connection, **fields: object) -> IndicatorRow | None:
    """Insert; None when the code exists."""
    row = await conn.fetchrow(
        f"""
        INSERT INTO indicators (code, name_id, name_en, unit, polarity, cap,
                                numerator_definition, denominator_definition, age_band)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        ON CONFLICT (code) DO NOTHING
        RETURNING {_COLUMNS}
        """,
        fields["code"],
        fields["name_id"],
        fields["name_en"],
        fields["unit"],
        fields["polarity"],
        fields["cap"],
        fields["numerator_definition"],
        fields["denominator_definition"],
        fields["age_band"],
    )
    return msgspec.convert(dict(row), IndicatorRow) if row else None


async def indicator_used_by(conn: asyncpg.Connection, code: str) -> str | None:
    """What keeps an indicator: "agreements" that set it a target, "submissions" that
    reported it (the ledger is kept for ever), or None."""
    return await conn.fetchval(
        "SELECT CASE"
        " WHEN EXISTS (SELECT 1 FROM agreement_targets WHERE indicator_code = $1)"
        " THEN 'agreements'"
        " WHEN EXISTS (SELECT 1 FROM submission_values WHERE indicator_code = $1)"
        " THEN 'submissions' END",
        code,
    )


async def delete_indicator(conn: asyncpg.Connection, code: str) -> bool:
    """Whether this call removed it (a concurrent removal may have been first)."""
    return bool(
        await conn.fetchval(
            "DELETE FROM indicators WHERE code = $1 AND NOT core RETURNING true", code
        )
    )
