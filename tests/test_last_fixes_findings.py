"""Findings of the review of the token-generation and client-pause fixes: each failed before."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import httpx
import pytest
from litestar import Litestar

from db import throttle
from db.migrate import load_migrations, migrate
from db.pool import connect
from tests.people import PASSWORD, Person


# 1. The token route now refreshes the key ring with a second pooled connection while
#    already holding its own (the ``db`` dependency): as many concurrent logins as the
#    pool has connections, on a worker whose ring is older than REFRESH_S, each wait for a
#    connection none will give back (asyncpg's acquire has no timeout): every login, and
#    every request needing the pool, hangs.
async def test_concurrent_logins_on_a_stale_key_ring_do_not_starve_the_pool(
    app: Litestar, people: dict[str, Person]
) -> None:
    # httpx's ASGI transport in this loop, so requests really run at once (the
    # AsyncTestClient serves them one by one from its own thread).
    names = [p.username for role, p in people.items() if role != "integration"]
    async with app.lifespan():
        size = app.state.settings.pool_max_size  # 4 in tests
        assert len(names) >= size
        app.state.key_ring._loaded_at = time.monotonic() - 700  # idle since > REFRESH_S
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:

            async def login(name: str) -> int:
                r = await http.post(
                    "/v1/auth/token",
                    data={"grant_type": "password", "username": name, "password": PASSWORD},
                )
                return r.status_code

            try:
                codes = await asyncio.wait_for(
                    asyncio.gather(*(login(n) for n in names[:size])), timeout=15
                )
            except TimeoutError:
                pytest.fail(
                    f"{size} concurrent logins on a stale key ring never answered: each holds "
                    "a pooled connection and waits for another (pool deadlock)"
                )
    assert codes == [200] * size


# 2. ``hold`` claims the wait is bounded "in all" by wait_s, but sets lock_timeout once per
#    key and then runs two statements that may each wait that long: the INSERT (behind
#    an attempt that made the row and has not committed) and the SELECT ... FOR UPDATE
#    (behind whichever attempt got the row next).
async def test_the_login_wait_is_bounded_in_all_when_the_insert_waits_first(
    database_url: str,
) -> None:
    first, second, third = [await connect(database_url) for _ in range(3)]
    try:
        t1 = first.transaction()
        await t1.start()
        await throttle.hold(first, "account:new", wait_s=1.0)  # makes the row, uncommitted

        async def attempt(c: asyncpg.Connection) -> tuple[bool, float]:
            tx = c.transaction()
            await tx.start()
            # The wait of ``hold`` alone: BEGIN and ROLLBACK are round trips of their own,
            # slow on a loaded machine, and not what wait_s bounds.
            started = time.monotonic()
            try:
                await throttle.hold(c, "account:new", wait_s=1.0)
            except asyncpg.LockNotAvailableError:
                waited = time.monotonic() - started
                await tx.rollback()
                return False, waited
            # got it: keep holding it (an attempt checking its password) a while
            await asyncio.sleep(2.5)
            await tx.rollback()
            return True, time.monotonic() - started

        tasks = [asyncio.create_task(attempt(c)) for c in (second, third)]
        await asyncio.sleep(0.7)
        await t1.commit()  # the first attempt ends; one waiter gets the row, one waits on
        results = await asyncio.gather(*tasks)
        refused = [waited for ok, waited in results if not ok]
        assert refused, results
        assert refused[0] <= 1.3, (
            f"refused after {refused[0]:.2f} s with wait_s=1.0: the wait is not bounded in all"
        )
    finally:
        for c in (first, second, third):
            await c.close()


# 3. Migration 0020 was replaced, not followed: a database migrated by the previous
#    version (0020_tokens_after.sql applied) no longer started (MigrationError: "was
#    changed after it was applied"), and never got token_generation.
async def test_a_database_of_the_previous_version_upgrades(empty_database_url: str) -> None:
    previous = [m for m in load_migrations() if m.version <= 20]
    assert previous[-1].name == "0020_tokens_after.sql"
    conn = await connect(empty_database_url)
    try:
        await migrate(conn, previous)
        await migrate(conn)  # the upgrade, as at start-up
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'users'"
        )
        names = {r["column_name"] for r in columns}
        assert "token_generation" in names and "tokens_after" not in names
    finally:
        await conn.close()
