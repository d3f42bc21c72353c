"""Scorecards and rankings: findings of a review, each once answered stale, leaked or wrong."""

from __future__ import annotations

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.people import Person, bearer


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
