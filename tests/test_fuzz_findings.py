"""Found by fuzzing (schemathesis on every operation, per role, and hand-made requests):
an error answer that is not RFC 9457 problem+json. Each test fails on the code it was
written against; it passes once the answer is a 4xx problem+json."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient


@pytest.mark.parametrize(
    "path",
    [
        "/schema/nope",
        "/schema/redoc",  # a docs page this API does not serve
        "/schema/openapi.txt",
        "/schema/%00",
    ],
)
async def test_an_unknown_page_under_the_schema_path_is_a_problem(
    client: AsyncTestClient[Litestar], path: str
) -> None:
    """Litestar's OpenAPI router answers any unknown ``/schema/{path}`` (one not ending in
    .json/.yaml/.yml) with its own HTML "Error 404" page (``handle_schema_path_not_found``,
    registered for the app's OpenAPIConfig), while every other unknown path is a
    problem+json 404 (``/schema/openapi.yaml`` and ``/v1/nope`` are)."""
    response = await client.get(path)
    assert response.status_code == 404, response.text[:300]
    assert response.headers["content-type"].startswith("application/problem+json"), (
        response.headers["content-type"],
        response.text[:300],
    )
    problem = response.json()
    assert problem["status"] == 404
    assert problem["type"].endswith("/not-found")


async def test_head_of_an_unknown_schema_page_is_a_problem(
    client: AsyncTestClient[Litestar],
) -> None:
    """HEAD is answered as GET without the body (api/head.py): the same content type."""
    response = await client.head("/schema/nope")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json"), (
        response.headers["content-type"]
    )


async def test_unknown_paths_elsewhere_are_problems_already(
    client: AsyncTestClient[Litestar],
) -> None:
    """The control: what the answers above should look like (passes today)."""
    for path in ("/v1/nope", "/schema/openapi.yaml", "/nope"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("application/problem+json"), path
