"""The request class of the app: what a JSON body may be, decided before Litestar reads it.

- Bytes that are not UTF-8 inside a string, and very deep nesting, make msgspec raise
  ``UnicodeDecodeError`` and ``RecursionError`` where Litestar expects its own decode
  error: both reached clients as 500s. They become that error (400).
- Litestar converts a route's ``data`` in msgspec's lax mode, made for query strings:
  ``{"active": 0}`` deactivated a user and ``"year": "2027"`` passed as a number. A body
  must already have the declared types (JSON has them), checked here strictly (400).
- A body naming a member twice in one object is refused (400), as the token route and
  signed payloads refuse it: msgspec keeps the last, another reader the first.
- A body sent as another media type (``text/plain``, a form) is refused (415) rather
  than read as JSON; one sent without a ``Content-Type`` is still read.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.exceptions import HTTPException, SerializationException, ValidationException

from api.signatures import repeats_a_member


def is_json(content_type: str) -> bool:
    """``application/json`` or any ``application/*+json``, whatever the case."""
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class ApiRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        content_type = self.headers.get("content-type")
        if content_type is not None and not is_json(content_type):
            raise HTTPException(
                status_code=415, detail=f"Send the body as application/json, not {content_type}."
            )
        try:
            value = await super().json()
        except UnicodeDecodeError:
            raise SerializationException("The body is not UTF-8 JSON.") from None
        except RecursionError:
            raise SerializationException("The body nests JSON too deeply.") from None
        if repeats_a_member(await self.body(), value):
            # msgspec keeps the last of the two, another reader the first: which one the
            # client meant is unknown (a review's decision, a user's role).
            raise SerializationException("The body names a member twice in one object.")
        declared = self.route_handler.parsed_fn_signature.parameters.get("data")
        if declared is not None:
            try:
                msgspec.convert(value, declared.annotation, strict=True)
            except msgspec.ValidationError as exc:
                raise ValidationException(
                    "The body does not match the expected types.",
                    extra=[{"message": str(exc), "source": "body"}],
                ) from None
        return value
