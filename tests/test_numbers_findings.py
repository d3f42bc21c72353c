"""Scorecard numbers: findings of a review, each failed before its fix."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from scorecards import AggregateMember, Indicator, Measurement, achievement_of_counts, aggregate
from tests.agreement_helpers import national_agreement
from tests.people import Person, bearer, make_user
from tests.submitting import register_key, submit
from tests.test_catalogue import indicator

YEAR = 2021


async def daily_card(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Makassar's "about 500 recordings a day, we need 1,000 a day": a per_day target of
    1,000, reported as 15,000 recordings over 30 days (stated: 500 a day). Returns the
    stored report and Palembang's scorecard row for it."""
    admin = bearer(app, people["admin"])
    assert (await client.post("/v1/indicators", json=indicator(), headers=admin)).status_code == 201
    await national_agreement(
        client,
        app,
        conn,
        people,
        year=YEAR,
        target_list=[{"indicator": "rekam_harian", "annual": 1000}],
    )
    signer = await register_key(conn, people["district_head"])
    await submit(client, app, signer, values={"rekam_harian": (3_000, 30)}, as_of=date(YEAR, 3, 1))
    made = await submit(
        client,
        app,
        signer,
        values={"rekam_harian": (15_000, 30)},
        stated={"rekam_harian": 500.0},
        as_of=date(YEAR, 5, 15),
    )
    card = await client.get(
        "/v1/scorecards/districts/16.71",
        params={"year": YEAR, "as_of": "2021-05-15"},
        headers=bearer(app, people["province_monitor"]),
    )
    assert card.status_code == 200, card.text
    row = {r["indicator"]: r for r in card.json()["indicators"]}["rekam_harian"]
    return made, row


