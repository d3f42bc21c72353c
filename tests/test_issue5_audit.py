"""Audit of issue 5 (signed progress submissions): the sub-points no other test pins down,
and the boundaries a district office hits first."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

import asyncpg
import jwt
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.errors import PROBLEM_BASE
from api.schemas.submissions import StoredPayload, SubmissionPayload
from api.settings import Settings
from api.submission_errors import FutureAsOf, IatInFuture, IatTooOld
from api.submission_rules import check_times, is_late
from client.signing import SUBMISSION_TYP, build_payload, sign_submission
from tests.people import Person, bearer
from tests.submitting import (
    JOSE,
    VALUES,
    ec_key,
    post_jws,
    register_key,
    served,
    stored_counts,
    today,
    verify_all_with_cli,
)
from tests.test_submissions import ATTACKS, Attack, World

# -- helpers ---------------------------------------------------------------------------


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(obj: dict[str, Any]) -> str:
    return b64(json.dumps(obj, separators=(",", ":")).encode())


def payload_at(iat: int, as_of: date) -> SubmissionPayload:
    """A checked payload with this ``iat`` and ``as_of`` (as ``submit`` decodes it)."""
    raw = build_payload("16.71", date(2020, 1, 1), VALUES, now=float(iat))
    raw["as_of"] = as_of.isoformat()
    return msgspec.convert(raw, SubmissionPayload)


def assert_clear_problem(response: Any, status: int) -> dict[str, Any]:
    """A 4xx problem+json with a stable type, a title and a detail a person can act on."""
    assert response.status_code == status, response.text
    assert 400 <= response.status_code < 500
    assert response.headers["content-type"].startswith("application/problem+json"), (
        response.headers["content-type"]
    )
    body: dict[str, Any] = response.json()
    assert isinstance(body.get("type"), str) and body["type"].startswith(PROBLEM_BASE), body
    assert isinstance(body.get("title"), str) and body["title"].strip(), body
    assert isinstance(body.get("detail"), str) and body["detail"].strip(), body
    assert body.get("status") == status, body
    return body


# -- item 1: iat within [now - window, now + 5 min], inclusive at both ends -------------


def test_iat_exactly_five_minutes_ahead_and_exactly_the_window_old_are_taken(
    settings: Settings,
) -> None:
    now = datetime(2026, 3, 15, 3, 0, 0, tzinfo=UTC)
    stamp = int(now.timestamp())
    day = date(2026, 3, 15)
    assert settings.submission_iat_max_skew_s == 300
    assert settings.submission_iat_max_age_s == 7 * 24 * 3600
    check_times(payload_at(stamp + 300, day), now, settings)  # exactly 5 minutes ahead
    with pytest.raises(IatInFuture):
        check_times(payload_at(stamp + 301, day), now, settings)
    week_ago = day - timedelta(days=7)  # the day an outbox report a week old was signed
    check_times(payload_at(stamp - 7 * 24 * 3600, week_ago), now, settings)  # exactly 7 days
    with pytest.raises(IatTooOld):
        check_times(payload_at(stamp - 7 * 24 * 3600 - 1, week_ago), now, settings)


async def test_a_longer_configured_window_lets_an_older_outbox_report_through(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """The window is configurable: an office offline for three weeks, with a 30-day
    window configured, gets through; the default 7-day window refuses the same report."""
    signer = await register_key(conn, people["district_head"])
    old = time.time() - 20 * 24 * 3600
    jws = sign_submission(
        build_payload("16.71", today() - timedelta(days=20), VALUES, now=old),
        signer.key,
        signer.kid,
    )
    async with served(settings) as (app, http):
        headers = {**bearer(app, signer.person), "Content-Type": JOSE}
        refused = await http.post("/v1/submissions", content=jws, headers=headers)
    assert_clear_problem(refused, 422)
    assert refused.json()["type"].endswith("iat-too-old")
    longer = msgspec.structs.replace(settings, submission_iat_max_age_s=30 * 24 * 3600)
    async with served(longer) as (app, http):
        headers = {**bearer(app, signer.person), "Content-Type": JOSE}
        taken = await http.post("/v1/submissions", content=jws, headers=headers)
    assert taken.status_code == 201, taken.text


# -- item 1: as_of not in the future, read in Indonesia (WIT) rather than UTC ----------


def test_as_of_today_in_wit_is_taken_while_it_is_still_yesterday_in_utc(
    settings: Settings,
) -> None:
    # 15:30 UTC on 31 May is 00:30 on 1 June in Papua (WIT): 1 June is today there.
    now = datetime(2026, 5, 31, 15, 30, tzinfo=UTC)
    stamp = int(now.timestamp())
    check_times(payload_at(stamp, date(2026, 6, 1)), now, settings)
    with pytest.raises(FutureAsOf):
        check_times(payload_at(stamp, date(2026, 6, 2)), now, settings)
    # One second before midnight WIT, 1 June is still tomorrow everywhere in Indonesia.
    before = datetime(2026, 5, 31, 14, 59, 59, tzinfo=UTC)
    with pytest.raises(FutureAsOf):
        check_times(payload_at(int(before.timestamp()), date(2026, 6, 1)), before, settings)


def test_as_of_may_be_the_day_of_signing_in_wit_but_not_a_day_after(
    settings: Settings,
) -> None:
    """Counts as of a day that had not come when they were signed are not counts the
    district head vouched for, however late the report arrives."""
    now = datetime(2026, 6, 5, 3, 0, tzinfo=UTC)
    # Signed at 15:30 UTC on 31 May: already 1 June in Papua (WIT).
    signed = int(datetime(2026, 5, 31, 15, 30, tzinfo=UTC).timestamp())
    check_times(payload_at(signed, date(2026, 6, 1)), now, settings)
    with pytest.raises(FutureAsOf) as refused:
        check_times(payload_at(signed, date(2026, 6, 2)), now, settings)
    assert refused.value.extra == {"as_of": "2026-06-02", "signed": "2026-06-01"}
    # One second before midnight WIT it was still 31 May everywhere in Indonesia.
    earlier = int(datetime(2026, 5, 31, 14, 59, 59, tzinfo=UTC).timestamp())
    with pytest.raises(FutureAsOf):
        check_times(payload_at(earlier, date(2026, 6, 1)), now, settings)


def test_a_correction_reason_taken_before_the_visible_rule_still_reads_as_stored() -> None:
    """Intake refuses a correction whose reason shows nothing; the ledger check reads a
    stored report under the rule it was accepted with, so one taken before is not
    called tampered with (``payload_mismatch``)."""
    raw = build_payload("16.71", date(2026, 1, 31), VALUES, now=time.time())
    raw["supersedes"] = {"id": "00000000-0000-0000-0000-000000000001", "reason": "\u200b"}
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(raw, SubmissionPayload)
    stored = msgspec.convert(raw, StoredPayload)
    assert stored.supersedes is not None and stored.supersedes.reason == "\u200b"
    raw["supersedes"]["reason"] = " "
    with pytest.raises(msgspec.ValidationError):  # blanks were refused then too
        msgspec.convert(raw, StoredPayload)


# -- item 1: the algorithm is pinned to the key's type ---------------------------------


async def test_a_valid_signature_under_a_header_naming_the_other_algorithm_is_refused(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """An Ed25519 key's signature labelled ES256, and an ES256 key's labelled EdDSA: the
    bytes verify under the key's own algorithm, but the header does not name it."""
    ed = await register_key(conn, people["district_head"])
    ec = await register_key(conn, people["district_head"], ec_key())
    before = await stored_counts(conn)

    header = {"alg": "ES256", "typ": SUBMISSION_TYP, "kid": ed.kid}
    signing_input = f"{segment(header)}.{segment(ed.payload())}"
    ed_token = f"{signing_input}.{b64(ed.key.sign(signing_input.encode()))}"  # type: ignore[call-arg]

    header = {"alg": "EdDSA", "typ": SUBMISSION_TYP, "kid": ec.kid}
    signing_input = f"{segment(header)}.{segment(ec.payload())}"
    signature = jwt.get_algorithm_by_name("ES256").sign(signing_input.encode(), ec.key)
    ec_token = f"{signing_input}.{b64(signature)}"

    for token in (ed_token, ec_token):
        response = await post_jws(client, app, people["district_head"], token)
        assert_clear_problem(response, 422)
        assert response.json()["type"].endswith("invalid-signature")
    assert await stored_counts(conn) == before
    # The same builders with the right algorithm are taken (the refusal is the label).
    header = {"alg": "EdDSA", "typ": SUBMISSION_TYP, "kid": ed.kid}
    signing_input = f"{segment(header)}.{segment(ed.payload())}"
    good = f"{signing_input}.{b64(ed.key.sign(signing_input.encode()))}"  # type: ignore[call-arg]
    assert (await post_jws(client, app, people["district_head"], good)).status_code == 201


