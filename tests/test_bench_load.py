"""The benchmark's load generator (``bench.load``): closed and open loops against a tiny
local server whose every answer takes a known time."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from itertools import pairwise

from bench import load

ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


@asynccontextmanager
async def slow_server(delay_s: float) -> AsyncIterator[tuple[int, list[float]]]:
    """An HTTP/1.1 server on loopback answering each request ``delay_s`` after it came,
    one at a time per connection; yields its port and the arrival time of each request."""
    loop = asyncio.get_running_loop()
    arrivals: list[float] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                arrivals.append(loop.time())
                await asyncio.sleep(delay_s)
                writer.write(ANSWER)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], arrivals
    finally:
        server.close()
        await server.wait_closed()


def spec(port: int, count: int, concurrency: int, rate: float | None = None) -> dict:
    request = base64.b64encode(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").decode()
    out = {"host": "127.0.0.1", "port": port, "concurrency": concurrency}
    out["requests"] = [request] * count
    if rate is not None:
        out["rate"] = rate
    return out


async def test_a_closed_loop_sends_each_request_when_the_last_is_answered() -> None:
    async with slow_server(0.02) as (port, arrivals):
        out = await load.run(spec(port, 10, concurrency=1))
    assert out["statuses"] == [200] * 10
    # One connection, one request at a time: each waits for the answer before it.
    gaps = [b - a for a, b in pairwise(arrivals)]
    assert min(gaps) >= 0.019
    assert min(out["latencies_s"]) >= 0.02
    # When each was answered, from the start, in the order they were: 20 ms apart.
    done = out["done_s"]
    assert len(done) == 10 and done == sorted(done)
    assert done[0] >= 0.02 and done[-1] - done[0] >= 9 * 0.019
    assert done[-1] <= out["elapsed_s"]


async def test_an_open_loop_releases_requests_at_the_rate_however_slow_the_server() -> None:
    async with slow_server(0.0) as (port, arrivals):
        started = asyncio.get_running_loop().time()
        out = await load.run(spec(port, 21, concurrency=4, rate=100.0))
    assert out["statuses"] == [200] * 21
    # Due at 10 ms intervals: none before its time, so the last after 200 ms. (Counted
    # from before the run, not from the first arrival: that one is late whenever the
    # process is descheduled just after sending it, and the span then falls short.)
    assert arrivals[-1] - started >= 0.2
    assert out["elapsed_s"] >= 0.2


async def test_an_open_loop_times_a_request_from_when_it_fell_due() -> None:
    # One connection taking 50 ms an answer, requests due every 10 ms: the tenth waits
    # for nine before it, so its latency is near 10 x 50 - 9 x 10 = 410 ms.
    async with slow_server(0.05) as (port, _):
        out = await load.run(spec(port, 10, concurrency=1, rate=100.0))
    latencies = out["latencies_s"]
    assert len(latencies) == 10
    assert min(latencies) >= 0.05
    assert max(latencies) >= 0.40
    # Latency grows with each request that waited: a closed loop would show 50 ms each.
    assert latencies == sorted(latencies)


async def test_an_open_loop_does_not_reuse_an_idle_connection_the_server_closed() -> None:
    # The server closes a connection idle for 150 ms (as uvicorn does after 5 s), and
    # answers the sixth request 200 ms late. Requests due every 50 ms keep one
    # connection busy while the server closes the other three; those due while the
    # sixth is answered wait for the busy one rather than go to a closed one.
    loop = asyncio.get_running_loop()
    served: list[float] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 0.15)
                served.append(loop.time())
                if len(served) == 6:
                    await asyncio.sleep(0.2)
                writer.write(ANSWER)
                await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        out = await load.run(spec(port, 12, concurrency=4, rate=20.0))
    finally:
        server.close()
        await server.wait_closed()
    assert out["statuses"] == [200] * 12
    # The sixth's delay reached the two due behind it, each timed from its due moment.
    assert sorted(out["latencies_s"])[-3] >= 0.1
