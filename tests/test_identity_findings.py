"""Identity and authorization: findings of a review, each failed before its fix."""

from __future__ import annotations

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.people import PASSWORD, Person, bearer, coordinate
from tests.submitting import today


@pytest.mark.parametrize("areas", [["16", "31"], ["31", "16"]])
async def test_a_province_head_sees_no_service_account_granted_beyond_the_province(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person], areas: list[str]
) -> None:
    """Only the first grant was judged: ["16", "31"] was shown to South Sumatra's province
    head (Jakarta's grant too), ["31", "16"] was not. Neither is inside the province."""
    admin = bearer(app, people["admin"])
    made = await client.post(
        "/v1/service-accounts", json={"name": "feed", "areas": areas}, headers=admin
    )
    assert made.status_code == 201, made.text
    head = bearer(app, people["province_head"])
    assert (await client.get(f"/v1/users/{made.json()['id']}", headers=head)).status_code == 404
    listing = await client.get("/v1/users?role=integration", headers=head)
    assert listing.status_code == 200
    assert made.json()["id"] not in {u["id"] for u in listing.json()["items"]}
    assert (await client.get(f"/v1/users/{made.json()['id']}", headers=admin)).status_code == 200


async def test_a_province_head_sees_a_service_account_granted_inside_the_province(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    admin = bearer(app, people["admin"])
    made = await client.post(
        "/v1/service-accounts", json={"name": "feed", "areas": ["16.71", "16"]}, headers=admin
    )
    head = bearer(app, people["province_head"])
    assert (await client.get(f"/v1/users/{made.json()['id']}", headers=head)).status_code == 200
    listing = await client.get("/v1/users?role=integration", headers=head)
    assert made.json()["id"] in {u["id"] for u in listing.json()["items"]}


async def test_the_token_route_refuses_a_parameter_sent_twice(
    client: AsyncTestClient[Litestar], people: dict[str, Person]
) -> None:
    """RFC 6749 3.2: parameters must not be sent more than once (invalid_request). The
    form kept the last value: naming two grant types logged in with the second."""
    person = people["district_head"]
    body = (
        "grant_type=client_credentials&grant_type=password"
        f"&username={person.username}&password={PASSWORD.replace(' ', '+')}"
    )
    answer = await client.post(
        "/v1/auth/token",
        content=body.encode(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status_code == 400, answer.text
    assert answer.json()["type"].endswith("/invalid-request")
    assert "grant_type" in answer.json()["detail"]


async def test_a_coordinator_still_named_by_regions_keeps_the_role(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """README: regions have coordinators who are region coordinators of the province, as
    their PUT checks. PATCH made the coordinator a district head elsewhere while this
    year's region still named them: the listing showed a district head coordinating,
    the province could not PUT its own regions back unchanged, and moving the user back
    restored their scope without the province redrawing anything."""
    coordinator = people["region_coordinator"]
    year = today().year
    await coordinate(conn, coordinator, "16", ["16.71"], year)
    head = bearer(app, people["province_head"])
    user = f"/v1/users/{coordinator.id}"
    moved = await client.patch(
        user, json={"role": "district_head", "area_code": "16.02"}, headers=head
    )
    assert moved.status_code == 409, moved.text
    assert moved.json()["regions_from_year"] == year
    row = await conn.fetchrow("SELECT role, area_code FROM users WHERE id = $1", coordinator.id)
    assert (row["role"], row["area_code"]) == ("region_coordinator", coordinator.area_code)
    renamed = await client.patch(user, json={"full_name": "Still Coordinating"}, headers=head)
    assert renamed.status_code == 200, renamed.text
    # Redrawn without them for this year, the change goes through (last year's region,
    # history, does not hold it back).
    await coordinate(conn, coordinator, "16", ["16.71"], year - 1)
    await conn.execute(
        "UPDATE regions SET coordinator_id = NULL WHERE coordinator_id = $1 AND year = $2",
        coordinator.id,
        year,
    )
    moved = await client.patch(
        user, json={"role": "district_head", "area_code": "16.02"}, headers=head
    )
    assert moved.status_code == 200, moved.text


async def test_options_names_every_method_of_the_path(client: AsyncTestClient[Litestar]) -> None:
    """RFC 9110 10.2.1: OPTIONS' Allow lists the methods the resource supports. Litestar 2
    listed those of the first handler registered at the path: /v1/keys said GET only."""
    expected = {
        "/v1/keys": {"GET", "POST"},
        "/v1/users": {"GET", "POST"},
        "/v1/provinces/16/regions/2026": {"GET", "PUT"},
    }
    for path, methods in expected.items():
        answer = await client.options(path)
        allow = {m.strip() for m in answer.headers.get("allow", "").split(",")}
        assert methods | {"OPTIONS"} <= allow, (path, answer.headers.get("allow"))
