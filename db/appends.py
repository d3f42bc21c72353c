"""Many submissions appended in one transaction: the SQL of the ingest batch.

A batch takes, in this order, the locks a single append takes (``db.submissions``):
Idempotency-Key locks, then ledger heads, then each district's latest-values lock,
then the signing keys (shared), then (in the write) each data version; every set in
sorted order, so two batches, or a batch and a single append or a review, always take
shared locks in the same order and cannot deadlock. What an append is checked against
is read only after the locks, in a statement of its own, so its snapshot already sees
everything committed before. Round trips are what a batch spends most on, so there
are two: the locks with the reads (one function call), and the write.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from db import ledger as ledger_db
from db.idempotency import IdempotencyRecord
from db.submissions import IdempotentAnswer, NewSubmission


class KeyState(msgspec.Struct, frozen=True, kw_only=True):
    """What a batch re-checks of a signing key, once it holds it."""

    kid: str
    owner_id: UUID
    revoked_at: datetime | None


class Submitter(msgspec.Struct, frozen=True, kw_only=True):
    """A submitter's account as a batch finds it, once it holds its locks."""

    active: bool
    token_generation: int
    role: str
    area_code: str
    division_id: UUID | None


class PriorValue(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """The latest counting value for probe ``index``, with its place in time."""

    index: int
    numerator: int
    denominator: int
    as_of: date
    seq: int


class Probe(msgspec.Struct, frozen=True):
    """Which counting value a new report is compared with."""

    district_code: str
    division_id: UUID | None
    indicator_code: str
    as_of: date


def idempotency_lock_name(user_id: UUID, key: str) -> str:
    """The advisory lock name ``db.idempotency.lock`` takes for (user, key)."""
    return f"idempotency:{user_id}:{key}"


class HeadsMissing(Exception):
    """Some districts have no ledger head yet: roll back and settle again with
    ``make_missing``, which makes them before taking any lock on a head."""


class AfterLocks(msgspec.Struct, frozen=True, kw_only=True):
    """What a batch holds and is checked against, read once every lock is held."""

    heads: dict[str, ledger_db.Head]
    #: Districts whose genesis head this transaction made (``make_missing``).
    created: list[str]
    now: datetime
    seen: set[UUID]
    prior: list[PriorValue]
    keys: dict[str, KeyState]
    records: dict[tuple[UUID, str], IdempotencyRecord]
    #: The accounts of ``submitters`` (one missing: removed).
    submitters: dict[UUID, Submitter]


async def begin_batch(
    conn: asyncpg.Connection,
    *,
    lock_names: list[str],
    districts: list[str],
    kids: list[str],
    jtis: list[UUID],
    probes: list[Probe],
    pairs: list[tuple[UUID, str]],
    ttl_s: int,
    make_missing: bool,
    submitters: list[UUID],
) -> AfterLocks:
    """Take every lock of the batch and read, once they are held, what it is checked
    against, in one call (``begin_ingest_batch``, migration 0013): the Idempotency-Key
    locks named, the districts' ledger heads and latest-values locks, and the keys
    (shared, so none is revoked under the batch); then the database clock, which of
    ``jtis`` are stored already, the latest counting value for each probe that has
    one, the keys ``kids``, the live records of (user, key) ``pairs`` and the accounts
    of ``submitters`` (migration 0025).

    Heads are made (at genesis, in district order) only with ``make_missing``, after
    the Idempotency-Key locks and before any head is locked: every writer takes those
    locks before it may make a head (the single path too), and making one after locking
    others could wait for another batch that is itself waiting for a head this one holds.
    """
    created: list[str] = []
    if make_missing:
        # Taken again by begin_ingest_batch below: advisory locks nest within a transaction.
        await conn.execute(
            "SELECT count(pg_advisory_xact_lock(hashtextextended(n, 0))) "
            "FROM (SELECT DISTINCT n FROM unnest($1::text[]) AS n ORDER BY n) s",
            lock_names,
        )
        created = await conn.fetchval(
            "WITH made AS (INSERT INTO ledger_heads (district_code, seq, hash) "
            "SELECT d, 0, $2 FROM unnest($1::text[]) AS d ORDER BY d "
            "ON CONFLICT (district_code) DO NOTHING RETURNING district_code) "
            "SELECT coalesce(array_agg(district_code), '{}') FROM made",
            districts,
            ledger_db.GENESIS_HASH,
        )
    row = await conn.fetchrow(
        "SELECT * FROM begin_ingest_batch($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        lock_names,
        districts,
        kids,
        jtis,
        probes,  # as JSON, like the write's values (see ``write``)
        [u for u, _ in pairs],
        [k for _, k in pairs],
        float(ttl_s),
        submitters,
    )
    assert row is not None
    heads = {
        district: ledger_db.Head(district_code=district, seq=seq, hash=hash_)
        for district, seq, hash_ in zip(
            row["head_districts"] or (),
            row["head_seqs"] or (),
            row["head_hashes"] or (),
            strict=True,
        )
    }
    if len(heads) < len(set(districts)):
        raise HeadsMissing(sorted(set(districts) - heads.keys()))
    keys = {
        kid: KeyState(kid=kid, owner_id=owner, revoked_at=revoked)
        for kid, owner, revoked in zip(
            row["kids"] or (), row["owners"] or (), row["revoked"] or (), strict=True
        )
    }
    records = {
        (user, key): IdempotencyRecord(
            request_sha256=sha, status_code=status, response=response, created_at=created_at
        )
        for user, key, sha, status, response, created_at in zip(
            row["users"] or (),
            row["keys"] or (),
            row["shas"] or (),
            row["statuses"] or (),
            row["responses"] or (),
            row["created"] or (),
            strict=True,
        )
    }
    accounts = {
        user: Submitter(
            active=active, token_generation=gen, role=role, area_code=area, division_id=division
        )
        for user, active, gen, role, area, division in zip(
            row["submitter_ids"] or (),
            row["submitter_active"] or (),
            row["submitter_generations"] or (),
            row["submitter_roles"] or (),
            row["submitter_areas"] or (),
            row["submitter_divisions"] or (),
            strict=True,
        )
    }
    return AfterLocks(
        heads=heads,
        created=list(created),
        now=row["now"],
        seen=set(row["seen"]),
        prior=msgspec.convert(row["previous"], list[PriorValue]),
        keys=keys,
        records=records,
        submitters=accounts,
    )


async def forget_heads(conn: asyncpg.Connection, districts: list[str]) -> None:
    """Remove genesis heads this transaction made for districts it then wrote nothing to,
    so a batch whose submissions were all refused leaves nothing behind."""
    await conn.execute(
        "DELETE FROM ledger_heads WHERE district_code = ANY($1::text[]) AND seq = 0", districts
    )


# Everything the batch's accepted submissions write, in one statement: the entries, their
# values (the latest-values trigger runs once for all of them), each district's ledger
# head, the Idempotency-Key answers, and each district's data version (in district
# order, after the heads and latest-values locks the batch already holds). The heads are
# moved by an upsert on their key, which always probes the primary key once per head:
# written as an UPDATE joined with the new heads, the statement's generic plan (ten rows
# assumed) read all 514 heads into a hash join, 12% of the backend's CPU for a batch of
# one report and 3% for 24 (auto_explain, then the same batches on one connection in
# alternating rounds). Every head is there, locked by this transaction (``begin_batch``
# raised ``HeadsMissing`` otherwise), so the insert arm never runs.
_WRITE = """
WITH entry AS (
    INSERT INTO submissions (id, district_code, division_id, seq, prev_hash, hash, jws,
        payload, jti, iat, as_of, submitter_id, kid, received_at, flags, note,
        supersedes_id, supersede_reason)
    SELECT e.id, e.district_code, e.division_id, e.seq, e.prev_hash, e.hash, e.jws,
           e.payload, e.jti, e.iat, e.as_of, e.submitter_id, e.kid, e.received_at,
           string_to_array(e.flags, ','), e.note, NULL, NULL
    FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::bigint[], $5::text[], $6::text[],
                $7::text[], $8::jsonb[], $9::uuid[], $10::timestamptz[], $11::date[],
                $12::uuid[], $13::text[], $14::timestamptz[], $15::text[], $16::text[])
         AS e(id, district_code, division_id, seq, prev_hash, hash, jws, payload, jti, iat,
              as_of, submitter_id, kid, received_at, flags, note)
), vals AS (
    INSERT INTO submission_values (submission_id, indicator_code, district_code, division_id,
        as_of, seq, numerator, denominator, stated_pct, channels, flags)
    SELECT v.submission_id, v.indicator_code, v.district_code, v.division_id, v.as_of, v.seq,
           v.numerator, v.denominator, v.stated_pct, v.channels, v.flags
    FROM json_to_recordset($17::json) AS v(submission_id uuid, indicator_code text,
        district_code text, division_id uuid, as_of date, seq bigint, numerator bigint,
        denominator bigint, stated_pct numeric, channels jsonb, flags text[])
), head AS (
    INSERT INTO ledger_heads (district_code, seq, hash)
    SELECT * FROM unnest($18::text[], $19::bigint[], $20::text[])
    ON CONFLICT (district_code) DO UPDATE SET seq = EXCLUDED.seq, hash = EXCLUDED.hash,
        updated_at = now()
), answer AS (
    INSERT INTO idempotency_keys (user_id, key, request_sha256, status_code, response)
    SELECT * FROM unnest($21::uuid[], $22::text[], $23::text[], $24::int[], $25::bytea[])
    ON CONFLICT (user_id, key) DO UPDATE SET
        request_sha256 = EXCLUDED.request_sha256, status_code = EXCLUDED.status_code,
        response = EXCLUDED.response, created_at = now()
)
INSERT INTO data_versions AS dv (area_code, version, changed_at)
SELECT d, 1, now() FROM unnest($18::text[]) AS d ORDER BY d
ON CONFLICT (area_code) DO UPDATE SET version = dv.version + 1, changed_at = now()
RETURNING area_code, version
"""


class _ValueRow(msgspec.Struct, frozen=True, kw_only=True):
    """One value of the batch, as the write reads it from JSON."""

    submission_id: UUID
    indicator_code: str
    district_code: str
    division_id: UUID | None
    as_of: date
    seq: int
    numerator: int
    denominator: int
    stated_pct: float | None
    channels: dict[str, int] | None
    flags: list[str]


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [list(c) for c in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


async def write(
    conn: asyncpg.Connection,
    entries: list[NewSubmission],
    heads: list[ledger_db.Head],
    answers: list[tuple[UUID, IdempotentAnswer]],
) -> dict[str, int]:
    """Write the entries (none superseding another), move ``heads`` (one per district,
    sorted) and store ``answers`` (one per user and key); the new data versions."""
    entry_rows = [
        (
            e.id,
            e.district_code,
            e.division_id,
            e.seq,
            e.prev_hash,
            e.hash,
            e.jws,
            e.payload,
            e.jti,
            e.iat,
            e.as_of,
            e.submitter_id,
            e.kid,
            e.received_at,
            ",".join(e.flags),
            e.note,
        )
        for e in entries
    ]
    # The values as one JSON document rather than eleven arrays: asyncpg checks each
    # element of an array parameter against three abstract base classes in Python, which
    # for three values a report cost more worker CPU than PostgreSQL spends reading these
    # small rows from JSON (the entries' long texts stay arrays: PostgreSQL 15 reads long
    # JSON strings slowly). A stated percentage is read from its shortest decimal, as in
    # the single path.
    value_rows = [
        _ValueRow(
            submission_id=e.id,
            indicator_code=v.indicator_code,
            district_code=e.district_code,
            division_id=e.division_id,
            as_of=e.as_of,
            seq=e.seq,
            numerator=v.numerator,
            denominator=v.denominator,
            stated_pct=v.stated_pct,
            channels=v.channels,
            flags=v.flags,
        )
        for e in entries
        for v in e.values
    ]
    head_rows = [(h.district_code, h.seq, h.hash) for h in heads]
    answer_rows = [
        (user_id, a.key, a.request_sha256, a.status_code, a.response) for user_id, a in answers
    ]
    rows = await conn.fetch(
        _WRITE,
        *_columns(entry_rows, 16),
        value_rows,
        *_columns(head_rows, 3),
        *_columns(answer_rows, 5),
    )
    return {r["area_code"]: int(r["version"]) for r in rows}
