"""Identity operations behind the routes: logging in, managing users and keys.

Routes stay thin: they parse, call one of these, and shape the answer. Scope and
role rules come from ``api.authz``; SQL from ``db``.
"""

from __future__ import annotations

import asyncio
import math
import secrets
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg

from api import authz
from api.auth.passwords import DUMMY_HASH, hash_password, verify_password
from api.auth.principal import Principal
from api.auth.tokens import KeyRing
from api.errors import (
    ApiError,
    Conflict,
    Forbidden,
    NotFound,
    TooManyRequests,
    Unprocessable,
    with_article,
)
from api.jwk import JwkError, parse_public_jwk
from api.schemas.identity import (
    ServiceAccountCreate,
    ServiceAccountCreated,
    SigningKeyOut,
    TokenRequest,
    TokenResponse,
    User,
    UserCreate,
    UserPatch,
)
from api.settings import Settings
from db import areas as area_db
from db import regions as region_db
from db import signing_keys as key_db
from db import throttle
from db import users as user_db


class InvalidCredentials(ApiError):
    status_code = 401
    slug = "invalid-credentials"
    title = "Invalid credentials"


class InvalidGrant(ApiError):
    status_code = 400
    slug = "invalid-grant"
    title = "Invalid token request"


def to_user(row: user_db.UserRow) -> User:
    return User(
        id=row.id,
        username=row.username,
        full_name=row.full_name,
        role=row.role,
        area_code=row.area_code,
        division_id=row.division_id,
        areas=[row.area_code, *row.extra_areas],
        active=row.active,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def to_key(key: key_db.SigningKey) -> SigningKeyOut:
    return SigningKeyOut(
        kid=key.kid,
        owner_id=key.owner_id,
        alg=key.alg,
        jwk=key.jwk,
        label=key.label,
        created_at=key.created_at,
        revoked_at=key.revoked_at,
    )


# -- tokens ---------------------------------------------------------------------------


async def login(
    conn: asyncpg.Connection,
    settings: Settings,
    ring: KeyRing,
    request: TokenRequest,
    address: str,
) -> TokenResponse:
    """Check the credentials under the brute-force limits and issue an access token.

    Raises ``InvalidCredentials`` *after* counting the failure; the caller must let
    that count commit (the route returns the problem instead of raising it).
    """
    if request.grant_type == "password":
        name, secret = request.username, request.password
        wanted_integration = False
    else:
        name, secret = request.client_id, request.client_secret
        wanted_integration = True
    if not name or not secret:
        missing = "username and password" if not wanted_integration else "client_id and secret"
        raise InvalidGrant(f"The {request.grant_type} grant needs {missing}.")

    keys = [f"account:{await user_db.login_name(conn, name)}", f"address:{address}"]
    try:
        await throttle.hold(conn, *keys, wait_s=settings.login_wait_s)
    except asyncpg.LockNotAvailableError:
        raise TooManyRequests(
            "Too many logins at once for this account or address; try again in a moment.",
            headers={"Retry-After": "1"},
            extra={"retry_after": 1},
        ) from None
    until = await throttle.locked_until(conn, keys)
    if until is not None:
        wait = max(1, math.ceil((until - datetime.now(UTC)).total_seconds()))
        raise TooManyRequests(
            "Too many failed logins; try again later.",
            headers={"Retry-After": str(wait)},
            extra={"retry_after": wait},
        )

    creds = await user_db.credentials_for(conn, name)
    ok = await asyncio.to_thread(
        verify_password, secret, creds.password_hash if creds else DUMMY_HASH
    )
    valid = (
        creds is not None
        and ok
        and creds.active
        and (creds.role == "integration") == wanted_integration
    )
    if not valid or creds is None:
        await throttle.record_failure(
            conn,
            keys[0],
            limit=settings.login_max_failures_account,
            window_s=settings.login_window_s,
            lock_s=settings.login_lockout_s,
        )
        await throttle.record_failure(
            conn,
            keys[1],
            limit=settings.login_max_failures_address,
            window_s=settings.login_window_s,
            lock_s=settings.login_lockout_s,
        )
        raise InvalidCredentials("The credentials are not valid.")
    await throttle.clear(conn, keys[0])
    row = await user_db.get_user(conn, creds.id)
    assert row is not None
    claims: dict[str, Any] = {
        "sub": str(row.id),
        "role": row.role,
        "area": row.area_code,
        "gen": creds.token_generation,  # as read with the password just checked
    }
    if row.division_id:
        claims["division"] = str(row.division_id)
    if row.extra_areas:
        claims["areas"] = [row.area_code, *row.extra_areas]
    token, ttl = ring.issue(claims)
    return TokenResponse(access_token=token, expires_in=ttl)


# -- users ----------------------------------------------------------------------------


async def check_scope_fields(
    conn: asyncpg.Connection, role: str, area_code: str, division_id: UUID | None
) -> None:
    """The area must exist and fit the role; a division head needs a division of it."""
    kind = await area_db.area_kind(conn, area_code)
    if kind is None:
        raise Unprocessable(f"No area has the code {area_code!r}.", extra={"field": "area_code"})
    expected = {
        "admin": "country",
        "ministry_monitor": "country",
        "province_head": "province",
        "province_monitor": "province",
        "region_coordinator": "province",
        "district_head": "district",
        "division_head": "district",
    }.get(role)
    if expected and kind != expected:
        raise Unprocessable(
            f"{with_article(role).capitalize()} is bound to {with_article(expected)}, "
            f"and {area_code} is {with_article(kind)}.",
            extra={"field": "area_code"},
        )
    if role == "division_head":
        if division_id is None:
            raise Unprocessable(
                "A division head needs a division_id.", extra={"field": "division_id"}
            )
        district = await user_db.division_district(conn, division_id)
        if district != area_code:
            raise Unprocessable(
                "The division does not exist in that district.", extra={"field": "division_id"}
            )
    elif division_id is not None:
        raise Unprocessable(
            "Only a division head has a division_id.", extra={"field": "division_id"}
        )


async def create_user(conn: asyncpg.Connection, caller: Principal, data: UserCreate) -> User:
    if data.role == "integration":
        raise Unprocessable("Service accounts are created at /v1/service-accounts.")
    if not await authz.user_manageable(conn, caller, role=data.role, area_code=data.area_code):
        raise Forbidden(f"You may not create {with_article(data.role)} in {data.area_code}.")
    await check_scope_fields(conn, data.role, data.area_code, data.division_id)
    if await user_db.username_taken(conn, data.username):
        raise Conflict(f"The username {data.username!r} is taken.", extra={"field": "username"})
    password_hash = await asyncio.to_thread(hash_password, data.password)
    row = await user_db.insert_user(
        conn,
        username=data.username,
        full_name=data.full_name,
        role=data.role,
        area_code=data.area_code,
        division_id=data.division_id,
        extra_areas=[],
        password_hash=password_hash,
        created_by=caller.id,
    )
    return to_user(row)


async def visible_user(
    conn: asyncpg.Connection, caller: Principal, user_id: UUID, *, for_update: bool = False
) -> user_db.UserRow:
    row = await user_db.get_user(conn, user_id, for_update=for_update)
    if row is None or not await authz.user_visible(conn, caller, [row.area_code, *row.extra_areas]):
        raise NotFound("No such user.")
    return row


async def patch_user(
    conn: asyncpg.Connection, caller: Principal, user_id: UUID, data: UserPatch, *, this_year: int
) -> User:
    # Held until commit: checked on a row another edit could change meanwhile, an edit
    # could break the row's rules (a 409) or act on a user it may no longer manage.
    row = await visible_user(conn, caller, user_id, for_update=True)
    if not await authz.user_manageable(conn, caller, role=row.role, area_code=row.area_code):
        raise Forbidden("You may not change this user.")
    role = data.role or row.role
    area = data.area_code or row.area_code
    division = data.division_id if data.division_id is not None else row.division_id
    if data.role is not None and data.role != "division_head" and data.division_id is None:
        division = None
    if "integration" in (role, row.role) and (data.role or data.area_code or data.division_id):
        raise Unprocessable("A service account's role and scope cannot be changed here.")
    if (data.role, data.area_code, data.division_id) != (None, None, None):
        if not await authz.user_manageable(conn, caller, role=role, area_code=area):
            raise Forbidden(f"You may not make this user a {role} in {area}.")
        await check_scope_fields(conn, role, area, division)
    if user_id == caller.id and (data.active is False or data.role is not None):
        raise Forbidden("You cannot deactivate yourself or change your own role.")
    if row.role == "region_coordinator" and (role, area) != (row.role, row.area_code):
        # Regions name their coordinator, who must be one of the province (as their PUT
        # checks): moved away, they would still be named, and scoped again if moved back.
        since = await region_db.coordinated_from(conn, user_id, this_year)
        if since is not None:
            raise Conflict(
                "This user coordinates regions still in force; the province redraws its "
                "regions without them first.",
                extra={"regions_from_year": since},
            )
    changes: dict[str, Any] = {}
    if data.full_name is not None:
        changes["full_name"] = data.full_name
    if data.active is not None:
        changes["active"] = data.active
    if data.password is not None:
        changes["password_hash"] = await asyncio.to_thread(hash_password, data.password)
    if role != row.role:
        changes["role"] = role
    if area != row.area_code:
        changes["area_code"] = area
    if division != row.division_id:
        changes["division_id"] = division
    updated = await user_db.update_user(conn, user_id, changes)
    assert updated is not None
    return to_user(updated)


async def create_service_account(
    conn: asyncpg.Connection, caller: Principal, data: ServiceAccountCreate
) -> ServiceAccountCreated:
    areas = list(dict.fromkeys(data.areas))
    known = await area_db.count_known(conn, areas)
    if known != len(areas):
        raise Unprocessable("Every granted area must exist.", extra={"field": "areas"})
    client_id = "svc-" + secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    row = await user_db.insert_user(
        conn,
        username=client_id,
        full_name=data.name,
        role="integration",
        area_code=areas[0],
        division_id=None,
        extra_areas=areas[1:],
        password_hash=await asyncio.to_thread(hash_password, secret),
        created_by=caller.id,
    )
    return ServiceAccountCreated(id=row.id, client_id=client_id, client_secret=secret, areas=areas)


# -- signing keys ---------------------------------------------------------------------


async def register_key(
    conn: asyncpg.Connection, caller: Principal, jwk: dict[str, Any], label: str | None
) -> SigningKeyOut:
    try:
        parsed = parse_public_jwk(jwk)
    except JwkError as exc:
        raise Unprocessable(f"The JWK is not acceptable: {exc}", extra={"field": "jwk"}) from None
    key = await key_db.insert_key(
        conn,
        kid=parsed.kid,
        owner_id=caller.id,
        kty=parsed.kty,
        alg=parsed.alg,
        jwk=parsed.jwk,
        label=label,
    )
    if key is None:
        raise Conflict("This key is already registered.", extra={"kid": parsed.kid})
    return to_key(key)


async def own_key(conn: asyncpg.Connection, caller: Principal, kid: str) -> key_db.SigningKey:
    key = await key_db.get_key(conn, kid)
    if key is None or (key.owner_id != caller.id and caller.role != "admin"):
        raise NotFound("No such key.")
    return key
