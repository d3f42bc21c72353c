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
from tests.agreement_helpers import activate, draft, register_signer, targets
from tests.people import PASSWORD, Person, bearer
from tests.submitting import ensure_coordinated, post_jws, register_key, today
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


NATIONAL = {"admin", "ministry_monitor"}
SUBMITTERS = {"district_head", "division_head"}
REVIEWERS = {"province_head", "province_monitor", "region_coordinator"}
VERIFIERS = NATIONAL | REVIEWERS | {"district_head"}


async def submission_id(world: World, scope: str) -> str:
    """A fresh report by the division head in scope (Palembang) or out of it (Jakarta).

    In scope, the region coordinator leads a region holding Palembang, so every role
    but the nationals has exactly one reason to see it.
    """
    who = (world.people if scope == "in" else world.outsiders)["division_head"]
    if scope == "in":
        await ensure_coordinated(world.conn, world.people["region_coordinator"], "16", "16.71")
    signer = await register_key(world.conn, who)
    made = await post_jws(world.client, world.app, who, signer.sign())
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def submit_target(world: World, role: str, scope: str) -> tuple[str, Any]:
    # The matrix sends JSON; a submission must be application/jose, so a role allowed to
    # submit gets 415 here. Scope with real signed bodies: tests/test_submissions.py.
    return "/v1/submissions", {"jws": "not sent as application/jose"}


async def submission_target(world: World, role: str, scope: str) -> tuple[str, Any]:
    return f"/v1/submissions/{await submission_id(world, scope)}", None


async def review_target(world: World, role: str, scope: str) -> tuple[str, Any]:
    path = f"/v1/submissions/{await submission_id(world, scope)}/review"
    return path, {"decision": "accept"}


async def ledger_target(world: World, role: str, scope: str) -> tuple[str, Any]:
    if scope == "in":
        await ensure_coordinated(world.conn, world.people["region_coordinator"], "16", "16.71")
    return f"/v1/districts/{'16.71' if scope == 'in' else '31.71'}/ledger/verify", None


def in_scope_or_national(allowed: set[str], ok: int) -> Callable[[str, str], int]:
    """Allowed roles get ``ok`` in scope; outside it only the nationals do (404 for others)."""

    def expect(role: str, scope: str) -> int:
        if role not in allowed:
            return 403
        return ok if scope == "in" or role in NATIONAL else 404

    return expect


# -- catalogue, divisions, regions, agreements ------------------------------------------

AGREEMENT_WRITERS = {"ministry_monitor", "province_head", "district_head"}
AGREEMENT_READERS = set(ROLES) - {"integration"}
REGION_READERS = NATIONAL | REVIEWERS | {"province_head"}
CASCADE_READERS = NATIONAL | REVIEWERS | {"district_head"}


def _district(scope: str) -> str:
    return "16.71" if scope == "in" else "31.71"


async def _in_region(world: World, scope: str) -> None:
    """In scope, the region coordinator leads a region holding Palembang."""
    if scope == "in":
        await ensure_coordinated(world.conn, world.people["region_coordinator"], "16", "16.71")


async def indicator_create_target(world: World, role: str, scope: str) -> tuple[str, Any]:
    return "/v1/indicators", {
        "code": f"i{uuid.uuid4().hex[:10]}",
        "name_id": "Aktivasi IKD",
        "name_en": "Digital ID activation",
        "polarity": "higher",
        "numerator_definition": "activated",
        "denominator_definition": "recorded",
    }


async def indicator_delete_target(world: World, role: str, scope: str) -> tuple[str, Any]:
    code = f"i{uuid.uuid4().hex[:10]}"
    await world.conn.execute(
        "INSERT INTO indicators (code, name_id, name_en, polarity, numerator_definition, "
        "denominator_definition) VALUES ($1, 'x', 'x', 'higher', 'n', 'd')",
        code,
    )
    return f"/v1/indicators/{code}", None


