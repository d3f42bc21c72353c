"""Signed progress submissions: checking, storing in the ledger, reviewing, reading.

A submission is a compact JWS the submitter made with their own registered key.
Everything is checked before anything is written, and everything is written in
the request's one transaction (the entry, its values, the ledger head, the
supersession, the idempotency record, the data version), so a failure or a crash
leaves nothing behind. Flags never reject: they mark what a reviewer should look
at, and the API always computes coverage from the counts. The rules that need no
database are in ``api.submission_rules``, the problems in ``api.submission_errors``,
and the shapes the API answers with in ``api.submission_views``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from time import monotonic
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from api import authz
from api.auth.middleware import still_admitted
from api.auth.principal import Principal
from api.errors import ApiError, Forbidden, NotFound, Unprocessable, with_article
from api.ledger import entry_hash
from api.schemas.patterns import in_words, shows_text
from api.schemas.submissions import (
    ReviewIn,
    ReviewOut,
    SubmissionOut,
    SubmissionPage,
    SubmissionPayload,
)
from api.settings import Settings
from api.signatures import (
    repeats_a_member,
    revoked_since,
    verify_before_locking,
    verify_signed_by,
)
from api.submission_errors import (
    AlreadySuperseded,
    InvalidDivision,
    InvalidSubmission,
    InvalidSupersedes,
    JtiReplayed,
    ReviewNotAllowed,
    UnknownIndicator,
)
from api.submission_rules import (
    SUBMISSION_TYP,
    SubmitResult,
    check_idempotency_key,
    check_media_type,
    check_times,
    decode_cursor,
    encode_cursor,
    is_late,
    ordered_flags,
    replay,
    value_flags,
)
from api.submission_views import created_response, review_out, shown_fields
from db import idempotency as idem_db
from db import ledger as ledger_db
from db import submissions as sub_db
from db import users as user_db
from db import versions
from db.areas import get_area


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
        message = str(exc)
        if "`$[...]" in message and (path := _out_of_range_at(raw)) is not None:
            message = f"{message.partition(' - at ')[0]} - at `{path}`"
        raise InvalidSubmission(f"The payload is not valid: {in_words(message)}") from None
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        # msgspec raises the last two for bytes that are not UTF-8 in a string and for
        # very deep nesting.
        raise InvalidSubmission(_unreadable(raw)) from None


#: A number msgspec cannot hold: beyond a double, or an integer beyond 64 bits.
_TOO_BIG = object()


def _out_of_range_at(raw: bytes) -> str | None:
    """Where the number msgspec found out of range is, as ``$.values.kia.numerator``:
    msgspec, decoding the payload before its shape is known, names each member
    ``[...]``, which tells a district head nothing."""
    try:
        doc = json.loads(
            raw,
            parse_int=lambda t: (
                _TOO_BIG if len(t.lstrip("-")) > 20 or not -(2**63) <= int(t) < 2**64 else 0
            ),
            parse_float=lambda t: _TOO_BIG if math.isinf(float(t)) else 0,
            parse_constant=_no_constant,
        )
    except (ValueError, RecursionError):
        return None
    stack: list[tuple[str, object]] = [("$", doc)]
    while stack:
        path, node = stack.pop()
        if node is _TOO_BIG:
            return path
        if isinstance(node, dict):
            stack += [(f"{path}.{k}", v) for k, v in reversed(node.items())]
        elif isinstance(node, list):
            stack += [(f"{path}[{i}]", v) for i, v in reversed(list(enumerate(node)))]
    return None


def _no_constant(name: str) -> None:
    raise ValueError(name)


def _unreadable(raw: bytes) -> str:
    """Why a payload msgspec refused is unreadable. It refuses a lone surrogate escape
    (``"\\ud800"``), which is JSON but no text, saying the input was truncated; Python's
    decoder takes one (and, told to refuse them, nothing else msgspec refuses: NaN and
    Infinity), and so tells the two apart (on refused payloads only). Python's decoder
    also takes UTF-16 and a byte order mark, which msgspec (and the format) refuse, so
    the bytes are decoded as UTF-8 first and a BOM is named, as Windows tools write one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "The JWS payload is not JSON in UTF-8."
    if text.startswith("\ufeff"):
        return "The JWS payload starts with a byte order mark: sign JSON in UTF-8 without one."
    try:
        json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return "The JWS payload is not JSON."
    return (
        "The JWS payload escapes half of a surrogate pair (\\ud800-\\udfff alone), "
        "which is no character; sign it again with the text as it is."
    )


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
    # Blanks say nothing, nor does a zero-width space that str.strip keeps.
    reason = data.reason.strip() if data.reason is not None and shows_text(data.reason) else None
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
            f"{with_article(row.status).capitalize()} submission cannot be given the decision "
            f"{data.decision!r}.",
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
    return review_out(saved, new_status)


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
    items = [SubmissionOut(**shown_fields(r, values[r.id])) for r in rows]
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
