"""Several uvicorn workers, each accepting on a listening socket of its own.

uvicorn's workers share one listening socket, and a worker that wakes for a new
connection accepts every connection then waiting. Clients that open their connections
together (a district office's outbox after a reconnection, a load test) then mostly land
on one worker: of 64 connections opened at once, one worker held 43-64 in five tries out
of five here, and that worker's core, not the machine, set the pace while the other
worker idled. With a socket per worker (``SO_REUSEPORT``) the kernel spreads new
connections over the workers. Measured with the ingest benchmark at 64 connections, in
alternating turns against the shared socket: 4-8% more signed reports a second.

uvicorn's own supervisor still starts, watches and restarts the workers; it hands each
worker the sockets it was given, pickled, and here unpickling binds a new one
(:class:`OwnSocket`), so a restarted worker gets its own too. Where the platform has no
``SO_REUSEPORT``, the workers share one socket as uvicorn makes it.
"""

from __future__ import annotations

import socket
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess


def listen(host: str, port: int, backlog: int) -> socket.socket:
    """A listening socket that other workers' sockets may share the address with."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _own_sockets(host: str, port: int, backlog: int) -> list[socket.socket]:
    return [listen(host, port, backlog)]


class OwnSocket(list[socket.socket]):
    """What uvicorn's supervisor hands each worker in place of a shared socket: it is
    empty in the supervisor, and becomes a socket of the worker's own when the worker
    unpickles it."""

    def __init__(self, host: str, port: int, backlog: int) -> None:
        super().__init__()
        self.address = (host, port, backlog)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_own_sockets, self.address)


class AddressInUse(Exception):
    """Another server listens on the address already."""


def check_free(host: str, port: int, backlog: int = 2048) -> None:
    """Refuse an address another server listens on, before any worker starts: sockets
    that all set ``SO_REUSEPORT`` may share one, so binding alone would not tell."""
    try:
        probe = socket.create_connection((host, port), timeout=1)
    except OSError:
        probe = None  # nothing answers there
    if probe is not None:
        probe.close()
        raise AddressInUse(f"{host}:{port} is in use by another server")
    try:
        listen(host, port, backlog).close()
    except OSError as exc:
        raise AddressInUse(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def serve_workers(config: uvicorn.Config) -> None:
    """Run ``config.workers`` workers under uvicorn's supervisor, each on its own socket
    where the platform allows it (the caller has checked the address with
    :func:`check_free`)."""
    if not hasattr(socket, "SO_REUSEPORT"):
        Multiprocess(config, sockets=[config.bind_socket()]).run()
        return
    Multiprocess(config, sockets=OwnSocket(config.host, config.port, config.backlog)).run()
