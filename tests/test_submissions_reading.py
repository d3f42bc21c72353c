"""Reading submissions: who sees what, filters, and cursor pagination."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.people import Person, bearer, make_user
from tests.submitting import Signer, ensure_coordinated, register_key, submit, today


async def listed(
    client: AsyncTestClient[Litestar], app: Litestar, who: Person, **params: Any
) -> list[dict[str, Any]]:
    response = await client.get("/v1/submissions", params=params, headers=bearer(app, who))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


@pytest.fixture
async def reports(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    outsiders: dict[str, Person],
) -> dict[str, dict[str, Any]]:
    """A district report, a division report (Palembang) and a Jakarta report."""
    head = await register_key(conn, people["district_head"])
    division = await register_key(conn, people["division_head"])
    jakarta = await register_key(conn, outsiders["district_head"])
    return {
        "district": await submit(client, app, head),
        "division": await submit(client, app, division),
        "jakarta": await submit(client, app, jakarta),
    }


async def test_each_role_sees_its_scope(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    outsiders: dict[str, Person],
    reports: dict[str, dict[str, Any]],
) -> None:
    ids = {name: r["id"] for name, r in reports.items()}
    palembang = {ids["district"], ids["division"]}
    expected = {
        "admin": set(ids.values()),
        "ministry_monitor": set(ids.values()),
        "province_head": palembang,
        "province_monitor": palembang,
        "region_coordinator": set(),
        "district_head": palembang,
        "division_head": {ids["division"]},
    }
    for role, want in expected.items():
        got = {item["id"] for item in await listed(client, app, people[role])}
        assert got == want, role
        for name, submission_id in ids.items():
            one = await client.get(
                f"/v1/submissions/{submission_id}", headers=bearer(app, people[role])
            )
            assert one.status_code == (200 if submission_id in want else 404), (role, name)
    await ensure_coordinated(conn, people["region_coordinator"], "16", "16.71")
    got = {i["id"] for i in await listed(client, app, people["region_coordinator"])}
    assert got == palembang
    # Service accounts read scorecards and rankings, not the signed reports (DESIGN's
    # roles), even one granted the country.
    national = await make_user(
        conn, "integration", username="svc_all", area_code="31", extra_areas=["ID"]
    )
    for service in (people["integration"], national):
        listing = await client.get("/v1/submissions", headers=bearer(app, service))
        assert listing.status_code == 403, listing.text
        for submission_id in ids.values():
            one = await client.get(f"/v1/submissions/{submission_id}", headers=bearer(app, service))
            assert one.status_code == 403, one.text
    assert {i["id"] for i in await listed(client, app, outsiders["province_head"])} == {
        ids["jakarta"]
    }


async def test_detail_carries_everything(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    reports: dict[str, dict[str, Any]],
) -> None:
    made = reports["division"]
    response = await client.get(
        f"/v1/submissions/{made['id']}", headers=bearer(app, people["division_head"])
    )
    body = response.json()
    assert body == made  # what POST answered is what GET answers, until it is reviewed
    assert body["ledger"]["seq"] == 2
    assert set(body) >= {"payload", "jws", "reviews", "flags", "ledger", "values"}
    # The list shows the numbers, not the JWS.
    item = (await listed(client, app, people["division_head"]))[0]
    assert "jws" not in item and "payload" not in item
    assert item["values"] == body["values"]


async def test_filters(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    reports: dict[str, dict[str, Any]],
) -> None:
    admin = people["admin"]
    head = await register_key(conn, people["district_head"])
    old = await submit(client, app, head, as_of=today() - timedelta(days=70))
    over = await submit(client, app, head, values={"kia": (12, 10)})
    await client.post(
        f"/v1/submissions/{over['id']}/review",
        json={"decision": "accept"},
        headers=bearer(app, people["province_head"]),
    )

    def ids(items: list[dict[str, Any]]) -> set[str]:
        return {i["id"] for i in items}

    assert ids(await listed(client, app, admin, district="31.71")) == {reports["jakarta"]["id"]}
    assert len(await listed(client, app, admin, province="16")) == 4
    assert ids(await listed(client, app, admin, status="accepted")) == {over["id"]}
    assert ids(await listed(client, app, admin, flag="over_100")) == {over["id"]}
    assert ids(await listed(client, app, admin, flag="late")) == {old["id"]}
    early = today() - timedelta(days=60)
    assert ids(await listed(client, app, admin, as_of_to=early.isoformat())) == {old["id"]}
    recent = await listed(client, app, admin, as_of_from=early.isoformat(), province="16")
    assert old["id"] not in ids(recent) and len(recent) == 3
    bad = await client.get("/v1/submissions?flag=nonsense", headers=bearer(app, admin))
    assert bad.status_code == 400


async def test_cursor_pagination(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    head: Signer = await register_key(conn, people["district_head"])
    made = [(await submit(client, app, head))["id"] for _ in range(7)]
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        response = await client.get(
            "/v1/submissions", params=params, headers=bearer(app, head.person)
        )
        page = response.json()
        seen += [i["id"] for i in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(made))  # newest first, each once
    for bad in ({"cursor": "not-a-cursor"}, {"limit": 0}, {"limit": 501}):
        response = await client.get("/v1/submissions", params=bad, headers=bearer(app, head.person))
        assert response.status_code == 400, bad
