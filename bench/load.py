"""A small load generator, run as its own process: raw HTTP/1.1 over keep-alive sockets.

It reads a spec (JSON) naming the host, port, concurrency and a list of requests
(base64 of the exact bytes to send), sends every request once, spread over the
connections, and writes each latency and status to the output file. Requests go to
loopback only, and the run ends when the list is exhausted (or at the deadline).
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
import time
from pathlib import Path

LOOPBACK = ("127.0.0.1", "localhost", "::1")


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value.strip())
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def _worker(
    host: str,
    port: int,
    queue: list[bytes],
    results: list[tuple[float, int]],
    deadline: float,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while queue and time.monotonic() < deadline:
            request = queue.pop()
            started = time.perf_counter()
            writer.write(request)
            await writer.drain()
            status = await _read_response(reader)
            results.append((time.perf_counter() - started, status))
    finally:
        writer.close()
        await writer.wait_closed()


async def run(spec: dict) -> dict:
    host, port = spec["host"], int(spec["port"])
    if host not in LOOPBACK:
        raise SystemExit("load goes to loopback only")
    requests = [base64.b64decode(r) for r in spec["requests"]]
    requests.reverse()  # workers pop from the end: keep the given order
    results: list[tuple[float, int]] = []
    deadline = time.monotonic() + float(spec.get("max_seconds", 120))
    started = time.perf_counter()
    await asyncio.gather(
        *(_worker(host, port, requests, results, deadline) for _ in range(int(spec["concurrency"])))
    )
    elapsed = time.perf_counter() - started
    return {
        "elapsed_s": elapsed,
        "latencies_s": [r[0] for r in results],
        "statuses": [r[1] for r in results],
    }


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    out = asyncio.run(run(spec))
    Path(sys.argv[2]).write_text(json.dumps(out))


if __name__ == "__main__":
    main()
