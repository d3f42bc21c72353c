"""A small load generator, run as its own process: raw HTTP/1.1 over keep-alive sockets.

It reads a spec (JSON) naming the host, port, concurrency and a list of requests
(base64 of the exact bytes to send), sends every request once, spread over the
connections, and writes each latency and status to the output file. Requests go to
loopback only, and the run ends when the list is exhausted (or at the deadline).

Without ``rate`` the loop is closed: each connection sends its next request when the
last is answered, which finds the most the server sustains. With ``rate`` (requests a
second) it is open: requests fall due at that rate whatever the server does, each timed
from when it fell due, which is how latency below saturation is read.

It shares the cores with the server and PostgreSQL, so every microsecond it spends is
taken from what it measures: each connection is a bare protocol that sends its next
request from the callback that completed the last one, without a task or stream
between them (a third of the CPU per request of asyncio streams).
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from collections import deque
from pathlib import Path

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class _Broken(Exception):
    """The server answered something that is not a well-formed HTTP/1.1 response."""


def _framing(head: bytes) -> tuple[int, int | None]:
    """The status and the body length of a response head; None for a chunked body."""
    try:
        status = int(head[9:12])
    except ValueError:
        raise _Broken(head[:80]) from None
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            return status, None
    return status, length


def _chunked_end(buffer: bytes | bytearray, start: int) -> int:
    """Where a chunked body starting at ``start`` ends, or -1 if it is not all here."""
    at = start
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return -1
        size = int(buffer[at:line_end].split(b";")[0], 16)
        at = line_end + 2 + size + 2
        if at > len(buffer):
            return -1
        if size == 0:
            return at


class _Connection(asyncio.Protocol):
    """One keep-alive connection: sends one request at a time, as its schedule gives them,
    and times each from the moment the schedule meant it to be sent."""

    def __init__(
        self,
        schedule: _Closed | _Offered,
        results: list[tuple[float, int, float]],
        done: asyncio.Future[None],
    ) -> None:
        self._schedule = schedule
        self._results = results
        self._done = done
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()  # extended in place: a long answer is not copied anew
        self._intended = 0.0
        self._waiting = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._schedule.joined(self)

    def send(self, request: bytes, intended: float) -> None:
        assert self._transport is not None
        self._waiting = True
        self._intended = intended
        self._transport.write(request)

    def finish(self) -> None:
        assert self._transport is not None
        self._transport.close()

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        head_end = self._buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        try:
            status, length = _framing(bytes(self._buffer[:head_end]))
            body_start = head_end + 4
            end = _chunked_end(self._buffer, body_start) if length is None else body_start + length
        except (_Broken, ValueError) as exc:
            self._fail(exc)
            return
        if end < 0 or end > len(self._buffer):
            return
        now = time.perf_counter()
        self._results.append((now - self._intended, status, now))
        self._waiting = False
        del self._buffer[:end]
        self._schedule.ready(self)

    def _fail(self, exc: Exception) -> None:
        if not self._done.done():
            self._done.set_exception(exc)
        assert self._transport is not None
        self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._waiting:
            self._schedule.lost(self)
        if not self._done.done():
            if exc is None and self._waiting:
                exc = _Broken("the server closed the connection before answering")
            if exc is not None:
                self._done.set_exception(exc)
            else:
                self._done.set_result(None)


class _Closed:
    """Closed loop: a connection sends its next request as soon as the last is answered,
    so the rate is what the server sustains with that many clients."""

    def __init__(self, requests: list[bytes], deadline: float) -> None:
        self._queue = requests[::-1]  # connections pop from the end: keep the given order
        self._deadline = deadline

    def ready(self, conn: _Connection) -> None:
        if not self._queue or time.monotonic() >= self._deadline:
            conn.finish()
        else:
            conn.send(self._queue.pop(), time.perf_counter())

    joined = ready

    def lost(self, conn: _Connection) -> None:
        """Nothing to do: a connection is only ever idle here between two callbacks."""

    async def run(self) -> None:
        return


class _Offered:
    """Open loop: request ``i`` is due at ``start + i / rate`` whatever the server does,
    and waits for a free connection if none is. Its latency counts from when it was due,
    so a server that falls behind shows it in every request that waited, not only in the
    one it was slow to answer (as a closed loop would, sending less while it waits)."""

    def __init__(
        self, requests: list[bytes], rate: float, connections: int, deadline: float
    ) -> None:
        if rate <= 0:
            raise SystemExit("load: the rate must be positive")
        self._requests = requests
        self._rate = rate
        self._deadline = deadline
        self._idle: list[_Connection] = []
        self._waiting: deque[tuple[bytes, float]] = deque()
        self._released = False
        self._to_join = connections
        self._all_joined = asyncio.Event()

    def joined(self, conn: _Connection) -> None:
        self._to_join -= 1
        if self._to_join <= 0:
            self._all_joined.set()
        self.ready(conn)

    def ready(self, conn: _Connection) -> None:
        if self._waiting:
            conn.send(*self._waiting.popleft())
        elif self._released:
            conn.finish()
        else:
            self._idle.append(conn)

    def lost(self, conn: _Connection) -> None:
        """An idle connection the server closed (its keep-alive timeout, 5 s in
        uvicorn, ends the ones at the bottom of the idle stack in a long run at a low
        rate) is not used again; the others carry the load."""
        if conn in self._idle:
            self._idle.remove(conn)

    async def run(self) -> None:
        """Release the requests on time (the event loop wakes about every millisecond,
        so those due meanwhile go together, each timed from its own due moment), once
        every connection is open, so none pays for opening one."""
        await self._all_joined.wait()
        start = time.perf_counter()
        for i, request in enumerate(self._requests):
            due = start + i / self._rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.monotonic() >= self._deadline:
                break
            if self._idle:
                self._idle.pop().send(request, due)
            else:
                self._waiting.append((request, due))
        self._released = True
        while self._idle:
            self._idle.pop().finish()


async def _connection(
    host: str, port: int, schedule: _Closed | _Offered, results: list[tuple[float, int, float]]
) -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    await loop.create_connection(lambda: _Connection(schedule, results, done), host, port)
    await done


async def run(spec: dict) -> dict:
    host, port = spec["host"], int(spec["port"])
    if host not in LOOPBACK:
        raise SystemExit("load goes to loopback only")
    requests = [base64.b64decode(r) for r in spec["requests"]]
    results: list[tuple[float, int, float]] = []
    limit = float(spec.get("max_seconds", 120))
    deadline = time.monotonic() + limit
    rate, connections = spec.get("rate"), int(spec["concurrency"])
    schedule: _Closed | _Offered = (
        _Offered(requests, float(rate), connections, deadline)
        if rate is not None
        else _Closed(requests, deadline)
    )
    started, cpu_started = time.perf_counter(), time.process_time()
    try:  # the deadline stops new requests; this stops a run stuck on an unanswered one
        await asyncio.wait_for(
            asyncio.gather(
                *(_connection(host, port, schedule, results) for _ in range(connections)),
                schedule.run(),
            ),
            timeout=limit + 30,
        )
    except TimeoutError:
        raise SystemExit("load: a request went unanswered past the deadline") from None
    elapsed = time.perf_counter() - started
    return {
        "elapsed_s": elapsed,
        # Its own CPU while it sent and read: what it took from the server's cores.
        "cpu_s": time.process_time() - cpu_started,
        "latencies_s": [r[0] for r in results],
        # When each was answered, from the start: where the slow ones fell in the run.
        "done_s": [r[2] - started for r in results],
        "statuses": [r[1] for r in results],
    }


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    try:
        import uvloop  # the server's event loop too, where it is installed
    except ImportError:
        out = asyncio.run(run(spec))
    else:
        out = uvloop.run(run(spec))
    Path(sys.argv[2]).write_text(json.dumps(out))


if __name__ == "__main__":
    main()
