"""latest_values, kept by triggers, always equals the latest counting value recomputed
from submission_values, whatever order reports, reviews and corrections come in."""

from __future__ import annotations

from datetime import date

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.people import Person, bearer
from tests.submitting import register_key, submit

TRUTH = """
SELECT b.basis, k.district_code, k.indicator_code, v.submission_id
FROM (SELECT DISTINCT district_code, division_id, indicator_code FROM submission_values) k
CROSS JOIN (VALUES ('latest'), ('accepted')) AS b(basis)
CROSS JOIN LATERAL (
    SELECT sv.submission_id FROM submission_values sv
    WHERE sv.district_code = k.district_code AND sv.indicator_code = k.indicator_code
      AND sv.division_id IS NOT DISTINCT FROM k.division_id
      AND CASE WHEN b.basis = 'latest' THEN sv.counting
               ELSE sv.status = 'accepted' AND NOT sv.superseded END
    ORDER BY sv.as_of DESC, sv.seq DESC LIMIT 1
) v
ORDER BY 1, 2, 3
"""
KEPT = """
SELECT basis, district_code, indicator_code, submission_id FROM latest_values
ORDER BY 1, 2, 3
"""


async def assert_consistent(conn: asyncpg.Connection) -> None:
    truth = [tuple(r) for r in await conn.fetch(TRUTH)]
    kept = [tuple(r) for r in await conn.fetch(KEPT)]
    assert kept == truth


async def test_latest_values_follow_reports_reviews_and_corrections(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    signer = await register_key(conn, people["district_head"])
    head = bearer(app, people["province_head"])
    values = {"ktp_el": (900, 1000), "kia": (200, 1000)}
    may = await submit(client, app, signer, values=values, as_of=date(2026, 5, 31))
    june = await submit(client, app, signer, values=values, as_of=date(2026, 6, 30))
    await assert_consistent(conn)
    # A late report for an earlier date does not displace the newer one.
    await submit(client, app, signer, values=values, as_of=date(2026, 4, 30))
    await assert_consistent(conn)
    # Accepting and returning move the "accepted" and "latest" rows.
    accepted = await client.post(
        f"/v1/submissions/{may['id']}/review", json={"decision": "accept"}, headers=head
    )
    assert accepted.status_code in (200, 201), accepted.text
    await assert_consistent(conn)
    returned = await client.post(
        f"/v1/submissions/{june['id']}/review",
        json={"decision": "return", "reason": "denominator from last year"},
        headers=head,
    )
    assert returned.status_code in (200, 201), returned.text
    await assert_consistent(conn)
    latest = await conn.fetchval(
        "SELECT submission_id FROM latest_values WHERE basis = 'latest' "
        "AND indicator_code = 'ktp_el'"
    )
    assert str(latest) == may["id"]
    # A correction supersedes May: the correction counts, May no longer does.
    fixed = await submit(
        client,
        app,
        signer,
        values={"ktp_el": (905, 1000), "kia": (210, 1000)},
        as_of=date(2026, 5, 31),
        supersedes={"id": may["id"], "reason": "typo in the numerator"},
    )
    await assert_consistent(conn)
    latest = await conn.fetchval(
        "SELECT submission_id FROM latest_values WHERE basis = 'latest' "
        "AND indicator_code = 'ktp_el'"
    )
    assert str(latest) == fixed["id"]
    assert await conn.fetchval("SELECT count(*) FROM latest_values WHERE basis = 'accepted'") == 0
