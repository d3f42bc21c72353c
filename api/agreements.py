"""Performance agreements: drafting, two-party signing, amendments and the cascade.

Parties are offices (an area, or a division of a district) with the official who
holds them at signing time, not fixed ranks: whoever holds the second party's office
signs first, then whoever holds the first party's. A version that anyone has signed
never changes; an amendment is a new version of the same lineage.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from api import authz
from api.agreement_document import SIGNATURE_TYP, canonical_document, document_sha256
from api.auth.principal import Principal
from api.errors import ApiError, Conflict, Forbidden, NotFound, Unprocessable, with_article
from api.schemas.agreements import (
    Agreement,
    AgreementCreate,
    AgreementPatch,
    AmendmentCreate,
    Closed,
    CloseIn,
    FirstPartyIn,
    Party,
    SecondPartyIn,
    SignatureOut,
    SignaturePayload,
    TargetIn,
    TargetOut,
)
from api.schemas.agreements import Amendment as AmendmentOut
from api.schemas.patterns import in_words
from api.settings import Settings
from api.signatures import SignatureError, check_iat, repeats_a_member, verify_signed_by
from db import agreements as agreement_db
from db import areas as area_db
from db import divisions as division_db
from db import indicators as indicator_db
from db import users as user_db
from db import versions

#: Who may draft (the first party) each level.
FIRST_PARTY_ROLE = {
    "national_province": "ministry_monitor",
    "province_district": "province_head",
    "district_division": "district_head",
}


class NotOpen(ApiError):
    status_code = 409
    slug = "agreement-not-open"
    title = "The agreement version cannot change"


class SigningOrder(ApiError):
    status_code = 409
    slug = "signing-order"
    title = "Signatures out of order"


class AlreadySigned(ApiError):
    status_code = 409
    slug = "already-signed"
    title = "That party has already signed"


class NotAParty(ApiError):
    """A forbidden action inside the caller's scope (they see the agreement): 403."""

    status_code = 403
    slug = "not-a-party"
    title = "The signer does not hold either party's office"


class DocumentMismatch(ApiError):
    status_code = 422
    slug = "document-mismatch"
    title = "The signature is over another document"


class InvalidTargets(ApiError):
    status_code = 422
    slug = "invalid-targets"
    title = "The targets are not acceptable"


# -- reading -----------------------------------------------------------------------------


def scope_filter(caller: Principal) -> tuple[str, str, UUID, UUID | None]:
    kind = {
        "admin": "national",
        "ministry_monitor": "national",
        "province_head": "province",
        "province_monitor": "province",
        "region_coordinator": "region",
        "district_head": "district",
        "division_head": "division",
    }.get(caller.role, "none")
    return kind, caller.area_code, caller.id, caller.division_id


async def visible(
    conn: asyncpg.Connection, caller: Principal, row: agreement_db.AgreementRow
) -> bool:
    if authz.is_national(caller):
        return True
    if caller.role == "division_head":
        return row.second_division_id is not None and row.second_division_id == caller.division_id
    if caller.role in ("province_head", "province_monitor") and row.first_area == caller.area_code:
        return True
    return await authz.area_in_scope(conn, caller, row.second_area, year=row.year)


async def load_visible(
    conn: asyncpg.Connection, caller: Principal, agreement_id: UUID, *, for_update: bool = False
) -> agreement_db.AgreementRow:
    row = await agreement_db.get_agreement(conn, agreement_id, for_update=for_update)
    if row is None or not await visible(conn, caller, row):
        raise NotFound("No such agreement.")
    return row


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


def _targets_out(targets: list[agreement_db.TargetRow]) -> list[TargetOut]:
    out = []
    for t in targets:
        quarters = [t.q1, t.q2, t.q3, t.q4]
        out.append(
            TargetOut(
                indicator=t.indicator_code,
                annual=float(t.annual),
                quarterly=None
                if all(q is None for q in quarters)
                else [float(q or 0) for q in quarters],
                weight=_float(t.weight),
            )
        )
    return out


