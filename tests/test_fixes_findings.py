"""Mistakes in a day's fixes, found by reviewing them: each failed before its own fix."""

from __future__ import annotations

from datetime import date
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api import ingest
from api.settings import Settings
from db import submissions as sub_db
from tests.agreement_helpers import national_agreement
from tests.people import PASSWORD, Person, bearer
from tests.submitting import JOSE, post_jws, register_key, served, submit
from tests.test_catalogue import indicator
from tests.test_change_feed import feed_of
from tests.test_numbers_findings import daily_card

YEAR = 2021
Client = AsyncTestClient[Litestar]


async def test_province_aggregate_at_a_band_threshold_agrees_with_its_only_district(
    client: Client, app: Litestar, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """The fix makes a district's achievement exact (891 of 1,000 against 99 is 90,
    green), but the province aggregate still divides floats (89.1 / 99 x 100 =
    89.99999999999999, yellow): with Palembang the only district reporting, the
    aggregate has the same counts and target and must show the same band."""
    await national_agreement(
        client, app, conn, people, year=YEAR, target_list=[{"indicator": "ktp_el", "annual": 99}]
    )
    signer = await register_key(conn, people["district_head"])
    await submit(client, app, signer, values={"ktp_el": (891, 1000)}, as_of=date(YEAR, 5, 15))
    head = bearer(app, people["province_monitor"])
    params = {"year": YEAR, "as_of": "2021-05-15"}
    district = await client.get("/v1/scorecards/districts/16.71", params=params, headers=head)
    row = {r["indicator"]: r for r in district.json()["indicators"]}["ktp_el"]
    assert row["band"] == "green"
    province = await client.get("/v1/scorecards/provinces/16", params=params, headers=head)
    assert province.status_code == 200, province.text
    agg = {r["indicator"]: r for r in province.json()["aggregate"]["indicators"]}["ktp_el"]
    assert (agg["numerator"], agg["denominator"], agg["target"]) == (891, 1000, 99.0)
    assert (agg["achievement_raw"], agg["band"]) == (row["achievement_raw"], row["band"]), agg


async def test_an_indicator_removed_and_added_again_in_another_unit_is_flagged_in_it(
    client: Client, app: Litestar, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """db/submissions caches each code's unit for good ("never changed"), but an
    indicator nobody has stored values for nor set targets for can be deleted and added
    again with another unit. A report naming it (refused for another unknown code) fills
    the cache with per_day; after the catalogue says percent, 101 of 100 is still not
    flagged over_100 (and would never be, in any worker that had seen it)."""
    admin = bearer(app, people["admin"])
    assert (await client.post("/v1/indicators", json=indicator(), headers=admin)).status_code == 201
    signer = await register_key(conn, people["district_head"])
    refused = await post_jws(
        client,
        app,
        signer.person,
        signer.sign(values={"rekam_harian": (15_000, 30), "no_such": (1, 2)}),
    )
    assert refused.status_code == 422, refused.text  # nothing stored
    assert (await client.delete("/v1/indicators/rekam_harian", headers=admin)).status_code in (
        200,
        204,
    )
    again = await client.post("/v1/indicators", json=indicator(unit="percent"), headers=admin)
    assert again.status_code == 201, again.text
    try:
        made = await submit(client, app, signer, values={"rekam_harian": (101, 100)})
    finally:
        sub_db.forget_indicators()
    assert "over_100" in made["flags"], made["flags"]


async def test_a_unit_changed_by_another_worker_is_flagged_in_it(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """Only the worker that removed an indicator forgot its unit: one removed and added
    again by another worker (here: changed with SQL) kept its old unit in this worker's
    memory, so 101 of 100 in percent was still read as a daily rate and not flagged
    over_100. The catalogue's change is now heard by every worker's change feed."""
    signer = await register_key(conn, people["district_head"])
    async with served(msgspec.structs.replace(settings, change_feed=True)) as (app, http):
        admin = bearer(app, people["admin"])
        made = await http.post("/v1/indicators", json=indicator(), headers=admin)
        assert made.status_code == 201, made.text
        assert await sub_db.known_indicators(conn, ["rekam_harian"]) == {"rekam_harian": "per_day"}
        await conn.execute(  # as another worker's removal and addition would leave it
            "UPDATE indicators SET unit = 'percent' WHERE code = 'rekam_harian'"
        )
        await feed_of(app).sync()  # everything committed before is heard
        posted = await http.post(
            "/v1/submissions",
            content=signer.sign(values={"rekam_harian": (101, 100)}).encode(),
            headers={**bearer(app, signer.person), "Content-Type": JOSE},
        )
        assert posted.status_code == 201, posted.text
        assert "over_100" in posted.json()["flags"], posted.json()["flags"]


async def test_a_daily_rate_half_its_target_is_not_projected_on_track(
    client: Client, app: Litestar, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """The unit fix scores a per_day indicator in its unit (achievement 50), but the
    projection still reads the target as a percent of the denominator (1,000 x 30 / 100
    = 300 recordings, long passed): 500 a day against 1,000 a day is shown on track."""
    _, row = await daily_card(client, app, conn, people)
    assert row["achievement_raw"] == 50.0
    projection = row["projection"]
    assert projection is None or projection["status"] != "on_track", projection


async def test_a_daily_rate_report_shows_its_coverage_in_its_unit(
    client: Client, app: Litestar, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """A stated 500 is compared in the indicator's unit and raises no stated_mismatch, yet
    the report's own ``coverage_pct`` for the value is 50,000 (x100): the submission says
    the district stated 500 for a computed 50,000 and calls it consistent."""
    made, row = await daily_card(client, app, conn, people)
    value = {v["indicator"]: v for v in made["values"]}["rekam_harian"]
    assert "stated_mismatch" not in made["flags"]
    assert value["coverage_pct"] == row["coverage"] == 500.0, value


async def test_a_correction_that_committed_is_answered_even_if_its_connection_then_fails(
    settings: Settings,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fix answers a committed *batch* as stored when handing its connection back
    fails, but a correction (``supersedes``) is never batched: it commits in
    ``transaction()``, whose release failure still reaches the district head as a 500
    for a report that was stored (and its resend is 409 jti-replayed)."""
    head = await register_key(conn, people["district_head"])
    release = asyncpg.pool.Pool.release
    armed: list[bool] = []

    async def failing_release(pool: asyncpg.Pool, connection: Any, **kw: Any) -> None:
        await release(pool, connection, **kw)
        if armed == [True]:
            armed.append(False)
            raise ConnectionResetError("lost while released")

    async with served(settings) as (app, http):
        headers = {**bearer(app, head.person), "Content-Type": JOSE}
        first = await http.post("/v1/submissions", content=head.sign().encode(), headers=headers)
        assert first.status_code == 201, first.text
        correction = head.sign(supersedes=(first.json()["id"], "salah ketik"))
        monkeypatch.setattr(asyncpg.pool.Pool, "release", failing_release)
        monkeypatch.setattr(ingest, "submit", _arming(ingest.submit, armed))
        answer = await http.post("/v1/submissions", content=correction.encode(), headers=headers)
        monkeypatch.undo()
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 2  # it was stored
    assert answer.status_code == 201, answer.text


def _arming(submit_fn: Any, armed: list[bool]) -> Any:
    async def submitting(*args: Any, **kw: Any) -> Any:
        result = await submit_fn(*args, **kw)
        armed.append(True)
        return result

    return submitting


async def test_a_daily_rate_above_1000_a_day_can_be_stated(
    client: Client, app: Litestar, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """A stated figure is now read in the indicator's unit, but it is still bounded as a
    percent (0 to 1,000): a district recording 1,200 a day (36,000 in 30 days) cannot
    state the figure its report prints."""
    admin = bearer(app, people["admin"])
    assert (await client.post("/v1/indicators", json=indicator(), headers=admin)).status_code == 201
    signer = await register_key(conn, people["district_head"])
    payload = signer.payload(values={"rekam_harian": (36_000, 30)}, as_of=date(YEAR, 2, 1))
    payload["values"]["rekam_harian"]["stated_pct"] = 1200.0  # past the client's own check
    response = await post_jws(client, app, signer.person, signer.sign_raw(payload))
    assert response.status_code == 201, response.text
    assert "stated_mismatch" not in response.json()["flags"]


async def test_the_token_request_refuses_a_repeated_member_in_json_too(
    client: Client, app: Litestar, people: dict[str, Person]
) -> None:
    """The form now refuses a parameter sent twice (RFC 6749 3.2), but the same request
    as JSON (accepted on this route) with ``username`` twice silently takes the last."""
    person = people["district_head"]
    body = (
        '{"grant_type": "password", "username": "nobody", '
        f'"username": "{person.username}", "password": "{PASSWORD}"}}'
    )
    response = await client.post(
        "/v1/auth/token", content=body.encode(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.text


async def test_a_daily_rate_is_not_flagged_over_100_when_the_code_cache_was_cleared_meanwhile(
    settings: Settings,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``unit_of`` answers "percent" for a code the cache no longer holds, and any other
    request's foreign-key failure clears the whole cache (``forget_indicators``) between
    a report's check (``known_indicators``) and its entry (``new_entry``, in the batch,
    later): a per_day report of 500 a day is then flagged over_100."""
    admin = people["admin"]
    head = await register_key(conn, people["district_head"])
    settle = ingest.settle

    async def settling(*args: Any, **kw: Any) -> Any:
        sub_db.forget_indicators()  # another worker task's append hit a removed indicator
        return await settle(*args, **kw)

    async with served(settings) as (app, http):
        added = await http.post("/v1/indicators", json=indicator(), headers=bearer(app, admin))
        assert added.status_code == 201, added.text
        monkeypatch.setattr(ingest, "settle", settling)
        headers = {**bearer(app, head.person), "Content-Type": JOSE}
        jws = head.sign({"rekam_harian": (15_000, 30)})
        answer = await http.post("/v1/submissions", content=jws.encode(), headers=headers)
        monkeypatch.undo()
    assert answer.status_code == 201, answer.text
    assert "over_100" not in answer.json()["flags"], answer.json()["flags"]


async def test_a_unit_read_while_the_catalogue_changed_is_not_remembered() -> None:
    """A unit read from the catalogue as a change was being heard (the feed forgot the
    units meanwhile) was remembered after the forgetting: the old unit for good."""

    class Racing:
        def __init__(self, unit: str, change: bool) -> None:
            self.unit, self.change = unit, change

        async def fetch(self, _query: str, codes: list[str]) -> list[dict[str, str]]:
            if self.change:
                sub_db.forget_indicators()  # heard while this read was under way
            return [{"code": code, "unit": self.unit} for code in codes]

    sub_db.forget_indicators()
    try:
        read = await sub_db.known_indicators(Racing("per_day", True), ["x_rate"])  # type: ignore[arg-type]
        assert read == {"x_rate": "per_day"}
        again = await sub_db.known_indicators(Racing("percent", False), ["x_rate"])  # type: ignore[arg-type]
        assert again == {"x_rate": "percent"}
    finally:
        sub_db.forget_indicators()
