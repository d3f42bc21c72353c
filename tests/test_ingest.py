"""Group commit (api.ingest): submissions that arrive together are appended in one
transaction, each checked as if it came alone: refusals stay with their own request,
later ones compare with earlier ones of the same batch, a batch that fails as a whole
falls back to one transaction each, and nothing a refused batch touched is left."""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, cast

import asyncpg
import msgspec
import pytest
import uvloop
from litestar import Litestar

from api.auth.middleware import authenticate
from api.auth.principal import Principal
from api.errors import ApiError
from api.ingest import Appender
from api.settings import Settings
from api.submission_rules import SubmitResult
from api.submissions import Prepared, prepare, submit
from client.signing import sign_submission
from db import appends
from tests.people import Person, bearer, make_user
from tests.submitting import JOSE, Signer, register_key, served, stored_counts, today
from tests.waiting import lock_waiters


async def principal_of(app: Litestar, person: Person) -> Principal:
    return await authenticate(app.state, bearer(app, person)["Authorization"].split()[1])


@dataclass
class Request:
    """One POST /v1/submissions as the appender receives it."""

    signer: Signer
    body: bytes
    key: str | None = None


def request(signer: Signer, payload: dict[str, Any], key: str | None = None) -> Request:
    return Request(signer, sign_submission(payload, signer.key, signer.kid).encode(), key)


async def prepared(app: Litestar, r: Request) -> Prepared:
    ready = await prepare(
        app.state.pool,
        app.state.settings,
        await principal_of(app, r.signer.person),
        r.body,
        content_type=JOSE,
        idempotency_key=r.key,
    )
    assert isinstance(ready, Prepared)
    return ready


async def one_batch(app: Litestar, requests: list[Request]) -> list[SubmitResult | ApiError]:
    """Prepare every request first, then queue them all at once: the appender's task
    wakes after the last is queued, so they make one batch."""
    appender: Appender = app.state.appender
    jobs = [await prepared(app, r) for r in requests]
    before = appender.batches
    outcomes = await asyncio.gather(*(appender.append(j) for j in jobs), return_exceptions=True)
    assert appender.batches == before + 1
    assert all(isinstance(o, SubmitResult | ApiError) for o in outcomes), outcomes
    return list(outcomes)  # type: ignore[arg-type]


def slug(outcome: SubmitResult | ApiError) -> str:
    if isinstance(outcome, SubmitResult):
        return str(outcome.status_code)
    return f"{outcome.status_code} {outcome.slug}"


def body(outcome: SubmitResult | ApiError) -> dict[str, Any]:
    assert isinstance(outcome, SubmitResult), outcome
    document: dict[str, Any] = msgspec.json.decode(outcome.body)
    return document


@pytest.fixture
async def other(conn: asyncpg.Connection) -> Signer:
    """A district head of Kota Jambi (15.71), which has no ledger yet."""
    person = await make_user(conn, "district_head", username="kadis_jambi", area_code="15.71")
    return await register_key(conn, person)


