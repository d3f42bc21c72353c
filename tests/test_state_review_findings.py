"""Findings on the state of signed submissions: who reviews, what a correction may
replace, and what scorecards show afterwards."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.people import Person, bearer
from tests.submitting import post_jws, register_key, review, submit, today


def card_row(card: dict[str, Any], indicator: str) -> dict[str, Any]:
    return next(r for r in card["indicators"] if r["indicator"] == indicator)


async def test_a_reviewer_cannot_accept_a_report_they_signed_themselves(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """DESIGN: "Reviewers (province head/monitor, region coordinator) can accept or
    return it" -- a review is a second person's check of the district's signed report
    (issue 5: "Every report must be provably theirs ... and checkable"). The district
    head of Kota Palembang signs a report, is then moved (mutasi) to head the province
    office, and accepts that very report: the API records the submitter as its own
    reviewer. "a forbidden action inside scope 403" (DESIGN)."""
    signer = await register_key(conn, people["district_head"])
    made = await submit(client, app, signer, values={"ktp_el": (1_000, 2_000)})
    moved = await client.patch(
        f"/v1/users/{signer.person.id}",
        json={"role": "province_head", "area_code": "16"},
        headers=bearer(app, people["admin"]),
    )
    assert moved.status_code == 200, moved.text
    generation = int(
        await conn.fetchval("SELECT token_generation FROM users WHERE id = $1", signer.person.id)
    )
    now_head = Person(signer.person.id, signer.person.username, "province_head", "16")

    own = await review(client, app, now_head, made["id"], "accept", generation=generation)

    assert own.status_code == 403, own.text
    assert await conn.fetchval("SELECT count(*) FROM submission_reviews") == 0
    seen = await client.get(f"/v1/submissions/{made['id']}", headers=bearer(app, people["admin"]))
    assert seen.json()["status"] == "received" and seen.json()["reviews"] == []


async def test_a_report_of_this_year_does_not_wipe_out_last_years_report(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """DESIGN: a submission is "a cumulative snapshot 'as of date D' ... Append-only: a
    correction is a new submission that supersedes an earlier one"; README: "A correction
    carries `supersedes: {id, reason}`; the old report stops counting" and scorecards use
    "Data ... from 1 January of the year to `as_of`". A report as of today that names
    last year's 31 December report in `supersedes` is stored, and last year's report
    stops counting: last year's closed scorecard loses its data although nothing
    corrected that date. A correction replaces a snapshot of its own date (or at least
    its own year); one for another year must not silently empty a past year."""
    signer = await register_key(conn, people["district_head"])
    reader = bearer(app, people["province_head"])
    year_end = date(today().year - 1, 12, 31)
    old = await submit(client, app, signer, values={"ktp_el": (1_000, 2_000)}, as_of=year_end)
    before = await client.get(
        f"/v1/scorecards/districts/16.71?year={year_end.year}", headers=reader
    )
    assert card_row(before.json(), "ktp_el")["numerator"] == 1_000

    await post_jws(
        client,
        app,
        signer.person,
        signer.sign(
            values={"ktp_el": (1_100, 2_000)},
            as_of=today(),
            supersedes={"id": old["id"], "reason": "Angka baru"},
        ),
    )

    after = await client.get(f"/v1/scorecards/districts/16.71?year={year_end.year}", headers=reader)
    assert after.status_code == 200, after.text
    # Either the cross-year "correction" is refused, or last year keeps a figure.
    assert card_row(after.json(), "ktp_el")["numerator"] is not None


async def test_scorecards_follow_acceptance_and_return(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """README: `basis` "`latest` = latest not returned, or `accepted`"; "a returned report
    stops counting". Checks the card itself (test_latest_values checks only the table
    behind it): accepted shows as reviewed, a return falls back to the earlier report."""
    signer = await register_key(conn, people["district_head"])
    reader = bearer(app, people["province_monitor"])
    day = today() - timedelta(days=1)
    first = await submit(client, app, signer, values={"ktp_el": (1_000, 2_000)}, as_of=day)
    second = await submit(client, app, signer, values={"ktp_el": (1_500, 2_000)}, as_of=day)
    accepted = await review(client, app, people["province_head"], first["id"], "accept")
    assert accepted.status_code == 201, accepted.text

    latest = card_row(
        (await client.get("/v1/scorecards/districts/16.71", headers=reader)).json(), "ktp_el"
    )
    assert latest["numerator"] == 1_500
    assert latest["provenance"]["submission_id"] == second["id"]
    assert latest["provenance"]["reviewed"] is False
    url = "/v1/scorecards/districts/16.71?basis=accepted"
    only_accepted = card_row((await client.get(url, headers=reader)).json(), "ktp_el")
    assert only_accepted["numerator"] == 1_000
    assert only_accepted["provenance"]["status"] == "accepted"

    returned = await review(client, app, people["province_monitor"], second["id"], "return", "Cek")
    assert returned.status_code == 201, returned.text
    latest = card_row(
        (await client.get("/v1/scorecards/districts/16.71", headers=reader)).json(), "ktp_el"
    )
    assert latest["numerator"] == 1_000
    assert latest["provenance"] == {
        "submission_id": first["id"],
        "as_of": day.isoformat(),
        "status": "accepted",
        "reviewed": True,
    }
