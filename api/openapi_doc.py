"""What the generated OpenAPI document cannot say by itself, added as it is served.

Litestar documents every 400 as its own ``{status_code, detail, extra}`` JSON and no other
error at all, while every error here is RFC 9457 problem+json (``api.errors``); the token
endpoint reads its form or JSON body itself, so it showed no request body; and the
agreement document, returned as the exact bytes that are signed, showed as a string.
Nor could it say what scorecards and rankings answer (their routes send a prepared
response): the document, its ETag, 304 to a matching ``If-None-Match`` and CSV when
asked; or that readiness answers 503 while the database is down. Nor what the server
checks by its settings or by hand: page and body limits, request bodies that refuse
unknown members, the Idempotency-Key's shape, a return's reason, the signed payload
inside a submission's JWS, and a submission's answer headers and 503. Nor examples for
the parameters.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request
from litestar.openapi.plugins import JsonRenderPlugin, ScalarRenderPlugin, SwaggerRenderPlugin

from api.schemas.identity import TokenRequest
from api.schemas.patterns import VISIBLE_TEXT
from api.schemas.scorecards import DistrictScorecard, ProvinceScorecard, Ranking
from api.schemas.submissions import SubmissionPayload
from api.settings import Settings

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


def describe(schema: dict[str, Any], settings: Settings) -> dict[str, Any]:
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
    _limits_and_bodies(schema, settings)
    _submissions(schema, settings)
    _parameter_examples(schema)
    _reports(schema)
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


#: Each report route's document (the routes answer a prepared response, which Litestar
#: cannot describe): named ``Report<Struct>`` in the components, apart from the
#: agreement schemas' structs of the same names.
_REPORT_TYPES: dict[str, type[msgspec.Struct]] = {
    "/v1/scorecards/districts/{code}": DistrictScorecard,
    "/v1/scorecards/provinces/{code}": ProvinceScorecard,
    "/v1/rankings/districts": Ranking,
    "/v1/rankings/regions": Ranking,
    "/v1/rankings/provinces": Ranking,
}
_ETAG = {
    "ETag": {
        "description": "The document's version: send it back in If-None-Match to get 304.",
        "schema": {"type": "string"},
    }
}


def _reports(schema: dict[str, Any]) -> None:
    """Each scorecard and ranking: its JSON document, its CSV, the ETag and the 304."""
    template = "#/components/schemas/Report{name}"
    documents, components = msgspec.json.schema_components(
        list(dict.fromkeys(_REPORT_TYPES.values())), ref_template=template
    )
    refs = dict(zip(dict.fromkeys(_REPORT_TYPES.values()), documents, strict=True))
    schema["components"]["schemas"].update({f"Report{k}": v for k, v in components.items()})
    for path, item in schema.get("paths", {}).items():
        report = item.get("get") if path.startswith(("/v1/scorecards/", "/v1/rankings/")) else None
        if report is None:
            continue
        report["responses"]["304"] = {
            "description": "Not modified: If-None-Match named the current ETag (no body).",
            "headers": _ETAG,
        }
        ok = report["responses"].get("200")
        if ok is None:
            continue
        ok["headers"] = {**ok.get("headers", {}), **_ETAG}
        content = ok.setdefault("content", {})
        if path in _REPORT_TYPES:
            content["application/json"] = {"schema": refs[_REPORT_TYPES[path]]}
        content["text/csv"] = {
            "schema": {"type": "string", "description": "the same rows, dotted names"}
        }


def _operations(schema: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        operation
        for item in schema.get("paths", {}).values()
        for operation in item.values()
        if isinstance(operation, dict) and "responses" in operation
    ]


def _closed_structs() -> set[str]:
    """The names of the structs that refuse a member they do not name (each name once:
    Litestar names a component by its class)."""
    seen: dict[str, list[type[msgspec.Struct]]] = {}
    stack: list[type[msgspec.Struct]] = [msgspec.Struct]
    while stack:
        for cls in stack.pop().__subclasses__():
            seen.setdefault(cls.__name__, []).append(cls)
            stack.append(cls)
    return {
        name
        for name, classes in seen.items()
        if len(classes) == 1 and classes[0].__struct_config__.forbid_unknown_fields
    }


def _limits_and_bodies(schema: dict[str, Any], settings: Settings) -> None:
    """Every list's ``limit`` bounds (settings), every schema of a struct that refuses a
    member it does not name closed (400), and every body's 501 for a transfer coding."""
    components = schema["components"]["schemas"]
    for name in _closed_structs() & components.keys():
        components[name]["additionalProperties"] = False
    for operation in _operations(schema):
        for parameter in operation.get("parameters", []):
            if parameter.get("in") == "query" and parameter.get("name") == "limit":
                bounds = {"minimum": 1, "maximum": settings.page_size_max}
                _non_null(parameter.get("schema", {})).update(bounds)
        if "requestBody" in operation:  # api.header_section
            operation["responses"].setdefault(
                "501",
                {
                    "description": "A Transfer-Encoding other than chunked; nothing changed.",
                    "content": _PROBLEM_CONTENT,
                },
            )


