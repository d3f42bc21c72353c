"""Identity, catalogue, regions and the CLI: review findings, each once let through
what it must not."""

from __future__ import annotations

import asyncpg
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.settings import settings_from_env
from db.areas import load_areas
from db.migrate import migrate
from db.pool import connect
from tests.people import PASSWORD, make_user
from tests.pg import drop_database, unique_name, with_database


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
