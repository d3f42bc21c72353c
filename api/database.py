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
from litestar.types import ASGIApp, Receive, Scope, Send

from api.auth.tokens import KeyRing, ensure_server_key
from api.change_feed import ChangeFeed
from api.ingest import Appender
from api.kept_values import KeptValues
from api.settings import Settings
from api.transactions import transaction
from db import changes
from db import ledger as ledger_db
from db.areas import load_areas
from db.migrate import migrate
from db.pool import create_pool
from db.scope import area_tree

log = logging.getLogger("kinerja.db")

#: ``gc.set_threshold`` for a serving worker (the default is 700, 10, 10).
GC_THRESHOLDS = (20_000, 20, 20)

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
        feed: ChangeFeed | None = None
        appender: Appender | None = None
        try:
            if settings.migrate_on_start:
                await prepare_database(pool)
            ring = KeyRing(settings)
            async with pool.acquire() as conn:
                await ring.load(conn)
                parents = await area_tree(conn)
                # Ledger verify judges stored iats by the loosest skew ever taken.
                await ledger_db.note_iat_skew(conn, settings.submission_iat_max_skew_s)
            app.state.key_ring = ring
            if settings.change_feed:
                feed = ChangeFeed(
                    settings.database_url,
                    parents,
                    principal_entries=settings.principal_cache_entries,
                    heartbeat_s=settings.change_feed_heartbeat_s,
                )
                await feed.start()
            app.state.change_feed = feed
            app.state.kept_values = KeptValues(feed, settings.kept_value_views)
            appender = Appender(
                pool,
                settings,
                feed,
                batch_max=settings.ingest_batch_max,
                in_flight=settings.ingest_batches_in_flight,
                overlap_after_s=settings.ingest_overlap_after_ms / 1000,
                linger_s=settings.ingest_linger_ms / 1000,
            )
            appender.start()
            app.state.appender = appender
            # Everything allocated so far lives as long as the worker: keep the cyclic
            # collector from rescanning it on every full collection under load.
            gc.freeze()
            # Collect the young generation less often than the default (every 700 net
            # allocations of containers): the collector was 2.7% of a worker's samples at
            # 64 connections. Measured against the default in alternating turns (two runs
            # of 8): worker CPU a report -6% at 64 connections, -2% at 500-1,000/s
            # offered; PostgreSQL's the same.
            gc.set_threshold(*GC_THRESHOLDS)
            yield
        finally:
            if appender is not None:
                await appender.close()
            if feed is not None:
                await feed.stop()
            await pool.close()

    return lifespan


async def provide_connection(state: State) -> AsyncGenerator[asyncpg.Connection, None]:
    """One pooled connection per request, in a transaction that ends with the handler
    (see ``api.transactions``)."""
    async with transaction(state.pool, state.change_feed) as conn:
        yield conn


def record_writes_middleware(app: ASGIApp) -> ASGIApp:
    """Start each request's record of the data versions and users it writes.

    Started here, in the request's own task, rather than in ``provide_connection``:
    Litestar may resolve dependencies in tasks of their own (with copies of the context),
    and the handler must add to the same list the dependency applies after its commit.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            changes.record_writes()
        await app(scope, receive, send)

    return middleware
