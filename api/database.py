"""The pool owned by the app's lifespan, and the per-request connection.

Each request that needs the database gets one connection inside one transaction,
committed after the handler returns and rolled back when it raises (the
``yield`` dependency pattern). Start-up also migrates and loads the areas, so a
fresh database is usable the moment the app answers.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from litestar import Litestar
from litestar.datastructures import State

from api.auth.tokens import KeyRing, ensure_server_key
from api.settings import Settings
from db.areas import load_areas
from db.migrate import migrate
from db.pool import create_pool

log = logging.getLogger("kinerja.db")

Connection = asyncpg.Connection


async def prepare_database(pool: asyncpg.Pool) -> None:
    """Migrate (exactly once across replicas), load the areas, make the first token key."""
    async with pool.acquire() as conn:
        applied = await migrate(conn)
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        await load_areas(conn)
        await ensure_server_key(conn)


def lifespan_for(settings: Settings) -> Any:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if not settings.database_url:
            raise RuntimeError(
                "DATABASE_URL is not set: start the service with `kinerja serve`, "
                "which runs the embedded PostgreSQL, or set DATABASE_URL."
            )
        pool = await create_pool(
            settings.database_url, min_size=settings.pool_min_size, max_size=settings.pool_max_size
        )
        app.state.pool = pool
        try:
            if settings.migrate_on_start:
                await prepare_database(pool)
            ring = KeyRing(settings)
            async with pool.acquire() as conn:
                await ring.load(conn)
            app.state.key_ring = ring
            # Everything allocated so far lives as long as the worker: keep the cyclic
            # collector from rescanning it on every full collection under load.
            gc.freeze()
            yield
        finally:
            await pool.close()

    return lifespan


async def provide_connection(state: State) -> AsyncGenerator[asyncpg.Connection, None]:
    """One pooled connection per request, in a transaction that ends with the handler."""
    pool: asyncpg.Pool = state.pool
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            yield conn
        except BaseException:
            await tx.rollback()
            raise
        else:
            await tx.commit()


async def provide_read_connection(state: State) -> AsyncGenerator[asyncpg.Connection, None]:
    """A pooled connection without an explicit transaction, for read-only reports: each
    query sees committed data, and the request saves the BEGIN and COMMIT round trips.
    """
    pool: asyncpg.Pool = state.pool
    async with pool.acquire() as conn:
        yield conn
