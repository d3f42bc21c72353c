"""Review of the limits and settings behind the signed submissions (issue 5).

The standards: "Every bad input gets a clear RFC 9457 problem+json answer (4xx) and
changes nothing. A 5xx from bad input is a bug." and "every limit (body size, page size,
rate) is configurable". A setting start-up accepts must be one the API can serve with;
one it cannot serve with is refused at start-up with a clear message (``kinerja`` names
the variable), never found later as a 500 on every request that touches it.

Tests that read settings build them the way start-up does (``settings_from_env`` over
``KINERJA_*`` variables): a refusal there is a correct answer; accepted, the setting
must work.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from litestar import Litestar

from api.cli import main
from api.settings import Settings, settings_from_env
from tests.people import PASSWORD, Person, bearer
from tests.submitting import (
    JOSE,
    Signer,
    asgi_post_submission,
    register_key,
    served,
    stored_counts,
)

PROBLEM = "application/problem+json"


def configured(base: Settings, **env: str) -> Settings | None:
    """Settings read from these ``KINERJA_*`` variables on the test's database, or None
    when start-up refuses them."""
    environ = {f"KINERJA_{name.upper()}": value for name, value in env.items()}
    try:
        return settings_from_env(
            environ, database_url=base.database_url, environment="test", pool_max_size=4
        )
    except msgspec.ValidationError:
        return None


def assert_problem_4xx(response: httpx.Response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.headers["content-type"].startswith(PROBLEM), response.headers


async def post_values(
    http: httpx.AsyncClient, app: Litestar, signer: Signer, values: dict[str, Any], **headers: str
) -> httpx.Response:
    sent = {**bearer(app, signer.person), "Content-Type": JOSE, **headers}
    return await http.post("/v1/submissions", content=signer.sign(values).encode(), headers=sent)


# -- settings the checks of a report read ----------------------------------------------


async def test_an_infinite_stated_tolerance_is_refused_or_works(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """``KINERJA_STATED_TOLERANCE_PCT=inf`` (an operator's "never flag a stated figure")
    passes start-up (``ge=0`` only), then every report carrying a stated percentage is
    a 500: ``scorecards.checks.stated_mismatch`` refuses a non-finite tolerance. README:
    "`stated_mismatch` beyond this many percentage points"; flags mark, never reject."""
    chosen = configured(settings, stated_tolerance_pct="inf")
    if chosen is None:
        return  # refused at start-up: fine
    signer = await register_key(conn, people["district_head"])
    async with served(chosen) as (app, http):
        stated = {"ktp_el": {"numerator": 5_545_117, "denominator": 5_940_433, "stated_pct": 97.7}}
        response = await post_values(http, app, signer, stated)
    assert response.status_code == 201, response.text[:300]


async def test_an_infinite_denominator_jump_share_is_refused_or_works(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """``KINERJA_DENOMINATOR_JUMP_SHARE=inf`` passes start-up, then a district's second
    report (the first with a previous denominator to compare) is a 500:
    ``denominator_jump`` refuses a non-finite share. A district's second report must
    be stored (issue 5: flags keep the submission)."""
    chosen = configured(settings, denominator_jump_share="inf")
    if chosen is None:
        return
    signer = await register_key(conn, people["district_head"])
    async with served(chosen) as (app, http):
        first = await post_values(
            http, app, signer, {"ktp_el": {"numerator": 10, "denominator": 20}}
        )
        assert first.status_code == 201, first.text[:300]
        second = await post_values(
            http, app, signer, {"ktp_el": {"numerator": 11, "denominator": 25}}
        )
    assert second.status_code == 201, second.text[:300]


@pytest.mark.parametrize("share", ["5.0", "10"])
def test_a_denominator_jump_share_above_one_is_refused_at_start_up(share: str) -> None:
    """The share is a fraction of the previous denominator (default ``0.10``, 10 %). An
    operator writing ``10`` for 10 % (or ``5.0``) gets 1,000 % (500 %) without a word: a
    denominator can fall by at most 100 %, so no drop is ever flagged again, and a
    denominator typed ten times too large barely. README: every setting "Read once from
    the environment"; a nonsense one should stop start-up, as ``KINERJA_BAND_*`` does."""
    with pytest.raises((msgspec.ValidationError, ValueError)):
        settings_from_env({"KINERJA_DENOMINATOR_JUMP_SHARE": share})


# -- limits that reach PostgreSQL -------------------------------------------------------


async def test_an_idempotency_ttl_beyond_the_calendar_is_refused_or_works(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """``KINERJA_IDEMPOTENCY_TTL_S`` has a floor (a day) and no ceiling: a "keep them
    for ever" value such as 10^13 s passes start-up, and then every submission sent with
    an ``Idempotency-Key`` (all of the district client's) is a 500, as
    ``now() - make_interval(secs => ttl)`` leaves PostgreSQL's timestamps."""
    chosen = configured(settings, idempotency_ttl_s=str(10**13))
    if chosen is None:
        return
    signer = await register_key(conn, people["district_head"])
    async with served(chosen) as (app, http):
        values = {"ktp_el": {"numerator": 10, "denominator": 20}}
        response = await post_values(http, app, signer, values, **{"Idempotency-Key": "k-1"})
    assert response.status_code == 201, response.text[:300]


@pytest.mark.parametrize("path", ["/v1/submissions", "/v1/keys"])
async def test_a_page_size_max_beyond_bigint_is_refused_or_works(
    settings: Settings, people: dict[str, Person], path: str
) -> None:
    """``KINERJA_PAGE_SIZE_MAX`` has no ceiling: 10^19 passes start-up (lists are then
    no longer bounded in any useful sense), and a request for a page of that size, which
    the API itself says it allows, is a 500 (the LIMIT no longer fits a bigint)."""
    limit = 10**19
    chosen = configured(settings, page_size_max=str(limit))
    if chosen is None:
        return
    async with served(chosen) as (app, http):
        response = await http.get(f"{path}?limit={limit}", headers=bearer(app, people["admin"]))
    assert response.status_code < 500, response.text[:300]


async def test_a_login_window_beyond_the_calendar_is_refused_or_works(
    settings: Settings, people: dict[str, Person]
) -> None:
    """The rate limit's ``KINERJA_LOGIN_WINDOW_S`` has no ceiling: 10^13 s passes
    start-up, and then every wrong password is a 500 instead of 401 (and the failure is
    not counted, so the lockout never comes)."""
    chosen = configured(settings, login_window_s=str(10**13))
    if chosen is None:
        return
    async with served(chosen) as (_app, http):
        response = await http.post(
            "/v1/auth/token",
            data={"grant_type": "password", "username": "admin", "password": PASSWORD + "x"},
        )
    assert response.status_code == 401, response.text[:300]


# -- other settings that start-up takes without a word ----------------------------------


@pytest.mark.parametrize("hours", ["100", "-30", "1000000"])
def test_a_utc_offset_no_place_has_is_refused_at_start_up(hours: str) -> None:
    """``KINERJA_UTC_OFFSET_HOURS`` (README: "local dates (WIB) for the default as_of")
    takes any integer: 100 puts "today" four days ahead, and 10^6 makes every scorecard
    asked for without dates a 400 "invalid period". Offsets on Earth run from -12 to
    +14 hours."""
    with pytest.raises((msgspec.ValidationError, ValueError)):
        settings_from_env({"KINERJA_UTC_OFFSET_HOURS": hours})


@pytest.mark.parametrize(
    "env",
    [
        {"KINERJA_PROJECTION_ON_TRACK_RATIO": "nan"},
        {"KINERJA_PROJECTION_AT_RISK_RATIO": "-1"},
        {"KINERJA_PROJECTION_ON_TRACK_RATIO": "0.5", "KINERJA_PROJECTION_AT_RISK_RATIO": "0.9"},
    ],
)
def test_projection_thresholds_that_cannot_order_a_status_are_refused(
    env: dict[str, str],
) -> None:
    """The ratios (README: "achieved / needed daily rate thresholds", 1.0 / 0.8) are
    plain floats: NaN, a negative one and an at-risk threshold above the on-track one
    all pass, and the projections computed from the reports say something odd."""
    with pytest.raises((msgspec.ValidationError, ValueError)):
        settings_from_env(env)


def test_a_refused_setting_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Passes: a deadline day of 32 stops ``kinerja`` with the variable named, no
    traceback (kept as the model the refusals above should follow)."""
    monkeypatch.setenv("KINERJA_REPORTING_DEADLINE_DAY", "32")
    code = main(["ledger", "verify", "--all"])
    err = capsys.readouterr().err
    assert code != 0
    assert "KINERJA_REPORTING_DEADLINE_DAY" in err and "Traceback" not in err, err


# -- the body limit on both paths --------------------------------------------------------


@pytest.mark.parametrize("lane", [True, False])
async def test_a_body_over_the_limit_is_413_whatever_its_content_length_says(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person], lane: bool
) -> None:
    """Litestar counts the bytes it receives against the limit (its comment: the
    Content-Length is the server's to check, and middleware may change the body); the
    lane trusts the header and reads any amount. A 70 KB body announced as 100 bytes is
    413 through the route and 422 through the lane, which README says "takes only what
    it can answer exactly as the route would" (issue 5: "body over 64 KiB is 413")."""
    signer = await register_key(conn, people["district_head"])
    async with served(msgspec.structs.replace(settings, submission_lane=lane)) as (app, _http):
        before = await stored_counts(conn)
        token = bearer(app, signer.person)["Authorization"].encode()
        body = signer.sign().encode() + b"A" * (70 * 1024)
        status, headers, answer = await asgi_post_submission(
            app,
            [
                (b"authorization", token),
                (b"content-type", JOSE.encode()),
                (b"content-length", b"100"),
            ],
            body,
        )
        assert await stored_counts(conn) == before
    assert status == 413, answer[:300]
    assert headers[b"content-type"] == PROBLEM.encode()


@pytest.mark.parametrize("lane", [True, False])
async def test_the_configured_body_limit_holds_at_its_boundary_on_both_paths(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person], lane: bool
) -> None:
    """Passes: ``KINERJA_MAX_BODY_BYTES`` (here 2,000) is the submission limit on the
    lane and the route alike, with and without a Content-Length: exactly the limit is
    read (422, not a valid JWS), one byte more is 413, and review bodies keep it too."""
    signer = await register_key(conn, people["district_head"])
    limited = msgspec.structs.replace(settings, submission_lane=lane, max_body_bytes=2000)

    async def chunked(data: bytes) -> Any:
        yield data

    async with served(limited) as (app, http):
        before = await stored_counts(conn)
        headers = {**bearer(app, signer.person), "Content-Type": JOSE}
        jws = signer.sign().encode()
        for size, status in ((2000, 422), (2001, 413)):
            body = jws + b"A" * (size - len(jws))
            for content in (body, chunked(body)):
                response = await http.post("/v1/submissions", content=content, headers=headers)
                assert response.status_code == status, (size, response.text[:200])
                assert response.headers["content-type"] == PROBLEM
        review = await http.post(
            "/v1/submissions/00000000-0000-0000-0000-000000000000/review",
            json={"decision": "return", "reason": "x" * 2100},
            headers=bearer(app, people["province_head"]),
        )
        assert review.status_code == 413, review.text[:200]
        assert await stored_counts(conn) == before


# -- query strings of GET /v1/submissions ----------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "district=abc",
        "district=16.7",
        "district=16",
        "district=16.711",
        "province=abc",
        "province=16.71",
    ],
)
async def test_a_filter_code_of_the_wrong_shape_is_a_400(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person], query: str
) -> None:
    """``district=16.7`` (a typo of 16.71) answers 200 with an empty page, which reads
    as "nobody reported": the reason the route already refuses ``as_of_from`` after
    ``as_of_to``. README: a filter *outside your scope* gives an empty page (not
    revealing what exists); a code no district or province can have is not that, but
    bad input (standards: a clear 4xx problem+json). Asked by the admin, who sees
    everything, with a report stored for 16.71."""
    signer = await register_key(conn, people["district_head"])
    async with served(settings) as (app, http):
        stored = await post_values(
            http, app, signer, {"ktp_el": {"numerator": 1, "denominator": 2}}
        )
        assert stored.status_code == 201
        response = await http.get(f"/v1/submissions?{query}", headers=bearer(app, people["admin"]))
    assert_problem_4xx(response)
