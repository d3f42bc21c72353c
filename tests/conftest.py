"""Shared fixtures: one PostgreSQL per session, a fresh database per test, the real app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.settings import Settings, settings_from_env
from db.areas import load_areas
from db.migrate import migrate
from db.pool import connect
from tests.people import DISTRICT, OTHER_DISTRICT, OTHER_PROVINCE, PROVINCE, Person, make_people
from tests.pg import (
    create_database,
    drop_database,
    postgres_server,
    scratch_dir,
    unique_name,
)


@pytest.fixture(scope="session")
def admin_dsn() -> Iterator[str]:
    with scratch_dir("kinerja-tests-") as workdir, postgres_server(workdir) as dsn:
        yield dsn


@pytest.fixture(scope="session")
async def template_db(admin_dsn: str) -> AsyncIterator[str]:
    """A migrated database with areas loaded, cloned for every test."""
    name = unique_name("kinerja_tpl")
    dsn = await create_database(admin_dsn, name)
    conn = await connect(dsn)
    try:
        await migrate(conn)
        await load_areas(conn)
    finally:
        await conn.close()
    yield name
    await drop_database(admin_dsn, name)


@pytest.fixture
async def database_url(admin_dsn: str, template_db: str) -> AsyncIterator[str]:
    name = unique_name("t")
    dsn = await create_database(admin_dsn, name, template=template_db)
    yield dsn
    await drop_database(admin_dsn, name)


@pytest.fixture
async def empty_database_url(admin_dsn: str) -> AsyncIterator[str]:
    """A database with nothing in it, for migration tests."""
    name = unique_name("e")
    dsn = await create_database(admin_dsn, name)
    yield dsn
    await drop_database(admin_dsn, name)


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await connect(database_url)
    yield connection
    await connection.close()


@pytest.fixture
def settings(database_url: str) -> Settings:
    return settings_from_env({}, database_url=database_url, environment="test", pool_max_size=4)


@pytest.fixture
def app(settings: Settings) -> Litestar:
    return create_app(settings, configure_logs=False)


@pytest.fixture
async def client(app: Litestar) -> AsyncIterator[AsyncTestClient[Litestar]]:
    async with AsyncTestClient(app=app) as test_client:
        yield test_client


@pytest.fixture
async def people(conn: asyncpg.Connection) -> dict[str, Person]:
    """One user per role, scoped to South Sumatra (16) / Kota Palembang (16.71)."""
    return await make_people(conn, province=PROVINCE, district=DISTRICT, suffix="")


@pytest.fixture
async def outsiders(conn: asyncpg.Connection) -> dict[str, Person]:
    """The same roles scoped to Jakarta (31) / 31.71: outside the first set's scope."""
    return await make_people(conn, province=OTHER_PROVINCE, district=OTHER_DISTRICT, suffix="_jkt")
