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
from typing import Any
from urllib.parse import parse_qsl

from litestar.constants import RESERVED_KWARGS
from litestar.exceptions import ValidationException
from litestar.params import ParameterKwarg
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
def _declared(handler: Any, path_params: frozenset[str]) -> frozenset[str]:
    """The query keys the handler reads: its parameters less those Litestar fills from
    elsewhere (the path, dependencies, the request itself, headers and cookies), each by
    its query name."""
    signature = getattr(handler, "parsed_fn_signature", None)
    if signature is None:
        return frozenset()
    elsewhere = RESERVED_KWARGS | path_params | handler.resolve_dependencies().keys()
    keys = set()
    for name, parameter in signature.parameters.items():
        kwarg = parameter.kwarg_definition
        if name in elsewhere:
            continue
        if isinstance(kwarg, ParameterKwarg):
            if kwarg.header or kwarg.cookie:
                continue
            name = kwarg.query or name
        keys.add(name)
    return frozenset(keys)


def refuse_repeated_parameters(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        handler = scope.get("route_handler")
        query = scope.get("query_string", b"")
        # A report poll passes here thousands of times a second: only a query string of
        # two pairs or more is looked at.
        if scope["type"] == "http" and handler is not None and b"&" in query:
            declared = _declared(handler, frozenset(scope.get("path_params", ())))
            repeated = repeated_parameters(query, declared)
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