async def divisions_target(world: World, role: str, scope: str) -> tuple[str, Any]:
    await _in_region(world, scope)
    body = {"code": f"d{uuid.uuid4().hex[:10]}", "name": "Bidang Baru"}
    return f"/v1/districts/{_district(scope)}/divisions", body


async def regions_put_target(world: World, role: str, scope: str) -> tuple[str, Any]:
    province, district = ("16", "16.01") if scope == "in" else ("31", "31.71")
    # 2020: leaves the coordinator's current-year region alone.
    body = {"regions": [{"name": "Wilayah I", "districts": [district]}]}
    return f"/v1/provinces/{province}/regions/2020", body


async def regions_get_target(world: World, role: str, scope: str) -> tuple[str, Any]:
    return f"/v1/provinces/{'16' if scope == 'in' else '31'}/regions/2021", None


async def _free_year(world: World, area: str, division: Any) -> int:
    """A year with no agreement for the office yet, so every target gets a fresh one."""
    return int(
        await world.conn.fetchval(
            "SELECT coalesce(max(year), 2039) + 1 FROM agreements "
            "WHERE second_area = $1 AND second_division_id IS NOT DISTINCT FROM $2",
            area,
            division,
        )
    )


async def agreement_draft(world: World, role: str, scope: str) -> dict[str, Any]:
    """A fresh draft of Palembang (Jakarta out of scope) with its province; for a division
    head, one of their division (the outsider's division out of scope) with its district."""
    await _in_region(world, scope)
    who = world.people if scope == "in" else world.outsiders
    district = _district(scope)
    if role == "division_head":
        division = who["division_head"].division_id
        return await draft(
            world.client,
            world.app,
            who["district_head"],
            year=await _free_year(world, district, division),
            level="district_division",
            second={"division_id": str(division), "official": "Kabid"},
            target_list=targets(ktp_el=100),
        )
    return await draft(
        world.client,
        world.app,
        who["province_head"],
        year=await _free_year(world, district, None),
        level="province_district",
        second={"area_code": district, "official": "Kadis"},
        target_list=targets(ktp_el=100, kia=30),
    )


def agreement_path(suffix: str = "") -> Target:
    async def target(world: World, role: str, scope: str) -> tuple[str, Any]:
        agreement = await agreement_draft(world, role, scope)
        return f"/v1/agreements/{agreement['id']}{suffix}", None

    return target


async def agreement_create_target(world: World, role: str, scope: str) -> tuple[str, Any]:
    """A body that suits the role's own level (others are refused by role first)."""
    who = world.people if scope == "in" else world.outsiders
    district = _district(scope)
    if role == "ministry_monitor":
        level, second = "national_province", {"area_code": "16" if scope == "in" else "31"}
    elif role == "district_head":
        level = "district_division"
        second = {"division_id": str(who["division_head"].division_id)}
    else:
        level, second = "province_district", {"area_code": district}
    return "/v1/agreements", {
        "year": 2030,
        "level": level,
        "second_party": {**second, "official": "Pejabat"},
        "targets": targets(ktp_el=100),
    }


async def agreement_patch_target(world: World, role: str, scope: str) -> tuple[str, Any]:
    agreement = await agreement_draft(world, "province_head", scope)
    return f"/v1/agreements/{agreement['id']}", {"targets": targets(ktp_el=99, kia=31)}


async def agreement_discard_target(world: World, role: str, scope: str) -> tuple[str, Any]:
    agreement = await agreement_draft(world, "province_head", scope)
    return f"/v1/agreements/{agreement['id']}", None


async def signature_target(world: World, role: str, scope: str) -> tuple[str, Any]:
    """A fresh draft whose second party is the in-scope district head (for a division head,
    their division); each signer claims the party their office would hold."""
    agreement = await agreement_draft(world, role, scope)
    if role not in SIGNERS:
        return f"/v1/agreements/{agreement['id']}/signatures", {"jws": "a.b.c"}
    signer = await register_signer(world.conn, world.people[role])
    party = "second" if role in ("district_head", "division_head") else "first"
    body = {"jws": signer.statement(agreement, party)}
    return f"/v1/agreements/{agreement['id']}/signatures", body


