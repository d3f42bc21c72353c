"""The indicator catalogue and the divisions of district offices."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.agreement_helpers import draft, targets
from tests.people import Person, bearer

PROBLEM = "application/problem+json"
CORE = {"ktp_el", "kia", "akta_lahir"}


def indicator(code: str = "rekam_harian", **extra: Any) -> dict[str, Any]:
    return {
        "code": code,
        "name_id": "Perekaman KTP-el harian",
        "name_en": "Daily KTP-el recordings",
        "polarity": "higher",
        "numerator_definition": "recordings in the period",
        "denominator_definition": "days in the period",
        "unit": "per_day",
        **extra,
    }


async def test_catalogue_lists_the_core_indicators(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    for role in ("admin", "district_head", "integration"):
        response = await client.get("/v1/indicators", headers=bearer(app, people[role]))
        assert response.status_code == 200, response.text
        by_code = {i["code"]: i for i in response.json()["items"]}
        assert set(by_code) == CORE
    ktp = by_code["ktp_el"]
    assert ktp["name_id"] == "Perekaman KTP-el"
    assert ktp["name_en"] == "KTP-el recording"
    assert by_code["kia"]["name_id"] == "Kepemilikan Kartu Identitas Anak"
    assert by_code["akta_lahir"]["name_en"] == "Birth certificate ownership"
    for item in by_code.values():
        assert item["unit"] == "percent"
        assert item["polarity"] == "higher"
        assert item["cap"] == 120
        assert item["core"] is True
        assert item["numerator_definition"] and item["denominator_definition"]
        assert item["age_band"]


async def test_admin_adds_an_indicator(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    admin = bearer(app, people["admin"])
    made = await client.post(
        "/v1/indicators", json=indicator(polarity="lower", cap=150), headers=admin
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["code"] == "rekam_harian"
    assert body["core"] is False and body["cap"] == 150 and body["polarity"] == "lower"
    assert body["unit"] == "per_day" and body["age_band"] is None
    listed = (await client.get("/v1/indicators", headers=admin)).json()["items"]
    assert [i["code"] for i in listed][-1] == "rekam_harian"
    assert set(i["code"] for i in listed) == CORE | {"rekam_harian"}
    # Defaults: percent, cap 120.
    plain = indicator("aktivasi_ikd")
    del plain["unit"]
    second = await client.post("/v1/indicators", json=plain, headers=admin)
    assert second.status_code == 201, second.text
    assert second.json()["unit"] == "percent" and second.json()["cap"] == 120


async def test_duplicate_indicator_is_a_conflict(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    admin = bearer(app, people["admin"])
    assert (await client.post("/v1/indicators", json=indicator(), headers=admin)).status_code == 201
    again = await client.post("/v1/indicators", json=indicator(), headers=admin)
    assert again.status_code == 409
    assert again.headers["content-type"].startswith(PROBLEM)
    core = await client.post("/v1/indicators", json=indicator("ktp_el"), headers=admin)
    assert core.status_code == 409


@pytest.mark.parametrize(
    "body",
    [
        indicator(code="Bad-Code"),
        indicator(code="x"),
        indicator(polarity="sideways"),
        indicator(cap=0),
        indicator(cap=-5),
        indicator(cap=1e12),
        indicator(name_id=""),
        indicator(name_en=123),
        indicator(name_id="KTP\u0000"),
        indicator(unit="\u0000"),
        indicator(age_band="17+\u0000"),
        indicator(status="core"),
        indicator(core=True),
        {"code": "only_code"},
        [],
        "text",
    ],
    ids=lambda b: str(b)[:40],
)
async def test_bad_indicator_bodies_are_400(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person], body: Any
) -> None:
    response = await client.post("/v1/indicators", json=body, headers=bearer(app, people["admin"]))
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(PROBLEM)


async def test_non_json_indicator_body_is_400(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    response = await client.post(
        "/v1/indicators",
        content=b"{not json",
        headers={**bearer(app, people["admin"]), "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text


async def test_cap_below_the_stored_precision_is_400(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    # The column keeps two places: 0.001 would be stored as 0 (and break its check).
    response = await client.post(
        "/v1/indicators", json=indicator(cap=0.001), headers=bearer(app, people["admin"])
    )
    assert response.status_code == 400, response.text
    smallest = await client.post(
        "/v1/indicators", json=indicator(cap=0.01), headers=bearer(app, people["admin"])
    )
    assert smallest.status_code == 201, smallest.text
    assert smallest.json()["cap"] == 0.01


@pytest.mark.parametrize(
    "role", ["ministry_monitor", "province_head", "district_head", "division_head", "integration"]
)
async def test_only_admin_manages_the_catalogue(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person], role: str
) -> None:
    headers = bearer(app, people[role])
    assert (await client.post("/v1/indicators", json=indicator(), headers=headers)).status_code == (
        403
    )
    assert (await client.delete("/v1/indicators/kia", headers=headers)).status_code == 403


async def test_delete_rules(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    admin = bearer(app, people["admin"])
    for code in CORE:
        core = await client.delete(f"/v1/indicators/{code}", headers=admin)
        assert core.status_code == 409, core.text
    assert await conn.fetchval("SELECT count(*) FROM indicators WHERE core") == 3

    assert (await client.delete("/v1/indicators/nope", headers=admin)).status_code == 404

    # An added indicator used by an agreement stays.
    for code in ("dipakai", "lepas"):
        made = await client.post("/v1/indicators", json=indicator(code), headers=admin)
        assert made.status_code == 201, made.text
    await draft(
        client,
        app,
        people["province_head"],
        year=2021,
        level="province_district",
        second={"area_code": "16.71", "official": "Kadis"},
        target_list=targets(ktp_el=100, dipakai=50),
    )
    used = await client.delete("/v1/indicators/dipakai", headers=admin)
    assert used.status_code == 409, used.text
    assert await conn.fetchval("SELECT 1 FROM indicators WHERE code = 'dipakai'") == 1

    unused = await client.delete("/v1/indicators/lepas", headers=admin)
    assert unused.status_code == 204, unused.text
    listed = (await client.get("/v1/indicators", headers=admin)).json()["items"]
    assert "lepas" not in {i["code"] for i in listed}
    assert (await client.delete("/v1/indicators/lepas", headers=admin)).status_code == 404


# -- divisions -------------------------------------------------------------------------


async def test_district_head_adds_and_lists_divisions(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    head = bearer(app, people["district_head"])
    made = await client.post(
        "/v1/districts/16.71/divisions",
        json={"code": "pias", "name": "Bidang Pemanfaatan Data"},
        headers=head,
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["district_code"] == "16.71" and body["code"] == "pias"
    assert body["name"] == "Bidang Pemanfaatan Data" and body["id"]

    dup = await client.post(
        "/v1/districts/16.71/divisions", json={"code": "pias", "name": "Lain"}, headers=head
    )
    assert dup.status_code == 409, dup.text

    listed = await client.get("/v1/districts/16.71/divisions", headers=head)
    assert listed.status_code == 200
    # "dafduk" comes from the people fixture; listed in code order.
    assert [d["code"] for d in listed.json()["items"]] == ["dafduk", "pias"]
    for role in ("province_head", "province_monitor", "division_head", "ministry_monitor"):
        seen = await client.get("/v1/districts/16.71/divisions", headers=bearer(app, people[role]))
        assert seen.status_code == 200, (role, seen.text)
        assert {d["code"] for d in seen.json()["items"]} == {"dafduk", "pias"}


async def test_same_division_code_in_another_district_is_fine(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    admin = bearer(app, people["admin"])
    for district in ("16.71", "16.72"):
        made = await client.post(
            f"/v1/districts/{district}/divisions",
            json={"code": "capil", "name": "C"},
            headers=admin,
        )
        assert made.status_code == 201, made.text


async def test_divisions_outside_scope_are_not_found(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    outsiders: dict[str, Person],
) -> None:
    head = bearer(app, people["district_head"])
    body = {"code": "pias", "name": "Bidang"}
    for code in ("16.72", "31.71", "99.99", "16"):
        response = await client.post(f"/v1/districts/{code}/divisions", json=body, headers=head)
        assert response.status_code == 404, (code, response.text)
    other = await client.get("/v1/districts/16.72/divisions", headers=head)
    assert other.status_code == 404
    jakarta = await client.get(
        "/v1/districts/16.71/divisions", headers=bearer(app, outsiders["province_head"])
    )
    assert jakarta.status_code == 404
    # Admin: an unknown district or a province is not a district.
    admin = bearer(app, people["admin"])
    for code in ("99.99", "16"):
        response = await client.post(f"/v1/districts/{code}/divisions", json=body, headers=admin)
        assert response.status_code == 404, (code, response.text)


async def test_unknown_district_division_list_is_not_found(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    admin = bearer(app, people["admin"])
    for code in ("99.99", "16"):
        response = await client.get(f"/v1/districts/{code}/divisions", headers=admin)
        assert response.status_code == 404, (code, response.text)


@pytest.mark.parametrize(
    "body",
    [
        {"code": "Pias", "name": "Bidang"},
        {"code": "1pias", "name": "Bidang"},
        {"code": "p", "name": "Bidang"},
        {"code": "pi-as", "name": "Bidang"},
        {"code": "p" * 33, "name": "Bidang"},
        {"code": "pias", "name": ""},
        {"code": "pias", "name": "Bidang\u0000"},
        {"code": "pias"},
        {"code": "pias", "name": "Bidang", "district_code": "16.72"},
        {"code": 7, "name": "Bidang"},
    ],
    ids=lambda b: str(b)[:40],
)
async def test_division_body_rules(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person], body: Any
) -> None:
    response = await client.post(
        "/v1/districts/16.71/divisions", json=body, headers=bearer(app, people["district_head"])
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith(PROBLEM)


@pytest.mark.parametrize(
    "role", ["ministry_monitor", "province_head", "province_monitor", "division_head"]
)
async def test_only_district_heads_and_admins_add_divisions(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person], role: str
) -> None:
    response = await client.post(
        "/v1/districts/16.71/divisions",
        json={"code": "pias", "name": "Bidang"},
        headers=bearer(app, people[role]),
    )
    assert response.status_code == 403, response.text


async def test_nul_in_paths_is_400_not_500(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    admin = bearer(app, people["admin"])
    assert (await client.delete("/v1/indicators/%00", headers=admin)).status_code == 400
    assert (await client.delete("/v1/indicators/kia%00", headers=admin)).status_code == 400
    assert (await client.get("/v1/districts/%00/divisions", headers=admin)).status_code == 400
    made = await client.post(
        "/v1/districts/16.71%00/divisions", json={"code": "pias", "name": "B"}, headers=admin
    )
    assert made.status_code == 400, made.text
    assert made.headers["content-type"].startswith(PROBLEM)
    long_code = await client.delete("/v1/indicators/" + "a" * 5000, headers=admin)
    assert long_code.status_code == 404
