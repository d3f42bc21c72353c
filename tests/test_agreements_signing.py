"""Two-party signatures: order, identity, document hash, keys, and immutability."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time

import asyncpg
import jwt
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.agreement_document import SIGNATURE_TYP
from tests.agreement_helpers import (
    Signer,
    activate,
    palembang_draft,
    register_signer,
    sign,
    targets,
)
from tests.people import Person, bearer


async def signature_count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM agreement_signatures"))


async def test_second_then_first_makes_it_active(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    agreement = await palembang_draft(client, app, people)
    head = await register_signer(conn, people["district_head"])
    province = await register_signer(conn, people["province_head"])
    # The first party cannot sign before the second.
    early = await sign(client, app, province, agreement, "first")
    assert early.status_code == 409 and early.json()["type"].endswith("/signing-order")
    second = await sign(client, app, head, agreement, "second")
    assert second.status_code == 201 and second.json()["status"] == "signed_by_second"
    again = await sign(client, app, head, agreement, "second")
    assert again.status_code == 409 and again.json()["type"].endswith("/already-signed")
    first = await sign(client, app, province, agreement, "first")
    body = first.json()
    assert body["status"] == "active" and body["activated_at"]
    assert [s["party"] for s in body["signatures"]] == ["second", "first"]
    assert all(s["document_sha256"] == agreement["document_sha256"] for s in body["signatures"])
    # Each stored JWS verifies with the signer's key and names this document.
    for signature, signer in zip(body["signatures"], (head, province), strict=True):
        claims = jwt.decode(signature["jws"], signer.private.public_key(), algorithms=["EdDSA"])
        assert claims["document_sha256"] == agreement["document_sha256"]
    # An active agreement cannot be edited or signed again.
    edit = await client.patch(
        f"/v1/agreements/{agreement['id']}",
        json={"targets": targets(ktp_el=90)},
        headers=bearer(app, people["province_head"]),
    )
    assert edit.status_code == 409
    late = await sign(client, app, province, agreement, "first")
    assert late.status_code == 409
    assert await signature_count(conn) == 2


async def test_bad_signatures_store_nothing(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    outsiders: dict[str, Person],
) -> None:
    agreement = await palembang_draft(client, app, people)
    head = await register_signer(conn, people["district_head"])
    other = await register_signer(conn, people["division_head"])
    outsider = await register_signer(conn, outsiders["district_head"])
    url = f"/v1/agreements/{agreement['id']}/signatures"
    me = bearer(app, people["district_head"])

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    statement = {
        "agreement_id": agreement["id"],
        "document_sha256": agreement["document_sha256"],
        "party": "second",
        "iat": 1,
    }
    header = {"alg": "HS256", "kid": head.kid, "typ": SIGNATURE_TYP}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(statement).encode())}"
    hs256 = (
        signing_input
        + "."
        + b64(
            hmac.new(
                json.dumps(head.private.public_key().public_bytes_raw().hex()).encode(),
                signing_input.encode(),
                hashlib.sha256,
            ).digest()
        )
    )
    none = (
        f"{b64(json.dumps({**header, 'alg': 'none'}).encode())}."
        f"{b64(json.dumps(statement).encode())}."
    )
    tampered_parts = head.statement(agreement, "second").split(".")
    # Signed properly, over a header that also names where to fetch a key.
    jku_header = {"alg": "EdDSA", "kid": head.kid, "typ": SIGNATURE_TYP, "jku": "https://k.example"}
    jku_input = f"{b64(json.dumps(jku_header).encode())}.{tampered_parts[1]}"
    with_jku = f"{jku_input}.{b64(head.private.sign(jku_input.encode()))}"
    tampered_parts[1] = b64(json.dumps({**statement, "party": "first"}).encode())
    cases: dict[str, tuple[str, dict[str, str], int]] = {
        "another document": (head.statement(agreement, "second", sha256="0" * 64), me, 422),
        "another agreement": (
            head.statement(
                agreement, "second", agreement_id="00000000-0000-0000-0000-000000000001"
            ),
            me,
            422,
        ),
        "wrong party in statement": (head.statement(agreement, "first"), me, 422),
        "dated ten minutes ahead": (
            head.statement(agreement, "second", iat=int(time.time()) + 600),
            me,
            422,
        ),
        "dated eight days ago": (
            head.statement(agreement, "second", iat=int(time.time()) - 8 * 24 * 3600),
            me,
            422,
        ),
        "someone else's key": (other.statement(agreement, "second"), me, 422),
        "alg none": (none, me, 422),
        "HS256": (hs256, me, 422),
        "tampered": (".".join(tampered_parts), me, 422),
        "not a JWS": ("hello", me, 422),
        "a key location in the header": (with_jku, me, 422),
        # Not a party, though the agreement is visible to them (their own district).
        "division head": (
            other.statement(agreement, "second"),
            bearer(app, people["division_head"]),
            404,
        ),
        # Outside their scope entirely.
        "other district": (
            outsider.statement(agreement, "second"),
            bearer(app, outsiders["district_head"]),
            404,
        ),
    }
    for name, (jws, headers, status) in cases.items():
        response = await client.post(url, json={"jws": jws}, headers=headers)
        assert response.status_code == status, (name, response.text)
        assert response.headers["content-type"].startswith("application/problem+json"), name
        if name == "a key location in the header":  # refused for it, not for another reason
            assert response.json()["members"] == ["jku"], response.text
    # A revoked key.
    await conn.execute("UPDATE signing_keys SET revoked_at = now() WHERE kid = $1", head.kid)
    revoked = await client.post(url, json={"jws": head.statement(agreement, "second")}, headers=me)
    assert revoked.status_code == 422 and "revoked" in revoked.json()["detail"]
    assert await signature_count(conn) == 0
    status = await conn.fetchval("SELECT status FROM agreements WHERE id = $1", agreement["id"])
    assert status == "draft"


async def test_province_head_is_not_a_party_to_sign_as_second(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """The first party's office holder cannot sign in the second party's place."""
    agreement = await palembang_draft(client, app, people)
    province = await register_signer(conn, people["province_head"])
    response = await sign(client, app, province, agreement, "second")
    assert response.status_code == 422
    assert response.json()["type"].endswith("/document-mismatch")
    assert await signature_count(conn) == 0


async def test_amendment_supersedes_on_activation(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    agreement = await palembang_draft(client, app, people)
    head = await register_signer(conn, people["district_head"])
    province = await register_signer(conn, people["province_head"])
    await activate(client, app, agreement, second=head, first=province)
    amended = await client.post(
        f"/v1/agreements/{agreement['id']}/amendments",
        json={
            "reason": "mutasi_pejabat",
            "note": "Kadis dimutasi; PLT ditunjuk",
            "second_party": {"official": "PLT Kadis", "acting": "plt"},
        },
        headers=bearer(app, people["province_head"]),
    )
    assert amended.status_code == 201, amended.text
    v2 = amended.json()
    assert v2["version"] == 2 and v2["lineage_id"] == agreement["lineage_id"]
    assert v2["status"] == "draft" and v2["second_party"]["acting"] == "plt"
    assert v2["amendment"] == {
        "of": agreement["id"],
        "reason": "mutasi_pejabat",
        "note": "Kadis dimutasi; PLT ditunjuk",
    }
    assert v2["document_sha256"] != agreement["document_sha256"]
    # While v2 is being signed, v1 stays active.
    still = (
        await client.get(f"/v1/agreements/{agreement['id']}", headers=bearer(app, people["admin"]))
    ).json()
    assert still["status"] == "active"
    await activate(client, app, v2, second=head, first=province)
    old = (
        await client.get(f"/v1/agreements/{agreement['id']}", headers=bearer(app, people["admin"]))
    ).json()
    assert old["status"] == "superseded" and old["ended_at"]
    history = await client.get(
        f"/v1/agreements/{v2['id']}/versions", headers=bearer(app, people["district_head"])
    )
    assert [(v["version"], v["status"]) for v in history.json()["items"]] == [
        (1, "superseded"),
        (2, "active"),
    ]
    active = await conn.fetchval(
        "SELECT count(*) FROM agreements WHERE second_area = '16.71' AND status = 'active'"
    )
    assert active == 1


async def test_es256_signatures_are_accepted(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    from api.jwk import b64url_encode, thumbprint

    agreement = await palembang_draft(client, app, people)
    private = ec.generate_private_key(ec.SECP256R1())
    numbers = private.public_key().public_numbers()
    jwk = {
        "kty": "EC",
        "crv": "P-256",
        "x": b64url_encode(numbers.x.to_bytes(32, "big")),
        "y": b64url_encode(numbers.y.to_bytes(32, "big")),
    }
    registered = await client.post(
        "/v1/keys", json={"jwk": jwk}, headers=bearer(app, people["district_head"])
    )
    assert registered.status_code == 201
    signer = Signer(people["district_head"], private, thumbprint(jwk))  # type: ignore[arg-type]
    # EdDSA claimed for an EC key: refused (the algorithm is pinned to the key).
    genuine = signer.statement(agreement, "second", alg="ES256")
    relabelled = (
        base64.urlsafe_b64encode(
            json.dumps({"alg": "EdDSA", "kid": signer.kid, "typ": SIGNATURE_TYP}).encode()
        )
        .rstrip(b"=")
        .decode()
    )
    mismatch = ".".join([relabelled, *genuine.split(".")[1:]])
    bad = await client.post(
        f"/v1/agreements/{agreement['id']}/signatures",
        json={"jws": mismatch},
        headers=bearer(app, people["district_head"]),
    )
    assert bad.status_code == 422
    ok = await client.post(
        f"/v1/agreements/{agreement['id']}/signatures",
        json={"jws": signer.statement(agreement, "second", alg="ES256")},
        headers=bearer(app, people["district_head"]),
    )
    assert ok.status_code == 201, ok.text
