"""The demo year: seeded through the real services, idempotent, with the seeds' counts."""

from __future__ import annotations

from datetime import date

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.demo import (
    KALTIM_RECORDED,
    KALTIM_WAJIB_KTP,
    SUMSEL_RECORDED,
    SUMSEL_WAJIB_KTP,
    seed,
    split,
)
from api.settings import Settings
from tests.people import Person, bearer


def test_split_sums_exactly() -> None:
    parts = split(SUMSEL_WAJIB_KTP, [3.0, 1.0, 1.0, 2.5])
    assert sum(parts) == SUMSEL_WAJIB_KTP and all(p > 0 for p in parts)


async def test_demo_seed_ranks_live_and_keeps_the_seed_counts(
    conn: asyncpg.Connection,
    settings: Settings,
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
) -> None:
    assert await seed(conn, settings, date(2021, 6, 1), "demo-password-1") is True
    assert await seed(conn, settings, date(2021, 6, 1), "demo-password-1") is False
    # Every stored report went through the ledger: contiguous chains, valid signatures.
    heads = await conn.fetch("SELECT district_code, seq FROM ledger_heads")
    assert len(heads) == 17 + 10 + 24 + 6
    counts = dict(await conn.fetch("SELECT district_code, count(*) FROM submissions GROUP BY 1"))
    assert all(counts[h["district_code"]] == h["seq"] for h in heads)
    verify = await client.get(
        "/v1/districts/16.71/ledger/verify", headers=bearer(app, people["admin"])
    )
    assert verify.status_code == 200 and verify.json()["ok"] is True

    monitor = bearer(app, people["province_monitor"])
    card = await client.get(
        "/v1/scorecards/provinces/16", params={"as_of": "2021-02-15"}, headers=monitor
    )
    ktp = next(r for r in card.json()["aggregate"]["indicators"] if r["indicator"] == "ktp_el")
    # The article's figures, computed from the counts: 93.35 %, not the printed 97.70 %.
    assert (ktp["numerator"], ktp["denominator"]) == (SUMSEL_RECORDED, SUMSEL_WAJIB_KTP)
    assert round(ktp["coverage"], 2) == 93.35
    flagged = await conn.fetchval(
        "SELECT count(*) FROM submissions WHERE as_of = '2021-02-15' AND district_code LIKE '16.%' "
        "AND 'stated_mismatch' = ANY(flags)"
    )
    assert flagged > 0
    ranking = await client.get(
        "/v1/rankings/districts", params={"as_of": "2021-05-31"}, headers=monitor
    )
    body = ranking.json()
    assert body["counts"]["ranked"] == 17
    regions = await client.get(
        "/v1/rankings/regions", params={"as_of": "2021-05-31"}, headers=monitor
    )
    assert [r["status"] for r in regions.json()["rows"]] == ["ranked"] * 4


async def test_the_demos_15_february_reports_tell_the_readmes_story(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    """East Kalimantan's districts stated the province's 87.17 % while the split gave each
    its own share (85-89 %), so all of them were stated_mismatch; and each report fell
    below the district's own 31 January one (numerator_decreased) (found by review). The
    README: South Sumatra's reports carry stated_mismatch, East Kalimantan's are within
    tolerance, and reports are cumulative."""
    assert await seed(conn, settings, date(2021, 6, 1), "demo-password-1") is True
    rows = await conn.fetch(
        "SELECT s.district_code, s.flags, v.numerator, v.denominator FROM submissions s "
        "JOIN submission_values v ON v.submission_id = s.id "
        "WHERE s.as_of = '2021-02-15' AND v.indicator_code = 'ktp_el'"
    )
    for province, recorded, total, flagged in (
        ("64", KALTIM_RECORDED, KALTIM_WAJIB_KTP, False),
        ("16", SUMSEL_RECORDED, SUMSEL_WAJIB_KTP, True),
    ):
        mine = [r for r in rows if r["district_code"].startswith(province + ".")]
        assert sum(r["numerator"] for r in mine) == recorded
        assert sum(r["denominator"] for r in mine) == total
        assert {("stated_mismatch" in r["flags"]) for r in mine} == {flagged}
    decreased = await conn.fetchval(
        "SELECT count(*) FROM submissions WHERE 'numerator_decreased' = ANY(flags)"
    )
    assert decreased == 0


async def test_the_demo_keeps_south_sumatra_under_100_percent(
    conn: asyncpg.Connection, settings: Settings
) -> None:
    """The steps that keep the 15 February reports cumulative took South Sumatra past
    100 % from July (found by review)."""
    assert await seed(conn, settings, date(2021, 12, 31), "demo-password-1") is True
    over = await conn.fetchval(
        "SELECT count(*) FROM submissions WHERE 'over_100' = ANY(flags) "
        "AND district_code LIKE '16.%'"
    )
    assert over == 0
