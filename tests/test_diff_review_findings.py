"""Found by a review of the changes since 65aff01 (the fixes of earlier reviews): what
they introduced or left. Each test states what a district head or an auditor relies on,
quoting the issue, DESIGN.md or the README, and failed on the code it was written
against."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar

from api.settings import Settings, settings_from_env
from tests.people import Person, bearer
from tests.submitting import Signer, register_key, served
from tests.submitting import post_signed as post
from tests.submitting import problem_slug as slug
from tests.waiting import lock_waiters

DAY = 24 * 3600


def tampered(jws: str) -> str:
    """The same JWS with its signature spoiled: refused on its own merits."""
    h, p, sig = jws.split(".")
    return f"{h}.{p}.{sig[:-4]}AAAA"


async def add_unseen_indicator(conn: asyncpg.Connection) -> None:
    """An indicator no worker has read yet: a report using it is checked (``prepare``)
    by reading the catalogue, which the test can hold up with a table lock."""
    await conn.execute(
        "INSERT INTO indicators (code, name_id, name_en, polarity, numerator_definition, "
        "denominator_definition) VALUES ('kk_online', 'KK online', 'KK online', 'higher', "
        "'families online', 'families')"
    )


async def first_still_being_checked(
    conn: asyncpg.Connection,
    app: Litestar,
    http: httpx.AsyncClient,
    head: Signer,
    key: str,
) -> asyncio.Future[httpx.Response]:
    """Post a good report under ``key`` whose check waits on the catalogue, which the
    caller holds locked (``LOCK TABLE indicators``) in ``conn``'s transaction."""
    first = asyncio.ensure_future(post(app, http, head, head.sign({"kk_online": (10, 20)}), key))
    await lock_waiters(conn, 1)
    return first


async def while_the_first_is_checked(
    settings: Settings, conn: asyncpg.Connection, head: Signer, known: str, second: str
) -> tuple[httpx.Response, httpx.Response]:
    """``known`` stored (the worker knows the key), then a good report held in its check
    under an Idempotency-Key and ``second`` sent under the same key: both answers."""
    await add_unseen_indicator(conn)
    async with served(settings) as (app, http):
        assert (await post(app, http, head, known)).status_code == 201
        async with conn.transaction():
            await conn.execute("LOCK TABLE indicators IN ACCESS EXCLUSIVE MODE")
            first = await first_still_being_checked(conn, app, http, head, "outbox-7")
            later = asyncio.ensure_future(post(app, http, head, second, key="outbox-7"))
            await asyncio.wait({later}, timeout=1.0)
        return await first, await later


async def settled(request: Awaitable[httpx.Response], seconds: float = 1.0) -> bool:
    """Whether ``request`` is answered within ``seconds`` (it keeps running if not)."""
    task = asyncio.ensure_future(request)
    done, _ = await asyncio.wait({task}, timeout=seconds)
    return bool(done)


# -- 1. ingest: a claimed Idempotency-Key is consulted only by refused requests ----------


async def test_a_second_good_report_under_a_key_still_being_checked_is_refused(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """README: "the same key with another body is 422 `idempotency-key-reused`, also
    while the first is still being checked or waiting to be written in the same worker";
    the issue: "the same key with a different body is 422". Alone (batching off) the
    first request takes the key's lock from its first statement, so the second waits and
    is told the key is taken.

    Since bc51e6e a request claims its key in ``Appender._keyed`` when it arrives, but the
    claim is only looked at when the later request is refused on its own merits. A
    second, valid report with the same key and another body is checked, queued and
    stored while the first is still being checked; the first, which the client sent
    first, is then answered 422 key-reused and its report is lost."""
    head = await register_key(conn, people["district_head"])
    a, b = await while_the_first_is_checked(settings, conn, head, head.sign(), head.sign())
    assert a.status_code == 201, a.text
    assert (b.status_code, slug(b)) == (422, "idempotency-key-reused"), b.text


@pytest.mark.parametrize("why", ["iat-too-old", "jti-replayed"])
async def test_a_reused_key_refused_in_its_batch_waits_for_the_first(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person], why: str
) -> None:
    """README: "the same key with another body is 422 `idempotency-key-reused`, also
    while the first is still being checked or waiting to be written in the same worker
    (a request refused on its own merits waits for it first)".

    bc51e6e made a request refused by ``prepare`` (signature, payload, scope) wait for an
    earlier one with its key, but the times and the jti are checked later, in the batch.
    A second request under the key, signed more than a week ago (or a report already
    stored, sent again), passes ``prepare``, is refused in its batch at once, without
    waiting, with its own problem, and the first is then stored under that key: the
    outcome the fix was made to prevent (the client keeps the key and is refused
    key-reused for ever once it sends the fixed report)."""
    head = await register_key(conn, people["district_head"])
    stored = head.sign()
    bad = head.sign(now=time.time() - 8 * DAY) if why == "iat-too-old" else stored
    a, b = await while_the_first_is_checked(settings, conn, head, stored, bad)
    assert a.status_code == 201, a.text
    assert (b.status_code, slug(b)) == (422, "idempotency-key-reused"), b.text


