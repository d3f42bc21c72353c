"""Races in signed submissions: findings of a review of concurrent requests, each failing
on the code before its fix."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import msgspec
import pytest

from api.ingest import Appender
from api.settings import Settings
from tests.people import Person, bearer, make_user
from tests.submitting import post_signed as post
from tests.submitting import problem_slug as slug
from tests.submitting import register_key, served
from tests.waiting import lock_waiters, wait_until


@pytest.mark.parametrize(
    ("change", "batched"),
    [
        ({"active": False}, True),
        ({"active": False}, False),
        ({"area_code": "16.72"}, True),
        ({"area_code": "16.72"}, False),
    ],
)
async def test_a_report_waiting_while_its_author_changes_is_not_stored(
    settings: Settings,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    change: dict[str, Any],
    batched: bool,
) -> None:
    """README: deactivating a user "stops their tokens at once". A key revocation is
    serialised against appends (the key is share-locked), but nothing did the same for
    the submitter's account: the caller was checked only when the request was admitted.
    A report admitted before its author was deactivated (or moved to another district),
    that then waited for its district's ledger head (which any append, correction or
    ledger verify holds), was stored after the change committed, with a ``received_at``
    after it. It is now refused (401, nothing stored), in a batch and alone."""
    head = await register_key(conn, people["district_head"])
    admin = people["admin"]
    chosen = settings if batched else msgspec.structs.replace(settings, ingest_batch_max=0)
    async with served(chosen) as (app, http):
        assert (await post(app, http, head, head.sign())).status_code == 201
        count = await conn.fetchval("SELECT count(*) FROM submissions")
        async with conn.transaction():  # an append/verify of Kota Palembang is under way
            await conn.execute(
                "SELECT 1 FROM ledger_heads WHERE district_code = '16.71' FOR UPDATE"
            )
            pending = asyncio.ensure_future(post(app, http, head, head.sign()))
            await lock_waiters(conn, 1)
            assert not pending.done()  # admitted, waiting for the head
            moved = await http.patch(
                f"/v1/users/{head.person.id}", json=change, headers=bearer(app, admin)
            )
            assert moved.status_code == 200, moved.text
        stored = await asyncio.wait_for(pending, timeout=10)
    assert stored.status_code == 401, stored.text
    assert stored.headers["content-type"] == "application/problem+json"
    assert await conn.fetchval("SELECT count(*) FROM submissions") == count


async def test_a_keyless_resend_of_a_correction_racing_its_first_send_is_a_jti_replay(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """README: a replayed ``jti`` is 409 ``jti-replayed``, "checked before the times, so a
    report stored ... and sent again is known as stored"; the client (client/transport.py)
    files that answer as *stored* and ``already-superseded`` as *rejected*. A plain report
    sent twice at once gets ``jti-replayed`` for the copy (the unique index on jti). A
    correction does not: ``submit`` (api/submissions.py) checks the jti before it waits
    for the ledger head, then ``_superseded_target`` finds the target already superseded
    by the first copy and answers 409 ``already-superseded`` ("supersede the correction
    instead", naming as ``superseded_by`` the very report this request stored). Sent one
    after the other, the same copy is ``jti-replayed``. A caller without an
    Idempotency-Key that retries a slow correction was told it was refused though it is
    stored, and "correcting" again was refused for ever. A correction now looks for its
    jti again once it holds the head.
    """
    head = await register_key(conn, people["district_head"])
    async with served(settings) as (app, http):
        first = await post(app, http, head, head.sign())
        assert first.status_code == 201
        correction = head.sign(supersedes={"id": first.json()["id"], "reason": "recount"})
        async with conn.transaction():  # the copies meet at the ledger head, as when the
            await conn.execute(  # district is busy (other appends, a ledger verify)
                "SELECT 1 FROM ledger_heads WHERE district_code = '16.71' FOR UPDATE"
            )
            sent = [asyncio.ensure_future(post(app, http, head, correction)) for _ in range(4)]
            await lock_waiters(conn, 4)  # each checked its jti and waits for the head
            assert not any(s.done() for s in sent)
        answers = await asyncio.gather(*sent)
        later = await post(app, http, head, correction)
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409]
    assert (later.status_code, slug(later)) == (409, "jti-replayed")
    stored_id = next(a.json()["id"] for a in answers if a.status_code == 201)
    copies = [a for a in answers if a.status_code == 409]
    assert [slug(a) for a in copies] == ["jti-replayed"] * 3, [
        (slug(a), a.json().get("superseded_by"), stored_id) for a in copies
    ]


async def test_a_reused_key_with_a_bad_body_while_the_first_waits_in_the_queue_is_key_reused(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """README: the same Idempotency-Key with another body is 422 idempotency-key-reused;
    the batch path checks "exactly as it would be checked alone". An earlier finding
    (tests/test_ingest_findings.py) had ``prepare`` take the key's lock before answering
    a failed check, which helps only once the first request's batch holds that lock. A
    request still waiting in the appender's queue holds nothing: with both batches in
    flight held up (here by another district's ledger head), the second request with
    the same key and a bad signature got 422 invalid-signature, and the first was stored
    under the key a moment later. Alone (KINERJA_INGEST_BATCH_MAX=0) the first request
    takes the key's lock as its first statement, and the second is idempotency-key-reused.
    A refused request now waits for a request queued in its worker under the same key,
    and is judged by that one's answer (across workers, the window of a few
    milliseconds before a batch takes the key's lock remains).
    """
    head = await register_key(conn, people["district_head"])
    jambi = await register_key(
        conn, await make_user(conn, "district_head", username="kadis_jambi", area_code="15.71")
    )
    async with served(settings) as (app, http):
        assert (await post(app, http, head, head.sign())).status_code == 201
        assert (await post(app, http, jambi, jambi.sign())).status_code == 201
        jws = head.sign()
        h, p, sig = jws.split(".")
        tampered = f"{h}.{p}.{sig[:-4]}AAAA"
        async with conn.transaction():  # Kota Jambi's head is held: its batches wait
            await conn.execute(
                "SELECT 1 FROM ledger_heads WHERE district_code = '15.71' FOR UPDATE"
            )
            held = []
            for n in range(1, settings.ingest_batches_in_flight + 1):
                held.append(asyncio.ensure_future(post(app, http, jambi, jambi.sign())))
                await lock_waiters(conn, n)  # past the overlap wait: each starts its batch
            first = asyncio.ensure_future(post(app, http, head, jws, key="outbox-7"))
            appender: Appender = app.state.appender
            await wait_until(lambda: len(appender._queue) >= 1)  # only read
            assert not first.done()  # queued behind the batches in flight
            second = asyncio.ensure_future(post(app, http, head, tampered, key="outbox-7"))
            await asyncio.sleep(0.3)  # refused, it waits in-process for first: nothing shows it
        a, b, *rest = await asyncio.gather(first, second, *held)
    assert a.status_code == 201, a.text
    assert [r.status_code for r in rest] == [201] * len(rest)
    assert (b.status_code, slug(b)) == (422, "idempotency-key-reused"), b.text