# -- item 1: a body over 64 KiB is 413; 64 KiB itself is not over ---------------------


async def test_a_body_of_exactly_64_kib_is_taken_and_one_byte_more_is_413(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """The compact JWS is the body without surrounding whitespace (a client sending the
    file it saved, newlines included), so the body can be filled to the byte."""
    signer = await register_key(conn, people["district_head"])
    limit = 64 * 1024
    jws = signer.sign(note="Laporan " * 400).encode()
    over = jws + b"\n" * (limit + 1 - len(jws))
    before = await stored_counts(conn)
    response = await post_jws(client, app, signer.person, over)
    assert_clear_problem(response, 413)
    assert await stored_counts(conn) == before
    exact = jws + b"\n" * (limit - len(jws))
    assert len(exact) == limit
    response = await post_jws(client, app, signer.person, exact)
    assert response.status_code == 201, response.text


# -- item 1 / 8: every refusal is a clear problem, and nothing is stored ---------------


@pytest.mark.parametrize("attack", ATTACKS, ids=lambda a: a.name)
async def test_every_refusal_is_a_4xx_problem_with_type_title_and_detail(
    attack: Attack,
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    outsiders: dict[str, Person],
) -> None:
    signer = await register_key(conn, people["district_head"])
    world = World(app, client, conn, people, outsiders, signer)
    person, body, media = await attack.build(world)
    before = await stored_counts(conn)
    response = await post_jws(client, app, person, body, content_type=media)
    assert_clear_problem(response, attack.status)
    assert await stored_counts(conn) == before


async def test_replays_reused_keys_and_missing_media_types_are_clear_problems(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    signer = await register_key(conn, people["district_head"])
    jws = signer.sign()
    first = await post_jws(client, app, signer.person, jws, idempotency_key="k")
    assert first.status_code == 201, first.text
    before = await stored_counts(conn)
    assert_clear_problem(await post_jws(client, app, signer.person, jws), 409)
    reused = await post_jws(client, app, signer.person, signer.sign(), idempotency_key="k")
    assert_clear_problem(reused, 422)
    no_type = await client.post(
        "/v1/submissions", content=signer.sign().encode(), headers=bearer(app, signer.person)
    )
    assert_clear_problem(no_type, 415)
    assert await stored_counts(conn) == before


# -- item 4: late against a configured deadline day ------------------------------------


async def test_the_reporting_deadline_day_is_a_setting(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """Last month's report, received today: late after the 1st, not late by the 31st."""
    signer = await register_key(conn, people["district_head"])
    last_month = today().replace(day=1) - timedelta(days=1)
    late: dict[int, bool] = {}
    for deadline_day in (1, 31):
        configured = msgspec.structs.replace(settings, reporting_deadline_day=deadline_day)
        async with served(configured) as (app, http):
            headers = {**bearer(app, signer.person), "Content-Type": JOSE}
            made = await http.post(
                "/v1/submissions", content=signer.sign(as_of=last_month), headers=headers
            )
        assert made.status_code == 201, made.text
        late[deadline_day] = "late" in made.json()["flags"]
        assert late[deadline_day] is is_late(last_month, datetime.now(UTC), deadline_day)
    # Except on the first day of a month (WIB), the two settings must disagree.
    if (datetime.now(UTC) + timedelta(hours=7)).day != 1:
        assert late == {1: True, 31: False}


# -- item 4: a stated figure never replaces the computed one in rankings ---------------


async def test_rankings_and_scorecards_use_the_computed_coverage_not_the_stated_one(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    signer = await register_key(conn, people["district_head"])
    made = await post_jws(
        client,
        app,
        signer.person,
        signer.sign(
            {"ktp_el": {"numerator": 5_545_117, "denominator": 5_940_433, "stated_pct": 97.70}}
        ),
    )
    assert made.status_code == 201, made.text
    assert made.json()["flags"] == ["stated_mismatch"]
    reader = bearer(app, people["province_monitor"])
    ranking = await client.get(
        "/v1/rankings/districts",
        params={"year": today().year, "province": "16", "indicator": "ktp_el"},
        headers=reader,
    )
    assert ranking.status_code == 200, ranking.text
    row = next(r for r in ranking.json()["rows"] if r["code"] == "16.71")
    assert row["indicators"]["ktp_el"]["coverage"] == pytest.approx(93.35, abs=0.01)
    card = await client.get("/v1/scorecards/districts/16.71", headers=reader)
    assert card.status_code == 200, card.text
    ktp = next(r for r in card.json()["indicators"] if r["indicator"] == "ktp_el")
    assert ktp["coverage"] == pytest.approx(93.35, abs=0.01)


# -- item 7: verify judges stored entries by the rules they were taken in under ---------


async def test_lowering_the_clock_skew_setting_does_not_make_stored_entries_broken(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """A device clock four minutes fast is within the 5 minutes allowed: the report is
    taken. An operator later tightens KINERJA_SUBMISSION_IAT_MAX_SKEW_S to one minute (for
    new reports). Nobody touched the stored entry, so verify must still answer ok; a
    "broken" entry here is a false tamper alarm that auditors cannot tell from a real one."""
    signer = await register_key(conn, people["district_head"])
    ahead = build_payload("16.71", today(), VALUES, now=time.time() + 240)
    async with served(settings) as (app, http):
        headers = {**bearer(app, signer.person), "Content-Type": JOSE}
        made = await http.post(
            "/v1/submissions",
            content=sign_submission(ahead, signer.key, signer.kid),
            headers=headers,
        )
        assert made.status_code == 201, made.text
        before = await http.get(
            "/v1/districts/16.71/ledger/verify", headers=bearer(app, people["province_head"])
        )
    assert before.json()["ok"] is True, before.text
    tighter = msgspec.structs.replace(settings, submission_iat_max_skew_s=60)
    async with served(tighter) as (app, http):
        after = await http.get(
            "/v1/districts/16.71/ledger/verify", headers=bearer(app, people["province_head"])
        )
    assert after.status_code == 200, after.text
    assert after.json() == {"district": "16.71", "ok": True, "entries": 1, "first_broken": None}


async def test_the_cli_after_a_lowered_clock_skew_setting_still_finds_the_ledger_whole(
    settings: Settings,
    database_url: str,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`kinerja ledger verify --all`, run by an auditor whose environment carries the
    operator's tightened KINERJA_SUBMISSION_IAT_MAX_SKEW_S, over an untouched ledger."""
    signer = await register_key(conn, people["district_head"])
    ahead = build_payload("16.71", today(), VALUES, now=time.time() + 240)
    async with served(settings) as (app, http):
        headers = {**bearer(app, signer.person), "Content-Type": JOSE}
        made = await http.post(
            "/v1/submissions",
            content=sign_submission(ahead, signer.key, signer.kid),
            headers=headers,
        )
    assert made.status_code == 201, made.text
    monkeypatch.setenv("KINERJA_SUBMISSION_IAT_MAX_SKEW_S", "60")
    code, districts, err = await verify_all_with_cli(database_url, monkeypatch, capsys)
    assert districts == {"16.71": True}, err
    assert code == 0
