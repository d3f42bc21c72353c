"""User management within scope, mass assignment, and signing-key registration."""

from __future__ import annotations

import base64

import asyncpg
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.jwk import thumbprint
from tests.people import Person, bearer

NEW_PASSWORD = "a-long-enough-password"


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def ed_jwk() -> dict[str, str]:
    raw = (
        ed25519.Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    )
    return {"kty": "OKP", "crv": "Ed25519", "x": b64(raw)}


def ec_jwk(curve: ec.EllipticCurve | None = None) -> dict[str, str]:
    numbers = ec.generate_private_key(curve or ec.SECP256R1()).public_key().public_numbers()
    size = (numbers.curve.key_size + 7) // 8
    return {
        "kty": "EC",
        "crv": {256: "P-256", 384: "P-384"}[numbers.curve.key_size],
        "x": b64(numbers.x.to_bytes(size, "big")),
        "y": b64(numbers.y.to_bytes(size, "big")),
    }


def new_user(username: str, role: str, area: str, **extra: object) -> dict[str, object]:
    return {
        "username": username,
        "full_name": username.title(),
        "role": role,
        "area_code": area,
        "password": NEW_PASSWORD,
        **extra,
    }


async def test_admin_creates_any_role_and_lists(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    admin = bearer(app, people["admin"])
    made = await client.post(
        "/v1/users", json=new_user("kadis_jabar", "province_head", "32"), headers=admin
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["role"] == "province_head" and body["area_code"] == "32" and body["active"]
    assert "password" not in made.text and "hash" not in made.text
    listed = (await client.get("/v1/users", params={"role": "province_head"}, headers=admin)).json()
    assert {u["username"] for u in listed["items"]} == {"province_head", "kadis_jabar"}
    dup = await client.post(
        "/v1/users", json=new_user("KADIS_JABAR", "province_head", "32"), headers=admin
    )
    assert dup.status_code == 409


async def test_province_head_manages_below_own_role_inside_province(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    outsiders: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    head = bearer(app, people["province_head"])
    ok = await client.post(
        "/v1/users", json=new_user("kadis_oki", "district_head", "16.02"), headers=head
    )
    assert ok.status_code == 201, ok.text
    # Another province's district, or a role not below their own: refused.
    outside = await client.post(
        "/v1/users", json=new_user("kadis_x", "district_head", "31.71"), headers=head
    )
    assert outside.status_code == 403
    peer = await client.post(
        "/v1/users", json=new_user("kadis_y", "province_head", "16"), headers=head
    )
    assert peer.status_code == 403
    admin = await client.post("/v1/users", json=new_user("root2", "admin", "ID"), headers=head)
    assert admin.status_code == 403
    # Sees users of the province only; another province's user is not found.
    names = {
        u["username"]
        for u in (await client.get("/v1/users", params={"limit": 100}, headers=head)).json()[
            "items"
        ]
    }
    assert "district_head" in names and "kadis_oki" in names
    assert not any(n.endswith("_jkt") for n in names) and "admin" not in names
    hidden = await client.get(f"/v1/users/{outsiders['district_head'].id}", headers=head)
    assert hidden.status_code == 404
    patch_hidden = await client.patch(
        f"/v1/users/{outsiders['district_head'].id}", json={"active": False}, headers=head
    )
    assert patch_hidden.status_code == 404
    # Cannot promote someone to their own level.
    promote = await client.patch(
        f"/v1/users/{people['district_head'].id}",
        json={"role": "province_head", "area_code": "16"},
        headers=head,
    )
    assert promote.status_code == 403
    assert await conn.fetchval(
        "SELECT role FROM users WHERE id = $1", people["district_head"].id
    ) == ("district_head")


async def test_user_bodies_refuse_unknown_fields_and_bad_scope(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    admin = bearer(app, people["admin"])
    before = await conn.fetchval("SELECT count(*) FROM users")
    bad_bodies = [
        (new_user("sneaky", "district_head", "16.71", active=True, id="x"), 400),
        (new_user("sneaky", "district_head", "16.71", password_hash="x"), 400),
        (new_user("sneaky", "district_head", "16"), 422),  # a province for a district role
        (new_user("sneaky", "district_head", "99.99"), 422),  # no such area
        (new_user("sneaky", "division_head", "16.71"), 422),  # no division
        (new_user("sneaky", "emperor", "16.71"), 400),
        (new_user("s", "district_head", "16.71"), 400),  # username too short
        ({**new_user("sneaky", "district_head", "16.71"), "password": "short"}, 400),
        (new_user("sneaky", "integration", "16"), 422),
    ]
    for body, status in bad_bodies:
        response = await client.post("/v1/users", json=body, headers=admin)
        assert response.status_code == status, (body, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")
    self_patch = await client.patch(
        f"/v1/users/{people['district_head'].id}",
        json={"role": "admin", "owner": "me"},
        headers=admin,
    )
    assert self_patch.status_code == 400
    assert await conn.fetchval("SELECT count(*) FROM users") == before


async def test_signing_keys_register_list_revoke(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    outsiders: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    head = bearer(app, people["district_head"])
    jwk = ed_jwk()
    made = await client.post("/v1/keys", json={"jwk": jwk, "label": "laptop"}, headers=head)
    assert made.status_code == 201, made.text
    key = made.json()
    assert key["kid"] == thumbprint(jwk) and key["alg"] == "EdDSA" and key["revoked_at"] is None
    p256 = await client.post("/v1/keys", json={"jwk": ec_jwk()}, headers=head)
    assert p256.status_code == 201 and p256.json()["alg"] == "ES256"
    again = await client.post(
        "/v1/keys", json={"jwk": jwk}, headers=bearer(app, people["division_head"])
    )
    assert again.status_code == 409  # one owner per key
    listed = (await client.get("/v1/keys", headers=head)).json()
    assert listed["total"] == 2
    theirs = (await client.get("/v1/keys", headers=bearer(app, outsiders["district_head"]))).json()
    assert theirs["total"] == 0
    stolen = await client.post(
        f"/v1/keys/{key['kid']}/revoke", headers=bearer(app, outsiders["district_head"])
    )
    assert stolen.status_code == 404
    revoked = await client.post(f"/v1/keys/{key['kid']}/revoke", headers=head)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    first = revoked.json()["revoked_at"]
    twice = await client.post(f"/v1/keys/{key['kid']}/revoke", headers=head)
    assert twice.json()["revoked_at"] == first
    assert await conn.fetchval("SELECT count(*) FROM signing_keys") == 2


async def test_unacceptable_jwks_are_refused(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    head = bearer(app, people["district_head"])
    private = ed25519.Ed25519PrivateKey.generate()
    d = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    rsa_numbers = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_numbers()
    )
    good = ed_jwk()
    bad = {
        "private": {**good, "d": b64(d)},
        "p-384": ec_jwk(ec.SECP384R1()),
        "rsa": {"kty": "RSA", "n": b64(rsa_numbers.n.to_bytes(256, "big")), "e": "AQAB"},
        "x25519": {**good, "crv": "X25519"},
        "short x": {**good, "x": good["x"][:20]},
        "padded": {**good, "x": good["x"] + "="},
        "not base64": {**good, "x": "!!!!"},
        "small order": {**good, "x": b64(b"\x01" + bytes(31))},  # the neutral point
        "off-curve": {**ec_jwk(), "y": b64(b"\x01" * 32)},
        "wrong alg": {**good, "alg": "ES256"},
        "wrong kid": {**good, "kid": "mine"},
        "extra member": {**good, "owner": "someone"},
        "no kty": {"crv": "Ed25519", "x": good["x"]},
    }
    for name, jwk in bad.items():
        response = await client.post("/v1/keys", json={"jwk": jwk}, headers=head)
        assert response.status_code == 422, (name, response.text)
        assert response.json()["type"].endswith("/unprocessable"), name
    not_object = await client.post("/v1/keys", json={"jwk": "abc"}, headers=head)
    assert not_object.status_code == 400
    owner = await client.post(
        "/v1/keys", json={"jwk": good, "owner_id": str(people["admin"].id)}, headers=head
    )
    assert owner.status_code == 400
    assert await conn.fetchval("SELECT count(*) FROM signing_keys") == 0