async def amendment_target(world: World, role: str, scope: str) -> tuple[str, Any]:
    """A fresh active agreement of Palembang (Jakarta out of scope) with its province."""
    who = world.people if scope == "in" else world.outsiders
    agreement = await agreement_draft(world, "province_head", scope)
    await activate(
        world.client,
        world.app,
        agreement,
        second=await register_signer(world.conn, who["district_head"]),
        first=await register_signer(world.conn, who["province_head"]),
    )
    body = {
        "reason": "mutasi_pejabat",
        "note": "PLT ditunjuk",
        "second_party": {"official": "PLT Kadis", "acting": "plt"},
    }
    return f"/v1/agreements/{agreement['id']}/amendments", body


async def close_target(world: World, role: str, scope: str) -> tuple[str, Any]:
    """A fresh active agreement of Palembang (Jakarta out of scope), to close."""
    path, _ = await amendment_target(world, role, scope)
    return path.removesuffix("/amendments") + "/close", {"reason": "dimekarkan"}


def first_party_only(ok: int) -> Callable[[str, str], int]:
    """Editing or amending a Palembang agreement: its province head alone; the ministry
    sees it but is not its first party (403), the district head is its second (403)."""

    def expect(role: str, scope: str) -> int:
        if role not in AGREEMENT_WRITERS or role == "ministry_monitor":
            return 403
        if scope == "out":
            return 404
        return ok if role == "province_head" else 403

    return expect


def signing(role: str, scope: str) -> int:
    """The second party signs (201); the first party may not sign a draft before it (409);
    the ministry sees everything but holds neither office (403 not-a-party)."""
    if role not in SIGNERS or role == "ministry_monitor":
        return 403
    if scope == "out":
        return 404
    return 409 if role == "province_head" else 201


async def cascade_target(world: World, role: str, scope: str) -> tuple[str, Any]:
    await _in_region(world, scope)
    # The year of the coordinator's region: a region drawn for a year is not theirs before.
    return f"/v1/agreements/cascade?year={today().year}&area={_district(scope)}", None


REPORT_PROVINCE_ROLES = {
    "admin",
    "ministry_monitor",
    "province_head",
    "province_monitor",
    "integration",
}
RANKING_ROLES = REPORT_PROVINCE_ROLES | {"region_coordinator"}
NATIONAL = {"admin", "ministry_monitor"}


async def district_card_target(world: World, role: str, scope: str) -> tuple[str, Any]:
    await _in_region(world, scope)
    return f"/v1/scorecards/districts/{_district(scope)}", None


def district_card(role: str, scope: str) -> int:
    """Every role reads district scorecards, each inside its own scope."""
    return 200 if scope == "in" or role in NATIONAL else 404


async def province_card_target(world: World, role: str, scope: str) -> tuple[str, Any]:
    return f"/v1/scorecards/provinces/{'16' if scope == 'in' else '31'}", None


def province_card(role: str, scope: str) -> int:
    if role not in REPORT_PROVINCE_ROLES:
        return 403
    return 200 if scope == "in" or role in NATIONAL else 404


def ranking_target(kind: str) -> Target:
    async def target(world: World, role: str, scope: str) -> tuple[str, Any]:
        await _in_region(world, scope)
        return f"/v1/rankings/{kind}?province={'16' if scope == 'in' else '31'}", None

    return target


def province_ranking(role: str, scope: str) -> int:
    if role not in RANKING_ROLES:
        return 403
    return 200 if scope == "in" or role in NATIONAL else 404


