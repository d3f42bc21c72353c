"""Agreements (perjanjian kinerja), their targets and signatures."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import msgspec


class AgreementRow(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    lineage_id: UUID
    version: int
    year: int
    level: str
    first_area: str
    first_official: str
    first_title: str | None
    first_acting: str | None
    second_area: str
    second_division_id: UUID | None
    second_official: str
    second_title: str | None
    second_acting: str | None
    status: str
    amendment_of: UUID | None
    amendment_reason: str | None
    amendment_note: str | None
    document_sha256: str
    created_by: UUID
    created_at: datetime
    updated_at: datetime
    activated_at: datetime | None
    ended_at: datetime | None
    closed_by: UUID | None = None
    close_reason: str | None = None


class TargetRow(msgspec.Struct, frozen=True, kw_only=True):
    indicator_code: str
    annual: Decimal
    q1: Decimal | None
    q2: Decimal | None
    q3: Decimal | None
    q4: Decimal | None
    weight: Decimal | None


class SignatureRow(msgspec.Struct, frozen=True, kw_only=True):
    party: str
    signer_id: UUID
    kid: str
    jws: str
    document_sha256: str
    signed_at: datetime


_COLUMNS = (
    "id, lineage_id, version, year, level, first_area, first_official, first_title, "
    "first_acting, second_area, second_division_id, second_official, second_title, "
    "second_acting, status, amendment_of, amendment_reason, amendment_note, document_sha256, "
    "created_by, created_at, updated_at, activated_at, ended_at, closed_by, close_reason"
)
_A_COLUMNS = ", ".join("a." + c.strip() for c in _COLUMNS.split(","))


def _row(row: asyncpg.Record | None) -> AgreementRow | None:
    return msgspec.convert(dict(row), AgreementRow) if row else None


async def insert_agreement(conn: asyncpg.Connection, fields: dict[str, Any]) -> None:
    """Insert one version (``fields`` holds every column but the timestamps)."""
    columns = list(fields)
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    await conn.execute(
        f"INSERT INTO agreements ({', '.join(columns)}) VALUES ({placeholders})",
        *fields.values(),
    )


async def replace_targets(
    conn: asyncpg.Connection, agreement_id: UUID, targets: list[tuple[Any, ...]]
) -> None:
    """``targets``: (indicator, annual, q1, q2, q3, q4, weight) tuples."""
    await conn.execute("DELETE FROM agreement_targets WHERE agreement_id = $1", agreement_id)
    await conn.executemany(
        "INSERT INTO agreement_targets (agreement_id, indicator_code, annual, q1, q2, q3, q4, "
        "weight) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        [(agreement_id, *t) for t in targets],
    )


async def update_agreement(
    conn: asyncpg.Connection, agreement_id: UUID, changes: dict[str, Any]
) -> None:
    """Column names come from code, never from the client."""
    sets = ", ".join(f"{col} = ${i}" for i, col in enumerate(changes, start=2))
    await conn.execute(
        f"UPDATE agreements SET {sets}, updated_at = now() WHERE id = $1",
        agreement_id,
        *changes.values(),
    )


async def delete_draft(conn: asyncpg.Connection, agreement_id: UUID) -> bool:
    """Remove an unsigned draft and its targets; False if it is signed or not a draft
    (the caller holds the row, so this only guards against a bug)."""
    deleted = await conn.fetchval(
        "WITH gone AS (DELETE FROM agreements a WHERE a.id = $1 AND a.status = 'draft'"
        " AND NOT EXISTS (SELECT 1 FROM agreement_signatures s WHERE s.agreement_id = a.id)"
        " RETURNING 1) SELECT count(*) FROM gone",
        agreement_id,
    )
    return bool(deleted)


async def get_agreement(
    conn: asyncpg.Connection, agreement_id: UUID, *, for_update: bool = False
) -> AgreementRow | None:
    lock = " FOR UPDATE" if for_update else ""
    return _row(
        await conn.fetchrow(f"SELECT {_COLUMNS} FROM agreements WHERE id = $1{lock}", agreement_id)
    )


async def targets_of(conn: asyncpg.Connection, ids: list[UUID]) -> dict[UUID, list[TargetRow]]:
    rows = await conn.fetch(
        "SELECT agreement_id, indicator_code, annual, q1, q2, q3, q4, weight "
        "FROM agreement_targets WHERE agreement_id = ANY($1::uuid[]) "
        "ORDER BY agreement_id, indicator_code",
        ids,
    )
    out: dict[UUID, list[TargetRow]] = {i: [] for i in ids}
    for r in rows:
        record = dict(r)
        out[record.pop("agreement_id")].append(msgspec.convert(record, TargetRow))
    return out


async def signatures_of(conn: asyncpg.Connection, agreement_id: UUID) -> list[SignatureRow]:
    rows = await conn.fetch(
        "SELECT party, signer_id, kid, jws, document_sha256, signed_at "
        "FROM agreement_signatures WHERE agreement_id = $1 ORDER BY signed_at",
        agreement_id,
    )
    return [msgspec.convert(dict(r), SignatureRow) for r in rows]


async def insert_signature(
    conn: asyncpg.Connection,
    agreement_id: UUID,
    party: str,
    signer_id: UUID,
    kid: str,
    jws: str,
    document_sha256: str,
) -> bool:
    """False when that party has already signed (nothing is stored then)."""
    done = await conn.fetchval(
        "INSERT INTO agreement_signatures (agreement_id, party, signer_id, kid, jws, "
        "document_sha256) VALUES ($1, $2, $3, $4, $5, $6) "
        "ON CONFLICT (agreement_id, party) DO NOTHING RETURNING 1",
        agreement_id,
        party,
        signer_id,
        kid,
        jws,
        document_sha256,
    )
    return done is not None


async def versions(conn: asyncpg.Connection, lineage_id: UUID) -> list[AgreementRow]:
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM agreements WHERE lineage_id = $1 ORDER BY version", lineage_id
    )
    return [msgspec.convert(dict(r), AgreementRow) for r in rows]


async def versions_page(
    conn: asyncpg.Connection, lineage_id: UUID, *, limit: int, offset: int
) -> tuple[list[AgreementRow], int]:
    """A page of a lineage's versions, oldest first, and how many there are."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS}, count(*) OVER () AS total FROM agreements WHERE lineage_id = $1 "
        "ORDER BY version LIMIT $2 OFFSET $3",
        lineage_id,
        limit,
        offset,
    )
    if not rows and offset:  # past the end: still say how many there are
        total = await conn.fetchval(
            "SELECT count(*) FROM agreements WHERE lineage_id = $1", lineage_id
        )
    else:
        total = rows[0]["total"] if rows else 0
    found = [
        msgspec.convert({k: v for k, v in r.items() if k != "total"}, AgreementRow) for r in rows
    ]
    return found, int(total)


