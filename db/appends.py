"""Many submissions appended in one transaction: the SQL of the ingest batch.

A batch takes, in this order, the locks a single append takes (``db.submissions``):
Idempotency-Key locks, then ledger heads, then each district's latest-values lock,
then the signing keys (shared), then (in the write) each data version; every set in
sorted order, so two batches, or a batch and a single append or a review, always take
shared locks in the same order and cannot deadlock. What an append is checked against
is read only after the locks, in a statement of its own, so its snapshot already sees
everything committed before. Round trips are what a batch spends most on, so there
are three: the locks, the reads, the write.
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


async def lock_batch(
    conn: asyncpg.Connection,
    lock_names: list[str],
    districts: list[str],
    kids: list[str],
    *,
    make_missing: bool,
) -> tuple[dict[str, ledger_db.Head], list[str]]:
    """Take every lock of the batch (migration 0008): the Idempotency-Key locks named,
    the districts' ledger heads and latest-values locks, and the keys (shared, so none
    is revoked under the batch); the heads, and those this transaction made.

    Heads are made (at genesis, in district order) only with ``make_missing``, after
    the Idempotency-Key locks and before any head is locked: every writer takes those
    locks before it may make a head (the single path too), and making one after locking
    others could wait for another batch that is itself waiting for a head this one holds.
    """
    created: list[str] = []
    if make_missing:
        # Taken again by lock_ingest_batch below: advisory locks nest within a transaction.
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
    rows = await conn.fetch(
        "SELECT district_code, seq, hash FROM lock_ingest_batch($1, $2, $3)",
        lock_names,
        districts,
        kids,
    )
    if len(rows) < len(districts):
        raise HeadsMissing(sorted(set(districts) - {r["district_code"] for r in rows}))
    heads = {
        r["district_code"]: ledger_db.Head(
            district_code=r["district_code"], seq=r["seq"], hash=r["hash"]
        )
        for r in rows
    }
    return heads, list(created)


async def forget_heads(conn: asyncpg.Connection, districts: list[str]) -> None:
    """Remove genesis heads this transaction made for districts it then wrote nothing to,
    so a batch whose submissions were all refused leaves nothing behind."""
    await conn.execute(
        "DELETE FROM ledger_heads WHERE district_code = ANY($1::text[]) AND seq = 0", districts
    )


# Everything a batch checks against, read in one statement once every lock is held (so
# its snapshot sees all that was committed before): the clock; which jtis are stored;
# per probe, the latest counting value (one index probe: district-level and division
# reports are separate branches, so each uses the partial index on equality); the keys
# as they stand (one index probe each: as "kid = ANY" the planner scanned the table);
# and the live Idempotency-Key records (see ``db.idempotency.find``).
_READ = """
SELECT clock_timestamp() AS now,
       (SELECT coalesce(array_agg(jti), '{}') FROM submissions WHERE jti = ANY($1::uuid[]))
           AS seen,
       (SELECT coalesce(jsonb_agg(jsonb_build_array(q.i - 1, p.numerator, p.denominator,
                                                    p.as_of, p.seq)), '[]')
        FROM ROWS FROM (json_to_recordset($2::json) AS (district_code text,
             division_id uuid, indicator_code text, as_of date)) WITH ORDINALITY
             AS q(district_code, division_id, indicator_code, as_of, i)
        CROSS JOIN LATERAL (
            (SELECT v.numerator, v.denominator, v.as_of, v.seq FROM submission_values v
             WHERE q.division_id IS NULL AND v.district_code = q.district_code
               AND v.indicator_code = q.indicator_code AND v.division_id IS NULL
               AND v.as_of <= q.as_of AND v.counting
             ORDER BY v.as_of DESC, v.seq DESC LIMIT 1)
            UNION ALL
            (SELECT v.numerator, v.denominator, v.as_of, v.seq FROM submission_values v
             WHERE q.division_id IS NOT NULL AND v.district_code = q.district_code
               AND v.indicator_code = q.indicator_code AND v.division_id = q.division_id
               AND v.as_of <= q.as_of AND v.counting
             ORDER BY v.as_of DESC, v.seq DESC LIMIT 1)
        ) p) AS previous,
       k.kids, k.owners, k.revoked,
       r.users, r.keys, r.shas, r.statuses, r.responses, r.created
