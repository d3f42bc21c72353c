"""Verifying compact JWS made with people's registered keys (agreements, submissions).

The algorithm is pinned to the registered key's type, never taken from the token:
an ``alg: none`` or HS256 header simply does not match and is refused.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import jwt
from jwt.api_jws import PyJWS

from api.auth.principal import Principal
from api.errors import ApiError
from api.jwk import JwkError, parse_public_jwk
from db import signing_keys as key_db

_JWS = PyJWS(options={"verify_signature": True})


class SignatureError(ApiError):
    status_code = 422
    slug = "invalid-signature"
    title = "The signature is not acceptable"


class Verified:
    """A verified JWS: its payload bytes, header and the key that signed it."""

    __slots__ = ("header", "key", "payload")

    def __init__(self, payload: bytes, header: dict[str, Any], key: key_db.SigningKey) -> None:
        self.payload = payload
        self.header = header
        self.key = key


def verify_with_key(token: str, key: key_db.SigningKey) -> tuple[bytes, dict[str, Any]]:
    """Check ``token`` against one stored key (no ownership or revocation checks)."""
    try:
        public = parse_public_jwk({k: v for k, v in key.jwk.items() if k != "kid"}).key
        header = _JWS.get_unverified_header(token)
        if header.get("alg") != key.alg:
            raise SignatureError(f"The JWS must use {key.alg} for this key.")
        payload = _JWS.decode(token, key=public, algorithms=[key.alg])
    except (jwt.PyJWTError, JwkError) as exc:
        raise SignatureError(f"The signature does not verify: {exc}") from None
    return payload, header


async def verify_signed_by(
    conn: asyncpg.Connection, token: str, caller: Principal, *, typ: str
) -> Verified:
    """Verify a JWS the caller made now with one of their own active keys."""
    if not isinstance(token, str) or token.count(".") != 2:
        raise SignatureError("Expected a compact JWS (header.payload.signature).")
    try:
        header = _JWS.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise SignatureError(f"The JWS header is unreadable: {exc}") from None
    if header.get("typ") != typ:
        raise SignatureError(f"The JWS typ must be {typ!r}.", extra={"typ": header.get("typ")})
    if header.get("alg") not in ("EdDSA", "ES256"):
        raise SignatureError("The JWS must use EdDSA or ES256.", extra={"alg": header.get("alg")})
    kid = header.get("kid")
    key = await key_db.get_key(conn, kid) if isinstance(kid, str) else None
    if key is None or key.owner_id != caller.id:
        raise SignatureError("The JWS kid is not one of your registered keys.", extra={"kid": kid})
    if key.revoked_at is not None:
        raise SignatureError("That key has been revoked.", extra={"kid": kid})
    payload, header = verify_with_key(token, key)
    return Verified(payload, header, key)
