"""Verifying compact JWS made with people's registered keys (agreements, submissions).

The algorithm is pinned to the registered key's type, never taken from the token:
an ``alg: none`` or HS256 header simply does not match and is refused.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import jwt
import msgspec
from cryptography.hazmat.primitives.asymmetric import ed25519

from api.auth.principal import Principal
from api.errors import ApiError
from api.jwk import JwkError, b64url_decode, ed25519_verifier, parse_public_jwk
from db import signing_keys as key_db

# ES256 as PyJWT implements it (EdDSA goes to libsodium, see ``_verifier``).
_ALGORITHMS = {"ES256": jwt.get_algorithm_by_name("ES256")}


class SignatureError(ApiError):
    status_code = 422
    slug = "invalid-signature"
    title = "The signature is not acceptable"


class _Repeated(Exception):
    pass


def _refuse_repeats(pairs: list[tuple[str, Any]]) -> None:
    if len({name for name, _ in pairs}) != len(pairs):
        raise _Repeated


def _members(decoded: Any) -> int:
    """How many members the objects of a decoded JSON value hold, nested ones included."""
    count = 0
    stack = [decoded]
    while stack:
        item = stack.pop()
        if type(item) is dict:
            count += len(item)
            stack.extend(item.values())
        elif type(item) is list:
            stack.extend(item)
    return count


def repeats_a_member(raw: bytes, decoded: Any = None) -> bool:
    """Whether a JSON text (one already decoded) names a member twice in one object.

    msgspec, like most decoders, keeps the last; an auditor's decoder may keep the first
    and read other claims than the ones stored, so a signed statement must not be
    ambiguous. Given ``decoded`` (plain dicts and lists), most texts are settled by
    counting: each member of the text puts one colon outside its strings, and a repeat
    leaves the decoded objects a member short, so as many colons as decoded members
    means no repeat (4 us). Otherwise, colons in strings or a repeat, a second pass
    with Python's decoder tells (16 us)."""
    if decoded is not None and raw.count(b":") == _members(decoded):
        return False
    try:
        json.loads(raw, object_pairs_hook=_refuse_repeats)
    except _Repeated:
        return True
    return False


class Verified:
    """A verified JWS: its payload bytes, header, the key that signed it, and the
    database clock read once that key was locked (see ``lock_for_signing``)."""

    __slots__ = ("header", "key", "now", "payload")

    def __init__(
        self,
        payload: bytes,
        header: dict[str, Any],
        key: key_db.SigningKey,
        now: datetime,
    ) -> None:
        self.payload = payload
        self.header = header
        self.key = key
        self.now = now


def _segment(segment: str, name: str) -> bytes:
    """Decode one segment, refusing anything but canonical unpadded base64url."""
    try:
        return b64url_decode(segment) if segment else b""
    except JwkError:
        raise SignatureError(f"The JWS {name} is not base64url.") from None


def _read_header(token: str) -> tuple[bytes, dict[str, Any]]:
    """The protected header's bytes and what they decode to."""
    raw = _segment(token.split(".", 1)[0], "header")
    try:
        header = msgspec.json.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        raise SignatureError("The JWS header is unreadable.") from None
    if not isinstance(header, dict):
        raise SignatureError("The JWS header is unreadable.")
    return raw, header


def unverified_header(token: str) -> dict[str, Any]:
    """The protected header, read to pick the key before anything is verified."""
    return _read_header(token)[1]


# A signature check per registered key, by kid: a kid is the RFC 7638 thumbprint of its
# key, so the same kid always parses to the same key.
_VERIFIERS: dict[tuple[str, str], Callable[[bytes, bytes], bool]] = {}


