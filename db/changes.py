"""The change feed's database side: channels, the version snapshot, and what a request
changed (so its own worker can apply it the moment the transaction commits).

Triggers notify ``kinerja_versions`` with ``"<area> <version>"`` pairs joined by commas,
once per statement that writes data versions (migration 0012), and ``kinerja_users``
with a user id for every user update (0006); ``"*"`` on either channel means "reload
everything". ``kinerja_catalogue`` says the indicator catalogue changed (0024).
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any
from uuid import UUID

import asyncpg

#: How the listening connection shows in ``pg_stat_activity``.
LISTENER_NAME = "kinerja change feed"
VERSIONS = "kinerja_versions"
USERS = "kinerja_users"
CATALOGUE = "kinerja_catalogue"
#: A worker's own markers, to know when everything committed before has arrived.
MARKS = "kinerja_marks"
RESET = "*"

#: (area, version) pairs and user ids written by the current request's transaction.
_written: ContextVar[list[tuple[str, int] | UUID] | None] = ContextVar(
    "kinerja_written", default=None
)


def record_writes() -> None:
    """Start collecting the version and user writes of the current task and the tasks it
    starts from now on (they share the list; each request sets its own)."""
    _written.set([])


def recorded_writes() -> list[tuple[str, int] | UUID]:
    """What has been collected since ``record_writes`` (empty if it was not called)."""
    written = _written.get()
    return written if written is not None else []


def wrote_version(area_code: str, version: int) -> None:
    written = _written.get()
    if written is not None:
        written.append((area_code, version))


def wrote_user(user_id: UUID) -> None:
    written = _written.get()
    if written is not None:
        written.append(user_id)


async def connect_listener(dsn: str) -> asyncpg.Connection:
    return await asyncpg.connect(dsn, server_settings={"application_name": LISTENER_NAME})


async def all_versions(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT area_code, version FROM data_versions")
    return {r["area_code"]: int(r["version"]) for r in rows}


async def listen(
    conn: asyncpg.Connection,
    on_version: Callable[[str], None],
    on_user: Callable[[str], None],
    on_mark: Callable[[str], None],
    on_catalogue: Callable[[], None],
) -> None:
    def versions(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        on_version(payload)

    def users(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        on_user(payload)

    def marks(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        on_mark(payload)

    def catalogue(_conn: Any, _pid: int, _channel: str, _payload: str) -> None:
        on_catalogue()

    await conn.add_listener(VERSIONS, versions)
    await conn.add_listener(CATALOGUE, catalogue)
    await conn.add_listener(USERS, users)
    await conn.add_listener(MARKS, marks)


async def mark(conn: asyncpg.Connection, token: str, limit_s: float) -> None:
    """Notify ``token`` on the marks channel. Notifications are delivered in commit order,
    so once the listener hears it back, it has heard everything committed before."""
    await conn.execute("SELECT pg_notify($1, $2)", MARKS, token, timeout=limit_s)
