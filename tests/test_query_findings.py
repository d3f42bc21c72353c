"""A query parameter given twice was read as its last value: the answer was for one of the
two without a word (each test failed before the fix)."""

from __future__ import annotations

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.query import repeated_parameters
from tests.people import Person, bearer


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("/v1/submissions?district=16.71&district=16.72", "district"),
        ("/v1/submissions?limit=1&status=received&limit=50", "limit"),
        ("/v1/rankings/districts?province=16&province=31", "province"),
        ("/v1/scorecards/districts/16.71?format=json&format=csv", "format"),
        ("/v1/users?role=district_head&role=admin", "role"),
    ],
)
async def test_a_declared_parameter_given_twice_is_refused(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    url: str,
    key: str,
) -> None:
    response = await client.get(url, headers=bearer(app, people["admin"]))
    assert response.status_code == 400, response.text[:300]
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["errors"] == [
        {"key": key, "source": "query", "message": "given more than once"}
    ], problem
    assert key in problem["detail"]


async def test_a_parameter_once_and_unknown_repeats_are_answered(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    """Only a declared parameter given twice is refused: an undeclared key stays ignored,
    and each declared one given once is read as before."""
    response = await client.get(
        "/v1/submissions?district=16.71&limit=5&_=1&_=2", headers=bearer(app, people["admin"])
    )
    assert response.status_code == 200, response.text[:300]


async def test_the_refusal_comes_after_authentication(
    client: AsyncTestClient[Litestar],
) -> None:
    """Without a token the caller learns nothing about the route's parameters: 401."""
    response = await client.get("/v1/submissions?district=16.71&district=16.72")
    assert response.status_code == 401


def test_repeats_are_read_as_the_query_string_is_split() -> None:
    declared = frozenset({"district", "limit"})
    assert repeated_parameters(b"district=1&limit=2", declared) == []
    assert repeated_parameters(b"district=1&district=", declared) == ["district"]
    assert repeated_parameters(b"limit=1;limit=2&district=3", declared) == []
    assert repeated_parameters(b"x=1&x=2", declared) == []
    assert repeated_parameters(b"district=%31&distr%69ct=2", declared) == ["district"]
