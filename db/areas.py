"""Areas: loading the shipped Kemendagri data, and reading it back."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from importlib import resources
from typing import Any, Literal

import asyncpg
import msgspec

from db.versions import bump_everywhere

AreaKind = Literal["country", "province", "district"]

COUNTRY_CODE = "ID"


class District(msgspec.Struct, frozen=True, kw_only=True):
    """A district as the cascade and the demo read it: population 0 when unknown."""

    code: str
    name: str
    parent_code: str
    population: int


class Area(msgspec.Struct, frozen=True, kw_only=True):
    code: str
    kind: AreaKind
    name: str
    short_name: str
    district_type: str | None
    parent_code: str | None
    population: int | None
    area_km2: float | None
    child_count: int


def _read_csv(name: str) -> list[dict[str, str]]:
    text = resources.files("db.data").joinpath(name).read_text("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def area_rows() -> list[tuple[Any, ...]]:
    """Rows for ``areas`` from the shipped CSV files, parents before children."""
    population = {row["code"]: row for row in _read_csv("population.csv")}

    def pop(code: str) -> tuple[int | None, int | None, int | None, Decimal | None]:
        row = population.get(code)
        if row is None:
            return None, None, None, None
        km2 = Decimal(row["area_km2"]) if row["area_km2"] else None
        return int(row["total"]), int(row["male"]), int(row["female"]), km2

    rows: list[tuple[Any, ...]] = [
        (COUNTRY_CODE, "country", "Indonesia", "Indonesia", None, None, *pop("0"))
    ]
    for row in _read_csv("provinces.csv"):
        rows.append(
            (
                row["code"],
                "province",
                row["name"],
                row["name"],
                None,
                COUNTRY_CODE,
                *pop(row["code"]),
            )
        )
    for row in _read_csv("regencies.csv"):
        rows.append(
            (
                row["code"],
                "district",
                row["name"],
                row["short_name"],
                row["type"],
                row["province_code"],
                *pop(row["code"]),
            )
        )
    return rows


_UPSERT = """
INSERT INTO areas (code, kind, name, short_name, district_type, parent_code,
                   population, male, female, area_km2)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
ON CONFLICT (code) DO UPDATE SET
    kind = EXCLUDED.kind, name = EXCLUDED.name, short_name = EXCLUDED.short_name,
    district_type = EXCLUDED.district_type, parent_code = EXCLUDED.parent_code,
    population = EXCLUDED.population, male = EXCLUDED.male, female = EXCLUDED.female,
    area_km2 = EXCLUDED.area_km2
WHERE (areas.kind, areas.name, areas.short_name, areas.district_type, areas.parent_code,
       areas.population, areas.male, areas.female, areas.area_km2)
      IS DISTINCT FROM
      (EXCLUDED.kind, EXCLUDED.name, EXCLUDED.short_name, EXCLUDED.district_type,
       EXCLUDED.parent_code, EXCLUDED.population, EXCLUDED.male, EXCLUDED.female,
       EXCLUDED.area_km2)
"""


async def load_areas(conn: asyncpg.Connection) -> int:
    """Upsert every shipped area; rows already equal are left untouched. Returns the row count.

    Reports show areas' names and populations, so when any row changes (new area data
    shipped with an upgrade) every report's data version moves: under the ETag it had,
    a poller would keep the old names for good (304)."""
    rows = area_rows()
    async with conn.transaction():
        loaded_before = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM areas)")
        await conn.executemany(_UPSERT, rows)
        changed = await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM areas WHERE xmin = pg_current_xact_id()::xid)"
        )
        if changed and loaded_before:  # the first load: no report was ever answered
            await bump_everywhere(conn)
    return len(rows)


_SELECT = """
SELECT a.code, a.kind, a.name, a.short_name, a.district_type, a.parent_code,
       a.population, a.area_km2::float8 AS area_km2,
       (SELECT count(*) FROM areas c WHERE c.parent_code = a.code)::int AS child_count
FROM areas a
"""


async def get_area(conn: asyncpg.Connection, code: str) -> Area | None:
    row = await conn.fetchrow(_SELECT + " WHERE a.code = $1", code)
    return msgspec.convert(dict(row), Area) if row else None


async def list_areas(
    conn: asyncpg.Connection,
    *,
    kind: AreaKind | None,
    parent: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Area], int]:
    """One page of areas in code order, and the total matching the filters."""
    where = " WHERE ($1::text IS NULL OR a.kind = $1) AND ($2::text IS NULL OR a.parent_code = $2)"
    total = await conn.fetchval("SELECT count(*) FROM areas a" + where, kind, parent)
    rows = await conn.fetch(
        _SELECT + where + " ORDER BY a.code LIMIT $3 OFFSET $4", kind, parent, limit, offset
    )
    return [msgspec.convert(dict(r), Area) for r in rows], int(total)


async def count_by_kind(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT kind, count(*)::int AS n FROM areas GROUP BY kind")
    return {row["kind"]: row["n"] for row in rows}


async def area_kind(conn: asyncpg.Connection, code: str) -> AreaKind | None:
    """The kind of the area with this code; None when no area has it."""
    kind: AreaKind | None = await conn.fetchval("SELECT kind FROM areas WHERE code = $1", code)
    return kind


async def count_known(conn: asyncpg.Connection, codes: list[str]) -> int:
    """How many of ``codes`` (each counted once) name an area."""
    return int(
        await conn.fetchval(
            "SELECT count(*) FROM areas WHERE code = ANY($1::text[])", list(set(codes))
        )
    )


async def names_of_kind(conn: asyncpg.Connection, kinds: list[AreaKind]) -> dict[str, str]:
    """Code to name of every area of these kinds, in code order."""
    rows = await conn.fetch(
        "SELECT code, name FROM areas WHERE kind = ANY($1::text[]) ORDER BY code", kinds
    )
    return {row["code"]: row["name"] for row in rows}


async def districts_in(conn: asyncpg.Connection, provinces: list[str]) -> list[District]:
    """The districts of these provinces, in code order."""
    rows = await conn.fetch(
        "SELECT code, name, parent_code, coalesce(population, 0) AS population FROM areas "
        "WHERE parent_code = ANY($1::text[]) AND kind = 'district' ORDER BY code",
        provinces,
    )
    return [msgspec.convert(dict(r), District) for r in rows]
