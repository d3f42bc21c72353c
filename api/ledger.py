"""The tamper-evident ledger: what is hashed, and how a district's chain is verified.

Each district's submissions form a hash chain. Entry ``n`` stores::

    hash_n = SHA-256( prev_hash_n  ||  jws_n )      (lowercase hex)

where ``prev_hash_n`` is ``hash_{n-1}`` as its 64 lowercase hex characters encoded
as ASCII (64 bytes), ``jws_n`` is the compact JWS exactly as received (ASCII
bytes, no surrounding whitespace), ``||`` is concatenation, and ``prev_hash_1``
is 64 ``0`` characters. ``seq`` runs 1, 2, 3... without gaps, and the district's
head row records the last ``seq`` and ``hash``.

Verification walks the chain in ``seq`` order and reports the first entry where
any of these fails: the ``seq`` is the next one (``seq_gap``); ``prev_hash`` is
the previous entry's hash (``prev_hash_mismatch``); ``hash`` recomputes
(``hash_mismatch``); the JWS verifies with the registered key it names, whose kid
is still its thumbprint, which belonged to the submitter and was not revoked when
the entry was received, and whose signed ``iat`` is no further ahead of that receipt
than ingest allowed (``signature_invalid``); the stored payload and columns
equal the signed payload, as JSON (``payload_mismatch``); the stored values equal the signed
values and carry the entry's status (``values_mismatch``); the status is the one the
entry's last review decided, or "received" if none did (``status_mismatch``: returning a
report with SQL drops it from every ranking, with no record of who or why); an entry,
its values and its ``superseded`` flag are
marked superseded by exactly the later entry whose signed ``supersedes`` names it
(``superseded_mismatch``: a correction is only read after what it corrects, so this
is settled as the walk goes on, and the earliest entry at fault is named); that the
head agrees with the last entry (``head_mismatch``, or ``seq_gap`` when entries are
missing from the end); and finally that the latest values kept for scorecards and
rankings are those the stored values give (``values_mismatch``, naming the entry they
should be). Reviews and the other flags are the server's own records, not signed by
the district, so they are not part of the chain: verify checks the status against them,
not them against anything.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from dataclasses import field as default
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from api.jwk import thumbprint
from api.schemas.submissions import BrokenEntry, LedgerReport, Problem, StoredPayload
from api.settings import DEFAULT_IAT_SKEW_S
from api.signatures import SignatureError, verify_with_key
from db import ledger as ledger_db
from db import signing_keys as key_db
from db.ledger import GENESIS_HASH, ChainEntry
from db.pool import decode_json

__all__ = ["GENESIS_HASH", "entry_hash", "verify_district"]


def entry_hash(prev_hash: str, jws: str) -> str:
    """SHA-256 over the previous hash (64 hex ASCII bytes) followed by the JWS bytes."""
    return hashlib.sha256(prev_hash.encode("ascii") + jws.encode("ascii")).hexdigest()


class _Broken(Exception):
    def __init__(self, problem: Problem, detail: str) -> None:
        super().__init__(detail)
        self.problem: Problem = problem
        self.detail = detail


def _instant(value: datetime, what: str) -> datetime:
    """A stored time the key's validity is judged by. Every one the API writes has a
    zone; PostgreSQL's 'infinity' reaches Python without one, and comparing it raised
    TypeError (a 500) instead of naming the entry."""
    if value.tzinfo is None:
        raise _Broken("signature_invalid", f"{what} is not a point in time")
    return value


def _stated(value: object) -> Decimal | None:
    """A stated percentage as stored (JSON: a number, or a string for NaN or infinity,
    which no signed payload holds) as an exact decimal of its shortest form."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Broken("values_mismatch", "a stored stated_pct is not a number")
    return Decimal(repr(value))


