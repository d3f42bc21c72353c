"""Each worker of ``kinerja serve`` accepts on a socket of its own (``api.workers``), so
connections opened together are spread over the workers instead of landing on one."""

from __future__ import annotations

import pickle
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from api.workers import AddressInUse, OwnSocket, check_free, listen

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> int:
    """How many sockets listen on ``port`` (Linux's /proc/net/tcp: state 0A)."""
    lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(
        1 for line in lines if line.split()[1].endswith(f":{port:04X}") and line.split()[3] == "0A"
    )


def test_each_unpickled_copy_listens_on_a_socket_of_its_own() -> None:
    port = _free_port()
    handed = OwnSocket("127.0.0.1", port, 128)
    assert list(handed) == []  # nothing is bound in the supervisor
    # What uvicorn's supervisor does with it for each worker it starts.
    first, second = (pickle.loads(pickle.dumps(handed))[0] for _ in range(2))  # noqa: S301
    clients = []
    try:
        assert first.fileno() != second.fileno()
        for sock in (first, second):
            assert sock.getsockname() == ("127.0.0.1", port)
            assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
            sock.setblocking(False)
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(64)]
        time.sleep(0.2)
        accepted = []
        for sock in (first, second):
            count = 0
            while True:
                try:
                    conn, _ = sock.accept()
                except BlockingIOError:
                    break
                conn.close()
                count += 1
            accepted.append(count)
        assert sum(accepted) == 64
        assert min(accepted) > 0  # the kernel spread them (all on one: 2 in 2**64)
    finally:
        for c in clients:
            c.close()
        first.close()
        second.close()


def test_an_address_another_server_listens_on_is_refused() -> None:
    port = _free_port()
    check_free("127.0.0.1", port)  # free
    plain = socket.socket()
    plain.bind(("127.0.0.1", port))
    plain.listen()
    with plain, pytest.raises(AddressInUse):
        check_free("127.0.0.1", port)
    port = _free_port()
    with listen("127.0.0.1", port, 16), pytest.raises(AddressInUse):  # another kinerja
        check_free("127.0.0.1", port)


def test_connections_opened_together_reach_both_workers() -> None:
    port = _free_port()
    script = (
        "import uvicorn\n"
        "from api.workers import serve_workers\n"
        f"config = uvicorn.Config('tests.pid_app:app', host='127.0.0.1', port={port},"
        " workers=2, log_level='warning', lifespan='off')\n"
        "serve_workers(config)\n"
    )
    server = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT)

    def ask(client: socket.socket) -> bytes:
        client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := client.recv(4096):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 200"), answer
        return answer.partition(b"\r\n\r\n")[2]

    try:
        deadline = time.monotonic() + 60
        while _listening(port) < 2:  # each worker binds its own socket as it starts
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.1)
        # Opened together, as a load test or a reconnecting office does: with one shared
        # socket, one worker took 43-64 of 64 such connections, often all of them.
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(32)]
        pids = set()
        for client in clients:
            with client:
                pids.add(ask(client))
        assert len(pids) == 2, pids
        assert str(server.pid).encode() not in pids  # the supervisor serves nothing
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
