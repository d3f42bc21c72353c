"""Submitting: what is stored, and every way a submission is refused with nothing stored."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.errors import PROBLEM_BASE
from api.settings import Settings
from client.signing import SUBMISSION_TYP, build_payload, sign_submission
from db.versions import scope_versions
from tests.people import Person, bearer, make_division
from tests.submitting import (
    VALUES,
    Signer,
    ec_key,
    post_jws,
    register_key,
    served,
    stored_counts,
    submit,
    today,
)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(obj: dict[str, Any]) -> str:
    return b64(json.dumps(obj, separators=(",", ":")).encode())


def problem_slug(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/problem+json"), response.text
    type_: str = response.json()["type"]
    return type_.removeprefix(PROBLEM_BASE)


async def test_submission_is_stored_with_its_ledger_entry(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    signer = await register_key(conn, people["district_head"])
    values = {
        "ktp_el": {
            "numerator": 1_200_000,
            "denominator": 1_250_000,
            "channels": {"office": 300, "mobile": 120},
        },
        "kia": (150_000, 400_000),
    }
    jws = signer.sign(values, note="Alat perekaman rusak di Kecamatan Ilir Barat I")
    response = await post_jws(client, app, signer.person, jws)
    assert response.status_code == 201, response.text
    body = response.json()
    assert response.headers["location"] == f"/v1/submissions/{body['id']}"
    assert body["district"] == "16.71" and body["division_id"] is None
    assert body["status"] == "received" and body["counting"] is True
    assert body["jws"] == jws
    assert body["ledger"] == {
        "seq": 1,
        "prev_hash": "0" * 64,
        "hash": hashlib.sha256(b"0" * 64 + jws.encode()).hexdigest(),
    }
    assert body["kid"] == signer.kid and body["submitter_id"] == str(signer.person.id)
    assert body["note"] == "Alat perekaman rusak di Kecamatan Ilir Barat I"
    by_code = {v["indicator"]: v for v in body["values"]}
    assert by_code["ktp_el"]["coverage_pct"] == pytest.approx(96.0)
    assert by_code["ktp_el"]["channels"] == {
        "office": 300,
        "kecamatan": 0,
        "mobile": 120,
        "school": 0,
        "hospital": 0,
        "other": 0,
    }
    assert by_code["kia"]["coverage_pct"] == pytest.approx(37.5)
    assert body["flags"] == [] and body["reviews"] == []
    # Stored byte for byte, the decoded payload beside it.
    row = await conn.fetchrow("SELECT jws, payload, seq FROM submissions")
    assert row["jws"] == jws
    signed = json.loads(base64.urlsafe_b64decode(jws.split(".")[1] + "=="))
    assert row["payload"] == signed == body["payload"]
    assert await conn.fetchval("SELECT seq FROM ledger_heads WHERE district_code = '16.71'") == 1
    # The answer to the POST is what a later GET reads back from the database.
    again = await client.get(f"/v1/submissions/{body['id']}", headers=bearer(app, people["admin"]))
    assert again.json() == body
    # The district's data version moved, and with it the province's and the country's
    # (a scope's version sums everything inside it).
    versions = await conn.fetch("SELECT area_code FROM data_versions ORDER BY 1")
    assert [r["area_code"] for r in versions] == ["16.71"]
    assert await scope_versions(conn, ["16.71", "16", "ID", "31"]) == [1, 1, 1, 0]


async def test_es256_key_and_division_reports(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    head = await register_key(conn, people["district_head"], ec_key())
    division = await register_key(conn, people["division_head"])
    first = await submit(client, app, head)
    # A district head may report for a division of the district.
    other_division = await make_division(conn, "16.71", "capil")
    second = await submit(client, app, head, division=str(other_division))
    # A division head reports for their own division, in the district's chain.
    third = await submit(client, app, division)
    assert [first["ledger"]["seq"], second["ledger"]["seq"], third["ledger"]["seq"]] == [1, 2, 3]
    assert second["division_id"] == str(other_division)
    assert third["division_id"] == str(people["division_head"].division_id)
    assert third["ledger"]["prev_hash"] == second["ledger"]["hash"]


async def test_an_outbox_report_signed_days_ago_still_gets_through(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    signer = await register_key(conn, people["district_head"])
    six_days = time.time() - 6 * 24 * 3600
    payload = build_payload("16.71", today() - timedelta(days=6), VALUES, now=six_days)
    response = await post_jws(client, app, signer.person, sign_submission(payload, *_sk(signer)))
    assert response.status_code == 201, response.text
    # A clock a little ahead (within the allowed skew) is fine too.
    payload = build_payload("16.71", today(), VALUES, now=time.time() + 120)
    response = await post_jws(client, app, signer.person, sign_submission(payload, *_sk(signer)))
    assert response.status_code == 201, response.text


def _sk(signer: Signer) -> tuple[Any, str]:
    return signer.key, signer.kid


# -- refusals --------------------------------------------------------------------------


@dataclass
class World:
    app: Litestar
    client: AsyncTestClient[Litestar]
    conn: asyncpg.Connection
    people: dict[str, Person]
    outsiders: dict[str, Person]
    signer: Signer


@dataclass
class Attack:
    """A request built against a world; what it must be answered with."""

    name: str
    build: Callable[[World], Awaitable[tuple[Person, bytes, str]]]
    status: int
    slug: str


def signed_with(payload_changes: dict[str, Any]) -> Callable[[World], Awaitable[Any]]:
    async def build(world: World) -> tuple[Person, bytes, str]:
        payload = world.signer.payload()
        payload.update(payload_changes)
        return world.signer.person, sign_submission(payload, *_sk(world.signer)).encode(), JOSE

    return build


def with_value(code: str, value: Any) -> Callable[[World], Awaitable[Any]]:
    async def build(world: World) -> tuple[Person, bytes, str]:
        payload = world.signer.payload()
        payload["values"][code] = value
        return world.signer.person, sign_submission(payload, *_sk(world.signer)).encode(), JOSE

    return build


JOSE = "application/jose"


async def tampered(world: World) -> tuple[Person, bytes, str]:
    jws = world.signer.sign()
    header, payload, signature = jws.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["values"]["ktp_el"]["numerator"] += 50_000
    return world.signer.person, f"{header}.{segment(claims)}.{signature}".encode(), JOSE


async def someone_elses_key(world: World) -> tuple[Person, bytes, str]:
    # The division head's registered key, used by the district head.
    theirs = await register_key(world.conn, world.people["division_head"])
    payload = build_payload("16.71", today(), VALUES)
    return world.people["district_head"], sign_submission(payload, *_sk(theirs)).encode(), JOSE


async def revoked_key(world: World) -> tuple[Person, bytes, str]:
    signer = await register_key(world.conn, world.people["district_head"])
    revoked = await world.client.post(
        f"/v1/keys/{signer.kid}/revoke", headers=bearer(world.app, signer.person)
    )
    assert revoked.status_code == 200, revoked.text
    return signer.person, signer.sign().encode(), JOSE


async def unregistered_key(world: World) -> tuple[Person, bytes, str]:
    stranger = Signer(world.people["district_head"], ec_key(), "not-a-registered-kid")
    return stranger.person, stranger.sign().encode(), JOSE


def iat_shift(seconds: float) -> Callable[[World], Awaitable[Any]]:
    async def build(world: World) -> tuple[Person, bytes, str]:
        payload = build_payload("16.71", today(), VALUES, now=time.time() + seconds)
        return world.signer.person, sign_submission(payload, *_sk(world.signer)).encode(), JOSE

    return build


async def alg_none(world: World) -> tuple[Person, bytes, str]:
    header = {"alg": "none", "typ": SUBMISSION_TYP, "kid": world.signer.kid}
    token = f"{segment(header)}.{segment(world.signer.payload())}."
    return world.signer.person, token.encode(), JOSE


async def hs256_with_public_key(world: World) -> tuple[Person, bytes, str]:
    header = {"alg": "HS256", "typ": SUBMISSION_TYP, "kid": world.signer.kid}
    signing_input = f"{segment(header)}.{segment(world.signer.payload())}"
    jwk = await world.conn.fetchval("SELECT jwk FROM signing_keys WHERE kid = $1", world.signer.kid)
    mac = hmac.new(jwk["x"].encode(), signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{b64(mac)}"
    return world.signer.person, token.encode(), JOSE


async def wrong_typ(world: World) -> tuple[Person, bytes, str]:
    import jwt

    token = jwt.encode(
        world.signer.payload(),
        world.signer.key,
        algorithm="EdDSA",
        headers={"kid": world.signer.kid, "typ": "JWT"},
    )
    return world.signer.person, token.encode(), JOSE


def content_type(value: str) -> Callable[[World], Awaitable[Any]]:
    async def build(world: World) -> tuple[Person, bytes, str]:
        return world.signer.person, world.signer.sign().encode(), value

    return build


async def oversize(world: World) -> tuple[Person, bytes, str]:
    payload = world.signer.payload()
    payload["note"] = "x" * (70 * 1024)
    return world.signer.person, sign_submission(payload, *_sk(world.signer)).encode(), JOSE


async def outside_scope(world: World) -> tuple[Person, bytes, str]:
    return world.signer.person, world.signer.sign(district="31.71").encode(), JOSE


async def another_district_in_province(world: World) -> tuple[Person, bytes, str]:
    return world.signer.person, world.signer.sign(district="16.02").encode(), JOSE


async def foreign_division(world: World) -> tuple[Person, bytes, str]:
    jakarta = world.outsiders["division_head"].division_id
    return world.signer.person, world.signer.sign(division=str(jakarta)).encode(), JOSE


async def division_head_for_district(world: World) -> tuple[Person, bytes, str]:
    signer = await register_key(world.conn, world.people["division_head"])
    return signer.person, signer.sign(division=None).encode(), JOSE


async def division_head_for_other_division(world: World) -> tuple[Person, bytes, str]:
    signer = await register_key(world.conn, world.people["division_head"])
    other = await make_division(world.conn, "16.71", "capil")
    return signer.person, signer.sign(division=str(other)).encode(), JOSE


async def province_head_submits(world: World) -> tuple[Person, bytes, str]:
    signer = await register_key(world.conn, world.people["province_head"])
    return signer.person, signer.sign(district="16.71").encode(), JOSE


async def future_as_of(world: World) -> tuple[Person, bytes, str]:
    # Past the client's own check (which refuses it at the keyboard): the server's.
    later = (today() + timedelta(days=2)).isoformat()
    return await signed_with({"as_of": later})(world)


async def not_a_jws(world: World) -> tuple[Person, bytes, str]:
    return world.signer.person, b"hello", JOSE


def reencoded(change: Callable[[list[str]], None]) -> Callable[[World], Awaitable[Any]]:
    """A properly signed JWS whose segments ``change`` alters in place."""

    async def build(world: World) -> tuple[Person, bytes, str]:
        parts = world.signer.sign().split(".")
        change(parts)
        return world.signer.person, ".".join(parts).encode(), JOSE

    return build


def _pad(parts: list[str]) -> None:
    parts[1] += "=" * (-len(parts[1]) % 4) or "===="


def _junk(parts: list[str]) -> None:
    parts[2] = parts[2][:10] + "!" + parts[2][11:]


def _header_of(raw: bytes) -> Callable[[list[str]], None]:
    def change(parts: list[str]) -> None:
        parts[0] = base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return change


def _short_signature(parts: list[str]) -> None:
    parts[2] = parts[2][:-4]  # 61 bytes: base64url still, but no Ed25519 signature


def _non_canonical(parts: list[str]) -> None:
    # Ed25519 signatures are 64 bytes, so the last base64url character carries 4 unused
    # bits: setting one decodes to the same bytes, from text that was never signed.
    last = parts[2][-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    parts[2] = parts[2][:-1] + alphabet[alphabet.index(last) | 1]


def signed_raw(change: Callable[[dict[str, Any]], bytes]) -> Callable[[World], Awaitable[Any]]:
    """Signed properly over bytes the client would refuse to build."""

    async def build(world: World) -> tuple[Person, bytes, str]:
        raw = change(world.signer.payload())
        return world.signer.person, world.signer.sign_raw(raw).encode(), JOSE

    return build


def stated(pct: float) -> Callable[[dict[str, Any]], bytes]:
    def change(payload: dict[str, Any]) -> bytes:
        for value in payload["values"].values():
            value["stated_pct"] = pct
        return json.dumps(payload).encode()

    return change


def with_header(extra: dict[str, Any]) -> Callable[[World], Awaitable[Any]]:
    """Signed properly, with ``extra`` in the protected header."""

    async def build(world: World) -> tuple[Person, bytes, str]:
        header = {"alg": "EdDSA", "kid": world.signer.kid, "typ": SUBMISSION_TYP, **extra}
        signing_input = f"{segment(header)}.{segment(world.signer.payload())}"
        signature = world.signer.key.sign(signing_input.encode())
        return world.signer.person, f"{signing_input}.{b64(signature)}".encode(), JOSE

    return build


def with_raw_header(make: Callable[[str], bytes]) -> Callable[[World], Awaitable[Any]]:
    """Signed properly over the header bytes ``make`` writes for the signer's kid."""

    async def build(world: World) -> tuple[Person, bytes, str]:
        header = b64(make(world.signer.kid))
        signing_input = f"{header}.{segment(world.signer.payload())}"
        signature = world.signer.key.sign(signing_input.encode())
        return world.signer.person, f"{signing_input}.{b64(signature)}".encode(), JOSE

    return build


