"""A private PostgreSQL cluster in a data folder, for running without ``DATABASE_URL``.

The cluster listens only on a Unix socket inside its own folder, so two projects
(or a test run beside a dev server) never fight over a TCP port. When started by
root it runs as the ``postgres`` user, because ``initdb`` and ``postgres`` refuse
root. Shaped after asyncpg's own test cluster (``asyncpg/cluster.py``).
"""

from __future__ import annotations

import fcntl
import glob
import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

#: Environment variable that overrides where the PostgreSQL binaries are looked up.
PG_BINDIR_ENV = "KINERJA_PG_BINDIR"
#: Where distributions (Debian, Ubuntu) install server binaries per major version.
SYSTEM_BINDIRS = "/usr/lib/postgresql/*/bin"

NO_BINARIES_MESSAGE = (
    "No PostgreSQL server binaries (initdb, pg_ctl, postgres) were found.\n"
    "Either install the PostgreSQL server (e.g. `apt-get install postgresql`), "
    "or set DATABASE_URL to a PostgreSQL server you already run."
)


#: A new WAL segment is not filled with zeroes first. While a cluster's WAL grows (a fresh
#: one, or one taking more load than its recycled segments cover), the backend that
#: reaches a segment's end writes and syncs 16 MB of zeroes while every committing
#: backend waits for it: during ingest at 1,000 reports/s that stalled all commits for
#: 20-40 ms about every 2 s, and was most of the requests over 20 ms. Off, the segment is
#: extended as it is written; every commit is still synced before it is acknowledged.
WAL_OPTIONS = "-c wal_init_zero=off"


class EmbeddedError(RuntimeError):
    """A problem starting or stopping the embedded cluster, worded for an operator."""


class AlreadyRunningError(EmbeddedError):
    """Another Kinerja process already owns this data folder."""


def find_bindir() -> Path:
    """Locate a folder holding ``initdb``, ``pg_ctl`` and ``postgres``.

    Looks, in order, at ``$KINERJA_PG_BINDIR``, ``PATH``, ``pg_config --bindir``
    and ``/usr/lib/postgresql/*/bin`` (newest version first).
    """
    candidates: list[Path] = []
    if env := os.environ.get(PG_BINDIR_ENV):
        candidates.append(Path(env))
    if found := shutil.which("pg_ctl"):
        candidates.append(Path(found).resolve().parent)
    if pg_config := shutil.which("pg_config"):
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            )
            candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.SubprocessError):
            pass

    def _version(path: str) -> int:
        try:
            return int(Path(path).parent.name)
        except ValueError:
            return 0

    for path in sorted(glob.glob(SYSTEM_BINDIRS), key=_version, reverse=True):
        candidates.append(Path(path))
    for bindir in candidates:
        if all((bindir / name).is_file() for name in ("initdb", "pg_ctl", "postgres")):
            return bindir
    raise EmbeddedError(NO_BINARIES_MESSAGE)