def _same(a: Any, b: Any) -> bool:
    """Equal as JSON values. Python's ``0 == False`` and ``1 == True`` would take a
    signed count for a stored boolean put in its place."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, dict):
        return (
            isinstance(b, dict)
            and a.keys() == b.keys()
            and all(_same(v, b[k]) for k, v in a.items())
        )
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_same, a, b))
    return bool(a == b)


def _stored(text: str, problem: Problem, what: str) -> Any:
    """A stored JSON column, decoded here so that one too deeply nested to read (which
    PostgreSQL keeps, and no request stores) names its entry instead of ending the walk."""
    try:
        return decode_json(text)
    except RecursionError:
        raise _Broken(problem, f"the stored {what} nests too deeply") from None


def _check_signature(entry: ChainEntry, key: key_db.SigningKey | None) -> bytes:
    """The signed payload bytes, if the JWS verifies with the key valid when it was received."""
    if key is None:
        raise _Broken("signature_invalid", f"key {entry.kid} is not registered")
    try:  # a kid is its key's thumbprint: another public key under it was put there
        registered = thumbprint(key.jwk) == key.kid
    except (KeyError, TypeError, AttributeError):
        registered = False
    if not registered:
        raise _Broken("signature_invalid", f"key {entry.kid} is not the key registered as it")
    if key.owner_id != entry.submitter_id:
        raise _Broken("signature_invalid", "the key does not belong to the submitter")
    received = _instant(entry.received_at, "the entry's time of receipt")
    if _instant(key.created_at, "the key's registration") > received:
        raise _Broken("signature_invalid", "the key was registered after the entry")
    revoked = key.revoked_at
    if revoked is not None and _instant(revoked, "the key's revocation") <= received:
        raise _Broken("signature_invalid", "the key was revoked before the entry")
    try:
        payload, header = verify_with_key(entry.jws, key)
    except SignatureError as exc:
        raise _Broken("signature_invalid", exc.detail) from None
    if header.get("kid") != entry.kid:
        raise _Broken("signature_invalid", "the JWS names another key than the entry")
    return payload


def _check_payload(entry: ChainEntry, raw: bytes, max_skew: timedelta) -> StoredPayload:
    try:
        signed: Any = msgspec.json.decode(raw)
        claims = msgspec.convert(signed, StoredPayload)
    except (msgspec.MsgspecError, UnicodeDecodeError) as exc:  # not JSON, or not a payload
        raise _Broken("payload_mismatch", f"the signed payload is not valid: {exc}") from None
    except RecursionError:  # every payload received was read: it was changed
        raise _Broken("payload_mismatch", "the signed payload nests too deeply") from None
    if not _same(signed, _stored(entry.payload, "payload_mismatch", "payload")):
        raise _Broken("payload_mismatch", "the stored payload differs from the signed one")
    supersedes = claims.supersedes
    expected = {
        "jti": claims.jti,
        "iat": datetime.fromtimestamp(claims.iat, UTC),
        "district_code": claims.district,
        "division_id": claims.division,
        "as_of": claims.as_of,
        "note": claims.note,
        "supersedes_id": supersedes.id if supersedes else None,
        "supersede_reason": supersedes.reason if supersedes else None,
    }
    for field, value in expected.items():
        if getattr(entry, field) != value:
            raise _Broken("payload_mismatch", f"the stored {field} differs from the signed one")
    # Ingest never took an iat further ahead of its receipt than the loosest skew it ran
    # with, and the key was valid at receipt: a later iat is a JWS put there afterwards
    # (with a key perhaps revoked by then). The loosest, not today's: an operator
    # tightening the setting does not make earlier entries broken.
    if expected["iat"] - entry.received_at > max_skew:
        raise _Broken(
            "signature_invalid",
            "the JWS says it was signed (iat) after the entry was received",
        )
    return claims


#: The status each last review decision leaves (api.submissions: accept takes a received
#: report, return a received or accepted one); no review leaves it received.
_DECIDED = {None: "received", "accept": "accepted", "return": "returned"}


def _check_status(entry: ChainEntry) -> None:
    decided = _DECIDED.get(entry.decided)
    if entry.status != decided:
        raise _Broken(
            "status_mismatch",
            f"the entry is {entry.status}, but its reviews leave it {decided or 'undecided'}",
        )


def _check_values(entry: ChainEntry, claims: StoredPayload, stored_values: Any) -> None:
    if not isinstance(stored_values, dict) or set(stored_values) != set(claims.values):
        raise _Broken("values_mismatch", "the stored indicators differ from the signed ones")
    for code, value in claims.values.items():
        stored = stored_values[code]
        expected = {
            "numerator": value.numerator,
            "denominator": value.denominator,
            "stated_pct": None if value.stated_pct is None else Decimal(repr(value.stated_pct)),
            "channels": msgspec.to_builtins(value.channels),
            "district_code": entry.district_code,
            "division_id": None if entry.division_id is None else str(entry.division_id),
            "as_of": entry.as_of.isoformat(),
            "seq": entry.seq,
        }
        found = dict(stored, stated_pct=_stated(stored["stated_pct"]))
        for field, want in expected.items():
            if not _same(found.get(field), want):
                raise _Broken("values_mismatch", f"the stored {code}.{field} differs")
        if stored.get("status") != entry.status:  # what counts follows the value's copy
            raise _Broken("values_mismatch", f"the stored {code}.status differs from the entry's")


@dataclass
class _Supersessions:
    """Each entry's supersession mark, against the corrections signed later in the chain."""

    #: (seq, id, the correction recorded, what of it its values or flag say otherwise).
    marks: list[tuple[int, UUID, UUID | None, str | None]] = default(default_factory=list)
    #: Corrected entry → the entry whose signed ``supersedes`` names it.
    corrected_by: dict[UUID, UUID] = default(default_factory=dict)
    read: set[UUID] = default(default_factory=set)

    def add(self, entry: ChainEntry, stored_values: dict[str, Any]) -> None:
        """Record a verified entry (its ``supersedes_id`` is the signed one)."""
        if entry.supersedes_id is not None:
            if entry.supersedes_id not in self.read:
                raise _Broken("superseded_mismatch", "it supersedes no earlier entry of this chain")
            self.corrected_by[entry.supersedes_id] = entry.id
        corrected = entry.superseded_by is not None
        marked = {value.get("superseded") for value in stored_values.values()}
        disagree = None
        if not marked <= {corrected}:
            disagree = "its values are marked otherwise than the entry"
        elif entry.flagged_superseded != corrected:
            disagree = (
                "a correction supersedes it, but it is not flagged superseded"
                if corrected
                else "it is flagged superseded, but nothing corrects it"
            )
        self.marks.append((entry.seq, entry.id, entry.superseded_by, disagree))
        self.read.add(entry.id)

    def first_wrong(self, *, whole: bool) -> tuple[int, UUID, str] | None:
        """The earliest entry marked otherwise than the corrections say; with the chain
        read only in part (``whole`` false), a mark naming an entry not read yet may
        still be right."""
        for seq, entry_id, recorded, disagree in self.marks:
            signed = self.corrected_by.get(entry_id)
            if recorded != signed:
                if signed is not None:
                    return seq, entry_id, f"entry {signed} corrects it, but it is not marked so"
                if whole or recorded in self.read:
                    return seq, entry_id, f"marked superseded by {recorded}, which does not"
            if disagree is not None:
                return seq, entry_id, disagree
        return None