async def test_one_batch_keeps_each_outcome_with_its_own_request(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person], other: Signer
) -> None:
    head = await register_key(conn, people["district_head"])
    first = head.payload({"ktp_el": (1000, 2000)})
    replayed_jti = {**first, "note": "the same jti, signed again"}
    lower = head.payload({"ktp_el": (900, 2000)})
    requests = [
        request(head, first, key="k1"),
        request(head, first, key="k1"),  # a retry of the first, in the same batch
        request(head, lower, key="k1"),  # the same key with another body
        request(head, replayed_jti),
        request(other, other.payload({"ktp_el": (10, 20)})),
        request(head, lower),
    ]
    async with served(settings) as (app, _):
        outcomes = await one_batch(app, requests)
        feed = app.state.change_feed
        seen = feed.versions(["16.71", "15.71"])
    assert [slug(o) for o in outcomes] == [
        "201",
        "201",
        "422 idempotency-key-reused",
        "409 jti-replayed",
        "201",
        "201",
    ]
    assert isinstance(outcomes[1], SubmitResult) and outcomes[1].replayed
    assert outcomes[1].submission_id == outcomes[0].submission_id  # type: ignore[union-attr]
    assert outcomes[1].body == outcomes[0].body  # type: ignore[union-attr]
    stored = body(outcomes[0])
    later = body(outcomes[5])
    assert (stored["ledger"]["seq"], later["ledger"]["seq"]) == (1, 2)
    assert later["ledger"]["prev_hash"] == stored["ledger"]["hash"]
    # The second report of the batch is compared with the first.
    assert later["flags"] == ["numerator_decreased"]
    assert body(outcomes[4])["ledger"]["seq"] == 1
    counts = await stored_counts(conn)
    assert counts["submissions"] == 3
    assert counts["idempotency_keys"] == 1
    assert await conn.fetchval("SELECT seq FROM ledger_heads WHERE district_code = '16.71'") == 2
    # The worker's change feed heard of both districts before the answers went out.
    assert seen == await conn.fetchval(
        "SELECT array_agg(version ORDER BY array_position(ARRAY['16.71','15.71'], area_code)) "
        "FROM data_versions WHERE area_code IN ('16.71', '15.71')"
    )


