"""The South Sumatra 2021 scenario from the seeds, and the gaps the cascade must report.

National targets (the ministry's agreement with the province): KTP-el 100, KIA 30,
akta kelahiran 95. Four regions cover the province's 17 districts; every district has an
active agreement with the province and two divisions with theirs. The scenario plants
exactly these gaps:

1. 16.01 sets KTP-el 99, below the province's 100. No district can promise more than
   100%, so this also pulls the population-weighted mean of KTP-el targets below 100.
2. Kota Palembang (16.71, the most populous) sets KIA 20, below 30; four of the least
   populous set 35. The plain mean of district KIA targets stays at or above 30, but
   the population-weighted mean falls below it: a gap only weighting reveals.
3. In 16.02 the second division takes on KIA instead of akta kelahiran, leaving
   akta kelahiran to no division.
"""

from __future__ import annotations

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.agreement_helpers import (
    activate,
    district_agreement,
    draft,
    national_agreement,
    palembang_draft,
    register_signer,
    targets,
)
from tests.people import Person, bearer, make_division, make_user

YEAR = 2021


async def build_scenario(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> dict[str, object]:
    districts = await conn.fetch(
        "SELECT code, population FROM areas WHERE parent_code = '16' ORDER BY code"
    )
    codes = [d["code"] for d in districts]
    assert len(codes) == 17
    by_population = sorted(districts, key=lambda d: d["population"])
    small = {d["code"] for d in by_population[:4]}
    assert "16.71" not in small and by_population[-1]["code"] == "16.71"

    province = await national_agreement(
        client,
        app,
        conn,
        people,
        year=YEAR,
        target_list=targets(ktp_el=100, kia=30, akta_lahir=95),
        official="Pu'adi, Kadis Dukcapil Sumsel",
    )

    # Four regions with their coordinators.
    coordinators = [
        await make_user(conn, "region_coordinator", username=f"pj_wilayah_{i}", area_code="16")
        for i in range(1, 5)
    ]
    quarters = [codes[0:5], codes[5:9], codes[9:13], codes[13:17]]
    regions = await client.put(
        f"/v1/provinces/16/regions/{YEAR}",
        json={
            "regions": [
                {"name": f"Wilayah {i + 1}", "coordinator_id": str(c.id), "districts": q}
                for i, (c, q) in enumerate(zip(coordinators, quarters, strict=True))
            ]
        },
        headers=bearer(app, people["province_head"]),
    )
    assert regions.status_code == 200, regions.text
    assert regions.json()["unassigned"] == []

    kia_targets = {}
    for code in codes:
        ktp = 99.0 if code == "16.01" else 100.0
        kia = 20.0 if code == "16.71" else 35.0 if code in small else 30.0
        kia_targets[code] = kia
        _, head_signer = await district_agreement(
            client,
            app,
            conn,
            province,
            code,
            targets(ktp_el=ktp, kia=kia, akta_lahir=95),
            year=YEAR,
        )
        head = head_signer.person
        for division_code, taken in (
            ("dafduk", targets(ktp_el=ktp)),
            ("capil", targets(kia=kia) if code == "16.02" else targets(kia=kia, akta_lahir=95)),
        ):
            division_id = await make_division(conn, code, division_code)
            division_head = await make_user(
                conn,
                "division_head",
                username=f"kabid_{division_code}_{code}",
                area_code=code,
                division_id=division_id,
            )
            division_signer = await register_signer(conn, division_head)
            division_agreement = await draft(
                client,
                app,
                head,
                year=YEAR,
                level="district_division",
                second={"division_id": str(division_id), "official": f"Kabid {division_code}"},
                target_list=taken,
            )
            await activate(
                client, app, division_agreement, second=division_signer, first=head_signer
            )
    population = {d["code"]: d["population"] for d in districts}
    return {"kia": kia_targets, "population": population, "coordinators": coordinators}


async def test_south_sumatra_cascade_shows_exactly_the_planted_gaps(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    scenario = await build_scenario(client, app, conn, people)
    kia: dict[str, float] = scenario["kia"]  # type: ignore[assignment]
    population: dict[str, int] = scenario["population"]  # type: ignore[assignment]
    # The gap that only weighting shows: worked out here from the area data.
    plain_mean = sum(kia.values()) / len(kia)
    weighted_mean = sum(kia[c] * population[c] for c in kia) / sum(population.values())
    assert plain_mean >= 30 > weighted_mean

    response = await client.get(
        "/v1/agreements/cascade",
        params={"year": YEAR, "area": "16"},
        headers=bearer(app, people["province_head"]),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    found = {(f["code"], f["area_code"], f["indicator"]) for f in body["findings"]}
    assert found == {
        ("district_target_below_province", "16.01", "ktp_el"),
        ("weighted_mean_below_province", "16", "ktp_el"),
        ("district_target_below_province", "16.71", "kia"),
        ("weighted_mean_below_province", "16", "kia"),
        ("indicator_uncovered_by_divisions", "16.02", "akta_lahir"),
    }
    mean = next(
        f
        for f in body["findings"]
        if f["code"] == "weighted_mean_below_province" and f["indicator"] == "kia"
    )
    assert abs(mean["target"] - weighted_mean) < 1e-3 and mean["reference"] == 30

    root = body["root"]
    assert root["kind"] == "province" and root["targets"] == {
        "ktp_el": 100,
        "kia": 30,
        "akta_lahir": 95,
    }
    assert len(root["children"]) == 17
    palembang = next(c for c in root["children"] if c["code"] == "16.71")
    assert palembang["agreement"]["status"] == "active"
    assert palembang["targets"]["kia"] == 20
    assert {d["code"] for d in palembang["children"]} == {"dafduk", "capil"}

    # A district's view shows its own node; a region coordinator sees their districts only.
    district = await client.get(
        "/v1/agreements/cascade",
        params={"year": YEAR, "area": "16.02"},
        headers=bearer(app, people["province_monitor"]),
    )
    assert {(f["code"], f["indicator"]) for f in district.json()["findings"]} == {
        ("indicator_uncovered_by_divisions", "akta_lahir")
    }
    coordinator = scenario["coordinators"][0]  # type: ignore[index]
    mine = await client.get(
        "/v1/agreements/cascade",
        params={"year": YEAR, "area": "16.01"},
        headers=bearer(app, coordinator),
    )
    assert mine.status_code == 200
    not_mine = await client.get(
        "/v1/agreements/cascade",
        params={"year": YEAR, "area": "16.71"},
        headers=bearer(app, coordinator),
    )
    assert not_mine.status_code == 404
    national = await client.get(
        "/v1/agreements/cascade",
        params={"year": YEAR},
        headers=bearer(app, people["ministry_monitor"]),
    )
    assert national.status_code == 200
    provinces = national.json()["root"]["children"]
    assert len(provinces) == 38
    # Every other province has no agreements: each of its districts is reported.
    missing = [f for f in national.json()["findings"] if f["code"] == "district_without_agreement"]
    assert len(missing) == 514 - 17


async def test_district_without_active_agreement_is_reported(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    # A draft does not count: only active agreements make the cascade.
    await palembang_draft(
        client, app, people, year=YEAR, target_list=targets(ktp_el=100), official="Kadis"
    )
    response = await client.get(
        "/v1/agreements/cascade",
        params={"year": YEAR, "area": "16"},
        headers=bearer(app, people["province_head"]),
    )
    codes = {
        f["area_code"]
        for f in response.json()["findings"]
        if f["code"] == "district_without_agreement"
    }
    assert len(codes) == 17 and "16.71" in codes
    outside = await client.get(
        "/v1/agreements/cascade",
        params={"year": YEAR, "area": "31"},
        headers=bearer(app, people["province_head"]),
    )
    assert outside.status_code == 404
    country = await client.get(
        "/v1/agreements/cascade",
        params={"year": YEAR},
        headers=bearer(app, people["province_head"]),
    )
    assert country.status_code == 404
