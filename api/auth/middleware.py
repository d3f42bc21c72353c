"""Bearer-token authentication and the permission check for every route.

The token proves who the caller is; their role, scope and whether they are still
active come from the database, through the worker's change feed: every user change is
notified at commit, so deactivating a user (or changing their role) takes effect on
every replica within milliseconds, without a query per request.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from uuid import UUID

import asyncpg
import msgspec
from litestar.types import ASGIApp, Receive, Scope, Send

from api.auth.principal import Principal
from api.auth.tokens import KeyRing, TokenError
from api.authz import PUBLIC, authorize, declared_permission
from api.change_feed import ChangeFeed
from api.errors import Unauthorized
from db.users import principal_row

_CHALLENGE = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


def _bearer(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            text = value.decode("latin-1")
            scheme, _, token = text.partition(" ")
            return token.strip() if scheme.lower() == "bearer" and token.strip() else None
    return None


@lru_cache(maxsize=4096)  # the same few thousand callers, request after request
def _user_id(subject: str) -> UUID:
    return UUID(subject)


async def authenticate(app_state: Any, token: str) -> Principal:
    """Resolve a bearer token to an active principal, or raise 401."""
    ring: KeyRing = app_state.key_ring
    pool: asyncpg.Pool = app_state.pool
    try:
        claims = ring.verify(token)
    except TokenError as exc:
        if "unknown key id" in str(exc):
            await ring.maybe_refresh(pool, missing_kid=True)
            try:
                claims = ring.verify(token)
            except TokenError:
                raise Unauthorized("The token is not valid.", headers=_CHALLENGE) from None
        else:
            raise Unauthorized("The token is not valid.", headers=_CHALLENGE) from None
    try:
        user_id = _user_id(str(claims["sub"]))
    except ValueError:
        raise Unauthorized("The token is not valid.", headers=_CHALLENGE) from None
    feed: ChangeFeed | None = app_state.change_feed
    if feed is None or (principal := feed.principal(user_id)) is None:
        generation = feed.generation() if feed is not None else 0
        async with pool.acquire() as conn:
            row = await principal_row(conn, user_id)
        if row is None or not row.pop("active"):
            raise Unauthorized("The account is missing or deactivated.", headers=_CHALLENGE)
        principal = msgspec.convert(row, Principal)
        if feed is not None:
            feed.remember(principal, generation)
    if claims.get("gen", 0) != principal.token_generation:
        raise Unauthorized(
            "The token was issued before the account was deactivated or its password set.",
            headers=_CHALLENGE,
        )
    return principal


def still_admitted(
    caller: Principal,
    *,
    found: bool,
    active: bool,
    token_generation: int,
    role: str,
    area_code: str,
    division_id: UUID | None,
) -> None:
    """Refuse a request admitted as ``caller`` whose account changed before its write:
    a report waits for its batch, or for its district's ledger head, after the check
    that admitted it, and must not be stored as received from an account already
    deactivated, given a new password, or moved to another role or area (401: sign in
    again, then send it again; it is checked anew)."""
    if not found or not active or token_generation != caller.token_generation:
        raise Unauthorized(
            "The account was deactivated or its password set while this report waited; "
            "nothing was stored.",
            headers=_CHALLENGE,
        )
    if (role, area_code, division_id) != (caller.role, caller.area_code, caller.division_id):
        raise Unauthorized(
            "The account's role or area changed while this report waited; nothing was "
            "stored. Sign in again and send it again.",
            headers=_CHALLENGE,
        )


async def admit(scope: Scope, permission: str | None) -> Principal | None:
    """The caller of a request to a route declaring ``permission``, or raise 401/403:
    the one check every route passes, from this middleware or the submission lane
    (``api.submission_lane``). None only for a public route called without a token."""
    token = _bearer(scope)
    principal = None
    if token is not None:
        litestar_app = scope["litestar_app"]
        await litestar_app.state.key_ring.maybe_refresh(litestar_app.state.pool)
        principal = await authenticate(litestar_app.state, token)
        scope["user"] = principal
    authorize(principal, permission)  # no token: 401 where one is needed
    return principal


def auth_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        handler = scope.get("route_handler")
        permission = declared_permission(handler) if handler is not None else None
        if scope["type"] == "http" and permission != PUBLIC and scope.get("method") != "OPTIONS":
            await admit(scope, permission)
        await app(scope, receive, send)

    return middleware
