"""Found by fuzzing (schemathesis on every operation, per role, and hand-made requests):
an error answer that is not RFC 9457 problem+json. Each test fails on the code it was
written against; it passes once the answer is a 4xx problem+json."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.settings import Settings
from tests.people import Person, bearer
from tests.submitting import register_key, served, submit
from tests.test_catalogue import indicator
from tests.waiting import lock_waiters


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


# -- noticed while fuzzing: concurrent removals of one indicator --------------------------


async def test_concurrent_removals_of_an_indicator_remove_it_once(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """Ten concurrent ``DELETE /v1/indicators/{code}`` answered 204 three times: each
    looked the indicator up, then deleted whatever was left. One removal is 204; the
    others, finding it gone, are 404, as a removal after it is."""
    admin = people["admin"]
    async with served(settings) as (app, http):
        made = await http.post("/v1/indicators", json=indicator(), headers=bearer(app, admin))
        assert made.status_code == 201, made.text
        async with conn.transaction():  # another request is changing the indicator
            await conn.execute("SELECT 1 FROM indicators WHERE code = 'rekam_harian' FOR UPDATE")
            removals = [
                asyncio.ensure_future(
                    http.delete("/v1/indicators/rekam_harian", headers=bearer(app, admin))
                )
                for _ in range(3)
            ]
            await lock_waiters(conn, 3)  # all three found it and wait to delete it
            assert not any(r.done() for r in removals)  # looked it up, waiting to delete
        answers = await asyncio.wait_for(asyncio.gather(*removals), timeout=10)
    assert sorted(a.status_code for a in answers) == [204, 404, 404], [a.text for a in answers]


async def test_an_indicator_a_submission_reported_is_kept_with_a_reason(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """An indicator no agreement uses but a stored report counted: the ledger keeps the
    report for ever, so the indicator stays, and the answer says why (it was a bare
    foreign-key 409, "conflicts with data already stored")."""
    admin = bearer(app, people["admin"])
    made = await client.post("/v1/indicators", json=indicator(), headers=admin)
    assert made.status_code == 201, made.text
    signer = await register_key(conn, people["district_head"])
    await submit(client, app, signer, values={"rekam_harian": (15_000, 30)})
    refused = await client.delete("/v1/indicators/rekam_harian", headers=admin)
    assert refused.status_code == 409, refused.text
    assert "used by submissions" in refused.json()["detail"]
    assert await conn.fetchval("SELECT 1 FROM indicators WHERE code = 'rekam_harian'") == 1
