"""Per-worker copies of the data versions and of authenticated callers, kept current by
PostgreSQL notifications.

A 304 or a cached report used to cost two database round trips (who is calling, and
what version their scope is at) on top of the work it saved. Here a worker listens on
one dedicated connection: the triggers of migration 0006 notify every data-version write
and every user change at commit, in commit order, so every replica converges on the same
versions (and the same ETags) within milliseconds. The worker that made a change
applies it itself right after its commit, so the next request it serves sees it; a
request reaching another worker or replica in the milliseconds before the notification
does may still get the previous version.

While the listening connection is down, nothing here is trusted: ``versions`` and
``principal`` answer None and callers read PostgreSQL, until a reconnect has reloaded
everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import uuid
from collections.abc import Iterable, Mapping
from uuid import UUID

import asyncpg

from api.auth.principal import Principal
from db import changes as db
from db import versions as versions_db
from db.submissions import catalogue_heard, forget_indicators

log = logging.getLogger("kinerja.change_feed")

# Epochs are numbered across every feed of the process, so an (epoch, version) tag names
# one state of one database's area even where tests run several apps side by side.
_EPOCHS = itertools.count(1)


class ChangeFeed:
    def __init__(
        self,
        dsn: str,
        parents: Mapping[str, str | None],
        *,
        principal_entries: int,
        heartbeat_s: float,
        retry_s: float = 1.0,
    ) -> None:
        self._dsn = dsn
        self._parents = parents
        self._principal_entries = principal_entries
        self._heartbeat_s = heartbeat_s
        self._retry_s = retry_s
        self._versions: dict[str, int] = {}
        self._scopes: dict[str, int] = {}  # area → sum of its own and its children's versions
        self._principals: dict[UUID, Principal] = {}
        #: Bumped on every user change: a principal read from PostgreSQL before a change
        #: was applied must not be remembered after it.
        self._user_generation = 0
        #: Bumped whenever versions are cleared (a lost connection, a reset): a version
        #: number heard in one epoch says nothing about data in another.
        self._epoch = next(_EPOCHS)
        self._conn: asyncpg.Connection | None = None
        self._lock = asyncio.Lock()  # one query at a time on the listening connection
        self._marks: dict[str, asyncio.Future[None]] = {}  # sync() calls awaiting their mark
        self._task: asyncio.Task[None] | None = None
        self._reload: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def live(self) -> bool:
        return self._conn is not None

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect and load; on failure the worker starts anyway and keeps retrying."""
        try:
            await self._connect()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.warning("change feed unavailable, reading versions from PostgreSQL: %s", exc)
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def stop(self) -> None:
        self._closing = True
        for task in (self._task, self._reload):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        conn = self._conn
        self._forget()
        if conn is not None and not conn.is_closed():
            conn.remove_termination_listener(self._lost)
            try:
                await conn.close(timeout=self._heartbeat_s)
            except (OSError, asyncpg.InterfaceError, TimeoutError):
                conn.terminate()

    async def sync(self) -> None:
        """Return once every change committed before the call has been applied here.

        The listener notifies a marker of its own and waits to hear it back: delivery is
        in commit order, so everything committed earlier has been applied by then (a
        plain round trip is not enough: a notification signalled while the query runs is
        sent after its reply). The heartbeat uses it too, so it checks the whole path.
        """
        conn = self._conn
        if conn is None:
            return
        token = uuid.uuid4().hex
        heard = asyncio.get_running_loop().create_future()
        self._marks[token] = heard
        try:
            async with self._lock:
                await db.mark(conn, token, self._heartbeat_s)
            await asyncio.wait_for(heard, self._heartbeat_s)
        finally:
            self._marks.pop(token, None)

    def _on_mark(self, token: str) -> None:
        heard = self._marks.get(token)
        if heard is not None and not heard.done():
            heard.set_result(None)

    async def _connect(self) -> None:
        conn = await db.connect_listener(self._dsn)
        try:
            await db.listen(conn, self._on_version, self._on_user, self._on_mark, forget_indicators)
            snapshot = await db.all_versions(conn)
        except BaseException:
            conn.terminate()
            raise
        # Notifications that arrived while the snapshot was read are newer or equal.
        self._epoch = next(_EPOCHS)
        for area, version in snapshot.items():
            self._set_version(area, version)
        # A principal read while no one listened may predate a change nobody heard of:
        # nothing read before this point may be remembered.
        self._principals.clear()
        self._user_generation += 1
        catalogue_heard(self, live=True)  # units may be remembered from now on
        conn.add_termination_listener(self._lost)
        self._conn = conn
        log.info("change feed listening")

    def _lost(self, conn: object) -> None:
        if conn is not self._conn:
            return  # an older connection, already dropped
        if not self._closing:
            log.warning("change feed connection lost, reading versions from PostgreSQL")
        self._forget()

    def _forget(self) -> None:
        self._conn = None
        catalogue_heard(self, live=False)
        self._epoch = next(_EPOCHS)
        self._versions.clear()
        self._scopes.clear()
        self._principals.clear()
        self._user_generation += 1

    def _drop(self, conn: asyncpg.Connection | None) -> None:
        """Stop trusting ``conn`` (if it is still the current one) and cut it off: a
        connection that failed a ping may not answer a polite close either."""
        if conn is None or conn is not self._conn:
            return
        self._forget()
        conn.remove_termination_listener(self._lost)
        conn.terminate()

    async def _watch(self) -> None:
        """Reconnect when the connection is gone; ping it so a silent loss is noticed."""
        while not self._closing:
            try:
                if self._conn is None:
                    await self._connect()
                await asyncio.sleep(self._heartbeat_s)
                await self.sync()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure: distrust the copies, retry shortly
                log.warning("change feed down, reading versions from PostgreSQL: %s", exc)
                self._drop(self._conn)
                await asyncio.sleep(self._retry_s)

    # -- versions ------------------------------------------------------------------------

    def versions(self, areas: Iterable[str]) -> list[int] | None:
        """Each scope's version (the area and everything below it), or None if not live."""
        if self._conn is None or self._reload is not None:
            return None
        return [self._scopes.get(area, 0) for area in areas]

    def own_versions(self, areas: Iterable[str]) -> tuple[int, list[int]] | None:
        """(epoch, each area's own version), or None if not live: a tag for data of
        those areas read after this call, valid while both numbers stay the same."""
        if self._conn is None or self._reload is not None:
            return None
        return self._epoch, [self._versions.get(area, 0) for area in areas]

    def _on_version(self, payload: str) -> None:
        if payload == db.RESET:
            self._epoch = next(_EPOCHS)
            self._versions.clear()
            self._scopes.clear()
            if self._reload is None:
                self._reload = asyncio.get_running_loop().create_task(self._reload_versions())
            return
        for pair in payload.split(","):  # one statement's areas (migration 0012)
            area, _, version = pair.partition(" ")
            self._set_version(area, int(version))

    async def _reload_versions(self) -> None:
        """After a reset, read everything again; until then callers read PostgreSQL."""
        conn = self._conn
        try:
            if conn is not None:
                async with self._lock:
                    snapshot = await db.all_versions(conn)
                for area, version in snapshot.items():
                    self._set_version(area, version)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            self._drop(conn)
        finally:
            self._reload = None

    def _set_version(self, area: str, version: int) -> None:
        """Versions only grow, so the larger value wins whatever order news arrives in."""
        delta = version - self._versions.get(area, 0)
        if delta <= 0:
            return
        self._versions[area] = version
        parent = self._parents.get(area)
        for scope in {area, parent, "ID"}:
            if scope is not None:
                self._scopes[scope] = self._scopes.get(scope, 0) + delta

    # -- principals ----------------------------------------------------------------------

    def principal(self, user_id: UUID) -> Principal | None:
        return self._principals.get(user_id) if self._conn is not None else None

    def generation(self) -> int:
        return self._user_generation

    def remember(self, principal: Principal, generation: int) -> None:
        """Keep a principal read at ``generation`` unless a user changed since."""
        if self._conn is None or generation != self._user_generation:
            return
        while len(self._principals) >= self._principal_entries > 0:
            del self._principals[next(iter(self._principals))]
        if self._principal_entries > 0:
            self._principals[principal.id] = principal

    def _on_user(self, payload: str) -> None:
        self._user_generation += 1
        if payload == db.RESET:
            self._principals.clear()
            return
        with contextlib.suppress(ValueError):
            self._principals.pop(UUID(payload), None)

    # -- this worker's own writes ----------------------------------------------------------

    def committed(self, written: Iterable[tuple[str, int] | UUID]) -> None:
        """Apply a request's writes the moment its transaction has committed."""
        for item in written:
            if isinstance(item, UUID):
                self._on_user(str(item))
            else:
                self._set_version(*item)


async def scope_versions(
    feed: ChangeFeed | None, conn: asyncpg.Connection | asyncpg.Pool, areas: list[str]
) -> list[int]:
    """From the worker's copy when it is live, else from PostgreSQL (same numbers)."""
    known = feed.versions(areas) if feed is not None else None
    if known is not None:
        return known
    return await versions_db.scope_versions(conn, areas)
