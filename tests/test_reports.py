"""Scorecards and rankings on a scenario whose numbers are worked out by hand here.

Province 16 (South Sumatra), 2021, as of 15 May (quarter II). Indicators: the three core
ones plus ``backlog`` (pending applications / applications, lower is better, target 10).

- 16.71 has its own agreement: KTP-el 100 with milestones 97/98/99/100 (so 98 applies in
  May), KIA 30, akta 95, backlog 10. It reports KTP-el 980,000 / 1,000,000 (98%,
  achievement 100), KIA 45,000 / 100,000 (45%, achievement 150, capped 120), akta 90 / 100
  (90%, achievement 94.7368...), backlog 5 / 100 (5%: (2 - 0.5) x 100 = 150, capped 120).
  Composite = (100 + 120 + 94.7368... + 120) / 4 = 108.6842...
  A month earlier (30 April) it reported KTP-el 970,000: +1.0 point, 666.67 a day.
- 16.72 and 16.73 have no agreement of their own: the province's targets apply (KTP-el
  100, KIA 30, akta 95, backlog 10). Both report KTP-el 50%, KIA 15%, akta 95%, backlog
  20%: achievements 50, 50, 100, (2 - 2) x 100 = 0; composite 50: a tie, ranks 2 and 2.
- Every other district of the province has no data: listed after, never as zero.
"""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from datetime import date
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from db import scorecards as data
from tests.agreement_helpers import (
    activate,
    draft,
    national_agreement,
    palembang_draft,
    register_signer,
    sign,
    targets,
)
from tests.people import Person, bearer, coordinate, make_user
from tests.submitting import register_key, served, submit
from tests.waiting import lock_waiters

YEAR = 2021
AS_OF = date(2021, 5, 15)
PARAMS = {"year": YEAR, "as_of": AS_OF.isoformat()}

A_VALUES = {
    "ktp_el": (980_000, 1_000_000),
    "kia": (45_000, 100_000),
    "akta_lahir": (90, 100),
    "backlog": (5, 100),
}
B_VALUES = {
    "ktp_el": (50_000, 100_000),
    "kia": (15, 100),
    "akta_lahir": (95, 100),
    "backlog": (20, 100),
}


def near(value: float | None, expected: float, places: int = 6) -> bool:
    return value is not None and abs(value - expected) < 10**-places