async def test_a_key_revoked_after_its_first_check_is_refused_in_the_batch(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    head = await register_key(conn, people["district_head"])
    async with served(settings) as (app, _):
        job = await prepared(app, request(head, head.payload()))
        await conn.execute("UPDATE signing_keys SET revoked_at = now() WHERE kid = $1", head.kid)
        before = await stored_counts(conn)
        with pytest.raises(ApiError) as refused:
            await app.state.appender.append(job)
    assert refused.value.slug == "invalid-signature"
    assert "revoked" in refused.value.detail
    assert await stored_counts(conn) == before


async def test_a_batch_of_refusals_leaves_nothing_behind(
    settings: Settings, conn: asyncpg.Connection, other: Signer
) -> None:
    stale = other.payload(now=1_000_000)  # signed in January 1970
    async with served(settings) as (app, _):
        first = await prepared(app, request(other, other.payload(), key="kk"))
        # Refused in the batch: stored in the meantime (same jti), and signed too long ago.
        await app.state.appender.append(first)
        await conn.execute("DELETE FROM idempotency_keys")
        before = await stored_counts(conn)
        again = [request(other, first.signed), request(other, stale)]
        outcomes = await one_batch(app, again)
    assert [slug(o) for o in outcomes] == ["409 jti-replayed", "422 iat-too-old"]
    assert await stored_counts(conn) == before


async def test_a_genesis_head_made_for_refused_reports_is_removed(
    settings: Settings, conn: asyncpg.Connection, other: Signer
) -> None:
    async with served(settings) as (app, _):
        job = await prepared(app, request(other, other.payload(now=1_000_000)))
        before = await stored_counts(conn)
        with pytest.raises(ApiError):
            await app.state.appender.append(job)
    assert await stored_counts(conn) == before
    assert before["ledger_heads"] == 0


async def test_a_first_report_waits_for_its_idempotency_key_before_making_a_head(
    settings: Settings,
    conn: asyncpg.Connection,
    other: Signer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The single path takes the Idempotency-Key lock, then may make the district's
    # first head. A batch that made that head, then waited for the key, would deadlock
    # with it: the batch must wait for the key before it makes anything.
    retrying, key_taken = asyncio.Event(), asyncio.Event()
    begin_batch = appends.begin_batch

    async def gated(*args: Any, make_missing: bool, **kwargs: Any) -> Any:
        if make_missing:  # the batch found no head and rolled back: now take the key
            retrying.set()
            await key_taken.wait()
        return await begin_batch(*args, make_missing=make_missing, **kwargs)

    monkeypatch.setattr(appends, "begin_batch", gated)
    async with served(settings) as (app, _):
        job = await prepared(app, request(other, other.payload(), key="retry-1"))
        batched = asyncio.ensure_future(app.state.appender.append(job))
        await asyncio.wait_for(retrying.wait(), timeout=10)
        async with conn.transaction():  # a single-path append of the same key, under way
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                f"idempotency:{other.person.id}:retry-1",
            )
            key_taken.set()
            await lock_waiters(conn, 1)  # the batch's retry runs into the key
            assert not batched.done()
            await conn.execute(  # the single path makes the head without waiting
                "INSERT INTO ledger_heads (district_code, seq, hash) VALUES ('15.71', 0, $1) "
                "ON CONFLICT (district_code) DO NOTHING",
                "0" * 64,
            )
        outcome = await asyncio.wait_for(batched, timeout=10)
        assert app.state.appender.fallbacks == 0  # not a deadlock's victim, appended alone
    assert outcome.status_code == 201
    assert await conn.fetchval("SELECT seq FROM ledger_heads WHERE district_code = '15.71'") == 1


async def test_a_failed_batch_is_appended_one_by_one(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person], other: Signer
) -> None:
    """A real failure inside PostgreSQL fails the batch's transaction: the others are
    still stored, once each, and only the bad one gets an error."""
    await conn.execute(
        """
        CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'poisoned report'; END $$;
        CREATE TRIGGER poison BEFORE INSERT ON submissions FOR EACH ROW
            WHEN (NEW.note = 'poison') EXECUTE FUNCTION refuse_poison();
        """
    )
    head = await register_key(conn, people["district_head"])
    requests = [
        request(head, head.payload(), key="a"),
        request(other, other.payload(note="poison")),
        request(head, head.payload()),
        request(other, other.payload()),
    ]
    async with served(settings) as (app, _):
        appender: Appender = app.state.appender
        jobs = [await prepared(app, r) for r in requests]
        outcomes = await asyncio.gather(*(appender.append(j) for j in jobs), return_exceptions=True)
        assert appender.fallbacks == 1
    assert [type(o).__name__ for o in outcomes] == [
        "SubmitResult",
        "RaiseError",
        "SubmitResult",
        "SubmitResult",
    ]
    chains = await conn.fetch(
        "SELECT district_code, array_agg(seq ORDER BY seq) AS seqs FROM submissions "
        "GROUP BY district_code ORDER BY district_code"
    )
    assert [(r["district_code"], r["seqs"]) for r in chains] == [("15.71", [1]), ("16.71", [1, 2])]
    assert await conn.fetchval("SELECT count(*) FROM idempotency_keys") == 1


