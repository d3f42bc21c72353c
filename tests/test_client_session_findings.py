"""Review of the district head's client against today's server (a report whose author's
account changed while it waited is 401 ``unauthorized``; a resent correction racing its
first copy is 409 ``jti-replayed``): what a district office hits around a refused session,
a lapsed session and a report kept after a refusal. Each test failed before its fix.

The server is the real one (uvicorn in a subprocess, ``tests/test_client_cli.py``), except
where only the client's own handling is at stake.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from pathlib import Path

import asyncpg
import httpx
import pytest

from api.auth.passwords import hash_password
from client.cli import main
from client.config import load_token, save_token
from client.outbox import OUTBOX_FILE, Outbox
from tests.people import DISTRICT, make_user
from tests.test_client_cli import Cli, Server
from tests.test_client_cli import cli as cli  # the fixtures, shared
from tests.test_client_cli import server as server
from tests.test_client_robustness import home as home
from tests.test_client_robustness import run

NEW_PASSWORD = "a new password from the province office"
AS_OF = "2021-02-15"
TYPED = ["--district", DISTRICT, "--as-of", AS_OF, "--value", "ktp_el=5545117/5940433"]


def _queue_one_while_down(cli: Cli) -> None:
    """One report typed while the link is down: signed, queued, not sent."""
    cli.server.stop()
    down = cli("submit", *TYPED)
    assert down.code == 3, down
    cli.server.start()
    assert len(cli.queued()) == 1


async def _set_password(conn: asyncpg.Connection, user_id: object) -> None:
    """The province office sets a new password: every earlier token ends (migration 0022)."""
    await conn.execute(
        "UPDATE users SET password_hash = $1 WHERE id = $2", hash_password(NEW_PASSWORD), user_id
    )


def _login_elsewhere(home: Path, server: Server) -> Callable[[], str]:
    """The head logging in again in another window (another kinerja-client process)."""

    def login() -> str:
        assert main(["login", "--home", str(home), "--server", server.url]) == 0
        token = load_token(home=home)
        assert token is not None
        return token

    return login


class LoginWhileOnItsWay(httpx.BaseTransport):
    """The real server; while the first report is on its way (a slow link: seconds), the
    head logs in again in another window."""

    def __init__(self, login: Callable[[], str]) -> None:
        self.inner = httpx.HTTPTransport()
        self.login = login
        self.fresh: str | None = None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/submissions" and self.fresh is None:
            self.fresh = self.login()
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


async def test_a_refused_old_session_does_not_log_out_a_login_made_meanwhile(
    cli: Cli, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 401 makes the client delete the token cache (cli.py, flush and submit, and
    `_fail`) whatever it holds by then. The province office sets the head's password; the
    head logs in with it while a flush (a scheduled `outbox flush --due`, or one in another
    window) is sending with the token it read before. That flush's 401 then deletes the
    fresh login: the head's next submit is "not logged in" and queues, scorecard refuses,
    and the password (just received by WhatsApp) must be typed again. Only the token that
    was refused may be forgotten."""
    user = await make_user(conn, "district_head", username="kadis_palembang", area_code=DISTRICT)
    cli.enrol("kadis_palembang")
    _queue_one_while_down(cli)
    await _set_password(conn, user.id)
    monkeypatch.setenv("KINERJA_PASSWORD", NEW_PASSWORD)
    racing = LoginWhileOnItsWay(_login_elsewhere(cli.home, cli.server))

    flushed = cli("outbox", "flush", transport=racing)

    assert flushed.code == 2, flushed  # the old session was refused: fine
    assert racing.fresh is not None
    assert load_token(home=cli.home) == racing.fresh, (
        "the fresh login was deleted by the old session's 401"
    )