def _alg_twice(kid: str) -> bytes:
    # A decoder keeping the first member reads alg "none".
    return f'{{"alg":"none","alg":"EdDSA","kid":"{kid}","typ":"{SUBMISSION_TYP}"}}'.encode()


async def signed_before_as_of(world: World) -> tuple[Person, bytes, str]:
    # Signed three days ago (inside the iat window), for counts as of today.
    payload = build_payload("16.71", today(), VALUES, now=time.time() - 3 * 24 * 3600)
    return world.signer.person, sign_submission(payload, *_sk(world.signer)).encode(), JOSE


ATTACKS = [
    Attack("tampered payload", tampered, 422, "invalid-signature"),
    Attack("another user's key", someone_elses_key, 422, "invalid-signature"),
    Attack("revoked key", revoked_key, 422, "invalid-signature"),
    Attack("unregistered key", unregistered_key, 422, "invalid-signature"),
    Attack("stale iat", iat_shift(-8 * 24 * 3600), 422, "iat-too-old"),
    Attack("future iat", iat_shift(+600), 422, "iat-in-future"),
    Attack("alg none", alg_none, 422, "invalid-signature"),
    Attack("HS256 with the public key", hs256_with_public_key, 422, "invalid-signature"),
    Attack("typ is not a submission", wrong_typ, 422, "invalid-signature"),
    Attack("not a JWS", not_a_jws, 422, "invalid-signature"),
    Attack("padded base64", reencoded(_pad), 422, "invalid-signature"),
    Attack("not base64url", reencoded(_junk), 422, "invalid-signature"),
    Attack("non-canonical base64url", reencoded(_non_canonical), 422, "invalid-signature"),
    Attack("short signature", reencoded(_short_signature), 422, "invalid-signature"),
    Attack("header not JSON", reencoded(_header_of(b"{alg: EdDSA}")), 422, "invalid-signature"),
    Attack("header not UTF-8", reencoded(_header_of(b'{"alg":"\xff"}')), 422, "invalid-signature"),
    Attack("header not an object", reencoded(_header_of(b'["EdDSA"]')), 422, "invalid-signature"),
    Attack("crit extension", with_header({"crit": ["exp"], "exp": 1}), 422, "invalid-signature"),
    Attack(
        "unencoded payload",
        with_header({"b64": False, "crit": ["b64"]}),
        422,
        "invalid-signature",
    ),
    Attack("b64 header", with_header({"b64": True}), 422, "invalid-signature"),
    Attack("header member named twice", with_raw_header(_alg_twice), 422, "invalid-signature"),
    Attack(
        "key location in the header",
        with_header({"jku": "https://keys.example/jwks.json"}),
        422,
        "invalid-signature",
    ),
    Attack(
        "embedded key in the header",
        with_header({"jwk": {"kty": "OKP", "crv": "Ed25519", "x": b64(bytes(32))}}),
        422,
        "invalid-signature",
    ),
    Attack("JSON content type", content_type("application/json"), 415, "unsupported-media-type"),
    Attack("text content type", content_type("text/plain"), 415, "unsupported-media-type"),
    Attack(
        "JWS JSON serialisation",
        content_type("application/jose+json"),
        415,
        "unsupported-media-type",
    ),
    Attack("oversize body", oversize, 413, "payload-too-large"),
    Attack("district outside scope", outside_scope, 404, "not-found"),
    Attack("another district of the province", another_district_in_province, 404, "not-found"),
    Attack("division of another district", foreign_division, 422, "invalid-division"),
    Attack("division head for the district", division_head_for_district, 403, "forbidden"),
    Attack(
        "division head for another division", division_head_for_other_division, 403, "forbidden"
    ),
    Attack("province head submits", province_head_submits, 403, "forbidden"),
    Attack("as_of in the future", future_as_of, 422, "future-as-of"),
    Attack("as_of after the day it was signed", signed_before_as_of, 422, "future-as-of"),
    Attack(
        "negative numerator",
        with_value(
            "ktp_el", {"numerator": -1, "denominator": 10, "stated_pct": None, "channels": None}
        ),
        422,
        "invalid-submission",
    ),
    Attack(
        "fractional numerator",
        with_value(
            "ktp_el", {"numerator": 1.5, "denominator": 10, "stated_pct": None, "channels": None}
        ),
        422,
        "invalid-submission",
    ),
    Attack(
        "boolean numerator",
        with_value(
            "ktp_el", {"numerator": True, "denominator": 10, "stated_pct": None, "channels": None}
        ),
        422,
        "invalid-submission",
    ),
    Attack(
        "numeric string",
        with_value(
            "ktp_el", {"numerator": "5", "denominator": 10, "stated_pct": None, "channels": None}
        ),
        422,
        "invalid-submission",
    ),
    Attack(
        "zero denominator",
        with_value(
            "ktp_el", {"numerator": 0, "denominator": 0, "stated_pct": None, "channels": None}
        ),
        422,
        "invalid-submission",
    ),
    Attack(
        "negative channel",
        with_value(
            "ktp_el",
            {"numerator": 1, "denominator": 10, "stated_pct": None, "channels": {"office": -3}},
        ),
        422,
        "invalid-submission",
    ),
    Attack(
        "unknown channel",
        with_value(
            "ktp_el",
            {"numerator": 1, "denominator": 10, "stated_pct": None, "channels": {"drive_in": 3}},
        ),
        422,
        "invalid-submission",
    ),
    Attack(
        "count beyond bigint",
        with_value("ktp_el", {"numerator": 2**63, "denominator": 2**63}),
        422,
        "invalid-submission",
    ),
    Attack(
        "unknown indicator",
        with_value("ktp_digital", {"numerator": 1, "denominator": 10}),
        422,
        "unknown-indicator",
    ),
    Attack("no values", signed_with({"values": {}}), 422, "invalid-submission"),
    Attack("unknown field", signed_with({"extra": 1}), 422, "invalid-submission"),
    Attack("jti not a UUID", signed_with({"jti": "abc"}), 422, "invalid-submission"),
    Attack("province as district", signed_with({"district": "16"}), 422, "invalid-submission"),
    # jsonb keeps 1e23 as the integer 10^23, which the ledger check would call tampered.
    Attack("stated percentage 1e23", signed_raw(stated(1e23)), 422, "invalid-submission"),
    Attack(
        "stated figure over a million", signed_raw(stated(1e6 + 0.5)), 422, "invalid-submission"
    ),
    Attack(
        "payload not UTF-8",
        signed_raw(lambda p: json.dumps(p).encode()[:-1] + b',"\xff":1}'),
        422,
        "invalid-submission",
    ),
    Attack(
        "payload nested too deeply",
        signed_raw(lambda p: b"[" * 10_000 + b"]" * 10_000),
        422,
        "invalid-submission",
    ),
    Attack("as_of before 2000", signed_with({"as_of": "1999-12-31"}), 422, "as-of-too-early"),
    Attack("as_of in year 1", signed_with({"as_of": "0001-01-01"}), 422, "as-of-too-early"),
]


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.name)
async def test_refused_with_nothing_stored(
    attack: Attack,
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    outsiders: dict[str, Person],
) -> None:
    signer = await register_key(conn, people["district_head"])
    world = World(app, client, conn, people, outsiders, signer)
    person, body, media = await attack.build(world)
    before = await stored_counts(conn)
    response = await post_jws(client, app, person, body, content_type=media, idempotency_key="k1")
    assert response.status_code == attack.status, response.text
    assert problem_slug(response) == attack.slug
    assert await stored_counts(conn) == before


