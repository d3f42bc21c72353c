"""Submissions, their per-indicator values and their reviews.

``submissions.status`` and the ``status``/``superseded`` copies on
``submission_values`` always change together, here, in the caller's transaction:
scorecards read only ``submission_values`` and must never see them disagree.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg
import msgspec

from db import changes
from db import ledger as ledger_db

Status = Literal["received", "accepted", "returned"]


class SubmissionHead(msgspec.Struct, frozen=True, kw_only=True):
    """A submission without its (possibly large) JWS and payload, for lists."""

    id: UUID
    district_code: str
    division_id: UUID | None
    seq: int
    prev_hash: str
    hash: str
    jti: UUID
    iat: datetime
    as_of: date
    submitter_id: UUID
    kid: str
    received_at: datetime
    status: Status
    flags: list[str]
    note: str | None
    supersedes_id: UUID | None
    supersede_reason: str | None
    superseded_by: UUID | None


class SubmissionRow(SubmissionHead, frozen=True, kw_only=True):
    jws: str
    payload: dict[str, Any]


class ValueRow(msgspec.Struct, frozen=True, kw_only=True):
    submission_id: UUID
    indicator_code: str
    numerator: int
    denominator: int
    stated_pct: float | None
    channels: dict[str, int] | None
    flags: list[str]
    counting: bool
    #: The indicator's unit: ``percent``, or another (a daily rate) its counts are read in.
    unit: str = "percent"


class ReviewRow(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    submission_id: UUID
    reviewer_id: UUID
    #: The reviewer's full name as it now stands (the id is the record; the name is
    #: for the district reading it, who may not look users up).
    reviewer_name: str
    reviewer_role: str
    decision: Literal["accept", "return"]
    reason: str | None
    created_at: datetime


class Previous(msgspec.Struct, frozen=True, kw_only=True):
    """The latest counting value a new report is compared with."""

    indicator_code: str
    numerator: int
    denominator: int


class NewValue(msgspec.Struct, frozen=True, kw_only=True):
    indicator_code: str
    numerator: int
    denominator: int
    stated_pct: float | None
    channels: dict[str, int] | None
    flags: list[str]
    #: The indicator's unit (not stored here: the catalogue holds it).
    unit: str = "percent"


class NewSubmission(msgspec.Struct, frozen=True, kw_only=True):
    id: UUID
    district_code: str
    division_id: UUID | None
    seq: int
    prev_hash: str
    hash: str
    jws: str
    payload: dict[str, Any]
    jti: UUID
    iat: datetime
    as_of: date
    submitter_id: UUID
    kid: str
    received_at: datetime
    flags: list[str]
    note: str | None
    supersedes_id: UUID | None
    supersede_reason: str | None
    values: list[NewValue]


class ListScope(msgspec.Struct, frozen=True, kw_only=True):
    """Which submissions a caller may list; every field ``None`` means all of them.

    ``areas``: districts equal to or below any of these area codes. ``coordinator_id``:
    each report whose district's region for the year of its ``as_of`` this user
    coordinates in ``coordinator_province``. ``division_id``: that division only.
    """

    areas: tuple[str, ...] | None = None
    coordinator_id: UUID | None = None
    coordinator_province: str | None = None
    division_id: UUID | None = None


class ListFilters(msgspec.Struct, frozen=True, kw_only=True):
    district: str | None = None
    province: str | None = None
    status: Status | None = None
    flag: str | None = None
    as_of_from: date | None = None
    as_of_to: date | None = None


_HEAD_COLUMNS = (
    "s.id, s.district_code, s.division_id, s.seq, s.prev_hash, s.hash, s.jti, s.iat, s.as_of, "
    "s.submitter_id, s.kid, s.received_at, s.status, s.flags, s.note, s.supersedes_id, "
    "s.supersede_reason, s.superseded_by"
)


#: Code -> unit of the indicators seen in the catalogue.
_KNOWN_INDICATORS: dict[str, str] = {}
#: How many times ``forget_indicators`` ran: a read that overlapped one is not remembered.
_FORGOTTEN = [0]
#: The change feeds of this process that hear catalogue changes (``catalogue_heard``).
_LISTENING: set[int] = set()


async def known_indicators(
    conn: asyncpg.Connection | asyncpg.Pool, codes: list[str]
) -> dict[str, str]:
    """The codes that are in the catalogue, with their units. Codes seen before are
    answered from memory while a change feed hears catalogue changes (every report names
    the same few); an unseen code is looked up, so an indicator added a moment ago is
    accepted at once."""
    if _LISTENING and _KNOWN_INDICATORS.keys() >= set(codes):
        return {code: _KNOWN_INDICATORS[code] for code in codes}
    generation = _FORGOTTEN[0]
    rows = await conn.fetch("SELECT code, unit FROM indicators WHERE code = ANY($1::text[])", codes)
    found = {row["code"]: row["unit"] for row in rows}
    if _LISTENING and _FORGOTTEN[0] == generation:  # else it may have changed meanwhile
        _KNOWN_INDICATORS.update(found)
    return found


def catalogue_heard(listener: object, live: bool) -> None:
    """A change feed (``listener``) is now hearing catalogue changes, or no longer is.
    Units are remembered only while one is: without one, nothing would make this worker
    forget a unit changed by another, so each report reads the catalogue."""
    if live:
        _LISTENING.add(id(listener))
    else:
        _LISTENING.discard(id(listener))
    forget_indicators()  # nothing heard of before this moment is to be trusted


async def jti_seen(conn: asyncpg.Connection, jti: UUID) -> bool:
    """Whether a submission with this jti is stored (one probe of its unique index)."""
    query = "SELECT EXISTS (SELECT 1 FROM submissions WHERE jti = $1)"
    return bool(await conn.fetchval(query, jti))


def forget_indicators() -> None:
    """Drop the codes remembered by ``known_indicators``: one was removed from the
    catalogue since (an append then failed on its foreign key, or this worker removed
    it: added again, it may have another unit; or the change feed heard of a change)."""
    _KNOWN_INDICATORS.clear()
    _FORGOTTEN[0] += 1


def _previous_sql(division: bool, extra: str = "") -> str:
    """Per indicator ($2), the latest counting value of the district ($1, and division $4)
    as of a date ($3), one index probe each; ``extra`` narrows it further."""
    division_match = "v.division_id IS NULL" if not division else "v.division_id = $4"
    return f"""
        SELECT c.code AS indicator_code, p.numerator, p.denominator
        FROM unnest($2::text[]) AS c(code)
        CROSS JOIN LATERAL (
            SELECT v.numerator, v.denominator FROM submission_values v
            WHERE v.district_code = $1 AND v.indicator_code = c.code
              AND {division_match} AND v.as_of <= $3 AND v.counting {extra}
            ORDER BY v.as_of DESC, v.seq DESC LIMIT 1
        ) p
    """


async def previous_values(
    conn: asyncpg.Connection,
    *,
    district_code: str,
    division_id: UUID | None,
    codes: list[str],
    as_of: date,
    excluding: UUID | None,
) -> dict[str, Previous]:
    """Per indicator, the latest counting value as of ``as_of`` (one index probe each)."""
    args: list[Any] = [district_code, codes, as_of]
    if division_id is not None:
        args.append(division_id)
    args.append(excluding)
    n = len(args)
    extra = f"AND (${n}::uuid IS NULL OR v.submission_id <> ${n})"
    rows = await conn.fetch(_previous_sql(division_id is not None, extra), *args)
    return {row["indicator_code"]: msgspec.convert(dict(row), Previous) for row in rows}


# The lock ``submission_values`` triggers take to keep a district's latest values (see
# migration 0005); a transaction that will also bump the district's data version must
# take it first, as reviews do, or the two could deadlock.
_HOLD_LATEST = "pg_advisory_xact_lock(hashtext('kinerja.latest:' || $1::text))"


def _lock_head_sql(hold_latest: bool) -> str:
    # FOR UPDATE rather than a no-op upsert: the append's update is then the first new
    # version of the head row in the transaction (no dead tuple, no foreign-key recheck).
    # The latest-values lock is taken in the outer query, so only once the head is held.
    hold = f", {_HOLD_LATEST} AS held" if hold_latest else ""
    return f"""
    WITH head AS (
        SELECT seq, hash FROM ledger_heads WHERE district_code = $1 FOR UPDATE
    )
    SELECT head.seq, head.hash {hold} FROM head
    """


_LOCK_HEAD = {hold: _lock_head_sql(hold) for hold in (False, True)}


async def lock_head(
    conn: asyncpg.Connection, district_code: str, *, hold_latest: bool
) -> ledger_db.Head:
    """Lock the district's ledger head (made at genesis if there is none); with
    ``hold_latest``, also take the latest-values lock (``_HOLD_LATEST``) right after it.

    Nothing is read here that the append is checked against: this statement's snapshot
    predates any wait for the locks, and a review returning a report changes what counts
    without moving the head. The caller reads after it, in statements of their own.
    """
    query = _LOCK_HEAD[hold_latest]
    row = await conn.fetchrow(query, district_code)
    if row is None:  # the district's first entry: its genesis head, then lock it
        await conn.execute(
            "INSERT INTO ledger_heads (district_code, seq, hash) VALUES ($1, 0, $2) "
            "ON CONFLICT (district_code) DO NOTHING",
            district_code,
            ledger_db.GENESIS_HASH,
        )
        row = await conn.fetchrow(query, district_code)
        assert row is not None
    return ledger_db.Head(district_code=district_code, seq=row["seq"], hash=row["hash"])


async def hold_latest(conn: asyncpg.Connection, district_code: str) -> None:
    """Take the latest-values lock of a district until commit (see ``_HOLD_LATEST``).

    An append takes it after the rows it must lock first (a corrected submission, which a
    reviewer locks before this lock), and before the district's data version.
    """
    await conn.execute(f"SELECT {_HOLD_LATEST}", district_code)


class IdempotentAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """The response to remember for (submitter, Idempotency-Key)."""

    key: str
    request_sha256: str
    status_code: int
    response: bytes


# Everything an accepted submission writes, in one statement (one round trip): the entry,
# its values (the latest-values trigger runs once for the statement, migration 0007), the
# district's ledger head, the Idempotency-Key answer if any, and the district's data
# version, returned for the change feed. The caller holds the ledger head and the
# latest-values lock (``lock_head``, ``hold_latest``): the version row is locked here,
# before the triggers run at the end of the statement, so that lock must already be held.
_APPEND = """
WITH entry AS (
    INSERT INTO submissions (id, district_code, division_id, seq, prev_hash, hash, jws,
        payload, jti, iat, as_of, submitter_id, kid, received_at, flags, note,
        supersedes_id, supersede_reason)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
), vals AS (
    INSERT INTO submission_values (submission_id, indicator_code, district_code, division_id,
        as_of, seq, numerator, denominator, stated_pct, channels, flags)
    SELECT $1, v.indicator_code, $2, $3, $11, $4, v.numerator, v.denominator, v.stated_pct,
           v.channels, v.flags
    FROM jsonb_to_recordset($19::jsonb) AS v(indicator_code text, numerator bigint,
        denominator bigint, stated_pct numeric, channels jsonb, flags text[])
), head AS (
    UPDATE ledger_heads SET seq = $4, hash = $6, updated_at = now() WHERE district_code = $2
), answer AS (
    INSERT INTO idempotency_keys (user_id, key, request_sha256, status_code, response)
    SELECT $12, $20, $21, $22, $23 WHERE $20::text IS NOT NULL
    ON CONFLICT (user_id, key) DO UPDATE SET
        request_sha256 = EXCLUDED.request_sha256, status_code = EXCLUDED.status_code,
        response = EXCLUDED.response, created_at = now()
)
INSERT INTO data_versions AS dv (area_code, version, changed_at) VALUES ($2, 1, now())
ON CONFLICT (area_code) DO UPDATE SET version = dv.version + 1, changed_at = now()
RETURNING version
"""


async def append_submission(
    conn: asyncpg.Connection, new: NewSubmission, answer: IdempotentAnswer | None
) -> None:
    """Write an accepted submission and everything that goes with it (see ``_APPEND``)."""
    version = await conn.fetchval(
        _APPEND,
        new.id,
        new.district_code,
        new.division_id,
        new.seq,
        new.prev_hash,
        new.hash,
        new.jws,
        new.payload,
        new.jti,
        new.iat,
        new.as_of,
        new.submitter_id,
        new.kid,
        new.received_at,
        new.flags,
        new.note,
        new.supersedes_id,
        new.supersede_reason,
        [msgspec.to_builtins(v) for v in new.values],
        None if answer is None else answer.key,
        None if answer is None else answer.request_sha256,
        None if answer is None else answer.status_code,
        None if answer is None else answer.response,
    )
    changes.wrote_version(new.district_code, int(version))


_ONE = f"SELECT {_HEAD_COLUMNS}, s.jws, s.payload FROM submissions s WHERE s.id = $1"


async def get_submission(
    conn: asyncpg.Connection, submission_id: UUID, *, for_update: bool = False
) -> SubmissionRow | None:
    row = await conn.fetchrow(_ONE + (" FOR UPDATE" if for_update else ""), submission_id)
    return msgspec.convert(dict(row), SubmissionRow) if row else None


async def lock_in_district(
    conn: asyncpg.Connection, submission_id: UUID, district_code: str, division_id: UUID | None
) -> SubmissionRow | None:
    """Lock the submission only if it is one of this district (and division): a row of
    another is neither locked nor waited for, so the wait cannot tell that it exists."""
    row = await conn.fetchrow(
        _ONE + " AND s.district_code = $2 AND s.division_id IS NOT DISTINCT FROM $3 FOR UPDATE",
        submission_id,
        district_code,
        division_id,
    )
    return msgspec.convert(dict(row), SubmissionRow) if row else None


async def mark_superseded(conn: asyncpg.Connection, old_id: UUID, new_id: UUID) -> None:
    """The old submission stops counting and carries the ``superseded`` flag."""
    await conn.execute(
        "UPDATE submissions SET superseded_by = $2, "
        "flags = CASE WHEN 'superseded' = ANY(flags) THEN flags "
        "ELSE array_append(flags, 'superseded') END WHERE id = $1",
        old_id,
        new_id,
    )
    await conn.execute(
        "UPDATE submission_values SET superseded = true WHERE submission_id = $1", old_id
    )


async def set_status(conn: asyncpg.Connection, submission_id: UUID, status: Status) -> None:
    await conn.execute("UPDATE submissions SET status = $2 WHERE id = $1", submission_id, status)
    await conn.execute(
        "UPDATE submission_values SET status = $2 WHERE submission_id = $1", submission_id, status
    )


async def insert_review(
    conn: asyncpg.Connection,
    *,
    submission_id: UUID,
    reviewer_id: UUID,
    reviewer_role: str,
    decision: str,
    reason: str | None,
) -> ReviewRow:
    row = await conn.fetchrow(
        """
        WITH made AS (
            INSERT INTO submission_reviews
                (submission_id, reviewer_id, reviewer_role, decision, reason)
            VALUES ($1, $2, $3, $4, $5)
            RETURNING id, submission_id, reviewer_id, reviewer_role, decision, reason,
                      created_at
        )
        SELECT made.*, u.full_name AS reviewer_name
        FROM made JOIN users u ON u.id = made.reviewer_id
        """,
        submission_id,
        reviewer_id,
        reviewer_role,
        decision,
        reason,
    )
    assert row is not None
    return msgspec.convert(dict(row), ReviewRow)


async def reviews_of(conn: asyncpg.Connection, submission_id: UUID) -> list[ReviewRow]:
    rows = await conn.fetch(
        "SELECT r.id, r.submission_id, r.reviewer_id, u.full_name AS reviewer_name, "
        "r.reviewer_role, r.decision, r.reason, r.created_at "
        "FROM submission_reviews r JOIN users u ON u.id = r.reviewer_id "
        "WHERE r.submission_id = $1 ORDER BY r.created_at, r.id",
        submission_id,
    )
    return [msgspec.convert(dict(r), ReviewRow) for r in rows]


async def values_of(conn: asyncpg.Connection, ids: list[UUID]) -> dict[UUID, list[ValueRow]]:
    """Each report's values. A stated figure a double cannot hold (1e400 or 1e-400, only
    ever written with SQL: the API takes up to a million) reads as none, as NaN already
    does in JSON, rather than failing the whole read; ledger verify names such a row."""
    rows = await conn.fetch(
        "SELECT v.submission_id, v.indicator_code, v.numerator, v.denominator, "
        "CASE WHEN abs(v.stated_pct) < 1e300 AND (v.stated_pct = 0 OR abs(v.stated_pct) > 1e-300) "
        "THEN v.stated_pct::float8 END AS stated_pct, "
        "v.channels, v.flags, v.counting, i.unit "
        "FROM submission_values v JOIN indicators i ON i.code = v.indicator_code "
        "WHERE v.submission_id = ANY($1::uuid[]) "
        "ORDER BY v.submission_id, v.indicator_code",
        ids,
    )
    found: dict[UUID, list[ValueRow]] = {i: [] for i in ids}
    for row in rows:
        value = msgspec.convert(dict(row), ValueRow)
        found[value.submission_id].append(value)
    return found


async def list_submissions(
    conn: asyncpg.Connection,
    *,
    scope: ListScope,
    filters: ListFilters,
    after: tuple[datetime, UUID] | None,
    limit: int,
) -> list[SubmissionHead]:
    """Newest first (``received_at``, then ``id``), strictly after the cursor ``after``."""
    where: list[str] = []
    args: list[Any] = []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if scope.areas is not None:
        areas = arg(list(scope.areas))
        where.append(
            f"(s.district_code = ANY({areas}::text[]) OR a.parent_code = ANY({areas}::text[]) "
            f"OR p.parent_code = ANY({areas}::text[]))"
        )
    if scope.coordinator_id is not None:
        coordinator = arg(scope.coordinator_id)
        province = arg(scope.coordinator_province)
        # As area_in_scope: the district's region for the report's year (migration 0018).
        where.append(
            f"district_coordinated(s.district_code, {coordinator}, {province}, "
            "extract(year FROM s.as_of)::int)"
        )
    if scope.division_id is not None:
        where.append(f"s.division_id = {arg(scope.division_id)}")
    if filters.district is not None:
        where.append(f"s.district_code = {arg(filters.district)}")
    if filters.province is not None:
        where.append(f"a.parent_code = {arg(filters.province)}")
    if filters.status is not None:
        where.append(f"s.status = {arg(filters.status)}")
    if filters.flag is not None:
        # The second condition follows from the first; it is there for the planner, as
        # the flags index holds flagged submissions only (migration 0011).
        where.append(f"s.flags @> ARRAY[{arg(filters.flag)}::text] AND s.flags <> '{{}}'")
    if filters.as_of_from is not None:
        where.append(f"s.as_of >= {arg(filters.as_of_from)}")
    if filters.as_of_to is not None:
        where.append(f"s.as_of <= {arg(filters.as_of_to)}")
    if after is not None:
        where.append(f"(s.received_at, s.id) < ({arg(after[0])}, {arg(after[1])})")
    clause = (" WHERE " + " AND ".join(where)) if where else ""
    rows = await conn.fetch(
        f"SELECT {_HEAD_COLUMNS} FROM submissions s "
        "JOIN areas a ON a.code = s.district_code LEFT JOIN areas p ON p.code = a.parent_code"
        f"{clause} ORDER BY s.received_at DESC, s.id DESC LIMIT {arg(limit)}",
        *args,
    )
    return [msgspec.convert(dict(r), SubmissionHead) for r in rows]
