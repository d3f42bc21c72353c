"""A benchmark yardstick, registered only when ``KINERJA_BENCH_ROUTES`` is on.

``GET /bench/bytes?size=N`` answers N bytes held in memory, so the benchmark can set a
cached report against a route that returns the same number of bytes with no work.
"""

from __future__ import annotations

from typing import Annotated

from litestar import Response, get
from litestar.params import QueryParameter

_MAX = 4 * 1024 * 1024
_BUFFER = b'"' + b"x" * (_MAX - 2) + b'"'


@get("/bench/bytes", opt={"permission": "public"}, include_in_schema=False)
async def same_bytes(
    size: Annotated[int, QueryParameter(ge=2, le=_MAX)] = 1024,
) -> Response[bytes]:
    return Response(_BUFFER[: size - 1] + b'"', media_type="application/json")
