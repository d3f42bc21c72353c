"""Paths whose segments hide a slash (``%2F``) name no resource of this API.

The ASGI server decodes ``%2F`` before routing, so ``/v1/users/%2F`` reached Litestar as
``/v1/users//``, which it reads as the collection: a request for the user "/" was
answered with the list of users. No identifier here holds a slash, so such a request is
answered 404 before routing.
"""

from __future__ import annotations

from litestar.types import ASGIApp, Receive, Scope, Send

from api.errors import FixedProblem

_NOT_FOUND = FixedProblem(
    404,
    "not-found",
    "Not found",
    "No resource of this API has a slash (%2F) inside a path segment.",
)


def refuse_encoded_slashes(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") if scope["type"] == "http" else None
        if not raw or b"%2" not in raw or b"%2f" not in raw.lower():
            await app(scope, receive, send)
            return
        await _NOT_FOUND.send(send)

    return middleware
