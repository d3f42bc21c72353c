"""What a submission is held to that needs nothing but the request and a clock.

Its media type and Idempotency-Key, the times it carries, the flags its counts raise,
the reporting deadline and the list cursor. The single append (``api.submissions``) and
the ingest batch (``api.ingest``) both use these, so a report is judged the same way
whichever path stores it.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import re
from datetime import UTC, date, datetime, time, timedelta, timezone
from uuid import UUID

import msgspec

from api.schemas.submissions import FLAGS, SubmissionPayload, ValueIn
from api.settings import Settings
from api.signatures import check_iat
from api.submission_errors import (
    AsOfTooEarly,
    FutureAsOf,
    IatInFuture,
    IatTooOld,
    IdempotencyKeyReused,
    InvalidCursor,
    InvalidIdempotencyKey,
    UnsupportedMediaType,
)
from db import submissions as sub_db
from scorecards.achievement import scale_of
from scorecards.checks import denominator_jump, numerator_decreased, over_100, stated_mismatch

SUBMISSION_TYP = "kinerja-submission+jwt"
JOSE_MEDIA_TYPE = "application/jose"

#: Western Indonesia Time: a deadline ends at midnight here, the last of the country's
#: zones to reach it, so no office is late by the clock of a zone east of it.
WIB = timezone(timedelta(hours=7), "WIB")
#: Eastern Indonesia Time: "today" for the as-of check is today here, the first zone to
#: reach a date, so no office's own today is refused as the future.
WIT = timezone(timedelta(hours=9), "WIT")

_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


#: Scorecards and rankings cover the years 2000 to 2100: an earlier report would be kept
#: and flagged late, and never count anywhere.
EARLIEST_AS_OF = date(2000, 1, 1)


class SubmitResult(msgspec.Struct, frozen=True, kw_only=True):
    """What the route sends: the first response, or its stored copy for a retry."""

    status_code: int
    body: bytes
    submission_id: UUID
    replayed: bool


def replay(stored_sha256: str, status_code: int, response: bytes, fingerprint: str) -> SubmitResult:
    """The first response again for a retry with the same body; another body is refused."""
    if stored_sha256 != fingerprint:
        raise IdempotencyKeyReused(
            "This Idempotency-Key was used with another body; use a new key."
        )
    first = msgspec.json.decode(response)
    return SubmitResult(
        status_code=status_code, body=response, submission_id=UUID(first["id"]), replayed=True
    )


def check_media_type(content_type: str | None) -> None:
    """Only a compact JWS is accepted; JSON, forms and the JWS JSON serialisation are not."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media != JOSE_MEDIA_TYPE:
        raise UnsupportedMediaType(
            f"Send the compact JWS with Content-Type: {JOSE_MEDIA_TYPE}.",
            extra={"content_type": content_type},
        )


def check_idempotency_key(key: str) -> str:
    if not _IDEMPOTENCY_KEY.fullmatch(key):
        # Header bytes arrive as Latin-1; a client sending UTF-8 sees its key as it wrote it.
        shown = key[:300].encode("latin-1", "replace").decode("utf-8", "replace")
        raise InvalidIdempotencyKey(
            "An Idempotency-Key is 1 to 255 visible ASCII characters.", extra={"key": shown}
        )
    return key


def reporting_deadline(as_of: date, deadline_day: int) -> datetime:
    """When a report as of ``as_of`` becomes late: the end of day N of the next month, WIB.

    A day beyond the month's length means its last day (N = 31 in February).
    """
    year, month = (as_of.year + 1, 1) if as_of.month == 12 else (as_of.year, as_of.month + 1)
    day = min(max(deadline_day, 1), calendar.monthrange(year, month)[1])
    return datetime.combine(date(year, month, day) + timedelta(days=1), time(0), tzinfo=WIB)


def is_late(as_of: date, received_at: datetime, deadline_day: int) -> bool:
    return received_at >= reporting_deadline(as_of, deadline_day)


def check_times(payload: SubmissionPayload, now: datetime, settings: Settings) -> None:
    """``iat`` within [now - max age, now + skew]; ``as_of`` not after today in Indonesia,
    nor after the day of ``iat`` there."""
    check_iat(
        payload.iat,
        now,
        max_age_s=settings.submission_iat_max_age_s,
        max_skew_s=settings.submission_iat_max_skew_s,
        ahead=IatInFuture,
        too_old=IatTooOld,
        again="sign the report again",
    )
    if payload.as_of < EARLIEST_AS_OF:
        raise AsOfTooEarly(
            f"The as-of date is before {EARLIEST_AS_OF.isoformat()}; no scorecard covers it.",
            extra={"as_of": payload.as_of.isoformat()},
        )
    today = now.astimezone(WIT).date()
    if payload.as_of > today:
        raise FutureAsOf(
            "The as-of date is after today.",
            extra={"as_of": payload.as_of.isoformat(), "today": today.isoformat()},
        )
    # Nor after the day it was signed: counts as of a day still to come when the district
    # head signed them are not counts they could vouch for (an outbox's report, sent days
    # later, keeps the date it was signed with).
    signed = datetime.fromtimestamp(payload.iat, WIT).date()
    if payload.as_of > signed:
        raise FutureAsOf(
            "The as-of date is after the day the report was signed.",
            extra={"as_of": payload.as_of.isoformat(), "signed": signed.isoformat()},
        )


def value_flags(
    value: ValueIn, previous: sub_db.Previous | None, settings: Settings, unit: str = "percent"
) -> list[str]:
    """The flags one indicator's counts raise, against the previous counting value. Over
    100 is a percent's flag: a daily rate (recordings / days) has no such ceiling."""
    found: set[str] = set()
    scale = scale_of(unit)
    if scale == 100 and over_100(value.numerator, value.denominator):
        found.add("over_100")
    if stated_mismatch(
        value.numerator,
        value.denominator,
        value.stated_pct,
        settings.stated_tolerance_pct,
        scale,
    ):
        found.add("stated_mismatch")
    if previous is not None:
        if numerator_decreased(value.numerator, previous.numerator):
            found.add("numerator_decreased")
        if denominator_jump(
            value.denominator, previous.denominator, settings.denominator_jump_share
        ):
            found.add("denominator_jump")
    return ordered_flags(found)


def ordered_flags(flags: set[str] | list[str]) -> list[str]:
    present = set(flags)
    return [f for f in FLAGS if f in present]


def encode_cursor(received_at: datetime, submission_id: UUID) -> str:
    raw = msgspec.json.encode([received_at.isoformat(), str(submission_id)])
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str) -> tuple[datetime, UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        stamp, ident = msgspec.json.decode(raw, type=tuple[datetime, UUID])
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise InvalidCursor("The cursor is not one this API gave out.") from None
    if stamp.tzinfo is None:
        raise InvalidCursor("The cursor is not one this API gave out.")
    try:  # an offset can carry a date past year 1 or 9999, which PostgreSQL refuses
        stamp = stamp.astimezone(UTC)
    except OverflowError:
        raise InvalidCursor("The cursor is not one this API gave out.") from None
    return stamp, ident