async def test_two_replicas_batching_into_one_district_keep_one_chain(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    head = await register_key(conn, people["district_head"])
    division = await register_key(conn, people["division_head"])
    async with served(settings) as (a, http_a), served(settings) as (b, http_b):

        async def send(i: int) -> int:
            app, http = (a, http_a) if i % 2 else (b, http_b)
            signer = division if i % 7 == 0 else head
            headers = {**bearer(app, signer.person), "Content-Type": JOSE}
            response = await http.post("/v1/submissions", content=signer.sign(), headers=headers)
            return response.status_code

        statuses = await asyncio.gather(*(send(i) for i in range(60)))
        verified = await http_a.get(
            "/v1/districts/16.71/ledger/verify", headers=bearer(a, people["province_head"])
        )
        assert a.state.appender.largest > 1 and b.state.appender.largest > 1
    assert statuses == [201] * 60
    assert verified.json() == {"district": "16.71", "ok": True, "entries": 60, "first_broken": None}
    rows = await conn.fetch("SELECT seq, prev_hash, hash, jws FROM submissions ORDER BY seq")
    prev = "0" * 64
    for n, row in enumerate(rows, start=1):
        assert (row["seq"], row["prev_hash"]) == (n, prev)
        assert row["hash"] == hashlib.sha256(prev.encode() + row["jws"].encode()).hexdigest()
        prev = row["hash"]


async def test_closing_writes_what_is_queued_then_refuses(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    head = await register_key(conn, people["district_head"])
    async with served(settings) as (app, _):
        appender: Appender = app.state.appender
        jobs = [await prepared(app, request(head, head.payload())) for _ in range(3)]
        pending = [asyncio.ensure_future(appender.append(j)) for j in jobs]
        await asyncio.sleep(0)
        await appender.close()
        results = await asyncio.gather(*pending)
        with pytest.raises(ApiError) as closed:
            await appender.append(jobs[0])
    assert [r.status_code for r in results] == [201] * 3
    assert closed.value.status_code == 503
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 3


# -- batched equals one at a time ------------------------------------------------------


def script(rng: random.Random) -> list[tuple[dict[str, Any], str | None]]:
    """A district's mixed traffic, as (what to sign, Idempotency-Key): reports on several
    dates, numbers that go up, down and jump, stated percentages, retries, reused keys
    and replayed jtis. The district and jti are filled in per district."""
    out: list[tuple[dict[str, Any], str | None]] = []
    signed: list[tuple[dict[str, Any], str | None]] = []
    for i in range(40):
        roll = rng.random()
        if signed and roll < 0.15:  # a retry, with its key (if any)
            out.append(rng.choice(signed))
            continue
        if signed and roll < 0.22:  # the same jti, another body
            payload, _ = rng.choice(signed)
            out.append(({**payload, "note": f"again {i}"}, None))
            continue
        denominator = rng.choice([1000, 1000, 1000, 1150])
        numerator = rng.randint(850, 1010)
        stated = rng.choice([None, round(numerator / denominator * 100, 2), 99.9])
        value = {"numerator": numerator, "denominator": denominator, "stated_pct": stated}
        payload = {"n": i, "as_of": today() - timedelta(days=rng.randint(0, 4)), "v": value}
        entry = (payload, rng.choice([None, f"key-{i}", f"key-{i}", "shared"]))
        signed.append(entry)
        out.append(entry)
    return out


def played_by(signer: Signer, traffic: list[tuple[dict[str, Any], str | None]]) -> list[Request]:
    """The traffic signed by ``signer`` for their district, with jtis of their own.

    One ``iat`` for all: a retry must be the same bytes as its original, even when the
    clock passes a whole second between signing the two."""
    signed_at = time.time()
    out = []
    for op, key in traffic:
        payload = signer.payload(
            {"ktp_el": op["v"]}, as_of=op["as_of"], note=op.get("note"), now=signed_at
        )
        payload["jti"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{signer.kid}/{op['n']}"))
        out.append(request(signer, payload, key))
    return out


def shape(outcome: SubmitResult | BaseException) -> Any:
    """What must match between the two ways: the answer without ids, times, hashes."""
    if isinstance(outcome, ApiError):
        return outcome.status_code, outcome.slug
    assert isinstance(outcome, SubmitResult), outcome
    doc = body(outcome)
    return (
        outcome.status_code,
        outcome.replayed,
        doc["ledger"]["seq"],
        doc["flags"],
        [(v["indicator"], v["flags"]) for v in doc["values"]],
        doc["as_of"],
    )


async def test_batched_answers_and_rows_equal_one_transaction_each(
    settings: Settings, conn: asyncpg.Connection
) -> None:
    traffic = script(random.Random(20261126))
    batched = await register_key(
        conn, await make_user(conn, "district_head", username="batched", area_code="16.71")
    )
    single = await register_key(
        conn, await make_user(conn, "district_head", username="single", area_code="16.72")
    )
    async with served(settings) as (app, _):
        batch_outcomes: list[Any] = []
        requests = played_by(batched, traffic)
        for start in range(0, len(requests), 13):  # a few batches of mixed traffic
            batch_outcomes += await one_batch(app, requests[start : start + 13])
        single_outcomes: list[Any] = []
        caller = await principal_of(app, single.person)
        for r in played_by(single, traffic):
            try:
                async with app.state.pool.acquire() as c, c.transaction():
                    single_outcomes.append(
                        await submit(
                            c,
                            app.state.settings,
                            caller,
                            r.body,
                            content_type=JOSE,
                            idempotency_key=r.key,
                        )
                    )
            except ApiError as exc:
                single_outcomes.append(exc)
    shapes = [shape(o) for o in batch_outcomes]
    assert shapes == [shape(o) for o in single_outcomes]
    assert {s[0] for s in shapes} == {201, 409, 422}
    assert any(s[3] for s in shapes if s[0] == 201)  # some reports were flagged
    rows = await conn.fetch(
        "SELECT district_code, seq, indicator_code, numerator, denominator, flags, as_of, "
        "stated_pct::text, channels FROM submission_values ORDER BY district_code, seq"
    )
    by_district: dict[str, list[Any]] = {"16.71": [], "16.72": []}
    for r in rows:
        by_district[r["district_code"]].append(tuple(r.values())[1:])
    assert by_district["16.71"] == by_district["16.72"]
    assert len(by_district["16.71"]) > 20
    # A value's district and division are its submission's (migration 0009 checks them
    # only through the submission row), both ways.
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM submission_values v "
            "JOIN submissions s ON s.id = v.submission_id "
            "WHERE v.district_code <> s.district_code "
            "OR v.division_id IS DISTINCT FROM s.division_id "
            "OR v.as_of <> s.as_of OR v.seq <> s.seq"
        )
        == 0
    )


@asynccontextmanager
async def holding_palembang(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """Someone else holds Kota Palembang's ledger head: its next batch waits."""
    async with conn.transaction():
        await conn.execute("SELECT 1 FROM ledger_heads WHERE district_code = '16.71' FOR UPDATE")
        yield


async def test_a_district_waiting_on_its_lock_does_not_hold_up_another(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person], other: Signer
) -> None:
    head = await register_key(conn, people["district_head"])
    async with served(settings) as (app, _):
        appender: Appender = app.state.appender
        await appender.append(await prepared(app, request(head, head.payload())))
        blocked_job = await prepared(app, request(head, head.payload()))
        free_job = await prepared(app, request(other, other.payload()))
        async with holding_palembang(conn):  # someone holds Kota Palembang's ledger head
            blocked = asyncio.ensure_future(appender.append(blocked_job))
            await lock_waiters(conn, 1)  # its batch waits on the head
            free = await asyncio.wait_for(appender.append(free_job), timeout=10)
            assert not blocked.done()
        assert (await blocked).status_code == 201
    assert free.status_code == 201
    assert body(free)["district"] == "15.71"


async def first_batch_taking(
    app: Litestar, conn: asyncpg.Connection, head: Signer, seconds: float
) -> None:
    """Append a first report whose batch waits ``seconds`` on its district's lock, so
    batches "usually" take that long for the appender."""
    appender: Appender = app.state.appender
    first = asyncio.ensure_future(
        appender.append(await prepared(app, request(head, head.payload())))
    )
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('kinerja.latest:16.71'))")
        await asyncio.sleep(seconds)
    assert (await first).status_code == 201


