"""HEAD answered as GET without the body (RFC 9110, section 9.3.2).

Litestar routes a GET handler for GET only, so a monitor or cache that checks a
resource with HEAD was told 405. Here a HEAD request goes through the app as a GET (the
same authentication, authorization, validation and conditional handling) and its answer
keeps the status and every header, Content-Length and ETag included, but not the body.
"""

from __future__ import annotations

from litestar.types import ASGIApp, Message, Receive, Scope, Send


def head_as_get(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await app(scope, receive, send)
            return

        async def headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return  # the rest of the body follows; only its end is passed on
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await app({**scope, "method": "GET"}, receive, headers_only)  # type: ignore[arg-type]

    return middleware
