"""Migrations: fresh, re-run, concurrent replicas, and a file changed after applying."""

from __future__ import annotations

import asyncio

import asyncpg
import msgspec
import pytest

from bench import analyze_cost
from db.migrate import MigrationError, load_migrations, migrate
from db.pool import connect


async def test_fresh_database_gets_every_migration(empty_database_url: str) -> None:
    shipped = load_migrations()
    conn = await connect(empty_database_url)
    try:
        applied = await migrate(conn)
        assert applied == [m.name for m in shipped]
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations ORDER BY 1")
        assert [(r["version"], r["name"], r["checksum"]) for r in rows] == [
            (m.version, m.name, m.checksum) for m in shipped
        ]
        assert await conn.fetchval("SELECT to_regclass('areas') IS NOT NULL")
        # Re-running is a no-op.
        assert await migrate(conn) == []
    finally:
        await conn.close()


async def test_replicas_migrating_at_once_apply_each_file_once(empty_database_url: str) -> None:
    conns = [await connect(empty_database_url) for _ in range(4)]
    try:
        results = await asyncio.gather(*(migrate(c) for c in conns))
        shipped = [m.name for m in load_migrations()]
        # Exactly one replica applied everything; the others found nothing left.
        assert sorted(results, key=len) == [[], [], [], shipped]
        count = await conns[0].fetchval("SELECT count(*) FROM schema_migrations")
        assert count == len(shipped)
    finally:
        for c in conns:
            await c.close()


async def test_changed_applied_migration_stops_start_up(empty_database_url: str) -> None:
    conn = await connect(empty_database_url)
    try:
        await migrate(conn)
        shipped = load_migrations()
        tampered = [
            msgspec.structs.replace(shipped[0], sql=shipped[0].sql + "\n-- edited\n"),
            *shipped[1:],
        ]
        with pytest.raises(MigrationError, match=r"0001_areas\.sql was changed"):
            await migrate(conn, tampered)
    finally:
        await conn.close()


async def test_new_migration_is_applied_after_existing_ones(empty_database_url: str) -> None:
    conn = await connect(empty_database_url)
    try:
        await migrate(conn)
        shipped = load_migrations()
        extra = msgspec.structs.replace(
            shipped[-1],
            version=shipped[-1].version + 1,
            name="9999_probe.sql",
            sql="CREATE TABLE probe (id int)",
        )
        assert await migrate(conn, [*shipped, extra]) == ["9999_probe.sql"]
        assert await conn.fetchval("SELECT to_regclass('probe') IS NOT NULL")
    finally:
        await conn.close()


def test_migration_files_are_numbered_without_gaps() -> None:
    versions = [m.version for m in load_migrations()]
    assert versions == list(range(1, len(versions) + 1))


async def test_tables_ingest_grows_are_analyzed_from_a_bounded_sample(
    conn: asyncpg.Connection,
) -> None:
    """Migration 0028: a column added later without a target would have ANALYZE sample
    30,000 rows of these tables again (the default target, -1, is 100)."""
    rows = await conn.fetch(
        "SELECT c.relname, a.attname, a.attstattarget FROM pg_attribute a "
        "JOIN pg_class c ON c.oid = a.attrelid "
        "WHERE c.relname = ANY($1::text[]) AND c.relnamespace = 'public'::regnamespace "
        "AND a.attnum > 0 AND NOT a.attisdropped",
        list(analyze_cost.TABLES),
    )
    targets = {(r["relname"], r["attname"]): r["attstattarget"] for r in rows}
    assert len({table for table, _ in targets}) == len(analyze_cost.TABLES)
    assert {k: t for k, t in targets.items() if t not in (0, 10)} == {}
    # The signed bytes and the payload are never filtered on: no statistics at all.
    assert targets[("submissions", "jws")] == 0
    assert targets[("submissions", "payload")] == 0
    assert targets[("submissions", "district_code")] == 10
    await conn.execute("ANALYZE submissions")
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM pg_stats WHERE tablename = 'submissions' AND attname = 'jws'"
        )
        == 0
    )
