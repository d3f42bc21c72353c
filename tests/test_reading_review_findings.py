"""Found by a review of reviews, reading and ledger verification: each test failed on
the code it was written against and states what a user expects."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.people import Person, bearer
from tests.submitting import Signer, register_key, submit, today, verify_all_with_cli


async def rechain(conn: asyncpg.Connection, district: str) -> None:
    """What a careful forger does after replacing a JWS: recompute every hash and the head."""
    rows = await conn.fetch(
        "SELECT id, jws FROM submissions WHERE district_code = $1 ORDER BY seq", district
    )
    prev = "0" * 64
    for row in rows:
        digest = hashlib.sha256(prev.encode() + row["jws"].encode()).hexdigest()
        await conn.execute(
            "UPDATE submissions SET prev_hash = $2, hash = $3 WHERE id = $1",
            row["id"],
            prev,
            digest,
        )
        prev = digest
    await conn.execute("UPDATE ledger_heads SET hash = $2 WHERE district_code = $1", district, prev)


async def verify(
    client: AsyncTestClient[Litestar], app: Litestar, who: Person, district: str = "16.71"
) -> Any:
    return await client.get(f"/v1/districts/{district}/ledger/verify", headers=bearer(app, who))


# -- ledger verify --------------------------------------------------------------------

#: Signed bytes that are not a JSON payload: with the submitter's key over them, the
#: entry's signature verifies, and reading the payload then failed.
NOT_JSON = {
    "not JSON": b"not json",
    "not UTF-8": b"\xff\xfe\xfd",
    "not UTF-8 in a string": b'{"note": "\xff"}',
    "nested too deep": b"[" * 100_000,
}


async def _swap_in_unreadable_payload(
    conn: asyncpg.Connection, signer: Signer, raw: bytes
) -> asyncpg.Record:
    second = await conn.fetchrow(
        "SELECT id, seq FROM submissions WHERE district_code = '16.71' AND seq = 2"
    )
    await conn.execute(
        "UPDATE submissions SET jws = $2 WHERE id = $1", second["id"], signer.sign_raw(raw)
    )
    await rechain(conn, "16.71")
    return second


@pytest.mark.parametrize("raw", NOT_JSON.values(), ids=list(NOT_JSON))
async def test_verify_names_an_entry_whose_signed_payload_is_not_json(
    raw: bytes,
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """An entry's JWS replaced (chain rehashed) by one its submitter's key signed over
    bytes that are no JSON payload. The auditor expects verify to answer 200 with
    ok=false naming seq 2; it answered 500 (msgspec.DecodeError is not caught in
    api/ledger._check_payload, only ValidationError)."""
    signer = await register_key(conn, people["district_head"])
    for _ in range(3):
        await submit(client, app, signer)
    second = await _swap_in_unreadable_payload(conn, signer, raw)
    response = await verify(client, app, people["admin"])
    assert response.status_code == 200, response.text[:300]
    report = response.json()
    assert report["ok"] is False
    broken = report["first_broken"]
    assert broken["seq"] == 2 and broken["id"] == str(second["id"]), broken
    assert broken["problem"] in ("payload_mismatch", "signature_invalid"), broken


async def test_the_cli_names_an_unreadable_signed_payload_and_goes_on(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    outsiders: dict[str, Person],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`kinerja ledger verify --all` on the same tampering: the auditor expects one JSON
    line per district (16.71 broken, Jakarta ok) and exit 1. It stopped at 16.71 with a
    traceback instead, never checking the districts after it."""
    signer = await register_key(conn, people["district_head"])
    for _ in range(2):
        await submit(client, app, signer)
    await submit(client, app, await register_key(conn, outsiders["district_head"]))
    await _swap_in_unreadable_payload(conn, signer, b"not json")
    code, ok, err = await verify_all_with_cli(database_url, monkeypatch, capsys)
    assert code == 1, err
    assert ok == {"16.71": False, outsiders["district_head"].area_code: True}


