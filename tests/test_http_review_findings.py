"""``POST /v1/submissions`` under a real uvicorn server, spoken to in raw HTTP/1.1.

Each test serves the app as ``kinerja serve`` does (uvicorn with httptools and
``ProblemHttpToolsProtocol``, the lifespan on) in the test's own event loop, writes
bytes to a socket and reads the bytes that come back: what an HTTP client sees,
including framing and connection handling that no ASGI test client shows.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
import msgspec
import pytest
import uvicorn
from litestar import Litestar

from api.app import create_app
from api.http_protocol import ProblemHttpToolsProtocol
from api.settings import Settings
from tests.people import Person, token_for
from tests.submitting import JOSE, Signer, register_key, stored_counts

PROBLEM = "application/problem+json"
PROBLEMS = "https://kinerja.dukcapil.example/problems/"


@asynccontextmanager
async def real_server(settings: Settings) -> AsyncIterator[tuple[Litestar, int]]:
    """The app behind a real uvicorn on a free port; stopped when the block ends."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    app = create_app(settings, configure_logs=False)
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=ProblemHttpToolsProtocol,
        lifespan="on",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.02)
        assert server.started, "uvicorn did not start"
        yield app, port
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30)


@dataclass
class Response:
    status: int
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.get(name)
        return values[0] if values else None

    def problem(self) -> dict[str, object]:
        assert self.header("content-type") == PROBLEM, (self.status, self.headers, self.body)
        value = json.loads(self.body)
        assert isinstance(value, dict)
        return value


def parse_responses(stream: bytes) -> list[Response]:
    """Responses written one after the other (Content-Length framed; 1xx skipped)."""
    responses = []
    while stream:
        head, sep, rest = stream.partition(b"\r\n\r\n")
        if not sep:
            break
        status_line, *lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ")[1])
        headers: dict[str, list[str]] = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers.setdefault(name.strip().lower(), []).append(value.strip())
        length = int(headers.get("content-length", ["0"])[0])
        body, stream = rest[:length], rest[length:]
        if status >= 200:
            responses.append(Response(status, headers, body))
    return responses


async def exchange(
    port: int, *parts: bytes, pause: float = 0.0, wait: float = 10.0
) -> tuple[bytes, bool]:
    """Write ``parts`` (``pause`` seconds apart), then read until the server closes.
    What came back, and whether the server closed the connection within ``wait``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for part in parts:
            writer.write(part)
            await writer.drain()
            if pause:
                await asyncio.sleep(pause)
        received = b""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while (left := deadline - loop.time()) > 0:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), left)
            except TimeoutError:
                break
            if not chunk:
                return received, True
            received += chunk
        return received, False
    finally:
        writer.close()


def post(
    token: str,
    body: bytes,
    *,
    extra: bytes = b"",
    host: bytes | None = b"Host: kinerja.test\r\n",
    content_type: bytes = JOSE.encode(),
    length: bool = True,
) -> bytes:
    """A raw ``POST /v1/submissions``; ``extra`` header lines go after the usual ones."""
    head = b"POST /v1/submissions HTTP/1.1\r\n" + (host or b"")
    head += b"Authorization: Bearer " + token.encode() + b"\r\n"
    head += b"Content-Type: " + content_type + b"\r\n"
    if length:
        head += b"Content-Length: %d\r\n" % len(body)
    return head + extra + b"\r\n" + body


async def signer_for(conn: asyncpg.Connection, people: dict[str, Person]) -> Signer:
    return await register_key(conn, people["district_head"])


def lane_settings(settings: Settings, lane: bool) -> Settings:
    return msgspec.structs.replace(settings, submission_lane=lane)


LANES = pytest.mark.parametrize("lane", [True, False], ids=["lane", "route"])


# --- Findings: each of these fails on the code as it stands. ---------------------------


@LANES
@pytest.mark.parametrize(
    "host",
    [None, b"Host: kinerja.test\r\nHost: elsewhere.test\r\n"],
    ids=["no-host", "two-hosts"],
)
async def test_an_http11_request_without_exactly_one_host_is_400(
    lane: bool,
    host: bytes | None,
    settings: Settings,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """RFC 9112, section 3.2: "A server MUST respond with a 400 (Bad Request) status code
    to any HTTP/1.1 request message that lacks a Host header field and to any request
    message that contains more than one Host header field line". Both were stored (201)."""
    signer = await signer_for(conn, people)
    async with real_server(lane_settings(settings, lane)) as (app, port):
        token = token_for(app, signer.person)
        before = await stored_counts(conn)
        raw = post(token, signer.sign().encode(), host=host, extra=b"Connection: close\r\n")
        stream, _closed = await exchange(port, raw)
        [response] = parse_responses(stream)
        assert response.status == 400, response
        assert response.problem()["status"] == 400
        assert await stored_counts(conn) == before


