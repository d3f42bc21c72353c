"""Findings of the review of the second batch of fixes: each test failed before its fix."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api import identity
from api.auth.principal import Principal
from api.auth.tokens import rotate_server_key
from api.schemas.identity import UserPatch
from client.config import save_token
from client.rows import RowError, parse_csv
from db import throttle
from db.pool import connect
from tests.people import PASSWORD, Person, bearer
from tests.test_client_robustness import SUBMIT, run
from tests.test_client_robustness import home as home  # the fixture, shared

# -- server ------------------------------------------------------------------------------

#: The year PATCH /v1/users judges region coordination by (any will do here).
THIS_YEAR = 2026


async def _login(client: AsyncTestClient[Litestar], username: str, password: str) -> str:
    r = await client.post(
        "/v1/auth/token",
        data={"grant_type": "password", "username": username, "password": password},
    )
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token


async def _me(client: AsyncTestClient[Litestar], token: str) -> httpx.Response:
    return await client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})


async def test_login_on_a_worker_that_has_not_reread_the_keys_issues_a_dead_token(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    """The worker re-reads its key ring only on an authenticated request (``admit``); the
    token route is public and ``login`` signs with whatever ring it has. A worker loaded
    before a rotation and idle since signs, ten minutes after the rotation, with the
    retired key; the very next request re-reads the ring and refuses that token (iat past
    the REFRESH_S grace). The grace assumes every worker re-reads within REFRESH_S."""
    old_kid = await conn.fetchval("SELECT kid FROM server_keys")
    new_kid = await rotate_server_key(conn)  # `kinerja keys rotate`, another process
    await conn.execute(
        "UPDATE server_keys SET created_at = now() - interval '2 hours' WHERE kid = $1", old_kid
    )
    await conn.execute(
        "UPDATE server_keys SET created_at = now() - interval '10 minutes' WHERE kid = $1",
        new_kid,
    )
    ring = app.state.key_ring
    ring._loaded_at = time.monotonic() - 700  # loaded at start-up, 11+ minutes ago
    token = await _login(client, people["district_head"].username, PASSWORD)
    me = await _me(client, token)
    assert me.status_code == 200, "a token fresh from the token endpoint was refused: " + me.text


async def test_a_token_from_a_login_right_after_a_password_reset_works(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
) -> None:
    """tokens_after = now() of the PATCH, compared to iat (whole seconds) with <=: a
    person logging in with the new password in the same second gets 200 and a token
    that every request then refuses with 401."""
    person = people["district_head"]
    new_password = "a brand new passphrase 42"
    await asyncio.sleep(1 - time.time() % 1)  # start right after a second turns
    r = await client.patch(
        f"/v1/users/{person.id}",
        json={"password": new_password},
        headers=bearer(app, people["admin"]),
    )
    assert r.status_code == 200, r.text
    token = await _login(client, person.username, new_password)
    me = await _me(client, token)
    assert me.status_code == 200, "the token the login just issued is refused: " + me.text


async def test_a_token_issued_with_the_old_password_during_the_reset_does_not_survive_it(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    database_url: str,
) -> None:
    """tokens_after is ``now()``: the PATCH transaction's start, not its commit. The PATCH
    waits on the user's row (FOR UPDATE, e.g. behind another edit of that user); a login
    with the old password meanwhile (login reads the row without a lock) gets a token
    whose iat is after tokens_after: the password reset does not end it."""
    person, admin = people["district_head"], people["admin"]
    caller = Principal(id=admin.id, username=admin.username, role="admin", area_code="ID")
    blocker = await connect(database_url)
    editor = await connect(database_url)
    try:
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("SELECT 1 FROM users WHERE id = $1 FOR UPDATE", person.id)

        async def reset() -> None:  # what PATCH /v1/users/{id} runs, in its transaction
            async with editor.transaction():
                await identity.patch_user(
                    editor,
                    caller,
                    person.id,
                    UserPatch(password="a brand new passphrase 42"),
                    this_year=THIS_YEAR,
                )

        patch = asyncio.create_task(reset())
        await asyncio.sleep(1.3)
        assert not patch.done()
        thief = await _login(client, person.username, PASSWORD)  # the old password
        await tx.rollback()
        await patch
    finally:
        await blocker.close()
        await editor.close()
    me = await _me(client, thief)
    assert me.status_code == 401, "a token issued before the password change survived it"


async def test_a_login_waits_at_most_login_wait_s_in_all(database_url: str) -> None:
    """README: logins wait 'at most KINERJA_LOGIN_WAIT_S in all: then 429'. lock_timeout
    bounds each lock wait separately: with the account's counter held, then the
    address's, one login waits about twice wait_s and is never refused."""
    a = await connect(database_url)
    b = await connect(database_url)
    c = await connect(database_url)
    try:
        for other, key in ((a, "account:x"), (b, "address:y")):
            await other.execute("INSERT INTO login_throttle (key) VALUES ($1)", key)
        ta, tb = a.transaction(), b.transaction()
        await ta.start()
        await tb.start()
        await a.execute("SELECT 1 FROM login_throttle WHERE key = 'account:x' FOR UPDATE")
        await b.execute("SELECT 1 FROM login_throttle WHERE key = 'address:y' FOR UPDATE")

        async def release() -> None:
            await asyncio.sleep(0.8)
            await ta.rollback()
            await asyncio.sleep(0.8)
            await tb.rollback()

        releaser = asyncio.create_task(release())
        started = time.monotonic()
        refused = False
        try:
            async with c.transaction():
                await throttle.hold(c, "account:x", "address:y", wait_s=1.0)
        except asyncpg.LockNotAvailableError:
            refused = True
        waited = time.monotonic() - started
        await releaser
        assert refused or waited <= 1.2, f"waited {waited:.2f} s with wait_s=1 and was not refused"
    finally:
        for x in (a, b, c):
            await x.close()


