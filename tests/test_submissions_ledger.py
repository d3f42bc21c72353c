"""The ledger: contiguous under concurrency, and any edit behind the API's back is named."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.cli import main
from api.ledger import _check_payload
from api.settings import Settings
from client.keys import public_jwk
from db import ledger as ledger_db
from db import submissions as sub_db
from db.ledger import GENESIS_HASH, ChainEntry
from tests.people import Person, bearer, make_user
from tests.submitting import Signer, register_key, served, submit
from tests.waiting import lock_waiters


@pytest.fixture
async def head(conn: asyncpg.Connection, people: dict[str, Person]) -> Signer:
    return await register_key(conn, people["district_head"])


async def verify(
    client: AsyncTestClient[Litestar], app: Litestar, who: Person, district: str = "16.71"
) -> dict[str, Any]:
    response = await client.get(f"/v1/districts/{district}/ledger/verify", headers=bearer(app, who))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def chain_of(conn: asyncpg.Connection, district: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, seq, prev_hash, hash, jws FROM submissions WHERE district_code = $1 "
        "ORDER BY seq",
        district,
    )


@pytest.mark.parametrize("batch_max", [0, 64], ids=["one-per-transaction", "batched"])
async def test_fifty_concurrent_submissions_leave_a_contiguous_chain(
    batch_max: int,
    settings: Settings,
    conn: asyncpg.Connection,
    head: Signer,
    people: dict[str, Person],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    division = await register_key(conn, people["division_head"])
    signers = [head if i % 5 else division for i in range(50)]
    # Count requests waiting for the district's head at once: the lock must be contended.
    waiting = {"now": 0, "most": 0}
    lock_head = sub_db.lock_head

    async def counted(*args: Any, **kwargs: Any) -> Any:
        waiting["now"] += 1
        waiting["most"] = max(waiting["most"], waiting["now"])
        try:
            return await lock_head(*args, **kwargs)
        finally:
            waiting["now"] -= 1

    monkeypatch.setattr(sub_db, "lock_head", counted)

    async with served(msgspec.structs.replace(settings, ingest_batch_max=batch_max)) as (
        app,
        http,
    ):

        async def send(signer: Signer) -> httpx.Response:
            headers = {**bearer(app, signer.person), "Content-Type": "application/jose"}
            return await http.post("/v1/submissions", content=signer.sign(), headers=headers)

        responses = await asyncio.gather(*(send(s) for s in signers))
        report = await http.get(
            "/v1/districts/16.71/ledger/verify", headers=bearer(app, people["province_head"])
        )
    assert [r.status_code for r in responses] == [201] * 50, [r.text for r in responses]
    if batch_max:  # the district's submissions were appended together, in order
        assert app.state.appender.largest > 1
        assert waiting["most"] == 0
    else:  # each request waited for the district's head in its own transaction
        assert waiting["most"] > 1
    chain = await chain_of(conn, "16.71")
    assert [r["seq"] for r in chain] == list(range(1, 51))
    prev = "0" * 64
    for row in chain:
        assert row["prev_hash"] == prev
        assert row["hash"] == hashlib.sha256(prev.encode() + row["jws"].encode()).hexdigest()
        prev = row["hash"]
    assert await conn.fetchval("SELECT seq FROM ledger_heads WHERE district_code = '16.71'") == 50
    assert {r.json()["ledger"]["seq"] for r in responses} == set(range(1, 51))
    assert report.json() == {"district": "16.71", "ok": True, "entries": 50, "first_broken": None}


async def test_districts_have_separate_chains(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    head: Signer,
) -> None:
    other_head = await make_user(conn, "district_head", username="kadis_oki", area_code="16.02")
    other = await register_key(conn, other_head)
    results = await asyncio.gather(
        *(submit(client, app, s) for s in [head, other, head, other, head, other])
    )
    assert sorted(r["ledger"]["seq"] for r in results if r["district"] == "16.02") == [1, 2, 3]
    assert sorted(r["ledger"]["seq"] for r in results if r["district"] == "16.71") == [1, 2, 3]


async def test_a_key_revoked_later_still_verifies_what_it_signed(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    head: Signer,
    people: dict[str, Person],
) -> None:
    await submit(client, app, head)
    revoked = await client.post(
        f"/v1/keys/{head.kid}/revoke", headers=bearer(app, people["district_head"])
    )
    assert revoked.status_code == 200
    assert (await verify(client, app, people["admin"]))["ok"] is True
    assert (await verify(client, app, people["admin"], "31.71"))["entries"] == 0


async def test_a_report_taken_in_while_its_key_is_being_revoked_still_verifies(
    settings: Settings, head: Signer, people: dict[str, Person], conn: asyncpg.Connection
) -> None:
    """A revocation waits for the reports in flight under its key, and a new report can
    still take the key (shared) while it waits: the revocation's time must be read only
    once it holds the key, or it would come before that report and verify would call
    the report's signature invalid."""
    owner = bearer_of(people["district_head"])
    async with served(settings) as (app, http):
        async with conn.transaction():  # a report in flight under the key
            await conn.execute("SELECT 1 FROM signing_keys WHERE kid = $1 FOR SHARE", head.kid)
            revoking = asyncio.ensure_future(
                http.post(f"/v1/keys/{head.kid}/revoke", headers=owner(app))
            )
            await lock_waiters(conn, 1)
            assert not revoking.done()  # waiting for the report in flight
            sent = await asyncio.wait_for(
                http.post(
                    "/v1/submissions",
                    content=head.sign(),
                    headers={**owner(app), "Content-Type": "application/jose"},
                ),
                timeout=10,
            )
            assert sent.status_code == 201, sent.text
        revoked = await asyncio.wait_for(revoking, timeout=10)
        assert revoked.status_code == 200, revoked.text
        verified = await http.get(
            "/v1/districts/16.71/ledger/verify", headers=bearer(app, people["province_head"])
        )
    assert verified.json() == {"district": "16.71", "ok": True, "entries": 1, "first_broken": None}
    received, revoked_at = await conn.fetchrow(
        "SELECT s.received_at, k.revoked_at FROM submissions s JOIN signing_keys k USING (kid)"
    )
    assert received < revoked_at


