"""Answers a black-box review of the running API found wrong (each test failed before its
fix): a media type naming its charset twice, an empty body's error in Litestar's
internal words, catalogue lists without pages, a missing parameter answered as a missing
resource, and a client that hung up logged as a server error."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.errors import NO_BODY_DETAIL, PROBLEM_BASE
from api.observability import request_id_middleware
from tests.agreement_helpers import palembang_draft
from tests.people import Person, bearer


async def test_csv_names_its_charset_once(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    for url in ("/v1/scorecards/districts/16.71?format=csv", "/v1/rankings/districts?format=csv"):
        response = await client.get(url, headers=bearer(app, people["province_monitor"]))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "text/csv; charset=utf-8"


@pytest.mark.parametrize("body", [b"", b"   ", b'{"jwk": '])
async def test_an_empty_json_body_is_named_as_such(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person], body: bytes
) -> None:
    """An empty body was answered with Litestar's KeyError text ("'data'"), a blank or
    truncated one with msgspec's "Input data was truncated"."""
    response = await client.post(
        "/v1/keys",
        content=body,
        headers={**bearer(app, people["district_head"]), "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    said = [e["message"] for e in problem.get("errors", [])] or [problem["detail"]]
    assert said == [NO_BODY_DETAIL]


async def test_catalogue_lists_come_in_bounded_pages(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    await conn.executemany(
        "INSERT INTO divisions (district_code, code, name) VALUES ($1, $2, $3)",
        [("16.71", f"d{i:04d}", f"Bidang {i}") for i in range(600)],
    )
    head = bearer(app, people["district_head"])
    url = "/v1/districts/16.71/divisions"
    codes = sorted([f"d{i:04d}" for i in range(600)] + ["dafduk"])  # the division head's
    first = (await client.get(url, params={"limit": 250}, headers=head)).json()
    assert (first["total"], [d["code"] for d in first["items"]]) == (601, codes[:250])
    last = (await client.get(url, params={"limit": 250, "offset": 500}, headers=head)).json()
    assert [d["code"] for d in last["items"]] == codes[500:]
    default = (await client.get(url, headers=head)).json()
    assert len(default["items"]) < 600
    too_many = await client.get(url, params={"limit": 100_000}, headers=head)
    assert too_many.status_code == 400
    catalogue = await client.get("/v1/indicators", params={"limit": 2}, headers=head)
    page = catalogue.json()
    assert (page["total"], [i["code"] for i in page["items"]]) == (3, ["akta_lahir", "kia"])


async def test_a_region_ranking_without_a_province_is_a_bad_request(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    response = await client.get(
        "/v1/rankings/regions", headers=bearer(app, people["ministry_monitor"])
    )
    assert response.status_code == 400
    assert response.json()["type"] == PROBLEM_BASE + "province-required"


async def test_a_client_gone_before_its_body_arrived_is_logged_499_not_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    messages = [{"type": "http.request", "body": b"abc", "more_body": True}]
    messages.append({"type": "http.disconnect"})

    async def receive() -> Any:
        return messages.pop(0)

    async def send(message: Any) -> None:
        raise AssertionError("nothing is sent to a client that has gone")

    scope = {"type": "http", "method": "POST", "path": "/v1/users", "headers": []}
    with caplog.at_level(logging.INFO, logger="kinerja.access"):
        await request_id_middleware(app)(scope, receive, send)
    assert [r.status for r in caplog.records if r.name == "kinerja.access"] == [499]


async def test_the_openapi_document_describes_errors_and_bodies_as_they_are(
    client: AsyncTestClient[Litestar],
) -> None:
    """It documented every 400 as Litestar's {status_code, detail, extra} JSON and no other
    error, no request body for the token endpoint, and the agreement document as a string."""
    spec = (await client.get("/schema/openapi.json")).json()
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    operations = [
        op for item in spec["paths"].values() for op in item.values() if "responses" in op
    ]
    assert operations
    for op in operations:
        errors = {c: r for c, r in op["responses"].items() if c.startswith("4")}
        assert "4XX" in errors, op["operationId"]
        assert all(r["content"] == problem for r in errors.values()), op["operationId"]
    assert set(spec["components"]["schemas"]["Problem"]["required"]) == {"status", "type", "title"}
    token = spec["paths"]["/v1/auth/token"]["post"]["requestBody"]["content"]
    assert set(token) == {"application/x-www-form-urlencoded", "application/json"}
    fields = spec["components"]["schemas"]["TokenRequest"]["properties"]
    assert {"grant_type", "username", "password", "client_id", "client_secret"} <= set(fields)
    document = spec["paths"]["/v1/agreements/{agreement_id}/document"]["get"]["responses"]["200"]
    assert document["content"]["application/json"]["schema"]["type"] == "object"


# Found by reviewing the fixes above.


async def test_schema_root_still_renders_the_docs_page(
    client: AsyncTestClient[Litestar],
) -> None:
    """The README's docs page at /schema had become the JSON document (the first render
    plugin is the schema path's page)."""
    response = await client.get("/schema")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html"), response.headers[
        "content-type"
    ]


async def test_swagger_page_embeds_the_same_document_as_openapi_json(
    client: AsyncTestClient[Litestar],
) -> None:
    """Swagger embeds the document in its page: on a fresh worker it showed it without
    the error descriptions until openapi.json had been served once."""

    def embedded(page: str) -> dict[str, Any]:
        found = re.search(r"spec:\s*(\{.*\}),\s*\n", page, re.S)
        assert found is not None
        return json.loads(found.group(1))  # type: ignore[no-any-return]

    first = embedded((await client.get("/schema/swagger")).text)  # a fresh worker's first
    served = (await client.get("/schema/openapi.json")).json()
    again = embedded((await client.get("/schema/swagger")).text)
    assert "Problem" in served["components"]["schemas"]
    assert "Problem" in again["components"]["schemas"]  # once openapi.json was served
    assert first == served, "swagger showed the undescribed document on a fresh worker"


async def _disconnect_mid_body(app: Litestar, path: str, headers: dict[str, str]) -> list[int]:
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": b'{"jwk": {', "more_body": True},
        {"type": "http.disconnect"},
    ]

    async def receive() -> Any:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        pass  # the client is gone; uvicorn drops what is sent

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"k")]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    await app(scope, receive, send)  # type: ignore[arg-type]
    return []


