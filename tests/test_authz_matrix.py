"""Every route, every role, both scopes (in scope, out of scope), and no route without a rule.

Each case names a route and, per role, the status expected when the target lies in the
caller's scope and when it lies outside it. ``test_matrix_covers_every_route`` fails when
a route is added without a row here, and ``test_every_route_declares_a_permission`` when a
route has no (known) permission declaration.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import SCHEMA_PATH, create_app
from api.auth.principal import ROLES
from api.authz import PERMISSIONS, PUBLIC, declared_permission
from api.jwk import parse_public_jwk
from api.settings import settings_from_env
from tests.people import PASSWORD, Person, bearer
from tests.test_users_keys import NEW_PASSWORD, ed_jwk

SIGNERS = {"ministry_monitor", "province_head", "district_head", "division_head"}


@dataclass
class World:
    app: Litestar
    client: AsyncTestClient[Litestar]
    conn: asyncpg.Connection
    people: dict[str, Person]
    outsiders: dict[str, Person]


#: A target factory returns (path, json body or None) for a role and scope ("in"/"out").
Target = Callable[[World, str, str], Awaitable[tuple[str, Any]]]


@dataclass
class Case:
    method: str
    route: str
    target: Target
    expect: Callable[[str, str], int]


def same(status: int) -> Callable[[str, str], int]:
    return lambda role, scope: status


def roles(allowed: set[str], ok: int) -> Callable[[str, str], int]:
    """Allowed roles get ``ok`` whatever the scope; the rest 403."""
    return lambda role, scope: ok if role in allowed else 403


def fixed(path: str, body: Any = None) -> Target:
    async def target(world: World, role: str, scope: str) -> tuple[str, Any]:
        return path, body

    return target


async def token_target(world: World, role: str, scope: str) -> tuple[str, Any]:
    person = world.people[role]
    return "/v1/auth/token", {
        "grant_type": "password",
        "username": person.username,
        "password": PASSWORD,
    }


async def user_target(world: World, role: str, scope: str) -> tuple[str, Any]:
    who = world.people if scope == "in" else world.outsiders
    return f"/v1/users/{who['district_head'].id}", {"full_name": "Renamed"}


async def new_user_target(world: World, role: str, scope: str) -> tuple[str, Any]:
    area = "16.02" if scope == "in" else "31.72"
    name = f"u{uuid.uuid4().hex[:10]}"
    return "/v1/users", {
        "username": name,
        "full_name": "New",
        "role": "district_head",
        "area_code": area,
        "password": NEW_PASSWORD,
    }


async def service_account_target(world: World, role: str, scope: str) -> tuple[str, Any]:
    return "/v1/service-accounts", {"name": "dash", "areas": ["16" if scope == "in" else "31"]}


async def key_target(world: World, role: str, scope: str) -> tuple[str, Any]:
    return "/v1/keys", {"jwk": ed_jwk()}


async def revoke_target(world: World, role: str, scope: str) -> tuple[str, Any]:
    # In scope: the caller's own key (an admin's "own" is anyone's). Out: an outsider's key.
    if scope == "in":
        owner = world.people[role] if role in SIGNERS else world.people["district_head"]
    else:
        owner = world.outsiders["district_head"]
    parsed = parse_public_jwk(ed_jwk())
    await world.conn.execute(
        "INSERT INTO signing_keys (kid, owner_id, kty, alg, jwk) VALUES ($1, $2, $3, $4, $5)",
        parsed.kid,
        owner.id,
        parsed.kty,
        parsed.alg,
        parsed.jwk,
    )
    return f"/v1/keys/{parsed.kid}/revoke", None


def managed(ok: int, province_head_out: int) -> Callable[[str, str], int]:
    """User management: admins everywhere; a province head inside the province only."""

    def expect(role: str, scope: str) -> int:
        if role == "admin" or (role == "province_head" and scope == "in"):
            return ok
        return province_head_out if role == "province_head" else 403

    return expect


def key_owner(role: str, scope: str) -> int:
    """Revoking: own keys for signers (someone else's is not found), any key for admins."""
    if role == "admin":
        return 200
    if role not in SIGNERS:
        return 403
    return 200 if scope == "in" else 404


CASES: list[Case] = [
    Case("GET", "/health/live", fixed("/health/live"), same(200)),
    Case("GET", "/health/ready", fixed("/health/ready"), same(200)),
    Case("GET", "/v1/areas", fixed("/v1/areas"), same(200)),
    Case("GET", "/v1/areas/{code:str}", fixed("/v1/areas/16"), same(200)),
    Case("GET", "/.well-known/jwks.json", fixed("/.well-known/jwks.json"), same(200)),
    Case("GET", "/v1/me", fixed("/v1/me"), same(200)),
    # The password grant is for people; a service account uses client credentials.
    Case(
        "POST",
        "/v1/auth/token",
        token_target,
        lambda role, scope: 401 if role == "integration" else 200,
    ),
    Case("POST", "/v1/users", new_user_target, managed(201, province_head_out=403)),
    Case("GET", "/v1/users", fixed("/v1/users"), roles({"admin", "province_head"}, 200)),
    Case("GET", "/v1/users/{user_id:uuid}", user_target, managed(200, province_head_out=404)),
    Case("PATCH", "/v1/users/{user_id:uuid}", user_target, managed(200, province_head_out=404)),
    Case("POST", "/v1/service-accounts", service_account_target, roles({"admin"}, 201)),
    Case("POST", "/v1/keys", key_target, roles(SIGNERS, 201)),
    Case("GET", "/v1/keys", fixed("/v1/keys"), roles(SIGNERS | {"admin"}, 200)),
    Case("POST", "/v1/keys/{kid:str}/revoke", revoke_target, key_owner),
]


def app_routes(app: Litestar) -> set[tuple[str, str]]:
    found = set()
    for route in app.routes:
        if route.path.startswith(SCHEMA_PATH):
            continue
        for handler in getattr(route, "route_handlers", []):
            for method in handler.http_methods:
                if method != "OPTIONS":
                    found.add((method, route.path))
    return found


@pytest.fixture
def bare_app() -> Litestar:
    return create_app(
        settings_from_env({}, database_url="postgresql://unused"), configure_logs=False
    )


def test_every_route_declares_a_permission(bare_app: Litestar) -> None:
    for route in bare_app.routes:
        for handler in getattr(route, "route_handlers", []):
            permission = declared_permission(handler)
            assert permission == PUBLIC or permission in PERMISSIONS, (route.path, permission)


def test_matrix_covers_every_route(bare_app: Litestar) -> None:
    assert {(c.method, c.route) for c in CASES} == app_routes(bare_app)


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c.method} {c.route}")
async def test_route_by_role_and_scope(
    case: Case,
    app: Litestar,
    client: AsyncTestClient[Litestar],
    conn: asyncpg.Connection,
    people: dict[str, Person],
    outsiders: dict[str, Person],
) -> None:
    world = World(app, client, conn, people, outsiders)
    failures = []
    for role in ROLES:
        for scope in ("in", "out"):
            path, body = await case.target(world, role, scope)
            response = await client.request(
                case.method, path, json=body, headers=bearer(app, people[role])
            )
            expected = case.expect(role, scope)
            if response.status_code != expected:
                failures.append((role, scope, expected, response.status_code, response.text[:200]))
            elif expected >= 400:
                assert response.headers["content-type"].startswith("application/problem+json")
    assert not failures, failures
    # Without a token: public routes answer, the rest 401.
    path, body = await case.target(world, "admin", "in")
    anonymous = await client.request(case.method, path, json=body)
    handler = next(
        h
        for r in app.routes
        if r.path == case.route
        for h in getattr(r, "route_handlers", [])
        if case.method in h.http_methods
    )
    public = declared_permission(handler) == PUBLIC
    assert anonymous.status_code == (200 if public else 401), anonymous.text
