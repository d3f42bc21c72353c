"""A crash-safe local outbox of signed submissions that still have to reach the server.

District offices report over poor links. A submission is written here before it
is sent and removed only once the server has answered for it, so closing the
laptop, losing power or the network mid-request never loses a report. Each item
keeps its idempotency key, so re-sending it never stores it twice. A report the
server refuses for good stays too, marked rejected with the reason, until the user
discards it.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType

import msgspec

from client.files import PRIVATE_FILE_MODE, PathLike, ensure_home

OUTBOX_FILE = "outbox.sqlite3"

BACKOFF_BASE = 2.0
BACKOFF_FACTOR = 2.0
BACKOFF_CAP = 600.0
BACKOFF_JITTER = 0.1
"""Share of the delay that jitter may take off, so many offices do not retry in step."""
PAUSE_CAP_S = 86_400.0
"""The longest pause a server may ask for (``Retry-After``), and so the furthest ahead an
item can be due: a time further ahead was set under a clock since put back, and is due."""

_SCHEMA_VERSION = 3
_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    jws TEXT NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    last_error TEXT,
    rejected_at REAL
)
"""
#: Version 1 files lack the rejected state: refused reports were deleted then.
_UPGRADE_FROM_1 = "ALTER TABLE outbox ADD COLUMN rejected_at REAL"
#: The pause the server last asked for (version 3): one row at most.
_HOLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS hold (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    until REAL NOT NULL
)
"""
_COLUMNS = (
    "id, idempotency_key, jws, created_at, attempts, next_attempt_at, last_error, rejected_at"
)


class OutboxItem(msgspec.Struct, frozen=True, kw_only=True):
    """A signed submission waiting to be delivered.

    Attributes:
        id: Local row id; gives the creation order.
        idempotency_key: Sent with every attempt so the server stores the item once.
        jws: The compact JWS, sent byte for byte as first signed.
        created_at: Unix time it was queued.
        attempts: Failed delivery attempts so far.
        next_attempt_at: Unix time before which it is not retried.
        last_error: Why the last attempt failed, or why the server refused it.
        rejected_at: Unix time the server refused it for good; None while it waits.
    """

    id: int
    idempotency_key: str
    jws: str
    created_at: float
    attempts: int
    next_attempt_at: float
    last_error: str | None
    rejected_at: float | None = None


def backoff_delay(
    attempts: int,
    rand: Callable[[], float] = random.random,
    *,
    base: float = BACKOFF_BASE,
    factor: float = BACKOFF_FACTOR,
    cap: float = BACKOFF_CAP,
    jitter: float = BACKOFF_JITTER,
) -> float:
    """Seconds to wait after ``attempts`` failed attempts: ``base * factor**(attempts-1)``, capped.

    Jitter takes up to ``jitter`` of the delay off (never adds), so the cap holds;
    pass ``rand=lambda: 0.0`` for exact figures in tests.
    """
    if attempts < 1:
        return 0.0
    exponent = min(attempts - 1, 64)  # beyond this the cap applies anyway; avoids overflow
    delay = min(cap, base * factor**exponent)
    return delay * (1.0 - jitter * min(max(rand(), 0.0), 1.0))


class Outbox:
    """The outbox in ``<config folder>/outbox.sqlite3``; close it, or use it as a context manager.

    The database runs in WAL mode with ``synchronous=FULL``: every write is its
    own committed transaction, durable before the call returns. The file (and
    SQLite's side files, which inherit its mode) is owner-only, as it holds
    signed reports and their idempotency keys.
    """

    def __init__(self, path: PathLike, *, rand: Callable[[], float] = random.random) -> None:
        """Open (creating if needed) the outbox database at ``path``.

        Args:
            path: Database file.
            rand: Source of jitter in ``[0, 1)`` for the backoff.
        """
        self.path = os.fspath(path)
        self._rand = rand
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, PRIVATE_FILE_MODE)
        os.close(fd)
        os.chmod(self.path, PRIVATE_FILE_MODE)
        self._conn = sqlite3.connect(self.path, isolation_level=None, timeout=10.0)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            with self._transaction():
                version = self._conn.execute("PRAGMA user_version").fetchone()[0]
                self._conn.execute(_SCHEMA)
                self._conn.execute(_HOLD_SCHEMA)
                if version == 1:
                    self._conn.execute(_UPGRADE_FROM_1)
                self._conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def open(
        cls, home: PathLike | None = None, *, rand: Callable[[], float] = random.random
    ) -> Outbox:
        """Open the outbox in the config folder (see ``files.resolve_home``)."""
        return cls(ensure_home(home) / OUTBOX_FILE, rand=rand)

    def close(self) -> None:
        """Close the database connection."""
        self._conn.close()

    def __enter__(self) -> Outbox:
        """Use the outbox in a ``with`` block that closes it."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Close the database connection."""
        self.close()

    def put(self, jws: str, idempotency_key: str, now: float | None = None) -> OutboxItem:
        """Queue a signed submission, due at once, or when a pause the server asked for
        ends (``hold``).

        Queuing the same key with the same JWS again is a no-op returning the
        queued item, so a retried ``deliver`` cannot duplicate it.

        Raises:
            ValueError: The key is queued with a different JWS: the server would
                treat the second as a replay of the first and drop it.
        """
        if not jws or not idempotency_key:
            raise ValueError("jws and idempotency_key must be non-empty")
        at = time.time() if now is None else now
        with self._transaction():
            due = max(at, self.held_until(at) or at)
            self._conn.execute(
                "INSERT INTO outbox (idempotency_key, jws, created_at, next_attempt_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING",
                (idempotency_key, jws, at, due),
            )
            item = self._get(idempotency_key)
        assert item is not None
        if item.jws != jws:
            raise ValueError(
                f"idempotency key {idempotency_key!r} is already queued with a different JWS"
            )
        return item

    def get(self, idempotency_key: str) -> OutboxItem | None:
        """The queued item with this key, if any."""
        return self._get(idempotency_key)

    def pending(self, now: float | None = None) -> list[OutboxItem]:
        """Items due for an attempt at ``now``, oldest first (reports keep their order)."""
        at = time.time() if now is None else now
        return self._items(
            "rejected_at IS NULL AND (next_attempt_at <= ? OR next_attempt_at > ?)",
            (at, at + PAUSE_CAP_S),
        )

    def next_due(self, now: float | None = None) -> float | None:
        """When the first waiting item is due (see ``PAUSE_CAP_S``), if any waits."""
        at = time.time() if now is None else now
        times = [due_at(item.next_attempt_at, at) for item in self.all()]
        return min(times) if times else None

    def hold(self, until: float, now: float | None = None) -> None:
        """Let no item be due before ``until`` (a pause the server asked for with
        ``Retry-After``), kept here so a scheduled flush, a flush a person asks for and a
        later submit all honour it. Attempts are not counted: the items were not tried.
        A time further ahead than any pause (set under a clock since put back) is
        replaced, not kept: as the later of the two it would win every pause to come."""
        at = time.time() if now is None else now
        bogus = at + PAUSE_CAP_S
        with self._transaction():
            self._conn.execute(
                "INSERT INTO hold (id, until) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET"
                " until = CASE WHEN until > ? THEN excluded.until"
                " ELSE max(until, excluded.until) END",
                (until, bogus),
            )
            self._conn.execute(
                "UPDATE outbox SET next_attempt_at = CASE WHEN next_attempt_at > ? THEN ?"
                " ELSE max(next_attempt_at, ?) END WHERE rejected_at IS NULL",
                (bogus, until, until),
            )

    def release(self, now: float | None = None) -> bool:
        """End the server's pause before its time (a person who knows the server is back:
        ``outbox flush --now``); whether there was one. The reports it held (``hold``
        moved each one's next attempt to its end) are due at once, whichever are sent."""
        at = time.time() if now is None else now
        with self._transaction():
            row = self._conn.execute("SELECT until FROM hold WHERE id = 1").fetchone()
            if row is None:
                return False
            self._conn.execute("DELETE FROM hold")
            self._conn.execute(
                "UPDATE outbox SET next_attempt_at = ? WHERE rejected_at IS NULL"
                " AND next_attempt_at > ? AND next_attempt_at <= ?",
                (at, at, row[0]),
            )
            return True

    def held_until(self, now: float | None = None) -> float | None:
        """When the pause the server asked for ends, if it has not ended by ``now`` (a
        pause heard under a clock since put back ends at once: see ``PAUSE_CAP_S``)."""
        at = time.time() if now is None else now
        row = self._conn.execute("SELECT until FROM hold WHERE id = 1").fetchone()
        if row is None or not at < row[0] <= at + PAUSE_CAP_S:
            return None
        return float(row[0])

    def all(self) -> list[OutboxItem]:
        """Every item still to be delivered, due or backing off, oldest first."""
        return self._items("rejected_at IS NULL")

    def rejected(self) -> list[OutboxItem]:
        """Items the server refused for good, oldest first: kept, with the reason, until the
        user discards them (a report typed on the command line exists nowhere else)."""
        return self._items("rejected_at IS NOT NULL")

    def mark_rejected(
        self, idempotency_key: str, error: str, now: float | None = None
    ) -> OutboxItem | None:
        """Keep an item the server refused for good, with why, out of every later flush."""
        at = time.time() if now is None else now
        with self._transaction():
            self._conn.execute(
                "UPDATE outbox SET rejected_at = ?, last_error = ? WHERE idempotency_key = ?",
                (at, error, idempotency_key),
            )
            return self._get(idempotency_key)

    def discard(self, item_id: int) -> OutboxItem | None:
        """Remove a rejected item (by its ``#``) the user has dealt with; None if there is
        no rejected item with that number. Items still to be delivered are never removed
        here: only the server's answer does that."""
        with self._transaction():
            row = self._conn.execute(
                f"SELECT {_COLUMNS} FROM outbox WHERE id = ? AND rejected_at IS NOT NULL",
                (item_id,),
            ).fetchone()
            if row is None:
                return None
            self._conn.execute("DELETE FROM outbox WHERE id = ?", (item_id,))
        return _item(row)

    def replace_rejected(
        self, item_id: int, old_jws: str, jws: str, idempotency_key: str, now: float | None = None
    ) -> OutboxItem | None:
        """Queue ``jws`` (the rejected item ``item_id`` signed again) in that item's place,
        in one transaction: the new item, due at once (or when a pause ends); None, with
        nothing changed, if the item is no longer the rejected ``old_jws`` (discarded or
        signed again by another client process meanwhile)."""
        if not jws or not idempotency_key:
            raise ValueError("jws and idempotency_key must be non-empty")
        at = time.time() if now is None else now
        with self._transaction():
            gone = self._conn.execute(
                "DELETE FROM outbox WHERE id = ? AND jws = ? AND rejected_at IS NOT NULL",
                (item_id, old_jws),
            )
            if gone.rowcount == 0:
                return None
            self._conn.execute(
                "INSERT INTO outbox (idempotency_key, jws, created_at, next_attempt_at)"
                " VALUES (?, ?, ?, ?)",
                (idempotency_key, jws, at, max(at, self.held_until(at) or at)),
            )
            return self._get(idempotency_key)

    def mark_sent(self, idempotency_key: str) -> bool:
        """Remove an item the server has stored; True if it was queued."""
        with self._transaction():
            cursor = self._conn.execute(
                "DELETE FROM outbox WHERE idempotency_key = ?", (idempotency_key,)
            )
        return cursor.rowcount > 0

    def mark_failed(
        self,
        idempotency_key: str,
        error: str,
        now: float | None = None,
        *,
        retry_after: float | None = None,
    ) -> OutboxItem | None:
        """Record a failed attempt and push the next one back exponentially.

        Args:
            idempotency_key: The item that failed.
            error: Why, for the user.
            now: Unix time of the failure; defaults to the clock.
            retry_after: Seconds the server asked to wait (``Retry-After``);
                honoured up to the backoff cap.

        Returns:
            The updated item, or None if it is not queued.
        """
        at = time.time() if now is None else now
        with self._transaction():
            item = self._get(idempotency_key)
            if item is None or item.rejected_at is not None:
                # Refused for good meanwhile (another client process's attempt): a later
                # failure must not replace the reason the person has to act on.
                return item
            attempts = item.attempts + 1
            delay = backoff_delay(attempts, self._rand)
            if retry_after is not None and retry_after > delay:
                delay = min(retry_after, BACKOFF_CAP)
            self._conn.execute(
                "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ?"
                " WHERE idempotency_key = ?",
                (attempts, at + delay, error, idempotency_key),
            )
            updated = self._get(idempotency_key)
        return updated

    def _items(self, where: str, params: tuple[float, ...] = ()) -> list[OutboxItem]:
        """The items matching ``where``, oldest first."""
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE {where} ORDER BY id", params
        ).fetchall()
        return [_item(row) for row in rows]

    def _get(self, idempotency_key: str) -> OutboxItem | None:
        """Read one item by key."""
        row = self._conn.execute(
            f"SELECT {_COLUMNS} FROM outbox WHERE idempotency_key = ?", (idempotency_key,)
        ).fetchone()
        return None if row is None else _item(row)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """Run a block as one write transaction, committed on success, rolled back on error."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")


def due_at(next_attempt_at: float, now: float) -> float:
    """When an item is due: as stored, unless further ahead than any pause (a clock
    put back since), then now."""
    return now if next_attempt_at > now + PAUSE_CAP_S else next_attempt_at


def _item(row: tuple[int, str, str, float, int, float, str | None, float | None]) -> OutboxItem:
    """Build an item from a row selected with ``_COLUMNS``."""
    return OutboxItem(
        id=row[0],
        idempotency_key=row[1],
        jws=row[2],
        created_at=row[3],
        attempts=row[4],
        next_attempt_at=row[5],
        last_error=row[6],
        rejected_at=row[7],
    )
