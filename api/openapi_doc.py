"""What the generated OpenAPI document cannot say by itself, added as it is served.

Litestar documents every 400 as its own ``{status_code, detail, extra}`` JSON and no other
error at all, while every error here is RFC 9457 problem+json (``api.errors``); the token
endpoint reads its form or JSON body itself, so it showed no request body; and the
agreement document, returned as the exact bytes that are signed, showed as a string.
Nor could it say that scorecards and rankings answer 304 to a matching ``If-None-Match``
and CSV when asked, or that readiness answers 503 while the database is down.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.openapi.plugins import JsonRenderPlugin, ScalarRenderPlugin, SwaggerRenderPlugin

from api.schemas.identity import TokenRequest

_PROBLEM = {
    "type": "object",
    "description": "RFC 9457 problem details: the request was refused and nothing changed.",
    "properties": {
        "status": {"type": "integer"},
        "type": {"type": "string", "format": "uri", "description": "stable problem type"},
        "title": {"type": "string"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
    "required": ["status", "type", "title"],
}
_PROBLEM_CONTENT = {
    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
}
_REFUSED = "A problem (RFC 9457); nothing changed."


def describe(schema: dict[str, Any]) -> dict[str, Any]:
    """Add what the module docstring lists to a generated document (once; in place)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    if "Problem" in components:
        return schema
    components["Problem"] = _PROBLEM
    for item in schema.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            for code, response in responses.items():
                if code.startswith("4"):
                    response["description"] = _REFUSED
                    response["content"] = _PROBLEM_CONTENT
            responses.setdefault(
                "4XX",
                {
                    "description": "A problem (RFC 9457); nothing changed.",
                    "content": _PROBLEM_CONTENT,
                },
            )
    token = schema.get("paths", {}).get("/v1/auth/token", {}).get("post")
    if token is not None:
        found = msgspec.json.schema(TokenRequest)
        components["TokenRequest"] = found["$defs"]["TokenRequest"]
        body = {"schema": {"$ref": "#/components/schemas/TokenRequest"}}
        token["requestBody"] = {
            "required": True,
            "content": {"application/x-www-form-urlencoded": body, "application/json": body},
        }
    for path, item in schema.get("paths", {}).items():
        report = item.get("get") if path.startswith(("/v1/scorecards/", "/v1/rankings/")) else None
        if report is not None:
            report["responses"]["304"] = {
                "description": "Not modified: If-None-Match named the current ETag (no body)."
            }
            ok = report["responses"].get("200")
            if ok is not None:
                ok.setdefault("content", {})["text/csv"] = {
                    "schema": {"type": "string", "description": "the same rows, dotted names"}
                }
    ready = schema.get("paths", {}).get("/health/ready", {}).get("get")
    if ready is not None:
        ready["responses"]["503"] = {
            "description": "The database is unreachable; try again after Retry-After seconds.",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
            "content": _PROBLEM_CONTENT,
        }
    document = schema.get("paths", {}).get("/v1/agreements/{agreement_id}/document", {})
    answer = document.get("get", {}).get("responses", {}).get("200")
    if answer is not None:
        answer["content"] = {
            "application/json": {
                "schema": {
                    "type": "object",
                    "description": "The agreement as signed: these exact bytes (sorted keys, no "
                    "whitespace) hash to document_sha256 (header X-Document-SHA256).",
                }
            }
        }
    return schema


class _Described:
    """A render plugin that applies ``describe`` first: Swagger embeds the document in its
    page, so every page must show the described one, whichever is asked for first."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        return super().render(request, describe(openapi_schema))  # type: ignore[misc,no-any-return]


class DescribedJsonRenderPlugin(_Described, JsonRenderPlugin):
    """``/schema/openapi.json``."""


class DescribedScalarRenderPlugin(_Described, ScalarRenderPlugin):
    """``/schema`` (the default page) and ``/schema/scalar``."""


class DescribedSwaggerRenderPlugin(_Described, SwaggerRenderPlugin):
    """``/schema/swagger``."""