@asynccontextmanager
async def patient_after_first_batch(
    settings: Settings, conn: asyncpg.Connection, head: Signer, seconds: float
) -> AsyncIterator[tuple[Litestar, Appender]]:
    """A served app whose overlap cap is far off (60 s) and that does not linger, whose
    first batch took ``seconds`` (so batches "usually" take that long); the app and its
    appender."""
    patient = msgspec.structs.replace(
        settings, ingest_overlap_after_ms=60_000.0, ingest_linger_ms=0.0
    )
    async with served(patient) as (app, _):
        await first_batch_taking(app, conn, head, seconds)
        yield app, app.state.appender


async def test_a_second_batch_waits_while_the_first_is_young(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person], other: Signer
) -> None:
    """Until the batch being written has taken twice as long as batches usually take,
    what arrives waits for the next batch instead of starting one beside it."""
    head = await register_key(conn, people["district_head"])
    async with patient_after_first_batch(settings, conn, head, 1.0) as (app, appender):
        # Batches usually take 1 s now, so a second one waits up to 2 s.
        blocked_job = await prepared(app, request(head, head.payload()))
        free_jobs = [await prepared(app, request(other, other.payload())) for _ in range(2)]
        async with holding_palembang(conn):  # Kota Palembang's next batch waits on this lock
            blocked = asyncio.ensure_future(appender.append(blocked_job))
            await lock_waiters(conn, 1)  # its batch is being written, waiting on the head
            free = asyncio.gather(*(appender.append(job) for job in free_jobs))
            await asyncio.sleep(0.4)
            assert not free.done() and not blocked.done()  # held: the first is young
            # Past twice the usual time (not the 60 s cap), the second starts beside it.
            answers = await asyncio.wait_for(free, timeout=10)
            assert [a.status_code for a in answers] == [201, 201]
            assert not blocked.done()
        assert (await blocked).status_code == 201
    assert appender.batches == 3  # the first, the blocked one, and the two together


