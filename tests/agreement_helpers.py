"""Helpers for agreement tests: signing keys, signature statements, drafting and signing."""

from __future__ import annotations

import time
from typing import Any

import asyncpg
import jwt
from cryptography.hazmat.primitives.asymmetric import ed25519
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.agreement_document import SIGNATURE_TYP
from client.keys import jwk_thumbprint, public_jwk
from tests.people import Person, bearer, make_user


class Signer:
    """A person with a registered Ed25519 key (generated in the test, never stored)."""

    def __init__(self, person: Person, private: ed25519.Ed25519PrivateKey, kid: str) -> None:
        self.person = person
        self.private = private
        self.kid = kid

    def statement(
        self,
        agreement: dict[str, Any],
        party: str,
        *,
        sha256: str | None = None,
        agreement_id: str | None = None,
        alg: str = "EdDSA",
        iat: int | None = None,
    ) -> str:
        payload = {
            "agreement_id": agreement_id or agreement["id"],
            "document_sha256": sha256 or agreement["document_sha256"],
            "party": party,
            "iat": int(time.time()) if iat is None else iat,
        }
        return jwt.encode(
            payload, self.private, algorithm=alg, headers={"kid": self.kid, "typ": SIGNATURE_TYP}
        )


async def register_signer(conn: asyncpg.Connection, person: Person) -> Signer:
    """Register a fresh key for ``person`` straight in the database (the API path is tested
    in test_users_keys)."""
    private = ed25519.Ed25519PrivateKey.generate()
    jwk = public_jwk(private.public_key())
    kid = jwk_thumbprint(jwk)
    await conn.execute(
        "INSERT INTO signing_keys (kid, owner_id, kty, alg, jwk) "
        "VALUES ($1, $2, 'OKP', 'EdDSA', $3)",
        kid,
        person.id,
        {**jwk, "kid": kid},
    )
    return Signer(person, private, kid)


def targets(**annual: float) -> list[dict[str, Any]]:
    return [{"indicator": code, "annual": value} for code, value in annual.items()]


async def draft(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    first: Person,
    *,
    year: int,
    level: str,
    second: dict[str, Any],
    target_list: list[dict[str, Any]],
) -> dict[str, Any]:
    response = await client.post(
        "/v1/agreements",
        json={"year": year, "level": level, "second_party": second, "targets": target_list},
        headers=bearer(app, first),
    )
    assert response.status_code == 201, response.text
    return response.json()


async def sign(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    signer: Signer,
    agreement: dict[str, Any],
    party: str,
) -> Any:
    return await client.post(
        f"/v1/agreements/{agreement['id']}/signatures",
        json={"jws": signer.statement(agreement, party)},
        headers=bearer(app, signer.person),
    )


async def activate(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    agreement: dict[str, Any],
    *,
    second: Signer,
    first: Signer,
) -> dict[str, Any]:
    one = await sign(client, app, second, agreement, "second")
    assert one.status_code == 201, one.text
    two = await sign(client, app, first, agreement, "first")
    assert two.status_code == 201, two.text
    body = two.json()
    assert body["status"] == "active"
    return body


async def national_agreement(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    *,
    year: int,
    target_list: list[dict[str, Any]],
    official: str = "Kadis Sumsel",
) -> Signer:
    """South Sumatra's (16) active agreement with the ministry for ``year``; returns the
    province head's signer, the first party of the province's district agreements."""
    ministry = await register_signer(conn, people["ministry_monitor"])
    province = await register_signer(conn, people["province_head"])
    national = await draft(
        client,
        app,
        people["ministry_monitor"],
        year=year,
        level="national_province",
        second={"area_code": "16", "official": official},
        target_list=target_list,
    )
    await activate(client, app, national, second=province, first=ministry)
    return province


async def palembang_draft(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    *,
    year: int = 2021,
    target_list: list[dict[str, Any]] | None = None,
    official: str = "Kadis Kota Palembang",
) -> dict[str, Any]:
    """The province head's draft agreement with Kota Palembang (16.71)."""
    return await draft(
        client,
        app,
        people["province_head"],
        year=year,
        level="province_district",
        second={"area_code": "16.71", "official": official},
        target_list=targets(ktp_el=100, kia=30, akta_lahir=95)
        if target_list is None
        else target_list,
    )


async def district_agreement(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    province: Signer,
    code: str,
    target_list: list[dict[str, Any]],
    *,
    year: int = 2021,
) -> tuple[dict[str, Any], Signer]:
    """District ``code``'s active agreement with its province head (the signer
    ``province``, who drafts it), signed by a new district head; returns it and their
    signer."""
    head = await make_user(conn, "district_head", username=f"kadis_{code}", area_code=code)
    signer = await register_signer(conn, head)
    agreement = await draft(
        client,
        app,
        province.person,
        year=year,
        level="province_district",
        second={"area_code": code, "official": f"Kadis {code}"},
        target_list=target_list,
    )
    return await activate(client, app, agreement, second=signer, first=province), signer