def _party(row: agreement_db.AgreementRow, which: str) -> Party:
    if which == "first":
        return Party(
            area_code=row.first_area,
            division_id=None,
            official=row.first_official,
            title=row.first_title,
            acting=row.first_acting,
        )
    return Party(
        area_code=row.second_area,
        division_id=row.second_division_id,
        official=row.second_official,
        title=row.second_title,
        acting=row.second_acting,
    )


async def to_out(conn: asyncpg.Connection, row: agreement_db.AgreementRow) -> Agreement:
    targets = (await agreement_db.targets_of(conn, [row.id]))[row.id]
    signatures = await agreement_db.signatures_of(conn, row.id)
    return Agreement(
        id=row.id,
        lineage_id=row.lineage_id,
        version=row.version,
        year=row.year,
        level=row.level,
        status=row.status,
        first_party=_party(row, "first"),
        second_party=_party(row, "second"),
        targets=_targets_out(targets),
        amendment=None
        if row.amendment_of is None
        else AmendmentOut(
            of=row.amendment_of, reason=row.amendment_reason or "", note=row.amendment_note
        ),
        document_sha256=row.document_sha256,
        signatures=[
            SignatureOut(
                party=s.party,
                signer_id=s.signer_id,
                kid=s.kid,
                document_sha256=s.document_sha256,
                signed_at=s.signed_at,
                jws=s.jws,
            )
            for s in signatures
        ],
        created_at=row.created_at,
        activated_at=row.activated_at,
        ended_at=row.ended_at,
        closed=None
        if row.closed_by is None
        else Closed(by=row.closed_by, reason=row.close_reason or ""),
    )


async def many_out(
    conn: asyncpg.Connection, rows: list[agreement_db.AgreementRow]
) -> list[Agreement]:
    return [await to_out(conn, r) for r in rows]


# -- validation --------------------------------------------------------------------------


def _dec(value: float, places: str = "0.01") -> Decimal:
    return Decimal(str(value)).quantize(Decimal(places), rounding=ROUND_HALF_EVEN)


async def check_targets(conn: asyncpg.Connection, targets: list[TargetIn]) -> list[tuple[Any, ...]]:
    """Validate targets against the catalogue; return rows with normalised weights."""
    catalogue = {i.code: i for i in await indicator_db.list_indicators(conn)}
    seen: set[str] = set()
    weights = [t.weight for t in targets]
    if any(w is None for w in weights) and any(w is not None for w in weights):
        raise InvalidTargets("Give a weight to every target or to none.")
    total = sum(w for w in weights if w is not None)
    rows: list[tuple[Any, ...]] = []
    for t in targets:
        indicator = catalogue.get(t.indicator)
        if indicator is None:
            raise InvalidTargets(
                f"Unknown indicator {t.indicator!r}.", extra={"indicator": t.indicator}
            )
        if t.indicator in seen:
            raise InvalidTargets(f"{t.indicator} appears twice.", extra={"indicator": t.indicator})
        seen.add(t.indicator)
        # Milestones too: a lower-is-better indicator's TW I may lie above its annual target.
        if indicator.unit == "percent" and max([t.annual, *(t.quarterly or ())]) > 100:
            raise InvalidTargets(
                f"{t.indicator}: a coverage target or milestone cannot exceed 100%.",
                extra={"indicator": t.indicator},
            )
        quarters: list[Decimal | None] = [None, None, None, None]
        if t.quarterly is not None:
            steps = list(t.quarterly)
            ordered = (
                steps == sorted(steps)
                if indicator.polarity == "higher"
                else steps == sorted(steps, reverse=True)
            )
            if not ordered:
                direction = "decrease" if indicator.polarity == "higher" else "increase"
                raise InvalidTargets(
                    f"{t.indicator}: quarterly milestones must not {direction}.",
                    extra={"indicator": t.indicator},
                )
            if _dec(steps[3]) != _dec(t.annual):
                raise InvalidTargets(
                    f"{t.indicator}: the TW IV milestone must equal the annual target.",
                    extra={"indicator": t.indicator},
                )
            quarters = [_dec(q) for q in steps]
        weight = None if t.weight is None else _dec(t.weight / total, "0.000001")
        if weight is not None and weight <= 0:
            raise InvalidTargets(
                f"{t.indicator}: the weight is too small next to the others (it rounds to 0).",
                extra={"indicator": t.indicator},
            )
        rows.append((t.indicator, _dec(t.annual), *quarters, weight))
    return rows


