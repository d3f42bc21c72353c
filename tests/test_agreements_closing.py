"""Closing an active agreement (DESIGN: "... then superseded by an amendment or closed"):
before, no agreement could ever become closed."""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.settings import local_today
from tests.agreement_helpers import activate, palembang_draft, register_signer, targets
from tests.people import Person, bearer


def this_year(app: Litestar) -> int:
    """The year of the server's "today" (``local_today``, UTC+7), read when the test runs:
    a card asked for no year shows that year's targets. The machine's own date, read at
    import, is still last year's from 17:00 UTC on 31 December (on a UTC machine) while
    the card is already the new year's, and no targets are found."""
    return local_today(app.state.settings).year


async def active_palembang(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    year: int,
) -> dict[str, Any]:
    agreement = await palembang_draft(
        client, app, people, year=year, target_list=targets(ktp_el=100, kia=30, akta_lahir=95)
    )
    return await activate(
        client,
        app,
        agreement,
        second=await register_signer(conn, people["district_head"]),
        first=await register_signer(conn, people["province_head"]),
    )


async def test_the_first_party_closes_an_active_agreement(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    agreement = await active_palembang(client, app, conn, people, this_year(app))
    head = bearer(app, people["province_head"])
    url = f"/v1/agreements/{agreement['id']}/close"
    closed = await client.post(url, json={"reason": "Kota dimekarkan"}, headers=head)
    assert closed.status_code == 200, closed.text
    body = closed.json()
    assert body["status"] == "closed" and body["ended_at"] is not None
    assert body["closed"] == {"by": str(people["province_head"].id), "reason": "Kota dimekarkan"}
    again = await client.get(f"/v1/agreements/{agreement['id']}", headers=head)
    assert again.json()["closed"] == body["closed"]
    # Nothing more happens to it: closing again, amending, signing are refused.
    twice = await client.post(url, json={"reason": "lagi"}, headers=head)
    assert twice.status_code == 409, twice.text
    assert twice.json()["type"].endswith("/agreement-not-open")
    assert twice.json()["detail"] == (
        "Only an active agreement is closed; this version is closed."
    ), twice.json()
    by_second = await client.post(
        url, json={"reason": "x"}, headers=bearer(app, people["district_head"])
    )
    assert by_second.status_code == 403, by_second.text
    assert by_second.json()["detail"] == "Only the first party's office closes an agreement."
    amended = await client.post(
        f"/v1/agreements/{agreement['id']}/amendments",
        json={"reason": "perubahan_prioritas", "note": "x"},
        headers=head,
    )
    assert amended.status_code == 409, amended.text


async def test_a_closed_agreement_stops_applying_from_then_on(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """Today's card no longer reads its targets (nothing else sets any here)."""
    agreement = await active_palembang(client, app, conn, people, this_year(app))
    head = bearer(app, people["province_head"])
    card_url = "/v1/scorecards/districts/16.71"

    def sources(card: dict[str, Any]) -> set[Any]:
        return {row["target_source"] for row in card["indicators"]}

    before = await client.get(card_url, headers=head)
    assert before.status_code == 200, before.text
    assert None not in sources(before.json()), before.json()["indicators"]
    closed = await client.post(
        f"/v1/agreements/{agreement['id']}/close", json={"reason": "dimekarkan"}, headers=head
    )
    assert closed.status_code == 200, closed.text
    after = await client.get(card_url, headers=head)
    assert after.status_code == 200, after.text
    assert sources(after.json()) == {None}, after.json()["indicators"]


async def test_only_an_active_agreement_is_closed(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
) -> None:
    draft = await palembang_draft(client, app, people)
    head = bearer(app, people["province_head"])
    refused = await client.post(
        f"/v1/agreements/{draft['id']}/close", json={"reason": "batal"}, headers=head
    )
    assert refused.status_code == 409, refused.text
    assert (await client.get(f"/v1/agreements/{draft['id']}", headers=head)).json()[
        "status"
    ] == "draft"


async def test_closing_needs_a_reason_and_nothing_else(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    agreement = await active_palembang(client, app, conn, people, 2021)
    head = bearer(app, people["province_head"])
    url = f"/v1/agreements/{agreement['id']}/close"
    for body in ({}, {"reason": ""}, {"reason": "ok", "when": "now"}, {"reason": 7}):
        refused = await client.post(url, json=body, headers=head)
        assert refused.status_code == 400, (body, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
    shown = await client.get(f"/v1/agreements/{agreement['id']}", headers=head)
    assert shown.json()["status"] == "active"


async def test_not_while_an_amendment_is_being_signed(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    agreement = await active_palembang(client, app, conn, people, 2021)
    head = bearer(app, people["province_head"])
    amended = await client.post(
        f"/v1/agreements/{agreement['id']}/amendments",
        json={"reason": "perubahan_prioritas", "note": "target naik"},
        headers=head,
    )
    assert amended.status_code == 201, amended.text
    refused = await client.post(
        f"/v1/agreements/{agreement['id']}/close", json={"reason": "x"}, headers=head
    )
    assert refused.status_code == 409, refused.text
    assert refused.json()["agreement_id"] == amended.json()["id"]
