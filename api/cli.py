"""``kinerja``: the operator's command line (serve, db migrate, and friends)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg
import msgspec

from api.settings import Settings, local_today, settings_from_env
from db.embedded import EmbeddedError, EmbeddedPostgres
from db.migrate import MigrationError

T = TypeVar("T")


def _fail(message: str, code: int = 2) -> int:
    print(f"kinerja: {message}", file=sys.stderr)
    return code


class SetupError(Exception):
    """Something the operator set up that no command can run with (exit 2)."""


#: The database could not be reached or answered with an error: not a command's own
#: verdict (``ledger verify`` exits 1 for a broken ledger).
_DATABASE_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


def _bad_port(url: str) -> str | None:
    """A port in ``url`` that is not a number from 1 to 65535 (asyncpg raised a traceback
    for either); each host of a failover list (``host-a:5432,host-b:5433``) may give one,
    an IPv6 host is in brackets."""
    hosts = urlsplit(url).netloc.rpartition("@")[2]
    for host in hosts.split(","):
        _, colon, port = host.rpartition(":")
        if colon and port and not port.endswith("]") and not _port_number(port):
            return port
    return None


def _port_number(text: str) -> bool:
    return text.isascii() and text.isdigit() and 1 <= int(text) <= 65535


def _tcp_port(text: str) -> int:
    """``--port``: the range ``KINERJA_PORT`` is held to (uvicorn wrapped 70000 to 4464)."""
    if not _port_number(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a port from 1 to 65535")
    return int(text)


class _Database:
    """Resolve the database for a command: the configured URL, or the embedded cluster."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.embedded: EmbeddedPostgres | None = None

    def __enter__(self) -> str:
        if url := self.settings.database_url:
            if (port := _bad_port(url)) is not None:  # asyncpg: "invalid literal for int()"
                raise SetupError(f"DATABASE_URL: the port {port!r} is not a number from 1 to 65535")
            return url
        self.embedded = EmbeddedPostgres(self.settings.data_path)
        return self.embedded.start()

    def __exit__(self, *exc: object) -> None:
        if self.embedded is not None:
            self.embedded.stop()