async def verify_district(conn: asyncpg.Connection, district_code: str) -> LedgerReport:
    """Recompute the district's chain; answer ok, or the first broken entry and why.

    Runs in the caller's transaction: it holds the head with ``FOR SHARE`` so that no
    append lands while the chain is read (appends wait; other districts do not).
    """
    head = await ledger_db.share_head(conn, district_code)
    recorded = await ledger_db.loosest_iat_skew(conn)
    max_skew = timedelta(seconds=DEFAULT_IAT_SKEW_S if recorded is None else recorded)
    keys: dict[str, key_db.SigningKey | None] = {}
    supersessions = _Supersessions()
    expected_seq, prev, entries = 1, GENESIS_HASH, 0

    def broken(seq: int, entry_id: Any, problem: Problem, detail: str) -> LedgerReport:
        return LedgerReport(
            district=district_code,
            ok=False,
            entries=entries,
            first_broken=BrokenEntry(seq=seq, id=entry_id, problem=problem, detail=detail),
        )

    async for entry in ledger_db.chain(conn, district_code):
        entries += 1
        try:
            if entry.seq != expected_seq:
                raise _Broken(
                    "seq_gap", f"expected seq {expected_seq}, found {entry.seq} (id {entry.id})"
                )
            if entry.prev_hash != prev:
                raise _Broken("prev_hash_mismatch", "prev_hash is not the previous entry's hash")
            if not entry.jws.isascii():  # every JWS received is: it was changed
                raise _Broken("hash_mismatch", "the JWS is not ASCII, as every JWS received is")
            if entry_hash(entry.prev_hash, entry.jws) != entry.hash:
                raise _Broken("hash_mismatch", "hash does not match prev_hash and the JWS")
            if entry.kid not in keys:
                try:
                    keys[entry.kid] = await key_db.get_key(conn, entry.kid)
                except msgspec.ValidationError:  # no key was ever registered so
                    raise _Broken(
                        "signature_invalid", f"key {entry.kid} is not the key registered as it"
                    ) from None
            raw = _check_signature(entry, keys[entry.kid])
            claims = _check_payload(entry, raw, max_skew)
            stored_values = _stored(entry.stored_values, "values_mismatch", "values")
            _check_values(entry, claims, stored_values)
            _check_status(entry)
            supersessions.add(entry, stored_values)
        except _Broken as exc:
            if earlier := supersessions.first_wrong(whole=False):
                return broken(*earlier[:2], "superseded_mismatch", earlier[2])
            seq = expected_seq if exc.problem == "seq_gap" else entry.seq
            entry_id = None if exc.problem == "seq_gap" else entry.id
            return broken(seq, entry_id, exc.problem, exc.detail)
        prev, expected_seq = entry.hash, expected_seq + 1

    last_seq = expected_seq - 1
    if head is None and entries:
        # A first append may have committed after the head was looked for: now that it
        # would be there, hold it and walk again, in a stable chain this time.
        if await ledger_db.share_head(conn, district_code) is not None:
            return await verify_district(conn, district_code)
        return broken(last_seq, None, "head_mismatch", "entries exist but the head is missing")
    if wrong := supersessions.first_wrong(whole=True):
        return broken(*wrong[:2], "superseded_mismatch", wrong[2])
    if head is not None and head.seq > last_seq:
        return broken(
            last_seq + 1, None, "seq_gap", f"the head is at seq {head.seq}; entries end earlier"
        )
    if head is not None and (head.seq != last_seq or head.hash != prev):
        return broken(head.seq, None, "head_mismatch", "the head disagrees with the last entry")
    if kept := await ledger_db.kept_mismatch(conn, district_code):
        named = kept.want_seq is not None
        return broken(
            kept.want_seq if named else kept.kept_seq,  # type: ignore[arg-type]
            kept.want_id if named else kept.kept_id,
            "values_mismatch",
            f"the {kept.basis} value of {kept.indicator_code} that scorecards read is not "
            "the one the stored values give",
        )
    return LedgerReport(district=district_code, ok=True, entries=entries, first_broken=None)