async def test_flush_wait_sends_with_the_login_made_during_its_pause(
    cli: Cli, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """README: `outbox flush --wait` "resumes after the pause the server asked for (a day at
    most)". `cmd_outbox_flush` reads the token once, before it starts, and sends every
    later round with it: access tokens last 15 minutes, so after any longer pause (or a
    password set meanwhile) the resumed flush can only be refused, even when the head has
    logged in again meanwhile; it then stops with "log in, then flush" and the report is
    not sent. Here the server is restarting (503 shutting-down, Retry-After 1), the
    password was set, and the head logs in during the pause."""
    user = await make_user(conn, "district_head", username="kadis_palembang", area_code=DISTRICT)
    cli.enrol("kadis_palembang")
    _queue_one_while_down(cli)
    await _set_password(conn, user.id)
    monkeypatch.setenv("KINERJA_PASSWORD", NEW_PASSWORD)
    login = _login_elsewhere(cli.home, cli.server)
    inner = httpx.HTTPTransport()
    answered: list[int] = []

    def restarting(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/submissions" and not answered:
            answered.append(503)
            return httpx.Response(
                503,
                headers={"Retry-After": "1", "Content-Type": "application/problem+json"},
                json={
                    "type": "https://kinerja.dukcapil.example/problems/shutting-down",
                    "title": "The service is shutting down",
                    "status": 503,
                    "detail": "The service is shutting down; send the report again shortly.",
                },
            )
        response = inner.handle_request(request)
        response.read()
        answered.append(response.status_code)
        return response

    real_sleep = time.sleep
    logged_in: list[str] = []

    def pause(seconds: float) -> None:
        if not logged_in:
            logged_in.append(login())  # the head logs in while the flush waits
        real_sleep(seconds)

    monkeypatch.setattr(time, "sleep", pause)
    try:
        flushed = cli("outbox", "flush", "--wait", "30", transport=httpx.MockTransport(restarting))
    finally:
        monkeypatch.setattr(time, "sleep", real_sleep)
        inner.close()

    assert logged_in, "the flush never paused"
    assert answered[-1] == 201 and flushed.code == 0, (answered, flushed)
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 1


async def test_flush_says_why_the_server_refused_the_session(
    cli: Cli, conn: asyncpg.Connection
) -> None:
    """Today's server answers 401 with a reason a district office must act on: the account
    was deactivated, its password set, or its role or area changed while the report
    waited. `submit` prints that problem; `outbox flush` (transport.flush returns before
    the entry is recorded, and cmd_outbox_flush prints only "the server refused the
    session") hides it. Here the account was deactivated: the head is told to log in,
    login then says only "Invalid credentials", and a head who retries the password gets
    the account locked for 15 minutes instead of calling the province office."""
    user = await make_user(conn, "district_head", username="kadis_palembang", area_code=DISTRICT)
    cli.enrol("kadis_palembang")
    _queue_one_while_down(cli)
    await conn.execute("UPDATE users SET active = false WHERE id = $1", user.id)

    flushed = cli("outbox", "flush")

    assert flushed.code == 2, flushed
    assert "deactivated" in flushed.out + flushed.err, flushed


def test_a_typed_report_after_the_session_lapsed_waits_in_the_outbox(home: Path) -> None:
    """README: exit 2 "not logged in or the session refused ...: the signed reports wait in
    the outbox until you log in ..., then flush", and its example `submit --as-of ...
    --value ...` names no district ("your own"). Sessions last 15 minutes; once the cached
    token lapsed (load_token returns None for it), `_own_district(None)` finds no district
    and submit stops with "pass --district": nothing is signed or queued, the head is not
    told the session lapsed. The district of the last login is still in the cache (the
    lapsed token's own `area` claim), as the flag-given case shows it would be queued."""
    claims = {"sub": "00000000-0000-0000-0000-000000000001", "role": "district_head"}
    claims["area"] = DISTRICT
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    save_token(f"eyJhbGciOiJFZERTQSJ9.{body}.c2ln", time.time() - 60, home=home)

    code = run(home, "submit", "--as-of", AS_OF, "--value", "ktp_el=5545117/5940433")

    with Outbox(home / OUTBOX_FILE) as box:
        queued = box.all()
    assert code == 2
    assert len(queued) == 1, "the typed report was neither signed nor queued"


async def test_a_report_refused_as_too_old_can_still_be_read_back(
    cli: Cli, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A report typed while the session was refused (or the link down) waits; if the head
    logs in and flushes more than 7 days later (KINERJA_SUBMISSION_IAT_MAX_AGE_S), the
    server answers 422 iat-too-old ("sign the report again"). The client keeps it as
    rejected because "a report typed on the command line exists nowhere else" (README)
    and says "correct it and submit again", but no command shows what it held: `outbox
    list` (and --json) give district, date and indicator names, never the counts, stated
    figures or note, and nothing signs it again. After a week offline (a long holiday, a
    broken link in a remote district) the typed counts are gone for the office."""
    await make_user(conn, "district_head", username="kadis_palembang", area_code=DISTRICT)
    cli.enrol("kadis_palembang")
    real_time = time.time
    eight_days_ago = real_time() - 8 * 24 * 3600
    cli.server.stop()
    started = real_time()
    monkeypatch.setattr(time, "time", lambda: eight_days_ago + (real_time() - started))
    typed = cli("submit", *TYPED, "--stated", "ktp_el=93.35", "--note", "alat perekam rusak")
    monkeypatch.setattr(time, "time", real_time)
    assert typed.code in (2, 3), typed  # queued: session lapsed / server unreachable
    cli.server.start()
    assert cli("login").code == 0

    flushed = cli("outbox", "flush")
    assert flushed.code == 1 and "iat-too-old" in flushed.out, flushed

    listed = cli("outbox", "list", "--json").out + cli("outbox", "list").out
    assert "5545117" in listed and "5940433" in listed, listed
