"""What workers cache, against what changed: findings of a review, each failed before its fix."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec
import pytest

from api.settings import Settings
from tests.people import Person, bearer
from tests.submitting import JOSE, register_key, served, today
from tests.test_change_feed import feed_of
from tests.waiting import wait_until

RANKING = "/v1/rankings/districts"


def row_of(document: dict[str, Any], code: str) -> dict[str, Any]:
    return next(r for r in document["rows"] if r["code"] == code)


@pytest.mark.parametrize("feed", [True, False])
async def test_a_data_version_reset_does_not_bring_back_an_old_etag_and_body(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person], feed: bool
) -> None:
    """data_versions may be reset (the feed handles TRUNCATE/DELETE explicitly, migration
    0006; a restore or a failover that loses the last commits does the same): versions
    start again from 1, so a scope's sum repeats one already used for other data. The
    ETag (and the report cache key) is made from that sum alone, so the old body is
    served again from the cache, and a client's If-None-Match gets 304 for changed data."""
    signer = await register_key(conn, people["district_head"])
    district = signer.person.area_code
    params = {"year": today().year, "province": district.split(".")[0]}
    chosen = msgspec.structs.replace(settings, change_feed=feed)
    async with served(chosen) as (app, http):
        monitor = bearer(app, people["province_monitor"])
        head = {**bearer(app, signer.person), "Content-Type": JOSE}
        first_values = {"ktp_el": (1_200_000, 1_250_000)}
        posted = await http.post(
            "/v1/submissions", content=signer.sign(first_values).encode(), headers=head
        )
        assert posted.status_code == 201, posted.text
        before = await http.get(RANKING, params=params, headers=monitor)
        assert before.status_code == 200
        assert row_of(before.json(), district)["indicators"]["ktp_el"]["coverage"] == 96.0

        await conn.execute("TRUNCATE data_versions")
        if feed:
            await feed_of(app).sync()
            await wait_until(lambda: feed_of(app).versions(["ID"]) is not None)

        second_values = {"ktp_el": (1_000_000, 1_250_000)}
        posted = await http.post(
            "/v1/submissions", content=signer.sign(second_values).encode(), headers=head
        )
        assert posted.status_code == 201, posted.text
        after = await http.get(RANKING, params=params, headers=monitor)
        assert after.status_code == 200
        # The stored data say 80 %; the cached body under the repeated ETag says 96 %.
        assert row_of(after.json(), district)["indicators"]["ktp_el"]["coverage"] == 80.0
        polled = await http.get(
            RANKING, params=params, headers={**monitor, "If-None-Match": before.headers["etag"]}
        )
        assert polled.status_code == 200


async def test_new_area_data_loaded_at_start_moves_the_etag(
    settings: Settings,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A release that ships corrected area data (a district's name, here) is loaded by
    ``prepare_database`` at start-up, ``load_areas``, which moves no data version. The
    ranking names the district, but its ETag is the same before and after: a client
    polling with If-None-Match keeps the old name (304), and a replica started before
    the upgrade keeps serving the old body under the very ETag the new one uses."""
    from db import areas as areas_db

    district = people["district_head"].area_code
    params = {"year": today().year, "province": district.split(".")[0]}
    async with served(settings) as (old, http_old):
        monitor = bearer(old, people["province_monitor"])
        first = await http_old.get(RANKING, params=params, headers=monitor)
        assert first.status_code == 200
        old_name = row_of(first.json(), district)["name"]

        shipped = areas_db.area_rows()

        def corrected() -> list[tuple[Any, ...]]:
            return [
                (r[0], r[1], "KOTA PALEMBANG (BARU)", *r[3:]) if r[0] == district else r
                for r in shipped
            ]

        monkeypatch.setattr(areas_db, "area_rows", corrected)
        async with served(settings) as (new, http_new):
            assert await conn.fetchval("SELECT name FROM areas WHERE code = $1", district) == (
                "KOTA PALEMBANG (BARU)"
            )
            reader = bearer(new, people["province_monitor"])
            fresh = await http_new.get(RANKING, params=params, headers=reader)
            assert row_of(fresh.json(), district)["name"] != old_name
            # The new replica's ETag must differ from the one the old data were sent under.
            assert fresh.headers["etag"] != first.headers["etag"]