def _target_dicts(rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
    return [
        {
            "indicator": r[0],
            "annual": r[1],
            "quarterly": None if all(q is None for q in r[2:6]) else list(r[2:6]),
            "weight": r[6],
        }
        for r in rows
    ]


def _stored_target_rows(targets: list[agreement_db.TargetRow]) -> list[tuple[Any, ...]]:
    return [(t.indicator_code, t.annual, t.q1, t.q2, t.q3, t.q4, t.weight) for t in targets]


def _document_for(fields: dict[str, Any], target_rows: list[tuple[Any, ...]]) -> bytes:
    amendment = None
    if fields.get("amendment_of") is not None:
        amendment = {
            "of": str(fields["amendment_of"]),
            "reason": fields["amendment_reason"],
            "note": fields.get("amendment_note"),
        }
    return canonical_document(
        agreement_id=fields["id"],
        lineage_id=fields["lineage_id"],
        version=fields["version"],
        year=fields["year"],
        level=fields["level"],
        first_party={
            "area_code": fields["first_area"],
            "division_id": None,
            "official": fields["first_official"],
            "title": fields.get("first_title"),
            "acting": fields.get("first_acting"),
        },
        second_party={
            "area_code": fields["second_area"],
            "division_id": None
            if fields.get("second_division_id") is None
            else str(fields["second_division_id"]),
            "official": fields["second_official"],
            "title": fields.get("second_title"),
            "acting": fields.get("second_acting"),
        },
        targets=_target_dicts(target_rows),
        amendment=amendment,
    )


async def document_of(conn: asyncpg.Connection, row: agreement_db.AgreementRow) -> bytes:
    """Rebuild the canonical bytes of a stored version (they hash to its document_sha256)."""
    targets = (await agreement_db.targets_of(conn, [row.id]))[row.id]
    return _document_for(msgspec.structs.asdict(row), _stored_target_rows(targets))


async def _second_party_office(
    conn: asyncpg.Connection, caller: Principal, level: str, party: SecondPartyIn, year: int
) -> tuple[str, UUID | None]:
    """Resolve and check the second party's office for the caller's level."""
    if level == "district_division":
        if party.division_id is None:
            raise Unprocessable("A division agreement names second_party.division_id.")
        division = await division_db.get_division(conn, party.division_id)
        if division is None or division.district_code != caller.area_code:
            raise NotFound("No such division in your district.")
        if party.area_code not in (None, caller.area_code):
            raise Unprocessable("second_party.area_code must be the division's district.")
        return caller.area_code, division.id
    if party.division_id is not None:
        raise Unprocessable("Only a division agreement names a division_id.")
    if party.area_code is None:
        raise Unprocessable("second_party.area_code is required.")
    kind = await area_db.area_kind(conn, party.area_code)
    wanted = "province" if level == "national_province" else "district"
    if kind != wanted:
        raise Unprocessable(f"The second party of a {level} agreement is a {wanted}.")
    if not await authz.area_in_scope(conn, caller, party.area_code, year=year):
        raise NotFound("No such district in your province.")
    return party.area_code, None


# -- writing -----------------------------------------------------------------------------


async def create(conn: asyncpg.Connection, caller: Principal, data: AgreementCreate) -> Agreement:
    if FIRST_PARTY_ROLE[data.level] != caller.role:
        raise Forbidden(
            f"A {data.level} agreement is drafted by the {FIRST_PARTY_ROLE[data.level]}."
        )
    second_area, division_id = await _second_party_office(
        conn, caller, data.level, data.second_party, data.year
    )
    existing = await agreement_db.open_or_active_for_office(
        conn, data.year, second_area, division_id
    )
    if existing is not None:
        raise Conflict(
            f"That office already has {with_article(existing.status)} agreement for {data.year}; "
            "amend it instead.",
            extra={"agreement_id": str(existing.id)},
        )
    target_rows = await check_targets(conn, data.targets)
    me = await user_db.get_user(conn, caller.id)
    assert me is not None
    first = data.first_party or FirstPartyIn()
    agreement_id = uuid.uuid4()
    fields: dict[str, Any] = {
        "id": agreement_id,
        "lineage_id": agreement_id,
        "version": 1,
        "year": data.year,
        "level": data.level,
        "first_area": "ID" if data.level == "national_province" else caller.area_code,
        "first_official": first.official or me.full_name,
        "first_title": _given(first.title),
        "first_acting": _given(first.acting),
        "second_area": second_area,
        "second_division_id": division_id,
        "second_official": data.second_party.official,
        "second_title": _given(data.second_party.title),
        "second_acting": data.second_party.acting,
        "amendment_of": None,
        "amendment_reason": None,
        "amendment_note": None,
        "created_by": caller.id,
    }
    fields["document_sha256"] = document_sha256(_document_for(fields, target_rows))
    await agreement_db.insert_agreement(conn, fields)
    await agreement_db.replace_targets(conn, agreement_id, target_rows)
    await versions.bump(conn, second_area)
    row = await agreement_db.get_agreement(conn, agreement_id)
    assert row is not None
    return await to_out(conn, row)


def _is_first_party(caller: Principal, row: agreement_db.AgreementRow) -> bool:
    if caller.role != FIRST_PARTY_ROLE[row.level]:
        return False
    return row.level == "national_province" or caller.area_code == row.first_area


def _is_second_party(caller: Principal, row: agreement_db.AgreementRow) -> bool:
    if row.level == "national_province":
        return caller.role == "province_head" and caller.area_code == row.second_area
    if row.level == "province_district":
        return caller.role == "district_head" and caller.area_code == row.second_area
    return caller.role == "division_head" and caller.division_id == row.second_division_id


def _given(value: str | msgspec.UnsetType | None) -> str | None:
    return None if value is msgspec.UNSET else value


def _apply_parties(
    fields: dict[str, Any], first: FirstPartyIn | None, second: SecondPartyIn | None
) -> None:
    """Merge an edit or amendment's parties into ``fields``: a title left out is kept."""
    if first is not None:
        if first.official is not None:
            fields["first_official"] = first.official
            fields["first_acting"] = _given(first.acting)
        elif first.acting is not msgspec.UNSET:
            fields["first_acting"] = first.acting
        if first.title is not msgspec.UNSET:
            fields["first_title"] = first.title
    if second is not None:
        if (second.area_code not in (None, fields["second_area"])) or (
            second.division_id not in (None, fields["second_division_id"])
        ):
            raise Unprocessable("The second party's office cannot change; draft a new agreement.")
        fields["second_official"] = second.official
        if second.title is not msgspec.UNSET:
            fields["second_title"] = second.title
        fields["second_acting"] = second.acting


async def patch(
    conn: asyncpg.Connection, caller: Principal, agreement_id: UUID, data: AgreementPatch
) -> Agreement:
    row = await load_visible(conn, caller, agreement_id, for_update=True)
    if not _is_first_party(caller, row):
        raise Forbidden("Only the first party's office edits its drafts.")
    if row.status != "draft" or await agreement_db.signatures_of(conn, row.id):
        raise NotOpen(f"This version is {row.status}; a signed version never changes.")
    fields = msgspec.structs.asdict(row)
    _apply_parties(fields, data.first_party, data.second_party)
    if data.targets is not None:
        target_rows = await check_targets(conn, data.targets)
    else:
        target_rows = _stored_target_rows((await agreement_db.targets_of(conn, [row.id]))[row.id])
    fields["document_sha256"] = document_sha256(_document_for(fields, target_rows))
    changes = {
        k: fields[k]
        for k in (
            "first_official",
            "first_title",
            "first_acting",
            "second_official",
            "second_title",
            "second_acting",
            "document_sha256",
        )
    }
    await agreement_db.update_agreement(conn, row.id, changes)
    await agreement_db.replace_targets(conn, row.id, target_rows)
    await versions.bump(conn, row.second_area)
    updated = await agreement_db.get_agreement(conn, row.id)
    assert updated is not None
    return await to_out(conn, updated)


async def discard(conn: asyncpg.Connection, caller: Principal, agreement_id: UUID) -> None:
    """A draft nobody has signed is only a proposal: its first party may drop it (one made
    in error, or an amendment that would otherwise hold its lineage open for ever). What
    either party signed is kept."""
    row = await load_visible(conn, caller, agreement_id, for_update=True)
    if not _is_first_party(caller, row):
        raise Forbidden("Only the first party's office discards its drafts.")
    if row.status != "draft" or not await agreement_db.delete_draft(conn, row.id):
        raise NotOpen(f"This version is {row.status}; what was signed is kept.")
    await versions.bump(conn, row.second_area)


class StatementInFuture(ApiError):
    status_code = 422
    slug = "statement-iat-in-future"
    title = "The signature statement is dated in the future"


class StatementTooOld(ApiError):
    status_code = 422
    slug = "statement-iat-too-old"
    title = "The signature statement was made too long ago"


async def sign(
    conn: asyncpg.Connection, caller: Principal, agreement_id: UUID, jws: str, settings: Settings
) -> Agreement:
    row = await load_visible(conn, caller, agreement_id, for_update=True)
    if _is_second_party(caller, row):
        party = "second"
    elif _is_first_party(caller, row):
        party = "first"
    else:  # before the statement: whatever they sent, this is not theirs to sign
        raise NotAParty("You hold neither party's office for this agreement.")
    verified = await verify_signed_by(conn, jws, caller, typ=SIGNATURE_TYP)
    try:
        payload = msgspec.json.decode(verified.payload, type=SignaturePayload)
    except msgspec.DecodeError as exc:
        raise SignatureError(
            f"The signed payload is not a signature statement: {in_words(str(exc))}"
        ) from None
    except (UnicodeDecodeError, RecursionError):  # msgspec: not UTF-8 / nested too deep
        raise SignatureError("The signed payload is not a JSON signature statement.") from None
    if repeats_a_member(verified.payload):
        raise SignatureError("The signed statement names a member twice; sign it again.")
    check_iat(
        payload.iat,
        datetime.now(UTC),
        max_age_s=settings.agreement_signature_max_age_s,
        max_skew_s=settings.submission_iat_max_skew_s,  # the same clocks
        ahead=StatementInFuture,
        too_old=StatementTooOld,
        again="sign the document again",
    )
    if payload.agreement_id != row.id or payload.party != party:
        raise DocumentMismatch("The statement names another agreement or party.")
    if payload.document_sha256 != row.document_sha256:
        raise DocumentMismatch(
            "The signature is over another version of the document.",
            extra={"expected_sha256": row.document_sha256},
        )
    if row.status not in ("draft", "signed_by_second"):
        raise NotOpen(f"This version is {row.status}.")
    if party == "first" and row.status == "draft":
        raise SigningOrder("The second party signs first.")
    if party == "second" and row.status != "draft":
        raise AlreadySigned("The second party has already signed.")
    stored = await agreement_db.insert_signature(
        conn, row.id, party, caller.id, verified.key.kid, jws, row.document_sha256
    )
    if not stored:
        raise AlreadySigned(f"The {party} party has already signed.")
    now = datetime.now(UTC)
    if party == "second":
        await agreement_db.update_agreement(conn, row.id, {"status": "signed_by_second"})
    else:
        if row.amendment_of is not None:
            await agreement_db.update_agreement(
                conn, row.amendment_of, {"status": "superseded", "ended_at": now}
            )
        await agreement_db.update_agreement(conn, row.id, {"status": "active", "activated_at": now})
    await versions.bump(conn, row.second_area)
    updated = await agreement_db.get_agreement(conn, row.id)
    assert updated is not None
    return await to_out(conn, updated)


async def _active_for_first_party(
    conn: asyncpg.Connection,
    caller: Principal,
    agreement_id: UUID,
    verb: tuple[str, str],
    pending_says: str,
) -> agreement_db.AgreementRow:
    """The active version, locked, for its first party's office to amend or close: not
    while an amendment of it is being signed (409, naming it)."""
    row = await load_visible(conn, caller, agreement_id, for_update=True)
    if not _is_first_party(caller, row):
        raise Forbidden(f"Only the first party's office {verb[0]} an agreement.")
    if row.status != "active":
        raise NotOpen(f"Only an active agreement is {verb[1]}; this version is {row.status}.")
    if (pending := await agreement_db.open_version(conn, row.lineage_id)) is not None:
        raise Conflict(pending_says, extra={"agreement_id": str(pending.id)})
    return row


async def close(
    conn: asyncpg.Connection, caller: Principal, agreement_id: UUID, data: CloseIn
) -> Agreement:
    """End an active agreement now (its first party's office): from then on it no longer
    applies, as an amended version stops applying when its amendment is signed."""
    row = await _active_for_first_party(
        conn,
        caller,
        agreement_id,
        ("closes", "closed"),
        "An amendment of this agreement is being signed: finish it (or discard an unsigned "
        "draft), then close the version in force.",
    )
    await agreement_db.update_agreement(
        conn,
        row.id,
        {
            "status": "closed",
            "ended_at": datetime.now(UTC),
            "closed_by": caller.id,
            "close_reason": data.reason,
        },
    )
    await versions.bump(conn, row.second_area)
    updated = await agreement_db.get_agreement(conn, row.id)
    assert updated is not None
    return await to_out(conn, updated)


async def amend(
    conn: asyncpg.Connection, caller: Principal, agreement_id: UUID, data: AmendmentCreate
) -> Agreement:
    row = await _active_for_first_party(
        conn, caller, agreement_id, ("amends", "amended"), "An amendment is already being signed."
    )
    latest = max(v.version for v in await agreement_db.versions(conn, row.lineage_id))
    fields = msgspec.structs.asdict(row)
    for key in ("created_at", "updated_at", "activated_at", "ended_at", "status"):
        fields.pop(key)
    _apply_parties(fields, data.first_party, data.second_party)
    if data.targets is not None:
        target_rows = await check_targets(conn, data.targets)
    else:
        target_rows = _stored_target_rows((await agreement_db.targets_of(conn, [row.id]))[row.id])
    new_id = uuid.uuid4()
    fields.update(
        id=new_id,
        version=latest + 1,
        amendment_of=row.id,
        amendment_reason=data.reason,
        amendment_note=data.note,
        created_by=caller.id,
    )
    fields["document_sha256"] = document_sha256(_document_for(fields, target_rows))
    await agreement_db.insert_agreement(conn, fields)
    await agreement_db.replace_targets(conn, new_id, target_rows)
    await versions.bump(conn, row.second_area)
    created = await agreement_db.get_agreement(conn, new_id)
    assert created is not None
    return await to_out(conn, created)
