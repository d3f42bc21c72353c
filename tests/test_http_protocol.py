"""Requests uvicorn cannot parse are answered in problem+json, by a real uvicorn server
running the protocol ``kinerja serve`` gives it; well-formed ones still reach the app."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from litestar.types import Receive, Scope, Send

from api.http_protocol import ProblemHttpToolsProtocol


async def _app(scope: Scope, receive: Receive, send: Send) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


@asynccontextmanager
async def _served() -> AsyncIterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    config = uvicorn.Config(
        _app, host="127.0.0.1", port=port, http=ProblemHttpToolsProtocol, lifespan="off"
    )
    config.log_config = None
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.02)
        assert server.started
        yield port
    finally:
        server.should_exit = True
        await task


async def _exchange(port: int, raw: bytes) -> tuple[bytes, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(raw)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)  # the server closes after a 400
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status.encode(), headers, body


async def test_malformed_requests_are_answered_in_problem_json() -> None:
    async with _served() as port:
        for raw in (
            b"GET / HTTP/1.1\r\nHost x\r\n\r\n",  # a header without a colon
            b"GET /\x01 HTTP/1.1\r\nHost: x\r\n\r\n",  # a control character in the target
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ):
            status, headers, body = await _exchange(port, raw)
            assert status.startswith(b"HTTP/1.1 400"), (raw, status)
            assert headers["content-type"] == "application/problem+json", raw
            assert int(headers["content-length"]) == len(body)
            assert len(headers["x-request-id"]) == 32
            problem = json.loads(body)
            assert problem["type"] == "https://kinerja.dukcapil.example/problems/bad-request"
            assert problem["status"] == 400 and problem["title"] and problem["detail"]


async def test_well_formed_requests_still_reach_the_app() -> None:
    async with _served() as port:
        status, _headers, _body = await _exchange(
            port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        assert status.startswith(b"HTTP/1.1 204")
