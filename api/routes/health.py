"""Liveness and readiness probes for load balancers and orchestrators."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec
from litestar import Response, get
from litestar.datastructures import State

from api.errors import problem_type
from db.pool import ping


class Health(msgspec.Struct):
    status: str


@get("/health/live", opt={"permission": "public"}, sync_to_thread=False)
def live() -> Health:
    """The process is up and serving; says nothing about the database."""
    return Health(status="ok")


@get(
    "/health/ready",
    opt={"permission": "public"},
)
async def ready(state: State) -> Response[Any]:
    """Ready only when the database answers; recovers by itself when it returns."""
    pool: asyncpg.Pool = state.pool
    try:
        async with pool.acquire(timeout=2) as conn:
            await ping(conn, within_s=2)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        return Response(
            {
                "type": problem_type("unavailable"),
                "title": "Service unavailable",
                "status": 503,
                "detail": f"The database is unreachable: {type(exc).__name__}",
            },
            status_code=503,
            media_type="application/problem+json",
            headers={"Retry-After": "5"},
        )
    return Response(Health(status="ok"), status_code=200)
