"""Signed progress submissions: checking, storing in the ledger, flagging, reviewing, reading.

A submission is a compact JWS the submitter made with their own registered key.
Everything is checked before anything is written, and everything is written in
the request's one transaction (the entry, its values, the ledger head, the
supersession, the idempotency record, the data version), so a failure or a crash
leaves nothing behind. Flags never reject: they mark what a reviewer should look
at, and the API always computes coverage from the counts.
"""

from __future__ import annotations

import base64
import binascii
import calendar
import hashlib
import math
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta, timezone
from time import monotonic
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from api import authz
from api.auth.middleware import still_admitted
from api.auth.principal import Principal
from api.errors import ApiError, Forbidden, NotFound, Unprocessable
from api.ledger import entry_hash
from api.schemas.submissions import (
    FLAGS,
    LedgerPosition,
    ReviewIn,
    ReviewOut,
    SubmissionDetail,
    SubmissionOut,
    SubmissionPage,
    SubmissionPayload,
    SupersedesOut,
    ValueIn,
    ValueOut,
)
from api.settings import Settings
from api.signatures import (
    check_iat,
    repeats_a_member,
    revoked_since,
    verify_before_locking,
    verify_signed_by,
)
from db import idempotency as idem_db
from db import ledger as ledger_db
from db import submissions as sub_db
from db import users as user_db
from db import versions
from db.areas import get_area
from scorecards import coverage
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


class UnsupportedMediaType(ApiError):
    status_code = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


class InvalidSubmission(ApiError):
    status_code = 422
    slug = "invalid-submission"
    title = "The submission payload is not valid"


class JtiReplayed(ApiError):
    status_code = 409
    slug = "jti-replayed"
    title = "This submission was already received"


class IatTooOld(ApiError):
    status_code = 422
    slug = "iat-too-old"
    title = "The submission was signed too long ago"


class IatInFuture(ApiError):
    status_code = 422
    slug = "iat-in-future"
    title = "The submission is signed in the future"


class FutureAsOf(ApiError):
    status_code = 422
    slug = "future-as-of"
    title = "The as-of date is in the future"


class AsOfTooEarly(ApiError):
    status_code = 422
    slug = "as-of-too-early"
    title = "The as-of date is before any reporting year"


#: Scorecards and rankings cover the years 2000 to 2100: an earlier report would be kept
#: and flagged late, and never count anywhere.
EARLIEST_AS_OF = date(2000, 1, 1)


class UnknownIndicator(ApiError):
    status_code = 422
    slug = "unknown-indicator"
    title = "Unknown indicator"


class InvalidDivision(ApiError):
    status_code = 422
    slug = "invalid-division"
    title = "The division is not one of the district's"


class InvalidSupersedes(ApiError):
    status_code = 422
    slug = "invalid-supersedes"
    title = "The superseded submission is not acceptable"


class AlreadySuperseded(ApiError):
    status_code = 409
    slug = "already-superseded"
    title = "The submission was already superseded"


class InvalidIdempotencyKey(ApiError):
    status_code = 400
    slug = "invalid-idempotency-key"
    title = "Invalid Idempotency-Key header"


class IdempotencyKeyReused(ApiError):
    status_code = 422
    slug = "idempotency-key-reused"
    title = "The Idempotency-Key was used for another request"


class ReviewNotAllowed(ApiError):
    status_code = 409
    slug = "review-not-allowed"
    title = "The submission cannot be reviewed that way now"


class InvalidCursor(ApiError):
    status_code = 400
    slug = "invalid-cursor"
    title = "Invalid cursor"


class SubmitResult(msgspec.Struct, frozen=True, kw_only=True):
    """What the route sends: the first response, or its stored copy for a retry."""

    status_code: int
    body: bytes
    submission_id: UUID
    replayed: bool


