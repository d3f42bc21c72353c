"""Signed-submission ingest: atomicity of batches, idempotency and concurrency (a review).

Each test says what a district head relies on, quoting the issue, DESIGN.md or the
README, and checks every table a submission writes to."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import asyncpg
import httpx
from litestar import Litestar

from api.ingest import Appender
from api.settings import Settings
from tests.people import Person, bearer, make_user
from tests.submitting import post_signed as post
from tests.submitting import problem_slug as slug
from tests.submitting import register_key, served
from tests.test_ingest import prepared, principal_of, request
from tests.test_ingest import slug as outcome
from tests.waiting import lock_waiters

TABLES = (
    "submissions",
    "submission_values",
    "ledger_heads",
    "idempotency_keys",
    "latest_values",
    "data_versions",
)


async def snapshot(conn: asyncpg.Connection) -> dict[str, Any]:
    """Every row of every table a submission writes to (ordered), to compare before/after."""
    found: dict[str, Any] = {}
    for table in TABLES:
        rows = await conn.fetch(f"SELECT * FROM {table}")
        found[table] = sorted(repr(sorted(dict(r).items())) for r in rows)
    return found


def tampered(jws: str) -> str:
    h, p, sig = jws.split(".")
    return f"{h}.{p}.{sig[:-4]}AAAA"


async def chain_is_contiguous(conn: asyncpg.Connection, district: str) -> int:
    rows = await conn.fetch(
        "SELECT seq, prev_hash, hash, jws FROM submissions WHERE district_code = $1 ORDER BY seq",
        district,
    )
    prev = "0" * 64
    for n, row in enumerate(rows, start=1):
        assert (row["seq"], row["prev_hash"]) == (n, prev), (district, n)
        assert row["hash"] == hashlib.sha256(prev.encode() + row["jws"].encode()).hexdigest()
        prev = row["hash"]
    head = await conn.fetchrow(
        "SELECT seq, hash FROM ledger_heads WHERE district_code = $1", district
    )
    if rows:
        assert head is not None and (head["seq"], head["hash"]) == (len(rows), prev)
    return len(rows)


async def verify(
    app: Litestar, http: httpx.AsyncClient, reviewer: Person, district: str
) -> dict[str, Any]:
    answer = await http.get(
        f"/v1/districts/{district}/ledger/verify", headers=bearer(app, reviewer)
    )
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = answer.json()
    return document


# -- idempotency ------------------------------------------------------------------------


async def test_a_reused_key_with_a_bad_body_while_the_first_is_still_being_checked(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """README: "the same key with another body is 422 `idempotency-key-reused`, also
    while the first is still waiting to be written in the same worker (a request refused
    on its own merits waits for it first)"; the issue: "the same key with a different
    body is 422". Alone (KINERJA_INGEST_BATCH_MAX=0) the first request takes the key's
    lock before anything else, so a second one with the same key waits for it and is
    told the key is taken. In a batch, the first request is checked (``prepare``) before
    it is queued and registered under its key: while it is being checked (here: reading
    an indicator this worker has not seen), a second request with the same key and a
    bad signature in the same worker finds neither a queued request nor the key's lock,
    and is answered 422 ``invalid-signature``; the first is then stored under that key.
    The client is told its body was bad, not that the key is taken: it keeps the key
    and sends the fixed report again, which is then answered 422 key-reused forever."""
    head = await register_key(conn, people["district_head"])
    await conn.execute(
        "INSERT INTO indicators (code, name_id, name_en, polarity, numerator_definition, "
        "denominator_definition) VALUES ('kk_online', 'KK online', 'KK online', 'higher', "
        "'families online', 'families')"
    )
    async with served(settings) as (app, http):
        assert (await post(app, http, head, head.sign())).status_code == 201  # key known
        jws = head.sign({"kk_online": (10, 20)})
        bad = tampered(head.sign())
        async with conn.transaction():  # the first request's check of kk_online waits
            await conn.execute("LOCK TABLE indicators IN ACCESS EXCLUSIVE MODE")
            first = asyncio.ensure_future(post(app, http, head, jws, key="outbox-9"))
            await lock_waiters(conn, 1)
            second = asyncio.ensure_future(post(app, http, head, bad, key="outbox-9"))
            # Correct: the second waits for the first (held here); not so: it answers.
            await asyncio.wait({second}, timeout=1.0)
        a, b = await asyncio.gather(first, second)
    assert a.status_code == 201, a.text
    assert (b.status_code, slug(b)) == (422, "idempotency-key-reused"), b.text
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 2


# -- concurrency ------------------------------------------------------------------------


async def test_reports_reviews_and_corrections_at_once_keep_every_chain_whole(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """Issue: "Appends for one district are serialised so concurrent submissions never
    fork the chain"; "One transaction per submission". Plain reports of a district head,
    a division head and another district's head, corrections and reviews, all at once:
    every request is answered (no 5xx), every chain is contiguous and verifies."""
    head = await register_key(conn, people["district_head"])
    division = await register_key(conn, people["division_head"])
    neighbour = await register_key(
        conn, await make_user(conn, "district_head", username="kadis_1672", area_code="16.72")
    )
    reviewer = people["province_head"]
    async with served(settings) as (app, http):
        stored = []
        for _ in range(10):
            answer = await post(app, http, head, head.sign())
            assert answer.status_code == 201
            stored.append(answer.json()["id"])

        async def review(i: int) -> httpx.Response:
            decision = (
                {"decision": "return", "reason": "recount"} if i % 2 else {"decision": "accept"}
            )
            return await http.post(
                f"/v1/submissions/{stored[i]}/review", json=decision, headers=bearer(app, reviewer)
            )

        async def correct(i: int) -> httpx.Response:
            jws = head.sign(supersedes={"id": stored[i], "reason": "recount"})
            return await post(app, http, head, jws, key=f"fix-{i}")

        async def plain(i: int) -> httpx.Response:
            signer = (head, division, neighbour)[i % 3]
            return await post(app, http, signer, signer.sign(), key=f"plain-{i}")

        work = (
            [plain(i) for i in range(40)]
            + [correct(i) for i in range(5)]
            + [review(i) for i in range(5, 10)]
        )
        answers = await asyncio.gather(*work)
        checks = [await verify(app, http, reviewer, d) for d in ("16.71", "16.72")]
    assert [a.status_code for a in answers] == [201] * 50, [
        (a.status_code, a.text[:200]) for a in answers if a.status_code >= 300
    ]
    assert await chain_is_contiguous(conn, "16.71") == 10 + 27 + 5
    assert await chain_is_contiguous(conn, "16.72") == 13
    assert [c["ok"] for c in checks] == [True, True], checks
    assert await conn.fetchval("SELECT count(*) FROM idempotency_keys") == 45


async def test_a_revocation_racing_reports_stores_none_after_it(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """Issue: made "with the caller's active registered key"; README: verify re-checks
    each signature "with the key valid when the entry was received". Reports sent while
    the key is revoked: each is stored before the revocation or refused, never after."""
    head = await register_key(conn, people["district_head"])
    async with served(settings) as (app, http):
        assert (await post(app, http, head, head.sign())).status_code == 201

        async def revoke() -> httpx.Response:
            return await http.post(f"/v1/keys/{head.kid}/revoke", headers=bearer(app, head.person))

        sent = [post(app, http, head, head.sign()) for _ in range(30)]
        everything = await asyncio.gather(*sent[:15], revoke(), *sent[15:])
        revoked = everything[15]
        answers = everything[:15] + everything[16:]
        checked = await verify(app, http, people["province_head"], "16.71")
    assert revoked.status_code == 200, revoked.text
    assert {a.status_code for a in answers} <= {201, 422}
    assert all(slug(a) == "invalid-signature" for a in answers if a.status_code == 422)
    late = await conn.fetchval(
        "SELECT count(*) FROM submissions s JOIN signing_keys k ON k.kid = s.kid "
        "WHERE s.received_at >= k.revoked_at"
    )
    assert late == 0
    assert checked["ok"] is True, checked
    assert await chain_is_contiguous(conn, "16.71") == 1 + sum(
        a.status_code == 201 for a in answers
    )


async def test_one_batch_of_bad_and_good_reports_stores_only_the_good_ones(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """Issue: "Any failure: problem+json, nothing stored"; README: "A refused submission
    gets its own problem and writes nothing". In one batch: a report whose key was
    revoked and one whose author was deactivated while they waited, one for a district
    without a ledger yet whose only report is refused, a jti sent twice, a key sent
    twice with two bodies, and two users with the same key; the good ones are stored,
    each once, and nothing else is written."""
    head = await register_key(conn, people["district_head"])
    division = await register_key(conn, people["division_head"])
    revoked = await register_key(
        conn, await make_user(conn, "district_head", username="kadis_1672", area_code="16.72")
    )
    leaving = await register_key(
        conn, await make_user(conn, "district_head", username="kadis_1673", area_code="16.73")
    )
    jambi = await register_key(
        conn, await make_user(conn, "district_head", username="kadis_jambi", area_code="15.71")
    )
    async with served(settings) as (app, http):
        for signer in (head, division, revoked, leaving):
            assert (await post(app, http, signer, signer.sign())).status_code == 201
        for signer in (revoked, leaving):
            await principal_of(app, signer.person)
        twice = head.payload({"ktp_el": (1000, 2000)})
        requests = [
            request(revoked, revoked.payload()),
            request(head, twice, key="shared"),
            request(leaving, leaving.payload()),
            request(jambi, jambi.payload(now=1_000_000)),  # too old, in a new district
            request(division, division.payload(), key="shared"),  # another user's key
            request(head, {**twice, "note": "the same jti"}),
            request(head, head.payload(), key="shared"),  # reused with another body
            request(division, division.payload()),
        ]
        before = await snapshot(conn)
        jobs = [await prepared(app, r) for r in requests]
        await conn.execute("UPDATE signing_keys SET revoked_at = now() WHERE kid = $1", revoked.kid)
        await conn.execute("UPDATE users SET active = false WHERE id = $1", leaving.person.id)
        appender: Appender = app.state.appender
        outcomes = await asyncio.gather(*(appender.append(j) for j in jobs), return_exceptions=True)
    assert [outcome(o) for o in outcomes] == [  # type: ignore[arg-type]
        "422 invalid-signature",
        "201",
        "401 unauthorized",
        "422 iat-too-old",
        "201",
        "409 jti-replayed",
        "422 idempotency-key-reused",
        "201",
    ]
    after = await snapshot(conn)
    assert after["submissions"] != before["submissions"]
    rows = await conn.fetch("SELECT district_code, submitter_id FROM submissions")
    assert sorted((r["district_code"], r["submitter_id"]) for r in rows) == sorted(
        [("16.71", head.person.id)] * 2
        + [("16.71", division.person.id)] * 3
        + [("16.72", revoked.person.id), ("16.73", leaving.person.id)]
    )
    assert (
        await conn.fetchval("SELECT count(*) FROM ledger_heads WHERE district_code = '15.71'") == 0
    )
    assert await conn.fetchval("SELECT count(*) FROM data_versions WHERE area_code = '15.71'") == 0
    assert await conn.fetchval("SELECT count(*) FROM idempotency_keys") == 2
    for district in ("16.72", "16.73"):
        assert await chain_is_contiguous(conn, district) == 1
    assert await chain_is_contiguous(conn, "16.71") == 5