def national_ranking(role: str, scope: str) -> int:
    """Only national roles (and integrations granted the country) rank provinces."""
    if role not in RANKING_ROLES:
        return 403
    return 200 if role in NATIONAL else 404


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
    Case("POST", "/v1/submissions", submit_target, roles(SUBMITTERS, 415)),
    Case("GET", "/v1/submissions", fixed("/v1/submissions"), roles(AGREEMENT_READERS, 200)),
    Case(
        "GET",
        "/v1/submissions/{submission_id:uuid}",
        submission_target,
        in_scope_or_national(AGREEMENT_READERS, 200),
    ),
    Case(
        "POST",
        "/v1/submissions/{submission_id:uuid}/review",
        review_target,
        in_scope_or_national(REVIEWERS, 201),
    ),
    Case(
        "GET",
        "/v1/districts/{code:str}/ledger/verify",
        ledger_target,
        in_scope_or_national(VERIFIERS, 200),
    ),
    Case("GET", "/v1/indicators", fixed("/v1/indicators"), same(200)),
    Case("POST", "/v1/indicators", indicator_create_target, roles({"admin"}, 201)),
    Case("DELETE", "/v1/indicators/{code:str}", indicator_delete_target, roles({"admin"}, 204)),
    Case(
        "GET",
        "/v1/districts/{code:str}/divisions",
        divisions_target,
        in_scope_or_national(set(ROLES), 200),
    ),
    Case(
        "POST",
        "/v1/districts/{code:str}/divisions",
        divisions_target,
        in_scope_or_national({"admin", "district_head"}, 201),
    ),
    Case(
        "PUT",
        "/v1/provinces/{code:str}/regions/{year:int}",
        regions_put_target,
        in_scope_or_national({"admin", "province_head"}, 200),
    ),
    Case(
        "GET",
        "/v1/provinces/{code:str}/regions/{year:int}",
        regions_get_target,
        in_scope_or_national(REGION_READERS, 200),
    ),
    Case(
        "POST",
        "/v1/agreements",
        agreement_create_target,
        in_scope_or_national(AGREEMENT_WRITERS, 201),
    ),
    Case("GET", "/v1/agreements", fixed("/v1/agreements"), roles(AGREEMENT_READERS, 200)),
    Case(
        "GET",
        "/v1/agreements/cascade",
        cascade_target,
        in_scope_or_national(CASCADE_READERS, 200),
    ),
    Case(
        "GET",
        "/v1/agreements/{agreement_id:uuid}",
        agreement_path(),
        in_scope_or_national(AGREEMENT_READERS, 200),
    ),
    Case(
        "GET",
        "/v1/agreements/{agreement_id:uuid}/document",
        agreement_path("/document"),
        in_scope_or_national(AGREEMENT_READERS, 200),
    ),
    Case(
        "GET",
        "/v1/agreements/{agreement_id:uuid}/versions",
        agreement_path("/versions"),
        in_scope_or_national(AGREEMENT_READERS, 200),
    ),
    Case(
        "PATCH",
        "/v1/agreements/{agreement_id:uuid}",
        agreement_patch_target,
        first_party_only(200),
    ),
    Case(
        "DELETE",
        "/v1/agreements/{agreement_id:uuid}",
        agreement_discard_target,
        first_party_only(204),
    ),
    Case(
        "POST",
        "/v1/agreements/{agreement_id:uuid}/signatures",
        signature_target,
        signing,
    ),
    Case(
        "POST",
        "/v1/agreements/{agreement_id:uuid}/amendments",
        amendment_target,
        first_party_only(201),
    ),
    Case(
        "POST",
        "/v1/agreements/{agreement_id:uuid}/close",
        close_target,
        first_party_only(200),
    ),
    Case("GET", "/v1/scorecards/districts/{code:str}", district_card_target, district_card),
    Case("GET", "/v1/scorecards/provinces/{code:str}", province_card_target, province_card),
    Case("GET", "/v1/rankings/districts", ranking_target("districts"), province_ranking),
    Case("GET", "/v1/rankings/regions", ranking_target("regions"), province_ranking),
    Case("GET", "/v1/rankings/provinces", fixed("/v1/rankings/provinces"), national_ranking),
    Case("GET", "/v1/schemas/{name:str}", fixed("/v1/schemas/ranking.v1.json"), same(200)),
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
