"""Client settings and the cached access token, both in the config folder.

The token is cached so that a district head who logged in once can queue and
flush reports for the token's lifetime without typing the password again; it is
written owner-only because it speaks for them until it expires.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import msgspec

from client.files import PathLike, ensure_home, resolve_home, write_private_file
from client.keys import PRIVATE_KEY_FILE
from client.outbox import OUTBOX_FILE

CONFIG_FILE = "config.json"
TOKEN_FILE = "token.json"
DEFAULT_BASE_URL = "http://127.0.0.1:8000"

TOKEN_LEEWAY = 30.0
"""Seconds before expiry from which a cached token counts as expired, so it
cannot lapse between being loaded and reaching the server."""


class ClientConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Where the client talks to and keeps its files.

    Attributes:
        base_url: Server root, e.g. ``https://kinerja.example.go.id``.
        username: Account to log in as; None until set.
        home: Config folder (not stored in the file; it is where the file lives).
    """

    base_url: str = DEFAULT_BASE_URL
    username: str | None = None
    home: str = ""
    #: Why the server address saved in the settings file cannot be used (then
    #: ``base_url`` is the default), for the commands that would have used it.
    saved_url_problem: str = ""

    def __post_init__(self) -> None:
        """Reject a server address that is not an http(s) URL, or that httpx cannot use
        (a mistyped port): found here, it is a usage error, not a crash mid-command."""
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {self.base_url!r}")
        try:
            url = httpx.URL(self.base_url)
            port = url.port
        except httpx.InvalidURL as exc:
            raise ValueError(f"base_url {self.base_url!r} is not a usable URL: {exc}") from None
        if not url.host:
            raise ValueError(f"base_url {self.base_url!r} names no host")
        if port is not None and not 1 <= port <= 65535:
            raise ValueError(f"base_url {self.base_url!r}: the port is not from 1 to 65535")

    @property
    def home_path(self) -> Path:
        """The config folder (``home``, else ``$KINERJA_CLIENT_HOME``, else the default)."""
        return resolve_home(self.home or None)

    @property
    def config_path(self) -> Path:
        """The settings file."""
        return self.home_path / CONFIG_FILE

    @property
    def private_key_path(self) -> Path:
        """The signing key file."""
        return self.home_path / PRIVATE_KEY_FILE

    @property
    def outbox_path(self) -> Path:
        """The outbox database."""
        return self.home_path / OUTBOX_FILE

    @property
    def token_path(self) -> Path:
        """The token cache."""
        return self.home_path / TOKEN_FILE


class _StoredConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The settings file's content."""

    base_url: str = DEFAULT_BASE_URL
    username: str | None = None


class _TokenCache(msgspec.Struct, kw_only=True):
    """The token cache file's content."""

    token: str
    expires_at: float


def load_config(home: PathLike | None = None) -> ClientConfig:
    """Read the settings file; defaults when there is none.

    Raises:
        ValueError: The file exists but is not valid settings JSON.
    """
    folder = resolve_home(home)
    try:
        data = (folder / CONFIG_FILE).read_bytes()
    except FileNotFoundError:
        return ClientConfig(home=str(folder))
    try:
        stored = msgspec.json.decode(data, type=_StoredConfig)
    except msgspec.DecodeError as exc:  # ValidationError is a DecodeError
        raise ValueError(f"{folder / CONFIG_FILE}: {exc}") from exc
    try:
        return ClientConfig(base_url=stored.base_url, username=stored.username, home=str(folder))
    except ValueError as exc:  # a command given another server, or none, still runs
        return ClientConfig(
            username=stored.username,
            home=str(folder),
            saved_url_problem=f"{folder / CONFIG_FILE}: {exc}",
        )


def save_config(config: ClientConfig) -> Path:
    """Write the settings file (owner-only, replaced atomically) and return its path."""
    ensure_home(config.home or None)
    stored = _StoredConfig(base_url=config.base_url, username=config.username)
    data = msgspec.json.format(msgspec.json.encode(stored)) + b"\n"
    write_private_file(config.config_path, data, overwrite=True)
    return config.config_path


def save_token(token: str, expires_at: float, home: PathLike | None = None) -> Path:
    """Cache an access token until ``expires_at`` (Unix time) in an owner-only file.

    Returns:
        The cache file path.
    """
    if not token:
        raise ValueError("token must be non-empty")
    path = ensure_home(home) / TOKEN_FILE
    cache = _TokenCache(token=token, expires_at=float(expires_at))
    write_private_file(path, msgspec.json.encode(cache), overwrite=True)
    return path


def _read_cache(home: PathLike | None) -> _TokenCache | None:
    try:
        data = (resolve_home(home) / TOKEN_FILE).read_bytes()
        return msgspec.json.decode(data, type=_TokenCache)
    except (OSError, msgspec.DecodeError):
        return None


def load_token(now: float | None = None, home: PathLike | None = None) -> str | None:
    """The cached token, or None if there is none, it is unreadable, or it (nearly) expired.

    A token within ``TOKEN_LEEWAY`` seconds of expiry counts as expired.
    """
    at = time.time() if now is None else now
    cache = _read_cache(home)
    if cache is None or cache.expires_at - TOKEN_LEEWAY <= at:
        return None
    return cache.token


def cached_token(home: PathLike | None = None) -> str | None:
    """The cached token even if it has expired: what the last login said of the user
    (their district), for a report signed while the session has lapsed."""
    cache = _read_cache(home)
    return None if cache is None else cache.token


def clear_token(home: PathLike | None = None, *, refused: str | None = None) -> None:
    """Forget the cached token (logout, or after the server refused it). With
    ``refused``, only if the cache still holds that one: a login made while the refused
    request was under way (another window, a scheduled flush) is kept."""
    if refused is not None and cached_token(home) not in (refused, None):
        return
    (resolve_home(home) / TOKEN_FILE).unlink(missing_ok=True)
