"""Scorecards and rankings: findings of a review, each once answered stale, leaked or wrong."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.agreement_helpers import (
    activate,
    national_agreement,
    palembang_draft,
    register_signer,
    targets,
)
from tests.people import Person, bearer, coordinate, make_user
from tests.submitting import register_key, submit


async def test_new_division_changes_district_scorecard_etag(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    """The district scorecard lists a card per division of the district; adding a division
    through the API must move the card's ETag (else a poller gets 304 / a cached body
    without the new division)."""
    head = bearer(app, people["district_head"])
    url = "/v1/scorecards/districts/16.71"
    params = {"as_of": "2021-05-15"}
    first = await client.get(url, params=params, headers=head)
    assert first.status_code == 200, first.text
    before = {d["code"] for d in first.json()["divisions"]}
    added = await client.post(
        "/v1/districts/16.71/divisions",
        json={"code": "pias", "name": "Bidang PIAK"},
        headers=head,
    )
    assert added.status_code in (200, 201), added.text
    again = await client.get(
        url, params=params, headers={**head, "If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 200, "304 although a division was added"
    fresh = await client.get(url, params=params, headers=head)
    assert {d["code"] for d in fresh.json()["divisions"]} == before | {"pias"}


async def test_division_head_card_does_not_show_district_reports(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """A division head sees their division's card (README "Views"; submission_visible
    hides the district office's own reports from them), yet the district scorecard hands
    them the district-level rows: counts, coverage and the id of a report they get 404
    for."""
    signer = await register_key(conn, people["district_head"])
    report = await submit(
        client, app, signer, values={"ktp_el": (900, 1000)}, as_of=date(2021, 5, 15)
    )
    division_head = bearer(app, people["division_head"])
    hidden = await client.get(f"/v1/submissions/{report['id']}", headers=division_head)
    assert hidden.status_code == 404  # the report itself is outside their scope
    card = await client.get(
        "/v1/scorecards/districts/16.71", params={"as_of": "2021-05-15"}, headers=division_head
    )
    assert card.status_code == 200, card.text
    assert report["id"] not in card.text, "the district office's report leaks to a division head"
    assert all(row["numerator"] is None for row in card.json()["indicators"])


async def test_accept_refusing_csv_is_not_answered_with_csv(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    """``text/csv;q=0`` means "not CSV" (RFC 9110 12.4.2); the substring test in
    wants_csv answers CSV to it (and JSON to a client that prefers CSV over JSON)."""
    head = bearer(app, people["province_head"])
    refused = await client.get(
        "/v1/rankings/districts", headers={**head, "Accept": "text/csv;q=0, application/json"}
    )
    assert refused.status_code == 200
    assert refused.headers["content-type"].startswith("application/json")
    preferred = await client.get(
        "/v1/rankings/districts", headers={**head, "Accept": "text/csv, application/json;q=0.1"}
    )
    assert preferred.headers["content-type"].startswith("text/csv")


async def test_unknown_indicator_is_400_even_with_if_none_match_star(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    """The indicator is only checked while rendering, after the conditional check: a
    poller sending ``If-None-Match: *`` gets 304 for a ranking that does not exist."""
    head = bearer(app, people["province_head"])
    response = await client.get(
        "/v1/rankings/districts",
        params={"indicator": "no_such_indicator"},
        headers={**head, "If-None-Match": "*"},
    )
    assert response.status_code == 400, response.status_code
    # A ranking that exists is still current for "*", cached or not.
    for _ in range(2):
        current = await client.get(
            "/v1/rankings/districts",
            params={"indicator": "kia"},
            headers={**head, "If-None-Match": "*"},
        )
        assert current.status_code == 304, current.status_code


async def test_projection_counts_the_days_left_from_the_as_of_date(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """A scorecard as of 30 November has 31 days left to reach the annual target, whatever
    the date of the district's last report. Palembang (province target KTP-el 100)
    reported 900/1000 on 1 January and 930/1000 on 31 January (1 a day) and nothing
    since: 70 to go in 31 days needs 2.26 a day, so it is off track. The projection
    counts the days from the last report (334 days, 0.21 a day) and says on_track."""
    await national_agreement(client, app, conn, people, year=2021, target_list=targets(ktp_el=100))
    signer = await register_key(conn, people["district_head"])
    await submit(client, app, signer, values={"ktp_el": (900, 1000)}, as_of=date(2021, 1, 1))
    await submit(client, app, signer, values={"ktp_el": (930, 1000)}, as_of=date(2021, 1, 31))
    card = await client.get(
        "/v1/scorecards/districts/16.71",
        params={"as_of": "2021-11-30"},
        headers=bearer(app, people["province_head"]),
    )
    assert card.status_code == 200, card.text
    ktp: dict[str, Any] = next(r for r in card.json()["indicators"] if r["indicator"] == "ktp_el")
    projection = ktp["projection"]
    assert projection["days_left"] == 31, projection
    assert abs(projection["needed_rate"] - 70 / 31) < 1e-9, projection
    assert projection["status"] == "off_track", projection


async def test_composite_ranking_says_no_data_for_a_district_with_targets_but_no_data_on_them(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """Palembang has a target (the province's KIA 30) and reported only KTP-el, which has
    no target: nothing targeted has data, so it is ``no_data``; the composite ranking
    calls it ``no_target`` ("no agreement") because *some* indicator has data."""
    await national_agreement(client, app, conn, people, year=2021, target_list=targets(kia=30))
    signer = await register_key(conn, people["district_head"])
    await submit(client, app, signer, values={"ktp_el": (90, 100)}, as_of=date(2021, 5, 31))
    head = bearer(app, people["province_monitor"])
    params = {"province": "16", "as_of": "2021-06-30"}
    response = await client.get("/v1/rankings/districts", params=params, headers=head)
    row = next(r for r in response.json()["rows"] if r["code"] == "16.71")
    card = await client.get(
        "/v1/scorecards/districts/16.71", params={"as_of": "2021-06-30"}, headers=head
    )
    kia = next(r for r in card.json()["indicators"] if r["indicator"] == "kia")
    assert kia["status"] == "no_data" and kia["target"] == 30.0  # the card: a target, no data
    assert row["status"] == "no_data", row


async def test_csv_writes_booleans_as_the_json_does(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    """CSV cells of booleans read True/False (Python's str) where the JSON has true/false."""
    head = bearer(app, people["province_head"])
    url, params = "/v1/scorecards/districts/16.71", {"as_of": "2021-05-15"}
    as_json = (await client.get(url, params=params, headers=head)).json()
    as_csv = await client.get(url, params={**params, "format": "csv"}, headers=head)
    assert as_csv.status_code == 200, as_csv.text
    flags = {row["indicator"]: row["coverage_over_100"] for row in as_json["indicators"]}
    assert flags and set(flags.values()) == {False}
    table = list(csv.DictReader(io.StringIO(as_csv.text)))
    cells = {row["indicator"]: row["coverage_over_100"] for row in table}
    assert cells.pop("composite") == ""  # the card's composite row: no such cell
    assert cells == dict.fromkeys(flags, "false")


async def test_region_and_province_rows_with_targets_but_no_data_on_them_are_no_data(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """As for a district: members with a target (the province's KIA 30) that reported only
    on an indicator without one give their region and province no data to be scored on,
    not 'no target'."""
    await national_agreement(client, app, conn, people, year=2021, target_list=targets(kia=30))
    await coordinate(conn, people["region_coordinator"], "16", ["16.71"], 2021)
    signer = await register_key(conn, people["district_head"])
    await submit(client, app, signer, values={"ktp_el": (90, 100)}, as_of=date(2021, 5, 31))
    ministry = bearer(app, people["ministry_monitor"])
    params = {"as_of": "2021-06-30"}
    regions = await client.get(
        "/v1/rankings/regions", params={**params, "province": "16"}, headers=ministry
    )
    assert regions.status_code == 200, regions.text
    assert [r["status"] for r in regions.json()["rows"]] == ["no_data"]
    provinces = await client.get("/v1/rankings/provinces", params=params, headers=ministry)
    assert provinces.status_code == 200, provinces.text
    south_sumatra = next(r for r in provinces.json()["rows"] if r["code"] == "16")
    assert south_sumatra["status"] == "no_data", south_sumatra


async def test_accept_is_weighed_as_rfc_9110_says(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    """A tie is JSON; a type refused by name stays refused under a wildcard; a weight
    that is not a number from 0 to 1 is no preference (it raised OverflowError, a 500);
    media types ignore case."""
    head = bearer(app, people["province_head"])
    cases = {
        "text/csv, application/json": "application/json",
        "text/csv;q=0, text/*": "application/json",
        "text/csv;q=inf": "application/json",
        "text/csv;q=1e999, application/json": "application/json",
        "text/csv;q=abc": "application/json",
        "Text/CSV": "text/csv",
        "text/*": "text/csv",
        "application/json;q=0.5, text/csv;q=0.6": "text/csv",
        "*/*": "application/json",
    }
    for accept, expected in cases.items():
        response = await client.get("/v1/rankings/districts", headers={**head, "Accept": accept})
        assert response.status_code == 200, (accept, response.text)
        assert response.headers["content-type"].startswith(expected), accept


async def test_an_area_with_data_only_where_its_province_sets_no_weight_has_no_data(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """The province weighs only KIA; Palembang's own agreement targets KIA and KTP-el, and
    it reported only KTP-el. Its region's composite (KIA alone) has nothing to score, for want
    of data, yet the region was ranked 'no_target': the data on KTP-el, an indicator the
    composite leaves out, counted."""
    province = await national_agreement(
        client,
        app,
        conn,
        people,
        year=2021,
        target_list=[{"indicator": "kia", "annual": 30, "weight": 1}],
    )
    palembang = await register_signer(conn, people["district_head"])
    own = await palembang_draft(client, app, people, target_list=targets(kia=30, ktp_el=90))
    await activate(client, app, own, second=palembang, first=province)
    await coordinate(conn, people["region_coordinator"], "16", ["16.71"], 2021)
    reporter = await register_key(conn, people["district_head"])
    await submit(client, app, reporter, values={"ktp_el": (90, 100)}, as_of=date(2021, 5, 31))
    head = bearer(app, people["province_head"])
    params = {"as_of": "2021-06-30", "province": "16"}
    regions = await client.get("/v1/rankings/regions", params=params, headers=head)
    assert regions.status_code == 200, regions.text
    (row,) = regions.json()["rows"]
    assert (row["score"], row["status"]) == (None, "no_data"), row


async def test_region_name_with_carriage_return_keeps_the_ranking_csv_intact(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """A region name may hold a bare CR (VISIBLE_TEXT allows it); the CSV writer uses
    lineterminator "\\n" and QUOTE_MINIMAL, so it leaves a field with "\\r" unquoted and
    every CSV reader splits the record there: CSV no longer matches the JSON."""
    head = bearer(app, people["province_head"])
    pj = await make_user(conn, "region_coordinator", username="pj_cr", area_code="16")
    put = await client.put(
        "/v1/provinces/16/regions/2021",
        json={
            "regions": [
                {"name": "Wilayah\rBarat", "coordinator_id": str(pj.id), "districts": ["16.71"]},
                {"name": "Wilayah Timur", "districts": ["16.72"]},
            ]
        },
        headers=head,
    )
    assert put.status_code == 200, put.text
    signer = await register_key(conn, people["district_head"])
    await submit(client, app, signer, values={"ktp_el": (900, 1_000)}, as_of=date(2021, 5, 15))
    params = {"year": 2021, "as_of": "2021-05-15", "province": "16"}
    as_json = (await client.get("/v1/rankings/regions", params=params, headers=head)).json()
    as_csv = await client.get(
        "/v1/rankings/regions", params={**params, "format": "csv"}, headers=head
    )
    assert as_csv.status_code == 200
    table = list(csv.DictReader(io.StringIO(as_csv.text, newline="")))
    assert len(table) == len(as_json["rows"]) == 2
    assert sorted(r["name"] for r in table) == sorted(r["name"] for r in as_json["rows"])


async def test_accept_wildcard_weighed_above_json_answers_csv(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    """README: "Accept: text/csv weighed above JSON (q-values; JSON on a tie)", each type
    taking the q of the most specific range matching it (RFC 9110 12.5.1). Here text/csv
    gets q=1 from */* and application/json q=0.5, so CSV is preferred; wants_csv returns
    JSON without parsing because neither "csv" nor "text/*" appears in the header."""
    head = bearer(app, people["province_monitor"])
    response = await client.get(
        "/v1/rankings/districts",
        params={"year": 2021, "as_of": "2021-05-15", "province": "16"},
        headers={**head, "Accept": "application/json;q=0.5, */*;q=1"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")


async def test_a_district_ranking_for_a_coordinator_without_districts_is_empty(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    """A region coordinator who leads no region (yet) this year has no districts to rank;
    the worker's kept values answered a view never read for them (None), and the ranking
    failed with a TypeError (500). Found by fuzzing every route."""
    response = await client.get(
        "/v1/rankings/districts", headers=bearer(app, people["region_coordinator"])
    )
    assert response.status_code == 200, response.text
    assert response.json()["rows"] == []


def test_a_member_null_in_some_rows_is_only_its_dotted_columns() -> None:
    """A projection or provenance that is null in one row and an object in another gave
    the CSV both a `projection` column and `projection.status` beside it (found by a
    black-box review): a reader cannot tell which to read. The null leaves the dotted
    cells empty."""
    from api.representation import to_csv

    table = to_csv(
        [
            {"code": "a", "projection": None, "indicators": {"kia": None}},
            {"code": "b", "projection": {"status": "on_track"}, "indicators": {"kia": {"x": 1}}},
        ]
    ).decode()
    assert table.splitlines() == ["code,projection.status,indicators.kia.x", "a,,", "b,on_track,1"]


async def test_a_scorecard_csv_has_its_columns_whatever_the_data(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """A district with no projection (no report yet) had no ``projection.*`` columns, so a
    reader's columns moved once the district reported; the header is now the same."""

    head = bearer(app, people["province_monitor"])
    url = "/v1/scorecards/districts/16.71?format=csv"
    before = await client.get(url, headers=head)
    assert before.status_code == 200, before.text
    await submit(client, app, await register_key(conn, people["district_head"]))
    after = await client.get(url, headers=head)
    assert after.status_code == 200, after.text
    header = before.text.splitlines()[0]
    assert "projection.status" in header, header
    assert header == after.text.splitlines()[0]
    assert before.text.splitlines()[1:] != after.text.splitlines()[1:]


@pytest.mark.parametrize(
    "url",
    [
        "/v1/rankings/districts?format=csv",
        "/v1/rankings/regions?province=16&format=csv",
        "/v1/scorecards/provinces/16?format=csv",
    ],
)
async def test_a_csv_adds_no_column_the_json_does_not_have(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    url: str,
) -> None:
    """Keeping a null member's columns (above) read a dict of indicator cells as one
    cell: every ranking CSV gained empty ``indicators.coverage``, ``.target`` and
    ``.achievement`` columns, which no JSON member matches (found by a README walk)."""
    await submit(client, app, await register_key(conn, people["district_head"]))
    response = await client.get(url, headers=bearer(app, people["province_monitor"]))
    assert response.status_code == 200, response.text
    header = response.text.splitlines()[0].split(",")
    assert not [c for c in header if c.startswith("indicators.") and c.count(".") < 2], header
