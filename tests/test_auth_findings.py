"""Identity, catalogue, regions and the CLI: review findings, each once let through
what it must not."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import asyncpg
import httpx
import msgspec
import pytest
import uvicorn
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.cli import main
from api.settings import Settings, settings_from_env
from db.areas import load_areas
from db.migrate import migrate
from db.pool import connect
from tests.people import PASSWORD, Person, bearer, make_user
from tests.pg import drop_database, unique_name, with_database
from tests.submitting import served

ROOT = Path(__file__).resolve().parent.parent


async def test_regions_listing_shows_the_regions_carried_over_into_a_year(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    """Regions drawn for 2021 carry over into 2022 (migration 0017): the coordinator keeps
    2022's data of their districts and the 2022 region ranking lists the region. The
    province's own listing for 2022 must say the same, not 'no regions, all unassigned'."""
    head = bearer(app, people["province_head"])
    coordinator = people["region_coordinator"]
    put = await client.put(
        "/v1/provinces/16/regions/2021",
        json={
            "regions": [
                {"name": "Wilayah I", "coordinator_id": str(coordinator.id), "districts": ["16.71"]}
            ]
        },
        headers=head,
    )
    assert put.status_code == 200, put.text
    # The coordinator's scope for 2022 data comes from the 2021 drawing ...
    card = await client.get(
        "/v1/scorecards/districts/16.71", params={"year": 2022}, headers=bearer(app, coordinator)
    )
    assert card.status_code == 200, card.text
    ranking = await client.get(
        "/v1/rankings/regions", params={"province": "16", "year": 2022}, headers=head
    )
    assert ranking.status_code == 200, ranking.text
    assert "Wilayah I" in ranking.text
    # ... but the listing of 2022's regions says there are none and 16.71 is unassigned.
    listed = await client.get("/v1/provinces/16/regions/2022", headers=head)
    assert listed.status_code == 200, listed.text
    body = listed.json()
    assert [r["name"] for r in body["regions"]] == ["Wilayah I"], body["regions"]
    assert "16.71" not in {d["code"] for d in body["unassigned"]}
    assert (body["year"], body["drawn_for"]) == (2022, 2021)


