"""uvicorn's HTTP protocol, answering a request it cannot parse in problem+json.

A malformed request (request line, header or body framing) never reaches the app:
uvicorn answers 400 itself, in plain text. Every other error of this API is RFC 9457
problem+json with an ``X-Request-ID``, so this subclass (``kinerja serve`` passes it to
uvicorn) gives that answer the same form. ``tests/test_http_protocol.py`` sends such
requests to a real uvicorn server, so a uvicorn that stopped calling this hook fails.
"""

from __future__ import annotations

import os

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.errors import problem_type


def malformed_request_answer(detail: str, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    body = msgspec.json.encode(
        {
            "type": problem_type("bad-request"),
            "title": "Bad request",
            "status": 400,
            "detail": detail,
        }
    )
    head = [b"HTTP/1.1 400 Bad Request\r\n"]
    head += [name + b": " + value + b"\r\n" for name, value in default_headers]
    head += [
        b"content-type: application/problem+json\r\n",
        b"content-length: %d\r\n" % len(body),
        b"x-request-id: " + os.urandom(16).hex().encode() + b"\r\n",
        b"connection: close\r\n\r\n",
    ]
    return b"".join(head) + body


class ProblemHttpToolsProtocol(HttpToolsProtocol):
    def send_400_response(self, msg: str) -> None:
        self.transport.write(malformed_request_answer(msg, self.server_state.default_headers))
        self.transport.close()
