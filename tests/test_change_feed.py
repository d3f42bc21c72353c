"""The per-worker change feed: replicas converge on the same versions and ETags, user
changes reach every replica, a lost connection falls back to PostgreSQL and recovers.

Two apps on one database stand for two replicas (or two workers); each has its own
listening connection and its own copies.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import msgspec

from api.change_feed import ChangeFeed
from api.settings import Settings
from db.changes import LISTENER_NAME
from db.versions import scope_versions
from tests.people import Person, bearer
from tests.submitting import register_key, served
from tests.waiting import wait_until

RANKING = "/v1/rankings/districts"
PARAMS = {"year": 2021, "as_of": "2021-05-15", "province": "16"}
SCOPES = ["ID", "16", "16.71", "16.72", "31", "31.71"]


def feed_of(app: Any) -> ChangeFeed:
    feed = app.state.change_feed
    assert isinstance(feed, ChangeFeed)
    return feed


async def bump(conn: asyncpg.Connection, area: str) -> None:
    """A data-version write made outside the API (another tool, a script)."""
    await conn.execute(
        "INSERT INTO data_versions (area_code, version) VALUES ($1, 1) "
        "ON CONFLICT (area_code) DO UPDATE SET version = data_versions.version + 1",
        area,
    )


async def etag(http: httpx.AsyncClient, headers: dict[str, str]) -> str:
    response = await http.get(RANKING, params=PARAMS, headers=headers)
    assert response.status_code == 200, response.text
    return response.headers["etag"]


async def test_replicas_agree_on_versions_and_etags(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    signer = await register_key(conn, people["district_head"])
    async with served(settings) as (a, http_a), served(settings) as (b, http_b):
        monitor = bearer(a, people["province_monitor"])
        first = await etag(http_a, monitor)
        assert await etag(http_b, monitor) == first
        posted = await http_a.post(
            "/v1/submissions",
            content=signer.sign(as_of=None).encode(),
            headers={**bearer(a, signer.person), "Content-Type": "application/jose"},
        )
        assert posted.status_code == 201, posted.text
        # The writer sees its own change at once; the other replica once notified.
        changed = await etag(http_a, monitor)
        assert changed != first
        await feed_of(b).sync()
        assert await etag(http_b, monitor) == changed
        # A write made outside the API (another tool, a migration) reaches both.
        await bump(conn, "16")
        for app in (a, b):
            await feed_of(app).sync()
        assert await etag(http_a, monitor) == await etag(http_b, monitor) != changed
        truth = await scope_versions(conn, SCOPES)
        assert feed_of(a).versions(SCOPES) == feed_of(b).versions(SCOPES) == truth
        assert truth[0] > 0


async def test_a_reset_reloads_the_versions(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    async with served(settings) as (app, _http):
        await conn.execute(
            "INSERT INTO data_versions (area_code, version) VALUES ('16.71', 7), ('31', 3)"
        )
        feed = feed_of(app)
        await feed.sync()
        assert feed.versions(["ID", "16", "16.71"]) == [10, 7, 7]
        await conn.execute("TRUNCATE data_versions")
        # A reset raises every area to one above the largest version (migration 0019).
        await conn.execute(
            "UPDATE data_versions SET version = version + 2 WHERE area_code = '16.72'"
        )
        await feed.sync()
        await wait_until(lambda: feed.versions(["ID"]) is not None)
        assert feed.versions(SCOPES) == await scope_versions(conn, SCOPES)
        assert await conn.fetchval("SELECT version FROM data_versions WHERE area_code = '16'") == 8


async def test_one_statement_moving_many_versions_reaches_every_replica(
    settings: Settings, conn: asyncpg.Connection
) -> None:
    """A statement's versions arrive together, in notifications of at most 200 areas
    (NOTIFY's payload is bounded): 514 districts, inserted and then moved again."""
    districts = await conn.fetch("SELECT code FROM areas WHERE kind = 'district'")
    codes = sorted(r["code"] for r in districts)
    assert len(codes) > 400
    upsert = (
        "INSERT INTO data_versions AS dv (area_code, version) "
        "SELECT c, 1 FROM unnest($1::text[]) c "
        "ON CONFLICT (area_code) DO UPDATE SET version = dv.version + 1"
    )
    async with served(settings) as (a, _), served(settings) as (b, _):
        await conn.execute(upsert, codes[: len(codes) // 2])  # inserts only
        await conn.execute(upsert, codes)  # updates half, inserts the rest
        truth = await scope_versions(conn, ["ID", *codes])
        assert truth[0] == len(codes) + len(codes) // 2
        for app in (a, b):
            await feed_of(app).sync()
            assert feed_of(app).versions(["ID", *codes]) == truth


async def test_user_changes_reach_every_replica(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    head = people["district_head"]
    async with served(settings) as (a, http_a), served(settings) as (b, http_b):
        token = bearer(a, head)
        for http in (http_a, http_b):  # both replicas now remember the caller
            assert (await http.get("/v1/me", headers=token)).status_code == 200
        assert feed_of(b).principal(head.id) is not None
        off = await http_a.patch(
            f"/v1/users/{head.id}", json={"active": False}, headers=bearer(a, people["admin"])
        )
        assert off.status_code == 200, off.text
        assert (await http_a.get("/v1/me", headers=token)).status_code == 401
        await feed_of(b).sync()
        assert (await http_b.get("/v1/me", headers=token)).status_code == 401
        # Changed directly in the database: the same. A token from before the deactivation
        # stays refused (migration 0021); one of the new generation is the caller's.
        await conn.execute("UPDATE users SET active = true WHERE id = $1", head.id)
        await feed_of(b).sync()
        assert (await http_b.get("/v1/me", headers=token)).status_code == 401
        fresh = bearer(b, head, generation=1)
        assert (await http_b.get("/v1/me", headers=fresh)).status_code == 200
        await conn.execute("UPDATE users SET role = 'province_monitor' WHERE id = $1", head.id)
        await feed_of(b).sync()
        me = await http_b.get("/v1/me", headers=fresh)
        assert me.status_code == 200 and me.json()["role"] == "province_monitor"


async def test_a_lost_connection_falls_back_to_postgres_and_recovers(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    quick = msgspec.structs.replace(settings, change_feed_heartbeat_s=0.2)
    async with served(quick) as (app, http):
        feed = feed_of(app)
        monitor = bearer(app, people["province_monitor"])
        head = people["district_head"]
        first = await etag(http, monitor)
        assert (await http.get("/v1/me", headers=bearer(app, head))).status_code == 200
        killed = await conn.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1 AND datname = current_database()",
            LISTENER_NAME,
        )
        assert killed == 1
        await wait_until(lambda: not feed.live)
        assert feed.versions(["16"]) is None and feed.principal(head.id) is None
        # Meanwhile changes are read from PostgreSQL: nothing stale is served.
        await bump(conn, "16")
        await bump(conn, "16.71")
        during = await etag(http, monitor)
        assert during != first
        await conn.execute("UPDATE users SET active = false WHERE id = $1", head.id)
        assert (await http.get("/v1/me", headers=bearer(app, head))).status_code == 401
        await conn.execute("UPDATE users SET active = true WHERE id = $1", head.id)
        await wait_until(lambda: feed.live)
        assert feed.versions(SCOPES) == await scope_versions(conn, SCOPES)
        assert await etag(http, monitor) == during


async def test_without_the_feed_every_request_reads_postgres(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    plain = msgspec.structs.replace(settings, change_feed=False)
    async with served(plain) as (app, http):
        assert app.state.change_feed is None
        monitor = bearer(app, people["province_monitor"])
        first = await etag(http, monitor)
        again = await http.get(RANKING, params=PARAMS, headers={**monitor, "If-None-Match": first})
        assert again.status_code == 304
        await bump(conn, "16.72")
        assert await etag(http, monitor) != first
        head = people["district_head"]
        await conn.execute("UPDATE users SET active = false WHERE id = $1", head.id)
        assert (await http.get("/v1/me", headers=bearer(app, head))).status_code == 401


async def test_the_writing_worker_applies_its_own_writes_at_commit(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """Read-your-writes must not wait for the notification: the request's own record of
    what it wrote reaches the feed right after its commit (and only after a commit)."""
    signer = await register_key(conn, people["district_head"])
    async with served(settings) as (app, http):
        feed = feed_of(app)
        applied: list[Any] = []
        apply = feed.committed

        def spy(written: Any) -> None:
            applied.append(list(written))
            apply(written)

        feed.committed = spy  # type: ignore[method-assign]
        head = people["district_head"]
        admin = bearer(app, people["admin"])
        renamed = await http.patch(f"/v1/users/{head.id}", json={"full_name": "X"}, headers=admin)
        assert renamed.status_code == 200, renamed.text
        posted = await http.post(
            "/v1/submissions",
            content=signer.sign().encode(),
            headers={**bearer(app, head), "Content-Type": "application/jose"},
        )
        assert posted.status_code == 201, posted.text
        refused = await http.post(
            "/v1/submissions",
            content=b"not a jws",
            headers={**bearer(app, head), "Content-Type": "application/jose"},
        )
        assert refused.status_code == 422
    version = await conn.fetchval("SELECT version FROM data_versions WHERE area_code = '16.71'")
    assert applied == [[head.id], [("16.71", version)]]
