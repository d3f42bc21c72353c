"""What a black-box review of intake and the ledger found on 28 November (each test
failed before its fix): a payload with a byte order mark called a lone surrogate, an
Idempotency-Key's trailing whitespace taken as part of it (and a UTF-8 key echoed as
Latin-1), an RSA key refused for its members rather than its type, whitespace around
the JWS undocumented, an auditor's second ``--district`` dropped, a number out of range
placed nowhere in the payload, and a NUL in a key's label refused by the database."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from litestar import Litestar
from litestar.testing import AsyncTestClient

from client.keys import public_jwk
from tests.people import Person, bearer
from tests.submitting import (
    post_jws,
    problem_slug,
    register_key,
    submit,
    verify_all_with_cli,
)


@pytest.mark.parametrize(
    ("encode", "said"),
    [
        (lambda text: b"\xef\xbb\xbf" + text.encode(), "byte order mark"),
        (lambda text: text.encode("utf-16"), "not JSON in UTF-8"),
    ],
    ids=["bom", "utf-16"],
)
async def test_a_payload_not_in_plain_utf8_is_named_as_such(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    encode: Any,
    said: str,
) -> None:
    """Both were told they escape half of a surrogate pair (Python's decoder, asked why
    msgspec refused them, took the BOM and UTF-16 in its stride)."""
    signer = await register_key(conn, people["district_head"])
    raw = encode(json.dumps(signer.payload()))
    response = await post_jws(client, app, signer.person, signer.sign_raw(raw))
    assert response.status_code == 422, response.text
    assert problem_slug(response) == "invalid-submission"
    assert said in response.json()["detail"], response.text
    assert "surrogate" not in response.json()["detail"]
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 0


async def test_whitespace_around_an_idempotency_key_is_not_part_of_it(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """RFC 9110 5.5: a field value has no leading or trailing whitespace. The parser
    dropped the leading part; a trailing space or tab was refused as a bad key."""
    signer = await register_key(conn, people["district_head"])
    jws = signer.sign()
    first = await post_jws(client, app, signer.person, jws, idempotency_key="outbox-7 \t")
    assert first.status_code == 201, first.text
    again = await post_jws(client, app, signer.person, jws, idempotency_key="outbox-7")
    assert again.status_code == 201, again.text
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert await conn.fetchval("SELECT key FROM idempotency_keys") == "outbox-7"
    # A key in UTF-8 is refused, and shown as the client wrote it (it was "klÃ¼c").
    refused = await client.post(
        "/v1/submissions",
        content=signer.sign().encode(),
        headers=[
            *bearer(app, signer.person).items(),
            ("Content-Type", "application/jose"),
            ("Idempotency-Key", "klüc".encode()),
        ],
    )
    assert refused.status_code == 400, refused.text
    assert refused.json()["key"] == "klüc"


async def test_an_rsa_key_is_refused_for_its_type(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    """It was "unexpected JWK members: e, n", which sends the holder after its members."""
    response = await client.post(
        "/v1/keys",
        json={"jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}},
        headers=bearer(app, people["district_head"]),
    )
    assert response.status_code == 422, response.text
    assert "RSA keys are not accepted" in response.json()["detail"]
    other = await client.post(
        "/v1/keys",
        json={"jwk": {"kty": "oct", "k": "c2VjcmV0"}},
        headers=bearer(app, people["district_head"]),
    )
    assert other.status_code == 422, other.text
    # A private member is still named first: it says the most.
    assert "private key" in other.json()["detail"]
    fine = public_jwk(Ed25519PrivateKey.generate())
    extra = await client.post(
        "/v1/keys",
        json={"jwk": {**fine, "n": "AQAB"}},
        headers=bearer(app, people["district_head"]),
    )
    assert extra.status_code == 422, extra.text
    assert "unexpected JWK members: n" in extra.json()["detail"]


async def test_whitespace_around_the_jws_is_dropped_and_the_chain_holds(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """A file sent with ``curl --data-binary @file`` ends in a newline: the JWS is the
    body without it, as the document now says, and the ledger hashes that JWS."""
    signer = await register_key(conn, people["district_head"])
    jws = signer.sign()
    response = await post_jws(client, app, signer.person, f" \t{jws}\r\n")
    assert response.status_code == 201, response.text
    assert await conn.fetchval("SELECT jws FROM submissions") == jws
    doc = (await client.get("/schema/openapi.json")).json()
    body = doc["paths"]["/v1/submissions"]["post"]["requestBody"]
    assert "Whitespace around it" in body["description"]
    verified = await client.get(
        "/v1/districts/16.71/ledger/verify", headers=bearer(app, people["province_head"])
    )
    assert verified.json()["ok"] is True, verified.text


async def test_an_auditor_may_name_several_districts(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    outsiders: dict[str, Person],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``--district A --district B`` checked only B, and said all was well."""
    await submit(client, app, await register_key(conn, people["district_head"]))
    other = outsiders["district_head"].area_code
    await submit(client, app, await register_key(conn, outsiders["district_head"]))
    await conn.execute("UPDATE submissions SET note = 'edited' WHERE district_code = '16.71'")
    which = ("--district", "16.71", "--district", other, "--district", "16.71")
    code, ok, err = await verify_all_with_cli(database_url, monkeypatch, capsys, which)
    assert ok == {"16.71": False, other: True}, err
    assert code == 1
    assert "verified 2 ledger(s): 1 broken" in err


@pytest.mark.parametrize(
    ("member", "number", "path"),
    [
        ("stated_pct", "1e400", "$.values.ktp_el.stated_pct"),
        ("numerator", "1" + "0" * 5000, "$.values.ktp_el.numerator"),
    ],
    ids=["double", "integer"],
)
async def test_a_number_out_of_range_is_placed_in_the_payload(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    member: str,
    number: str,
    path: str,
) -> None:
    """It was "Number out of range - at `$[...][...][...]`": msgspec names no member of
    a document whose shape it does not know yet."""
    signer = await register_key(conn, people["district_head"])
    payload = signer.payload({"ktp_el": {"numerator": 5, "denominator": 10}})
    placeholder = '"numerator": 5' if member == "numerator" else '"stated_pct": null'
    text = json.dumps(payload)
    assert placeholder in text
    text = text.replace(placeholder, f'"{member}": {number}')
    response = await post_jws(client, app, signer.person, signer.sign_raw(text.encode()))
    assert response.status_code == 422, response.text
    assert f"at `{path}`" in response.json()["detail"], response.text
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 0


async def test_a_nul_in_a_key_label_is_a_validation_error_naming_it(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    """It reached the database and came back as a bare "Text may not contain NUL
    characters", naming no field."""
    response = await client.post(
        "/v1/keys",
        json={"jwk": public_jwk(Ed25519PrivateKey.generate()), "label": "a\u0000b"},
        headers=bearer(app, people["district_head"]),
    )
    assert response.status_code == 400, response.text
    assert problem_slug(response) == "validation"
    assert "$.label" in json.dumps(response.json()["errors"]), response.text
