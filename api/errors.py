"""One exception family, one mapper to RFC 9457 problem+json.

Domain code raises ``ApiError`` subclasses; Litestar's own HTTP errors, msgspec
validation errors, asyncpg integrity errors and anything unexpected are mapped
here too, so every error a client sees has a stable ``type`` URI it can switch on.
"""

from __future__ import annotations

import logging
import re
import socket
from typing import Any

import asyncpg
import msgspec
from litestar.exceptions import HTTPException, ValidationException
from litestar.plugins.problem_details import ProblemDetailsConfig, ProblemDetailsException

from api.schemas.patterns import in_words

log = logging.getLogger("kinerja.errors")

#: Base of every problem ``type``; the part after it never changes once published.
PROBLEM_BASE = "https://kinerja.dukcapil.example/problems/"


def problem_type(slug: str) -> str:
    return PROBLEM_BASE + slug


class FixedProblem:
    """A problem answered from an ASGI wrapper, before routing: encoded once, and sent
    as fresh messages each time (a wrapper outside may add headers to them)."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        headers: tuple[tuple[bytes, bytes], ...] = (),
    ) -> None:
        self.status = status
        self.body = msgspec.json.encode(
            {"type": problem_type(slug), "title": title, "status": status, "detail": detail}
        )
        self.headers = (
            (b"content-type", b"application/problem+json"),
            (b"content-length", str(len(self.body)).encode()),
            *headers,
        )

    async def send(self, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": self.status, "headers": [*self.headers]}
        )
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


def with_article(word: str) -> str:
    """``word`` after its indefinite article, for messages that name a role or status."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


