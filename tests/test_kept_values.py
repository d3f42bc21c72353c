"""Values kept per worker by data version: after one district reports, a replica reads
that district again and nothing else, and its ranking equals one read whole."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec
import pytest

from api.kept_values import KeptValues
from api.settings import Settings
from db import scorecards as data
from tests.people import Person, bearer
from tests.submitting import JOSE, register_key, served, today
from tests.test_change_feed import feed_of

RANKING = "/v1/rankings/districts"


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The districts of every read of kept values, in order."""
    seen: list[list[str]] = []
    real = data.current_values

    async def spy(conn: asyncpg.Connection, districts: list[str], *args: Any, **kw: Any) -> Any:
        seen.append(sorted(districts))
        return await real(conn, districts, *args, **kw)

    monkeypatch.setattr(data, "current_values", spy)
    return seen


def rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    return document["rows"]  # type: ignore[no-any-return]


async def test_a_replica_reads_again_only_the_district_that_reported(
    settings: Settings,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    reads: list[list[str]],
) -> None:
    signer = await register_key(conn, people["district_head"])
    district = signer.person.area_code
    params = {"year": today().year, "province": district.split(".")[0]}
    async with served(settings) as (a, http_a), served(settings) as (b, http_b):
        monitor = bearer(b, people["province_monitor"])
        first = await http_b.get(RANKING, params=params, headers=monitor)
        assert first.status_code == 200, first.text
        assert len(reads) == 1 and district in reads[0] and len(reads[0]) > 10
        row = next(r for r in rows(first.json()) if r["code"] == district)
        assert row["status"] == "no_data"

        posted = await http_a.post(
            "/v1/submissions",
            content=signer.sign().encode(),
            headers={**bearer(a, signer.person), "Content-Type": JOSE},
        )
        assert posted.status_code == 201, posted.text
        await feed_of(b).sync()
        del reads[:]
        second = await http_b.get(RANKING, params=params, headers=monitor)
        assert second.status_code == 200, second.text
        assert reads == [[district]]  # one read, of the district that reported
        row = next(r for r in rows(second.json()) if r["code"] == district)
        assert row["status"] == "no_target"  # counts now, but no agreement in this world
        assert row["indicators"]["ktp_el"]["coverage"] == pytest.approx(96.0)

        # Replica A never ranked: it reads every district, and agrees row for row.
        del reads[:]
        whole = await http_a.get(
            RANKING, params=params, headers=bearer(a, people["province_monitor"])
        )
        assert len(reads) == 1 and len(reads[0]) == len(first.json()["rows"])
        assert rows(whole.json()) == rows(second.json())
        assert whole.headers["etag"] == second.headers["etag"]


async def test_nothing_is_kept_while_the_feed_is_down(
    settings: Settings,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    reads: list[list[str]],
) -> None:
    """Without a live feed no version can vouch for kept values: every ranking reads
    every district (and stays right)."""
    signer = await register_key(conn, people["district_head"])
    params = {"year": today().year, "province": signer.person.area_code.split(".")[0]}
    async with served(msgspec.structs.replace(settings, change_feed=False)) as (app, http):
        assert isinstance(app.state.kept_values, KeptValues)
        monitor = bearer(app, people["province_monitor"])
        for _ in range(2):
            app.state.report_cache._items.clear()  # render again, not the cached body
            response = await http.get(RANKING, params=params, headers=monitor)
            assert response.status_code == 200, response.text
        assert len(reads) == 2 and reads[0] == reads[1] and len(reads[0]) > 10