async def test_a_per_day_indicator_is_scored_in_its_own_unit_not_as_a_percent(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """Makassar's "about 500 recordings a day, we need 1,000 a day" (DESIGN, seeds): a
    per_day indicator with a target of 1,000 a day, reported as 15,000 recordings over 30
    days, realises 500 a day: achievement 50, not 5,000 (coverage x 100 is for percent
    indicators only)."""
    _, daily = await daily_card(client, app, conn, people)
    assert daily["target"] == 1000.0
    assert daily["achievement_raw"] == 50.0, daily
    assert daily["coverage"] == 500.0, daily


async def _palembang_reports_against(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    target: float,
    counts: tuple[int, int],
    as_of: date,
) -> dict[str, Any]:
    """South Sumatra's agreement sets only a KTP-el target; Kota Palembang (on its
    province's targets) reports ``counts`` once; its scorecard as of that day."""
    await national_agreement(
        client,
        app,
        conn,
        people,
        year=YEAR,
        target_list=[{"indicator": "ktp_el", "annual": target}],
    )
    signer = await register_key(conn, people["district_head"])
    await submit(client, app, signer, values={"ktp_el": counts}, as_of=as_of)
    response = await client.get(
        "/v1/scorecards/districts/16.71",
        params={"year": YEAR, "as_of": as_of.isoformat()},
        headers=bearer(app, people["province_monitor"]),
    )
    assert response.status_code == 200, response.text
    card: dict[str, Any] = response.json()
    return card


async def test_a_target_met_exactly_is_reached_in_the_projection_too(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """Target 90.12 %, 9,012 of 10,000 recorded: exactly the target. The scorecard says
    achievement 100; the projection must say reached (needed rate 0, on track, reached
    on the as-of date), not that 2e-15 a day is still needed with status unknown: the
    target is read as the binary float nearest 90.12 (a little above it), not as the
    decimal it was written as (as ``aggregate.as_written`` does)."""
    as_of = date(YEAR, 5, 15)
    card = await _palembang_reports_against(
        client, app, conn, people, 90.12, (9_012, 10_000), as_of
    )
    ktp = {r["indicator"]: r for r in card["indicators"]}["ktp_el"]
    assert ktp["achievement_raw"] == 100.0
    projection = ktp["projection"]
    assert projection["needed_rate"] == 0.0, projection
    assert projection["status"] == "on_track", projection
    assert projection["projected_date"] == as_of.isoformat(), projection


async def test_an_achievement_of_exactly_90_is_green_and_level_3(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """Target 99 %, 891 of 1,000 recorded: coverage 89.1 %, achievement 89.1 / 99 x 100 =
    90 exactly, so the traffic light (green >= 90) is green and the Dukcapil level (3 >=
    90) is 3. The float path (0.9 x 100 after two roundings) gives 89.99999999999999, and
    the band falls to yellow / level 2: a band boundary must not wobble with rounding
    (checks.py compares exactly for the same reason)."""
    card = await _palembang_reports_against(
        client, app, conn, people, 99, (891, 1_000), date(YEAR, 5, 15)
    )
    ktp = {r["indicator"]: r for r in card["indicators"]}["ktp_el"]
    assert ktp["band"] == "green", ktp
    assert card["composite"]["level"] == "level_3", card["composite"]
    assert card["composite"]["band"] == "green", card["composite"]


def test_counts_score_exactly_in_their_unit() -> None:
    """The pure functions behind the three findings above: an achievement from counts
    is one integer division (exact at a threshold, either polarity), a daily rate is
    not multiplied by 100, in a district's row or in an aggregate."""
    percent = Indicator(code="ktp_el")
    lower = Indicator(code="backlog", polarity="lower")
    daily = Indicator(code="rekam_harian", unit="per_day")
    exact = achievement_of_counts(percent, 891, 1_000, 99.0)
    assert exact is not None and (exact.raw, exact.over_100) == (90.0, False)
    met = achievement_of_counts(lower, 10, 100, 10.0)
    assert met is not None and (met.raw, met.over_100) == (100.0, False)
    better = achievement_of_counts(lower, 5, 100, 10.0)
    assert better is not None and (better.raw, better.capped, better.over_100) == (150, 120, True)
    rate = achievement_of_counts(daily, 15_000, 30, 1_000.0)
    assert rate is not None and rate.raw == 50.0
    assert achievement_of_counts(percent, 1, 0, 99.0) is None
    members = [
        AggregateMember(code="a", measurement=Measurement(numerator=15_000, denominator=30)),
        AggregateMember(code="b", measurement=Measurement(numerator=9_000, denominator=30)),
    ]
    summed = aggregate(members, "per_day")
    assert (summed.coverage, summed.coverage_over_100) == (400.0, False)
    assert aggregate(members).coverage == 40_000.0  # read as a percent, as before


async def _two_districts_report(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    reports: dict[date, dict[str, dict[str, tuple[int, int]]]],
) -> None:
    """South Sumatra's agreements for 2021 and 2022 (KTP-el 100, KIA 30); Kota Palembang
    (16.71) and Kota Pagar Alam (16.72) report ``reports`` (date → district → values)."""
    for year in (2021, 2022):
        await national_agreement(
            client,
            app,
            conn,
            people,
            year=year,
            target_list=[
                {"indicator": "ktp_el", "annual": 100},
                {"indicator": "kia", "annual": 30},
            ],
        )
    heads = {
        "16.71": people["district_head"],
        "16.72": await make_user(conn, "district_head", username="kadis_72", area_code="16.72"),
    }
    signers = {code: await register_key(conn, person) for code, person in heads.items()}
    for as_of, by_district in reports.items():
        for code, values in by_district.items():
            await submit(client, app, signers[code], values=values, as_of=as_of)


async def test_scorecard_csv_carries_the_composite_and_the_province_aggregate(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """DESIGN: scorecard endpoints also answer text/csv, for systems that want every
    number in their own (README: the same rows). The JSON province card leads with the
    province's own population-weighted aggregate (KTP-el 170/200 = 85 %, composite
    67.5) and the district card with its composite (61.67); neither number is anywhere in
    the CSV, which holds only the district and region rows (province card) and the
    indicator rows (district card)."""
    await _two_districts_report(
        client,
        app,
        conn,
        people,
        {
            date(2021, 12, 31): {
                "16.71": {"ktp_el": (90, 100), "kia": (10, 100)},
                "16.72": {"ktp_el": (80, 100), "kia": (20, 100)},
            }
        },
    )
    head = bearer(app, people["province_monitor"])
    params = {"as_of": "2021-12-31"}
    province = await client.get("/v1/scorecards/provinces/16", params=params, headers=head)
    whole = province.json()["aggregate"]
    assert whole["composite"]["score"] == 67.5
    as_csv = await client.get(
        "/v1/scorecards/provinces/16", params={**params, "format": "csv"}, headers=head
    )
    table = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert any(row.get("code") == "16" for row in table), "no province aggregate row in CSV"
    district = await client.get("/v1/scorecards/districts/16.71", params=params, headers=head)
    score = district.json()["composite"]["score"]
    assert score is not None
    district_csv = await client.get(
        "/v1/scorecards/districts/16.71", params={**params, "format": "csv"}, headers=head
    )
    assert repr(score) in district_csv.text, "district composite missing from CSV"
    rows = {
        row["indicator"]: row
        for row in csv.DictReader(io.StringIO(district_csv.text))
        if not row["division"]  # the district office's own card, not a division's
    }
    assert float(rows["composite"]["achievement_capped"]) == score
    assert rows["composite"]["level"] == district.json()["composite"]["level"]
    lead = table[0]
    assert (lead["kind"], lead["code"], float(lead["score"])) == ("province", "16", 67.5)
    assert float(lead["indicators.ktp_el.coverage"]) == 85.0


async def test_a_daily_rate_raises_no_over_100_flag(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """Over 100 % is a percent's flag: 15,000 recordings in 30 days is 500 a day, which
    every per_day report would have been flagged for. A stated figure is compared in the
    indicator's unit (500 stated for 500 a day is no mismatch; 450 is one)."""
    added = await client.post(
        "/v1/indicators", json=indicator(), headers=bearer(app, people["admin"])
    )
    assert added.status_code == 201, added.text
    signer = await register_key(conn, people["district_head"])
    made = await submit(
        client, app, signer, values={"rekam_harian": (15_000, 30)}, as_of=date(YEAR, 1, 31)
    )
    assert made["flags"] == ["late"], made["flags"]  # 2021: reported years late
    stated = await submit(
        client,
        app,
        signer,
        values={"rekam_harian": (15_000, 30)},
        stated={"rekam_harian": 450.0},
        as_of=date(YEAR, 2, 1),
    )
    assert stated["flags"] == ["stated_mismatch", "late"], stated["flags"]
    ktp = await submit(client, app, signer, values={"ktp_el": (101, 100)}, as_of=date(YEAR, 2, 2))
    assert ktp["flags"] == ["over_100", "late"]  # a percent still is