@LANES
async def test_a_transfer_coding_the_server_does_not_decode_is_refused(
    lane: bool, settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """``Transfer-Encoding: gzip, chunked``: uvicorn removes the chunking and passes the
    rest on as if there were no gzip, and the report was stored (201) from bytes the client
    said were compressed: the mistake ``api/encodings.py`` fixed for Content-Encoding.
    RFC 9112, section 6.1: "A server that receives a request message with a transfer
    coding it does not understand SHOULD respond with 501 (Not Implemented)"."""
    signer = await signer_for(conn, people)
    async with real_server(lane_settings(settings, lane)) as (app, port):
        token = token_for(app, signer.person)
        jws = signer.sign().encode()
        before = await stored_counts(conn)
        raw = post(
            token,
            b"%x\r\n%s\r\n0\r\n\r\n" % (len(jws), jws),
            extra=b"Transfer-Encoding: gzip, chunked\r\nConnection: close\r\n",
            length=False,
        )
        stream, _closed = await exchange(port, raw)
        [response] = parse_responses(stream)
        assert response.status == 501, response
        assert response.problem()["status"] == 501
        assert await stored_counts(conn) == before


@LANES
@pytest.mark.parametrize(
    ("lines", "statuses"),
    [
        (b"Idempotency-Key: outbox-0001\r\nIdempotency-Key: outbox-0002\r\n", {400}),
        (b"Content-Type: text/plain\r\n", {400, 415}),
        (b"Authorization: Bearer another.token.here\r\n", {400, 401}),
    ],
    ids=["idempotency-key", "content-type", "authorization"],
)
async def test_a_single_valued_header_given_twice_is_refused(
    lane: bool,
    lines: bytes,
    statuses: set[int],
    settings: Settings,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """Idempotency-Key, Content-Type and Authorization each take one value. Sent twice
    with different values, the first was used and the report stored (201): a retry keyed
    by the second value is no longer recognised, and a proxy that reads the last
    Authorization or Content-Type judged another request than the one stored. RFC 9110,
    section 5.3: a sender MUST NOT send such a field twice, and the value a recipient
    would combine (``outbox-0001, outbox-0002``; ``application/jose, text/plain``;
    two credentials) is not a valid key, media type or credential."""
    signer = await signer_for(conn, people)
    async with real_server(lane_settings(settings, lane)) as (app, port):
        token = token_for(app, signer.person)
        before = await stored_counts(conn)
        raw = post(token, signer.sign().encode(), extra=lines + b"Connection: close\r\n")
        stream, _closed = await exchange(port, raw)
        [response] = parse_responses(stream)
        assert response.status in statuses, response
        assert response.problem()["status"] == response.status
        assert await stored_counts(conn) == before


@LANES
async def test_a_refused_expect_continue_request_does_not_hold_the_connection(
    lane: bool, settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """``Expect: 100-continue`` with a Content-Length over the limit is answered 413 at
    once (good), without ``100 Continue``, so the client sends no body. But the 413 did
    not say ``Connection: close`` and the server kept the connection open waiting for
    70,000 bytes it had already refused: the client's next request on it is read as that
    body and never answered (the connection hangs). RFC 9110, section 10.1.1: a server
    that answers before reading the content "SHOULD indicate whether it intends to close
    the connection ... or continue reading"; section 15.5.14 (413): it "MAY close the
    connection". Close it, and say so."""
    signer = await signer_for(conn, people)
    async with real_server(lane_settings(settings, lane)) as (app, port):
        token = token_for(app, signer.person)
        before = await stored_counts(conn)
        refused = post(token, b"", extra=b"Expect: 100-continue\r\n").replace(
            b"Content-Length: 0", b"Content-Length: 70000"
        )
        stream, closed = await exchange(port, refused, wait=3)
        responses = parse_responses(stream)
        assert [r.status for r in responses] == [413], stream
        assert responses[0].problem()["type"] == PROBLEMS + "payload-too-large"
        assert b"100 Continue" not in stream
        assert responses[0].header("connection") == "close", responses[0].headers
        assert closed, "the server kept waiting for a body it had refused"
        assert await stored_counts(conn) == before


@LANES
async def test_a_header_section_of_a_mebibyte_is_refused_with_431(
    lane: bool, settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """The body is held to 64 KiB (README: ``KINERJA_MAX_BODY_BYTES``), but the header
    section has no limit at all: a 1 MiB header field (or 20,000 fields) was read whole
    into the worker's memory and the report stored (201); there is no size at which the
    server stops. RFC 9110, section 5.4: a server that receives a field section "larger
    than it wishes to process MUST respond with an appropriate 4xx (Client Error)", and
    RFC 6585, section 5, names it: 431 Request Header Fields Too Large."""
    signer = await signer_for(conn, people)
    async with real_server(lane_settings(settings, lane)) as (app, port):
        token = token_for(app, signer.person)
        before = await stored_counts(conn)
        padding = b"X-Padding: " + b"a" * (1 << 20) + b"\r\n"
        raw = post(token, signer.sign().encode(), extra=padding + b"Connection: close\r\n")
        stream, _closed = await exchange(port, raw)
        [response] = parse_responses(stream)
        assert response.status == 431, response
        assert response.problem()["status"] == 431
        assert await stored_counts(conn) == before


# --- Checked and correct: kept because no other test speaks raw HTTP to the app. -------


@LANES
async def test_pipelined_submissions_and_refusals_keep_the_connection_in_order(
    lane: bool, settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """Five POSTs in one write (HTTP/1.1 pipelining): 415, 400 (a bad key), 413 (a full
    oversize body), 401, then a report: each answered in order on the one connection,
    the refused bodies skipped whole, only the last stored."""
    signer = await signer_for(conn, people)
    async with real_server(lane_settings(settings, lane)) as (app, port):
        token = token_for(app, signer.person)
        before = await stored_counts(conn)
        stream, closed = await exchange(
            port,
            post(token, signer.sign().encode(), content_type=b"text/plain")
            + post(token, signer.sign().encode(), extra=b"Idempotency-Key: a b\r\n")
            + post(token, b"a" * 70000)
            + post("x.y.z", signer.sign().encode())
            + post(token, signer.sign().encode(), extra=b"Connection: close\r\n"),
        )
        assert closed
        responses = parse_responses(stream)
        assert [r.status for r in responses] == [415, 400, 413, 401, 201], stream[:2000]
        for response in responses[:-1]:
            assert response.problem()["status"] == response.status
        after = await stored_counts(conn)
        assert after["submissions"] == before["submissions"] + 1


@LANES
async def test_a_slow_body_is_stored_and_a_client_gone_mid_body_stores_nothing(
    lane: bool,
    settings: Settings,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A body in 7-byte pieces, Content-Length framed and chunked, is stored; a client
    that closes mid-body (either framing) leaves nothing stored and no error logged."""
    signer = await signer_for(conn, people)
    async with real_server(lane_settings(settings, lane)) as (app, port):
        token = token_for(app, signer.person)
        for chunked in (False, True):
            jws = signer.sign().encode()
            pieces = [jws[i : i + 7] for i in range(0, len(jws), 7)]
            if chunked:
                head = post(token, b"", extra=b"Transfer-Encoding: chunked\r\n", length=False)
                pieces = [b"%x\r\n%s\r\n" % (len(p), p) for p in pieces] + [b"0\r\n\r\n"]
            else:
                head = post(token, b"").replace(
                    b"Content-Length: 0", b"Content-Length: %d" % len(jws)
                )
            head = head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
            stream, _closed = await exchange(port, head, *pieces, pause=0.005)
            assert [r.status for r in parse_responses(stream)] == [201], stream[:500]

            before = await stored_counts(conn)
            with caplog.at_level(logging.WARNING):
                caplog.clear()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(head + b"".join(pieces)[:100])
                await writer.drain()
                await asyncio.sleep(0.3)
                writer.close()
                await asyncio.sleep(1.0)
                del reader
            assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
            assert await stored_counts(conn) == before
