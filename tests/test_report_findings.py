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
