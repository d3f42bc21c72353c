"""The request class of the app: a JSON body that cannot be decoded is the client's error.

msgspec raises ``UnicodeDecodeError`` for bytes that are not UTF-8 inside a string and
``RecursionError`` for very deep nesting, where Litestar expects its own decode error:
both reached clients as 500s. Here they become that error, which Litestar answers 400.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.exceptions import SerializationException


class ApiRequest(Request[Any, Any, Any]):
    async def json(self) -> Any:
        try:
            return await super().json()
        except UnicodeDecodeError:
            raise SerializationException("The body is not UTF-8 JSON.") from None
        except RecursionError:
            raise SerializationException("The body nests JSON too deeply.") from None
