"""Findings of a review of how signed submissions (issue 5) reach scorecards and rankings:
back-dated reports, corrections, returns, stated figures, year boundaries, division
reports, and what workers cache and tag with ETags."""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg
import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.settings import Settings
from tests.agreement_helpers import national_agreement
from tests.people import Person, bearer
from tests.submitting import JOSE, Signer, register_key, review, served, submit
from tests.test_change_feed import feed_of

YEAR = 2026
DISTRICT = "16.71"
CARD = f"/v1/scorecards/districts/{DISTRICT}"
RANKING = "/v1/rankings/districts"


def card_row(card: dict[str, Any], indicator: str) -> dict[str, Any]:
    return next(r for r in card["indicators"] if r["indicator"] == indicator)


def ranking_row(document: dict[str, Any], code: str = DISTRICT) -> dict[str, Any]:
    return next(r for r in document["rows"] if r["code"] == code)


async def province_targets(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    year: int = YEAR,
) -> None:
    """South Sumatra's agreement with the ministry: KTP-el 100, which every district of
    the province without its own agreement is scored against."""
    await national_agreement(
        client,
        app,
        conn,
        people,
        year=year,
        target_list=[{"indicator": "ktp_el", "annual": 100}],
    )


async def card(
    http: AsyncTestClient[Litestar] | httpx.AsyncClient,
    headers: dict[str, str],
    **params: Any,
) -> httpx.Response:
    response = await http.get(CARD, params=params, headers=headers)
    assert response.status_code in (200, 304), response.text
    return response


async def ranking(
    http: AsyncTestClient[Litestar] | httpx.AsyncClient,
    headers: dict[str, str],
    **params: Any,
) -> httpx.Response:
    response = await http.get(
        RANKING, params={"province": "16", "indicator": "ktp_el", **params}, headers=headers
    )
    assert response.status_code in (200, 304), response.text
    return response


