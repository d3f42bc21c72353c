"""A lane of its own for ``POST /v1/submissions``, the route that takes nearly all the load.

Litestar's routing, middleware chain, parameter extraction and response handling cost a
worker about 0.1 ms of CPU per submission, a sixth of what it spends on one in all
(measured in turns under the ingest benchmark: 0.53 against 0.64 ms). This lane answers
such a request with the same functions the route uses: ``admit`` (the one
authentication and permission check), ``answer_submission`` (the route's work), and,
for an error, the app's own exception handlers and response conversion, as Litestar's
exception middleware calls them.

It takes a request only when it can answer it as the route would: a POST to the
route's path with a ``Content-Length`` within the route's body limit and a bearer token
that is allowed to submit. Anything else (no token, a refused one, a chunked or
oversize body, another route) goes to Litestar untouched, which answers it as before;
so does every request when ``KINERJA_SUBMISSION_LANE`` is false. The route's handler
stays, documents the operation, and answers what the lane passes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from inspect import getmro
from typing import Any

from litestar import Litestar, Request
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from litestar.types import ASGIApp, ExceptionHandlersMap, Receive, Scope, Send

from api.auth.middleware import admit
from api.authz import declared_permission
from api.routes.submissions import answer_submission
from db import changes

ROUTE = "/v1/submissions"
_PATHS = (ROUTE, ROUTE + "/")
#: More digits than any body the lane takes could need.
_LENGTH_DIGITS = 19


def _framing(scope: Scope) -> tuple[int | None, str | None, str | None]:
    """Content-Length (None if absent, chunked or not a number), Content-Type and
    Idempotency-Key; the first of each, as Litestar's ``headers.get`` reads them."""
    length: int | None = None
    content_type = idempotency_key = None
    seen_length = chunked = False
    for name, value in scope["headers"]:
        if name == b"content-length" and not seen_length:
            seen_length = True
            # Digits only, and few enough for ``int`` (it refuses over 4,300): anything
            # else goes to Litestar, which answers it as the route always has.
            length = int(value) if value.isdigit() and len(value) <= _LENGTH_DIGITS else None
        elif name == b"transfer-encoding":
            chunked = True
        elif name == b"content-type" and content_type is None:
            content_type = value.decode("latin-1")
        elif name == b"idempotency-key" and idempotency_key is None:
            idempotency_key = value.decode("latin-1")
    return (None if chunked else length), content_type, idempotency_key


async def _body(receive: Receive, limit: int | None) -> bytes | None:
    """The request body (None: the client went away), counted as it comes: a server that
    does not hold a body to its Content-Length could pass more than that said (413, as
    the route answers, which counts the same way)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if limit is not None and size > limit:
            raise RequestEntityTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _handler_for(handlers: ExceptionHandlersMap, exc: Exception) -> Any:
    """The app's handler for ``exc``: the nearest class in its MRO (the app maps classes
    only, down to ``Exception``, so there is always one)."""
    return next(handlers[cls] for cls in getmro(type(exc)) if cls in handlers)


@dataclass
class LaneCounts:
    """Requests the lane answered and those it passed to Litestar (tests, diagnostics)."""

    taken: int = 0
    passed: int = 0


def submission_lane(app: Litestar, inner: ASGIApp) -> ASGIApp:
    """Wrap ``inner`` (the app's ASGI handler) with the lane; see the module docstring.
    Its counts are ``app.state.submission_lane``."""
    route = app.route_handler_method_map[ROUTE]["POST"]
    permission = declared_permission(route)
    limit = route.resolve_request_max_body_size()
    handlers = app.exception_handlers
    counts = app.state.submission_lane = LaneCounts()

    async def lane(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in _PATHS:
            await inner(scope, receive, send)
            return
        counts.passed += 1  # until taken below
        length, content_type, idempotency_key = _framing(scope)
        if length is None or (limit is not None and length > limit):
            await inner(scope, receive, send)
            return
        try:
            principal = await admit(scope, permission)
        except Exception:
            await inner(scope, receive, send)
            return
        assert principal is not None  # the route is not public
        counts.passed -= 1
        counts.taken += 1
        try:
            body = await _body(receive, limit)
            if body is None:
                return  # nobody to answer; nothing was stored
            changes.record_writes()
            answer = await answer_submission(
                app.state.appender,
                principal,
                body,
                content_type=content_type,
                idempotency_key=idempotency_key,
            )
        except Exception as exc:
            request: Request[Any, Any, Any] = app.request_class(scope, receive, send)
            response = _handler_for(handlers, exc)(request, exc).to_asgi_response(
                app=None, request=request, type_encoders=app.type_encoders
            )
            await response(scope, receive, send)
        else:
            await answer.send(send)

    return lane
