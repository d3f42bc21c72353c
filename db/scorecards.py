"""What scorecards and rankings read: latest counting values, targets, versions.

"Latest" comes from ``latest_values``, which a trigger keeps current in the same
transaction as every report, review and supersession: one index scan for the whole
country. Only where that row is newer than the date asked for (a past ``as_of``) does
the read fall back to one probe per (district, indicator) of the partial indexes on
``submission_values`` (``WHERE counting`` for basis ``latest``, ``WHERE status =
'accepted' AND NOT superseded`` for ``accepted``), ordered ``as_of DESC, seq DESC``.
Neither grows with history. Values count from 1 January of the year asked for, up to
and including ``as_of``.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

import asyncpg
import msgspec

Basis = Literal["latest", "accepted"]


class Value(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Untracked by the cycle collector (``gc=False``): nothing it holds (strings,
    numbers, a date, a UUID, a tuple of strings) can refer back to it, so it is never in
    a cycle, and workers keep thousands in report caches that every full collection
    scanned."""

    district_code: str
    indicator_code: str
    submission_id: UUID
    as_of: date
    numerator: int
    denominator: int
    flags: tuple[str, ...]
    status: str


class TargetRow(msgspec.Struct, frozen=True, kw_only=True):
    area_code: str
    division_id: UUID | None
    level: str
    agreement_id: UUID
    indicator_code: str
    annual: Decimal
    q1: Decimal | None
    q2: Decimal | None
    q3: Decimal | None
    q4: Decimal | None
    weight: Decimal | None


_FILTER = {
    "latest": "sv.counting",
    "accepted": "sv.status = 'accepted' AND NOT sv.superseded",
}


def _latest_sql(basis: Basis, division: bool) -> str:
    division_clause = "sv.division_id = $5" if division else "sv.division_id IS NULL"
    return f"""
        SELECT d.code AS district_code, i.code AS indicator_code, v.submission_id, v.as_of,
               v.numerator, v.denominator, v.flags, v.status
        FROM unnest($1::text[]) AS d(code)
        CROSS JOIN unnest($2::text[]) AS i(code)
        CROSS JOIN LATERAL (
            SELECT sv.submission_id, sv.as_of, sv.numerator, sv.denominator, sv.flags,
                   sv.status
            FROM submission_values sv
            WHERE sv.district_code = d.code AND sv.indicator_code = i.code
              AND {division_clause} AND {_FILTER[basis]}
              AND sv.as_of <= $3 AND sv.as_of >= $4
            ORDER BY sv.as_of DESC, sv.seq DESC
            LIMIT 1
        ) v
    """


_LATEST = {
    (basis, division): _latest_sql(basis, division)  # type: ignore[arg-type]
    for basis in ("latest", "accepted")
    for division in (False, True)
}


NIL_DIVISION = UUID(int=0)


def _value(row: asyncpg.Record) -> Value:
    # Built field by field: this runs for every district of the country per request.
    return Value(
        district_code=row["district_code"],
        indicator_code=row["indicator_code"],
        submission_id=row["submission_id"],
        as_of=row["as_of"],
        numerator=row["numerator"],
        denominator=row["denominator"],
        flags=tuple(row["flags"]),
        status=row["status"],
    )


_CURRENT = """
    SELECT district_code, indicator_code, submission_id, as_of, numerator, denominator, flags,
           status
    FROM latest_values
    WHERE basis = $1 AND division_key = $2 AND district_code = ANY($3::text[])
      AND indicator_code = ANY($4::text[])
"""


async def current_values(
    conn: asyncpg.Connection,
    districts: list[str],
    indicators: list[str],
    *,
    basis: Basis,
    division_id: UUID | None = None,
) -> list[Value]:
    """The kept latest value of every (district, indicator), whatever its date."""
    rows = await conn.fetch(_CURRENT, basis, division_id or NIL_DIVISION, districts, indicators)
    return [_value(row) for row in rows]


