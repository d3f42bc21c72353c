"""Area loading and the area endpoints."""

from __future__ import annotations

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from db.areas import load_areas

PROBLEM = "application/problem+json"


async def test_areas_loaded_with_real_counts(conn: asyncpg.Connection) -> None:
    kinds = dict(await conn.fetch("SELECT kind, count(*) FROM areas GROUP BY kind"))
    assert kinds == {"country": 1, "province": 38, "district": 514}
    palembang = await conn.fetchrow("SELECT * FROM areas WHERE code = '16.71'")
    assert palembang["name"] == "Kota Palembang"
    assert palembang["parent_code"] == "16"
    assert palembang["district_type"] == "kota"
    # District populations sum exactly to the national total of the source data.
    total = await conn.fetchval("SELECT sum(population) FROM areas WHERE kind = 'district'")
    assert total == 284_973_643


async def test_area_loading_is_idempotent(conn: asyncpg.Connection) -> None:
    before = await conn.fetch("SELECT code, xmin::text AS x FROM areas ORDER BY code")
    assert await load_areas(conn) == 553
    after = await conn.fetch("SELECT code, xmin::text AS x FROM areas ORDER BY code")
    # Same rows, and untouched ones were not rewritten.
    assert [tuple(r) for r in before] == [tuple(r) for r in after]


async def test_area_loading_repairs_a_changed_row(conn: asyncpg.Connection) -> None:
    await conn.execute("UPDATE areas SET name = 'wrong' WHERE code = '16'")
    await load_areas(conn)
    assert await conn.fetchval("SELECT name FROM areas WHERE code = '16'") == "Sumatera Selatan"


async def test_list_provinces_and_districts(client: AsyncTestClient[Litestar]) -> None:
    provinces = (await client.get("/v1/areas", params={"kind": "province"})).json()
    assert provinces["total"] == 38
    assert len(provinces["items"]) == 38
    districts = (await client.get("/v1/areas", params={"kind": "district"})).json()
    assert districts["total"] == 514
    assert len(districts["items"]) == 50  # default page size
    last = (
        await client.get("/v1/areas", params={"kind": "district", "limit": 500, "offset": 500})
    ).json()
    assert len(last["items"]) == 14


async def test_filter_by_parent(client: AsyncTestClient[Litestar]) -> None:
    body = (await client.get("/v1/areas", params={"parent": "16", "limit": 100})).json()
    assert body["total"] == 17
    codes = [item["code"] for item in body["items"]]
    assert codes == sorted(codes)
    assert "16.71" in codes and all(code.startswith("16.") for code in codes)


async def test_get_area(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/v1/areas/16")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "Sumatera Selatan"
    assert body["kind"] == "province"
    assert body["parent_code"] == "ID"
    assert body["child_count"] == 17
    assert body["population"] > 8_000_000
    district = (await client.get("/v1/areas/16.71")).json()
    assert district["parent_code"] == "16"
    assert district["child_count"] == 0


async def test_unknown_area_is_problem_404(client: AsyncTestClient[Litestar]) -> None:
    response = await client.get("/v1/areas/99.99")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith(PROBLEM)
    body = response.json()
    assert body["type"].endswith("/problems/not-found")
    assert body["status"] == 404
    assert "99.99" in body["detail"]


async def test_bad_area_queries_are_problem_400(client: AsyncTestClient[Litestar]) -> None:
    for params in (
        {"kind": "village"},
        {"limit": "abc"},
        {"limit": 0},
        {"limit": 100_000},
        {"offset": -1},
    ):
        response = await client.get("/v1/areas", params=params)
        assert response.status_code == 400, params
        assert response.headers["content-type"].startswith(PROBLEM)
        assert response.json()["status"] == 400