async def test_a_lone_request_waits_for_a_young_batch_too(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person], other: Signer
) -> None:
    """A request alone in the queue also waits while the batch being written is young,
    and starts beside it once that batch has taken twice the usual time."""
    head = await register_key(conn, people["district_head"])
    async with patient_after_first_batch(settings, conn, head, 1.0) as (app, appender):
        # Batches usually take 1 s now, so a second one waits up to 2 s.
        blocked_job = await prepared(app, request(head, head.payload()))
        free_job = await prepared(app, request(other, other.payload()))
        async with holding_palembang(conn):
            blocked = asyncio.ensure_future(appender.append(blocked_job))
            await lock_waiters(conn, 1)  # its batch is being written, waiting on the head
            free = asyncio.ensure_future(appender.append(free_job))
            await asyncio.sleep(0.4)
            assert not free.done() and not blocked.done()  # held: the first is young
            assert (await asyncio.wait_for(free, timeout=10)).status_code == 201
            assert not blocked.done()
        assert (await blocked).status_code == 201
    assert appender.batches == 3


async def test_a_lone_request_starts_at_once_when_nothing_is_being_written(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """With no batch being written, a request is not held back for the batches' usual
    time (at most for the linger, here none)."""
    head = await register_key(conn, people["district_head"])
    async with patient_after_first_batch(settings, conn, head, 2.0) as (app, appender):
        # Batches usually take 2 s now; a held request would wait up to 4 s.
        job = await prepared(app, request(head, head.payload()))
        answer = await asyncio.wait_for(appender.append(job), timeout=1.5)
        assert answer.status_code == 201


@asynccontextmanager
async def lingering(
    settings: Settings, linger_ms: float, batch_max: int = 64
) -> AsyncIterator[tuple[Litestar, Appender]]:
    """A served app whose first request queued waits ``linger_ms`` for company."""
    changed = msgspec.structs.replace(
        settings, ingest_linger_ms=linger_ms, ingest_batch_max=batch_max
    )
    async with served(changed) as (app, _):
        yield app, app.state.appender


async def test_with_a_linger_the_first_request_waits_for_company(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person], other: Signer
) -> None:
    """KINERJA_INGEST_LINGER_MS: with nothing being written, the first request waits for
    others to share its batch; one that fills the batch ends the wait."""
    head = await register_key(conn, people["district_head"])
    async with lingering(settings, 60_000.0, batch_max=2) as (app, appender):
        first_job = await prepared(app, request(head, head.payload()))
        second_job = await prepared(app, request(other, other.payload()))
        first = asyncio.ensure_future(appender.append(first_job))
        await asyncio.sleep(0.3)
        assert not first.done()  # lingering, nothing written yet
        assert appender._look_due is not None
        assert await conn.fetchval("SELECT count(*) FROM submissions") == 0
        second = await asyncio.wait_for(appender.append(second_job), timeout=30)
        assert (await first).status_code == 201
        assert second.status_code == 201
        assert (appender.batches, appender.largest) == (1, 2)  # the two together
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 2