# -- client ------------------------------------------------------------------------------


def test_a_pause_asked_for_after_the_clock_was_put_back_is_kept(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``hold`` keeps max(old, new) and ``held_until`` ignores a pause further ahead than
    PAUSE_CAP_S: once a pause was heard under a clock since put back, the stale row wins
    every later max(), so no pause the server asks for is honoured again (a flush by
    hand sends everything 5 s into a 600 s Retry-After)."""
    save_token("t.e.st", 4_000_000_000, home=home)
    real = time.time()
    clock = [real + 30 * 86_400]  # the office PC's clock a month ahead
    monkeypatch.setattr(time, "time", lambda: clock[0])
    posts: list[float] = []

    def busy(request: httpx.Request) -> httpx.Response:
        posts.append(clock[0])
        return httpx.Response(503, headers={"Retry-After": "600"}, json={"title": "busy"})

    server = httpx.MockTransport(busy)
    assert run(home, *SUBMIT, transport=server) == 3
    clock[0] = real  # the clock is put right
    assert run(home, *SUBMIT[:4], "2021-02-16", *SUBMIT[5:], transport=server) == 3
    assert len(posts) == 2  # the old pause is over, the server asked for a new one
    clock[0] += 5.0
    run(home, "outbox", "flush", transport=server)
    assert len(posts) == 2, "sent during the 600 s pause the server asked for 5 s ago"


def test_outbox_list_shows_a_report_due_now_after_the_clock_was_put_back(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``due_at``/``pending`` take an item further ahead than PAUSE_CAP_S as due now (and
    a flush sends it), but ``outbox list`` still shows the stored time, a month ahead."""
    save_token("t.e.st", 4_000_000_000, home=home)
    real = time.time()
    clock = [real + 30 * 86_400]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    server = httpx.MockTransport(lambda r: httpx.Response(503, json={"title": "busy"}))
    assert run(home, *SUBMIT, transport=server) == 3
    clock[0] = real
    capsys.readouterr()
    assert run(home, "outbox", "list") == 0
    table = capsys.readouterr().out
    assert " now " in table, table


def test_a_value_under_the_first_of_two_unnamed_columns_is_not_dropped() -> None:
    """A spreadsheet's trailing ``,,``: DictReader keeps one '' key (the last column), so
    a value under the first unnamed column is silently ignored, not refused."""
    text = "district,as_of,indicator,numerator,denominator,,\n16.71,2021-02-15,ktp_el,10,20,oops,\n"
    with pytest.raises(RowError):
        parse_csv(text, "f.csv")
