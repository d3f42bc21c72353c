"""Idempotency-Key: a retry gets the first answer and stores nothing; a reused key is refused."""

from __future__ import annotations

import asyncio

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.errors import PROBLEM_BASE
from api.settings import Settings
from tests.people import Person, bearer
from tests.submitting import post_jws, register_key, served, stored_counts


async def test_same_key_same_body_replays_the_first_response(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    signer = await register_key(conn, people["district_head"])
    jws = signer.sign()
    first = await post_jws(client, app, signer.person, jws, idempotency_key="outbox-0001")
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    before = await stored_counts(conn)
    retry = await post_jws(client, app, signer.person, jws, idempotency_key="outbox-0001")
    assert retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.content == first.content
    assert retry.json()["id"] == first.json()["id"]
    assert retry.headers["location"] == first.headers["location"]
    assert await stored_counts(conn) == before
    # Without the key, the same body is a replayed jti.
    bare = await post_jws(client, app, signer.person, jws)
    assert bare.status_code == 409
    assert bare.json()["type"] == PROBLEM_BASE + "jti-replayed"


async def test_same_key_other_body_is_refused(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    signer = await register_key(conn, people["district_head"])
    first = await post_jws(client, app, signer.person, signer.sign(), idempotency_key="k")
    assert first.status_code == 201
    before = await stored_counts(conn)
    other = await post_jws(client, app, signer.person, signer.sign(), idempotency_key="k")
    assert other.status_code == 422
    assert other.json()["type"] == PROBLEM_BASE + "idempotency-key-reused"
    assert await stored_counts(conn) == before


async def test_keys_belong_to_their_user(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    head = await register_key(conn, people["district_head"])
    division = await register_key(conn, people["division_head"])
    one = await post_jws(client, app, head.person, head.sign(), idempotency_key="shared")
    two = await post_jws(client, app, division.person, division.sign(), idempotency_key="shared")
    assert one.status_code == two.status_code == 201
    assert one.json()["id"] != two.json()["id"]
    assert await conn.fetchval("SELECT count(*) FROM idempotency_keys") == 2


async def test_a_failed_request_is_not_remembered(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    signer = await register_key(conn, people["district_head"])
    refused = await post_jws(
        client, app, signer.person, signer.sign(district="31.71"), idempotency_key="k"
    )
    assert refused.status_code == 404
    assert await conn.fetchval("SELECT count(*) FROM idempotency_keys") == 0
    fixed = await post_jws(client, app, signer.person, signer.sign(), idempotency_key="k")
    assert fixed.status_code == 201


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Purge expired keys on every keyed submission (by default at most every 10 s)."""
    return msgspec.structs.replace(settings, idempotency_purge_s=0)


async def test_keys_expire_after_the_ttl_and_are_purged(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    signer = await register_key(conn, people["district_head"])
    jws = signer.sign()
    first = await post_jws(client, app, signer.person, jws, idempotency_key="old")
    assert first.status_code == 201
    # Kept for the TTL (8 days by default, longer than a signed report stays acceptable):
    # a day and more later, and one hour short of the TTL, still replayed.
    for age in ("25 hours", "7 days 23 hours"):
        await conn.execute(f"UPDATE idempotency_keys SET created_at = now() - interval '{age}'")
        retry = await post_jws(client, app, signer.person, jws, idempotency_key="old")
        assert retry.status_code == 201 and retry.headers["idempotent-replayed"] == "true"
    # After the TTL the key is forgotten: the body is then judged afresh (its jti is known).
    await conn.execute("UPDATE idempotency_keys SET created_at = now() - interval '8 days 1 hour'")
    late = await post_jws(client, app, signer.person, jws, idempotency_key="old")
    assert late.status_code == 409
    # Another keyed submission purges expired records in passing.
    fresh = await post_jws(client, app, signer.person, signer.sign(), idempotency_key="new")
    assert fresh.status_code == 201
    keys = await conn.fetch("SELECT key FROM idempotency_keys")
    assert [r["key"] for r in keys] == ["new"]


async def test_concurrent_retries_with_one_key_store_once(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    signer = await register_key(conn, people["district_head"])
    jws = signer.sign()
    async with served(settings) as (app, http):
        headers = {
            **bearer(app, signer.person),
            "Content-Type": "application/jose",
            "Idempotency-Key": "burst",
        }
        responses = await asyncio.gather(
            *(http.post("/v1/submissions", content=jws, headers=headers) for _ in range(8))
        )
    assert {r.status_code for r in responses} == {201}, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.headers.get("idempotent-replayed") == "true" for r in responses) == 7
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 1


async def test_malformed_key_is_refused(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    signer = await register_key(conn, people["district_head"])
    for key in ("has space", "x" * 256):
        response = await post_jws(client, app, signer.person, signer.sign(), idempotency_key=key)
        assert response.status_code == 400, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 0


async def test_concurrent_duplicates_without_a_key_store_once(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    signer = await register_key(conn, people["district_head"])
    jws = signer.sign()
    async with served(settings) as (app, http):
        headers = {**bearer(app, signer.person), "Content-Type": "application/jose"}
        responses = await asyncio.gather(
            *(http.post("/v1/submissions", content=jws, headers=headers) for _ in range(6))
        )
    assert sorted(r.status_code for r in responses) == [201, 409, 409, 409, 409, 409]
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 1
