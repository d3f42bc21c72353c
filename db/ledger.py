"""Per-district ledger heads and the chain of entries, read back for verification.

Appends for one district are serialised by locking that district's head row
(``SELECT ... FOR UPDATE``); other districts' heads are other rows, so their
appends never wait on each other. The hashing rule itself lives in ``api.ledger``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime
from uuid import UUID

import asyncpg
import msgspec

GENESIS_HASH = "0" * 64
"""``prev_hash`` of a district's first entry."""


class Head(msgspec.Struct, frozen=True, kw_only=True):
    district_code: str
    seq: int
    hash: str


class ChainEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One stored entry with everything verification compares against its JWS."""

    id: UUID
    seq: int
    prev_hash: str
    hash: str
    jws: str
    #: The stored payload as JSON text, read by the verifier itself: a stored document
    #: nested too deeply to decode is then one entry's fault, not the walk's end.
    payload: str
    jti: UUID
    iat: datetime
    district_code: str
    division_id: UUID | None
    as_of: date
    kid: str
    submitter_id: UUID
    received_at: datetime
    note: str | None
    supersedes_id: UUID | None
    supersede_reason: str | None
    #: The stored values by indicator, as JSON text (as ``payload``).
    stored_values: str
    #: received, accepted or returned (the reviews' record), which its values copy.
    status: str
    #: The correction recorded as superseding this entry, if any.
    superseded_by: UUID | None = None
    #: Whether the entry's flags say superseded (listings filter on it).
    flagged_superseded: bool = False
    #: The last review's decision (accept or return), None if never reviewed.
    decided: str | None = None


async def share_head(conn: asyncpg.Connection, district_code: str) -> Head | None:
    """Read the head and hold appends off until the transaction ends, for a stable chain."""
    row = await conn.fetchrow(
        "SELECT district_code, seq, hash FROM ledger_heads WHERE district_code = $1 FOR SHARE",
        district_code,
    )
    return msgspec.convert(dict(row), Head) if row else None


_CHAIN = """
SELECT s.id, s.seq, s.prev_hash, s.hash, s.jws, s.payload::text AS payload, s.jti, s.iat,
       s.district_code, s.division_id, s.as_of, s.kid, s.submitter_id, s.received_at, s.note,
       s.supersedes_id, s.supersede_reason, s.superseded_by, s.status,
       'superseded' = ANY(s.flags) AS flagged_superseded,
       coalesce((
           SELECT jsonb_object_agg(v.indicator_code, jsonb_build_object(
               'numerator', v.numerator, 'denominator', v.denominator,
               'stated_pct', v.stated_pct, 'channels', v.channels,
               'district_code', v.district_code, 'division_id', v.division_id,
               'as_of', v.as_of, 'seq', v.seq, 'superseded', v.superseded,
               'status', v.status))
           FROM submission_values v WHERE v.submission_id = s.id
       ), '{}'::jsonb)::text AS stored_values,
       (SELECT r.decision FROM submission_reviews r WHERE r.submission_id = s.id
         ORDER BY r.created_at DESC, r.id DESC LIMIT 1) AS decided
FROM submissions s
WHERE s.district_code = $1
ORDER BY s.seq
"""


async def chain(
    conn: asyncpg.Connection, district_code: str, *, batch: int = 200
) -> AsyncIterator[ChainEntry]:
    """The district's entries in ``seq`` order, fetched in batches (call inside a transaction)."""
    async for row in conn.cursor(_CHAIN, district_code, prefetch=batch):
        yield msgspec.convert(dict(row), ChainEntry)


async def districts_with_ledgers(conn: asyncpg.Connection) -> list[str]:
    """Every district with a head, an entry (an entry without a head is itself suspect)
    or a kept latest value (one without any entry is itself suspect: scorecards read it)."""
    rows = await conn.fetch(
        "SELECT district_code FROM ledger_heads UNION SELECT district_code FROM submissions "
        "UNION SELECT district_code FROM latest_values ORDER BY 1"
    )
    return [row["district_code"] for row in rows]


