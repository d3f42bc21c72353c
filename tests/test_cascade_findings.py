"""The cascade: findings of a review, each failed before its fix."""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.agreement_helpers import district_agreement, national_agreement, targets
from tests.people import Person, bearer

YEAR = 2021
Client = AsyncTestClient[Litestar]


async def _cascade(client: Client, app: Litestar, who: Person, area: str = "16") -> Any:
    response = await client.get(
        "/v1/agreements/cascade", params={"year": YEAR, "area": area}, headers=bearer(app, who)
    )
    assert response.status_code == 200, response.text
    return response.json()


def _found(body: Any) -> set[tuple[str, str, str | None]]:
    return {(f["code"], f["area_code"], f["indicator"]) for f in body["findings"]}


async def test_district_agreement_leaving_out_a_province_indicator_is_a_gap(
    client: Client, app: Litestar, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """The province promises KIA 30; every district agreement of the province sets
    KTP-el only. Nobody below the province takes on KIA at all, yet the cascade has no
    finding for KIA: the per-district check loops over the district's own indicators,
    and the weighted mean leaves the districts without a KIA target out (here: all)."""
    province = await national_agreement(
        client, app, conn, people, year=YEAR, target_list=targets(ktp_el=100, kia=30)
    )
    codes = [
        r["code"]
        for r in await conn.fetch(
            "SELECT code FROM areas WHERE parent_code = '16' AND kind = 'district' ORDER BY code"
        )
    ]
    for code in codes:
        await district_agreement(client, app, conn, province, code, targets(ktp_el=100))
    body = await _cascade(client, app, people["province_head"])
    kia = {(f["code"], f["area_code"]) for f in body["findings"] if f["indicator"] == "kia"}
    assert kia == {("indicator_uncovered_by_district", code) for code in codes}, kia
