"""Numbered plain-SQL migrations, applied once each, guarded by a checksum.

Every replica runs ``migrate()`` at start-up; a transaction-scoped advisory lock
makes the others wait, then find nothing left to do. A file changed after it was
applied stops start-up: the schema in the database no longer matches the code.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources

import asyncpg
import msgspec

#: Arbitrary constant key for ``pg_advisory_xact_lock`` ("kinerja" in ASCII, truncated).
MIGRATION_LOCK_KEY = 0x6B696E65726A61

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class Migration(msgspec.Struct, frozen=True):
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(RuntimeError):
    """The database's migration history disagrees with the files shipped."""


def load_migrations(package: str = "db.migrations") -> list[Migration]:
    """Read ``NNNN_name.sql`` files in version order; refuse gaps and duplicates."""
    found: list[Migration] = []
    for entry in resources.files(package).iterdir():
        match = _NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise MigrationError(f"migration numbers must run 1, 2, 3...: found {migration.name}")
    return found


_CREATE_HISTORY = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


async def migrate(conn: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[str]:
    """Apply what is missing, in one transaction; return the names applied."""
    migrations = load_migrations() if migrations is None else migrations
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        await conn.execute(_CREATE_HISTORY)
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        done = {row["version"]: row for row in rows}
        for migration in migrations:
            row = done.get(migration.version)
            if row is not None:
                if row["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.name} was changed after it was applied "
                        f"(recorded checksum {row['checksum'][:12]}, "
                        f"file {migration.checksum[:12]}). "
                        "Add a new numbered migration instead of editing an applied one."
                    )
                continue
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                migration.version,
                migration.name,
                migration.checksum,
            )
            applied.append(migration.name)
    return applied