FROM (SELECT array_agg(s.kid) AS kids, array_agg(s.owner_id) AS owners,
             array_agg(s.revoked_at) AS revoked
      FROM unnest($3::text[]) AS u(kid)
      CROSS JOIN LATERAL (SELECT kid, owner_id, revoked_at FROM signing_keys
                          WHERE kid = u.kid LIMIT 1) s) k,
     (SELECT array_agg(i.user_id) AS users, array_agg(i.key) AS keys,
             array_agg(i.request_sha256) AS shas, array_agg(i.status_code) AS statuses,
             array_agg(i.response) AS responses, array_agg(i.created_at) AS created
      FROM idempotency_keys i JOIN unnest($4::uuid[], $5::text[]) AS p(user_id, key)
        ON i.user_id = p.user_id AND i.key = p.key
      WHERE i.created_at > now() - make_interval(secs => $6)) r
"""


class AfterLocks(msgspec.Struct, frozen=True, kw_only=True):
    """What ``read_after_locks`` found."""

    now: datetime
    seen: set[UUID]
    prior: list[PriorValue]
    keys: dict[str, KeyState]
    records: dict[tuple[UUID, str], IdempotencyRecord]


async def read_after_locks(
    conn: asyncpg.Connection,
    *,
    jtis: list[UUID],
    probes: list[Probe],
    kids: list[str],
    pairs: list[tuple[UUID, str]],
    ttl_s: int,
) -> AfterLocks:
    """Read, once the batch holds its locks, everything it checks against: the database
    clock, which of ``jtis`` are stored already, the latest counting value for each
    probe that has one, the keys ``kids`` and the live records of (user, key) ``pairs``."""
    row = await conn.fetchrow(
        _READ,
        jtis,
        probes,  # as JSON, like the write's values (see ``write``)
        kids,
        [u for u, _ in pairs],
        [k for _, k in pairs],
        float(ttl_s),
    )
    assert row is not None
    keys = {
        kid: KeyState(kid=kid, owner_id=owner, revoked_at=revoked)
        for kid, owner, revoked in zip(
            row["kids"] or (), row["owners"] or (), row["revoked"] or (), strict=True
        )
    }
    records = {
        (user, key): IdempotencyRecord(
            request_sha256=sha, status_code=status, response=response, created_at=created
        )
        for user, key, sha, status, response, created in zip(
            row["users"] or (),
            row["keys"] or (),
            row["shas"] or (),
            row["statuses"] or (),
            row["responses"] or (),
            row["created"] or (),
            strict=True,
        )
    }
    return AfterLocks(
        now=row["now"],
        seen=set(row["seen"]),
        prior=msgspec.convert(row["previous"], list[PriorValue]),
        keys=keys,
        records=records,
    )


# Everything the batch's accepted submissions write, in one statement: the entries, their
# values (the latest-values trigger runs once for all of them), each district's ledger
# head, the Idempotency-Key answers, and each district's data version (in district
# order, after the heads and latest-values locks the batch already holds). The heads are
# found by joining on the key alone: an extra "district_code = ANY(...)" made the planner
# scan every head and compare each with every element (0.5 ms for 30 districts against
# 0.35 ms, of backend CPU with the commit).
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
    UPDATE ledger_heads h SET seq = n.seq, hash = n.hash, updated_at = now()
    FROM unnest($18::text[], $19::bigint[], $20::text[]) AS n(district_code, seq, hash)
    WHERE h.district_code = n.district_code
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
