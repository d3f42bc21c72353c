"""Request bodies are read as they arrive: one sent with a ``Content-Encoding`` is refused.

Neither uvicorn nor Litestar decodes a coded body. A gzip-compressed report was read as
its compressed bytes and called malformed (422), and plain bytes labelled gzip were
stored as if the label were absent. RFC 9110 (15.5.16) answers a coding the server does
not decode with 415 and ``Accept-Encoding`` naming the codings it takes: here only
``identity``. Checked before any route (and the submission lane) sees the request.
"""

from __future__ import annotations

from litestar.types import ASGIApp, Receive, Scope, Send

from api.errors import FixedProblem

_REFUSED = FixedProblem(
    415,
    "unsupported-media-type",
    "Unsupported media type",
    "Send the body without a Content-Encoding: this API does not decode one.",
    headers=((b"accept-encoding", b"identity"),),
)


def _coded(value: bytes) -> bool:
    """Whether a Content-Encoding names any coding but ``identity`` (a list may name several)."""
    return any(c.strip().lower() not in (b"", b"identity") for c in value.split(b","))


def refuse_content_encoding(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not any(
            name == b"content-encoding" and _coded(value) for name, value in scope["headers"]
        ):
            await app(scope, receive, send)
            return
        await _REFUSED.send(send)

    return middleware