def _verifier(key: key_db.SigningKey) -> Callable[[bytes, bytes], bool]:
    """``verify(signing_input, signature)`` for ``key``, with the algorithm of its type.

    EdDSA is checked with libsodium (PyNaCl), at half the CPU of OpenSSL's check through
    PyJWT and cryptography; ES256 with PyJWT's algorithm (raw r||s to DER and OpenSSL).
    """
    cached = _VERIFIERS.get((key.kid, key.alg))
    if cached is not None:
        return cached
    public = parse_public_jwk({k: v for k, v in key.jwk.items() if k != "kid"}).key
    if key.alg == "EdDSA" and isinstance(public, ed25519.Ed25519PublicKey):
        verify = ed25519_verifier(public)
    elif key.alg == "ES256":
        algorithm = _ALGORITHMS[key.alg]
        prepared = algorithm.prepare_key(public)

        def es256(message: bytes, signature: bytes) -> bool:
            return bool(algorithm.verify(message, prepared, signature))

        verify = es256
    else:
        raise SignatureError(f"Keys of algorithm {key.alg!r} cannot verify.")
    if len(_VERIFIERS) >= 4096:
        _VERIFIERS.pop(next(iter(_VERIFIERS)))
    _VERIFIERS[(key.kid, key.alg)] = verify
    return verify


def verify_with_key(
    token: str, key: key_db.SigningKey, header: dict[str, Any] | None = None
) -> tuple[bytes, dict[str, Any]]:
    """Check ``token`` against one stored key (no ownership or revocation checks).

    The compact form is split and decoded here: PyJWT's decoder checks base64 one
    character at a time in Python, which cost two thirds as much as the Ed25519 check
    itself, and accepts extensions this service does not (``crit``, unencoded ``b64``).
    """
    try:
        verify = _verifier(key)
    except (jwt.PyJWTError, JwkError) as exc:
        raise SignatureError(f"The signature does not verify: {exc}") from None
    header = header if header is not None else unverified_header(token)
    if header.get("alg") != key.alg:
        raise SignatureError(f"The JWS must use {key.alg} for this key.")
    if "crit" in header or "b64" in header:
        raise SignatureError("The JWS uses header extensions (crit, b64) that are not accepted.")
    signing_input, dot, signature = token.rpartition(".")
    header_segment, dot2, payload_segment = signing_input.partition(".")
    if not dot or not dot2 or "." in payload_segment:
        raise SignatureError("Expected a compact JWS (header.payload.signature).")
    _segment(header_segment, "header")  # the signing input must be base64url throughout
    payload = _segment(payload_segment, "payload")
    if not verify(signing_input.encode("ascii"), _segment(signature, "signature")):
        raise SignatureError("The signature does not verify: Signature verification failed")
    return payload, header


def same_type(given: object, typ: str) -> bool:
    """Whether a header's ``typ`` names ``typ``: a media type, so letter case does not
    count, and one without a ``/`` is read with ``application/`` before it (RFC 7515
    4.1.9); a client writing ``application/kinerja-submission+jwt`` means the same."""
    if not isinstance(given, str):
        return False
    given = given.lower()
    return (given if "/" in given else "application/" + given) == "application/" + typ


#: What a signed statement's header holds; anything else is refused (``checked_header``).
_HEADER_MEMBERS = frozenset({"alg", "typ", "kid"})


def checked_header(token: str, typ: str) -> tuple[dict[str, Any], str | None]:
    """The header of a compact JWS of the expected type and an allowed algorithm, and its kid."""
    if not isinstance(token, str) or token.count(".") != 2:
        raise SignatureError("Expected a compact JWS (header.payload.signature).")
    raw, header = _read_header(token)
    if not same_type(header.get("typ"), typ):
        raise SignatureError(f"The JWS typ must be {typ!r}.", extra={"typ": header.get("typ")})
    if header.get("alg") not in ("EdDSA", "ES256"):
        raise SignatureError("The JWS must use EdDSA or ES256.", extra={"alg": header.get("alg")})
    if "crit" in header or "b64" in header:
        raise SignatureError("The JWS uses header extensions (crit, b64) that are not accepted.")
    # Refused as in a payload: a decoder keeping the first ``alg`` of
    # {"alg":"none","alg":"EdDSA"} reads another header than this one. Here, on intake,
    # not in ``unverified_header``: entries stored before the rule still verify.
    if repeats_a_member(raw, header):
        raise SignatureError("The JWS header names a member twice.")
    if others := sorted(header.keys() - _HEADER_MEMBERS):
        # As a body's unknown fields are: a key's location (jku, x5u, jwk) or anything
        # else would be kept in the ledger for good, and never used. Entries stored
        # before the rule still verify (the ledger reads ``unverified_header``).
        raise SignatureError(
            f"The JWS header may hold only alg, typ and kid, not {', '.join(others)}.",
            extra={"members": others},
        )
    kid = header.get("kid")
    # A kid PostgreSQL cannot hold as text (a NUL) names no key: looked up, it failed as
    # bad text (400) where any other unknown kid is an invalid signature (422).
    return header, kid if isinstance(kid, str) and "\x00" not in kid else None


