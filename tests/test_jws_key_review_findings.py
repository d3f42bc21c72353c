"""Found by a review of how signed JWS are verified and how signing keys are registered,
rotated and revoked. The findings fail on the code they were written against. The last
test passes: it checks that signature malleability cannot store a report twice, which
nothing else here tests."""

from __future__ import annotations

import base64
import time
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.settings import Settings
from tests.people import Person, bearer, forged_after_rotation
from tests.submitting import (
    JOSE,
    Signer,
    ec_key,
    problem_slug,
    register_key,
    served,
    stored_counts,
)
from tests.test_users_keys import ec_jwk, ed_jwk

#: The orders of the P-256 and Ed25519 groups.
P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
ED25519_ORDER = 2**252 + 27742317777372353535851937790883648493


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- 1. a rotated-out server key still mints long-lived tokens -------------------------


async def test_a_rotated_out_server_key_cannot_mint_a_backdated_long_lived_token(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    """README, "Accounts and tokens": "`kinerja keys rotate` adds a key that signs from
    then on; tokens an earlier key signed before the rotation verify until they expire,
    and none it signs after (a leaked key is rotated out ...)". Access tokens live 15
    minutes (`KINERJA_ACCESS_TOKEN_TTL_S` 900).

    The token-signing key leaks and the operator rotates it. An hour later, whoever holds
    the old key signs an admin token whose `iat` says it was made before the rotation and
    whose `exp` is a year away. The server only compares the token's own, attacker-chosen
    `iat` with the rotation time, and never bounds `exp` by the lifetime it issues
    tokens with, so the forged token is accepted (200) and stays so for a year: rotating
    does not answer a leaked key. Every token the old key honestly issued expired at the
    latest ttl + grace after the rotation; this one must be refused (401)."""
    now = int(time.time())
    backdated = now - 90 * 60  # half an hour before the rotation
    forged = await forged_after_rotation(
        conn, app, people["admin"], iat=backdated, exp=now + 365 * 24 * 3600
    )
    response = await client.get("/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401, (
        "a token signed by the rotated-out key after the rotation, backdated, is accepted: "
        f"{response.status_code} {response.text[:200]}"
    )


# -- 2. key_ops is an allowed JWK member that is never checked -------------------------


@pytest.mark.parametrize(
    ("key_ops", "kind"),
    [
        (["encrypt"], "ed"),
        (["deriveKey"], "ec"),
        ("verify", "ed"),
        (["verify", "verify"], "ed"),
    ],
    ids=["encrypt-only", "derive-only", "not-an-array", "duplicate-values"],
)
async def test_a_jwk_whose_key_ops_do_not_declare_verification_is_refused(
    key_ops: Any,
    kind: str,
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    """RFC 7517 section 4.3: "The "key_ops" (key operations) parameter identifies the
    operation(s) for which the key is intended to be used ... Its value is an array of key
    operation values ... "verify" (verify digital signature or MAC) ... Duplicate key
    operation values MUST NOT be present in the array", and section 4.3 says that if
    "use" and "key_ops" are both given "the information they convey MUST be consistent".

    `api/jwk.py` lists `key_ops` among the members it takes and refuses a JWK whose `use`
    is not "sig", but never reads `key_ops`: a public key its owner marked as for
    encryption or key agreement only, a `key_ops` that is not an array, and one that
    repeats a value are all registered (201) as signing keys. A JWK that says it is not
    for verifying signatures, or that breaks the member's syntax, should be refused as
    the other unacceptable JWKs are (422 `unprocessable`), and nothing stored."""
    jwk = {**(ed_jwk() if kind == "ed" else ec_jwk()), "key_ops": key_ops}
    response = await client.post(
        "/v1/keys", json={"jwk": jwk}, headers=bearer(app, people["district_head"])
    )
    assert response.status_code == 422, response.text
    assert response.json()["type"].endswith("/unprocessable")
    assert await conn.fetchval("SELECT count(*) FROM signing_keys") == 0


# -- passing: a malleated signature is the same report, never a second one -------------


def _high_s(jws: str) -> str:
    """The same ES256 JWS with the other valid signature, (r, n - s)."""
    head, payload, signature = jws.split(".")
    raw = unb64(signature)
    s = int.from_bytes(raw[32:], "big")
    return f"{head}.{payload}.{b64(raw[:32] + (P256_ORDER - s).to_bytes(32, 'big'))}"


def _s_plus_order(jws: str) -> str:
    """The same Ed25519 JWS with S + L in place of S (a non-canonical S)."""
    head, payload, signature = jws.split(".")
    raw = unb64(signature)
    s = int.from_bytes(raw[32:], "little")
    return f"{head}.{payload}.{b64(raw[:32] + (s + ED25519_ORDER).to_bytes(32, 'little'))}"


@pytest.mark.parametrize("lane", [True, False], ids=["lane", "route"])
async def test_a_malleated_signature_of_a_stored_report_stores_nothing(
    lane: bool, settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """Issue 5: "The JWS kept byte for byte", and "`jti` never seen before (a replay is
    409)". ECDSA signatures are malleable: (r, n - s) verifies as well as (r, s), so one
    signed report has two valid JWS byte strings, and a different JWS means a different
    ledger hash. Sent again under its other signature (with another Idempotency-Key) the
    report must be known as stored (409 `jti-replayed`), not stored twice. An Ed25519
    signature with S + L is not canonical (RFC 8032 section 5.1.7: "If any of the
    decodings fail (including S being out of range), the signature is invalid"):
    422 `invalid-signature`. Both paths alike."""
    es256 = await register_key(conn, people["district_head"], ec_key())
    eddsa: Signer = await register_key(conn, people["district_head"])
    first_es, first_ed = es256.sign(), eddsa.sign()
    async with served(msgspec.structs.replace(settings, submission_lane=lane)) as (app, http):
        headers = {**bearer(app, es256.person), "Content-Type": JOSE}

        async def post(jws: str, key: str) -> Any:
            return await http.post(
                "/v1/submissions",
                content=jws.encode(),
                headers={**headers, "Idempotency-Key": key},
            )

        assert (await post(first_es, "es-1")).status_code == 201
        assert (await post(first_ed, "ed-1")).status_code == 201
        before = await stored_counts(conn)
        again_es = await post(_high_s(first_es), "es-2")
        again_ed = await post(_s_plus_order(first_ed), "ed-2")
        after = await stored_counts(conn)
        # A malleated signature of a report not stored yet is still a valid ES256 one.
        fresh = await post(_high_s(es256.sign()), "es-3")
    assert again_es.status_code == 409 and problem_slug(again_es) == "jti-replayed"
    assert again_ed.status_code == 422 and problem_slug(again_ed) == "invalid-signature"
    assert after == before
    assert fresh.status_code == 201, fresh.text
