"""A review of one day's changes: each test failed on the code before its fix (see each
docstring for the bug)."""

from __future__ import annotations

import asyncio
from uuid import UUID

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.settings import Settings
from db import submissions as sub_db
from tests.people import Person, bearer
from tests.submitting import JOSE, register_key, served, submit
from tests.submitting import post_signed as post
from tests.submitting import problem_slug as slug
from tests.test_catalogue import indicator
from tests.waiting import lock_waiters

# -- db/submissions.values_of (f72ebb2) -------------------------------------------------


async def test_a_stated_figure_below_a_double_does_not_fail_the_submissions_list(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """f72ebb2 made a stated figure "beyond a double" read as none "rather than failing the
    whole read", but guarded only the large end (abs < 1e300). numeric holds 1e-400 as
    well, and PostgreSQL's numeric -> float8 cast refuses an underflow too ("is out of
    range for type double precision"), so one such row (written with SQL, exactly the
    case the fix is for) still makes GET /v1/submissions and GET /v1/submissions/{id}
    answer 500 for everyone who can see the district."""
    signer = await register_key(conn, people["district_head"])
    made = await submit(client, app, signer)
    await conn.execute(
        "UPDATE submission_values SET stated_pct = 1e-400 "
        "WHERE submission_id = $1 AND indicator_code = 'ktp_el'",
        UUID(made["id"]),
    )
    head = bearer(app, people["province_head"])
    listed = await client.get("/v1/submissions?district=16.71", headers=head)
    assert listed.status_code == 200, listed.text[:300]
    one = await client.get(f"/v1/submissions/{made['id']}", headers=head)
    assert one.status_code == 200, one.text[:300]


# -- api/query.py (c46aa78, c879240) ----------------------------------------------------


@pytest.mark.parametrize(
    ("method", "url"),
    [
        # ``code`` is the route's *path* parameter; ``request``/``state``/``db`` are what
        # the handler is given by Litestar, not query parameters of the route; ``scope``
        # is the parameter of Litestar's own OPTIONS handler.
        ("GET", "/v1/scorecards/districts/16.71?code=16.71&code=16.72"),
        ("GET", "/v1/rankings/districts?province=16&state=a&state=b"),
        ("GET", "/v1/submissions?request=1&request=2"),
        ("GET", "/v1/areas?db=1&db=2"),
        ("OPTIONS", "/v1/users?scope=1&scope=2"),
    ],
)
async def test_a_repeated_key_the_route_does_not_take_from_the_query_is_ignored(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    method: str,
    url: str,
) -> None:
    """README: "A query parameter a route declares is given once ... keys a route does not
    declare are ignored" (api/query.py: "keys a route does not declare stay ignored, as
    before"). ``_declared`` takes every name of the handler's signature (path parameters,
    ``request``, ``state``, the ``db`` dependency, ``data``, header parameters such as
    ``idempotency_key``, the OPTIONS handler's ``scope``), so such a key given twice is
    400 "A query parameter is given more than once: code" although the route never reads
    it from the query (given once, it is ignored, as the README says). Only the handler's
    query parameters should count."""
    response = await client.request(method, url, headers=bearer(app, people["admin"]))
    assert response.status_code < 300, response.text[:300]


# -- api/ingest.py _Batch.add against api/submissions.submit (b17c397) ------------------


async def test_a_resent_stored_report_racing_an_account_change_is_jti_replayed_in_a_batch(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """The batch checks the author's account (still_admitted) *before* the jti, while the
    single path (``submit``) refuses a stored jti before it even waits for the head, and
    checks the account only after. So a resend of a report that is already stored (its
    answer lost: the client's outbox resends it without an Idempotency-Key) gets 409
    ``jti-replayed`` alone (the client files it as stored), but in a batch, if the
    author's password is reset or the account moved while it waits, 401 "nothing was
    stored ... send it again": the client is told a stored report was not stored. The
    batch should check the jti (and what ``submit`` checks before its head lock) first,
    as the README says it checks "exactly as it would be checked alone"."""
    head = await register_key(conn, people["district_head"])
    admin = people["admin"]
    async with served(settings) as (app, http):
        jws = head.sign()
        assert (await post(app, http, head, jws)).status_code == 201
        async with conn.transaction():  # an append/verify of Kota Palembang is under way
            await conn.execute(
                "SELECT 1 FROM ledger_heads WHERE district_code = '16.71' FOR UPDATE"
            )
            resent = asyncio.ensure_future(post(app, http, head, jws))
            await lock_waiters(conn, 1)
            assert not resent.done()  # in its batch, waiting for the head
            changed = await http.patch(
                f"/v1/users/{head.person.id}",
                json={"password": "a-new-long-password"},
                headers=bearer(app, admin),
            )
            assert changed.status_code == 200, changed.text
        answer = await asyncio.wait_for(resent, timeout=10)
    assert (answer.status_code, slug(answer)) == (409, "jti-replayed"), answer.text


# -- db/submissions.known_indicators + change feed (21ce103, 4dfb26e) --------------------


async def test_a_unit_changed_elsewhere_is_flagged_in_it_without_the_change_feed(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """README (catalogue): workers remember each code's unit, "every change to the
    catalogue is notified at commit and each worker's change feed forgets what it knew
    (migration 0024), so an unused indicator removed and added in another unit is read in
    it at once". ``KINERJA_CHANGE_FEED=false`` is a documented setting ("read both from
    PostgreSQL on every request"), and a worker whose feed is down is in the same state
    until it reconnects; yet ``known_indicators`` remembers units whether or not a feed
    is there to make it forget them (principals, by contrast, are not remembered while
    the feed is not live). With the feed off, a unit changed by another worker (here with
    SQL, as tests/test_fixes_findings.py does) is never heard: 101 of 100 in percent is
    still read as a daily rate, and not flagged over_100, until the worker restarts."""
    signer = await register_key(conn, people["district_head"])
    sub_db.forget_indicators()
    try:
        async with served(msgspec.structs.replace(settings, change_feed=False)) as (app, http):
            admin = bearer(app, people["admin"])
            made = await http.post("/v1/indicators", json=indicator(), headers=admin)
            assert made.status_code == 201, made.text
            assert await sub_db.known_indicators(conn, ["rekam_harian"]) == {
                "rekam_harian": "per_day"
            }
            await conn.execute(  # as another worker's removal and addition would leave it
                "UPDATE indicators SET unit = 'percent' WHERE code = 'rekam_harian'"
            )
            posted = await http.post(
                "/v1/submissions",
                content=signer.sign(values={"rekam_harian": (101, 100)}).encode(),
                headers={**bearer(app, signer.person), "Content-Type": JOSE},
            )
    finally:
        sub_db.forget_indicators()
    assert posted.status_code == 201, posted.text
    assert "over_100" in posted.json()["flags"], posted.json()["flags"]