@pytest.mark.parametrize(
    ("path", "content_type", "length"),
    [("/v1/keys", "application/json", "100"), ("/v1/submissions", "application/jose", None)],
)
async def test_client_gone_mid_body_on_a_litestar_route_is_logged_499(
    path: str,
    content_type: str,
    length: str | None,
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every Litestar route answers a hang-up mid-body with its own 500 ("client
    disconnected prematurely"), sent to nobody: it was logged as a server error."""
    headers = {**bearer(app, people["district_head"]), "content-type": content_type}
    if length is not None:
        headers["content-length"] = length
    else:
        headers["transfer-encoding"] = "chunked"  # not the lane's: Litestar's route reads it
    with caplog.at_level(logging.INFO, logger="kinerja.access"):
        # On the loop the app's pool lives on (the test client's portal).
        await asyncio.to_thread(
            client.blocking_portal.call, _disconnect_mid_body, app, path, headers
        )
    assert [r.status for r in caplog.records if r.name == "kinerja.access"] == [499]


async def test_an_empty_token_request_is_named_as_such(client: AsyncTestClient[Litestar]) -> None:
    """The token route reads its own body, so it kept msgspec's words."""
    response = await client.post(
        "/v1/auth/token", content=b"", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["detail"] == (NO_BODY_DETAIL)


@pytest.mark.parametrize("collection", ["/v1/users", "/v1/agreements", "/v1/submissions"])
async def test_an_encoded_slash_as_an_id_is_not_answered_with_the_collection(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    collection: str,
) -> None:
    """``GET /v1/users/%2F`` asks for the user whose id is "/": not a UUID, so 400/404.
    It was answered 200 with the whole user list (the %2F is decoded before routing and
    the trailing slash dropped), and likewise for agreements and submissions."""
    await palembang_draft(client, app, people)
    response = await client.get(f"{collection}/%2F", headers=bearer(app, people["admin"]))
    assert response.status_code in (400, 404), response.text[:200]
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers.get("x-request-id")