async def values_at(
    conn: asyncpg.Connection,
    current: list[Value],
    indicators: list[str],
    *,
    as_of: date,
    since: date,
    basis: Basis,
    division_id: UUID | None = None,
) -> dict[tuple[str, str], Value]:
    """(district, indicator) → the latest counting value in [since, as_of], from the kept
    values where they are old enough, else from a probe of the history."""
    out: dict[tuple[str, str], Value] = {}
    too_new: set[str] = set()
    for value in current:
        if value.as_of > as_of:
            too_new.add(value.district_code)
        elif value.as_of >= since:
            out[(value.district_code, value.indicator_code)] = value
    if too_new:
        args: list[object] = [sorted(too_new), indicators, as_of, since]
        if division_id is not None:
            args.append(division_id)
        for row in await conn.fetch(_LATEST[(basis, division_id is not None)], *args):
            value = _value(row)
            out[(value.district_code, value.indicator_code)] = value
    return out


async def latest_values(
    conn: asyncpg.Connection,
    districts: list[str],
    indicators: list[str],
    *,
    as_of: date,
    since: date,
    basis: Basis,
    division_id: UUID | None = None,
) -> dict[tuple[str, str], Value]:
    """(district, indicator) → the latest counting value in [since, as_of]."""
    current = await current_values(
        conn, districts, indicators, basis=basis, division_id=division_id
    )
    return await values_at(
        conn, current, indicators, as_of=as_of, since=since, basis=basis, division_id=division_id
    )


async def history(
    conn: asyncpg.Connection,
    district: str,
    indicator: str,
    *,
    as_of: date,
    since: date,
    basis: Basis,
    limit: int,
) -> list[tuple[date, int, int]]:
    """Recent counting snapshots (as_of, numerator, denominator), oldest first."""
    rows = await conn.fetch(
        f"""
        SELECT sv.as_of, sv.numerator, sv.denominator FROM submission_values sv
        WHERE sv.district_code = $1 AND sv.indicator_code = $2 AND sv.division_id IS NULL
          AND {_FILTER[basis]} AND sv.as_of <= $3 AND sv.as_of >= $4
        ORDER BY sv.as_of DESC, sv.seq DESC
        LIMIT $5
        """,
        district,
        indicator,
        as_of,
        since,
        limit,
    )
    seen: dict[date, tuple[date, int, int]] = {}
    for row in rows:  # newest first: keep the latest report for each date
        seen.setdefault(row["as_of"], (row["as_of"], row["numerator"], row["denominator"]))
    return sorted(seen.values())


async def agreements_fingerprint(conn: asyncpg.Connection, year: int) -> UUID | None:
    """Changes, in commit order, whenever an agreement of ``year`` is written (migration
    0014); None before any is."""
    tag: UUID | None = await conn.fetchval(
        "SELECT tag FROM agreement_year_versions WHERE year = $1", year
    )
    return tag


#: Per office and level (its agreements of a year, amended version by version), the one
#: in force when ``$2`` (the end of the as-of day) came: signed before it and not ended by
#: it (of several, the latest signed, then the highest version: replicas' clocks differ);
#: for a day before any was signed, the first one signed (the year's promise from its
#: start); none when every one signed had ended by then. $1 year, $3 levels; ``{extra}``
#: narrows further.
_IN_FORCE = """
    WITH ranked AS (
        SELECT a.id, a.second_area, a.second_division_id, a.level, a.activated_at, a.version,
               CASE WHEN a.activated_at < $2 AND (a.ended_at IS NULL OR a.ended_at >= $2)
                    THEN 0
                    WHEN a.activated_at >= $2 THEN 1
                    ELSE 2 END AS rank
          FROM agreements a
         WHERE a.year = $1 AND a.activated_at IS NOT NULL AND a.level = ANY($3::text[]) {extra}
    ), chosen AS (
        SELECT DISTINCT ON (second_area, second_division_id, level) id, rank
          FROM ranked
         ORDER BY second_area, second_division_id, level, rank,
                  CASE WHEN rank = 0 THEN activated_at END DESC,
                  CASE WHEN rank = 0 THEN version END DESC,
                  activated_at, version
    )
    SELECT a.second_area AS area_code, a.second_division_id AS division_id, a.level,
           a.id AS agreement_id, t.indicator_code, t.annual, t.q1, t.q2, t.q3, t.q4, t.weight
      FROM chosen c JOIN agreements a ON a.id = c.id
      JOIN agreement_targets t ON t.agreement_id = a.id
     WHERE c.rank < 2
"""


