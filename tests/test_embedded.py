"""The embedded PostgreSQL runner and the operator's CLI around it."""

from __future__ import annotations

import asyncpg
import pytest

from api import cli
from db import embedded
from db.embedded import AlreadyRunningError, EmbeddedPostgres
from tests.pg import scratch_dir


def test_missing_binaries_name_both_fixes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv(embedded.PG_BINDIR_ENV, raising=False)
    monkeypatch.setattr(embedded, "SYSTEM_BINDIRS", "/nonexistent/*/bin")
    with scratch_dir("kinerja-nobin-") as workdir:
        monkeypatch.setenv("KINERJA_DATA_DIR", str(workdir / "data"))
        code = cli.main(["db", "migrate"])
    err = capsys.readouterr().err
    assert code == 2
    assert "install the PostgreSQL server" in err
    assert "DATABASE_URL" in err
    assert "Traceback" not in err


async def test_cluster_is_reused_and_guarded() -> None:
    with scratch_dir("kinerja-emb-") as workdir:
        first = EmbeddedPostgres(workdir / "data")
        dsn = first.start()
        try:
            conn = await asyncpg.connect(dsn)
            await conn.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (42)")
            await conn.close()
            # A second server on the same folder is refused with a clear message.
            with pytest.raises(AlreadyRunningError, match="already in use"):
                EmbeddedPostgres(workdir / "data").start()
        finally:
            first.stop()
        assert not first.running()
        # Restart: same cluster, same data.
        again = EmbeddedPostgres(workdir / "data")
        dsn = again.start()
        try:
            conn = await asyncpg.connect(dsn)
            assert await conn.fetchval("SELECT n FROM kept") == 42
            assert "host=" in dsn  # Unix socket, no TCP port
            # New WAL segments are not zero-filled while commits wait (db.embedded).
            assert await conn.fetchval("SHOW wal_init_zero") == "off"
            await conn.close()
        finally:
            again.stop()


def test_cli_refuses_a_second_server(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with scratch_dir("kinerja-two-") as workdir:
        holder = EmbeddedPostgres(workdir / "data")
        holder.start()
        try:
            monkeypatch.setenv("KINERJA_DATA_DIR", str(workdir / "data"))
            code = cli.main(["db", "migrate"])
        finally:
            holder.stop()
    err = capsys.readouterr().err
    assert code == 2
    assert "already in use by a running Kinerja server" in err


@pytest.mark.parametrize(
    ("variable", "value", "said"),
    [
        ("KINERJA_PORT", "abc", "KINERJA_PORT: Expected `int`"),
        ("KINERJA_INGEST_BATCH_MAX", "-1", "KINERJA_INGEST_BATCH_MAX: Expected `int` >= 0"),
        # Taken at start-up, the first two then refused every list asked for no limit
        # (400); the others made no sense either.
        ("KINERJA_PAGE_SIZE_MAX", "20", "KINERJA_PAGE_SIZE_DEFAULT (50) exceeds"),
        ("KINERJA_PAGE_SIZE_DEFAULT", "0", "KINERJA_PAGE_SIZE_DEFAULT: Expected `int` >= 1"),
        ("KINERJA_LOGIN_WINDOW_S", "-5", "KINERJA_LOGIN_WINDOW_S: Expected `int` >= 1"),
        ("KINERJA_WORKERS", "0", "KINERJA_WORKERS: Expected `int` >= 1"),
    ],
)
def test_a_bad_setting_is_named_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
    said: str,
) -> None:
    """A setting that does not parse ended every command with msgspec's traceback."""
    monkeypatch.setenv(variable, value)
    assert cli.main(["db", "migrate"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("kinerja: configuration: ") and said in err, err
    assert "Traceback" not in err