async def test_verify_refuses_a_signature_made_after_its_key_was_revoked(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """The district head's key leaks and is revoked through the API. Whoever holds it
    then signs a new version of report 2 (iat an hour after the revocation) and puts it
    in place of the stored one with SQL (jws, payload, iat, note; chain rehashed). The
    signed iat says the signature was made after the key was revoked (and after the
    entry was received), so the auditor expects verify to name seq 2; it said ok,
    judging the key only by the unsigned received_at column."""
    signer = await register_key(conn, people["district_head"])
    for _ in range(3):
        await submit(client, app, signer)
    revoked = await client.post(
        f"/v1/keys/{signer.kid}/revoke", headers=bearer(app, people["district_head"])
    )
    assert revoked.status_code in (200, 201), revoked.text
    revoked_at = await conn.fetchval(
        "SELECT revoked_at FROM signing_keys WHERE kid = $1", signer.kid
    )
    assert revoked_at is not None
    second = await conn.fetchrow(
        "SELECT id, payload, received_at FROM submissions WHERE district_code = '16.71' AND seq = 2"
    )
    assert second["received_at"] < revoked_at  # taken in properly, before the revocation
    forged: dict[str, Any] = dict(second["payload"])
    later = revoked_at + timedelta(hours=1)
    forged["iat"] = int(later.timestamp())
    forged["note"] = "signed after the key was revoked"
    await conn.execute(
        "UPDATE submissions SET jws = $2, payload = $3, iat = to_timestamp($4), note = $5 "
        "WHERE id = $1",
        second["id"],
        signer.sign_raw(forged),
        forged,
        forged["iat"],
        forged["note"],
    )
    await rechain(conn, "16.71")
    response = await verify(client, app, people["admin"])
    assert response.status_code == 200, response.text[:300]
    report = response.json()
    assert report["ok"] is False, report
    assert report["first_broken"]["seq"] == 2, report


# -- review ---------------------------------------------------------------------------


async def test_a_review_naming_its_decision_twice_is_refused(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """`{"decision": "accept", "decision": "return", "reason": "x"}`: which decision the
    reviewer meant is ambiguous (another JSON reader keeps the first). As the token
    endpoint and the signed payloads do, a reviewer expects a 400 problem and nothing
    changed; the API took the last member and returned the report (it stopped counting)."""
    signer = await register_key(conn, people["district_head"])
    made = await submit(client, app, signer)
    body = b'{"decision": "accept", "decision": "return", "reason": "cek lagi"}'
    response = await client.post(
        f"/v1/submissions/{made['id']}/review",
        content=body,
        headers={**bearer(app, people["province_head"]), "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text[:300]
    assert response.headers["content-type"] == "application/problem+json"
    assert await conn.fetchval("SELECT count(*) FROM submission_reviews") == 0
    assert await conn.fetchval("SELECT status FROM submissions") == "received"


async def test_an_accept_with_a_blank_reason_keeps_no_empty_reason(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """`{"decision": "accept", "reason": "   "}`: a reason of blanks says nothing. The API
    refuses `"reason": ""` (400) and a blank reason for a return (422), so the reviewer
    and the submitter reading the review expect either a 4xx or a review with no reason
    (null). It stored and showed `"reason": ""`, a value the API itself refuses."""
    signer = await register_key(conn, people["district_head"])
    made = await submit(client, app, signer)
    response = await client.post(
        f"/v1/submissions/{made['id']}/review",
        json={"decision": "accept", "reason": "   "},
        headers=bearer(app, people["province_head"]),
    )
    if response.status_code < 400:
        seen = await client.get(
            f"/v1/submissions/{made['id']}", headers=bearer(app, people["district_head"])
        )
        reasons = [r["reason"] for r in seen.json()["reviews"]]
        assert reasons == [None], reasons
    else:
        assert response.status_code in (400, 422), response.text[:300]


# -- reading --------------------------------------------------------------------------


async def test_a_reversed_date_range_is_refused(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """`GET /v1/submissions?as_of_from=<later>&as_of_to=<earlier>` (the two dates swapped)
    can match nothing. A monitor expects a 400 problem saying so; the API answered 200
    with an empty page, which reads as "no district reported in this period"."""
    signer = await register_key(conn, people["district_head"])
    await submit(client, app, signer)
    day = today()
    response = await client.get(
        "/v1/submissions",
        params={
            "as_of_from": day.isoformat(),
            "as_of_to": (day - timedelta(days=30)).isoformat(),
        },
        headers=bearer(app, people["province_monitor"]),
    )
    assert response.status_code == 400, response.text[:300]
    assert response.headers["content-type"] == "application/problem+json"


async def test_every_json_body_naming_a_member_twice_is_refused(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """The same rule on another route (the request class reads every JSON body): an admin
    creating an account whose role is named twice gets a 400 and no account, rather than
    a user with whichever role the decoder kept (the last)."""
    users_before = await conn.fetchval("SELECT count(*) FROM users")
    body = (
        b'{"username": "dua_kali", "full_name": "Dua Kali", "role": "province_monitor", '
        b'"role": "admin", "area_code": "16", "password": "a-long-enough-password"}'
    )
    response = await client.post(
        "/v1/users",
        content=body,
        headers={**bearer(app, people["admin"]), "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text[:300]
    assert response.headers["content-type"] == "application/problem+json"
    assert "twice" in response.json()["detail"]
    assert await conn.fetchval("SELECT count(*) FROM users") == users_before


@pytest.mark.parametrize(
    "reason",
    [
        "\u200b",
        "\u2060\ufeff",
        "\u00ad",
        "\x01",
        " \u200b\u3164 ",
        # Mongolian variation selectors, a braille blank, tag characters, a musical
        # formatting control (found by the black-box review of 28 November).
        "\u200b\u180c\u180b",
        "\u2800",
        "\U000e0001\U000e0020",
        "\U0001d173",
    ],
)
async def test_a_return_whose_reason_shows_nothing_is_refused_and_changes_nothing(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    reason: str,
) -> None:
    """A return is final and its reason is what the district acts on: zero-width, format
    and control characters (which ``str.strip`` keeps) are no reason. It was 201."""
    signer = await register_key(conn, people["district_head"])
    made = await submit(client, app, signer)
    response = await client.post(
        f"/v1/submissions/{made['id']}/review",
        json={"decision": "return", "reason": reason},
        headers=bearer(app, people["province_head"]),
    )
    assert response.status_code == 422, response.text[:300]
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == "reason"
    assert await conn.fetchval("SELECT count(*) FROM submission_reviews") == 0
    assert await conn.fetchval("SELECT status FROM submissions") == "received"