#: An example for each parameter of these names, wherever it is one (South Sumatra,
#: Kota Palembang, the seed year); ``code`` and ``status`` depend on the path.
_PARAMETER_EXAMPLES: dict[str, Any] = {
    "year": 2021,
    "as_of": "2021-06-30",
    "as_of_from": "2021-01-01",
    "as_of_to": "2021-06-30",
    "kind": "province",
    "parent": "16",
    "role": "district_head",
    "active": True,
    "flag": "late",
    "user_id": "5b1e7c2a-0f3d-4e8b-9a6c-2d4f6e8a0b1c",
    "kid": "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs",
    "name": "district-scorecard.v1.json",
    "limit": 50,
    "offset": 0,
    "province": "16",
    "district": "16.71",
    "area": "16",
    "party": "16.71",
    "indicator": "composite",
    "basis": "latest",
    "format": "csv",
    "level": "province_district",
    "agreement_id": "8d2f3c4e-5a6b-4c7d-8e9f-0a1b2c3d4e5f",
    "submission_id": "3f6c1a2b-9d8e-4f7a-b6c5-d4e3f2a1b0c9",
}


def _code_example(path: str) -> str:
    if path.startswith(("/v1/provinces/", "/v1/scorecards/provinces/")):
        return "16"
    if path.startswith("/v1/indicators/"):
        return "ktp_el"
    return "16.71"  # a district (or an area, a district's ledger)


def _parameter_examples(schema: dict[str, Any]) -> None:
    """An example on every path and query parameter that has none and a name above, so
    each operation can be tried from the document as it stands."""
    for path, item in schema.get("paths", {}).items():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            for parameter in operation.get("parameters", []):
                if parameter.get("in") not in ("path", "query") or "example" in parameter:
                    continue
                name = parameter.get("name")
                if name == "code":
                    parameter["example"] = _code_example(path)
                elif name == "status":  # a submission's, or an agreement's
                    received = path.startswith("/v1/submissions")
                    parameter["example"] = "received" if received else "active"
                elif name in _PARAMETER_EXAMPLES:
                    parameter["example"] = _PARAMETER_EXAMPLES[name]


def _non_null(schema: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of an optional parameter's schema (itself if not optional)."""
    for branch in schema.get("oneOf", []):
        if branch.get("type") != "null":
            return branch
    return schema


def _submissions(schema: dict[str, Any], settings: Settings) -> None:
    paths = schema.get("paths", {})
    components = schema["components"]["schemas"]
    review = components.get("ReviewIn")
    if review is not None:  # a return says why (api.submissions.review)
        review["if"] = {"properties": {"decision": {"const": "return"}}}
        review["then"] = {
            "required": ["reason"],
            "properties": {"reason": {"type": "string", "pattern": VISIBLE_TEXT}},
        }
    submit = paths.get("/v1/submissions", {}).get("post")
    if submit is None:
        return
    _, found = msgspec.json.schema_components(
        [SubmissionPayload], ref_template="#/components/schemas/{name}"
    )
    components.update(found)
    body = submit["requestBody"]
    body["description"] += (
        " Its payload is a SubmissionPayload (#/components/schemas/SubmissionPayload); "
        "a member it does not name is refused (422 invalid-submission)."
    )
    for media in body.get("content", {}).values():
        media.setdefault("schema", {})["maxLength"] = settings.max_body_bytes
    for parameter in submit.get("parameters", []):
        if parameter.get("in") == "header" and parameter.get("name") == "Idempotency-Key":
            key = _non_null(parameter.get("schema", {}))
            key.update({"minLength": 1, "maxLength": 255, "pattern": r"^[\x21-\x7e]{1,255}$"})
    created = submit["responses"].get("201")
    if created is not None:
        created["headers"] = {
            "Location": {"schema": {"type": "string"}, "description": "The stored submission."},
            "Idempotent-Replayed": {
                "schema": {"type": "string", "enum": ["true"]},
                "description": "Present on a retry answered from the first request's answer.",
            },
        }
    submit["responses"]["503"] = {
        "description": "The worker is shutting down: send the report again shortly.",
        "content": _PROBLEM_CONTENT,
    }


class _Described:
    """A render plugin that applies ``describe`` first: Swagger embeds the document in its
    page, so every page must show the described one, whichever is asked for first."""

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        described = describe(openapi_schema, request.app.state.settings)
        return super().render(request, described)  # type: ignore[misc,no-any-return]


class DescribedJsonRenderPlugin(_Described, JsonRenderPlugin):
    """``/schema/openapi.json``."""


class DescribedScalarRenderPlugin(_Described, ScalarRenderPlugin):
    """``/schema`` (the default page) and ``/schema/scalar``."""


class DescribedSwaggerRenderPlugin(_Described, SwaggerRenderPlugin):
    """``/schema/swagger``."""
