"""Signed submissions: findings of a review, each once answered differently than the README says."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import jwt
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.settings import Settings
from client.signing import SUBMISSION_TYP, algorithm_for
from tests.people import Person, bearer
from tests.submitting import JOSE, Signer, post_jws, register_key, served


@pytest.fixture
async def head(conn: asyncpg.Connection, people: dict[str, Person]) -> Signer:
    return await register_key(conn, people["district_head"])


def sign_with_header(signer: Signer, payload: dict[str, Any], **header: Any) -> str:
    return jwt.api_jws.encode(
        json.dumps(payload).encode(),
        signer.key,
        algorithm=algorithm_for(signer.key),
        headers={"kid": signer.kid, "typ": SUBMISSION_TYP, **header},
    )


async def test_kid_with_nul_after_a_stored_key_answers_alike_on_both_paths(
    settings: Settings, conn: asyncpg.Connection, head: Signer
) -> None:
    """Same request, same answer on both paths. After a report stored under
    Idempotency-Key k-1, a JWS whose kid holds a NUL is sent with k-1: the single path
    looks the key up first (422 idempotency-key-reused, README); the batched path's
    ``prepare`` replays only on an ApiError, so the asyncpg error from looking the kid
    up escapes it and the same request gets 400 bad-request."""
    odd = sign_with_header(head, head.payload(), kid="abc\x00def")
    answers = []
    for batch_max in (0, 64):
        config = msgspec.structs.replace(settings, ingest_batch_max=batch_max)
        async with served(config) as (app, http):
            headers = {
                **bearer(app, head.person),
                "Content-Type": JOSE,
                "Idempotency-Key": f"k-{batch_max}",
            }
            first = await http.post(
                "/v1/submissions", content=head.sign().encode(), headers=headers
            )
            assert first.status_code == 201, first.text
            again = await http.post("/v1/submissions", content=odd.encode(), headers=headers)
            answers.append((again.status_code, again.json()["type"]))
    assert answers[0] == answers[1], answers
    assert answers[0][0] == 422 and answers[0][1].endswith("idempotency-key-reused")


async def test_a_kid_holding_a_nul_is_an_invalid_signature(
    client: AsyncTestClient[Litestar], app: Litestar, head: Signer
) -> None:
    """README: a signature that does not verify with the caller's own active key is 422
    invalid-signature; a kid with a NUL names no key, but is sent to PostgreSQL as text
    (``key_db.get_key`` / ``lock_for_signing``) and comes back as 400 bad-request."""
    jws = sign_with_header(head, head.payload(), kid="abc\x00def")
    r = await post_jws(client, app, head.person, jws)
    assert r.status_code == 422, r.text
    assert r.json()["type"].endswith("invalid-signature"), r.text