async def post(http: httpx.AsyncClient, app: Litestar, signer: Signer, **kwargs: Any) -> str:
    response = await http.post(
        "/v1/submissions",
        content=signer.sign(**kwargs).encode(),
        headers={**bearer(app, signer.person), "Content-Type": JOSE},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


# -- what counts ---------------------------------------------------------------------------


async def test_returning_the_only_report_leaves_the_district_without_data(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """Issue 5: "A returned submission stops counting". README: "rows without data come
    last as `no_data`, never as zero"; the ETag moves with a review."""
    await province_targets(client, app, conn, people)
    signer = await register_key(conn, people["district_head"])
    reader = bearer(app, people["province_monitor"])
    day = date(YEAR, 10, 31)
    params = {"year": YEAR, "as_of": day.isoformat()}
    only = await submit(client, app, signer, values={"ktp_el": (900, 1000)}, as_of=day)
    ranked = await ranking(client, reader, **params)
    assert ranking_row(ranked.json())["rank"] == 1

    returned = await review(client, app, people["province_head"], only["id"], "return", "Cek")
    assert returned.status_code == 201, returned.text

    polled = await client.get(
        RANKING,
        params={"province": "16", "indicator": "ktp_el", **params},
        headers={**reader, "If-None-Match": ranked.headers["etag"]},
    )
    assert polled.status_code == 200
    row = ranking_row(polled.json())
    assert row["status"] == "no_data" and row["rank"] is None and row["score"] is None
    assert row["indicators"]["ktp_el"]["with_data"] == 0
    assert polled.json()["counts"]["ranked"] == 0
    shown = card_row((await card(client, reader, **params)).json(), "ktp_el")
    assert shown["status"] == "no_data" and shown["numerator"] is None
    assert shown["provenance"] is None


# -- years ---------------------------------------------------------------------------------


async def test_a_past_years_card_keeps_its_figures_after_a_report_this_year(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """README: "Data come from 1 January of the year to `as_of`"; a past year's card is
    the year's last report, whatever came since, on every worker (kept values per worker
    must not serve this year's report as last year's figures)."""
    signer = await register_key(conn, people["district_head"])
    async with served(settings) as (a, http_a), served(settings) as (b, http_b):
        reader_a = bearer(a, people["province_monitor"])
        reader_b = bearer(b, people["province_monitor"])
        await post(http_a, a, signer, values={"ktp_el": (700, 1000)}, as_of=date(YEAR - 1, 11, 30))
        for http, reader in ((http_a, reader_a), (http_b, reader_b)):
            await feed_of(b).sync()
            past = (await ranking(http, reader, year=YEAR - 1)).json()
            assert ranking_row(past)["indicators"]["ktp_el"]["coverage"] == 70.0
        await post(http_a, a, signer, values={"ktp_el": (800, 1000)}, as_of=date(YEAR, 2, 28))
        await feed_of(b).sync()
        for http, reader in ((http_a, reader_a), (http_b, reader_b)):
            past = (await ranking(http, reader, year=YEAR - 1)).json()
            assert ranking_row(past)["indicators"]["ktp_el"]["coverage"] == 70.0
            row = card_row((await card(http, reader, year=YEAR - 1)).json(), "ktp_el")
            assert row["numerator"] == 700
            now = (await ranking(http, reader, year=YEAR, as_of=f"{YEAR}-03-31")).json()
            assert ranking_row(now)["indicators"]["ktp_el"]["coverage"] == 80.0


# -- divisions -----------------------------------------------------------------------------


async def test_a_division_report_and_the_district_report_of_one_date_stay_apart(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """README: a division head's view is "their division's card alone (the district card
    without the district office's own figures)": the district's figures are the
    district office's own reports, each division's on its own card. A division's report
    of the same date, sent after the district's, must not take its place in the
    district's figures or its rank."""
    head = await register_key(conn, people["district_head"])
    division = await register_key(conn, people["division_head"])
    reader = bearer(app, people["province_monitor"])
    day = date(YEAR, 6, 30)
    params = {"year": YEAR, "as_of": day.isoformat()}
    office = await submit(client, app, head, values={"ktp_el": (900, 1000)}, as_of=day)
    part = await submit(client, app, division, values={"ktp_el": (100, 400)}, as_of=day)
    shown = (await card(client, reader, **params)).json()
    row = card_row(shown, "ktp_el")
    assert row["numerator"] == 900 and row["provenance"]["submission_id"] == office["id"]
    (division_card,) = shown["divisions"]
    division_row = card_row(division_card, "ktp_el")
    assert division_row["numerator"] == 100
    assert division_row["provenance"]["submission_id"] == part["id"]
    ranked = ranking_row((await ranking(client, reader, **params)).json())
    assert ranked["indicators"]["ktp_el"]["coverage"] == 90.0


# -- what workers keep ---------------------------------------------------------------------


async def test_a_review_on_one_worker_reaches_the_others_rankings(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """README: the ETag is "bumped in the same transaction as any ... review"; "the worker
    that made a change applies it at once, other workers and replicas within
    milliseconds"; "a returned report stops counting"."""
    signer = await register_key(conn, people["district_head"])
    day = date(YEAR, 7, 31)
    params = {"year": YEAR, "as_of": day.isoformat()}
    async with served(settings) as (a, http_a), served(settings) as (b, http_b):
        earlier = await post(
            http_a, a, signer, values={"ktp_el": (600, 1000)}, as_of=date(YEAR, 6, 30)
        )
        later = await post(http_a, a, signer, values={"ktp_el": (900, 1000)}, as_of=day)
        await feed_of(b).sync()
        reader = bearer(b, people["province_monitor"])
        seen = await ranking(http_b, reader, **params)
        assert ranking_row(seen.json())["indicators"]["ktp_el"]["coverage"] == 90.0
        seen_card = await card(http_b, reader, **params)

        returned = await review(http_a, a, people["province_head"], later, "return", "Cek")
        assert returned.status_code == 201, returned.text
        await feed_of(b).sync()

        polled = await http_b.get(
            RANKING,
            params={"province": "16", "indicator": "ktp_el", **params},
            headers={**reader, "If-None-Match": seen.headers["etag"]},
        )
        assert polled.status_code == 200
        assert ranking_row(polled.json())["indicators"]["ktp_el"]["coverage"] == 60.0
        row = card_row(
            (
                await http_b.get(
                    CARD,
                    params=params,
                    headers={**reader, "If-None-Match": seen_card.headers["etag"]},
                )
            ).json(),
            "ktp_el",
        )
        assert row["numerator"] == 600 and row["provenance"]["submission_id"] == earlier