@pytest.fixture
async def world(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> dict[str, Any]:
    added = await client.post(
        "/v1/indicators",
        json={
            "code": "backlog",
            "name_id": "Tunggakan permohonan",
            "name_en": "Application backlog",
            "polarity": "lower",
            "numerator_definition": "applications pending",
            "denominator_definition": "applications received",
        },
        headers=bearer(app, people["admin"]),
    )
    assert added.status_code == 201, added.text
    province = await national_agreement(
        client,
        app,
        conn,
        people,
        year=YEAR,
        target_list=[
            {"indicator": "ktp_el", "annual": 100},
            {"indicator": "kia", "annual": 30},
            {"indicator": "akta_lahir", "annual": 95},
            {"indicator": "backlog", "annual": 10},
        ],
    )
    palembang_head = await register_signer(conn, people["district_head"])
    own = await palembang_draft(
        client,
        app,
        people,
        year=YEAR,
        official="Kadis Palembang",
        target_list=[
            {"indicator": "ktp_el", "annual": 100, "quarterly": [97, 98, 99, 100]},
            {"indicator": "kia", "annual": 30},
            {"indicator": "akta_lahir", "annual": 95},
            {"indicator": "backlog", "annual": 10},
        ],
    )
    await activate(client, app, own, second=palembang_head, first=province)

    heads = {"16.71": people["district_head"]}
    for code in ("16.72", "16.73"):
        heads[code] = await make_user(
            conn, "district_head", username=f"kadis_{code}", area_code=code
        )
    signers = {code: await register_key(conn, person) for code, person in heads.items()}
    ids: dict[str, str] = {}
    await submit(
        client,
        app,
        signers["16.71"],
        values={**A_VALUES, "ktp_el": (970_000, 1_000_000)},
        as_of=date(2021, 4, 30),
    )
    ids["16.71"] = (await submit(client, app, signers["16.71"], values=A_VALUES, as_of=AS_OF))["id"]
    for code in ("16.72", "16.73"):
        ids[code] = (await submit(client, app, signers[code], values=B_VALUES, as_of=AS_OF))["id"]
    coordinator = await make_user(conn, "region_coordinator", username="pj_w1", area_code="16")
    other = await make_user(conn, "region_coordinator", username="pj_w2", area_code="16")
    await coordinate(conn, coordinator, "16", ["16.71", "16.72"], YEAR)
    await coordinate(conn, other, "16", ["16.73", "16.74"], YEAR)
    return {"ids": ids, "signers": signers, "coordinator": coordinator, "heads": heads}


async def test_district_scorecard_numbers(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    world: dict[str, Any],
) -> None:
    response = await client.get(
        "/v1/scorecards/districts/16.71",
        params=PARAMS,
        headers=bearer(app, people["district_head"]),
    )
    assert response.status_code == 200, response.text
    card = response.json()
    rows = {r["indicator"]: r for r in card["indicators"]}
    ktp = rows["ktp_el"]
    assert ktp["coverage"] == 98.0 and ktp["target"] == 98.0  # the Q2 milestone, not 100
    assert ktp["achievement_raw"] == 100.0 and ktp["target_source"] == "district"
    assert ktp["trend"]["previous_as_of"] == "2021-04-30"
    assert near(ktp["trend"]["change_points"], 1.0)
    projection = ktp["projection"]
    assert near(projection["achieved_rate"], 10_000 / 15, 3)
    assert near(projection["needed_rate"], 20_000 / 230, 3)  # 15 May to 31 Dec
    assert projection["status"] == "on_track"
    kia = rows["kia"]
    assert kia["achievement_raw"] == 150.0 and kia["achievement_capped"] == 120.0
    assert near(rows["akta_lahir"]["achievement_raw"], 90 / 95 * 100)
    backlog = rows["backlog"]
    assert backlog["coverage"] == 5.0
    assert backlog["achievement_raw"] == 150.0 and backlog["achievement_capped"] == 120.0
    assert backlog["provenance"]["submission_id"] == world["ids"]["16.71"]
    assert backlog["provenance"]["reviewed"] is False
    expected = (100 + 120 + 90 / 95 * 100 + 120) / 4
    assert near(card["composite"]["score"], expected)
    assert card["composite"]["predikat"] == "AA"
    assert card["method"]["basis"] == "latest" and card["method"]["as_of"] == "2021-05-15"
    assert card["method"]["caps"]["kia"] == 120.0


async def test_district_ranking_ties_and_no_data(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    world: dict[str, Any],
) -> None:
    response = await client.get(
        "/v1/rankings/districts",
        params={**PARAMS, "province": "16"},
        headers=bearer(app, people["province_monitor"]),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    rows = body["rows"]
    assert [(r["code"], r["rank"]) for r in rows[:3]] == [("16.71", 1), ("16.72", 2), ("16.73", 2)]
    assert near(rows[1]["score"], 50.0) and rows[1]["score"] == rows[2]["score"]
    # 16.71 was ranked 1st at the end of April too; the others had no data then.
    assert rows[0]["previous_rank"] == 1 and rows[0]["change"] == 0
    assert rows[1]["previous_rank"] is None
    rest = rows[3:]
    assert len(rest) == 14 and all(r["status"] == "no_data" and r["rank"] is None for r in rest)
    assert all(r["score"] is None for r in rest)
    assert body["counts"] == {"rows": 17, "ranked": 3, "no_data": 14, "no_target": 0}
    assert body["method"]["rank_method"] == "standard_competition"
    single = await client.get(
        "/v1/rankings/districts",
        params={**PARAMS, "province": "16", "indicator": "akta_lahir"},
        headers=bearer(app, people["province_monitor"]),
    )
    ranked = [(r["code"], r["rank"]) for r in single.json()["rows"][:3]]
    assert ranked == [("16.72", 1), ("16.73", 1), ("16.71", 3)]


async def test_region_aggregate_is_population_weighted(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    world: dict[str, Any],
) -> None:
    response = await client.get(
        "/v1/scorecards/provinces/16", params=PARAMS, headers=bearer(app, people["province_head"])
    )
    assert response.status_code == 200, response.text
    card = response.json()
    w1 = next(r for r in card["regions"] if r["name"] == "Wilayah pj_w1")
    ktp = w1["indicators"]["ktp_el"]
    # (980,000 + 50,000) / (1,000,000 + 100,000), not the mean of 98% and 50% (74%).
    assert near(ktp["coverage"], 1_030_000 / 1_100_000 * 100)
    # Targets weighted the same way: (98 x 1,000,000 + 100 x 100,000) / 1,100,000.
    assert near(ktp["target"], (98 * 1_000_000 + 100 * 100_000) / 1_100_000)
    aggregate = {r["indicator"]: r for r in card["aggregate"]["indicators"]}
    assert aggregate["ktp_el"]["numerator"] == 980_000 + 2 * 50_000
    assert aggregate["ktp_el"]["with_data"] == 3 and aggregate["ktp_el"]["no_data"] == 14
    assert card["districts"][0]["code"] == "16.71"
    regions = await client.get(
        "/v1/rankings/regions",
        params={**PARAMS, "province": "16"},
        headers=bearer(app, people["province_head"]),
    )
    assert [r["name"] for r in regions.json()["rows"]] == ["Wilayah pj_w1", "Wilayah pj_w2"]


async def test_review_and_basis(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    world: dict[str, Any],
) -> None:
    head = bearer(app, people["province_head"])
    accepted = await client.get(
        "/v1/rankings/districts",
        params={**PARAMS, "province": "16", "basis": "accepted"},
        headers=head,
    )
    assert accepted.json()["counts"]["ranked"] == 0
    ok = await client.post(
        f"/v1/submissions/{world['ids']['16.72']}/review",
        json={"decision": "accept", "reason": "ok"},
        headers=head,
    )
    assert ok.status_code in (200, 201), ok.text
    back = await client.post(
        f"/v1/submissions/{world['ids']['16.73']}/review",
        json={"decision": "return", "reason": "denominator wrong"},
        headers=head,
    )
    assert back.status_code in (200, 201), back.text
    accepted = await client.get(
        "/v1/rankings/districts",
        params={**PARAMS, "province": "16", "basis": "accepted"},
        headers=head,
    )
    assert [r["code"] for r in accepted.json()["rows"] if r["status"] == "ranked"] == ["16.72"]
    latest = await client.get(
        "/v1/rankings/districts", params={**PARAMS, "province": "16"}, headers=head
    )
    statuses = {r["code"]: r["status"] for r in latest.json()["rows"]}
    assert statuses["16.73"] == "no_data" and statuses["16.72"] == "ranked"


async def test_etag_304_and_csv(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    world: dict[str, Any],
) -> None:
    head = bearer(app, people["province_monitor"])
    url, params = "/v1/rankings/districts", {**PARAMS, "province": "16"}
    first = await client.get(url, params=params, headers=head)
    etag = first.headers["etag"]
    again = await client.get(url, params=params, headers={**head, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    # A new submission in the province changes the data version, hence the ETag.
    await submit(client, app, world["signers"]["16.72"], values=B_VALUES, as_of=AS_OF)
    changed = await client.get(url, params=params, headers={**head, "If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["etag"] != etag
    as_csv = await client.get(url, params=params, headers={**head, "Accept": "text/csv"})
    assert as_csv.headers["content-type"].startswith("text/csv")
    assert as_csv.headers["etag"] != changed.headers["etag"]
    table = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert len(table) == 17
    assert table[0]["code"] == "16.71" and table[0]["rank"] == "1"
    assert "indicators.ktp_el.coverage" in table[0]
    assert float(table[0]["indicators.ktp_el.coverage"]) == 98.0
    same = await client.get(url, params={**params, "format": "csv"}, headers=head)
    assert same.text == as_csv.text
    schema = await client.get("/v1/schemas/district-scorecard.v1.json")
    assert schema.status_code == 200 and "$defs" in schema.json()


async def test_role_views(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    outsiders: dict[str, Person],
    conn: asyncpg.Connection,
    world: dict[str, Any],
) -> None:
    async def status(person: Person, url: str, **params: Any) -> int:
        response = await client.get(url, params={**PARAMS, **params}, headers=bearer(app, person))
        return response.status_code

    head = people["district_head"]
    assert await status(head, "/v1/scorecards/districts/16.71") == 200
    assert await status(head, "/v1/scorecards/districts/16.72") == 404
    assert await status(head, "/v1/rankings/districts") == 403
    assert await status(head, "/v1/scorecards/provinces/16") == 403
    division = await client.get(
        "/v1/scorecards/districts/16.71",
        params=PARAMS,
        headers=bearer(app, people["division_head"]),
    )
    assert division.status_code == 200
    assert {d["division_id"] for d in division.json()["divisions"]} <= {
        str(people["division_head"].division_id)
    }
    coordinator = world["coordinator"]
    mine = await client.get(
        "/v1/rankings/districts", params=PARAMS, headers=bearer(app, coordinator)
    )
    assert {r["code"] for r in mine.json()["rows"]} == {"16.71", "16.72"}
    regions = await client.get(
        "/v1/rankings/regions", params=PARAMS, headers=bearer(app, coordinator)
    )
    assert [r["name"] for r in regions.json()["rows"]] == ["Wilayah pj_w1"]
    assert await status(coordinator, "/v1/scorecards/districts/16.73") == 404
    assert await status(people["province_monitor"], "/v1/rankings/districts", province="31") == 404
    assert await status(outsiders["province_head"], "/v1/scorecards/provinces/16") == 404
    assert await status(people["province_head"], "/v1/rankings/provinces") == 404
    assert await status(people["ministry_monitor"], "/v1/rankings/provinces") == 200
    assert await status(people["ministry_monitor"], "/v1/rankings/districts") == 200
    integration = people["integration"]  # granted province 16
    assert await status(integration, "/v1/rankings/districts", province="16") == 200
    assert await status(integration, "/v1/scorecards/districts/16.72") == 200
    assert await status(integration, "/v1/rankings/provinces") == 404
    national = await make_user(conn, "integration", username="svc_national", area_code="ID")
    assert await status(national, "/v1/rankings/provinces") == 200


async def test_bad_report_queries(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    head = bearer(app, people["ministry_monitor"])
    cases = [
        ("/v1/rankings/districts", {"indicator": "nope"}, 400),
        ("/v1/rankings/districts", {"year": 2021, "as_of": "2022-01-01"}, 400),
        ("/v1/rankings/districts", {"as_of": "not-a-date"}, 400),
        ("/v1/rankings/districts", {"basis": "whatever"}, 400),
        ("/v1/rankings/districts", {"format": "xml"}, 400),
        ("/v1/rankings/districts", {"province": "99"}, 404),
        ("/v1/rankings/regions", {"province": "16.71"}, 404),
        ("/v1/scorecards/districts/16", {}, 404),
        ("/v1/scorecards/provinces/16.71", {}, 404),
        ("/v1/schemas/nope.json", {}, 404),
    ]
    for url, params, expected in cases:
        response = await client.get(url, params=params, headers=head)
        assert response.status_code == expected, (url, params, response.text)
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_score_only_matches_the_full_scoring(
    conn: asyncpg.Connection, settings: Any, world: dict[str, Any]
) -> None:
    """The previous period's ranking uses the lean path: it must give the same numbers."""
    from api import report_context, report_scores, report_targets
    from db import scorecards as data

    districts = await data.districts(conn, "16")
    for when in (AS_OF, date(2021, 4, 30), date(2021, 3, 31)):
        ctx = await report_context.context(
            conn, settings, year=YEAR, as_of=when, basis="latest", indicator="composite", today=when
        )
        targets = await report_targets.district_targets(conn, ctx, districts, when)
        values = await report_scores.values_on(conn, ctx, districts, when)
        full = await report_scores.score_districts(
            conn, ctx, districts, targets=targets, values=values
        )
        for indicator in ("composite", "ktp_el", "kia", "akta_lahir", "backlog"):
            for d in districts:
                lean = report_scores.score_only(
                    ctx, d["code"], values, targets[d["code"]], indicator, when
                )
                assert lean == report_scores.district_score(full[d["code"]], indicator), (
                    when,
                    indicator,
                    d["code"],
                )


async def test_remembered_district_scores_equal_a_fresh_computation(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    world: dict[str, Any],
) -> None:
    """Scores are remembered per district by their inputs, and values kept per district
    by data version; after each kind of change the ranking must equal one computed with
    nothing remembered or kept."""
    from api import report_scores
    from api.kept_values import KeptValues

    head = bearer(app, people["province_monitor"])
    reviewer = bearer(app, people["province_head"])
    params = {**PARAMS, "province": "16"}

    async def both() -> tuple[Any, Any]:
        kept = (await client.get("/v1/rankings/districts", params=params, headers=head)).json()
        report_scores.SCORES.clear()
        app.state.report_cache._items.clear()
        keeping = app.state.kept_values
        app.state.kept_values = KeptValues(None, 0)  # read everything from PostgreSQL
        try:
            fresh = (await client.get("/v1/rankings/districts", params=params, headers=head)).json()
        finally:
            app.state.kept_values = keeping
        for doc in (kept, fresh):
            doc["method"].pop("generated_at")
        return kept, fresh

    kept, fresh = await both()
    assert kept == fresh
    before = kept["rows"]
    # New counts for one district, then a returned report.
    await submit(client, app, world["signers"]["16.73"], values=A_VALUES, as_of=AS_OF)
    kept, fresh = await both()
    assert kept == fresh and kept["rows"] != before
    back = await client.post(
        f"/v1/submissions/{world['ids']['16.72']}/review",
        json={"decision": "return", "reason": "recount"},
        headers=reviewer,
    )
    assert back.status_code in (200, 201), back.text
    kept, fresh = await both()
    assert kept == fresh
    assert {r["code"]: r["status"] for r in kept["rows"]}["16.72"] == "no_data"
    # The catalogue has no edit route; a cap changed in the database still reaches scores.
    await conn.execute("UPDATE indicators SET cap = 100 WHERE code = 'kia'")
    app.state.report_cache._items.clear()
    kept, fresh = await both()
    assert kept == fresh
    palembang = next(r for r in kept["rows"] if r["code"] == "16.71")
    assert palembang["indicators"]["kia"]["achievement"] == 150.0
    assert palembang["score"] == pytest.approx((100 + 100 + 90 / 95 * 100 + 120) / 4)


async def test_an_activation_that_commits_after_a_later_agreement_write_reaches_scorecards(
    settings: Any, database_url: str, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """Found by review: the target caches were keyed by the year's latest updated_at, the
    time a writing transaction began. An activation that began first and committed after
    another agreement write of the year, with a report read in between, left the district
    on its province's target until some other agreement of that year changed."""
    async with served(settings) as (app, http):
        province = await national_agreement(
            http,
            app,
            conn,
            people,
            year=YEAR,
            target_list=[{"indicator": "ktp_el", "annual": 100}],
        )
        palembang = await register_signer(conn, people["district_head"])
        own = await palembang_draft(
            http,
            app,
            people,
            year=YEAR,
            official="Kadis Palembang",
            target_list=[{"indicator": "ktp_el", "annual": 90}],
        )
        assert (await sign(http, app, palembang, own, "second")).status_code == 201
        other = await draft(
            http,
            app,
            people["province_head"],
            year=YEAR,
            level="province_district",
            second={"area_code": "16.72", "official": "Kadis Prabumulih"},
            target_list=[{"indicator": "ktp_el", "annual": 95}],
        )
        head = bearer(app, people["province_head"])
        # The first party's signature begins its transaction, then waits on a row lock.
        blocker = await asyncpg.connect(database_url)
        try:
            lock = blocker.transaction()
            await lock.start()
            await blocker.execute("SELECT 1 FROM agreements WHERE id = $1 FOR UPDATE", own["id"])
            signing = asyncio.create_task(sign(http, app, province, own, "first"))
            await lock_waiters(conn, 1)
            # Meanwhile another draft of the year is edited and committed, and read.
            edited = await http.patch(
                f"/v1/agreements/{other['id']}",
                headers=head,
                json={"second_party": {"area_code": "16.72", "official": "Plt"}},
            )
            assert edited.status_code == 200, edited.text
            ranked = await http.get(
                "/v1/rankings/districts", params={**PARAMS, "province": "16"}, headers=head
            )
            assert ranked.status_code == 200, ranked.text
            await lock.rollback()
        finally:
            await blocker.close()
        signed = await signing
        assert (signed.status_code, signed.json()["status"]) == (201, "active")
        card = await http.get("/v1/scorecards/districts/16.71", params=PARAMS, headers=head)
        row = next(r for r in card.json()["indicators"] if r["indicator"] == "ktp_el")
        assert (row["target_source"], row["target"]) == ("district", 90.0)


async def test_region_and_province_composites_weigh_as_the_provinces_agreement(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """The province weighs KTP-el 3 : KIA 1; Palembang, the only district reporting and
    its region's only member, achieves 100 and 50, so 87.5. Its region and province hold
    the same numbers, and scored 75.0: the aggregates ignored the weights (found by
    review)."""
    await national_agreement(
        client,
        app,
        conn,
        people,
        year=YEAR,
        target_list=[
            {"indicator": "ktp_el", "annual": 100, "weight": 3},
            {"indicator": "kia", "annual": 30, "weight": 1},
        ],
    )
    signer = await register_key(conn, people["district_head"])
    await submit(
        client, app, signer, values={"ktp_el": (1_000, 1_000), "kia": (15, 100)}, as_of=AS_OF
    )
    pj = await make_user(conn, "region_coordinator", username="pj_w1", area_code="16")
    await coordinate(conn, pj, "16", ["16.71"], YEAR)
    head = bearer(app, people["province_head"])
    card = await client.get("/v1/scorecards/districts/16.71", params=PARAMS, headers=head)
    assert card.json()["composite"]["score"] == pytest.approx(87.5)
    pcard = (await client.get("/v1/scorecards/provinces/16", params=PARAMS, headers=head)).json()
    regions = await client.get(
        "/v1/rankings/regions", params={**PARAMS, "province": "16"}, headers=head
    )
    provinces = await client.get(
        "/v1/rankings/provinces", params=PARAMS, headers=bearer(app, people["ministry_monitor"])
    )
    sumsel = next(r for r in provinces.json()["rows"] if r["code"] == "16")
    scores = [
        pcard["regions"][0]["score"],
        regions.json()["rows"][0]["score"],
        pcard["aggregate"]["composite"]["score"],
        sumsel["score"],
    ]
    assert scores == [pytest.approx(87.5)] * 4


async def test_an_indicator_added_or_removed_reaches_cached_reports(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    """The catalogue was in no data version: after an indicator was added, a poller got
    304 and a plain GET the cached card without it (found by review)."""
    head = bearer(app, people["province_monitor"])
    admin = bearer(app, people["admin"])
    url = "/v1/scorecards/districts/16.71"
    ranking = "/v1/rankings/districts"

    async def shown() -> tuple[set[str], str, str]:
        card = await client.get(url, params=PARAMS, headers=head)
        ranked = await client.get(ranking, params={**PARAMS, "province": "16"}, headers=head)
        codes = {r["indicator"] for r in card.json()["indicators"]}
        return codes, card.headers["etag"], ranked.headers["etag"]

    before = await shown()
    added = await client.post(
        "/v1/indicators",
        headers=admin,
        json={
            "code": "backlog",
            "name_id": "Tunggakan",
            "name_en": "Backlog",
            "polarity": "lower",
            "numerator_definition": "pending",
            "denominator_definition": "received",
        },
    )
    assert added.status_code == 201, added.text
    after = await shown()
    assert "backlog" in after[0] and "backlog" not in before[0]
    assert after[1] != before[1] and after[2] != before[2]
    polled = await client.get(url, params=PARAMS, headers={**head, "If-None-Match": before[1]})
    assert polled.status_code == 200
    assert (await client.delete("/v1/indicators/backlog", headers=admin)).status_code == 204
    removed = await shown()
    assert "backlog" not in removed[0] and removed[1] != after[1]


async def _amended_palembang(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> tuple[uuid.UUID, uuid.UUID]:
    """Palembang's agreement (KTP-el 100) and its signed amendment (KTP-el 50)."""
    head = await register_signer(conn, people["district_head"])
    province = await register_signer(conn, people["province_head"])
    v1 = await palembang_draft(client, app, people, year=YEAR)
    await activate(client, app, v1, second=head, first=province)
    amended = await client.post(
        f"/v1/agreements/{v1['id']}/amendments",
        headers=bearer(app, people["province_head"]),
        json={
            "reason": "perubahan_prioritas",
            "note": "n",
            "targets": [
                {"indicator": "ktp_el", "annual": 50},
                {"indicator": "kia", "annual": 30},
                {"indicator": "akta_lahir", "annual": 95},
            ],
        },
    )
    assert amended.status_code == 201, amended.text
    v2 = amended.json()
    await activate(client, app, v2, second=head, first=province)
    return uuid.UUID(v1["id"]), uuid.UUID(v2["id"])


async def _signed_at(
    conn: asyncpg.Connection, agreement: uuid.UUID, activated: str, ended: str | None = None
) -> None:
    """Move an agreement's signing (and end) to given local times, as if signed then."""
    await conn.execute(
        "UPDATE agreements SET activated_at = $2::text::timestamptz, "
        "ended_at = coalesce($3::text::timestamptz, ended_at) WHERE id = $1",
        agreement,
        activated,
        ended,
    )


async def _ktp_el_target(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person], as_of: str
) -> float | None:
    card = await client.get(
        "/v1/scorecards/districts/16.71",
        params={"as_of": as_of},
        headers=bearer(app, people["province_head"]),
    )
    return next(i["target"] for i in card.json()["indicators"] if i["indicator"] == "ktp_el")


async def test_the_target_at_an_as_of_date_is_the_version_signed_by_then(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """Targets came from whichever version is active now: signing an amendment rescored
    every earlier month against the new targets (found by review). v1 (KTP-el 100) is in
    force from 10 January, v2 (50) from 1 July; a day before any signature takes v1."""
    v1, v2 = await _amended_palembang(client, app, conn, people)
    await _signed_at(conn, v1, "2021-01-10T09:00+07", "2021-07-01T09:00+07")
    await _signed_at(conn, v2, "2021-07-01T09:00+07")
    for as_of, target in (("2021-01-05", 100.0), ("2021-03-31", 100.0), ("2021-08-31", 50.0)):
        assert (as_of, await _ktp_el_target(client, app, people, as_of)) == (as_of, target)


async def test_the_version_in_force_does_not_hang_on_the_signing_clocks(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """Versions were ordered by activated_at alone, a replica's clock: an amendment signed
    on a clock a second behind never took over, and two signed in the same instant were
    picked at random (found by review)."""
    v1, v2 = await _amended_palembang(client, app, conn, people)
    await _signed_at(conn, v1, "2021-07-01T09:00:01+07", "2021-07-01T09:00:00+07")
    await _signed_at(conn, v2, "2021-07-01T09:00:00+07")
    assert await _ktp_el_target(client, app, people, "2021-08-31") == 50.0
    for same in (v1, v2):
        await _signed_at(conn, same, "2021-07-01T09:00+07")
    assert await _ktp_el_target(client, app, people, "2021-03-31") == 100.0


async def test_a_closed_agreement_does_not_mix_into_the_next_one(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """Choosing a version per lineage put a closed agreement's targets beside its office's
    next agreement's (found by review): one agreement applies, and a day between them
    takes the one to come."""
    head = await register_signer(conn, people["district_head"])
    province = await register_signer(conn, people["province_head"])
    old = await palembang_draft(client, app, people, year=YEAR, target_list=targets(kia=30))
    await activate(client, app, old, second=head, first=province)
    await conn.execute(
        "UPDATE agreements SET status = 'closed' WHERE id = $1", uuid.UUID(old["id"])
    )
    await _signed_at(conn, uuid.UUID(old["id"]), "2021-01-10T09:00+07", "2021-03-01T09:00+07")
    new = await palembang_draft(client, app, people, year=YEAR, target_list=targets(ktp_el=90))
    await activate(client, app, new, second=head, first=province)
    await _signed_at(conn, uuid.UUID(new["id"]), "2021-03-05T09:00+07")
    card = await client.get(
        "/v1/scorecards/districts/16.71",
        params={"as_of": "2021-06-30"},
        headers=bearer(app, people["province_head"]),
    )
    got = {i["indicator"]: i["target"] for i in card.json()["indicators"]}
    assert got == {"ktp_el": 90.0, "kia": None, "akta_lahir": None}


async def test_a_report_reads_the_agreements_fingerprint_once(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    world: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A cold province card looks up targets for its districts, regions and month before,
    and each lookup read the year's fingerprint again (one query each, six in all)."""
    reads: list[int] = []
    real = data.agreements_fingerprint

    async def spy(conn: asyncpg.Connection, year: int) -> Any:
        reads.append(year)
        return await real(conn, year)

    monkeypatch.setattr(data, "agreements_fingerprint", spy)
    head = bearer(app, people["province_head"])
    for url in ("/v1/scorecards/provinces/16", "/v1/scorecards/districts/16.71"):
        reads.clear()
        response = await client.get(url, params=PARAMS, headers=head)
        assert response.status_code == 200, response.text
        assert reads == [YEAR], url


async def test_a_district_card_csv_has_one_column_order_whoever_reads_it(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    world: dict[str, Any],
) -> None:
    """A division head's card has none of the district office's rows, so its CSV led with
    the composite row's columns and every later column moved: a system reading columns
    by position read other figures than for the province monitor."""
    headers = {}
    for who in ("province_monitor", "division_head"):
        response = await client.get(
            "/v1/scorecards/districts/16.71",
            params={**PARAMS, "format": "csv"},
            headers=bearer(app, people[who]),
        )
        assert response.status_code == 200, response.text
        headers[who] = response.text.split("\r\n", 1)[0].split(",")
    assert headers["division_head"] == headers["province_monitor"], headers
    assert headers["province_monitor"][:4] == ["district", "division", "indicator", "status"]
