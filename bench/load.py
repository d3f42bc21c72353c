"""A small load generator, run as its own process: raw HTTP/1.1 over keep-alive sockets.

It reads a spec (JSON) naming the host, port, concurrency and a list of requests
(base64 of the exact bytes to send), sends every request once, spread over the
connections, and writes each latency and status to the output file. Requests go to
loopback only, and the run ends when the list is exhausted (or at the deadline).

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


def _chunked_end(buffer: bytes, start: int) -> int:
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
    def __init__(
        self,
        queue: list[bytes],
        results: list[tuple[float, int]],
        deadline: float,
        done: asyncio.Future[None],
    ) -> None:
        self._queue = queue
        self._results = results
        self._deadline = deadline
        self._done = done
        self._transport: asyncio.Transport | None = None
        self._buffer = b""
        self._started = 0.0
        self._waiting = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._send_next()

    def _send_next(self) -> None:
        assert self._transport is not None
        if not self._queue or time.monotonic() >= self._deadline:
            self._transport.close()
            return
        request = self._queue.pop()
        self._waiting = True
        self._started = time.perf_counter()
        self._transport.write(request)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        head_end = self._buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        try:
            status, length = _framing(self._buffer[:head_end])
            body_start = head_end + 4
            end = _chunked_end(self._buffer, body_start) if length is None else body_start + length
        except (_Broken, ValueError) as exc:
            self._fail(exc)
            return
        if end < 0 or end > len(self._buffer):
            return
        self._results.append((time.perf_counter() - self._started, status))
        self._waiting = False
        self._buffer = self._buffer[end:]
        self._send_next()

    def _fail(self, exc: Exception) -> None:
        if not self._done.done():
            self._done.set_exception(exc)
        assert self._transport is not None
        self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done.done():
            if exc is None and self._waiting:
                exc = _Broken("the server closed the connection before answering")
            if exc is not None:
                self._done.set_exception(exc)
            else:
                self._done.set_result(None)


async def _connection(
    host: str, port: int, queue: list[bytes], results: list[tuple[float, int]], deadline: float
) -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    await loop.create_connection(lambda: _Connection(queue, results, deadline, done), host, port)
    await done


async def run(spec: dict) -> dict:
    host, port = spec["host"], int(spec["port"])
    if host not in LOOPBACK:
        raise SystemExit("load goes to loopback only")
    requests = [base64.b64decode(r) for r in spec["requests"]]
    requests.reverse()  # connections pop from the end: keep the given order
    results: list[tuple[float, int]] = []
    deadline = time.monotonic() + float(spec.get("max_seconds", 120))
    started, cpu_started = time.perf_counter(), time.process_time()
    try:  # the deadline stops new requests; this stops a run stuck on an unanswered one
        await asyncio.wait_for(
            asyncio.gather(
                *(
                    _connection(host, port, requests, results, deadline)
                    for _ in range(int(spec["concurrency"]))
                )
            ),
            timeout=float(spec.get("max_seconds", 120)) + 30,
        )
    except TimeoutError:
        raise SystemExit("load: a request went unanswered past the deadline") from None
    elapsed = time.perf_counter() - started
    return {
        "elapsed_s": elapsed,
        # Its own CPU while it sent and read: what it took from the server's cores.
        "cpu_s": time.process_time() - cpu_started,
        "latencies_s": [r[0] for r in results],
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
