"""Inputs and situations found in review: each once answered 5xx or a wrong number."""

from __future__ import annotations

from datetime import date

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from scorecards import DistrictPlan, province_findings
from tests.people import Person, bearer, coordinate, make_user
from tests.submitting import post_jws, register_key, stored_counts, submit
from tests.test_users_keys import ed_jwk


async def test_zero_targets_are_refused(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    """Achievement divides by the target: a zero target would break every ranking."""
    for target in (
        {"indicator": "kia", "annual": 0},
        {"indicator": "kia", "annual": 30, "quarterly": [0, 10, 20, 30]},
    ):
        response = await client.post(
            "/v1/agreements",
            json={
                "year": 2026,
                "level": "province_district",
                "second_party": {"area_code": "16.71", "official": "Kadis"},
                "targets": [target],
            },
            headers=bearer(app, people["province_head"]),
        )
        assert response.status_code == 400, response.text


async def test_nul_in_a_signed_note_is_refused_and_nothing_stored(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    signer = await register_key(conn, people["district_head"])
    before = await stored_counts(conn)
    response = await post_jws(client, app, signer.person, signer.sign(note="alat\u0000rusak"))
    assert 400 <= response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await stored_counts(conn) == before


async def test_non_canonical_jwk_coordinates_are_refused(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    jwk = ed_jwk()
    for x in (jwk["x"] + "\u0000\u0000", jwk["x"] + "!!", jwk["x"][:-1] + "B"):
        response = await client.post(
            "/v1/keys", json={"jwk": {**jwk, "x": x}}, headers=bearer(app, people["district_head"])
        )
        assert response.status_code == 422, (x, response.text)
    assert await conn.fetchval("SELECT count(*) FROM signing_keys") == 0


async def test_overlong_login_fields_are_a_400(client: AsyncTestClient[Litestar]) -> None:
    response = await client.post(
        "/v1/auth/token",
        content=f"grant_type=password&username={'u' * 10_000}&password=whatever-long",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 400


def test_equal_targets_never_make_a_weighted_mean_gap() -> None:
    plans = [
        DistrictPlan(code="16.01", population=1, targets={"ktp_el": 98.3}),
        DistrictPlan(code="16.02", population=6, targets={"ktp_el": 98.3}),
    ]
    findings = province_findings("16", {"ktp_el": 98.3}, plans, {"ktp_el": "higher"})
    assert [f.code for f in findings] == ["indicator_uncovered_by_divisions"] * 2


async def test_single_indicator_ranking_says_no_data_for_a_district_that_did_not_report_it(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    await conn.execute(
        "INSERT INTO agreements (id, lineage_id, version, year, level, first_area, first_official, "
        "second_area, second_official, status, document_sha256, created_by) VALUES "
        "(gen_random_uuid(), gen_random_uuid(), 1, 2026, 'national_province', 'ID', 'x', '16', "
        "'y', 'active', 'z', $1)",
        people["admin"].id,
    )
    await conn.execute(
        "INSERT INTO agreement_targets (agreement_id, indicator_code, annual) "
        "SELECT id, 'kia', 30 FROM agreements"
    )
    signer = await register_key(conn, people["district_head"])
    await submit(client, app, signer, values={"ktp_el": (90, 100)}, as_of=date(2026, 5, 31))
    response = await client.get(
        "/v1/rankings/districts",
        params={"province": "16", "indicator": "kia", "as_of": "2026-06-30"},
        headers=bearer(app, people["province_monitor"]),
    )
    row = next(r for r in response.json()["rows"] if r["code"] == "16.71")
    assert row["status"] == "no_data"


async def test_a_coordinator_loses_a_district_moved_to_another_region(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    old = people["region_coordinator"]
    new = await make_user(conn, "region_coordinator", username="pj_baru", area_code="16")
    await coordinate(conn, old, "16", ["16.71"], 2025)
    signer = await register_key(conn, people["district_head"])
    report = await submit(client, app, signer, as_of=date(2026, 5, 31))
    url = f"/v1/submissions/{report['id']}"
    assert (await client.get(url, headers=bearer(app, old))).status_code == 200
    await coordinate(conn, new, "16", ["16.71"], 2026)
    assert (await client.get(url, headers=bearer(app, old))).status_code == 404
    review = await client.post(
        f"{url}/review", json={"decision": "return", "reason": "x"}, headers=bearer(app, old)
    )
    assert review.status_code == 404
    listed = await client.get("/v1/submissions", headers=bearer(app, old))
    assert listed.json()["items"] == []
    assert (await client.get(url, headers=bearer(app, new))).status_code == 200