async def test_an_indicator_cannot_take_the_name_reports_reserve_for_the_composite(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    """Rankings read ``indicator=composite`` as the composite score (api/report_context.py), so an
    indicator coded ``composite`` could never be ranked on its own: the catalogue must
    refuse that code (409/422) instead of storing it."""
    admin = bearer(app, people["admin"])
    made = await client.post(
        "/v1/indicators",
        json={
            "code": "composite",
            "name_id": "Komposit",
            "name_en": "Composite",
            "polarity": "higher",
            "numerator_definition": "n",
            "denominator_definition": "d",
        },
        headers=admin,
    )
    assert made.status_code in (409, 422), made.text
    assert made.headers["content-type"].startswith("application/problem+json")


async def test_token_route_reads_media_types_case_insensitively(
    client: AsyncTestClient[Litestar], people: dict[str, Person]
) -> None:
    """Media types are case-insensitive (RFC 9110 8.3.1), and every other JSON route
    lowercases them (api/request.py); the token route compares them as written."""
    form = await client.post(
        "/v1/auth/token",
        content=f"grant_type=password&username=admin&password={PASSWORD}".replace(" ", "+"),
        headers={"Content-Type": "Application/x-www-form-urlencoded"},
    )
    assert form.status_code == 200, form.text
    body = await client.post(
        "/v1/auth/token",
        content=msgspec.json.encode(
            {"grant_type": "password", "username": "admin", "password": PASSWORD}
        ),
        headers={"Content-Type": "Application/JSON"},
    )
    assert body.status_code == 200, body.text


async def test_account_lockout_holds_for_spellings_the_database_matches_to_the_account(
    admin_dsn: str,
) -> None:
    """The account's throttle key is Python's ``name.lower()``, the account is found by
    PostgreSQL's ``lower(username) = lower($1)``. On a database with a UTF-8 ctype (the
    postgres:15 image of docker-compose.yml initialises en_US.utf8) ``lower('admİn')`` is
    'admin', while Python's is 'admi̇n' (i + U+0307): a locked account takes more guesses
    under other spellings, each with a fresh counter."""
    name = unique_name("loc")
    setup = await asyncpg.connect(admin_dsn)
    try:
        await setup.execute(
            f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8' "
            "LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'"
        )
    finally:
        await setup.close()
    dsn = with_database(admin_dsn, name)
    try:
        conn = await connect(dsn)
        try:
            await migrate(conn)
            await load_areas(conn)
            await make_user(conn, "admin", username="admin", area_code="ID")
        finally:
            await conn.close()
        settings = settings_from_env({}, database_url=dsn, environment="test", pool_max_size=4)
        app = create_app(settings, configure_logs=False)
        async with AsyncTestClient(app=app) as client:

            async def attempt(username: str, password: str) -> int:
                response = await client.post(
                    "/v1/auth/token",
                    data={"grant_type": "password", "username": username, "password": password},
                )
                return response.status_code

            for _ in range(settings.login_max_failures_account):
                assert await attempt("admin", "wrong password!") == 401
            assert await attempt("admin", PASSWORD) == 429  # the account is locked
            # The same account under another spelling: not locked at all.
            assert await attempt("adm\u0130n", PASSWORD) == 429
    finally:
        await drop_database(admin_dsn, name)


async def test_cli_users_create_applies_the_apis_username_and_scope_rules(
    conn: asyncpg.Connection,
    people: dict[str, Person],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`kinerja users create` writes users straight into the table: a look-alike of an
    existing username ("admin\\n", which the API's Username pattern refuses for exactly
    that reason) and an admin bound to a district (the API binds admins to the country)
    are both accepted."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("KINERJA_NEW_PASSWORD", "a-long-enough-password")
    look_alike = await asyncio.to_thread(
        main, ["users", "create", "--username", "admin\n", "--role", "admin"]
    )
    district_admin = await asyncio.to_thread(
        main, ["users", "create", "--username", "root2", "--role", "admin", "--area", "16.71"]
    )
    stored = await conn.fetch(
        "SELECT username, area_code FROM users WHERE username IN ('admin' || chr(10), 'root2')"
    )
    assert look_alike != 0 and district_admin != 0, [tuple(r) for r in stored]
    assert stored == []
    # What the API would take, the CLI still creates.
    made = await asyncio.to_thread(
        main, ["users", "create", "--username", "root3", "--role", "ministry_monitor"]
    )
    assert made == 0
    assert await conn.fetchval("SELECT area_code FROM users WHERE username = 'root3'") == "ID"


async def test_behind_the_compose_nginx_a_client_cannot_choose_its_login_address(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The replicas trust X-Forwarded-For from anyone (only nginx reaches them) and take
    its first address; nginx appended the client's own header to it, so each failed login
    could claim a new address and the per-address limit never tripped (found by review).
    Here each request carries a forged header, forwarded as deploy/nginx.conf says."""
    compose = (ROOT / "docker-compose.yml").read_text()
    nginx = (ROOT / "deploy" / "nginx.conf").read_text()
    allowed = re.search(r'FORWARDED_ALLOW_IPS:\s*"([^"]*)"', compose)
    forwarded = re.search(r"proxy_set_header\s+X-Forwarded-For\s+(\S+);", nginx)
    assert allowed is not None and forwarded is not None
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", allowed.group(1))
    peer = "203.0.113.7"

    def as_nginx_forwards(sent: str) -> str:
        rule = forwarded.group(1)
        if rule == "$remote_addr":
            return peer
        assert rule == "$proxy_add_x_forwarded_for", rule
        return f"{sent}, {peer}"

    limited = msgspec.structs.replace(settings, login_max_failures_address=3)
    app = create_app(limited, configure_logs=False)
    config = uvicorn.Config(app, proxy_headers=True, log_config=None)  # as `kinerja serve`
    config.load()
    transport = httpx.ASGITransport(app=config.loaded_app, client=("172.18.0.9", 40000))
    codes = []
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://k") as http:
        for i in range(5):
            response = await http.post(
                "/v1/auth/token",
                data={"grant_type": "password", "username": f"nobody{i}", "password": "wrong!"},
                headers={"X-Forwarded-For": as_nginx_forwards(f"10.9.9.{i}")},
            )
            codes.append(response.status_code)
    assert codes == [401, 401, 401, 429, 429], codes


async def test_concurrent_guesses_do_not_outrun_the_address_lock(settings: Settings) -> None:
    """The address counter is not held like the account one: guesses at many accounts
    sent at once from one address all pass the 'locked?' check before any failure is
    counted, so far more than KINERJA_LOGIN_MAX_FAILURES_ADDRESS are tried."""
    roomy = msgspec.structs.replace(settings, pool_max_size=16)
    limit = roomy.login_max_failures_address
    async with served(roomy) as (_, http):
        answers = await asyncio.gather(
            *(
                http.post(
                    "/v1/auth/token",
                    json={
                        "grant_type": "password",
                        "username": f"sprayed_{i}",
                        "password": "wrong-password",
                    },
                )
                for i in range(3 * limit)
            )
        )
    tried = sum(a.status_code == 401 for a in answers)
    assert tried <= limit, sorted(a.status_code for a in answers)


async def test_token_route_reads_a_body_without_content_type_as_json(
    client: AsyncTestClient[Litestar], people: dict[str, Person]
) -> None:
    """README (Errors): a body without a Content-Type is read as JSON, and another media
    type is 415 unsupported-media-type. The token route answers 400 invalid-request to
    both."""
    body = msgspec.json.encode(
        {"grant_type": "password", "username": "district_head", "password": PASSWORD}
    )
    bare = await client.post("/v1/auth/token", content=body)
    assert bare.status_code == 200, bare.text
    text = await client.post("/v1/auth/token", content=body, headers={"Content-Type": "text/plain"})
    assert text.status_code == 415, text.text
    assert text.json()["type"].endswith("/unsupported-media-type")
    suffixed = await client.post(
        "/v1/auth/token", content=body, headers={"Content-Type": "application/vnd.x+json"}
    )
    assert suffixed.status_code == 200, suffixed.text


async def test_a_login_waiting_behind_others_from_its_address_is_bounded(
    settings: Settings, database_url: str, people: dict[str, Person]
) -> None:
    """Attempts from one address wait for each other, each holding a pooled connection:
    a burst from one office (or every client, behind a proxy not trusted for its
    X-Forwarded-For) could hold every connection of a worker for as long as the queue
    took. A login waits KINERJA_LOGIN_WAIT_S at most, then is told to try again."""
    quick = msgspec.structs.replace(settings, login_wait_s=0.3)
    other = await asyncpg.connect(database_url)
    try:
        async with served(quick) as (_, http):
            holder = other.transaction()
            await holder.start()
            await other.execute(
                "INSERT INTO login_throttle (key) VALUES ($1) ON CONFLICT DO NOTHING",
                "address:127.0.0.1",
            )
            await other.execute(
                "SELECT 1 FROM login_throttle WHERE key = $1 FOR UPDATE", "address:127.0.0.1"
            )
            good = {"grant_type": "password", "username": "province_head", "password": PASSWORD}
            waited = await http.post("/v1/auth/token", json=good)
            await holder.rollback()
            assert waited.status_code == 429, waited.text
            assert waited.headers["Retry-After"] == "1"
            assert (await http.post("/v1/auth/token", json=good)).status_code == 200
    finally:
        await other.close()