async def test_the_header_extension_cases_differ_only_in_their_header(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    outsiders: dict[str, Person],
) -> None:
    # The same builder without extra header fields is accepted, so the refusals above
    # come from the extensions, not from how the token was put together.
    signer = await register_key(conn, people["district_head"])
    world = World(app, client, conn, people, outsiders, signer)
    person, body, media = await with_header({})(world)
    response = await post_jws(client, app, person, body, content_type=media)
    assert response.status_code == 201, response.text


async def test_hs256_signed_with_any_form_of_the_public_key_is_refused(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    signer = await register_key(conn, people["district_head"])
    header = {"alg": "HS256", "typ": SUBMISSION_TYP, "kid": signer.kid}
    signing_input = f"{segment(header)}.{segment(signer.payload())}"
    jwk = await conn.fetchval("SELECT jwk FROM signing_keys WHERE kid = $1", signer.kid)
    for secret in (
        jwk["x"].encode(),
        json.dumps(jwk).encode(),
        base64.urlsafe_b64decode(jwk["x"] + "="),
    ):
        mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        response = await post_jws(client, app, signer.person, f"{signing_input}.{b64(mac)}")
        assert response.status_code == 422
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 0


async def test_replayed_jti_is_a_conflict(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    signer = await register_key(conn, people["district_head"])
    jws = signer.sign()
    assert (await post_jws(client, app, signer.person, jws)).status_code == 201
    before = await stored_counts(conn)
    again = await post_jws(client, app, signer.person, jws)
    assert again.status_code == 409 and problem_slug(again) == "jti-replayed"
    # The same jti re-signed with other counts is the same report sent twice, too.
    payload = json.loads(base64.urlsafe_b64decode(jws.split(".")[1] + "=="))
    payload["values"]["ktp_el"]["numerator"] += 1
    resigned = sign_submission(payload, *_sk(signer))
    again = await post_jws(client, app, signer.person, resigned)
    assert again.status_code == 409 and problem_slug(again) == "jti-replayed"
    assert await stored_counts(conn) == before


async def test_unauthenticated_and_role_checks(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    anonymous = await client.post(
        "/v1/submissions", content=b"a.b.c", headers={"Content-Type": JOSE}
    )
    assert anonymous.status_code == 401
    monitor = await post_jws(client, app, people["province_monitor"], "a.b.c")
    assert monitor.status_code == 403


async def test_a_failure_after_the_insert_leaves_no_partial_row(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    signer = await register_key(conn, people["district_head"])
    await submit(client, app, signer)
    before = await stored_counts(conn)

    from db import appends
    from db import submissions as sub_db

    def crashing(write: Any) -> Any:
        async def crash(*args: Any, **kwargs: Any) -> None:
            await write(*args, **kwargs)
            raise RuntimeError("the server died mid-request")

        return crash

    # Everything is written, then the request fails before its commit: the entry, its
    # values, the head, the Idempotency-Key answer and the version must all vanish. The
    # batch fails so, then the submission on its own (api.ingest falls back to that).
    monkeypatch.setattr("api.ingest.appends.write", crashing(appends.write))
    monkeypatch.setattr(
        "api.submissions.sub_db.append_submission", crashing(sub_db.append_submission)
    )
    response = await post_jws(client, app, signer.person, signer.sign(), idempotency_key="k")
    assert response.status_code == 500
    assert await stored_counts(conn) == before
    assert await conn.fetchval("SELECT sum(version) FROM data_versions") == 1
    monkeypatch.undo()
    again = await submit(client, app, signer)
    assert again["ledger"]["seq"] == 2


async def test_a_deeply_nested_jws_header_is_refused_not_a_crash(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    signer = await register_key(conn, people["district_head"])
    before = await stored_counts(conn)
    header = base64.urlsafe_b64encode(b"[" * 30_000).rstrip(b"=").decode()
    good = signer.sign().split(".")
    response = await post_jws(client, app, signer.person, f"{header}.{good[1]}.{good[2]}")
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await stored_counts(conn) == before


@pytest.mark.parametrize("batch_max", [0, 64])
async def test_an_indicator_removed_after_a_worker_saw_it_named_is_refused_as_unknown(
    batch_max: int, settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """A worker remembers the indicator codes it has seen; one removed from the
    catalogue since is refused as unknown (422), not as a conflict, and nothing is kept."""
    from db import submissions as sub_db
    from tests.test_catalogue import indicator

    signer = await register_key(conn, people["district_head"])
    async with served(msgspec.structs.replace(settings, ingest_batch_max=batch_max)) as (
        app,
        http,
    ):
        admin = bearer(app, people["admin"])
        made = await http.post("/v1/indicators", json=indicator("rekam_harian"), headers=admin)
        assert made.status_code == 201, made.text
        assert await sub_db.known_indicators(conn, ["rekam_harian"]) == {"rekam_harian": "per_day"}
        removed = await http.delete("/v1/indicators/rekam_harian", headers=admin)
        assert removed.status_code == 204, removed.text
        before = await stored_counts(conn)
        sent = await http.post(
            "/v1/submissions",
            content=signer.sign({"ktp_el": (10, 20), "rekam_harian": (5, 30)}),
            headers={**bearer(app, signer.person), "Content-Type": JOSE},
        )
        again = await http.post(  # and the worker no longer takes the code for known
            "/v1/submissions",
            content=signer.sign({"rekam_harian": (6, 30)}),
            headers={**bearer(app, signer.person), "Content-Type": JOSE},
        )
    assert sent.status_code == 422, sent.text
    assert sent.json()["type"].endswith("unknown-indicator")
    assert sent.json()["indicators"] == ["rekam_harian"]
    assert again.status_code == 422 and again.json()["indicators"] == ["rekam_harian"]
    assert await stored_counts(conn) == before


async def test_the_body_limit_for_reports_is_the_configured_one(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    signer = await register_key(conn, people["district_head"])
    small = msgspec.structs.replace(settings, max_body_bytes=2048)
    async with served(small) as (app, http):
        headers = {**bearer(app, signer.person), "Content-Type": JOSE}
        fits = await http.post(
            "/v1/submissions", content=signer.sign(note="x" * 200), headers=headers
        )
        too_big = await http.post(
            "/v1/submissions", content=signer.sign(note="x" * 3000), headers=headers
        )
    assert fits.status_code == 201, fits.text
    assert too_big.status_code == 413, too_big.text
    assert too_big.headers["content-type"].startswith("application/problem+json")
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 1


async def test_a_lone_surrogate_in_the_payload_is_named_rather_than_called_not_json(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """``"\\ud800"`` is JSON but no text: refused (PostgreSQL could not keep it), and
    said so. It was "not JSON", from msgspec's "Input data was truncated"."""
    signer = await register_key(conn, people["district_head"])
    raw = json.dumps(signer.payload(note="x")).replace('"note": "x"', '"note": "\\ud800"')
    assert "\\ud800" in raw
    response = await post_jws(client, app, signer.person, signer.sign_raw(raw.encode()))
    assert response.status_code == 422, response.text
    assert problem_slug(response) == "invalid-submission"
    assert "surrogate" in response.json()["detail"], response.text
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 0


async def test_a_pattern_the_payload_fails_is_said_in_words(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """A district head reads "Expected a district code such as 16.71", not the regular
    expression behind it."""
    signer = await register_key(conn, people["district_head"])
    payload = signer.payload()
    payload["district"] = "1671"
    response = await post_jws(client, app, signer.person, signer.sign_raw(payload))
    assert response.status_code == 422, response.text
    assert problem_slug(response) == "invalid-submission"
    detail = response.json()["detail"]
    assert detail == (
        "The payload is not valid: Expected a district code such as 16.71 - at `$.district`"
    ), detail
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 0