async def targets_in_force(
    conn: asyncpg.Connection, year: int, cutoff: datetime, levels: list[str]
) -> list[TargetRow]:
    """Targets of the agreements of ``year`` in force at ``cutoff`` (``_IN_FORCE``): the
    target that applies at an as-of date is the one signed by then, so amending an
    agreement does not rewrite the scores of the months before (found by review)."""
    rows = await conn.fetch(_IN_FORCE.format(extra=""), year, cutoff, levels)
    return [
        TargetRow(
            area_code=r["area_code"],
            division_id=r["division_id"],
            level=r["level"],
            agreement_id=r["agreement_id"],
            indicator_code=r["indicator_code"],
            annual=r["annual"],
            q1=r["q1"],
            q2=r["q2"],
            q3=r["q3"],
            q4=r["q4"],
            weight=r["weight"],
        )
        for r in rows
    ]


async def district(conn: asyncpg.Connection, code: str) -> asyncpg.Record:
    """One district's (code, name, parent_code, population)."""
    row = await conn.fetchrow(
        "SELECT code, name, parent_code, coalesce(population, 0) AS population FROM areas "
        "WHERE code = $1 AND kind = 'district'",
        code,
    )
    assert row is not None, code  # callers checked it against the area tree
    return row


async def province(conn: asyncpg.Connection, code: str) -> asyncpg.Record:
    row = await conn.fetchrow(
        "SELECT code, name FROM areas WHERE code = $1 AND kind = 'province'", code
    )
    assert row is not None, code
    return row


async def districts(conn: asyncpg.Connection, province: str | None) -> list[asyncpg.Record]:
    """Districts (code, name, parent_code, population), of one province or all."""
    return await conn.fetch(
        "SELECT code, name, parent_code, coalesce(population, 0) AS population FROM areas "
        "WHERE kind = 'district' AND ($1::text IS NULL OR parent_code = $1) ORDER BY code",
        province,
    )


async def region_members(
    conn: asyncpg.Connection, province: str, year: int
) -> list[asyncpg.Record]:
    """The province's regions for ``year``: those drawn for the latest year up to it that
    the province drew regions for (they carry over until redrawn, migration 0017), as
    the coordinators' scope has them."""
    return await conn.fetch(
        """
        SELECT r.id, r.name, r.coordinator_id,
               coalesce(array_agg(m.district_code ORDER BY m.district_code)
                        FILTER (WHERE m.district_code IS NOT NULL), '{}') AS districts
        FROM regions r LEFT JOIN region_members m ON m.region_id = r.id
        WHERE r.province_code = $1
          AND r.year = (SELECT max(d.year) FROM region_drawings d
                         WHERE d.province_code = $1 AND d.year <= $2)
        GROUP BY r.id ORDER BY r.name
        """,
        province,
        year,
    )


async def division_targets(
    conn: asyncpg.Connection, year: int, district: str, cutoff: datetime
) -> list[dict[str, object]]:
    """The district's divisions with the targets of their agreement in force at ``cutoff``
    (possibly none)."""
    divisions = await conn.fetch(
        "SELECT id, code, name FROM divisions WHERE district_code = $1 ORDER BY code", district
    )
    rows = await conn.fetch(
        _IN_FORCE.format(extra="AND a.second_area = $4"),
        year,
        cutoff,
        ["district_division"],
        district,
    )
    targets: dict[UUID, list[TargetRow]] = {}
    agreement: dict[UUID, UUID] = {}
    for r in rows:
        target = msgspec.convert(dict(r), TargetRow)
        assert target.division_id is not None
        targets.setdefault(target.division_id, []).append(target)
        agreement[target.division_id] = target.agreement_id
    return [
        {
            "id": d["id"],
            "code": d["code"],
            "name": d["name"],
            "agreement_id": agreement.get(d["id"]),
            "targets": targets.get(d["id"], []),
        }
        for d in divisions
    ]
