"""Authentication and signatures: findings of a security review, each failed before its fix."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from typing import Any

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api import identity
from api.auth.passwords import hash_password
from api.auth.principal import Principal
from api.errors import Unprocessable, _from_integrity_error
from api.schemas.identity import UserPatch
from api.settings import Settings
from db.pool import connect
from tests.people import Person, bearer, forged_after_rotation, make_division, token_for
from tests.submitting import served
from tests.waiting import lock_waiters

#: The year PATCH /v1/users judges region coordination by (any will do here).
THIS_YEAR = 2026


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


async def get_me(client: AsyncTestClient[Litestar], token: str) -> Any:
    return await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})


def principal_of(person: Person) -> Principal:
    return Principal(
        id=person.id,
        username=person.username,
        role=person.role,  # type: ignore[arg-type]
        area_code=person.area_code,
        division_id=person.division_id,
    )


# -- 1. a rotated-out server key keeps minting valid tokens for ever -----------------------


async def test_a_rotated_out_server_key_cannot_mint_tokens_after_the_rotation(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    """`kinerja keys rotate` is what an operator runs when the token key leaks. Tokens of
    the old key should verify only "until they expire" (at most ttl + leeway after the
    rotation); a token the old key signs an hour after the rotation must be refused."""
    # The rotation happened an hour ago: every token the old key legitimately issued
    # (15 minutes each) has long expired.
    now = int(time.time())
    forged = await forged_after_rotation(conn, app, people["admin"], iat=now, exp=now + 900)
    response = await get_me(client, forged)
    assert response.status_code == 401, "the retired key still signs admin tokens"


# -- 2. reactivating a user revives the tokens issued before the deactivation -------------


async def test_reactivation_does_not_revive_tokens_issued_before_the_deactivation(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    """Suspend, reset the password, reactivate: the usual response to a stolen account.
    The thief's token, issued before the suspension, must stay dead."""
    stolen = token_for(app, people["district_head"])
    assert (await get_me(client, stolen)).status_code == 200
    admin = bearer(app, people["admin"])
    user = f"/v1/users/{people['district_head'].id}"
    off = await client.patch(user, json={"active": False}, headers=admin)
    assert off.status_code == 200
    assert (await get_me(client, stolen)).status_code == 401
    reset = await client.patch(
        user, json={"password": "a-brand-new-password", "active": True}, headers=admin
    )
    assert reset.status_code == 200 and reset.json()["active"] is True
    assert (await get_me(client, stolen)).status_code == 401, "the stolen token works again"


async def test_a_deactivation_made_with_sql_ends_tokens_for_good(
    settings: Settings, people: dict[str, Person], conn: asyncpg.Connection
) -> None:
    """An operator suspending an account from psql, then restoring it: the tokens issued
    before the suspension must stay dead, as when it is done through the API; so must
    those issued before a password set with SQL. Before migration 0022 the generation
    moved only in the API's UPDATE, and the reactivation revived the old tokens."""
    head = people["district_head"]
    async with served(settings) as (app, http):

        async def me(token: str) -> int:
            await app.state.change_feed.sync()  # the server has seen the change
            response = await http.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
            return response.status_code

        before = token_for(app, head)
        assert await me(before) == 200
        await conn.execute("UPDATE users SET active = false WHERE id = $1", head.id)
        await conn.execute("UPDATE users SET active = true WHERE id = $1", head.id)
        assert await me(before) == 401, "the old token works again"
        fresh = token_for(app, head, generation=1)
        assert await me(fresh) == 200
        await conn.execute(
            "UPDATE users SET full_name = 'Renamed', active = true WHERE id = $1", head.id
        )
        assert await me(fresh) == 200, "nothing that ends tokens changed"
        await conn.execute("UPDATE users SET password_hash = password_hash WHERE id = $1", head.id)
        assert await me(fresh) == 200, "the same hash is no new password"
        await conn.execute(
            "UPDATE users SET password_hash = $2 WHERE id = $1",
            head.id,
            hash_password("a-password-set-with-sql"),
        )
        assert await me(fresh) == 401, "a password set with SQL"


# -- 3. keys whose private key is public (the generator) are accepted ----------------------


@pytest.mark.parametrize("curve", ["Ed25519", "P-256"])
async def test_a_key_whose_private_key_is_known_is_refused(
    curve: str,
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    """The base point (private scalar 1) lets anyone sign "as" the holder, so reports
    signed with it prove nothing about who made them (non-repudiation is the point of
    signed reports)."""
    if curve == "Ed25519":
        base = bytes.fromhex("58" + "66" * 31)  # RFC 8032's B
        jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64(base)}
    else:
        g = ec.derive_private_key(1, ec.SECP256R1()).public_key().public_numbers()
        jwk = {
            "kty": "EC",
            "crv": "P-256",
            "x": b64(g.x.to_bytes(32, "big")),
            "y": b64(g.y.to_bytes(32, "big")),
        }
    response = await client.post(
        "/v1/keys", json={"jwk": jwk}, headers=bearer(app, people["district_head"])
    )
    assert response.status_code == 422, response.text
    assert await conn.fetchval("SELECT count(*) FROM signing_keys") == 0


# -- 4. concurrent user edits: stale checks, and a password hash in the logs ---------------


async def test_racing_user_edits_are_judged_one_after_the_other(
    database_url: str,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """patch_user checked a row it read without a lock, then updated it: two edits at once
    (one makes a division head a district head, the other moves them to another division)
    broke the users CHECK, a 409 whose log line quoted the failing row, password hash and
    all. The second edit now waits for the first and is refused for what it would do."""
    head = people["division_head"]
    other_division = await make_division(conn, head.area_code, "pencatatan")
    admin = principal_of(people["admin"])
    first = await connect(database_url)
    second = await connect(database_url)
    try:
        tx = first.transaction()
        await tx.start()
        await identity.patch_user(
            first, admin, head.id, UserPatch(role="district_head"), this_year=THIS_YEAR
        )

        async def move() -> None:
            async with second.transaction():
                await identity.patch_user(
                    second,
                    admin,
                    head.id,
                    UserPatch(division_id=other_division),
                    this_year=THIS_YEAR,
                )

        racing = asyncio.create_task(move())
        await lock_waiters(conn, 1)  # the second edit waits for the first one's row lock
        await tx.commit()
        with pytest.raises(Unprocessable):
            await racing
    finally:
        await first.close()
        await second.close()
    row = await conn.fetchrow("SELECT role, division_id FROM users WHERE id = $1", head.id)
    assert (row["role"], row["division_id"]) == ("district_head", None)


async def test_an_integrity_error_is_logged_without_the_failing_row(
    conn: asyncpg.Connection, people: dict[str, Person], caplog: pytest.LogCaptureFixture
) -> None:
    """PostgreSQL's detail quotes the failing row (PostgreSQL cuts each value at 64 bytes:
    a password's salt and half its digest, enough to test guesses offline)."""
    head = people["division_head"]
    with pytest.raises(asyncpg.IntegrityConstraintViolationError) as caught:
        await conn.execute("UPDATE users SET role = 'district_head' WHERE id = $1", head.id)
    stored_hash = await conn.fetchval("SELECT password_hash FROM users WHERE id = $1", head.id)
    with caplog.at_level(logging.DEBUG):
        _from_integrity_error(caught.value)
    assert caplog.text and stored_hash[:40] not in caplog.text
