"""Access tokens: Ed25519-signed JWTs from the server's own rotating keys.

Verification pins one algorithm and one token type and requires every claim that
makes a token bounded and addressed (PyJWT requires none by default). The key
ring lives in the database so every replica signs and verifies with the same keys.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import asyncpg
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from api.jwk import JwkError, b64url_decode, b64url_encode, ed25519_verifier, thumbprint
from api.settings import Settings
from db import server_keys as key_db

ALGORITHM = "EdDSA"
TOKEN_TYPE = "at+jwt"  # RFC 9068
REQUIRED_CLAIMS = ["exp", "iat", "sub", "aud", "iss"]
# Every claim check PyJWT makes (PyJWT 2.10+), each on explicitly: the signature is
# checked before PyJWT reads the token (``KeyRing._verify``), so PyJWT is told not to,
# and with that PyJWT turns off every check not named here.
_CLAIM_CHECKS: dict[str, Any] = {
    "verify_exp": True,
    "verify_nbf": True,
    "verify_iat": True,
    "verify_aud": True,
    "verify_iss": True,
    "verify_sub": True,
    "verify_jti": True,
    "require": REQUIRED_CLAIMS,
    "strict_aud": True,
}


class TokenError(Exception):
    """The bearer token is not acceptable; never shown to clients in detail."""


def new_server_key() -> tuple[str, str, dict[str, Any]]:
    """A fresh Ed25519 key: (kid, private PEM, public JWK)."""
    private = ed25519.Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    jwk: dict[str, Any] = {"kty": "OKP", "crv": "Ed25519", "x": b64url_encode(raw)}
    kid = thumbprint(jwk)
    jwk.update(kid=kid, alg=ALGORITHM, use="sig")
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return kid, pem, jwk


async def ensure_server_key(conn: asyncpg.Connection) -> None:
    """Create the first key on first start (once, whatever the number of replicas)."""
    async with conn.transaction():
        await key_db.lock_keys(conn)
        if not await key_db.all_keys(conn):
            await key_db.insert_key(conn, *new_server_key())


async def rotate_server_key(conn: asyncpg.Connection) -> str:
    """Add a key that signs from now on; older keys keep verifying their tokens."""
    kid, pem, jwk = new_server_key()
    await key_db.insert_key(conn, kid, pem, jwk)
    return kid


class KeyRing:
    """The keys one worker signs and verifies with, refreshed from the database."""

    #: How often a worker re-reads the keys anyway (picks up a rotation elsewhere).
    REFRESH_S = 60.0
    #: An unknown kid triggers a re-read at most this often (no DB hammering by junk).
    MISS_REFRESH_S = 5.0

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._public: dict[str, ed25519.Ed25519PublicKey] = {}
        self._verifiers: dict[str, Callable[[bytes, bytes], bool]] = {}
        self._jwks: list[dict[str, Any]] = []
        self._signing: tuple[str, ed25519.Ed25519PrivateKey] | None = None
        #: kid → Unix time a newer key replaced it: it signs nothing after (see ``_verify``).
        self._retired: dict[str, float] = {}
        self._loaded_at = 0.0
        # token → (kid, claims) of tokens that passed ``verify``, oldest first.
        self._verified: dict[str, tuple[str, dict[str, Any]]] = {}

    async def load(self, conn: asyncpg.Connection) -> None:
        keys = await key_db.all_keys(conn)
        public: dict[str, ed25519.Ed25519PublicKey] = {}
        for key in keys:
            private = serialization.load_pem_private_key(key.private_pem.encode(), None)
            assert isinstance(private, ed25519.Ed25519PrivateKey)
            public[key.kid] = private.public_key()
            if key is keys[0]:
                self._signing = (key.kid, private)
        if public.keys() != self._public.keys():
            self._verified.clear()
        self._retired = {older.kid: newer.created_at.timestamp() for newer, older in pairwise(keys)}
        self._public = public
        self._verifiers = {kid: ed25519_verifier(key) for kid, key in public.items()}
        self._jwks = [k.public_jwk for k in keys]
        self._loaded_at = time.monotonic()

    async def maybe_refresh(self, pool: asyncpg.Pool, *, missing_kid: bool = False) -> None:
        age = time.monotonic() - self._loaded_at
        if age > self.REFRESH_S or (missing_kid and age > self.MISS_REFRESH_S):
            async with pool.acquire() as conn:
                await self.load(conn)

    async def refresh_with(self, conn: asyncpg.Connection) -> None:
        """``maybe_refresh`` on a connection the caller holds: one holding a pooled
        connection must not wait for a second (as many such waits as the pool has
        connections would wait for ever)."""
        if time.monotonic() - self._loaded_at > self.REFRESH_S:
            await self.load(conn)

    def jwks(self) -> dict[str, Any]:
        return {"keys": list(self._jwks)}

    def knows(self, kid: str) -> bool:
        return kid in self._public

    def issue(self, claims: dict[str, Any], *, now: float | None = None) -> tuple[str, int]:
        """Sign an access token for ``claims`` (sub, role, scope); returns (token, ttl)."""
        if self._signing is None:
            raise RuntimeError("no server signing key loaded")
        kid, private = self._signing
        issued = int(now if now is not None else time.time())
        ttl = self.settings.access_token_ttl_s
        payload = {
            **claims,
            "iss": self.settings.jwt_issuer,
            "aud": self.settings.jwt_audience,
            "iat": issued,
            "nbf": issued,
            "exp": issued + ttl,
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(
            payload, private, algorithm=ALGORITHM, headers={"kid": kid, "typ": TOKEN_TYPE}
        )
        return token, ttl

    def verify(self, token: str) -> dict[str, Any]:
        """Return the claims of a valid token, or raise ``TokenError``.

        A token that verified before is answered from memory while it has not expired
        and its key is still in the ring: the signature and claims cannot have changed,
        and an EdDSA check per request was the largest cost of a cached report.
        """
        known = self._verified.get(token)
        if known is not None:
            kid, claims = known
            if kid in self._public and claims["exp"] > time.time() - self.settings.jwt_leeway_s:
                return claims
            del self._verified[token]
        kid, claims = self._verify(token)
        limit = self.settings.token_cache_entries
        if limit:
            while len(self._verified) >= limit:
                del self._verified[next(iter(self._verified))]
            self._verified[token] = (kid, claims)
        return claims

    def _verify(self, token: str) -> tuple[str, dict[str, Any]]:
        """The signature is checked here, with the ring's key for the token's kid and
        libsodium (the same check as every signed submission, at half OpenSSL's CPU:
        a token is checked once per worker, and a client that signs in anew sends one
        with its first report); PyJWT then checks every claim, explicitly."""
        parts = token.split(".")
        if len(parts) != 3:
            raise TokenError("malformed token")
        try:
            header = json.loads(b64url_decode(parts[0]))
            signature = b64url_decode(parts[2])
        except (JwkError, ValueError, RecursionError):
            raise TokenError("malformed token") from None
        if not isinstance(header, dict):
            raise TokenError("malformed token")
        if header.get("alg") != ALGORITHM:
            raise TokenError("unexpected algorithm")
        if header.get("typ") != TOKEN_TYPE:
            raise TokenError("unexpected token type")
        kid = str(header.get("kid"))
        verify = self._verifiers.get(kid)
        if verify is None:
            raise TokenError("unknown key id")
        if not verify(f"{parts[0]}.{parts[1]}".encode("ascii", "replace"), signature):
            raise TokenError("Signature verification failed")
        try:
            claims = jwt.decode(
                token,
                options={"verify_signature": False, **_CLAIM_CHECKS},  # checked above
                audience=self.settings.jwt_audience,
                issuer=self.settings.jwt_issuer,
                leeway=self.settings.jwt_leeway_s,
            )
        except jwt.PyJWTError as exc:
            raise TokenError(str(exc)) from exc
        # No token this server issues lives longer than the configured time: with the
        # check below, one whose key leaked and was rotated out cannot be minted (iat
        # back-dated to before the rotation) to outlive the tokens the key really signed.
        if claims["exp"] - claims["iat"] > self.settings.access_token_ttl_s:
            raise TokenError("the token lives longer than this server issues tokens for")
        # A rotated-out key verifies what it signed before the rotation, until it expires,
        # and nothing it signs later: rotating is the answer to a leaked key. Workers
        # that have not re-read the ring yet still sign with it for up to REFRESH_S.
        retired = self._retired.get(kid)
        if (
            retired is not None
            and claims["iat"] > retired + self.REFRESH_S + self.settings.jwt_leeway_s
        ):
            raise TokenError("the token's key was replaced before the token was issued")
        return kid, claims