async def test_a_request_that_lingered_alone_is_written_when_the_linger_ends(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    head = await register_key(conn, people["district_head"])
    async with lingering(settings, 200.0) as (app, appender):
        job = await prepared(app, request(head, head.payload()))
        loop = asyncio.get_running_loop()
        started = loop.time()
        answer = await asyncio.wait_for(appender.append(job), timeout=30)
        assert loop.time() - started >= 0.19  # it waited out the linger
        assert answer.status_code == 201
        assert (appender.batches, appender.largest) == (1, 1)


async def test_a_full_batch_does_not_linger(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person], other: Signer
) -> None:
    """A queue that already fills a batch has no company to wait for."""
    head = await register_key(conn, people["district_head"])
    async with lingering(settings, 60_000.0, batch_max=2) as (app, appender):
        jobs = [
            await prepared(app, request(head, head.payload())),
            await prepared(app, request(other, other.payload())),
        ]
        answers = await asyncio.wait_for(
            asyncio.gather(*(appender.append(job) for job in jobs)), timeout=30
        )
        assert [a.status_code for a in answers] == [201, 201]
        assert (appender.batches, appender.largest) == (1, 2)


async def test_a_lingering_request_is_written_when_the_server_stops(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """Shutting down cuts a linger short, and writes what lingered."""
    head = await register_key(conn, people["district_head"])
    async with lingering(settings, 60_000.0) as (app, appender):
        pending = asyncio.ensure_future(
            appender.append(await prepared(app, request(head, head.payload())))
        )
        await asyncio.sleep(0.05)
        assert not pending.done() and appender._look_due is not None  # lingering
        await asyncio.wait_for(appender.close(), timeout=30)
        assert (await pending).status_code == 201
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 1


async def test_refusals_come_in_the_order_one_transaction_each_gives_them(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """Checks made before the batch must not pre-empt ones the single path makes first:
    the times before the indicators, and a revocation before everything else, even when
    the worker's copy of the key was made before the revocation."""
    head = await register_key(conn, people["district_head"])
    async with served(settings) as (app, http):
        headers = {**bearer(app, head.person), "Content-Type": JOSE}

        async def post(jws: str) -> tuple[int, str]:
            response = await http.post("/v1/submissions", content=jws.encode(), headers=headers)
            return response.status_code, response.json().get("type", "").rsplit("/", 1)[-1]

        assert (await post(head.sign()))[0] == 201  # the worker now has the key
        stale_and_unknown = head.sign({"no_such_indicator": (1, 2)}, now=1_000_000)
        assert await post(stale_and_unknown) == (422, "iat-too-old")
        await conn.execute("UPDATE signing_keys SET revoked_at = now() WHERE kid = $1", head.kid)
        outside = head.sign(district="31.71")
        assert await post(outside) == (422, "invalid-signature")
        assert await post(head.sign()) == (422, "invalid-signature")
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 1


async def test_a_wake_up_that_has_passed_does_not_stop_the_next(settings: Settings) -> None:
    """The appender looks again when a held batch is due; a look that has already fired
    must not stand in for a later one (the queue would wait for the next arrival)."""
    appender = Appender(cast(asyncpg.Pool, None), settings, None, batch_max=4, in_flight=2)
    loop = asyncio.get_running_loop()
    wake = appender._wake
    appender._look_at(loop, loop.time() + 0.01)
    await asyncio.wait_for(wake.wait(), timeout=2)
    wake.clear()
    appender._look_at(loop, loop.time() + 0.05)
    await asyncio.wait_for(wake.wait(), timeout=2)
    wake.clear()
    appender._look_at(loop, loop.time() + 30)  # a later look does not replace an
    appender._look_at(loop, loop.time() + 0.05)  # earlier one, nor the other way round
    await asyncio.wait_for(wake.wait(), timeout=2)
    wake.clear()
    for _ in range(3):  # shorter than uvloop's millisecond clock, one after the other
        appender._look_at(loop, loop.time() + 0.0001)
        await asyncio.wait_for(wake.wait(), timeout=2)
        wake.clear()


def test_the_batch_wait_works_on_uvloop(settings: Settings) -> None:
    """The server's loop is uvloop, whose handles for waits under a millisecond differ."""

    async def looks() -> None:
        await test_a_wake_up_that_has_passed_does_not_stop_the_next(settings)

    uvloop.run(looks())


async def test_reports_queued_when_the_appender_fails_are_answered(
    settings: Settings,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    other: Signer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A bug that stops the appender's loop answers what waits in its queue (500) and
    refuses later reports (503), instead of leaving requests open for ever."""
    head = await register_key(conn, people["district_head"])
    patient = msgspec.structs.replace(
        settings, ingest_overlap_after_ms=60_000.0, ingest_linger_ms=0.0
    )
    async with served(patient) as (app, _):
        appender: Appender = app.state.appender
        await first_batch_taking(app, conn, head, 1.0)  # so the next two are held back
        blocked_job = await prepared(app, request(head, head.payload()))
        queued_jobs = [await prepared(app, request(other, other.payload())) for _ in range(2)]

        def broken(*_: object) -> None:
            raise RuntimeError("a bug")

        monkeypatch.setattr(appender, "_look_at", broken)
        async with holding_palembang(conn):
            blocked = asyncio.ensure_future(appender.append(blocked_job))
            await lock_waiters(conn, 1)  # its batch is being written, waiting on the head
            queued = asyncio.gather(
                *(appender.append(job) for job in queued_jobs), return_exceptions=True
            )
            answers = await asyncio.wait_for(queued, timeout=10)
            assert len(answers) == 2
            assert all(isinstance(a, RuntimeError) for a in answers), answers
            with pytest.raises(ApiError) as refused:
                await appender.append(await prepared(app, request(other, other.payload())))
            assert refused.value.status_code == 503
        assert (await blocked).status_code == 201  # the batch already sent still ends


@pytest.mark.parametrize("batch_max", [0, 64])
async def test_a_report_stored_long_ago_and_sent_again_is_a_replay_not_too_old(
    batch_max: int, settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """Its answer lost and its Idempotency-Key expired, a report stored long ago comes
    back from the client's outbox: "already received" tells the client it is stored;
    "too old" would have it signed again, and stored twice."""
    head = await register_key(conn, people["district_head"])
    jws = head.sign(now=time.time() - 60)
    async with served(settings) as (app, http):
        headers = {**bearer(app, head.person), "Content-Type": JOSE}
        first = await http.post("/v1/submissions", content=jws.encode(), headers=headers)
        assert first.status_code == 201, first.text
    strict = msgspec.structs.replace(
        settings, submission_iat_max_age_s=30, ingest_batch_max=batch_max
    )
    async with served(strict) as (app, http):
        headers = {**bearer(app, head.person), "Content-Type": JOSE}
        again = await http.post("/v1/submissions", content=jws.encode(), headers=headers)
        fresh_but_old = await http.post(
            "/v1/submissions", content=head.sign(now=time.time() - 60).encode(), headers=headers
        )
    assert again.status_code == 409, again.text
    assert again.json()["type"].endswith("jti-replayed")
    assert fresh_but_old.status_code == 422  # a new report that old is still refused
    assert fresh_but_old.json()["type"].endswith("iat-too-old")
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 1
