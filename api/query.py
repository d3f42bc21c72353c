"""A query parameter a route declares may be given once.

Litestar reads a parameter given twice (``?district=3171&district=3273``) as its last
value, so such a request was answered for one of the two without a word: a monitor
comparing two districts saw one. No route here takes a list in its query string, so a
declared parameter given more than once is refused (400, naming it in ``errors[]``);
keys a route does not declare stay ignored, as before.
"""

from __future__ import annotations

from collections import Counter
from functools import lru_cache
from urllib.parse import parse_qsl

from litestar.exceptions import ValidationException
from litestar.types import ASGIApp, Receive, Scope, Send


def repeated_parameters(query_string: bytes, declared: frozenset[str]) -> list[str]:
    """The declared keys ``query_string`` gives more than once, in order of first use."""
    if b"&" not in query_string:
        return []  # one pair at most
    # Split as Litestar splits it (on "&" only), so the keys are the ones it reads.
    pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True, separator="&")
    counts = Counter(key for key, _ in pairs)
    return [key for key in counts if counts[key] > 1 and key in declared]


@lru_cache(maxsize=4096)  # per handler (by identity): the app's routes, a few dozen
def _declared(handler: object) -> frozenset[str]:
    """The handler's parameter names: every query key it can read is one of them."""
    signature = getattr(handler, "parsed_fn_signature", None)
    return frozenset(signature.parameters) if signature is not None else frozenset()


def refuse_repeated_parameters(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        handler = scope.get("route_handler")
        if scope["type"] == "http" and handler is not None:
            repeated = repeated_parameters(scope.get("query_string", b""), _declared(handler))
            if repeated:
                raise ValidationException(
                    "A query parameter is given more than once: "
                    + ", ".join(repeated)
                    + ". Give each once.",
                    extra=[
                        {"key": key, "source": "query", "message": "given more than once"}
                        for key in repeated
                    ],
                )
        await app(scope, receive, send)

    return middleware
