"""Submissions as the API shows them.

A stored row, its values and its reviews shaped as ``GET /v1/submissions/{id}`` answers,
and the 201 body built from what was just written, which must read the same (a retry
with the same Idempotency-Key gets those bytes back).
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from api.schemas.submissions import (
    LedgerPosition,
    ReviewOut,
    SubmissionDetail,
    SupersedesOut,
    ValueOut,
)
from api.submission_rules import ordered_flags
from db import submissions as sub_db
from scorecards import coverage


def _value_out(row: sub_db.ValueRow) -> ValueOut:
    pct = coverage(row.numerator, row.denominator, row.unit)
    return ValueOut(
        indicator=row.indicator_code,
        numerator=row.numerator,
        denominator=row.denominator,
        coverage_pct=pct if pct is not None else 0.0,
        stated_pct=row.stated_pct,
        channels=row.channels,
        flags=row.flags,
        counting=row.counting,
    )


def shown_fields(row: sub_db.SubmissionHead, values: list[sub_db.ValueRow]) -> dict[str, Any]:
    """The fields a submission shows in a list and in its detail."""
    return {
        "id": row.id,
        "district": row.district_code,
        "division_id": row.division_id,
        "as_of": row.as_of,
        "status": row.status,
        "counting": row.status != "returned" and row.superseded_by is None,
        "flags": ordered_flags(row.flags),
        "values": [_value_out(v) for v in values],
        "note": row.note,
        "submitter_id": row.submitter_id,
        "kid": row.kid,
        "iat": row.iat,
        "received_at": row.received_at,
        "supersedes": (
            SupersedesOut(id=row.supersedes_id, reason=row.supersede_reason or "")
            if row.supersedes_id
            else None
        ),
        "superseded_by": row.superseded_by,
        "ledger": LedgerPosition(seq=row.seq, prev_hash=row.prev_hash, hash=row.hash),
    }


def review_out(row: sub_db.ReviewRow, status: sub_db.Status | None = None) -> ReviewOut:
    return ReviewOut(
        id=row.id,
        submission_id=row.submission_id,
        reviewer_id=row.reviewer_id,
        reviewer_name=row.reviewer_name,
        reviewer_role=row.reviewer_role,
        decision=row.decision,
        reason=row.reason,
        created_at=row.created_at,
        submission_status=status,
    )


async def detail(conn: asyncpg.Connection, row: sub_db.SubmissionRow) -> SubmissionDetail:
    values = (await sub_db.values_of(conn, [row.id]))[row.id]
    reviews = await sub_db.reviews_of(conn, row.id)
    return SubmissionDetail(
        **shown_fields(row, values),
        payload=row.payload,
        jws=row.jws,
        reviews=[review_out(r) for r in reviews],
    )


def created_response(new: sub_db.NewSubmission) -> bytes:
    """The 201 body for a new entry, as ``GET /v1/submissions/{id}`` would answer."""
    return msgspec.json.encode(_new_detail(new))


def _new_detail(new: sub_db.NewSubmission) -> SubmissionDetail:
    """The stored submission as ``detail`` would read it back, built from what was just
    written (a new entry is received, counting, unreviewed and superseded by nothing)."""
    row = sub_db.SubmissionRow(
        **{f: getattr(new, f) for f in _HEAD_FIELDS},
        status="received",
        superseded_by=None,
        jws=new.jws,
        payload=new.payload,
    )
    values = [
        sub_db.ValueRow(
            submission_id=new.id,
            indicator_code=v.indicator_code,
            numerator=v.numerator,
            denominator=v.denominator,
            stated_pct=v.stated_pct,
            channels=v.channels,
            flags=v.flags,
            counting=True,
            unit=v.unit,
        )
        for v in new.values
    ]
    return SubmissionDetail(
        **shown_fields(row, values), payload=new.payload, jws=new.jws, reviews=[]
    )


_HEAD_FIELDS = (
    "id",
    "district_code",
    "division_id",
    "seq",
    "prev_hash",
    "hash",
    "jti",
    "iat",
    "as_of",
    "submitter_id",
    "kid",
    "received_at",
    "flags",
    "note",
    "supersedes_id",
    "supersede_reason",
)