def _run(work: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run``, with SIGTERM cancelling the work as Ctrl-C does (asyncio cancels
    its main task on SIGINT): raised as KeyboardInterrupt inside asyncpg's protocol code,
    it crashed the process (SIGSEGV) now and then, before the cluster was stopped.
    Outside the loop SIGTERM stays a KeyboardInterrupt (``main``)."""

    async def cancellable() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        watch = threading.current_thread() is threading.main_thread() and task is not None
        if watch:
            assert task is not None
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        try:
            return await work
        finally:
            if watch:
                loop.remove_signal_handler(signal.SIGTERM)
                signal.signal(signal.SIGTERM, signal.default_int_handler)

    return asyncio.run(cancellable())


def _run_with_db(settings: Settings, work: Callable[[str], Coroutine[Any, Any, int]]) -> int:
    try:
        with _Database(settings) as dsn:
            return _run(work(dsn))
    except (EmbeddedError, SetupError) as exc:
        return _fail(str(exc))
    except MigrationError as exc:
        return _fail(f"migrations refused: {exc}", 1)
    except _DATABASE_ERRORS as exc:
        return _fail(f"database: {type(exc).__name__}: {exc}")


async def _prepare(dsn: str) -> int:
    from api.auth.tokens import ensure_server_key
    from db.areas import load_areas
    from db.migrate import migrate
    from db.pool import connect

    conn = await connect(dsn)
    try:
        applied = await migrate(conn)
        areas = await load_areas(conn)
        await ensure_server_key(conn)
    finally:
        await conn.close()
    print(
        f"migrations applied: {len(applied)} ({', '.join(applied) or 'none new'}); "
        f"areas loaded: {areas}"
    )
    return 0


def cmd_db_migrate(settings: Settings, _: argparse.Namespace) -> int:
    return _run_with_db(settings, _prepare)


DEFAULT_DEMO_PASSWORD = "kinerja-demo-password"


async def _seed_demo(dsn: str, settings: Settings) -> None:
    from api.demo import seed, summary
    from db.pool import connect

    password = os.environ.get("KINERJA_DEMO_PASSWORD") or DEFAULT_DEMO_PASSWORD
    today = local_today(settings)
    conn = await connect(dsn)
    try:
        started = time.monotonic()
        if await seed(conn, settings, today, password):
            print(f"demo year {today.year} seeded in {time.monotonic() - started:.1f} s")
        else:
            print("demo data already present")
        print(summary(password))
    finally:
        await conn.close()


def cmd_demo(settings: Settings, _: argparse.Namespace) -> int:
    if settings.environment == "production":
        return _fail("refusing to seed demo data in production")

    async def work(dsn: str) -> int:
        await _prepare(dsn)
        await _seed_demo(dsn, settings)
        return 0

    return _run_with_db(settings, work)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    import uvicorn

    from api.http_protocol import ProblemHttpToolsProtocol
    from api.workers import AddressInUse, check_free, serve_workers

    host = args.host or settings.host
    port = args.port or settings.port
    workers = args.workers or settings.workers
    try:
        with _Database(settings) as dsn:
            os.environ["DATABASE_URL"] = dsn
            # Migrate once here so a refused migration stops start-up before any worker forks;
            # with KINERJA_MIGRATE_ON_START=false the operator migrates (`db migrate`).
            if settings.migrate_on_start:
                _run(_prepare(dsn))
            if settings.demo:
                if settings.environment == "production":
                    return _fail("refusing to seed demo data in production")
                _run(_seed_demo(dsn, settings))
            if workers > 1:
                check_free(host, port)  # the workers' sockets may share an address
            where = (
                "embedded PostgreSQL in " + str(settings.data_path)
                if not settings.database_url
                else "DATABASE_URL"
            )
            print(f"Kinerja serving on http://{host}:{port}  (database: {where})", flush=True)
            print(
                f"  API docs: http://{host}:{port}/schema  "
                f"OpenAPI: http://{host}:{port}/schema/openapi.json",
                flush=True,
            )
            # Ctrl-C / SIGTERM end uvicorn; the context manager then stops PostgreSQL.
            options: dict[str, Any] = {
                "factory": True,
                "http": ProblemHttpToolsProtocol,  # malformed requests in problem+json
                "host": host,
                "port": port,
                "workers": workers,
                "log_config": None,
                "access_log": False,
                "lifespan": "on",
            }
            if workers > 1:  # a listening socket per worker
                serve_workers(uvicorn.Config("api.app:create_app_from_env", **options))
            else:
                uvicorn.run("api.app:create_app_from_env", **options)
    except (EmbeddedError, SetupError) as exc:
        return _fail(str(exc))
    except MigrationError as exc:
        return _fail(f"migrations refused: {exc}", 1)
    except _DATABASE_ERRORS as exc:
        return _fail(f"database: {type(exc).__name__}: {exc}")
    except AddressInUse as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        pass
    return 0


def cmd_keys_rotate(settings: Settings, _: argparse.Namespace) -> int:
    async def work(dsn: str) -> int:
        from api.auth.tokens import rotate_server_key
        from db.pool import connect

        await _prepare(dsn)
        conn = await connect(dsn)
        try:
            kid = await rotate_server_key(conn)
        finally:
            await conn.close()
        print(f"new token signing key {kid}; earlier tokens verify until they expire")
        return 0

    return _run_with_db(settings, work)


def cmd_users_create(settings: Settings, args: argparse.Namespace) -> int:
    """The API's rules for a new user (``UserCreate``, ``check_scope_fields``): the CLI
    took a username ending in a newline, a look-alike of another, and an admin bound to
    a district (found by review)."""
    from api.schemas.identity import UserCreate

    try:
        password = os.environ.get("KINERJA_NEW_PASSWORD") or getpass.getpass("Password: ")
    except EOFError:  # no terminal, and nothing on standard input
        return _fail("no password: set KINERJA_NEW_PASSWORD, or run on a terminal")
    try:
        password.encode()
    except UnicodeEncodeError:  # a byte that is not UTF-8, kept by Python as a surrogate
        return _fail("the password is not valid UTF-8")
    try:
        data = msgspec.convert(
            {
                "username": args.username,
                "full_name": args.full_name or args.username,
                "role": args.role,
                "area_code": args.area,
                "password": password,
            },
            UserCreate,
        )
    except msgspec.ValidationError as exc:
        return _fail(f"the user is not valid: {exc}")

    async def work(dsn: str) -> int:
        from api.auth.passwords import hash_password
        from api.errors import ApiError
        from api.identity import check_scope_fields
        from db import users as user_db
        from db.pool import connect

        await _prepare(dsn)
        conn = await connect(dsn)
        try:
            if await user_db.username_taken(conn, data.username):
                return _fail(f"the username {data.username!r} is taken")
            try:
                await check_scope_fields(conn, data.role, data.area_code, None)
            except ApiError as exc:
                return _fail(exc.detail)
            user = await user_db.insert_user(
                conn,
                username=data.username,
                full_name=data.full_name,
                role=data.role,
                area_code=data.area_code,
                division_id=None,
                extra_areas=[],
                password_hash=hash_password(data.password),
                created_by=None,
            )
        except asyncpg.PostgresError as exc:
            return _fail(f"could not create the user: {exc}")
        finally:
            await conn.close()
        print(f"created {user.role} {user.username} ({user.id}) in {user.area_code}")
        return 0

    return _run_with_db(settings, work)


def cmd_ledger_verify(settings: Settings, args: argparse.Namespace) -> int:
    """Verify ledgers for auditors: one JSON line per district; exit 1 if any is broken."""

    async def work(dsn: str) -> int:
        import msgspec

        from api.ledger import verify_district
        from db import ledger as ledger_db
        from db.areas import get_area
        from db.pool import connect

        conn = await connect(dsn)
        try:
            if args.district:
                codes = list(dict.fromkeys(args.district))  # in the order given, once each
                for code in codes:
                    area = await get_area(conn, code)
                    if area is None or area.kind != "district":
                        return _fail(f"no district has the code {code!r}")
            else:
                codes = await ledger_db.districts_with_ledgers(conn)
            broken = 0
            for code in codes:
                async with conn.transaction():
                    report = await verify_district(conn, code)
                broken += not report.ok
                print(msgspec.json.encode(report).decode(), flush=True)
        except asyncpg.UndefinedTableError:
            return _fail("the database is not migrated; run `kinerja db migrate` first")
        finally:
            await conn.close()
        print(f"verified {len(codes)} ledger(s): {broken} broken", file=sys.stderr)
        return 1 if broken else 0

    return _run_with_db(settings, work)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kinerja", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the API (embedded PostgreSQL unless DATABASE_URL)")
    serve.add_argument("--host")
    serve.add_argument("--port", type=_tcp_port)
    serve.add_argument("--workers", type=int)
    serve.set_defaults(func=cmd_serve)

    db = sub.add_parser("db", help="database maintenance")
    db_sub = db.add_subparsers(dest="db_command", required=True)
    migrate = db_sub.add_parser("migrate", help="apply migrations and load areas")
    migrate.set_defaults(func=cmd_db_migrate)

    demo = sub.add_parser("demo", help="seed a demo year (idempotent) and exit")
    demo.set_defaults(func=cmd_demo)

    keys = sub.add_parser("keys", help="the server's token signing keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    rotate = keys_sub.add_parser("rotate", help="add a new signing key; old tokens stay valid")
    rotate.set_defaults(func=cmd_keys_rotate)

    users = sub.add_parser("users", help="user accounts")
    users_sub = users.add_subparsers(dest="users_command", required=True)
    create = users_sub.add_parser(
        "create",
        help="create a user (the first admin); password from KINERJA_NEW_PASSWORD or a prompt",
    )
    create.add_argument("--username", required=True)
    create.add_argument("--role", required=True, choices=["admin", "ministry_monitor"])
    create.add_argument("--area", default="ID", help="area code (default ID, the country)")
    create.add_argument("--full-name")
    create.set_defaults(func=cmd_users_create)

    ledger = sub.add_parser("ledger", help="the submissions' tamper-evident ledgers")
    ledger_sub = ledger.add_subparsers(dest="ledger_command", required=True)
    verify = ledger_sub.add_parser(
        "verify", help="recompute hash chains and re-verify every signature"
    )
    which = verify.add_mutually_exclusive_group(required=True)
    which.add_argument("--all", action="store_true", help="every district with a ledger")
    which.add_argument(
        "--district",
        metavar="CODE",
        action="append",
        help="a district, e.g. 16.71 (repeat it for more)",
    )
    verify.set_defaults(func=cmd_ledger_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_env()
    except msgspec.ValidationError as exc:  # e.g. KINERJA_PORT=abc: say which, no traceback
        said, _, where = str(exc).partition(" - at `$.")
        name = "DATABASE_URL" if where == "database_url`" else "KINERJA_" + where[:-1].upper()
        return _fail(f"configuration: {name}: {said}" if where else f"configuration: {exc}")
    # SIGTERM as Ctrl-C, for every command: Python killed outright by it left the
    # embedded PostgreSQL running with nobody to stop it (``_Database`` stops it on the
    # way out). Only in the main thread, where signals are delivered (not in tests).
    main_thread = threading.current_thread() is threading.main_thread()
    before = signal.signal(signal.SIGTERM, signal.default_int_handler) if main_thread else None
    try:
        return int(args.func(settings, args))
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C, SIGTERM (``_run``)
        return _fail("interrupted", 130)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, before)


if __name__ == "__main__":
    sys.exit(main())