class EmbeddedPostgres:
    """One PostgreSQL cluster under ``data_dir``, reused across restarts.

    ``start()`` takes an exclusive lock on the folder for as long as this object
    lives, so a second server pointed at the same folder fails with a clear
    message instead of sharing (or stopping) the first one's database.
    """

    database = "kinerja"

    def __init__(self, data_dir: str | os.PathLike[str], *, bindir: Path | None = None) -> None:
        self.root = Path(data_dir).absolute()
        self.bindir = bindir or find_bindir()
        self._lock_fd: int | None = None
        self.root.mkdir(parents=True, exist_ok=True)
        tag = hashlib.sha256(str(self.root).encode()).hexdigest()[:10]
        if self._reachable_by_server(self.root):
            self.pgdata = self.root / "pg"
        else:
            # Root running in a folder the postgres user cannot enter (e.g. under /root):
            # keep the cluster in a folder it can reach, named after the data folder.
            self.pgdata = Path("/var/lib/kinerja") / tag / "pg"
        self.log_file = self.pgdata.parent / (self.pgdata.name + ".log")
        socket_dir = self.root / "run"
        # Unix socket paths are limited to about 107 bytes; fall back to a short folder.
        if len(str(socket_dir)) > 80 or self.pgdata.parent != self.root:
            socket_dir = Path(tempfile.gettempdir()) / f"kinerja-{tag}"
        self.socket_dir = socket_dir

    # -- ownership -----------------------------------------------------------------

    @property
    def _run_as(self) -> str | None:
        """The user to run the server as: ``postgres`` when we are root."""
        return "postgres" if os.geteuid() == 0 else None

    def _cmd(self, *args: str) -> list[str]:
        if user := self._run_as:
            return ["runuser", "-u", user, "--", *args]
        return list(args)

    def _reachable_by_server(self, path: Path) -> bool:
        """Whether the server's user can enter every folder down to ``path``."""
        if self._run_as is None:
            return True
        probe = subprocess.run(self._cmd("test", "-x", str(path)), capture_output=True, check=False)
        return probe.returncode == 0

    def _check_private(self, path: Path) -> None:
        """Refuse a shared-temp folder someone else planted (symlink or foreign owner)."""
        info = os.lstat(path)
        owners = {os.geteuid()}
        if user := self._run_as:
            owners.add(pwd.getpwnam(user).pw_uid)
        if stat.S_ISLNK(info.st_mode) or info.st_uid not in owners:
            raise EmbeddedError(f"{path} is not owned by this server; remove it and retry.")

    def _chown(self, path: Path) -> None:
        if user := self._run_as:
            entry = pwd.getpwnam(user)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    # -- lifecycle -----------------------------------------------------------------

    def _lock(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.root / "kinerja.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = (self.root / "kinerja.lock").read_text().strip() or "another process"
            raise AlreadyRunningError(
                f"The data folder {self.root} is already in use by a running Kinerja server "
                f"(pid {holder}). Stop it first, or pass another data folder "
                "(KINERJA_DATA_DIR)."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def initialised(self) -> bool:
        return (self.pgdata / "PG_VERSION").is_file()

    def _initdb(self) -> None:
        self.pgdata.mkdir(parents=True, exist_ok=True, mode=0o755)
        self.pgdata.chmod(0o700)
        self._chown(self.pgdata)
        result = subprocess.run(
            self._cmd(
                str(self.bindir / "initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise EmbeddedError(f"initdb failed:\n{result.stderr.strip()}")

    def _stale_pid_file(self) -> bool:
        """Whether ``postmaster.pid`` names a live process that is not this cluster's
        postmaster: after a crash and a reboot its PID may be anyone's, and ``pg_ctl``
        then takes the cluster for running, so it was never started again. A postmaster
        works in its data folder; anything else holding the PID is not one. When it
        cannot be told (no such process, no ``/proc``), ``pg_ctl`` decides as before."""
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
            cwd = Path(os.readlink(f"/proc/{pid}/cwd"))
        except (OSError, ValueError):
            return False
        return cwd != self.pgdata.resolve()

    def running(self) -> bool:
        result = subprocess.run(
            self._cmd(str(self.bindir / "pg_ctl"), "status", "-D", str(self.pgdata)),
            capture_output=True,
            check=False,
        )
        return result.returncode == 0

    def start(self, *, extra_options: str = "") -> str:
        """Lock the folder, initialise if needed, start, create the database; return its DSN."""
        self._lock()
        try:
            self.boot(extra_options=extra_options)
            return self.dsn()
        except BaseException:
            # Interrupted (SIGTERM, Ctrl-C) or failed after the server started: nobody
            # else will stop it, since the caller never got the cluster.
            try:
                self.halt()
            finally:
                self._unlock()
            raise

    def boot(self, *, extra_options: str = "") -> None:
        """Start the server process (no locking); also used by tests to bring it back."""
        if not self.initialised():
            self._initdb()
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        self._chown(self.socket_dir)
        self._check_private(self.socket_dir)
        self.log_file.touch()
        self._chown(self.log_file)
        if self._stale_pid_file():
            (self.pgdata / "postmaster.pid").unlink()
        if not self.running():
            options = (
                f"-c listen_addresses='' -c unix_socket_directories='{self.socket_dir}' "
                f"-c max_connections=200 {WAL_OPTIONS} {extra_options}"
            )
            result = subprocess.run(
                self._cmd(
                    str(self.bindir / "pg_ctl"),
                    "start",
                    "-w",
                    "-t",
                    "60",
                    "-D",
                    str(self.pgdata),
                    "-l",
                    str(self.log_file),
                    "-o",
                    options,
                ),
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                tail = self.log_file.read_text(errors="replace")[-2000:]
                raise EmbeddedError(f"PostgreSQL did not start:\n{result.stderr}\n{tail}")
        self._ensure_database()

    def _ensure_database(self) -> None:
        psql = str(self.bindir / "psql")
        if not Path(psql).is_file():
            psql = shutil.which("psql") or psql
        base = [psql, "-h", str(self.socket_dir), "-U", "postgres", "-tA"]
        exists = subprocess.run(
            [
                *base,
                "-d",
                "postgres",
                "-c",
                f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if exists.returncode != 0:
            raise EmbeddedError(f"Could not reach the embedded PostgreSQL:\n{exists.stderr}")
        if exists.stdout.strip() != "1":
            for _ in range(10):
                created = subprocess.run(
                    [*base, "-d", "postgres", "-c", f"CREATE DATABASE {self.database}"],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if created.returncode == 0 or "already exists" in created.stderr:
                    return
                time.sleep(0.2)
            raise EmbeddedError(f"Could not create database {self.database}: {created.stderr}")

    def dsn(self, database: str | None = None) -> str:
        """A libpq/asyncpg URL that reaches the cluster over its Unix socket."""
        host = quote(str(self.socket_dir), safe="")
        return f"postgresql://postgres@/{database or self.database}?host={host}"

    def halt(self, *, mode: str = "fast") -> None:
        """Stop the server process but keep the folder locked (tests use it for outages)."""
        if self.initialised() and self.running():
            subprocess.run(
                self._cmd(
                    str(self.bindir / "pg_ctl"), "stop", "-w", "-m", mode, "-D", str(self.pgdata)
                ),
                capture_output=True,
                check=False,
            )

    def stop(self, *, mode: str = "fast") -> None:
        """Stop the cluster and release the folder."""
        try:
            self.halt(mode=mode)
        finally:
            self._unlock()