async def test_a_waiting_request_that_goes_away_does_not_release_the_first_claim(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """README, as above: a request refused on its own merits "waits for" the first
    request with its key. Each request only remembers the one just before it
    (``earlier``): when that one goes away (its task cancelled while it waits: a
    request dropped, a shutdown) its claim is marked done, and a third request with the
    key stops waiting although the first is still being checked. It is answered
    ``invalid-signature`` and the first is then stored under the key: the chain of
    same-key requests must wait for the first, not for whichever came just before."""
    head = await register_key(conn, people["district_head"])
    await add_unseen_indicator(conn)
    async with served(settings) as (app, http):
        assert (await post(app, http, head, head.sign())).status_code == 201  # key known
        async with conn.transaction():
            await conn.execute("LOCK TABLE indicators IN ACCESS EXCLUSIVE MODE")
            first = await first_still_being_checked(conn, app, http, head, "outbox-9")
            second = asyncio.ensure_future(
                post(app, http, head, tampered(head.sign()), key="outbox-9")
            )
            assert not await settled(asyncio.shield(second), 0.5)  # waits for the first
            second.cancel()
            third = asyncio.ensure_future(
                post(app, http, head, tampered(head.sign()), key="outbox-9")
            )
            await asyncio.wait({third}, timeout=1.0)
        a, c = await asyncio.gather(first, third)
    assert a.status_code == 201, a.text
    assert (c.status_code, slug(c)) == (422, "idempotency-key-reused"), c.text


# -- 2. ledger verify: a receipt checked against today's window, not the one it had ------


async def test_a_report_accepted_under_a_longer_iat_window_still_verifies(
    database_url: str, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """The issue: verify "answers ok, or the first broken entry and what broke"; the
    README: `KINERJA_SUBMISSION_IAT_MAX_AGE_S` is "how old ... a submission's `iat` may
    be", read from the environment. tests/test_submissions_ledger.py holds the rule
    already kept for another bound: "A stated percentage above 1000 was accepted before
    the bound ...: the check must not call such an entry tampered with."

    An office that was offline for ten days while the operator allowed two weeks has its
    report stored. When the window is set back to the default week, 3bf4a0f's check
    (receipt more than max age + 1 hour after the signed iat) calls that untouched
    entry `payload_mismatch`, as if someone had moved it: the ledger of every district
    with such a report reads as tampered, and `kinerja ledger verify --all` exits 1."""
    head = await register_key(conn, people["district_head"])
    two_weeks = settings_from_env(
        {
            "KINERJA_SUBMISSION_IAT_MAX_AGE_S": str(14 * DAY),
            "KINERJA_IDEMPOTENCY_TTL_S": str(15 * DAY),
        },
        database_url=database_url,
        environment="test",
        pool_max_size=4,
    )
    async with served(two_weeks) as (app, http):
        ten_days_ago = time.time() - 10 * DAY
        as_signed = datetime.fromtimestamp(ten_days_ago, UTC).date()  # the day it was signed
        made = await post(app, http, head, head.sign(now=ten_days_ago, as_of=as_signed))
        assert made.status_code == 201, made.text
    default = settings_from_env({}, database_url=database_url, environment="test")
    async with served(default) as (app, http):
        answer = await http.get(
            "/v1/districts/16.71/ledger/verify", headers=bearer(app, people["district_head"])
        )
    assert answer.status_code == 200, answer.text
    report: dict[str, Any] = answer.json()
    assert report["ok"] is True, report