class KeptMismatch(msgspec.Struct, frozen=True, kw_only=True):
    """A kept latest value (``latest_values``) that is not the one the stored values give."""

    basis: str
    indicator_code: str
    #: The entry the stored values name (None: they name none, yet a row is kept).
    want_seq: int | None
    want_id: UUID | None
    #: The entry the kept row names (None: no row is kept, yet the values name one).
    kept_seq: int | None
    kept_id: UUID | None


# The rule of migrations 0007 and 0010 (the latest counting value per division and
# indicator, and the latest accepted one), recomputed from submission_values, against
# the rows scorecards and rankings read. One statement: one snapshot of both tables.
# Each basis and level is a branch of its own, written as the partial index that
# holds it (migration 0010): a district's rows are found through that index, where one
# condition for all of them read every district's history.
_KEPT_MISMATCH = """
WITH candidates AS (
    SELECT 'latest' AS basis, '00000000-0000-0000-0000-000000000000'::uuid AS division_key,
           v.indicator_code, v.submission_id, v.as_of, v.seq, v.numerator, v.denominator,
           v.flags, v.status
      FROM submission_values v
     WHERE v.district_code = $1 AND v.counting AND v.division_id IS NULL
    UNION ALL
    SELECT 'latest', v.division_id, v.indicator_code, v.submission_id, v.as_of, v.seq,
           v.numerator, v.denominator, v.flags, v.status
      FROM submission_values v
     WHERE v.district_code = $1 AND v.counting AND v.division_id IS NOT NULL
    UNION ALL
    SELECT 'accepted', '00000000-0000-0000-0000-000000000000'::uuid, v.indicator_code,
           v.submission_id, v.as_of, v.seq, v.numerator, v.denominator, v.flags, v.status
      FROM submission_values v
     WHERE v.district_code = $1 AND v.status = 'accepted' AND NOT v.superseded
       AND v.division_id IS NULL
    UNION ALL
    SELECT 'accepted', v.division_id, v.indicator_code, v.submission_id, v.as_of, v.seq,
           v.numerator, v.denominator, v.flags, v.status
      FROM submission_values v
     WHERE v.district_code = $1 AND v.status = 'accepted' AND NOT v.superseded
       AND v.division_id IS NOT NULL
), want AS (
    SELECT DISTINCT ON (basis, division_key, indicator_code) *
      FROM candidates
     ORDER BY basis, division_key, indicator_code, as_of DESC, seq DESC
), kept AS (
    SELECT basis, division_key, indicator_code, submission_id, as_of, seq, numerator,
           denominator, flags, status
      FROM latest_values WHERE district_code = $1
)
SELECT basis, indicator_code, w.seq AS want_seq, w.submission_id AS want_id,
       k.seq AS kept_seq, k.submission_id AS kept_id
  FROM want w FULL JOIN kept k USING (basis, division_key, indicator_code)
 WHERE (w.submission_id, w.as_of, w.seq, w.numerator, w.denominator, w.flags, w.status)
       IS DISTINCT FROM
       (k.submission_id, k.as_of, k.seq, k.numerator, k.denominator, k.flags, k.status)
 ORDER BY coalesce(w.seq, k.seq), basis, indicator_code
 LIMIT 1
"""


async def kept_mismatch(conn: asyncpg.Connection, district_code: str) -> KeptMismatch | None:
    """The first kept latest value of the district that the stored values do not give."""
    row = await conn.fetchrow(_KEPT_MISMATCH, district_code)
    return msgspec.convert(dict(row), KeptMismatch) if row else None


async def note_iat_skew(conn: asyncpg.Connection, skew_s: int) -> None:
    """Record that reports are taken with ``skew_s`` of iat skew (the loosest one kept)."""
    await conn.execute(
        "INSERT INTO ledger_bounds (iat_skew_s) VALUES ($1) ON CONFLICT (only_row) DO UPDATE "
        "SET iat_skew_s = greatest(ledger_bounds.iat_skew_s, EXCLUDED.iat_skew_s)",
        skew_s,
    )


async def loosest_iat_skew(conn: asyncpg.Connection) -> int | None:
    """The loosest iat skew reports were taken under; None if no server has said."""
    value = await conn.fetchval("SELECT iat_skew_s FROM ledger_bounds")
    return None if value is None else int(value)
