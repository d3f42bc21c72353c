"""The operator's side (CLI, embedded PostgreSQL, demo, packaging): findings of a review,
each failed before its fix."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import asyncpg
import pytest

from api import cli, demo
from api.settings import Settings
from db.embedded import EmbeddedPostgres
from tests.modules import clean_env
from tests.pg import scratch_dir

REPO = Path(__file__).resolve().parents[1]


def test_installed_package_keeps_its_subpackages(tmp_path: Path) -> None:
    """The Dockerfile's `pip install .` built from pyproject's explicit
    `packages = ["api", "db", "scorecards", "client"]`: api.auth, api.routes, api.schemas
    (and db.migrations/db.data as packages) were left out, so `kinerja serve` in the image
    died with ModuleNotFoundError. Built from a copy of the sources alone, as the image
    does: an editable install's egg-info beside them hides the gap."""
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for top in ("api", "db", "scorecards", "client"):
        shutil.copytree(REPO / top, source / top, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run(
        [sys.executable, "-c", "import setuptools; setuptools.setup()", "-q", "build",
         "--build-base", str(tmp_path / "b"), "--build-lib", str(tmp_path / "out")],
        cwd=source, check=True, capture_output=True,
    )  # fmt: skip
    wanted = sorted(
        str(p.parent.relative_to(source))
        for top in ("api", "db", "scorecards", "client")
        for p in (source / top).rglob("__init__.py")
    )
    missing = [w for w in wanted if not (tmp_path / "out" / w / "__init__.py").is_file()]
    assert missing == []
    data = [
        p.relative_to(source) for p in (source / "db").rglob("*") if p.suffix in (".sql", ".csv")
    ]
    assert data and all((tmp_path / "out" / p).is_file() for p in data)


def test_a_bad_port_in_database_url_is_reported_without_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """asyncpg raises a plain ValueError for a non-numeric port; `_run_with_db` does not
    catch it, so `kinerja db migrate` ends with a traceback (exit 1)."""
    monkeypatch.setenv("DATABASE_URL", "postgresql://kinerja:pw@localhost:abc/kinerja")
    code = cli.main(["db", "migrate"])
    assert code == 2
    assert "Traceback" not in capsys.readouterr().err


async def test_users_create_with_a_non_utf8_password_byte_fails_cleanly(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KINERJA_NEW_PASSWORD holding a byte that is not UTF-8 (os.environ keeps it as a
    lone surrogate) passes UserCreate, then `hash_password` raises UnicodeEncodeError,
    which nothing catches: a traceback, after the migrations ran."""
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("KINERJA_NEW_PASSWORD", "a-long-password-\udcff")
    try:
        code = await asyncio.to_thread(
            cli.main, ["users", "create", "--username", "rootx", "--role", "admin"]
        )
    except UnicodeError as exc:
        pytest.fail(f"traceback instead of an exit status: {exc!r}")
    assert code == 2


def test_users_create_with_no_password_on_stdin_fails_cleanly() -> None:
    """Without KINERJA_NEW_PASSWORD and without a terminal, getpass reads stdin; at end of
    input it raises EOFError, which `cmd_users_create` does not catch."""
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "users", "create", "--username", "rootx",
         "--role", "admin"],
        env=clean_env(DATABASE_URL="postgresql://kinerja@127.0.0.1:1/kinerja"),
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        start_new_session=True,  # no controlling terminal: getpass falls back to stdin
    )  # fmt: skip
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 2


async def test_serve_honours_migrate_on_start_false(
    empty_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: KINERJA_MIGRATE_ON_START "apply pending migrations when the service
    starts". `cmd_serve` runs `_prepare` (migrate, load areas, make a key) whatever it
    says; only the workers' lifespan honours it."""
    import uvicorn

    monkeypatch.setenv("DATABASE_URL", empty_database_url)
    monkeypatch.setenv("KINERJA_MIGRATE_ON_START", "false")
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)
    monkeypatch.setattr(cli.signal, "signal", lambda *a, **k: None)  # not the main thread
    assert await asyncio.to_thread(cli.main, ["serve"]) == 0
    conn = await asyncpg.connect(empty_database_url)
    try:
        migrated = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    finally:
        await conn.close()
    assert migrated is False


async def test_demo_interrupted_once_is_completed_by_the_next_run(
    conn: asyncpg.Connection, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The users, agreements and regions commit in one transaction, then every report in
    its own; an interruption during the reports (Ctrl-C, SIGTERM during `make demo`'s
    first start) leaves `demo_admin` in place, so every later run says "demo data already
    present" and the demo stays without most of its reports."""
    real_submit = demo._submit
    calls = 0

    async def flaky_submit(*args: object, **kwargs: object) -> None:
        nonlocal calls
        calls += 1
        if calls > 20:
            raise RuntimeError("interrupted")
        await real_submit(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(demo, "_submit", flaky_submit)
    with pytest.raises(RuntimeError):
        await demo.seed(conn, settings, date(2021, 3, 1), "demo-password-1")
    monkeypatch.setattr(demo, "_submit", real_submit)
    await demo.seed(conn, settings, date(2021, 3, 1), "demo-password-1")
    heads = await conn.fetchval("SELECT count(*) FROM ledger_heads")
    assert heads == 17 + 10 + 24 + 6


def test_sigterm_during_kinerja_demo_stops_the_embedded_postgres() -> None:
    """`serve` turned SIGTERM into KeyboardInterrupt (after seeding); `demo`, `db migrate`,
    `users create`... did not: SIGTERM killed Python outright, `_Database.__exit__` never
    ran, and the embedded PostgreSQL was left running with nobody owning it. The seeding
    it interrupted leaves nothing behind (one transaction), so the next run seeds again."""
    with scratch_dir("kinerja-rv-term-") as workdir:
        data = workdir / "data"
        proc = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "demo"],
            env=clean_env(KINERJA_DATA_DIR=str(data)),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        cluster = EmbeddedPostgres(data)
        try:
            deadline = time.monotonic() + 120
            seeding = False
            while time.monotonic() < deadline and proc.poll() is None and not seeding:
                time.sleep(0.3)
                if (cluster.pgdata / "postmaster.pid").exists():
                    seeding = asyncio.run(_writing(cluster.dsn()))
            assert seeding, "the demo never started seeding"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 130
            time.sleep(1)
            assert not cluster.running(), "embedded PostgreSQL left running after SIGTERM"
            cluster.boot()
            assert asyncio.run(_demo_admins(cluster.dsn())) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            cluster.halt(mode="immediate")


async def _writing(dsn: str) -> bool:
    """Whether, once migrated, another session holds a transaction that has written (the
    seeding: the migrations commit before it starts)."""
    try:
        conn = await asyncpg.connect(dsn, timeout=2)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
        return False
    try:
        return bool(
            await conn.fetchval(
                "SELECT to_regclass('users') IS NOT NULL AND EXISTS (SELECT 1 FROM "
                "pg_stat_activity WHERE backend_xid IS NOT NULL "
                "AND pid <> pg_backend_pid() AND datname = current_database())"
            )
        )
    finally:
        await conn.close()


async def _demo_admins(dsn: str) -> int:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM users WHERE username = 'demo_admin'"))
    finally:
        await conn.close()


def test_embedded_starts_over_a_stale_postmaster_pid_naming_a_live_unrelated_process() -> None:
    """After a crash or power loss, postmaster.pid stays; after a reboot its PID may belong
    to any other process of the server's user. `pg_ctl status` then says "running", so
    `boot()` skips starting and fails with "Could not reach the embedded PostgreSQL"
    (connection refused) on every start, until the operator finds and deletes the file."""
    server_user = "postgres" if os.geteuid() == 0 else None
    with scratch_dir("kinerja-rv-stale-") as workdir:
        first = EmbeddedPostgres(workdir / "data")
        first.start()
        pid_file = first.pgdata / "postmaster.pid"
        saved = pid_file.read_text()
        first.stop()
        assert not pid_file.exists()
        # An unrelated process of the server's user, holding the PID the file names.
        other = subprocess.Popen(["sleep", "60"], user=server_user)
        try:
            lines = saved.splitlines()
            lines[0] = str(other.pid)
            pid_file.write_text("\n".join(lines) + "\n")
            if server_user:
                entry = pwd.getpwnam(server_user)
                os.chown(pid_file, entry.pw_uid, entry.pw_gid)
            again = EmbeddedPostgres(workdir / "data")
            try:
                again.start()
            finally:
                again.stop(mode="immediate")
        finally:
            other.kill()
            other.wait()


# Found by the review of those fixes.


#: `kinerja db migrate`, with the window between `pg_ctl start` returning and
#: `_Database.__enter__` returning (psql checks, CREATE DATABASE with its retries) held
#: open, and a marker written when the cluster is up inside it.
_SLOW_START = """
import sys, time
from pathlib import Path
from db.embedded import EmbeddedPostgres
real = EmbeddedPostgres._ensure_database
def slow(self):
    Path(sys.argv[1]).write_text("up")
    time.sleep(20)
    real(self)
EmbeddedPostgres._ensure_database = slow
from api.cli import main
sys.exit(main(["db", "migrate"]))
"""


def test_sigterm_while_the_embedded_cluster_starts_stops_it() -> None:
    """README (92c2efb): "Stopping the server (Ctrl-C or SIGTERM, during any `kinerja`
    command) stops the cluster". SIGTERM is now KeyboardInterrupt for every command, but
    one arriving inside `EmbeddedPostgres.start()` after `pg_ctl start` (`_ensure_database`:
    psql, CREATE DATABASE and its retries) only unlocks the folder: `__enter__` never
    returned, so `_Database.__exit__` never stops the postmaster pg_ctl started, and the
    process exits 130 leaving PostgreSQL running with nobody owning it."""
    with scratch_dir("kinerja-rv4-term-") as workdir:
        data = workdir / "data"
        marker = workdir / "up"
        proc = subprocess.Popen(
            [sys.executable, "-c", _SLOW_START, str(marker)],
            env=clean_env(KINERJA_DATA_DIR=str(data)),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        cluster = EmbeddedPostgres(data)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None and not marker.exists():
                time.sleep(0.1)
            assert marker.exists(), "the cluster never started"
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 130
            time.sleep(1)
            assert not cluster.running(), "embedded PostgreSQL left running after SIGTERM"
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            if cluster.initialised() and cluster.running():
                cluster.halt(mode="immediate")


def test_a_multi_host_database_url_that_asyncpg_accepts_is_not_refused() -> None:
    """92c2efb: `_Database.__enter__` now reads `urlsplit(url).port` to report a bad port
    cleanly, but a multi-host DSN (failover: host1:5432,host2:5432), which asyncpg
    connects with, raises ValueError there too: every `kinerja` command (serve, db
    migrate, users create...) now exits 2 "DATABASE_URL: Port could not be cast to
    integer" for a URL that worked before."""
    from asyncpg.connect_utils import _parse_connect_dsn_and_args

    from api import cli
    from api.settings import settings_from_env

    url = "postgresql://kinerja@db-a:5432,db-b:5433/kinerja"
    params = dict.fromkeys(
        (
            "host", "port", "user", "password", "passfile", "database", "ssl", "service",
            "servicefile", "direct_tls", "server_settings", "target_session_attrs",
            "krbsrvname", "gsslib",
        )
    )  # fmt: skip
    hosts = _parse_connect_dsn_and_args(dsn=url, **params)[0]
    assert hosts == [("db-a", 5432), ("db-b", 5433)]  # asyncpg takes it
    settings = settings_from_env({}, database_url=url)
    try:
        with cli._Database(settings) as dsn:
            assert dsn == url
    except cli.SetupError as exc:
        raise AssertionError(f"refused a DSN asyncpg accepts: {exc}") from None
