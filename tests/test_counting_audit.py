"""Audit of what counts: signed submissions (issue 5) against what scorecards, rankings
and their CSV show (issue 6), after returns, acceptances, corrections and late reports,
for a district, a division, a region and a province, and on both bases; with the ETag a
polling integration holds, which must never keep a body the event made stale.

Numbers are worked out by hand in each test. Province 16 (South Sumatra) has KTP-el 100
(and KIA 100) with the ministry for ``YEAR``, which its districts are scored against.
"""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import Any

import asyncpg
import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.settings import Settings
from tests.agreement_helpers import national_agreement, targets
from tests.people import Person, bearer, coordinate, make_user
from tests.submitting import JOSE, Signer, register_key, review, served, submit
from tests.test_change_feed import feed_of

YEAR = 2026
DISTRICT, NEIGHBOUR = "16.71", "16.72"
CARD = f"/v1/scorecards/districts/{DISTRICT}"
RANKING = "/v1/rankings/districts"
JUNE, JULY = date(YEAR, 6, 30), date(YEAR, 7, 31)


def at(day: date) -> dict[str, Any]:
    return {"year": day.year, "as_of": day.isoformat()}


def card_row(card: dict[str, Any], indicator: str = "ktp_el") -> dict[str, Any]:
    return next(r for r in card["indicators"] if r["indicator"] == indicator)


def ranking_row(document: dict[str, Any], code: str = DISTRICT) -> dict[str, Any]:
    return next(r for r in document["rows"] if r["code"] == code)


def aggregate_row(aggregate: dict[str, Any], indicator: str = "ktp_el") -> dict[str, Any]:
    return next(r for r in aggregate["indicators"] if r["indicator"] == indicator)


async def get(
    client: AsyncTestClient[Litestar] | httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    params: dict[str, Any],
    etag: str | None = None,
    expect: int = 200,
) -> httpx.Response:
    """GET, optionally polling with ``If-None-Match: etag``; asserts the status."""
    sent = dict(headers)
    if etag is not None:
        sent["If-None-Match"] = etag
    response = await client.get(url, params=params, headers=sent)
    assert response.status_code == expect, (response.status_code, response.text)
    return response


async def ktp_ranking(
    client: AsyncTestClient[Litestar] | httpx.AsyncClient,
    headers: dict[str, str],
    day: date,
    etag: str | None = None,
    **extra: Any,
) -> httpx.Response:
    params = {"province": "16", "indicator": "ktp_el", **at(day), **extra}
    return await get(client, RANKING, headers, params, etag)