# -- pure rules ------------------------------------------------------------------------


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
        raise InvalidIdempotencyKey(
            "An Idempotency-Key is 1 to 255 visible ASCII characters.", extra={"key": key[:300]}
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
    """``iat`` within [now - max age, now + skew]; ``as_of`` not after today in Indonesia."""
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


# -- shaping ---------------------------------------------------------------------------


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


def _fields(row: sub_db.SubmissionHead, values: list[sub_db.ValueRow]) -> dict[str, Any]:
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


def _review_out(row: sub_db.ReviewRow, status: sub_db.Status | None = None) -> ReviewOut:
    return ReviewOut(
        id=row.id,
        submission_id=row.submission_id,
        reviewer_id=row.reviewer_id,
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
        **_fields(row, values),
        payload=row.payload,
        jws=row.jws,
        reviews=[_review_out(r) for r in reviews],
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
    return SubmissionDetail(**_fields(row, values), payload=new.payload, jws=new.jws, reviews=[])


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


# -- submitting ------------------------------------------------------------------------


def _compact(body: bytes) -> str:
    """The JWS is the body without surrounding whitespace; it must be ASCII."""
    try:
        return body.strip().decode("ascii")
    except UnicodeDecodeError:
        raise InvalidSubmission("The body must be a compact JWS (ASCII).") from None


def _decode(raw: bytes) -> tuple[SubmissionPayload, dict[str, Any]]:
    try:
        signed = msgspec.json.decode(raw)
        if not isinstance(signed, dict):
            raise InvalidSubmission("The JWS payload must be a JSON object.")
        if repeats_a_member(raw, signed):
            raise InvalidSubmission(
                "The JWS payload names a member twice in one object; what it says is "
                "ambiguous. Sign it again without the repeat."
            )
        return msgspec.convert(signed, SubmissionPayload), signed
    except msgspec.ValidationError as exc:
        raise InvalidSubmission(f"The payload is not valid: {exc}") from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        # msgspec raises the last two for bytes that are not UTF-8 in a string and for
        # very deep nesting.
        raise InvalidSubmission("The JWS payload is not JSON.") from None


async def _check_submitter(
    conn: asyncpg.Connection | asyncpg.Pool, caller: Principal, payload: SubmissionPayload
) -> None:
    """District heads report for their district (or a division of it); division heads for
    their own division. A district outside the caller's scope is not found."""
    if not await authz.area_in_scope(conn, caller, payload.district, year=payload.as_of.year):
        raise NotFound("No such district in your scope.", extra={"district": payload.district})
    if caller.role == "district_head":
        if payload.division is not None:
            district = await user_db.division_district(conn, payload.division)
            if district != payload.district:
                raise InvalidDivision(
                    "The division is not a division of the district.",
                    extra={"division": str(payload.division)},
                )
    elif caller.role == "division_head":
        if payload.division is None or payload.division != caller.division_id:
            raise Forbidden("A division head reports only for their own division.")
    else:
        raise Forbidden(f"The role {caller.role!r} may not submit progress.")


async def _check_indicators(
    conn: asyncpg.Connection | asyncpg.Pool, payload: SubmissionPayload
) -> dict[str, str]:
    """The units of the payload's indicators, all in the catalogue (read now, and kept
    with the report until its flags are set)."""
    codes = sorted(payload.values)
    units = await sub_db.known_indicators(conn, codes)
    unknown = sorted(set(codes) - units.keys())
    if unknown:
        raise UnknownIndicator(
            f"Unknown indicator: {', '.join(unknown)}.", extra={"indicators": unknown}
        )
    return units


async def _superseded_target(
    conn: asyncpg.Connection, payload: SubmissionPayload
) -> sub_db.SubmissionRow | None:
    """Lock the submission being corrected: same district, division and date, not yet
    superseded. A correction replaces the snapshot of its own date: one of another date
    would make the corrected date's figure vanish (a closed year's scorecard emptied)
    while nothing corrected it; a report sent with the wrong date is returned instead."""
    if payload.supersedes is None:
        return None
    target = await sub_db.lock_in_district(
        conn, payload.supersedes.id, payload.district, payload.division
    )
    if target is None:
        raise InvalidSupersedes(
            "supersedes.id is not a submission of this district (and division).",
            extra={"supersedes": str(payload.supersedes.id)},
        )
    if target.as_of != payload.as_of:
        raise InvalidSupersedes(
            f"A correction reports the date of the submission it corrects "
            f"(as_of {target.as_of.isoformat()}); a report sent with the wrong date is "
            f"returned by a reviewer, and the right one submitted afresh.",
            extra={"supersedes": str(payload.supersedes.id), "as_of": target.as_of.isoformat()},
        )
    if target.superseded_by is not None:
        raise AlreadySuperseded(
            "That submission was already corrected; supersede the correction instead.",
            extra={"superseded_by": str(target.superseded_by)},
        )
    return target


def new_entry(
    *,
    caller: Principal,
    payload: SubmissionPayload,
    signed: dict[str, Any],
    token: str,
    kid: str,
    head: ledger_db.Head,
    previous: dict[str, sub_db.Previous],
    now: datetime,
    settings: Settings,
    units: Mapping[str, str],
    target: sub_db.SubmissionRow | None = None,
) -> sub_db.NewSubmission:
    """The ledger entry for a checked submission appended after ``head``, flagged against
    ``previous`` (per indicator, the latest counting value it is compared with)."""
    values = [
        sub_db.NewValue(
            indicator_code=code,
            numerator=value.numerator,
            denominator=value.denominator,
            stated_pct=value.stated_pct,
            channels=msgspec.to_builtins(value.channels),
            flags=value_flags(value, previous.get(code), settings, units.get(code, "percent")),
            unit=units.get(code, "percent"),
        )
        for code, value in sorted(payload.values.items())
    ]
    flags: set[str] = {f for v in values for f in v.flags}
    if is_late(payload.as_of, now, settings.reporting_deadline_day):
        flags.add("late")
    return sub_db.NewSubmission(
        id=uuid.uuid4(),
        district_code=payload.district,
        division_id=payload.division,
        seq=head.seq + 1,
        prev_hash=head.hash,
        hash=entry_hash(head.hash, token),
        jws=token,
        payload=signed,
        jti=payload.jti,
        iat=datetime.fromtimestamp(payload.iat, UTC),
        as_of=payload.as_of,
        submitter_id=caller.id,
        kid=kid,
        received_at=now,
        flags=ordered_flags(flags),
        note=payload.note,
        supersedes_id=target.id if target else None,
        supersede_reason=payload.supersedes.reason if payload.supersedes else None,
        values=values,
    )


class Prepared(msgspec.Struct, frozen=True, kw_only=True):
    """A submission that passed every check needing no lock, with what a batch needs to
    finish it, and the request itself, to append it on its own if the batch fails."""

    caller: Principal
    body: bytes
    content_type: str | None
    idempotency_key: str | None
    fingerprint: str
    token: str
    kid: str
    payload: SubmissionPayload
    signed: dict[str, Any]
    #: Refused in the batch, after the checks ``submit`` makes before this one.
    unknown_indicator: UnknownIndicator | None = None
    #: The units of its indicators, read when they were checked.
    units: dict[str, str] = msgspec.field(default_factory=dict)


async def prepare(
    pool: asyncpg.Pool,
    settings: Settings,
    caller: Principal,
    body: bytes,
    *,
    content_type: str | None,
    idempotency_key: str | None,
) -> Prepared | SubmitResult:
    """Check what can be checked before a batch takes its locks: the media type, the
    signature (with the worker's copy of the key), the payload, the scope, the indicators.

    When one of these fails for a request with an ``Idempotency-Key`` that was already
    answered, the retry gets its first answer (as ``submit``, which looks first), so a
    key revoked since then does not turn a stored report into an error.
    """
    check_media_type(content_type)
    fingerprint = hashlib.sha256(body.strip()).hexdigest()
    if idempotency_key is not None:
        check_idempotency_key(idempotency_key)
    unknown: UnknownIndicator | None = None
    units: dict[str, str] = {}
    token = ""
    try:
        token = _compact(body)
        raw, key = await verify_before_locking(pool, token, caller, typ=SUBMISSION_TYP)
        payload, signed = _decode(raw)
        await _check_submitter(pool, caller, payload)
        try:
            units = await _check_indicators(pool, payload)
        except UnknownIndicator as exc:  # ``submit`` checks the times first
            unknown = exc
    except ApiError as exc:
        if idempotency_key is not None:
            # Under the key's lock, as ``submit`` looks: a first request with this key
            # still in a batch holds it, and its answer is what this one is judged by.
            async with pool.acquire() as conn, conn.transaction():
                await idem_db.lock(conn, caller.id, idempotency_key)
                record = await idem_db.find(
                    conn, caller.id, idempotency_key, ttl_s=settings.idempotency_ttl_s
                )
            if record is not None:
                return replay(
                    record.request_sha256, record.status_code, record.response, fingerprint
                )
        # ``submit`` refuses a revoked key before anything else about the submission;
        # the worker's copy of the key may not know of the revocation yet.
        raise (await revoked_since(pool, token, caller, typ=SUBMISSION_TYP)) or exc from None
    return Prepared(
        caller=caller,
        body=body,
        content_type=content_type,
        idempotency_key=idempotency_key,
        fingerprint=fingerprint,
        token=token,
        kid=key.kid,
        payload=payload,
        signed=signed,
        unknown_indicator=unknown,
        units=units,
    )


async def submit(
    conn: asyncpg.Connection,
    settings: Settings,
    caller: Principal,
    body: bytes,
    *,
    content_type: str | None,
    idempotency_key: str | None,
    now: datetime | None = None,
) -> SubmitResult:
    """Check a signed submission and append it to its district's ledger.

    With an ``Idempotency-Key``, a retry of the same body gets the first response
    (nothing new is stored) and the same key with another body is refused; the jti
    replay check applies only to requests that are not such a retry.
    """
    check_media_type(content_type)
    # Fingerprint the JWS itself, so a retry that adds a trailing newline is still a retry.
    fingerprint = hashlib.sha256(body.strip()).hexdigest()
    if idempotency_key is not None:
        check_idempotency_key(idempotency_key)
        await idem_db.lock(conn, caller.id, idempotency_key)
        record = await idem_db.find(
            conn, caller.id, idempotency_key, ttl_s=settings.idempotency_ttl_s
        )
        if record is not None:
            return replay(record.request_sha256, record.status_code, record.response, fingerprint)

    token = _compact(body)
    # The key stays locked until commit; received_at is the database clock read after
    # that lock, so a revocation is either refused here or comes after this entry.
    verified = await verify_signed_by(conn, token, caller, typ=SUBMISSION_TYP)
    now = now or verified.now
    payload, signed = _decode(verified.payload)
    await _check_submitter(conn, caller, payload)
    # A replay before the times: a report stored long ago and sent again (its answer
    # lost, its Idempotency-Key expired) is "already received", not "too old", so the
    # client knows it is stored rather than signing it again. Racing appends of one jti
    # are still settled by the unique index below.
    if await sub_db.jti_seen(conn, payload.jti):
        raise JtiReplayed("A submission with this jti was already received.")
    check_times(payload, now, settings)
    units = await _check_indicators(conn, payload)

    # Appends for this district queue here; everything below sees a stable chain.
    # Lock order, as reviews take it: the head, a corrected submission, the district's
    # latest values, then (in the append) its data version.
    head = await sub_db.lock_head(conn, payload.district, hold_latest=payload.supersedes is None)
    # Read once the head is held: an account changed while this report waited (for the
    # head, behind another append or a ledger verify) refuses it, as the batch does.
    account = await user_db.principal_row(conn, caller.id)
    still_admitted(
        caller,
        found=account is not None,
        active=bool(account and account["active"]),
        token_generation=account["token_generation"] if account else -1,
        role=account["role"] if account else "",
        area_code=account["area_code"] if account else "",
        division_id=account["division_id"] if account else None,
    )
    # A replayed jti is refused by the unique index when the entry is inserted below; a
    # correction is looked at again first: a copy of it that was appended while this one
    # waited for the head has superseded the target, and this copy must be told it is
    # stored (jti-replayed), not that the target was corrected by another.
    if payload.supersedes is not None and await sub_db.jti_seen(conn, payload.jti):
        raise JtiReplayed("A submission with this jti was already received.")
    target = await _superseded_target(conn, payload)
    if payload.supersedes is not None:
        await sub_db.hold_latest(conn, payload.district)
    # Read once every lock is held: a review returning a report holds the latest-values
    # lock until it commits, and the report then no longer counts.
    previous = await sub_db.previous_values(
        conn,
        district_code=payload.district,
        division_id=payload.division,
        codes=sorted(payload.values),
        as_of=payload.as_of,
        excluding=target.id if target else None,
    )
    new = new_entry(
        caller=caller,
        payload=payload,
        signed=signed,
        token=token,
        kid=verified.key.kid,
        head=head,
        previous=previous,
        now=now,
        settings=settings,
        units=units,
        target=target,
    )
    response = created_response(new)
    answer = (
        None
        if idempotency_key is None
        else sub_db.IdempotentAnswer(
            key=idempotency_key, request_sha256=fingerprint, status_code=201, response=response
        )
    )
    if idempotency_key is not None:
        await purge_if_due(conn, settings)
    try:
        # The entry, its values, the ledger head, the answer and the data version (whose
        # row stays locked until commit: nothing slow comes after this).
        await sub_db.append_submission(conn, new, answer)
    except asyncpg.UniqueViolationError as exc:
        if exc.constraint_name == "submissions_jti_key":
            raise JtiReplayed("A submission with this jti was already received.") from None
        raise
    except asyncpg.ForeignKeyViolationError as exc:
        if exc.constraint_name != "submission_values_indicator_code_fkey":
            raise
        # Removed from the catalogue after this worker last saw it named.
        sub_db.forget_indicators()
        gone = re.search(r"\(indicator_code\)=\((.*)\) is not present", exc.detail or "")
        codes = [gone.group(1)] if gone else sorted(payload.values)
        raise UnknownIndicator(
            f"Unknown indicator: {', '.join(codes)}.", extra={"indicators": codes}
        ) from None
    if target is not None:
        await sub_db.mark_superseded(conn, target.id, new.id)
    return SubmitResult(status_code=201, body=response, submission_id=new.id, replayed=False)


# Expired Idempotency-Key records are deleted in batches by keyed submissions, at most
# every ``idempotency_purge_s`` per worker rather than on every request, and again at
# once while batches come back full.
_PURGE_BATCH = 500
_last_purge = -math.inf


async def purge_if_due(conn: asyncpg.Connection, settings: Settings) -> None:
    global _last_purge
    if monotonic() - _last_purge >= settings.idempotency_purge_s:
        count = await idem_db.purge_expired(
            conn, ttl_s=settings.idempotency_ttl_s, limit=_PURGE_BATCH
        )
        _last_purge = -math.inf if count >= _PURGE_BATCH else monotonic()


# -- reviewing -------------------------------------------------------------------------

#: decision → statuses it may be applied to, and the status it leads to. A submission
#: accepted earlier may still be returned (a reviewer can find a problem later); a
#: returned one is final: the district corrects it with a superseding submission.
_TRANSITIONS: dict[str, tuple[frozenset[str], sub_db.Status]] = {
    "accept": (frozenset({"received"}), "accepted"),
    "return": (frozenset({"received", "accepted"}), "returned"),
}


async def review(
    conn: asyncpg.Connection, caller: Principal, submission_id: UUID, data: ReviewIn
) -> ReviewOut:
    """Accept or return a submission in the reviewer's scope; a returned one stops counting."""
    # In scope first, then locked: a report outside is answered without waiting for
    # whoever holds it (the wait would tell that it exists).
    row = await sub_db.get_submission(conn, submission_id)
    if row is None or not await authz.area_in_scope(
        conn, caller, row.district_code, year=row.as_of.year
    ):
        raise NotFound("No such submission.")
    row = await sub_db.get_submission(conn, submission_id, for_update=True)
    if row is None:  # deleted meanwhile, behind the API
        raise NotFound("No such submission.")
    authz.not_own_submission(caller, row.submitter_id)
    reason = (data.reason or "").strip() or None  # blanks say nothing
    if data.decision == "return" and not reason:
        raise Unprocessable(
            "Returning a submission needs a reason the district can act on.",
            extra={"field": "reason"},
        )
    if row.superseded_by is not None:
        raise ReviewNotAllowed(
            "The submission was superseded; review the correction instead.",
            extra={"superseded_by": str(row.superseded_by)},
        )
    allowed_from, new_status = _TRANSITIONS[data.decision]
    if row.status not in allowed_from:
        raise ReviewNotAllowed(
            f"A {row.status} submission cannot be given the decision {data.decision!r}.",
            extra={"current_status": row.status},
        )
    await sub_db.set_status(conn, row.id, new_status)
    saved = await sub_db.insert_review(
        conn,
        submission_id=row.id,
        reviewer_id=caller.id,
        reviewer_role=caller.role,
        decision=data.decision,
        reason=reason,
    )
    await versions.bump(conn, row.district_code)
    return _review_out(saved, new_status)


# -- reading ---------------------------------------------------------------------------


async def visible(
    conn: asyncpg.Connection, caller: Principal, submission_id: UUID
) -> sub_db.SubmissionRow:
    row = await sub_db.get_submission(conn, submission_id)
    if row is None or not await authz.submission_visible(
        conn, caller, row.district_code, row.division_id, row.as_of.year
    ):
        raise NotFound("No such submission.")
    return row


async def list_page(
    conn: asyncpg.Connection,
    caller: Principal,
    filters: sub_db.ListFilters,
    *,
    cursor: str | None,
    limit: int,
) -> SubmissionPage:
    scope = authz.submission_list_scope(caller)
    after = decode_cursor(cursor) if cursor else None
    if scope is None:
        return SubmissionPage(items=[], next_cursor=None)
    rows = await sub_db.list_submissions(
        conn, scope=scope, filters=filters, after=after, limit=limit + 1
    )
    more = len(rows) > limit
    rows = rows[:limit]
    values = await sub_db.values_of(conn, [r.id for r in rows])
    items = [SubmissionOut(**_fields(r, values[r.id])) for r in rows]
    last = rows[-1] if rows else None
    return SubmissionPage(
        items=items,
        next_cursor=encode_cursor(last.received_at, last.id) if more and last else None,
    )


async def verifiable_district(
    conn: asyncpg.Connection, caller: Principal, code: str, year: int
) -> str:
    """The district whose ledger the caller may verify (404 outside scope or not a
    district); a region coordinator's scope is that of ``year`` (this year's)."""
    area = await get_area(conn, code)
    if (
        area is None
        or area.kind != "district"
        or not await authz.area_in_scope(conn, caller, code, year=year)
    ):
        raise NotFound("No such district in your scope.", extra={"district": code})
    return code
