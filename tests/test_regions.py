"""Regions (wilayah) of a province: replaced whole, all or nothing, inside scope."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from db import regions as region_db
from db.pool import connect
from tests.people import Person, bearer, make_user
from tests.waiting import lock_waiters

PROBLEM = "application/problem+json"
URL = "/v1/provinces/16/regions/2021"


async def coordinators(conn: asyncpg.Connection, people: dict[str, Person]) -> list[Person]:
    """The fixture's coordinator plus two more in South Sumatra."""
    extra = [
        await make_user(conn, "region_coordinator", username=f"pj_{n}", area_code="16")
        for n in ("dua", "tiga")
    ]
    return [people["region_coordinator"], *extra]


def plan(coords: list[Person]) -> dict[str, Any]:
    return {
        "regions": [
            {
                "name": "Wilayah I",
                "coordinator_id": str(coords[0].id),
                "districts": ["16.71", "16.72", "16.01"],
            },
            {"name": "Wilayah II", "coordinator_id": str(coords[1].id), "districts": ["16.02"]},
            {"name": "Wilayah III", "districts": []},
        ]
    }


async def snapshot(conn: asyncpg.Connection) -> list[tuple[Any, ...]]:
    rows = await conn.fetch(
        "SELECT r.id, r.province_code, r.year, r.name, r.coordinator_id, m.district_code "
        "FROM regions r LEFT JOIN region_members m ON m.region_id = r.id "
        "ORDER BY r.name, m.district_code"
    )
    return [tuple(r) for r in rows]


