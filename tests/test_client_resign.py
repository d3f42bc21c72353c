"""``kinerja-client outbox resign #``: a report refused for waiting too long (or signed
with a key since replaced) is signed again, under its own ``jti`` with a fresh ``iat`` and the
current key, in the rejected one's place, and sent; the counts typed a week ago reach the
server without being typed again. Against the real server (``tests/test_client_cli.py``).
"""

from __future__ import annotations

import time
from pathlib import Path

import asyncpg
import pytest

from client.outbox import OUTBOX_FILE, Outbox
from tests.people import DISTRICT, make_user
from tests.test_client_cli import Cli
from tests.test_client_cli import cli as cli  # the fixtures, shared
from tests.test_client_cli import server as server
from tests.test_client_session_findings import TYPED

WEEK_AND_A_DAY_S = 8 * 24 * 3600


def _rejected(cli: Cli) -> list[int]:
    with Outbox(cli.home / OUTBOX_FILE) as box:
        return [item.id for item in box.rejected()]


def _typed_a_week_ago(cli: Cli, monkeypatch: pytest.MonkeyPatch, *extra: str) -> None:
    """A report typed eight days ago while the link was down: signed then, queued."""
    real_time = time.time
    then = real_time() - WEEK_AND_A_DAY_S
    started = real_time()
    cli.server.stop()
    monkeypatch.setattr(time, "time", lambda: then + (real_time() - started))
    typed = cli("submit", *TYPED, *extra)
    monkeypatch.setattr(time, "time", real_time)
    cli.server.start()
    assert typed.code == 3, typed  # unreachable: queued


async def test_a_report_refused_as_too_old_is_signed_again_and_stored_once(
    cli: Cli, conn: asyncpg.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_user(conn, "district_head", username="kadis_palembang", area_code=DISTRICT)
    cli.enrol("kadis_palembang")
    _typed_a_week_ago(cli, monkeypatch, "--stated", "ktp_el=93.35", "--note", "alat rusak")

    flushed = cli("outbox", "flush")
    assert flushed.code == 1 and "iat-too-old" in flushed.out, flushed
    (number,) = _rejected(cli)
    assert f"outbox resign {number}` signs it again" in flushed.out
    listed = cli("outbox", "list")
    assert "outbox resign #" in listed.out
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 0

    resigned = cli("outbox", "resign", str(number))
    assert resigned.code == 0, resigned
    assert "1 submission: 1 stored, 0 rejected, 0 queued" in resigned.out
    assert cli.queued() == [] and _rejected(cli) == []
    row = await conn.fetchrow(
        "SELECT s.district_code, s.as_of::text, s.note, s.iat, v.numerator, v.denominator,"
        " v.stated_pct FROM submissions s JOIN submission_values v ON v.submission_id = s.id"
    )
    assert (row["district_code"], row["as_of"], row["note"]) == (
        DISTRICT,
        "2021-02-15",
        "alat rusak",
    )
    assert (row["numerator"], row["denominator"], float(row["stated_pct"])) == (
        5545117,
        5940433,
        93.35,
    )
    assert abs(row["iat"].timestamp() - time.time()) < 300  # signed now, not a week ago

    # Nothing is left to sign again.
    again = cli("outbox", "resign", str(number))
    assert again.code == 2 and "no rejected report" in again.err
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 1


async def test_a_report_signed_with_a_replaced_key_goes_with_the_new_one(
    cli: Cli, conn: asyncpg.Connection
) -> None:
    """The laptop's key was lost and revoked before the outbox was sent: once a new key is
    registered, the report the old key signed is signed again with the new one."""
    await make_user(conn, "district_head", username="kadis_palembang", area_code=DISTRICT)
    cli.enrol("kadis_palembang")
    cli.server.stop()
    assert cli("submit", *TYPED).code == 3
    cli.server.start()
    old_kid = await conn.fetchval("SELECT kid FROM signing_keys")
    await conn.execute("UPDATE signing_keys SET revoked_at = now()")

    flushed = cli("outbox", "flush")
    assert flushed.code == 1, flushed
    (number,) = _rejected(cli)
    assert cli("init", "--force").code == 0
    assert cli("register-key").code == 0

    resigned = cli("outbox", "resign", str(number))
    assert resigned.code == 0, resigned
    kid = await conn.fetchval("SELECT kid FROM submissions")
    assert kid is not None and kid != old_kid
    assert cli.queued() == [] and _rejected(cli) == []


async def test_only_a_rejected_report_is_signed_again(cli: Cli, conn: asyncpg.Connection) -> None:
    """A report still waiting may already be stored (its answer lost on the way): signed
    again under a new jti it would be stored twice, so it is left for `outbox flush`."""
    await make_user(conn, "district_head", username="kadis_palembang", area_code=DISTRICT)
    cli.enrol("kadis_palembang")
    cli.server.stop()
    assert cli("submit", *TYPED).code == 3
    cli.server.start()
    (waiting,) = cli.queued()

    refused = cli("outbox", "resign", str(waiting.id))
    assert refused.code == 2 and "no rejected report" in refused.err
    assert "outbox flush" in refused.err
    assert [item.jws for item in cli.queued()] == [waiting.jws]
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 0


def test_an_item_changed_meanwhile_is_not_replaced(tmp_path: Path) -> None:
    """Another client run discarded (or signed again) the rejected item between this run
    reading it and replacing it: nothing is queued in its place."""
    path = tmp_path / OUTBOX_FILE
    with Outbox(path) as box:
        box.put("a.b.c", "k1")
        box.mark_rejected("k1", "HTTP 422: too old")
        (item,) = box.rejected()
        assert box.replace_rejected(item.id, "x.y.z", "d.e.f", "k2") is None
        assert box.all() == [] and [i.jws for i in box.rejected()] == ["a.b.c"]
        new = box.replace_rejected(item.id, "a.b.c", "d.e.f", "k2")
        assert new is not None and new.jws == "d.e.f" and new.rejected_at is None
        assert box.rejected() == [] and [i.idempotency_key for i in box.all()] == ["k2"]
        assert box.replace_rejected(item.id, "a.b.c", "g.h.i", "k3") is None