class ApiError(Exception):
    """A client-visible failure with an HTTP status and a stable problem type."""

    status_code: int = 400
    slug: str = "bad-request"
    title: str = "Bad request"

    def __init__(
        self,
        detail: str,
        *,
        extra: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra or {}
        self.headers = headers


class NotFound(ApiError):
    status_code = 404
    slug = "not-found"
    title = "Not found"


class Forbidden(ApiError):
    status_code = 403
    slug = "forbidden"
    title = "Forbidden"


class Unauthorized(ApiError):
    status_code = 401
    slug = "unauthorized"
    title = "Authentication required"


class Conflict(ApiError):
    status_code = 409
    slug = "conflict"
    title = "Conflict"


class Unprocessable(ApiError):
    status_code = 422
    slug = "unprocessable"
    title = "Unprocessable content"


class TooManyRequests(ApiError):
    status_code = 429
    slug = "too-many-requests"
    title = "Too many requests"


# Litestar's HTTP errors by status: (slug, title).
_HTTP_SLUGS: dict[int, tuple[str, str]] = {
    400: ("bad-request", "Bad request"),
    401: ("unauthorized", "Authentication required"),
    403: ("forbidden", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    409: ("conflict", "Conflict"),
    413: ("payload-too-large", "Request body too large"),
    415: ("unsupported-media-type", "Unsupported media type"),
    422: ("unprocessable", "Unprocessable content"),
    429: ("too-many-requests", "Too many requests"),
    503: ("unavailable", "Service unavailable"),
}


def _from_api_error(exc: ApiError) -> ProblemDetailsException:
    return ProblemDetailsException(
        status_code=exc.status_code,
        type_=problem_type(exc.slug),
        title=exc.title,
        detail=exc.detail,
        extra=exc.extra or None,
        headers=exc.headers,
    )


def _from_http_exception(exc: HTTPException) -> ProblemDetailsException:
    if isinstance(exc, ProblemDetailsException):
        return exc
    status = exc.status_code
    if status >= 500 and exc.detail == _CLIENT_GONE:
        log.info("the client went away before its request was read whole")
        return _internal()
    if status >= 500:
        log.error("http error %s: %s", status, exc.detail)
        return _internal()
    slug, title = _HTTP_SLUGS.get(status, ("http-error", "HTTP error"))
    extra: dict[str, Any] | None = None
    if isinstance(exc, ValidationException):
        slug, title = "validation", "Request validation failed"
        errors = exc.extra or _missing_parameter(exc.detail)
        extra = {"errors": _readable(errors)} if errors else None
    elif isinstance(exc.extra, dict) and exc.extra:
        extra = dict(exc.extra)
    detail = exc.detail if exc.detail and exc.detail != title else title
    if detail in NO_BODY:
        detail = NO_BODY_DETAIL
    return ProblemDetailsException(
        status_code=status,
        type_=problem_type(slug),
        title=title,
        detail=detail,
        extra=extra,
        headers=exc.headers,
    )


#: What Litestar says of a JSON body that is empty (the KeyError of its missing ``data``)
#: or only whitespace (msgspec's message): neither tells the caller what to send.
NO_BODY = {"'data'", "Input data was truncated"}
#: msgspec says "truncated" of a lone surrogate escape ("\ud800") too, and the handler
#: has no body to tell the two apart.
NO_BODY_DETAIL = (
    "The request body is empty or cut short, or escapes half of a surrogate pair "
    "(\\ud800-\\udfff alone): send a whole JSON document."
)
#: Litestar's words when the body stream ends with a disconnect (Request.stream).
_CLIENT_GONE = "client disconnected prematurely"


#: Litestar's words for a required parameter left out, which it sends with no ``extra``.
_MISSING = re.compile(r"Missing required (\w+) parameter '([^']*)'")


def _missing_parameter(detail: str) -> list[dict[str, str]] | None:
    """The ``errors[]`` entry naming a required parameter left out, as for any other."""
    found = _MISSING.match(detail or "")
    if found is None:
        return None
    return [{"key": found.group(2), "source": found.group(1), "message": detail}]


def _readable(errors: Any) -> Any:
    """Litestar's validation errors, with a missing or empty body and the patterns a
    value failed said in plain words."""
    if not isinstance(errors, list):
        return errors
    return [
        {**e, "message": NO_BODY_DETAIL}
        if isinstance(e, dict)
        and e.get("source") == "body"
        and e.get("key") == "data"
        and e.get("message") in NO_BODY
        else {**e, "message": in_words(e["message"])}
        if isinstance(e, dict) and isinstance(e.get("message"), str)
        else e
        for e in errors
    ]


def _from_integrity_error(
    exc: asyncpg.IntegrityConstraintViolationError,
) -> ProblemDetailsException:
    # A constraint the handler did not check first: the client's data clashed with stored data.
    # Named, not quoted: PostgreSQL's detail holds the failing row, which may carry a
    # password hash or a signed report.
    log.warning(
        "integrity error mapped to 409: %s on %s (%s)",
        type(exc).__name__,
        getattr(exc, "table_name", None),
        getattr(exc, "constraint_name", None),
    )
    return ProblemDetailsException(
        status_code=409,
        type_=problem_type("conflict"),
        title="Conflict",
        detail="The request conflicts with data already stored.",
        extra={"constraint": getattr(exc, "constraint_name", None)},
    )


def _from_bad_text(exc: asyncpg.DataError) -> ProblemDetailsException:
    # PostgreSQL text cannot hold NUL ("\u0000" in JSON, "%00" in a path or query): the
    # only way one reaches a query is in what the client sent.
    return ProblemDetailsException(
        status_code=400,
        type_=problem_type("bad-request"),
        title="Bad request",
        detail="Text may not contain NUL characters.",
    )


def _unavailable(exc: Exception) -> ProblemDetailsException:
    # The database is stopped, restarting or out of connections (or its socket is gone):
    # the same request may well succeed shortly, which a 500 would not say.
    log.warning("database unavailable: %s: %s", type(exc).__name__, exc)
    return ProblemDetailsException(
        status_code=503,
        type_=problem_type("unavailable"),
        title="Service unavailable",
        detail="The database cannot be reached at the moment; try again shortly.",
        headers={"Retry-After": "5"},
    )


def _internal() -> ProblemDetailsException:
    return ProblemDetailsException(
        status_code=500,
        type_=problem_type("internal"),
        title="Internal server error",
        detail="The server failed to handle the request; it has been logged.",
    )


def _from_unexpected(exc: Exception) -> ProblemDetailsException:
    log.exception("unhandled error", exc_info=exc)
    return _internal()


def problem_details_config(max_body_bytes: int | None = None) -> ProblemDetailsConfig:
    """Map every exception family to problem+json; the catch-all keeps 500s in shape.
    A 413 names ``max_body_bytes``, the limit the body went over."""

    def from_http_exception(exc: HTTPException) -> ProblemDetailsException:
        problem = _from_http_exception(exc)
        if problem.status_code == 413 and max_body_bytes is not None:
            problem.detail = f"The request body is over the limit of {max_body_bytes} bytes."
            problem.extra = {**(problem.extra or {}), "max_body_bytes": max_body_bytes}
        return problem

    return ProblemDetailsConfig(
        enable_for_all_http_exceptions=False,
        exception_to_problem_detail_map={
            ApiError: _from_api_error,
            HTTPException: from_http_exception,
            asyncpg.IntegrityConstraintViolationError: _from_integrity_error,
            asyncpg.UntranslatableCharacterError: _from_bad_text,
            asyncpg.CharacterNotInRepertoireError: _from_bad_text,
            # A connection refused, reset or lost, timed out, its Unix socket gone (the
            # server stopped) or its host unknown; not every OSError, so a bug that raises
            # another one is still a 500.
            ConnectionError: _unavailable,
            FileNotFoundError: _unavailable,
            TimeoutError: _unavailable,
            socket.gaierror: _unavailable,
            asyncpg.PostgresConnectionError: _unavailable,
            asyncpg.CannotConnectNowError: _unavailable,
            asyncpg.AdminShutdownError: _unavailable,
            asyncpg.CrashShutdownError: _unavailable,
            asyncpg.TooManyConnectionsError: _unavailable,
            Exception: _from_unexpected,
        },
    )


def problem_response(exc: ApiError) -> Any:
    """The problem+json response for ``exc``, for routes that must return (not raise) it.

    Returning keeps the request's transaction committing, e.g. so a failed login
    is still counted.
    """
    return _from_api_error(exc).to_response(None)  # type: ignore[arg-type]