def check_holder(
    kid: str | None, owner_id: UUID | None, revoked_at: datetime | None, caller: Principal
) -> None:
    """The key must be the caller's own (``owner_id`` None: no such key) and not revoked."""
    if owner_id is None or owner_id != caller.id:
        raise SignatureError("The JWS kid is not one of your registered keys.", extra={"kid": kid})
    if revoked_at is not None:
        raise SignatureError("That key has been revoked.", extra={"kid": kid})


async def verify_signed_by(
    conn: asyncpg.Connection, token: str, caller: Principal, *, typ: str
) -> Verified:
    """Verify a JWS the caller made now with one of their own active keys; the key stays
    share-locked until commit, so it cannot be revoked under this transaction."""
    header, kid = checked_header(token, typ)
    found = await key_db.lock_for_signing(conn, kid) if kid is not None else None
    key = found[0] if found else None
    check_holder(kid, key.owner_id if key else None, key.revoked_at if key else None, caller)
    assert found is not None
    key, now = found
    payload, header = verify_with_key(token, key, header)
    return Verified(payload, header, key, now)


# Registered keys by kid, per worker, for checks made before any lock is taken. A kid is
# its key's thumbprint and a revocation is never undone, so a copy can only be behind on
# a revocation, which the locked check that follows (``check_holder`` again) catches.
_KNOWN_KEYS: dict[str, key_db.SigningKey] = {}


async def verify_before_locking(
    pool: asyncpg.Pool, token: str, caller: Principal, *, typ: str
) -> tuple[bytes, key_db.SigningKey]:
    """Verify a JWS with the worker's copy of the caller's key, without a transaction.

    The caller must still lock the key and call ``check_holder`` before storing anything.
    """
    header, kid = checked_header(token, typ)
    key = _KNOWN_KEYS.get(kid) if kid is not None else None
    if key is None and kid is not None:
        key = await key_db.get_key(pool, kid)
        if key is not None:
            if len(_KNOWN_KEYS) >= 4096:
                _KNOWN_KEYS.pop(next(iter(_KNOWN_KEYS)))
            _KNOWN_KEYS[kid] = key
    check_holder(kid, key.owner_id if key else None, key.revoked_at if key else None, caller)
    assert key is not None
    payload, _ = verify_with_key(token, key, header)
    return payload, key


async def revoked_since(
    pool: asyncpg.Pool, token: str, caller: Principal, *, typ: str
) -> SignatureError | None:
    """The refusal of a key the worker's copy shows as active but that has been revoked
    since (read again, and the copy updated), for a check that failed after using it."""
    try:
        _, kid = checked_header(token, typ)
    except SignatureError:
        return None
    cached = _KNOWN_KEYS.get(kid) if kid is not None else None
    if kid is None or cached is None or cached.revoked_at is not None:
        return None
    fresh = await key_db.get_key(pool, kid)
    if fresh is None or fresh.revoked_at is None:
        return None
    _KNOWN_KEYS[kid] = fresh
    try:
        check_holder(kid, fresh.owner_id, fresh.revoked_at, caller)
    except SignatureError as exc:
        return exc
    return None


def check_iat(
    iat: int,
    now: datetime,
    *,
    max_age_s: int,
    max_skew_s: int,
    ahead: type[ApiError],
    too_old: type[ApiError],
    again: str,
) -> None:
    """A signed ``iat`` within [now - max age, now + skew], else ``ahead`` or ``too_old``
    (each signed document has its own problem types); ``again`` ends the old one's text."""
    current = int(now.timestamp())
    if iat > current + max_skew_s:
        raise ahead(
            f"The iat is ahead of the server clock by more than {max_skew_s} s; "
            "check the device clock and sign again.",
            extra={"iat": iat, "server_time": current},
        )
    if current - iat > max_age_s:
        raise too_old(
            f"The iat is older than {max_age_s} s; {again}.",
            extra={"iat": iat, "server_time": current},
        )