async def province_targets(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    await national_agreement(
        client, app, conn, people, year=YEAR, target_list=targets(ktp_el=100, kia=100)
    )


async def neighbour_signer(conn: asyncpg.Connection) -> Signer:
    head = await make_user(conn, "district_head", username="kadis_1672", area_code=NEIGHBOUR)
    return await register_key(conn, head)


async def accept(
    client: AsyncTestClient[Litestar], app: Litestar, who: Person, submission_id: str
) -> None:
    response = await review(client, app, who, submission_id, "accept")
    assert response.status_code == 201, response.text


async def send_back(
    client: AsyncTestClient[Litestar], app: Litestar, who: Person, submission_id: str
) -> None:
    response = await review(client, app, who, submission_id, "return", "Angka belum sesuai")
    assert response.status_code == 201, response.text


async def post(http: httpx.AsyncClient, app: Litestar, signer: Signer, **kwargs: Any) -> str:
    """Sign and submit through a served replica; the new submission's id."""
    response = await http.post(
        "/v1/submissions",
        content=signer.sign(**kwargs).encode(),
        headers={**bearer(app, signer.person), "Content-Type": JOSE},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


# -- a division ----------------------------------------------------------------------------


async def test_a_returned_division_report_falls_back_to_the_divisions_previous_report(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """Issue 5: "A returned submission stops counting", for a division's report as for a
    district's: the division's card (in the district card, and the division head's own
    view) falls back to the division's previous counting report, the accepted basis to
    its accepted one, and both cached cards move their ETag."""
    await province_targets(client, app, conn, people)
    office = await register_key(conn, people["district_head"])
    division = await register_key(conn, people["division_head"])
    monitor = bearer(app, people["province_monitor"])
    own_view = bearer(app, people["division_head"])
    params = at(JULY)

    await submit(client, app, office, values={"ktp_el": (900, 1000)}, as_of=JULY)
    june = await submit(client, app, division, values={"ktp_el": (100, 400)}, as_of=JUNE)
    july = await submit(client, app, division, values={"ktp_el": (200, 400)}, as_of=JULY)
    await accept(client, app, people["province_head"], june["id"])

    seen = await get(client, CARD, monitor, params)
    (part,) = seen.json()["divisions"]
    assert card_row(part)["numerator"] == 200
    assert card_row(part)["provenance"]["submission_id"] == july["id"]
    mine = await get(client, CARD, own_view, params)
    assert card_row(mine.json()["divisions"][0])["numerator"] == 200
    accepted = await get(client, CARD, monitor, {**params, "basis": "accepted"})
    assert card_row(accepted.json()["divisions"][0])["numerator"] == 100

    await send_back(client, app, people["province_monitor"], july["id"])

    polled = await get(client, CARD, monitor, params, etag=seen.headers["etag"])
    (part,) = polled.json()["divisions"]
    row = card_row(part)
    assert (row["numerator"], row["denominator"], row["coverage"]) == (100, 400, 25.0)
    assert row["provenance"] == {
        "submission_id": june["id"],
        "as_of": JUNE.isoformat(),
        "status": "accepted",
        "reviewed": True,
    }
    # The district office's own figures are not the division's.
    assert card_row(polled.json())["numerator"] == 900
    again = await get(client, CARD, own_view, params, etag=mine.headers["etag"])
    assert card_row(again.json()["divisions"][0])["numerator"] == 100
    still = await get(client, CARD, monitor, {**params, "basis": "accepted"})
    assert card_row(still.json()["divisions"][0])["provenance"]["submission_id"] == june["id"]


async def test_a_division_correction_replaces_the_corrected_report_on_its_card(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """A division's correction (``supersedes``) takes the corrected report's place on the
    division's card; the division's CSV row follows."""
    division = await register_key(conn, people["division_head"])
    monitor = bearer(app, people["province_monitor"])
    params = at(JULY)
    old = await submit(client, app, division, values={"ktp_el": (200, 400)}, as_of=JULY)
    before = await get(client, CARD, monitor, {**params, "format": "csv"})
    fixed = await submit(
        client,
        app,
        division,
        values={"ktp_el": (300, 400)},
        as_of=JULY,
        supersedes={"id": old["id"], "reason": "Salah ketik"},
    )
    shown = await get(client, CARD, monitor, params)
    row = card_row(shown.json()["divisions"][0])
    assert row["numerator"] == 300 and row["coverage"] == 75.0
    assert row["provenance"]["submission_id"] == fixed["id"]
    table = await get(client, CARD, monitor, {**params, "format": "csv"}, before.headers["etag"])
    rows = list(csv.DictReader(io.StringIO(table.text)))
    division_rows = [r for r in rows if r["division"] and r["indicator"] == "ktp_el"]
    assert [r["numerator"] for r in division_rows] == ["300"]


# -- a correction --------------------------------------------------------------------------


async def test_a_correction_replaces_the_corrected_report_in_card_ranking_and_csv(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """Issue 5: "a correction is a new submission that supersedes an earlier one". The
    scorecard, the ranking and their CSV show the correction, and a client polling with
    the ETag it held gets the new body (200), not a 304. Returning the correction then
    falls back to the previous date's report, never to the superseded one."""
    await province_targets(client, app, conn, people)
    signer = await register_key(conn, people["district_head"])
    monitor = bearer(app, people["province_monitor"])
    june = await submit(client, app, signer, values={"ktp_el": (500, 1000)}, as_of=JUNE)
    old = await submit(client, app, signer, values={"ktp_el": (600, 1000)}, as_of=JULY)
    card = await get(client, CARD, monitor, at(JULY))
    as_csv = await get(client, CARD, monitor, {**at(JULY), "format": "csv"})
    ranked = await ktp_ranking(client, monitor, JULY)
    ranked_csv = await ktp_ranking(client, monitor, JULY, format="csv")
    assert card_row(card.json())["numerator"] == 600

    fixed = await submit(
        client,
        app,
        signer,
        values={"ktp_el": (700, 1000)},
        as_of=JULY,
        supersedes={"id": old["id"], "reason": "Salah ketik pembilang"},
    )

    row = card_row((await get(client, CARD, monitor, at(JULY), card.headers["etag"])).json())
    assert (row["numerator"], row["coverage"], row["achievement_raw"]) == (700, 70.0, 70.0)
    assert row["provenance"]["submission_id"] == fixed["id"]
    assert "superseded" not in row["flags"]
    # The trend compares with June's report (the end of the previous month).
    assert row["trend"]["previous_coverage"] == 50.0 and row["trend"]["change_points"] == 20.0
    table = await get(client, CARD, monitor, {**at(JULY), "format": "csv"}, as_csv.headers["etag"])
    line = next(
        r
        for r in csv.DictReader(io.StringIO(table.text))
        if r["indicator"] == "ktp_el" and not r["division"]
    )
    assert line["numerator"] == "700" and float(line["coverage"]) == 70.0
    polled = await ktp_ranking(client, monitor, JULY, etag=ranked.headers["etag"])
    assert ranking_row(polled.json())["indicators"]["ktp_el"]["coverage"] == 70.0
    polled_csv = await ktp_ranking(client, monitor, JULY, etag=ranked_csv.headers["etag"])
    # (the same query without format=csv: the JSON ETag moved, so is the CSV's)
    assert polled_csv.headers["etag"] != ranked_csv.headers["etag"]
    fresh_csv = await ktp_ranking(client, monitor, JULY, format="csv")
    line = next(r for r in csv.DictReader(io.StringIO(fresh_csv.text)) if r["code"] == DISTRICT)
    assert float(line["indicators.ktp_el.coverage"]) == 70.0

    corrected_card = await get(client, CARD, monitor, at(JULY))
    await send_back(client, app, people["province_head"], fixed["id"])
    row = card_row(
        (await get(client, CARD, monitor, at(JULY), corrected_card.headers["etag"])).json()
    )
    assert row["numerator"] == 500
    assert row["provenance"]["submission_id"] == june["id"]
    ranked = await ktp_ranking(client, monitor, JULY)
    assert ranking_row(ranked.json())["indicators"]["ktp_el"]["coverage"] == 50.0


# -- dates ---------------------------------------------------------------------------------


async def test_a_late_report_for_an_earlier_date_does_not_override_the_newer_one(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """DESIGN: a submission is a cumulative snapshot "as of date D"; reports come "late,
    sometimes twice". A June report received after the July one counts for June (the
    card as of June, and July's trend), never in July's place."""
    await province_targets(client, app, conn, people)
    signer = await register_key(conn, people["district_head"])
    monitor = bearer(app, people["province_monitor"])
    july = await submit(client, app, signer, values={"ktp_el": (900, 1000)}, as_of=JULY)
    card = await get(client, CARD, monitor, at(JULY))
    ranked = await ktp_ranking(client, monitor, JULY)
    june = await submit(client, app, signer, values={"ktp_el": (800, 1000)}, as_of=JUNE)

    polled = await get(client, CARD, monitor, at(JULY), card.headers["etag"])
    row = card_row(polled.json())
    assert row["numerator"] == 900 and row["provenance"]["submission_id"] == july["id"]
    assert row["trend"]["previous_coverage"] == 80.0  # June's late report, a month before
    assert ranking_row((await ktp_ranking(client, monitor, JULY)).json())["score"] == 90.0
    assert ranked.headers["etag"] != (await ktp_ranking(client, monitor, JULY)).headers["etag"]
    row = card_row((await get(client, CARD, monitor, at(JUNE))).json())
    assert row["numerator"] == 800 and row["provenance"]["submission_id"] == june["id"]
    today_row = card_row((await get(client, CARD, monitor, {"year": YEAR})).json())
    assert today_row["provenance"]["submission_id"] == july["id"]


# -- reviews and bases ---------------------------------------------------------------------


async def test_accepting_an_older_report_after_the_newer_one_was_returned(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """The July report is returned, so June's counts (basis ``latest``); June is then
    accepted: the card says so (provenance reviewed), the accepted basis shows June, and
    a client holding the ETag from after the return gets the new body."""
    await province_targets(client, app, conn, people)
    signer = await register_key(conn, people["district_head"])
    monitor = bearer(app, people["province_monitor"])
    june = await submit(client, app, signer, values={"ktp_el": (800, 1000)}, as_of=JUNE)
    july = await submit(client, app, signer, values={"ktp_el": (900, 1000)}, as_of=JULY)
    await send_back(client, app, people["province_head"], july["id"])

    after_return = await get(client, CARD, monitor, at(JULY))
    row = card_row(after_return.json())
    assert row["numerator"] == 800 and row["provenance"]["reviewed"] is False
    accepted_card = await get(client, CARD, monitor, {**at(JULY), "basis": "accepted"})
    assert card_row(accepted_card.json())["status"] == "no_data"
    accepted_rank = await ktp_ranking(client, monitor, JULY, basis="accepted")
    assert ranking_row(accepted_rank.json())["status"] == "no_data"

    await accept(client, app, people["province_monitor"], june["id"])

    polled = await get(client, CARD, monitor, at(JULY), after_return.headers["etag"])
    row = card_row(polled.json())
    assert row["numerator"] == 800
    assert row["provenance"] == {
        "submission_id": june["id"],
        "as_of": JUNE.isoformat(),
        "status": "accepted",
        "reviewed": True,
    }
    params = {**at(JULY), "basis": "accepted"}
    row = card_row((await get(client, CARD, monitor, params, accepted_card.headers["etag"])).json())
    assert row["numerator"] == 800 and row["provenance"]["submission_id"] == june["id"]
    ranked = await ktp_ranking(
        client, monitor, JULY, etag=accepted_rank.headers["etag"], basis="accepted"
    )
    assert ranking_row(ranked.json())["rank"] == 1
    assert ranking_row(ranked.json())["score"] == 80.0
    assert ranked.json()["method"]["basis"] == "accepted"


async def test_an_accepted_report_returned_later_leaves_the_accepted_basis(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """README: "an accepted one may still be returned later"; a returned report stops
    counting on the accepted basis too: it falls back to the previous accepted report."""
    await province_targets(client, app, conn, people)
    signer = await register_key(conn, people["district_head"])
    monitor = bearer(app, people["province_monitor"])
    june = await submit(client, app, signer, values={"ktp_el": (800, 1000)}, as_of=JUNE)
    july = await submit(client, app, signer, values={"ktp_el": (900, 1000)}, as_of=JULY)
    for made in (june, july):
        await accept(client, app, people["province_head"], made["id"])
    params = {**at(JULY), "basis": "accepted"}
    card = await get(client, CARD, monitor, params)
    assert card_row(card.json())["numerator"] == 900
    ranked = await ktp_ranking(client, monitor, JULY, basis="accepted")
    assert ranking_row(ranked.json())["score"] == 90.0

    await send_back(client, app, people["province_monitor"], july["id"])

    row = card_row((await get(client, CARD, monitor, params, card.headers["etag"])).json())
    assert row["numerator"] == 800 and row["provenance"]["submission_id"] == june["id"]
    polled = await ktp_ranking(client, monitor, JULY, etag=ranked.headers["etag"], basis="accepted")
    assert ranking_row(polled.json())["score"] == 80.0
    latest = card_row((await get(client, CARD, monitor, at(JULY))).json())
    assert latest["numerator"] == 800


async def test_a_correction_of_an_accepted_report_counts_as_accepted_only_once_accepted(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """The accepted July report is corrected: the correction counts at once on basis
    ``latest``; on basis ``accepted`` the superseded July no longer counts (June, the
    previous accepted, does) until a reviewer accepts the correction."""
    await province_targets(client, app, conn, people)
    signer = await register_key(conn, people["district_head"])
    monitor = bearer(app, people["province_monitor"])
    june = await submit(client, app, signer, values={"ktp_el": (800, 1000)}, as_of=JUNE)
    july = await submit(client, app, signer, values={"ktp_el": (900, 1000)}, as_of=JULY)
    for made in (june, july):
        await accept(client, app, people["province_head"], made["id"])
    params = {**at(JULY), "basis": "accepted"}
    card = await get(client, CARD, monitor, params)
    fixed = await submit(
        client,
        app,
        signer,
        values={"ktp_el": (950, 1000)},
        as_of=JULY,
        supersedes={"id": july["id"], "reason": "Rekap ulang"},
    )
    latest = card_row((await get(client, CARD, monitor, at(JULY))).json())
    assert latest["numerator"] == 950 and latest["provenance"]["reviewed"] is False
    polled = await get(client, CARD, monitor, params, card.headers["etag"])
    row = card_row(polled.json())
    assert row["numerator"] == 800 and row["provenance"]["submission_id"] == june["id"]

    await accept(client, app, people["province_head"], fixed["id"])
    row = card_row((await get(client, CARD, monitor, params, polled.headers["etag"])).json())
    assert row["numerator"] == 950 and row["provenance"]["submission_id"] == fixed["id"]


# -- stated figures ------------------------------------------------------------------------


async def test_stated_percentages_never_change_ranks(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """Issue 5: the API flags a stated figure that disagrees with the counts "and always
    ranks on the computed value". Palembang states 99.50 % for 900 of 1,000 (90 %), its
    neighbour states 90.00 % for 950 of 1,000 (95 %): the neighbour ranks first, on 95."""
    await province_targets(client, app, conn, people)
    palembang = await register_key(conn, people["district_head"])
    neighbour = await neighbour_signer(conn)
    monitor = bearer(app, people["province_monitor"])
    boast = await submit(
        client, app, palembang, values={"ktp_el": (900, 1000)}, as_of=JULY, stated={"ktp_el": 99.5}
    )
    modest = await submit(
        client, app, neighbour, values={"ktp_el": (950, 1000)}, as_of=JULY, stated={"ktp_el": 90.0}
    )
    assert "stated_mismatch" in boast["flags"] and "stated_mismatch" in modest["flags"]
    for indicator in ("ktp_el", "composite"):
        ranked = await get(
            client, RANKING, monitor, {"province": "16", "indicator": indicator, **at(JULY)}
        )
        rows = ranked.json()
        first, second = ranking_row(rows, NEIGHBOUR), ranking_row(rows, DISTRICT)
        assert (first["rank"], second["rank"]) == (1, 2), indicator
        assert first["indicators"]["ktp_el"]["coverage"] == 95.0
        assert second["indicators"]["ktp_el"]["coverage"] == 90.0
    row = card_row((await get(client, CARD, monitor, at(JULY))).json())
    assert row["coverage"] == 90.0 and row["achievement_raw"] == 90.0
    assert "stated_mismatch" in row["flags"]


# -- a region and a province ---------------------------------------------------------------


async def test_region_and_province_aggregates_follow_a_return_and_keep_over_100(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """Two districts in one region. Palembang reports 600 of 1,000 in June and 1,300 of
    1,000 in July (130 %: kept, flagged, achievement 130 raw, 120 capped); the neighbour
    500 of 1,000 in July. Region and province: (1,300 + 500) / 2,000 = 90 %. Palembang's
    July report is returned: (600 + 500) / 2,000 = 55 % everywhere (region ranking,
    province card, provinces ranking), and every ETag held before moves."""
    await province_targets(client, app, conn, people)
    palembang = await register_key(conn, people["district_head"])
    neighbour = await neighbour_signer(conn)
    coordinator = await make_user(conn, "region_coordinator", username="pj_w1", area_code="16")
    await coordinate(conn, coordinator, "16", [DISTRICT, NEIGHBOUR], YEAR)
    monitor = bearer(app, people["province_monitor"])
    ministry = bearer(app, people["ministry_monitor"])
    pj = bearer(app, coordinator)
    await submit(client, app, palembang, values={"ktp_el": (600, 1000)}, as_of=JUNE)
    july = await submit(client, app, palembang, values={"ktp_el": (1300, 1000)}, as_of=JULY)
    assert "over_100" in july["flags"]
    await submit(client, app, neighbour, values={"ktp_el": (500, 1000)}, as_of=JULY)

    regions_q = {"province": "16", "indicator": "ktp_el", **at(JULY)}
    provinces_q = {"indicator": "ktp_el", **at(JULY)}
    region_rank = await get(client, "/v1/rankings/regions", monitor, regions_q)
    pj_rank = await get(client, "/v1/rankings/regions", pj, regions_q)
    province_card = await get(client, "/v1/scorecards/provinces/16", monitor, at(JULY))
    provinces = await get(client, "/v1/rankings/provinces", ministry, provinces_q)
    district_rank = await ktp_ranking(client, monitor, JULY)
    integration = bearer(app, people["integration"])
    polled_by_system = await ktp_ranking(client, integration, JULY)
    assert ranking_row(polled_by_system.json())["indicators"]["ktp_el"]["coverage"] == 130.0

    (region,) = region_rank.json()["rows"]
    brief = region["indicators"]["ktp_el"]
    assert brief["coverage"] == 90.0 and brief["coverage_over_100"] is False
    assert (brief["members"], brief["with_data"]) == (2, 2)
    assert pj_rank.json()["rows"][0]["indicators"]["ktp_el"]["coverage"] == 90.0
    whole = aggregate_row(province_card.json()["aggregate"])
    assert (whole["numerator"], whole["denominator"], whole["coverage"]) == (1800, 2000, 90.0)
    assert ranking_row(provinces.json(), "16")["indicators"]["ktp_el"]["coverage"] == 90.0
    over = ranking_row(district_rank.json())
    assert over["rank"] == 1 and over["score"] == 130.0
    assert over["indicators"]["ktp_el"]["coverage_over_100"] is True
    row = card_row((await get(client, CARD, monitor, at(JULY))).json())
    assert (row["coverage"], row["achievement_raw"], row["achievement_capped"]) == (
        130.0,
        130.0,
        120.0,
    )
    assert row["coverage_over_100"] is True and "over_100" in row["flags"]

    await send_back(client, app, people["province_head"], july["id"])

    region_rank = await get(
        client, "/v1/rankings/regions", monitor, regions_q, region_rank.headers["etag"]
    )
    assert region_rank.json()["rows"][0]["indicators"]["ktp_el"]["coverage"] == 55.0
    pj_rank = await get(client, "/v1/rankings/regions", pj, regions_q, pj_rank.headers["etag"])
    assert pj_rank.json()["rows"][0]["indicators"]["ktp_el"]["coverage"] == 55.0
    province_card = await get(
        client, "/v1/scorecards/provinces/16", monitor, at(JULY), province_card.headers["etag"]
    )
    whole = aggregate_row(province_card.json()["aggregate"])
    assert (whole["numerator"], whole["coverage"]) == (1100, 55.0)
    (region_row,) = province_card.json()["regions"]
    assert region_row["indicators"]["ktp_el"]["coverage"] == 55.0
    districts = {r["code"]: r for r in province_card.json()["districts"]}
    assert districts[DISTRICT]["indicators"]["ktp_el"]["coverage"] == 60.0
    provinces = await get(
        client, "/v1/rankings/provinces", ministry, provinces_q, provinces.headers["etag"]
    )
    assert ranking_row(provinces.json(), "16")["indicators"]["ktp_el"]["coverage"] == 55.0
    nation = aggregate_row(provinces.json()["aggregate"])
    assert (nation["numerator"], nation["denominator"]) == (1100, 2000)
    district_rank = await ktp_ranking(client, monitor, JULY, etag=district_rank.headers["etag"])
    rows = district_rank.json()
    assert (ranking_row(rows)["score"], ranking_row(rows)["rank"]) == (60.0, 1)
    assert ranking_row(rows)["indicators"]["ktp_el"]["coverage_over_100"] is False
    assert ranking_row(rows, NEIGHBOUR)["rank"] == 2
    system = await ktp_ranking(client, integration, JULY, etag=polled_by_system.headers["etag"])
    assert ranking_row(system.json())["indicators"]["ktp_el"]["coverage"] == 60.0


# -- the previous period -------------------------------------------------------------------


async def test_rank_changes_follow_a_late_report_and_a_return_in_the_previous_month(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """DESIGN: each ranking row "carries the change against the previous period" (the end
    of June for a ranking as of 31 July). July: neighbour 850, Palembang 700 (of 1,000).
    June: the neighbour's 800 arrives only after July's ranking was polled, and
    Palembang's 900 is then returned: previous ranks are 2 and 1, then 1 and none."""
    await province_targets(client, app, conn, people)
    palembang = await register_key(conn, people["district_head"])
    neighbour = await neighbour_signer(conn)
    monitor = bearer(app, people["province_monitor"])
    june = await submit(client, app, palembang, values={"ktp_el": (900, 1000)}, as_of=JUNE)
    await submit(client, app, palembang, values={"ktp_el": (700, 1000)}, as_of=JULY)
    await submit(client, app, neighbour, values={"ktp_el": (850, 1000)}, as_of=JULY)
    first = await ktp_ranking(client, monitor, JULY)
    assert ranking_row(first.json(), NEIGHBOUR)["previous_rank"] is None
    assert ranking_row(first.json())["previous_rank"] == 1

    await submit(client, app, neighbour, values={"ktp_el": (800, 1000)}, as_of=JUNE)
    late = await ktp_ranking(client, monitor, JULY, etag=first.headers["etag"])
    rows = late.json()
    assert (
        ranking_row(rows, NEIGHBOUR)["rank"],
        ranking_row(rows, NEIGHBOUR)["previous_rank"],
    ) == (
        1,
        2,
    )
    assert (ranking_row(rows)["rank"], ranking_row(rows)["previous_rank"]) == (2, 1)
    assert ranking_row(rows)["change"] == -1 and ranking_row(rows, NEIGHBOUR)["change"] == 1

    await send_back(client, app, people["province_head"], june["id"])
    back = await ktp_ranking(client, monitor, JULY, etag=late.headers["etag"])
    rows = back.json()
    assert ranking_row(rows, NEIGHBOUR)["previous_rank"] == 1
    assert ranking_row(rows)["previous_rank"] is None and ranking_row(rows)["change"] is None
    row = card_row((await get(client, CARD, monitor, at(JULY))).json())
    assert row["trend"]["previous_coverage"] is None and row["trend"]["change_points"] is None


async def test_correcting_the_older_report_keeps_the_newer_and_moves_the_trend(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """A correction of June's report, sent after July's: July still counts as of July,
    June's corrected figure counts as of June and in July's trend."""
    await province_targets(client, app, conn, people)
    signer = await register_key(conn, people["district_head"])
    monitor = bearer(app, people["province_monitor"])
    june = await submit(client, app, signer, values={"ktp_el": (800, 1000)}, as_of=JUNE)
    july = await submit(client, app, signer, values={"ktp_el": (900, 1000)}, as_of=JULY)
    card = await get(client, CARD, monitor, at(JULY))
    june_card = await get(client, CARD, monitor, at(JUNE))
    assert card_row(card.json())["trend"]["previous_coverage"] == 80.0
    fixed = await submit(
        client,
        app,
        signer,
        values={"ktp_el": (850, 1000)},
        as_of=JUNE,
        supersedes={"id": june["id"], "reason": "Data kecamatan terlambat"},
    )
    row = card_row((await get(client, CARD, monitor, at(JULY), card.headers["etag"])).json())
    assert row["numerator"] == 900 and row["provenance"]["submission_id"] == july["id"]
    assert row["trend"]["previous_coverage"] == 85.0 and row["trend"]["change_points"] == 5.0
    row = card_row((await get(client, CARD, monitor, at(JUNE), june_card.headers["etag"])).json())
    assert row["numerator"] == 850 and row["provenance"]["submission_id"] == fixed["id"]
    ranked = await ktp_ranking(client, monitor, JUNE)
    assert ranking_row(ranked.json())["score"] == 85.0


# -- replicas ------------------------------------------------------------------------------


async def test_a_correction_and_a_division_return_on_one_replica_reach_the_others(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """Issue 6: the ETag "changes with any submission, review or agreement change ... and
    is the same on every replica". Replica B has cached the card (JSON and CSV) and the
    ranking; a correction and a division report's return go through replica A."""
    office = await register_key(conn, people["district_head"])
    division = await register_key(conn, people["division_head"])
    params = at(JULY)
    async with served(settings) as (a, http_a), served(settings) as (b, http_b):
        old = await post(http_a, a, office, values={"ktp_el": (600, 1000)}, as_of=JULY)
        part_june = await post(http_a, a, division, values={"ktp_el": (100, 400)}, as_of=JUNE)
        part_july = await post(http_a, a, division, values={"ktp_el": (300, 400)}, as_of=JULY)
        await feed_of(b).sync()
        reader = bearer(b, people["province_monitor"])
        seen = await get(http_b, CARD, reader, params)
        seen_csv = await get(http_b, CARD, reader, {**params, "format": "csv"})
        ranked = await ktp_ranking(http_b, reader, JULY)
        assert card_row(seen.json())["numerator"] == 600

        fixed = await post(
            http_a,
            a,
            office,
            values={"ktp_el": (650, 1000)},
            as_of=JULY,
            supersedes={"id": old, "reason": "Salah ketik"},
        )
        returned = await review(http_a, a, people["province_head"], part_july, "return", "Cek")
        assert returned.status_code == 201, returned.text
        await feed_of(b).sync()

        polled = await get(http_b, CARD, reader, params, seen.headers["etag"])
        row = card_row(polled.json())
        assert row["numerator"] == 650 and row["provenance"]["submission_id"] == fixed
        part = card_row(polled.json()["divisions"][0])
        assert part["numerator"] == 100 and part["provenance"]["submission_id"] == part_june
        table = await get(
            http_b,
            CARD,
            reader,
            {**params, "format": "csv"},
            seen_csv.headers["etag"],
        )
        numerators = {
            r["division"]: r["numerator"]
            for r in csv.DictReader(io.StringIO(table.text))
            if r["indicator"] == "ktp_el"
        }
        assert numerators == {"": "650", "dafduk": "100"}
        polled_rank = await ktp_ranking(http_b, reader, JULY, etag=ranked.headers["etag"])
        assert ranking_row(polled_rank.json())["indicators"]["ktp_el"]["coverage"] == 65.0
        # Both replicas answer the same ETag for the same data.
        same = await ktp_ranking(http_a, bearer(a, people["province_monitor"]), JULY)
        assert same.headers["etag"] == polled_rank.headers["etag"]


async def test_reports_of_many_dates_sent_at_once_leave_the_newest_date_counting(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """Offices resend their outbox all at once (the group-commit path writes them in
    batches): whatever order the batch holds them in, the card and the ranking show the
    report of the newest ``as_of``; after it is returned, the next newest."""
    import asyncio

    palembang = await register_key(conn, people["district_head"])
    neighbour = await neighbour_signer(conn)
    # Day n of the year reports n of 1,000 (so the figure names its date).
    days = [date(YEAR, 1, 1) + timedelta(days=n) for n in range(40, 220, 9)]
    async with served(settings) as (app, http):
        jose = {"Content-Type": JOSE}

        async def send(signer: Signer, day: date) -> httpx.Response:
            values = {"ktp_el": (day.timetuple().tm_yday, 1000)}
            return await http.post(
                "/v1/submissions",
                content=signer.sign(values=values, as_of=day).encode(),
                headers={**bearer(app, signer.person), **jose},
            )

        order = sorted(days, key=lambda d: (d.day * 7919) % 31)  # not in date order
        answers = await asyncio.gather(*(send(s, d) for d in order for s in (palembang, neighbour)))
        assert all(a.status_code == 201 for a in answers), [a.text for a in answers]
        by_day = {(a.json()["district"], a.json()["as_of"]): a.json()["id"] for a in answers}
        newest, before = max(days), sorted(days)[-2]
        reader = bearer(app, people["province_monitor"])
        params = {"year": YEAR, "as_of": date(YEAR, 10, 31).isoformat()}
        card = await get(http, CARD, reader, params)
        row = card_row(card.json())
        assert row["numerator"] == newest.timetuple().tm_yday
        assert row["provenance"]["submission_id"] == by_day[(DISTRICT, newest.isoformat())]
        ranked = await ktp_ranking(http, reader, date(YEAR, 10, 31))
        coverage = newest.timetuple().tm_yday / 10
        for code in (DISTRICT, NEIGHBOUR):
            assert ranking_row(ranked.json(), code)["indicators"]["ktp_el"]["coverage"] == (
                coverage
            )
        returned = await review(
            http,
            app,
            people["province_head"],
            by_day[(DISTRICT, newest.isoformat())],
            "return",
            "x",
        )
        assert returned.status_code == 201, returned.text
        row = card_row((await get(http, CARD, reader, params, card.headers["etag"])).json())
        assert row["numerator"] == before.timetuple().tm_yday
        polled = await ktp_ranking(http, reader, date(YEAR, 10, 31), etag=ranked.headers["etag"])
        assert ranking_row(polled.json())["indicators"]["ktp_el"]["coverage"] == (
            before.timetuple().tm_yday / 10
        )
        assert ranking_row(polled.json(), NEIGHBOUR)["indicators"]["ktp_el"]["coverage"] == (
            coverage
        )


# -- projection and aggregates on the accepted basis ---------------------------------------


async def test_the_projection_counts_only_the_reports_that_count(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """Issue 6: the projection's daily rate comes from the district's recent
    submissions; a returned or superseded one is not among them. 300 (31 May), 600
    (30 June, corrected to 450), 900 (31 July, returned), of 1,000, target 100: as of
    31 July the rate is (450 - 300) / 30 = 5 a day, and (1,000 - 450) / 153 are needed."""
    await province_targets(client, app, conn, people)
    signer = await register_key(conn, people["district_head"])
    monitor = bearer(app, people["province_monitor"])
    await submit(client, app, signer, values={"ktp_el": (300, 1000)}, as_of=date(YEAR, 5, 31))
    june = await submit(client, app, signer, values={"ktp_el": (600, 1000)}, as_of=JUNE)
    july = await submit(client, app, signer, values={"ktp_el": (900, 1000)}, as_of=JULY)
    card = await get(client, CARD, monitor, at(JULY))
    before = card_row(card.json())["projection"]["achieved_rate"]
    assert abs(before - 600 / 61) < 1e-9  # (900 - 300) / 61 days
    await submit(
        client,
        app,
        signer,
        values={"ktp_el": (450, 1000)},
        as_of=JUNE,
        supersedes={"id": june["id"], "reason": "Dobel hitung"},
    )
    await send_back(client, app, people["province_head"], july["id"])

    row = card_row((await get(client, CARD, monitor, at(JULY), card.headers["etag"])).json())
    assert row["numerator"] == 450
    projection = row["projection"]
    assert projection["days_left"] == 153
    assert projection["achieved_rate"] == 5.0
    assert abs(projection["needed_rate"] - 550 / 153) < 1e-9


async def test_aggregates_on_the_accepted_basis_count_only_accepted_reports(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """Issue 6: ``basis=accepted`` for region and province documents too. Palembang's
    900 of 1,000 is accepted, the neighbour's 500 of 1,000 is not: on the accepted basis
    the region and the province are 900 / 1,000 with one member without data; on
    ``latest``, 1,400 / 2,000. Accepting the neighbour's moves the accepted documents."""
    await province_targets(client, app, conn, people)
    palembang = await register_key(conn, people["district_head"])
    neighbour = await neighbour_signer(conn)
    coordinator = await make_user(conn, "region_coordinator", username="pj_w1", area_code="16")
    await coordinate(conn, coordinator, "16", [DISTRICT, NEIGHBOUR], YEAR)
    monitor = bearer(app, people["province_monitor"])
    ministry = bearer(app, people["ministry_monitor"])
    mine = await submit(client, app, palembang, values={"ktp_el": (900, 1000)}, as_of=JULY)
    theirs = await submit(client, app, neighbour, values={"ktp_el": (500, 1000)}, as_of=JULY)
    await accept(client, app, people["province_head"], mine["id"])

    accepted = {**at(JULY), "basis": "accepted"}
    regions_q = {"province": "16", "indicator": "ktp_el", **accepted}
    region = await get(client, "/v1/rankings/regions", monitor, regions_q)
    brief = region.json()["rows"][0]["indicators"]["ktp_el"]
    assert (brief["coverage"], brief["with_data"], brief["no_data"]) == (90.0, 1, 1)
    card = await get(client, "/v1/scorecards/provinces/16", monitor, accepted)
    whole = aggregate_row(card.json()["aggregate"])
    assert (whole["numerator"], whole["denominator"], whole["with_data"]) == (900, 1000, 1)
    provinces_q = {"indicator": "ktp_el", **accepted}
    provinces = await get(client, "/v1/rankings/provinces", ministry, provinces_q)
    assert ranking_row(provinces.json(), "16")["indicators"]["ktp_el"]["coverage"] == 90.0
    latest = await get(client, "/v1/scorecards/provinces/16", monitor, at(JULY))
    whole = aggregate_row(latest.json()["aggregate"])
    assert (whole["numerator"], whole["denominator"]) == (1400, 2000)

    await accept(client, app, people["province_monitor"], theirs["id"])
    region = await get(client, "/v1/rankings/regions", monitor, regions_q, region.headers["etag"])
    assert region.json()["rows"][0]["indicators"]["ktp_el"]["coverage"] == 70.0
    card = await get(client, "/v1/scorecards/provinces/16", monitor, accepted, card.headers["etag"])
    assert aggregate_row(card.json()["aggregate"])["numerator"] == 1400
    provinces = await get(
        client, "/v1/rankings/provinces", ministry, provinces_q, provinces.headers["etag"]
    )
    assert ranking_row(provinces.json(), "16")["indicators"]["ktp_el"]["coverage"] == 70.0