async def open_or_active_for_office(
    conn: asyncpg.Connection, year: int, second_area: str, division_id: UUID | None
) -> AgreementRow | None:
    """An agreement that is active or being signed for this office and year.

    Takes a transaction-scoped lock on the office-year first, so two drafts racing for
    the same office cannot both pass this check (no unique index can say "one open
    lineage per office-year" while an amendment and its active version coexist).
    """
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
        f"agreement-office:{year}:{second_area}:{division_id or ''}",
    )
    return _row(
        await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM agreements WHERE year = $1 AND second_area = $2 "
            "AND second_division_id IS NOT DISTINCT FROM $3 "
            "AND status IN ('draft', 'signed_by_second', 'active') ORDER BY created_at LIMIT 1",
            year,
            second_area,
            division_id,
        )
    )


async def open_version(conn: asyncpg.Connection, lineage_id: UUID) -> AgreementRow | None:
    return _row(
        await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM agreements WHERE lineage_id = $1 "
            "AND status IN ('draft', 'signed_by_second')",
            lineage_id,
        )
    )


# Scope filter: $1 scope kind, $2 area, $3 user id, $4 division id. A region coordinator's
# agreements: those whose district's region for the agreement's year they coordinate in
# their province (as api.authz.area_in_scope, migration 0018).
_SCOPE = """
    (
      $1 = 'national'
      OR ($1 = 'province' AND (a.second_area = $2 OR a.first_area = $2 OR EXISTS (
            SELECT 1 FROM areas s WHERE s.code = a.second_area AND s.parent_code = $2)))
      OR ($1 = 'region' AND district_coordinated(a.second_area, $3, $2, a.year))
      OR ($1 = 'district' AND a.second_area = $2)
      OR ($1 = 'division' AND a.second_division_id = $4)
    )
"""


async def list_agreements(
    conn: asyncpg.Connection,
    *,
    scope: tuple[str, str, UUID, UUID | None],
    year: int | None,
    level: str | None,
    status: str | None,
    area: str | None,
    party: str | None,
    limit: int,
    offset: int,
) -> tuple[list[AgreementRow], int]:
    """Agreements visible in ``scope``, filtered; ``party`` matches either party's area."""
    where = f"""
        FROM agreements a
        WHERE {_SCOPE}
          AND ($5::int IS NULL OR a.year = $5)
          AND ($6::text IS NULL OR a.level = $6)
          AND ($7::text IS NULL OR a.status = $7)
          AND ($8::text IS NULL OR a.second_area = $8)
          AND ($9::text IS NULL OR a.first_area = $9 OR a.second_area = $9)
    """
    args = (*scope, year, level, status, area, party)
    total = await conn.fetchval("SELECT count(*) " + where, *args)
    rows = await conn.fetch(
        # An office's closed agreement and its redraft are both version 1 of one year:
        # the id makes the order total, so paging shows each agreement once.
        f"SELECT {_A_COLUMNS} {where} ORDER BY a.year DESC, a.level, a.second_area, "
        "a.second_division_id NULLS FIRST, a.version, a.created_at, a.id LIMIT $10 OFFSET $11",
        *args,
        limit,
        offset,
    )
    return [msgspec.convert(dict(r), AgreementRow) for r in rows], int(total)


async def active_in_province(
    conn: asyncpg.Connection, year: int, province_code: str
) -> list[AgreementRow]:
    """Active agreements of a province-year at every level (for the cascade)."""
    rows = await conn.fetch(
        f"""
        SELECT {_A_COLUMNS} FROM agreements a JOIN areas s ON s.code = a.second_area
        WHERE a.year = $1 AND a.status = 'active'
          AND (a.second_area = $2 OR s.parent_code = $2)
        ORDER BY a.second_area, a.second_division_id NULLS FIRST
        """,
        year,
        province_code,
    )
    return [msgspec.convert(dict(r), AgreementRow) for r in rows]
