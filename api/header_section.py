"""A request's header section, checked as uvicorn leaves it: before any route (or the
submission lane) reads the request, in one pass over its headers.

- A header section larger than ``KINERJA_MAX_HEADER_BYTES``: 431 (RFC 6585 5). The body
  is held to its limit; the headers, read whole by uvicorn, were not.
- An HTTP/1.1 request without exactly one ``Host``: 400 (RFC 9112 3.2, a MUST).
- ``Idempotency-Key``, ``Content-Type`` or ``Authorization`` given twice: 400. A sender
  must not repeat them (RFC 9110 5.3), and the first was taken while a proxy reading the
  last judged another request (a retry keyed by the second was not known).
- A ``Transfer-Encoding`` naming a coding other than ``chunked``: 501 (RFC 9112 6.1).
  uvicorn removes the chunking and ignores the rest: bytes said to be compressed were
  stored as they came.
- A ``Content-Encoding`` other than ``identity``: 415 with ``Accept-Encoding: identity``
  (RFC 9110 15.5.16). Neither uvicorn nor Litestar decodes a coded body: a gzip report
  was called malformed, plain bytes labelled gzip were stored.

And a request with ``Expect: 100-continue`` answered before its body was asked for (any
refusal here, or a 413 on its Content-Length) says ``Connection: close``: the client may
never send the body, and the server would wait for it, reading the next request as it.
"""

from __future__ import annotations

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import FixedProblem

_CLOSE = ((b"connection", b"close"),)
_TOO_LARGE = FixedProblem(
    431,
    "header-fields-too-large",
    "Request header fields too large",
    "The request's header section is larger than this server takes.",
    headers=_CLOSE,
)
_HOST = FixedProblem(
    400,
    "bad-request",
    "Bad request",
    "An HTTP/1.1 request names exactly one Host.",
    headers=_CLOSE,
)
_TWICE = FixedProblem(
    400,
    "bad-request",
    "Bad request",
    "Idempotency-Key, Content-Type and Authorization are each given at most once.",
)
_TRANSFER = FixedProblem(
    501,
    "not-implemented",
    "Not implemented",
    "The only transfer coding this server decodes is chunked.",
)
_CONTENT = FixedProblem(
    415,
    "unsupported-media-type",
    "Unsupported media type",
    "Send the body without a Content-Encoding: this API does not decode one.",
    headers=((b"accept-encoding", b"identity"),),
)

_ONCE = frozenset({b"idempotency-key", b"content-type", b"authorization"})
_WATCHED = _ONCE | {b"host", b"transfer-encoding", b"content-encoding", b"expect"}


def _codings(value: bytes) -> set[bytes]:
    """The codings a list names (empty members dropped), in lower case."""
    return {c.strip().lower() for c in value.split(b",")} - {b""}


def check_header_section(app: ASGIApp, max_bytes: int) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        size = 0
        seen: list[bytes] = []
        refusal: FixedProblem | None = None
        for name, value in scope["headers"]:
            size += len(name) + len(value) + 4  # ": " and CRLF
            if name not in _WATCHED:
                continue
            if name in _ONCE and name in seen:
                refusal = refusal or _TWICE
            seen.append(name)
            if name == b"transfer-encoding" and _codings(value) - {b"chunked"}:
                refusal = refusal or _TRANSFER
            elif name == b"content-encoding" and _codings(value) - {b"identity"}:
                refusal = refusal or _CONTENT
        if size > max_bytes:
            refusal = _TOO_LARGE
        elif scope.get("http_version") == "1.1" and seen.count(b"host") != 1:
            refusal = _HOST
        if refusal is not None and b"expect" in seen:  # its body unread: close
            await refusal.send(_closing_unless_read(receive, send)[1])
        elif refusal is not None:
            await refusal.send(send)
        elif b"expect" in seen:
            await app(scope, *_closing_unless_read(receive, send))
        else:
            await app(scope, receive, send)

    return middleware


def _closing_unless_read(receive: Receive, send: Send) -> tuple[Receive, Send]:
    """``receive`` and ``send`` that add ``Connection: close`` to an answer started
    before the body was asked for."""
    asked = False

    async def receiving() -> Message:
        nonlocal asked
        asked = True
        return await receive()

    async def sending(message: Message) -> None:
        headers = message.get("headers", ())
        if message["type"] == "http.response.start" and not asked and _CLOSE[0] not in headers:
            message = {**message, "headers": [*headers, *_CLOSE]}
        await send(message)

    return receiving, sending