def bearer_of(person: Person) -> Callable[[Litestar], dict[str, str]]:
    return lambda app: bearer(app, person)


def b64_json(segment: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return data


def forged_jws(jws: str) -> str:
    header, payload, signature = jws.split(".")
    claims = b64_json(payload)
    claims["values"]["ktp_el"]["numerator"] += 1
    encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{encoded}.{signature}"


@dataclass
class Tamper:
    name: str
    edit: Callable[[asyncpg.Connection, asyncpg.Record], Awaitable[Any]]
    problem: str
    names_entry: bool = True


async def _payload(conn: asyncpg.Connection, row: asyncpg.Record) -> None:
    await conn.execute(
        "UPDATE submissions SET payload = jsonb_set(payload, '{values,ktp_el,numerator}', "
        "'1') WHERE id = $1",
        row["id"],
    )


async def _value(conn: asyncpg.Connection, row: asyncpg.Record) -> None:
    await conn.execute(
        "UPDATE submission_values SET numerator = numerator + 1000 "
        "WHERE submission_id = $1 AND indicator_code = 'ktp_el'",
        row["id"],
    )


async def _as_of(conn: asyncpg.Connection, row: asyncpg.Record) -> None:
    await conn.execute("UPDATE submissions SET as_of = as_of - 1 WHERE id = $1", row["id"])


async def _jws(conn: asyncpg.Connection, row: asyncpg.Record) -> None:
    await conn.execute(
        "UPDATE submissions SET jws = $2 WHERE id = $1", row["id"], forged_jws(row["jws"])
    )


async def _jws_rehashed(conn: asyncpg.Connection, row: asyncpg.Record) -> None:
    # A careful forger recomputes this hash and every later one, and the head.
    rows = await chain_of(conn, "16.71")
    prev = row["prev_hash"]
    for entry in rows[row["seq"] - 1 :]:
        jws = forged_jws(entry["jws"]) if entry["id"] == row["id"] else entry["jws"]
        digest = hashlib.sha256(prev.encode() + jws.encode()).hexdigest()
        await conn.execute(
            "UPDATE submissions SET jws = $2, prev_hash = $3, hash = $4 WHERE id = $1",
            entry["id"],
            jws,
            prev,
            digest,
        )
        prev = digest
    await conn.execute("UPDATE ledger_heads SET hash = $1", prev)


async def _jws_not_ascii(conn: asyncpg.Connection, row: asyncpg.Record) -> None:
    await conn.execute("UPDATE submissions SET jws = jws || 'é' WHERE id = $1", row["id"])


async def _hash(conn: asyncpg.Connection, row: asyncpg.Record) -> None:
    await conn.execute("UPDATE submissions SET hash = repeat('a', 64) WHERE id = $1", row["id"])


async def _prev_hash(conn: asyncpg.Connection, row: asyncpg.Record) -> None:
    await conn.execute(
        "UPDATE submissions SET prev_hash = repeat('b', 64) WHERE id = $1", row["id"]
    )


async def _delete(conn: asyncpg.Connection, row: asyncpg.Record) -> None:
    await conn.execute("DELETE FROM submission_values WHERE submission_id = $1", row["id"])
    await conn.execute("DELETE FROM submissions WHERE id = $1", row["id"])


async def _other_key(conn: asyncpg.Connection, row: asyncpg.Record) -> None:
    owner = await conn.fetchval("SELECT submitter_id FROM submissions WHERE id = $1", row["id"])
    person = Person(owner, "x", "district_head", "16.71")
    forger = await register_key(conn, person)
    await conn.execute("UPDATE submissions SET kid = $2 WHERE id = $1", row["id"], forger.kid)


TAMPERS = [
    Tamper("stored payload edited", _payload, "payload_mismatch"),
    Tamper("value row edited", _value, "values_mismatch"),
    Tamper("as_of column edited", _as_of, "payload_mismatch"),
    Tamper("jws edited", _jws, "hash_mismatch"),
    Tamper("jws edited and chain rehashed", _jws_rehashed, "signature_invalid"),
    Tamper("jws given a non-ASCII character", _jws_not_ascii, "hash_mismatch"),
    Tamper("hash edited", _hash, "hash_mismatch"),
    Tamper("prev_hash edited", _prev_hash, "prev_hash_mismatch"),
    Tamper("kid swapped", _other_key, "signature_invalid"),
    Tamper("entry deleted", _delete, "seq_gap", names_entry=False),
]


@pytest.mark.parametrize("tamper", TAMPERS, ids=lambda t: t.name)
async def test_a_row_changed_with_sql_is_named(
    tamper: Tamper,
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    head: Signer,
    people: dict[str, Person],
) -> None:
    for _ in range(3):
        await submit(client, app, head)
    assert (await verify(client, app, people["district_head"]))["ok"] is True
    second = (await chain_of(conn, "16.71"))[1]
    await tamper.edit(conn, second)
    report = await verify(client, app, people["district_head"])
    assert report["ok"] is False
    broken = report["first_broken"]
    assert broken["problem"] == tamper.problem, broken
    assert broken["seq"] == 2
    assert broken["id"] == (str(second["id"]) if tamper.names_entry else None)


@pytest.mark.parametrize(
    "replace",
    [lambda jwk: public_jwk(Ed25519PrivateKey.generate()), lambda jwk: "not a key"],
    ids=["another key", "not a key"],
)
async def test_a_key_row_given_another_public_key_is_noticed(
    replace: Callable[[dict[str, Any]], Any],
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    head: Signer,
    people: dict[str, Person],
) -> None:
    """Verify checks the key as registered, not a copy a worker parsed earlier: a kid is
    its key's thumbprint, so a row holding another public key under it was changed."""
    for _ in range(2):
        await submit(client, app, head)
    assert (await verify(client, app, people["admin"]))["ok"] is True  # the key is parsed
    registered = await conn.fetchval("SELECT jwk FROM signing_keys WHERE kid = $1", head.kid)
    await conn.execute(
        "UPDATE signing_keys SET jwk = $2 WHERE kid = $1", head.kid, replace(registered)
    )
    report = await verify(client, app, people["admin"])
    assert report["first_broken"] == {
        "seq": 1,
        "id": str((await chain_of(conn, "16.71"))[0]["id"]),
        "problem": "signature_invalid",
        "detail": f"key {head.kid} is not the key registered as it",
    }


async def test_a_first_report_committed_while_verify_reads_is_not_a_broken_head(
    settings: Settings,
    conn: asyncpg.Connection,
    head: Signer,
    people: dict[str, Person],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The district has no head when verify looks for one; its first report commits
    before the chain is read. That is a whole chain, not entries without a head."""
    from api.auth.middleware import authenticate
    from api.submissions import submit as append_alone
    from db.pool import connect

    appender = await connect(database_url)
    try:
        async with served(settings) as (app, http):
            token = bearer(app, head.person)["Authorization"].split()[1]
            first = appender.transaction()
            await first.start()
            await append_alone(
                appender,
                settings,
                await authenticate(app.state, token),
                head.sign().encode(),
                content_type="application/jose",
                idempotency_key=None,
            )
            read_chain = ledger_db.chain

            async def committed_first(*args: Any, **kwargs: Any) -> AsyncIterator[ChainEntry]:
                if appender.is_in_transaction():
                    await first.commit()
                async for entry in read_chain(*args, **kwargs):
                    yield entry

            monkeypatch.setattr(ledger_db, "chain", committed_first)
            response = await http.get(
                "/v1/districts/16.71/ledger/verify", headers=bearer(app, people["admin"])
            )
    finally:
        await appender.close()
    assert response.json() == {"district": "16.71", "ok": True, "entries": 1, "first_broken": None}


SUPERSESSION_TAMPERS = {
    "a correction's mark removed": (
        "UPDATE submissions SET superseded_by = NULL WHERE seq = 1",
        1,
        "corrects it, but it is not marked so",
    ),
    "a good entry marked superseded": (
        "UPDATE submissions SET superseded_by = (SELECT id FROM submissions WHERE seq = 3) "
        "WHERE seq = 2",
        2,
        "which does not",
    ),
    "corrected values made to count again": (
        "UPDATE submission_values SET superseded = false WHERE seq = 1",
        1,
        "its values are marked otherwise than the entry",
    ),
    "a good entry's values made not to count": (
        "UPDATE submission_values SET superseded = true WHERE seq = 2",
        2,
        "its values are marked otherwise than the entry",
    ),
    # Listings filter on the flag (?flag=superseded): found by the black-box review.
    "a corrected entry's flag removed": (
        "UPDATE submissions SET flags = array_remove(flags, 'superseded') WHERE seq = 1",
        1,
        "but it is not flagged superseded",
    ),
    "a good entry flagged superseded": (
        "UPDATE submissions SET flags = flags || '{superseded}' WHERE seq = 2",
        2,
        "flagged superseded, but nothing corrects it",
    ),
}


@pytest.mark.parametrize("tamper", SUPERSESSION_TAMPERS, ids=str)
async def test_a_supersession_mark_the_signed_corrections_do_not_make_is_named(
    tamper: str,
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    head: Signer,
    people: dict[str, Person],
) -> None:
    """Which entry a correction supersedes is signed: its mark (which decides whether
    its values count) follows from the chain, so verify checks it."""
    first = await submit(client, app, head, values={"ktp_el": (10, 20)})
    await submit(client, app, head)
    await submit(client, app, head, values={"ktp_el": (11, 20)}, supersedes=(first["id"], "typo"))
    assert (await verify(client, app, people["admin"]))["ok"] is True
    sql, seq, detail = SUPERSESSION_TAMPERS[tamper]
    await conn.execute(sql)
    report = await verify(client, app, people["admin"])
    broken = report["first_broken"]
    assert (broken["seq"], broken["problem"]) == (seq, "superseded_mismatch"), broken
    assert broken["id"] == str((await chain_of(conn, "16.71"))[seq - 1]["id"])
    assert detail in broken["detail"]


async def test_a_wrong_mark_before_a_broken_entry_is_named_first(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    head: Signer,
    people: dict[str, Person],
) -> None:
    for _ in range(3):
        await submit(client, app, head)
    chain = await chain_of(conn, "16.71")
    await conn.execute(  # the first entry corrects nothing
        "UPDATE submissions SET superseded_by = $1 WHERE id = $2", chain[0]["id"], chain[1]["id"]
    )
    await _hash(conn, chain[2])
    broken = (await verify(client, app, people["admin"]))["first_broken"]
    assert (broken["seq"], broken["problem"]) == (2, "superseded_mismatch"), broken


async def test_the_last_entry_deleted_is_noticed(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    head: Signer,
    people: dict[str, Person],
) -> None:
    for _ in range(3):
        await submit(client, app, head)
    last = (await chain_of(conn, "16.71"))[-1]
    await _delete(conn, last)
    report = await verify(client, app, people["admin"])
    assert report["first_broken"]["problem"] == "seq_gap"
    assert report["first_broken"]["seq"] == 3 and report["entries"] == 2


async def test_who_may_verify(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    outsiders: dict[str, Person],
) -> None:
    def status(who: Person, district: str) -> Awaitable[Any]:
        return client.get(f"/v1/districts/{district}/ledger/verify", headers=bearer(app, who))

    assert (await status(people["district_head"], "16.71")).status_code == 200
    assert (await status(outsiders["district_head"], "16.71")).status_code == 404
    assert (await status(outsiders["province_monitor"], "16.71")).status_code == 404
    assert (await status(people["division_head"], "16.71")).status_code == 403
    assert (await status(people["integration"], "16.71")).status_code == 403
    for code in ("16", "99.99", "ID"):
        assert (await status(people["admin"], code)).status_code == 404


async def test_cli_verifies_every_ledger(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    head: Signer,
    outsiders: dict[str, Person],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for _ in range(2):
        await submit(client, app, head)
    monkeypatch.setenv("DATABASE_URL", database_url)

    def run(*args: str) -> tuple[int, list[dict[str, Any]], str]:
        code = main(["ledger", "verify", *args])
        out, err = capsys.readouterr()
        return code, [json.loads(line) for line in out.splitlines()], err

    code, reports, err = await asyncio.to_thread(run, "--all")
    assert code == 0, err
    assert reports == [{"district": "16.71", "ok": True, "entries": 2, "first_broken": None}]
    assert "1 ledger(s): 0 broken" in err

    second = (await chain_of(conn, "16.71"))[1]
    await _value(conn, second)
    code, reports, _ = await asyncio.to_thread(run, "--district", "16.71")
    assert code == 1
    assert reports[0]["first_broken"] == {
        "seq": 2,
        "id": str(second["id"]),
        "problem": "values_mismatch",
        "detail": "the stored ktp_el.numerator differs",
    }
    code, _, err = await asyncio.to_thread(run, "--district", "99.99")
    assert code == 2 and "no district" in err

    # A JWS that no longer even encodes as ASCII is a broken entry, and the other
    # districts are still checked.
    await _jws_not_ascii(conn, second)
    outsider = await register_key(conn, outsiders["district_head"])
    await submit(client, app, outsider)
    code, reports, err = await asyncio.to_thread(run, "--all")
    assert code == 1, err
    assert sorted((r["district"], r["ok"]) for r in reports) == sorted(
        [(outsiders["district_head"].area_code, True), ("16.71", False)]
    )
    assert {r["district"]: r for r in reports}["16.71"]["first_broken"]["problem"] == (
        "hash_mismatch"
    )


async def test_a_report_returned_while_an_append_waits_no_longer_counts_for_its_flags(
    settings: Settings, database_url: str, conn: asyncpg.Connection, head: Signer
) -> None:
    """A review returning a report holds the district's latest-values lock, not its
    head: an append waiting for that lock must compare with what counts once it holds
    it, not with what counted when its statement began."""
    from api.auth.middleware import authenticate
    from api.submissions import submit as append_alone
    from db.pool import connect

    single = msgspec.structs.replace(settings, ingest_batch_max=0)
    async with served(single) as (app, http):
        headers = {**bearer(app, head.person), "Content-Type": "application/jose"}
        first = await http.post(
            "/v1/submissions", content=head.sign({"ktp_el": (1000, 2000)}), headers=headers
        )
        assert first.status_code == 201, first.text
        caller = await authenticate(app.state, headers["Authorization"].split()[1])
    returned = uuid.UUID(first.json()["id"])
    reviewer = await connect(database_url)
    try:
        review = reviewer.transaction()
        await review.start()  # as api.submissions.review: the row, then its values
        await reviewer.execute("SELECT 1 FROM submissions WHERE id = $1 FOR UPDATE", returned)
        await sub_db.set_status(reviewer, returned, "returned")
        async with conn.transaction():
            appending = asyncio.ensure_future(
                append_alone(
                    conn,
                    single,
                    caller,
                    head.sign({"ktp_el": (900, 2000)}).encode(),
                    content_type="application/jose",
                    idempotency_key=None,
                )
            )
            await lock_waiters(reviewer, 1)  # conn is the append's own: ask on the reviewer's
            assert not appending.done()  # holding the head, waiting for the latest values
            await review.commit()
            appended = await asyncio.wait_for(appending, timeout=10)
    finally:
        await reviewer.close()
    body = msgspec.json.decode(appended.body)
    assert body["ledger"]["seq"] == 2
    assert body["flags"] == []  # not numerator_decreased: the 1,000 was returned


def test_a_report_accepted_under_earlier_bounds_still_verifies() -> None:
    """A stated percentage above 1000 was accepted before the bound (and round-trips
    through jsonb exactly): the check must not call such an entry tampered with."""
    signed = {
        "jti": "de7a7866-3ee3-4f2b-b271-aecb2f95482e",
        "iat": 1_700_000_000,
        "district": "16.71",
        "as_of": "2023-11-01",
        "values": {"ktp_el": {"numerator": 15, "denominator": 1, "stated_pct": 1500.0}},
    }
    entry = ChainEntry(
        id=uuid.uuid4(),
        seq=1,
        prev_hash=GENESIS_HASH,
        hash="",
        jws="",
        payload=json.dumps(signed),
        jti=uuid.UUID(signed["jti"]),
        iat=datetime.fromtimestamp(1_700_000_000, UTC),
        district_code="16.71",
        division_id=None,
        as_of=date(2023, 11, 1),
        kid="k",
        submitter_id=uuid.uuid4(),
        received_at=datetime.fromtimestamp(1_700_000_000, UTC),
        note=None,
        supersedes_id=None,
        supersede_reason=None,
        stored_values="{}",
        status="received",
    )
    claims = _check_payload(entry, json.dumps(signed).encode(), timedelta(seconds=300))
    assert claims.values["ktp_el"].stated_pct == 1500.0
