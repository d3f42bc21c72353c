"""Tokens and the public keys that verify them."""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any
from urllib.parse import parse_qsl

import asyncpg
import msgspec
from litestar import Request, Response, get, post
from litestar.datastructures import State
from litestar.di import NamedDependency
from litestar.params import RawBody

from api.errors import NO_BODY, NO_BODY_DETAIL, ApiError, problem_response
from api.identity import InvalidCredentials, login
from api.request import is_json
from api.schemas.identity import TokenRequest, TokenResponse
from api.signatures import repeats_a_member

_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

log = logging.getLogger("kinerja.auth")


class BadTokenRequest(ApiError):
    status_code = 400
    slug = "invalid-request"
    title = "Malformed token request"


class UnsupportedTokenMedia(ApiError):
    status_code = 415
    slug = "unsupported-media-type"
    title = "Unsupported media type"


#: The form fields the token route takes.
_FIELDS = frozenset(TokenRequest.__struct_fields__)
_UNENCODED = (
    "The body is not a form this route takes: it takes "
    + ", ".join(sorted(_FIELDS))
    + ", each value encoded (curl --data-urlencode)."
)


def _form(body: bytes) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """The form's fields. A form that does not parse, or names a field this route does not
    take, is refused without quoting it: a password with an '&' sent unencoded (curl -d)
    arrives split, and the piece after the '&' would be echoed in the problem."""
    try:
        pairs = parse_qsl(body.decode("utf-8"), strict_parsing=bool(body))
    except (ValueError, UnicodeDecodeError):
        raise BadTokenRequest(_UNENCODED) from None
    if any(name not in _FIELDS for name, _ in pairs):
        raise BadTokenRequest(_UNENCODED)
    return dict(pairs), pairs


def _parse(content_type: str | None, body: bytes) -> TokenRequest:
    """OAuth2 clients send a form; JSON is accepted too, and a body without a
    Content-Type is read as JSON, as on every other route. Unknown fields are refused."""
    media = (content_type or "").split(";", 1)[0].strip().lower()  # media types ignore case
    try:
        if media == "application/x-www-form-urlencoded":
            fields, pairs = _form(body)
            if len(fields) < len(pairs):  # RFC 6749 3.2: none may be sent twice
                repeated = sorted(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
                raise ValueError(f"Parameters sent more than once: {', '.join(repeated)}")
            return msgspec.convert(fields, TokenRequest)
        if content_type is None or is_json(content_type):
            request = msgspec.json.decode(body, type=TokenRequest)
            if repeats_a_member(body):  # as in a form: none may be sent twice
                raise ValueError("A member is sent more than once.")
            return request
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError, UnicodeDecodeError) as exc:
        said = str(exc)
        raise BadTokenRequest(NO_BODY_DETAIL if said in NO_BODY else said) from None
    raise UnsupportedTokenMedia(
        "Send application/x-www-form-urlencoded (or application/json).",
        extra={"content_type": content_type},
    )


@post(
    "/v1/auth/token",
    opt={"permission": "public"},
    status_code=200,
    summary="Get an access token",
    tags=["auth"],
    description=(
        "OAuth2 token endpoint: `grant_type=password` with `username` and `password` for "
        "people, `grant_type=client_credentials` with `client_id` and `client_secret` for "
        "service accounts. Repeated failures answer 429 with Retry-After."
    ),
)
async def token(
    request: Request[Any, Any, Any],
    body: RawBody,
    db: NamedDependency[asyncpg.Connection],
    state: State,
) -> Response[TokenResponse]:
    data = _parse(request.headers.get("content-type"), body)
    # Authenticated requests re-read the key ring; this public one signs with it, so it
    # does too: a worker idle since a rotation would sign with the replaced key.
    await state.key_ring.refresh_with(db)
    address = request.client.host if request.client else "unknown"
    try:
        issued = await login(db, state.settings, state.key_ring, data, address)
    except InvalidCredentials as exc:
        return problem_response(exc)  # type: ignore[no-any-return]
    return Response(issued, headers=_NO_STORE)


@get(
    "/.well-known/jwks.json",
    opt={"permission": "public"},
    summary="Public keys for access tokens",
    tags=["auth"],
)
async def jwks(state: State) -> dict[str, Any]:
    """Re-reads the key ring as authenticated requests do: a worker serving only this
    public route would otherwise go on publishing the keys it started with, and not the
    one another replica signs with after a rotation."""
    try:
        await state.key_ring.maybe_refresh(state.pool)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # The keys held are still the best answer: a relying party keeps verifying.
        log.warning("JWKS served from the keys held; re-reading failed: %s", exc)
    return state.key_ring.jwks()  # type: ignore[no-any-return]
