"""Issue 3 (identity and scoped access): an audit of its items, one sub-point at a time.

Each test covers a sub-point no other test proved, or probes a boundary a real user
hits. A failing test here is a finding, described in its docstring.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

import asyncpg
import jwt
import msgspec
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.auth.tokens import rotate_server_key
from api.authz import PUBLIC, declared_permission
from api.cli import main
from api.settings import Settings
from tests.people import PASSWORD, Person, bearer, make_division, make_user, token_for
from tests.test_auth_tokens import b64, forge
from tests.test_users_keys import NEW_PASSWORD, ec_jwk, ed_jwk, new_user

ROOT = Path(__file__).resolve().parent.parent
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def is_problem(response: Any) -> bool:
    return str(response.headers.get("content-type", "")).startswith("application/problem+json")


async def login(client: AsyncTestClient[Litestar], username: str, password: str) -> Any:
    return await client.post(
        "/v1/auth/token",
        json={"grant_type": "password", "username": username, "password": password},
    )


async def me(client: AsyncTestClient[Litestar], token: str) -> int:
    answer = await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
    return answer.status_code


async def server_signer(conn: asyncpg.Connection) -> Any:
    row = await conn.fetchrow("SELECT private_pem FROM server_keys ORDER BY created_at DESC")
    private = serialization.load_pem_private_key(row["private_pem"].encode(), None)
    return lambda message: b64(private.sign(message))  # type: ignore[union-attr]


# -- 2. tokens ------------------------------------------------------------------------


async def test_a_token_without_iat_is_refused(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    """Issue 3.2: verification requires exp, iat, sub, aud and iss. The attack table
    drops every one of them but iat."""
    good = token_for(app, people["province_head"])
    header = jwt.get_unverified_header(good)
    claims = jwt.decode(good, options={"verify_signature": False})
    sign = await server_signer(conn)
    assert await me(client, forge(header, claims, sign)) == 200
    no_iat = {k: v for k, v in claims.items() if k != "iat"}
    assert await me(client, forge(header, no_iat, sign)) == 401


async def test_a_person_cannot_use_the_client_credentials_grant(
    client: AsyncTestClient[Litestar], people: dict[str, Person]
) -> None:
    """Issue 3.2: client credentials are the service accounts' grant; a person's
    username and password sent as client_id and client_secret get no token."""
    answer = await client.post(
        "/v1/auth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": people["district_head"].username,
            "client_secret": PASSWORD,
        },
    )
    assert answer.status_code == 401, answer.text
    assert is_problem(answer)
    assert "access_token" not in answer.text


async def test_the_first_start_makes_one_server_key_and_a_restart_keeps_it(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """Issue 3.2: the server's private key persists outside the repository and is
    created on first start. A restart (a new app on the same database) keeps it: tokens
    issued before verify after, and the JWKS is the same."""
    assert await conn.fetchval("SELECT count(*) FROM server_keys") == 0
    async with AsyncTestClient(app=create_app(settings, configure_logs=False)) as first:
        issued = await login(first, "district_head", PASSWORD)
        assert issued.status_code == 200, issued.text
        token = issued.json()["access_token"]
        jwks = (await first.get("/.well-known/jwks.json")).json()
    assert await conn.fetchval("SELECT count(*) FROM server_keys") == 1
    async with AsyncTestClient(app=create_app(settings, configure_logs=False)) as again:
        assert (await again.get("/.well-known/jwks.json")).json() == jwks
        assert await me(again, token) == 200
    assert await conn.fetchval("SELECT count(*) FROM server_keys") == 1
    assert [k["kid"] for k in jwks["keys"]] == [jwt.get_unverified_header(token)["kid"]]


async def test_cli_keys_rotate_adds_the_key_new_tokens_use(
    settings: Settings,
    database_url: str,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 3.2: `kinerja keys rotate` adds a key; new tokens use it; tokens signed by
    the previous key verify until they expire. Run as the operator runs it, beside a
    serving app that re-reads its keys within the minute the README allows."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    app = create_app(settings, configure_logs=False)
    async with AsyncTestClient(app=app) as http:
        before = (await login(http, "district_head", PASSWORD)).json()["access_token"]
        old_kid = jwt.get_unverified_header(before)["kid"]
        assert await asyncio.to_thread(main, ["keys", "rotate"]) == 0
        kids = await conn.fetch("SELECT kid FROM server_keys ORDER BY created_at DESC")
        assert len(kids) == 2 and kids[1]["kid"] == old_kid
        new_kid = kids[0]["kid"]
        app.state.key_ring._loaded_at = time.monotonic() - 61  # a minute has passed
        after = (await login(http, "district_head", PASSWORD)).json()["access_token"]
        assert jwt.get_unverified_header(after)["kid"] == new_kid
        assert await me(http, before) == 200
        assert await me(http, after) == 200
        published = {k["kid"] for k in (await http.get("/.well-known/jwks.json")).json()["keys"]}
        assert published == {old_kid, new_kid}


async def test_jwks_of_a_replica_lists_the_key_another_replica_signs_with(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """Issue 3.2: GET /.well-known/jwks.json publishes the public keys, and after
    `kinerja keys rotate` new tokens use the new key. Two replicas, both up for over a
    minute (the README's grace for re-reading the keys) since the rotation: one issues a
    token with the new key, and a relying party fetching the JWKS from the other must
    find that key there. The JWKS route is public, so it never re-reads the key ring
    (only ``admit`` and the token route do): a replica that serves the JWKS without an
    authenticated request in between publishes the old keys indefinitely."""
    one = create_app(settings, configure_logs=False)
    two = create_app(settings, configure_logs=False)
    async with AsyncTestClient(app=one) as http_one, AsyncTestClient(app=two) as http_two:
        assert (await http_two.get("/.well-known/jwks.json")).status_code == 200
        new_kid = await rotate_server_key(conn)
        for app in (one, two):
            app.state.key_ring._loaded_at = time.monotonic() - 61  # a minute has passed
        token = (await login(http_one, "district_head", PASSWORD)).json()["access_token"]
        assert jwt.get_unverified_header(token)["kid"] == new_kid
        keys = (await http_two.get("/.well-known/jwks.json")).json()["keys"]
        assert new_kid in {k["kid"] for k in keys}, "the JWKS lacks the key tokens are signed by"


async def test_the_installed_pyjwt_is_2_13_or_newer() -> None:
    """Issue 3.2: use PyJWT 2.13 or newer (earlier releases had key-confusion
    advisories): the requirement says so and the installed one is."""
    declared = (ROOT / "pyproject.toml").read_text()
    assert '"pyjwt[crypto]>=2.13"' in declared
    major, minor = (int(part) for part in jwt.__version__.split(".")[:2])
    assert (major, minor) >= (2, 13), jwt.__version__


async def test_a_password_sent_unencoded_as_curl_d_sends_it_is_not_echoed(
    client: AsyncTestClient[Litestar], people: dict[str, Person]
) -> None:
    """Issue 3.1: passwords are never logged or returned. The README logs in with
    `curl -d grant_type=password -d username=root -d password='...'`, and curl -d does
    not encode: a password holding '&' arrives split, and the token route answers 400
    with the part after the '&' quoted in the problem detail ("bad query field:
    '...'"), which any client or proxy that prints or logs problems then shows. The
    refusal must not carry the password's text (api/routes/auth.py ``_parse`` passes
    ``parse_qsl``'s ValueError text through as the detail)."""
    password = "Sec&ret-Fragment-444"
    answer = await client.post(
        "/v1/auth/token",
        content=f"grant_type=password&username=district_head&password={password}".encode(),
        headers=FORM,
    )
    assert 400 <= answer.status_code < 500 and is_problem(answer), answer.text
    assert "ret-Fragment-444" not in answer.text, answer.text


# -- 3. brute force -------------------------------------------------------------------


async def test_a_locked_account_logs_in_again_once_the_lockout_ends(
    settings: Settings, people: dict[str, Person]
) -> None:
    """Issue 3.3: failed logins are refused 'for a while': once the lockout has run out,
    the right password works again without anyone lifting the lock by hand."""
    tight = msgspec.structs.replace(settings, login_max_failures_account=2, login_lockout_s=2)
    async with AsyncTestClient(app=create_app(tight, configure_logs=False)) as http:
        for _ in range(2):
            assert (await login(http, "province_head", "wrong-password")).status_code == 401
        locked = await login(http, "province_head", PASSWORD)
        assert locked.status_code == 429 and is_problem(locked)
        assert 1 <= int(locked.headers["retry-after"]) <= 2
        await asyncio.sleep(2.5)
        assert (await login(http, "province_head", PASSWORD)).status_code == 200


async def test_failures_from_one_address_lock_every_account_from_it(
    settings: Settings, people: dict[str, Person]
) -> None:
    """Issue 3.3: failed logins from one address (spread over accounts, so no account
    lock trips) lock the address: 429 problem+json with Retry-After, for a correct
    password of an untouched account too."""
    tight = msgspec.structs.replace(
        settings, login_max_failures_address=3, login_lockout_s=120, login_max_failures_account=50
    )
    async with AsyncTestClient(app=create_app(tight, configure_logs=False)) as http:
        for i in range(3):
            assert (await login(http, f"nobody_{i}", "wrong-password")).status_code == 401
        locked = await login(http, "district_head", PASSWORD)
        assert locked.status_code == 429, locked.text
        assert is_problem(locked) and locked.json()["type"].endswith("/too-many-requests")
        assert 0 < int(locked.headers["retry-after"]) <= 120


# -- 1. and 4. users, service accounts, management --------------------------------------


async def test_passwords_are_never_logged(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 3.1: passwords are never logged or returned. Every step that carries one
    (create, login, failed login, a malformed login, a password change, a service
    account's secret in use), logged at DEBUG: no record holds any of them."""
    caplog.set_level(logging.DEBUG)
    admin = bearer(app, people["admin"])
    first, changed, wrong = "first-Secret-111", "changed-Secret-222", "wrong-Secret-333"
    made = await client.post(
        "/v1/users",
        json={**new_user("kadis_log", "district_head", "16.02"), "password": first},
        headers=admin,
    )
    assert made.status_code == 201, made.text
    assert (await login(client, "kadis_log", first)).status_code == 200
    assert (await login(client, "kadis_log", wrong)).status_code == 401
    malformed = await client.post(
        "/v1/auth/token",
        content=f"grant_type=password&username=kadis_log&password={wrong}&&x".encode(),
        headers=FORM,
    )
    assert malformed.status_code in (400, 401), malformed.text
    patched = await client.patch(
        f"/v1/users/{made.json()['id']}", json={"password": changed}, headers=admin
    )
    assert patched.status_code == 200 and changed not in patched.text
    svc = await client.post(
        "/v1/service-accounts", json={"name": "feed", "areas": ["16"]}, headers=admin
    )
    secret = svc.json()["client_secret"]
    granted = await client.post(
        "/v1/auth/token",
        json={
            "grant_type": "client_credentials",
            "client_id": svc.json()["client_id"],
            "client_secret": secret,
        },
    )
    assert granted.status_code == 200
    shown = await client.get(f"/v1/users/{svc.json()['id']}", headers=admin)
    assert secret not in shown.text and "scrypt" not in shown.text
    logged = "\n".join(
        f"{r.getMessage()} {json.dumps(r.__dict__, default=str)}" for r in caplog.records
    )
    for text in (first, changed, wrong, secret):
        assert text not in logged, text


async def test_a_deactivated_service_account_is_cut_off_at_once(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    """Issue 3.1 and 3.4: service accounts are users too; deactivating one stops its
    token at once, and its client credentials get no new one."""
    admin = bearer(app, people["admin"])
    made = await client.post(
        "/v1/service-accounts", json={"name": "dashboard", "areas": ["16"]}, headers=admin
    )
    account = made.json()
    creds = {
        "grant_type": "client_credentials",
        "client_id": account["client_id"],
        "client_secret": account["client_secret"],
    }
    token = (await client.post("/v1/auth/token", json=creds)).json()["access_token"]
    card = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/v1/scorecards/provinces/16", headers=card)).status_code == 200
    off = await client.patch(f"/v1/users/{account['id']}", json={"active": False}, headers=admin)
    assert off.status_code == 200 and off.json()["active"] is False
    assert (await client.get("/v1/scorecards/provinces/16", headers=card)).status_code == 401
    assert (await client.post("/v1/auth/token", json=creds)).status_code == 401


async def test_a_province_head_sees_but_may_not_change_a_peer(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    """Issue 3.4 and 3.6: a province head manages users of the province with roles below
    their own. Another province head of the same province is in scope (seen: 200) but
    not below them (403, nothing changed); an admin is outside their scope (404)."""
    peer = await make_user(conn, "province_head", username="kadis_16_b", area_code="16")
    head = bearer(app, people["province_head"])
    assert (await client.get(f"/v1/users/{peer.id}", headers=head)).status_code == 200
    for body in ({"full_name": "Renamed"}, {"active": False}, {"password": NEW_PASSWORD}):
        answer = await client.patch(f"/v1/users/{peer.id}", json=body, headers=head)
        assert answer.status_code == 403 and is_problem(answer), (body, answer.text)
    row = await conn.fetchrow(
        "SELECT full_name, active, token_generation FROM users WHERE id = $1", peer.id
    )
    assert (row["full_name"], row["active"], row["token_generation"]) == ("Kadis 16 B", True, 0)
    for national in ("admin", "ministry_monitor"):
        user = f"/v1/users/{people[national].id}"
        assert (await client.get(user, headers=head)).status_code == 404
        hidden = await client.patch(user, json={"active": False}, headers=head)
        assert hidden.status_code == 404
    assert await conn.fetchval("SELECT bool_and(active) FROM users") is True


async def test_a_province_head_cannot_move_a_user_out_of_the_province(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    """Issue 3.4: a province head manages users inside their province; moving one of
    them to another province's district would hand a user to a province they do not
    manage: 403, nothing changed."""
    head = bearer(app, people["province_head"])
    moved = await client.patch(
        f"/v1/users/{people['district_head'].id}", json={"area_code": "31.71"}, headers=head
    )
    assert moved.status_code == 403, moved.text
    assert (
        await conn.fetchval("SELECT area_code FROM users WHERE id = $1", people["district_head"].id)
        == "16.71"
    )


async def test_a_division_head_is_bound_to_a_division_of_their_district(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    """Issue 3.1: a user's scope is an area, plus the division for a division head: the
    division must be one of that district's."""
    admin = bearer(app, people["admin"])
    palembang = await make_division(conn, "16.71", "capil")
    elsewhere = await client.post(
        "/v1/users",
        json=new_user("kabid_x", "division_head", "16.02", division_id=str(palembang)),
        headers=admin,
    )
    assert elsewhere.status_code == 422 and is_problem(elsewhere), elsewhere.text
    made = await client.post(
        "/v1/users",
        json=new_user("kabid_ok", "division_head", "16.71", division_id=str(palembang)),
        headers=admin,
    )
    assert made.status_code == 201, made.text
    assert made.json()["division_id"] == str(palembang)
    token = (await login(client, "kabid_ok", NEW_PASSWORD)).json()["access_token"]
    claims = jwt.decode(token, options={"verify_signature": False})
    assert (claims["role"], claims["area"], claims["division"]) == (
        "division_head",
        "16.71",
        str(palembang),
    )
    assert await conn.fetchval("SELECT count(*) FROM users WHERE username = 'kabid_x'") == 0


async def test_passwords_and_secrets_are_stored_as_memory_hard_salted_hashes(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    """Issue 3.1: passwords hashed with a memory-hard function (scrypt here): stored as
    scrypt with at least 16 MiB of memory per hash (128 * N * r), salted (one password
    twice gives two hashes), never in clear; the service account's secret likewise."""
    admin = bearer(app, people["admin"])
    for name in ("kadis_a", "kadis_b"):
        made = await client.post(
            "/v1/users", json=new_user(name, "district_head", "16.02"), headers=admin
        )
        assert made.status_code == 201, made.text
    svc = (
        await client.post(
            "/v1/service-accounts", json={"name": "feed", "areas": ["16"]}, headers=admin
        )
    ).json()
    rows = await conn.fetch(
        "SELECT username, password_hash FROM users WHERE username = ANY($1::text[])",
        ["kadis_a", "kadis_b", svc["client_id"]],
    )
    hashes = {r["username"]: r["password_hash"] for r in rows}
    assert len(hashes) == 3
    for name, stored in hashes.items():
        scheme, n, r, _p, _salt, _digest = stored.split("$")
        assert scheme == "scrypt" and 128 * int(n) * int(r) >= 16 * 1024 * 1024, name
        assert NEW_PASSWORD not in stored and svc["client_secret"] not in stored
    assert hashes["kadis_a"] != hashes["kadis_b"]


async def test_a_service_account_reads_its_granted_areas_only(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    """Issue 3.1: a service account is scoped to one or more areas: granted a district
    of one province and a whole other province, it reads that district and everything
    in the other province; the district's neighbours, its province as a whole and the
    nation are outside its scope (404)."""
    admin = bearer(app, people["admin"])
    made = (
        await client.post(
            "/v1/service-accounts", json={"name": "feed", "areas": ["16.71", "31"]}, headers=admin
        )
    ).json()
    creds = {
        "grant_type": "client_credentials",
        "client_id": made["client_id"],
        "client_secret": made["client_secret"],
    }
    token = (await client.post("/v1/auth/token", json=creds)).json()["access_token"]
    auth = {"Authorization": f"Bearer {token}"}
    expected = {
        "/v1/scorecards/districts/16.71": 200,
        "/v1/scorecards/districts/31.71": 200,
        "/v1/scorecards/provinces/31": 200,
        "/v1/rankings/districts?province=31": 200,
        "/v1/scorecards/districts/16.72": 404,
        "/v1/scorecards/provinces/16": 404,
        "/v1/rankings/districts?province=16": 404,
        "/v1/rankings/provinces": 404,
    }
    got = {path: (await client.get(path, headers=auth)).status_code for path in expected}
    assert got == expected


# -- 5. signing keys --------------------------------------------------------------------


async def test_keys_refuse_an_ec_private_key_a_symmetric_key_and_another_curve(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    """Issue 3.5: refuse private keys, other curves, malformed JWKs: an EC JWK with its
    private 'd', an 'oct' (shared secret) key, a secp256k1 key, none of them stored."""
    head = bearer(app, people["district_head"])
    private = ec.generate_private_key(ec.SECP256R1())
    d = private.private_numbers().private_value.to_bytes(32, "big")
    numbers = private.public_key().public_numbers()
    p256 = {
        "kty": "EC",
        "crv": "P-256",
        "x": b64(numbers.x.to_bytes(32, "big")),
        "y": b64(numbers.y.to_bytes(32, "big")),
    }
    k1 = ec.generate_private_key(ec.SECP256K1()).public_key().public_numbers()
    bad = {
        "ec private": {**p256, "d": b64(d)},
        "oct": {"kty": "oct", "k": b64(b"0" * 32)},
        "secp256k1": {
            "kty": "EC",
            "crv": "secp256k1",
            "x": b64(k1.x.to_bytes(32, "big")),
            "y": b64(k1.y.to_bytes(32, "big")),
        },
        "p-256 without y": {k: v for k, v in p256.items() if k != "y"},
    }
    for name, jwk in bad.items():
        answer = await client.post("/v1/keys", json={"jwk": jwk}, headers=head)
        assert answer.status_code == 422 and is_problem(answer), (name, answer.text)
    assert await conn.fetchval("SELECT count(*) FROM signing_keys") == 0


async def test_the_same_owner_registering_a_key_twice_is_a_duplicate(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    """Issue 3.5: duplicates are refused, also by the key's own owner (the same key with
    other optional members has the same thumbprint, so it is the same key)."""
    head = bearer(app, people["district_head"])
    jwk = ec_jwk()
    assert (await client.post("/v1/keys", json={"jwk": jwk}, headers=head)).status_code == 201
    again = await client.post("/v1/keys", json={"jwk": jwk, "label": "again"}, headers=head)
    assert again.status_code == 409 and is_problem(again), again.text
    spelled = await client.post(
        "/v1/keys", json={"jwk": {**jwk, "use": "sig", "alg": "ES256"}}, headers=head
    )
    assert spelled.status_code == 409, spelled.text
    assert await conn.fetchval("SELECT count(*) FROM signing_keys") == 1


async def test_admins_list_every_key_and_owners_their_own(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    """Issue 3.5: GET /v1/keys (README: your own; admins see all)."""
    for role in ("district_head", "province_head"):
        made = await client.post(
            "/v1/keys", json={"jwk": ed_jwk()}, headers=bearer(app, people[role])
        )
        assert made.status_code == 201
    every = (await client.get("/v1/keys", headers=bearer(app, people["admin"]))).json()
    assert every["total"] == 2
    own = (await client.get("/v1/keys", headers=bearer(app, people["province_head"]))).json()
    assert own["total"] == 1 and own["items"][0]["owner_id"] == str(people["province_head"].id)


async def test_nul_in_a_kid_or_a_label_is_a_4xx_and_stores_nothing(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    """Bad input is a 4xx problem, never a 5xx, and changes nothing: a NUL in the kid of
    a revocation, in a key's label, in a user listing's filter."""
    head = bearer(app, people["district_head"])
    revoke = await client.post("/v1/keys/a%00b/revoke", headers=head)
    assert 400 <= revoke.status_code < 500 and is_problem(revoke), revoke.text
    label = await client.post("/v1/keys", json={"jwk": ed_jwk(), "label": "a\u0000b"}, headers=head)
    assert 400 <= label.status_code < 500 and is_problem(label), label.text
    listing = await client.get("/v1/users?area=1%006", headers=bearer(app, people["admin"]))
    assert 400 <= listing.status_code < 500 or listing.status_code == 200, listing.text
    assert await conn.fetchval("SELECT count(*) FROM signing_keys") == 0


# -- 6. one authorization layer: the OpenAPI document says which routes need a token --


async def test_openapi_marks_every_protected_route_and_only_those(
    client: AsyncTestClient[Litestar], app: Litestar
) -> None:
    """Must show: OpenAPI documents the security schemes. Each operation must say what
    it needs (its own `security`, else the document's): public routes no token
    (`[{}]`), every other route a declared scheme."""
    spec = (await client.get("/schema/openapi.json")).json()
    schemes = set(spec["components"]["securitySchemes"])
    default = spec.get("security")  # what an operation without its own declares
    wrong, checked = [], 0
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            permission = declared_permission(handler)
            path = route.path_format if hasattr(route, "path_format") else route.path
            operations = spec["paths"].get(path)
            if operations is None:
                continue
            for method in handler.http_methods:
                operation = operations.get(method.lower())
                if operation is None:
                    continue
                checked += 1
                security = operation.get("security", default)
                if permission == PUBLIC:
                    if security != [{}]:
                        wrong.append((method, path, "public", security))
                elif not security or not all(
                    requirement and set(requirement) <= schemes for requirement in security
                ):
                    wrong.append((method, path, permission, security))
    assert checked >= 40 and not wrong, (checked, wrong)


# -- 7. mass assignment -----------------------------------------------------------------


async def test_service_account_and_user_patch_bodies_refuse_fields_they_do_not_own(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    """Issue 3.7: request bodies refuse unknown fields: a service account cannot be
    made with a chosen role, client id or secret; a user patch cannot set the username,
    the id, the token generation or the owner."""
    admin = bearer(app, people["admin"])
    before = await conn.fetchval("SELECT count(*) FROM users")
    for extra in (
        {"role": "admin"},
        {"client_id": "svc-mine"},
        {"client_secret": "a-secret-i-chose"},
    ):
        answer = await client.post(
            "/v1/service-accounts", json={"name": "feed", "areas": ["16"], **extra}, headers=admin
        )
        assert answer.status_code == 400 and is_problem(answer), (extra, answer.text)
    assert await conn.fetchval("SELECT count(*) FROM users") == before
    user = f"/v1/users/{people['district_head'].id}"
    for extra in (
        {"username": "renamed"},
        {"id": str(people["admin"].id)},
        {"token_generation": 0},
        {"created_by": str(people["admin"].id)},
    ):
        answer = await client.patch(user, json={"full_name": "X Y", **extra}, headers=admin)
        assert answer.status_code == 400 and is_problem(answer), (extra, answer.text)
    row = await conn.fetchrow(
        "SELECT username, full_name FROM users WHERE id = $1", people["district_head"].id
    )
    assert (row["username"], row["full_name"]) == ("district_head", "District Head")


# -- must show: the README's curl walk-through works as written ---------------------------


async def test_the_readme_walkthrough_creates_an_admin_gets_a_token_and_calls_a_route(
    settings: Settings, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Must show: the README shows, with curl, how to create the first admin, get a
    token and call a protected route. The same steps, as curl sends them."""
    readme = (ROOT / "README.md").read_text()
    password = "a-long-admin-password"
    assert (
        f"KINERJA_NEW_PASSWORD='{password}' .venv/bin/kinerja users create "
        "--username root --role admin" in readme
    )
    assert "-d grant_type=password -d username=root" in readme
    assert "--data-urlencode password='a-long-admin-password'" in readme
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("KINERJA_NEW_PASSWORD", password)
    made = await asyncio.to_thread(
        main, ["users", "create", "--username", "root", "--role", "admin"]
    )
    assert made == 0
    async with AsyncTestClient(app=create_app(settings, configure_logs=False)) as http:
        # curl -d: application/x-www-form-urlencoded, fields joined with '&'.
        answer = await http.post(
            "/v1/auth/token",
            content=f"grant_type=password&username=root&password={password}".encode(),
            headers=FORM,
        )
        assert answer.status_code == 200, answer.text
        token = answer.json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        mine = await http.get("/v1/me", headers=auth)
        assert mine.status_code == 200 and mine.json()["role"] == "admin"
        body = (
            '{"username":"kadis_sumsel","full_name":"Kadis Sumsel","role":"province_head",'
            '"area_code":"16","password":"another-long-password"}'
        )
        assert body in readme
        created = await http.post(
            "/v1/users", content=body.encode(), headers={**auth, "Content-Type": "application/json"}
        )
        assert created.status_code == 201, created.text