async def test_province_head_replaces_and_reads_regions(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    coords = await coordinators(conn, people)
    head = bearer(app, people["province_head"])
    put = await client.put(URL, json=plan(coords), headers=head)
    assert put.status_code == 200, put.text
    body = put.json()
    assert body["province"] == "16" and body["year"] == 2021
    regions = {r["name"]: r for r in body["regions"]}
    assert list(regions) == ["Wilayah I", "Wilayah II", "Wilayah III"]
    one = regions["Wilayah I"]
    assert one["coordinator"]["id"] == str(coords[0].id)
    assert one["coordinator"]["username"] == "region_coordinator"
    assert [d["code"] for d in one["districts"]] == ["16.01", "16.71", "16.72"]
    assert {d["name"] for d in one["districts"]} >= {"Kota Palembang"}
    assert regions["Wilayah II"]["coordinator"]["id"] == str(coords[1].id)
    assert regions["Wilayah III"]["coordinator"] is None
    assert regions["Wilayah III"]["districts"] == []
    unassigned = [d["code"] for d in body["unassigned"]]
    assert len(unassigned) == 17 - 4
    assert unassigned == sorted(unassigned)
    assert not {"16.71", "16.72", "16.01", "16.02"} & set(unassigned)
    assert all(code.startswith("16.") for code in unassigned)

    got = await client.get(URL, headers=head)
    assert got.status_code == 200
    assert got.json() == body
    # Stored as sent.
    assert await conn.fetchval("SELECT count(*) FROM regions WHERE province_code = '16'") == 3
    assert await conn.fetchval("SELECT count(*) FROM region_members WHERE year = 2021") == 4
    # A year before has none; a later one carries these over until regions are drawn
    # for it (as the coordinators' scope and the region rankings have them).
    before = (await client.get("/v1/provinces/16/regions/2020", headers=head)).json()
    assert before["regions"] == [] and len(before["unassigned"]) == 17
    assert before["drawn_for"] is None
    later = (await client.get("/v1/provinces/16/regions/2022", headers=head)).json()
    assert later["regions"] == body["regions"] and later["unassigned"] == body["unassigned"]
    assert (later["year"], later["drawn_for"], body["drawn_for"]) == (2022, 2021, 2021)


async def test_second_put_replaces_the_first_wholesale(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    coords = await coordinators(conn, people)
    head = bearer(app, people["province_head"])
    assert (await client.put(URL, json=plan(coords), headers=head)).status_code == 200
    # Another year's regions survive a replacement of 2021.
    other_year = await client.put(
        "/v1/provinces/16/regions/2022",
        json={"regions": [{"name": "Lama", "districts": ["16.71"]}]},
        headers=head,
    )
    assert other_year.status_code == 200, other_year.text
    second = {
        "regions": [
            {"name": "Timur", "coordinator_id": str(coords[2].id), "districts": ["16.71"]},
            {"name": "Barat", "districts": ["16.02", "16.72"]},
        ]
    }
    put = await client.put(URL, json=second, headers=head)
    assert put.status_code == 200, put.text
    body = (await client.get(URL, headers=head)).json()
    assert [r["name"] for r in body["regions"]] == ["Barat", "Timur"]
    assert [d["code"] for d in body["regions"][0]["districts"]] == ["16.02", "16.72"]
    assert body["regions"][1]["coordinator"]["id"] == str(coords[2].id)
    assert "16.01" in {d["code"] for d in body["unassigned"]}
    names = await conn.fetch("SELECT name FROM regions WHERE year = 2021 ORDER BY name")
    assert [r["name"] for r in names] == ["Barat", "Timur"]
    assert await conn.fetchval("SELECT count(*) FROM region_members WHERE year = 2021") == 3
    lama = await conn.fetchval("SELECT count(*) FROM regions WHERE year = 2022")
    assert lama == 1
    # An empty list clears the year.
    cleared = await client.put(URL, json={"regions": []}, headers=head)
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["regions"] == [] and len(cleared.json()["unassigned"]) == 17
    assert await conn.fetchval("SELECT count(*) FROM regions WHERE year = 2021") == 0


async def test_admin_may_replace_regions(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    put = await client.put(
        "/v1/provinces/31/regions/2021",
        json={"regions": [{"name": "Pusat", "districts": ["31.71"]}]},
        headers=bearer(app, people["admin"]),
    )
    assert put.status_code == 200, put.text


def refusals(
    people: dict[str, Person], outsiders: dict[str, Person], coords: list[Person]
) -> list[tuple[str, dict[str, Any]]]:
    return [
        (
            "district of another province",
            {"regions": [{"name": "A", "districts": ["16.71", "31.71"]}]},
        ),
        ("a province as a district", {"regions": [{"name": "A", "districts": ["16"]}]}),
        ("unknown district", {"regions": [{"name": "A", "districts": ["16.99"]}]}),
        (
            "district in two regions",
            {
                "regions": [
                    {"name": "A", "districts": ["16.71", "16.72"]},
                    {"name": "B", "districts": ["16.02", "16.72"]},
                ]
            },
        ),
        (
            "district twice in one region",
            {"regions": [{"name": "A", "districts": ["16.71", "16.71"]}]},
        ),
        (
            "coordinator is the district head",
            {
                "regions": [
                    {
                        "name": "A",
                        "coordinator_id": str(people["district_head"].id),
                        "districts": ["16.71"],
                    }
                ]
            },
        ),
        (
            "coordinator is the province head",
            {
                "regions": [
                    {
                        "name": "A",
                        "coordinator_id": str(people["province_head"].id),
                        "districts": [],
                    }
                ]
            },
        ),
        (
            "coordinator of another province",
            {
                "regions": [
                    {"name": "A", "coordinator_id": str(coords[1].id), "districts": ["16.71"]},
                    {
                        "name": "B",
                        "coordinator_id": str(outsiders["region_coordinator"].id),
                        "districts": ["16.72"],
                    },
                ]
            },
        ),
        (
            "unknown coordinator",
            {
                "regions": [
                    {
                        "name": "A",
                        "coordinator_id": "00000000-0000-0000-0000-000000000001",
                        "districts": [],
                    }
                ]
            },
        ),
        (
            "duplicate region names",
            {
                "regions": [
                    {"name": "Wilayah I", "districts": ["16.71"]},
                    {"name": "Wilayah I", "districts": ["16.72"]},
                ]
            },
        ),
    ]


async def test_refusals_change_nothing(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    outsiders: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    coords = await coordinators(conn, people)
    head = bearer(app, people["province_head"])
    first = await client.put(URL, json=plan(coords), headers=head)
    assert first.status_code == 200, first.text
    before = await snapshot(conn)
    assert before
    for label, body in refusals(people, outsiders, coords):
        response = await client.put(URL, json=body, headers=head)
        assert response.status_code == 422, (label, response.status_code, response.text)
        assert response.headers["content-type"].startswith(PROBLEM), label
        assert await snapshot(conn) == before, label
    assert (await client.get(URL, headers=head)).json() == first.json()


async def test_inactive_coordinator_is_refused(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    gone = await make_user(conn, "region_coordinator", username="pj_pensiun", area_code="16")
    await conn.execute("UPDATE users SET active = false WHERE id = $1", gone.id)
    body = {"regions": [{"name": "A", "coordinator_id": str(gone.id), "districts": []}]}
    response = await client.put(URL, json=body, headers=bearer(app, people["province_head"]))
    assert response.status_code == 422, response.text
    assert await conn.fetchval("SELECT count(*) FROM regions") == 0


async def test_scope_and_roles(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    outsiders: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    body = {"regions": [{"name": "A", "districts": ["16.71"]}]}
    head = bearer(app, people["province_head"])
    # Unknown province, a district as a province, a province of someone else: 404.
    for url in (
        "/v1/provinces/99/regions/2021",
        "/v1/provinces/16.71/regions/2021",
        "/v1/provinces/31/regions/2021",
    ):
        assert (await client.put(url, json=body, headers=head)).status_code == 404, url
        assert (await client.get(url, headers=head)).status_code == 404, url
    jakarta = bearer(app, outsiders["province_head"])
    assert (await client.put(URL, json=body, headers=jakarta)).status_code == 404
    assert (await client.get(URL, headers=jakarta)).status_code == 404
    assert (
        await client.get(URL, headers=bearer(app, outsiders["region_coordinator"]))
    ).status_code == 404
    assert await conn.fetchval("SELECT count(*) FROM regions") == 0
    # Province monitor reads but may not write; district and division heads do neither.
    monitor = bearer(app, people["province_monitor"])
    assert (await client.put(URL, json=body, headers=monitor)).status_code == 403
    assert (await client.get(URL, headers=monitor)).status_code == 200
    for role in ("district_head", "division_head"):
        assert (await client.get(URL, headers=bearer(app, people[role]))).status_code == 403
        assert (
            await client.put(URL, json=body, headers=bearer(app, people[role]))
        ).status_code == 403
    # A region coordinator reads their own province's regions.
    coordinator = bearer(app, people["region_coordinator"])
    assert (await client.get(URL, headers=coordinator)).status_code == 200
    assert (await client.put(URL, json=body, headers=coordinator)).status_code == 403
    for role in ("admin", "ministry_monitor"):
        assert (await client.get(URL, headers=bearer(app, people[role]))).status_code == 200
    # A service account reads scorecards and rankings, not who coordinates (DESIGN's roles).
    assert (await client.get(URL, headers=bearer(app, people["integration"]))).status_code == 403
    assert (await client.get(URL, headers=bearer(app, outsiders["integration"]))).status_code == 403
    assert await conn.fetchval("SELECT count(*) FROM regions") == 0
    # Anonymous: 401.
    assert (await client.get(URL)).status_code == 401


@pytest.mark.parametrize("year", ["1999", "2101", "0", "abc", "-2021", "99999999999999999999"])
async def test_bad_year_is_400(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person], year: str
) -> None:
    head = bearer(app, people["province_head"])
    url = f"/v1/provinces/16/regions/{year}"
    put = await client.put(url, json={"regions": []}, headers=head)
    got = await client.get(url, headers=head)
    # "abc" does not match the {year:int} route at all (404); a number out of range is 400.
    for response in (put, got):
        assert response.status_code in (400, 404), (year, response.status_code, response.text)
        assert response.status_code < 500
    if year.lstrip("-").isdigit():
        assert put.status_code == 400, put.text
        assert got.status_code == 400, got.text


@pytest.mark.parametrize(
    "body",
    [
        {"regions": [], "province": "31"},
        {"regions": [{"name": "A", "districts": [], "year": 2022}]},
        {"regions": [{"name": "", "districts": []}]},
        {"regions": [{"name": "Wilayah\u0000I", "districts": []}]},
        {"regions": [{"name": "A"}]},
        {"regions": [{"name": "A", "districts": ["Palembang"]}]},
        {"regions": [{"name": "A", "districts": [], "coordinator_id": "not-a-uuid"}]},
        {"regions": [{"name": f"W{i}", "districts": []} for i in range(51)]},
        {"regions": "all"},
        {},
        [],
    ],
    ids=lambda b: str(b)[:50],
)
async def test_bad_bodies_are_400(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    conn: asyncpg.Connection,
    body: Any,
) -> None:
    response = await client.put(URL, json=body, headers=bearer(app, people["province_head"]))
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert await conn.fetchval("SELECT count(*) FROM regions") == 0


async def test_nul_in_the_province_code_is_400(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    admin = bearer(app, people["admin"])
    for url in ("/v1/provinces/%00/regions/2021", "/v1/provinces/16%00/regions/2021"):
        assert (await client.get(url, headers=admin)).status_code == 400
        put = await client.put(url, json={"regions": []}, headers=admin)
        assert put.status_code == 400, put.text


async def test_non_json_body_is_400(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    response = await client.put(
        URL,
        content=b"regions=all",
        headers={**bearer(app, people["province_head"]), "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text


async def test_regions_define_a_coordinators_scope(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    """After a PUT the coordinator sees the divisions of their districts, not others."""
    coords = await coordinators(conn, people)
    head = bearer(app, people["province_head"])
    assert (await client.put(URL, json=plan(coords), headers=head)).status_code == 200
    coordinator = bearer(app, people["region_coordinator"])
    assert (await client.get("/v1/districts/16.71/divisions", headers=coordinator)).status_code == (
        200
    )
    assert (await client.get("/v1/districts/16.02/divisions", headers=coordinator)).status_code == (
        404
    )


async def test_concurrent_replacements_do_not_mix(
    conn: asyncpg.Connection, database_url: str
) -> None:
    """The later of two racing replacements wins whole; without serialising them its
    DELETE would miss the rows the first one inserted and both sets would remain."""
    first, second = await connect(database_url), await connect(database_url)
    try:
        tx_first, tx_second = first.transaction(), second.transaction()
        await tx_first.start()
        await tx_second.start()
        await region_db.replace_regions(first, "16", 2021, [("Utara", None, ["16.71"])])
        racing = asyncio.ensure_future(
            region_db.replace_regions(second, "16", 2021, [("Selatan", None, ["16.72"])])
        )
        await lock_waiters(conn, 1)  # the second waits for the first's lock on the plan
        await tx_first.commit()
        await racing
        await tx_second.commit()
    finally:
        await first.close()
        await second.close()
    names = await conn.fetch("SELECT name FROM regions WHERE province_code = '16' AND year = 2021")
    assert [r["name"] for r in names] == ["Selatan"]
    members = await conn.fetch("SELECT district_code FROM region_members WHERE year = 2021")
    assert [r["district_code"] for r in members] == ["16.72"]
