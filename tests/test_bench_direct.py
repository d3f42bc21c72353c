"""The benchmark's direct-insert reference writes what the API writes for the same
submission, so the ratio between them is the overhead of the API alone."""

from __future__ import annotations

from typing import Any

import asyncpg

from api.ledger import verify_district
from api.settings import Settings
from bench import dataset
from bench.run import append_batch_directly, append_directly
from tests.people import Person, bearer
from tests.submitting import JOSE, VALUES, register_key, served, today


async def written(conn: asyncpg.Connection) -> dict[str, Any]:
    return dict(
        await conn.fetchrow(
            "SELECT (SELECT count(*) FROM submissions) AS submissions, "
            "(SELECT count(*) FROM submission_values) AS submission_values, "
            "(SELECT count(*) FROM idempotency_keys) AS idempotency_keys, "
            "(SELECT coalesce(sum(version), 0) FROM data_versions) AS data_versions, "
            "(SELECT coalesce(sum(seq), 0) FROM ledger_heads) AS head_seq, "
            "(SELECT count(*) FROM latest_values) AS latest_values"
        )
    )


def grown(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {k: after[k] - before[k] for k in before}


async def test_the_direct_reference_writes_what_the_api_writes(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    signer = await register_key(conn, people["district_head"])
    async with served(settings) as (app, http):
        # A first report, so that every later one only adds to what exists.
        for key in ("first", "second"):
            before = await written(conn)
            response = await http.post(
                "/v1/submissions",
                content=signer.sign(),
                headers={
                    **bearer(app, signer.person),
                    "Content-Type": JOSE,
                    "Idempotency-Key": key,
                },
            )
            assert response.status_code == 201, response.text
        by_api = grown(before, await written(conn))
    assert by_api["idempotency_keys"] == 1 and by_api["submissions"] == 1
    head_hash = await conn.fetchval("SELECT hash FROM ledger_heads WHERE district_code = '16.71'")
    head = dataset.Head(
        user_id=signer.person.id,
        district="16.71",
        key=signer.key,
        kid=signer.kid,
        seq=2,
        hash=head_hash,
    )
    for append in (
        lambda jws, payload: append_directly(conn, head, jws, payload, today()),
        lambda jws, payload: append_batch_directly(conn, [(head, jws, payload)], today()),
    ):
        jws, payload = dataset.signed_submission(head, today(), VALUES)
        before = await written(conn)
        async with conn.transaction():
            await append(jws, payload)
        assert grown(before, await written(conn)) == by_api
    async with conn.transaction():
        report = await verify_district(conn, "16.71")
    assert report.ok and report.entries == 4, report
