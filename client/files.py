"""The client's config folder and the owner-only files in it.

Everything the client keeps (signing key, outbox, token, settings) lives in one
folder, so an office PC shared by several staff does not leak the key that signs
a district's reports or the token that speaks for its head.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

HOME_ENV = "KINERJA_CLIENT_HOME"
"""Environment variable that moves the config folder (tests, several profiles)."""

DEFAULT_HOME = "~/.config/kinerja"
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700

PathLike = str | os.PathLike[str]


def resolve_home(home: PathLike | None = None) -> Path:
    """Pick the config folder: the argument, else ``$KINERJA_CLIENT_HOME``, else the default.

    Args:
        home: Explicit folder; wins over the environment.

    Returns:
        The folder path (not created).
    """
    if home is not None:
        return Path(home).expanduser()
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    return Path(DEFAULT_HOME).expanduser()


def ensure_home(home: PathLike | None = None) -> Path:
    """Create the config folder (owner-only) if missing and return it."""
    path = resolve_home(home)
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    return path


def write_private_file(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Write ``data`` to an owner-only (0600) file.

    The file is born 0600 through ``os.open`` (never chmod-ed after the fact,
    which would leave a window where others can read it). Without
    ``overwrite`` it is created with ``O_EXCL``, so an existing file is never
    clobbered, not even by a concurrent writer. With ``overwrite`` the data goes
    to a fresh 0600 temporary file that atomically replaces ``path``, so readers
    see the old content or the new one, never a mix.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is false.
    """
    if not overwrite:
        _create_exclusive(path, data)
    else:
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        _create_exclusive(tmp, data)
        try:
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    _fsync_dir(path.parent)


def _create_exclusive(path: Path, data: bytes) -> None:
    """Create ``path`` (0600, must not exist), write and fsync; remove it if that fails."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _fsync_dir(directory: Path) -> None:
    """Make a new directory entry durable; a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
