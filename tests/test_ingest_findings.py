"""Batched ingest: a finding of a review, failed before its fix."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from api import ingest
from api.settings import Settings
from tests.people import Person
from tests.submitting import post_signed as post
from tests.submitting import register_key, served
from tests.waiting import lock_waiters


async def test_a_reused_key_with_a_bad_body_while_the_first_is_in_flight_is_key_reused(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """README: the same Idempotency-Key with another body is 422 idempotency-key-reused.
    The single path (KINERJA_INGEST_BATCH_MAX=0) waits on the key's lock for the first
    request and answers exactly that; the batch path's ``prepare`` looked the key up
    without the lock, so while the first was still being written the second got whatever
    its own checks said (here 422 invalid-signature)."""
    head = await register_key(conn, people["district_head"])
    async with served(settings) as (app, http):
        first = await post(app, http, head, head.sign())  # the district has a head
        assert first.status_code == 201
        jws = head.sign()
        h, p, sig = jws.split(".")
        other = f"{h}.{p}.{sig[:-4]}AAAA"
        async with conn.transaction():  # the first request's batch waits on the head
            await conn.execute(
                "SELECT 1 FROM ledger_heads WHERE district_code = '16.71' FOR UPDATE"
            )
            r1 = asyncio.ensure_future(post(app, http, head, jws, key="k"))
            await lock_waiters(conn, 1)  # r1's batch holds the key's lock, waits on the head
            r2 = asyncio.ensure_future(post(app, http, head, other, key="k"))
            # r2, with the same key, waits in the worker for r1 to be answered
            await asyncio.wait({r2}, timeout=0.5)
            assert not r2.done()
        a, b = await asyncio.gather(r1, r2)
    assert a.status_code == 201
    assert (b.status_code, b.json()["type"].rsplit("/", 1)[-1]) == (422, "idempotency-key-reused")


async def test_a_batch_that_committed_is_answered_even_if_its_connection_then_fails(
    settings: Settings,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Anything failing after the batch's commit (here, handing the connection back to
    the pool) sent every report of it down the one-by-one path again, which found its
    jti stored: the district head got 409 jti-replayed for a report that was stored."""
    head = await register_key(conn, people["district_head"])
    settled: list[bool] = []
    settle = ingest.settle

    async def settling(*args: Any, **kw: Any) -> Any:
        result = await settle(*args, **kw)
        settled.append(True)
        return result

    release = asyncpg.pool.Pool.release

    async def failing_release(pool: asyncpg.Pool, connection: Any, **kw: Any) -> None:
        await release(pool, connection, **kw)
        if settled == [True]:  # the batch's connection, once
            settled.append(False)
            raise ConnectionResetError("lost while released")

    monkeypatch.setattr(ingest, "settle", settling)
    monkeypatch.setattr(asyncpg.pool.Pool, "release", failing_release)
    async with served(settings) as (app, http):
        answer = await post(app, http, head, head.sign())
        assert answer.status_code == 201, answer.text
        assert app.state.appender.fallbacks == 0
    assert settled == [True, False]
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 1
