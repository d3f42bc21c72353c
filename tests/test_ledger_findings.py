"""Ledger verification: review findings, each once answered ok or 500 for a tampered row."""

from __future__ import annotations

from uuid import UUID

import asyncpg
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.people import Person, bearer
from tests.submitting import register_key, submit


async def test_ledger_verify_names_a_stated_pct_edited_to_nan(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """numeric holds NaN, jsonb does not: verify must report the entry, not fail."""
    signer = await register_key(conn, people["district_head"])
    made = await submit(client, app, signer)
    await conn.execute(
        "UPDATE submission_values SET stated_pct = 'NaN' WHERE submission_id = $1 "
        "AND indicator_code = 'ktp_el'",
        UUID(made["id"]),
    )
    report = await client.get(
        "/v1/districts/16.71/ledger/verify", headers=bearer(app, people["province_head"])
    )
    assert report.status_code == 200, report.text
    assert report.json()["first_broken"]["problem"] == "values_mismatch", report.json()


async def test_ledger_verify_names_a_received_at_edited_to_infinity(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """asyncpg reads timestamptz 'infinity' as a naive datetime.max: comparing it with the
    key's times raised TypeError (a 500, and the CLI stops) instead of a broken entry."""
    signer = await register_key(conn, people["district_head"])
    made = await submit(client, app, signer)
    await conn.execute(
        "UPDATE submissions SET received_at = '-infinity' WHERE id = $1", UUID(made["id"])
    )
    report = await client.get(
        "/v1/districts/16.71/ledger/verify", headers=bearer(app, people["province_head"])
    )
    assert report.status_code == 200, report.text
    assert report.json()["first_broken"]["problem"] == "signature_invalid", report.json()
