"""The signed submission payload, and the bodies of the submission routes.

``SubmissionPayload`` is exactly what ``client.signing.build_payload`` produces;
unknown fields are refused so nothing unsigned-for can ride along unchecked.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec

from api.schemas.patterns import NO_NUL, VISIBLE_TEXT, described, whole

#: Counts are stored as PostgreSQL bigint.
BIGINT_MAX = 2**63 - 1
Count = Annotated[int, msgspec.Meta(ge=0, le=BIGINT_MAX)]
Population = Annotated[int, msgspec.Meta(gt=0, le=BIGINT_MAX)]
DistrictCode = Annotated[
    str,
    msgspec.Meta(pattern=described(whole(r"[0-9]{2}\.[0-9]{2}"), "a district code such as 16.71")),
]
IndicatorCode = Annotated[
    str,
    msgspec.Meta(
        pattern=described(
            whole(r"[a-z][a-z0-9_]{0,62}"),
            "an indicator code (lower-case letters, digits and _, such as ktp_el)",
        )
    ),
]
#: A stated figure, in the indicator's unit: a percent above 100 is real, and a daily
#: rate runs into the thousands; not beyond a million (the bound also keeps it where
#: PostgreSQL's jsonb gives back the very number signed: it writes a large float such as
#: 1e23 as the integer 10^23, which no longer equals it, and the ledger check would then
#: find the stored payload unlike the signed one).
STATED_PCT_MAX = 1_000_000
Percent = Annotated[float, msgspec.Meta(ge=0, le=STATED_PCT_MAX)]
Flag = Literal[
    "over_100",
    "numerator_decreased",
    "denominator_jump",
    "late",
    "superseded",
    "stated_mismatch",
]
#: Flags in the order they are listed on a submission.
FLAGS: tuple[Flag, ...] = (
    "over_100",
    "numerator_decreased",
    "denominator_jump",
    "stated_mismatch",
    "late",
    "superseded",
)
Status = Literal["received", "accepted", "returned"]


class Channels(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """New records in the period by service channel (``mobile`` is "jemput bola")."""

    office: Count = 0
    kecamatan: Count = 0
    mobile: Count = 0
    school: Count = 0
    hospital: Count = 0
    other: Count = 0


class ValueIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    numerator: Count
    denominator: Population
    stated_pct: Percent | None = None
    channels: Channels | None = None


class SupersedesIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    id: UUID
    reason: Annotated[
        # ``\S`` alone would take a NUL.
        str,
        msgspec.Meta(min_length=1, max_length=2000, pattern=VISIBLE_TEXT),
    ]


class SubmissionPayload(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The signed claims of a progress report (laporan capaian)."""

    jti: UUID
    iat: Annotated[int, msgspec.Meta(ge=0, le=BIGINT_MAX)]
    district: DistrictCode
    as_of: date
    values: Annotated[dict[IndicatorCode, ValueIn], msgspec.Meta(min_length=1, max_length=50)]
    division: UUID | None = None
    note: Annotated[str, msgspec.Meta(max_length=4000, pattern=NO_NUL)] | None = None
    supersedes: SupersedesIn | None = None


class StoredValue(ValueIn, forbid_unknown_fields=True, kw_only=True):
    """A value as the ledger check reads a stored report: under the rules it was accepted
    with, not today's input bounds (stated percentages had no upper bound before)."""

    stated_pct: Annotated[float, msgspec.Meta(ge=0)] | None = None


class StoredSupersedes(SupersedesIn, forbid_unknown_fields=True, kw_only=True):
    """A correction's reason as accepted before zero-width and control characters stopped
    counting as visible (the pattern ``VISIBLE_TEXT`` had then)."""

    reason: Annotated[
        str, msgspec.Meta(min_length=1, max_length=2000, pattern=r"^\s*[^\x00\s][^\x00]*$")
    ]


class StoredPayload(SubmissionPayload, forbid_unknown_fields=True, kw_only=True):
    """The signed claims of a stored report, as the ledger check reads them: a tighter
    input rule must not turn a report accepted before it into a "tampered" entry."""

    values: Annotated[dict[IndicatorCode, StoredValue], msgspec.Meta(min_length=1, max_length=50)]
    supersedes: StoredSupersedes | None = None


class ValueOut(msgspec.Struct, kw_only=True):
    indicator: str
    numerator: int
    denominator: int
    coverage_pct: float
    stated_pct: float | None
    channels: dict[str, int] | None
    flags: list[Flag]
    counting: bool


class SupersedesOut(msgspec.Struct, kw_only=True):
    id: UUID
    reason: str


class LedgerPosition(msgspec.Struct, kw_only=True):
    seq: int
    prev_hash: str
    hash: str


class ReviewIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    decision: Literal["accept", "return"]
    reason: Annotated[str, msgspec.Meta(min_length=1, max_length=2000, pattern=NO_NUL)] | None = (
        None
    )


class ReviewOut(msgspec.Struct, kw_only=True):
    id: UUID
    submission_id: UUID
    reviewer_id: UUID
    #: The reviewer's full name as it now stands.
    reviewer_name: str
    reviewer_role: str
    decision: Literal["accept", "return"]
    reason: str | None
    created_at: datetime
    submission_status: Status | None = None


class SubmissionOut(msgspec.Struct, kw_only=True):
    """A submission as listed: its numbers, status and flags, without the JWS."""

    id: UUID
    district: str
    division_id: UUID | None
    as_of: date
    status: Status
    counting: bool
    flags: list[Flag]
    values: list[ValueOut]
    note: str | None
    submitter_id: UUID
    kid: str
    iat: datetime
    received_at: datetime
    supersedes: SupersedesOut | None
    superseded_by: UUID | None
    ledger: LedgerPosition


class SubmissionDetail(SubmissionOut, kw_only=True):
    """One submission in full: also the signed payload, the JWS itself and every review."""

    payload: dict[str, Any]
    jws: str
    reviews: list[ReviewOut]


class SubmissionPage(msgspec.Struct, kw_only=True):
    """One page, newest first; pass ``next_cursor`` back as ``cursor`` for the next one."""

    items: list[SubmissionOut]
    next_cursor: str | None


Problem = Literal[
    "seq_gap",
    "prev_hash_mismatch",
    "hash_mismatch",
    "signature_invalid",
    "payload_mismatch",
    "values_mismatch",
    "status_mismatch",
    "superseded_mismatch",
    "head_mismatch",
]


class BrokenEntry(msgspec.Struct, kw_only=True):
    seq: int
    id: UUID | None
    problem: Problem
    detail: str


class LedgerReport(msgspec.Struct, kw_only=True):
    """A district's ledger, checked. ``entries`` is how many the walk read: every entry,
    or those up to the first broken one when the walk itself stopped there (a later
    check, of supersessions, the head or the kept latest values, reads them all)."""

    district: str
    ok: bool
    entries: int
    first_broken: BrokenEntry | None
