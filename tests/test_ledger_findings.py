"""Ledger verification: review findings, each once answered ok or 500 for a tampered row."""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from db import ledger as ledger_db
from tests.people import Person, bearer
from tests.submitting import register_key, submit, verify_all_with_cli

Fixtures = tuple[AsyncTestClient[Litestar], Litestar, asyncpg.Connection, dict[str, Person]]


@pytest.fixture
def world(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> Fixtures:
    return client, app, conn, people


async def verify_after(world: Fixtures, tamper: str) -> dict[str, Any]:
    """A report stored through the API, then changed behind its back (``tamper``, SQL
    with the report's id as $1); what verify says of its district (never a 5xx)."""
    client, app, conn, people = world
    signer = await register_key(conn, people["district_head"])
    made = await submit(client, app, signer)
    await conn.execute(tamper, UUID(made["id"]))
    head = bearer(app, people["province_head"])
    report = await client.get("/v1/districts/16.71/ledger/verify", headers=head)
    assert report.status_code == 200, report.text
    body: dict[str, Any] = report.json()
    return body


async def test_ledger_verify_misses_an_edit_of_the_values_scorecards_read(
    world: Fixtures,
) -> None:
    """Scorecards and rankings read ``latest_values`` (db/scorecards.current_values); an
    edit there behind the API's back changes every number shown, and verify said ok."""
    report = await verify_after(
        world,
        "UPDATE latest_values SET numerator = 1 "
        "WHERE submission_id = $1 AND indicator_code = 'ktp_el'",
    )
    assert report["first_broken"]["problem"] == "values_mismatch", report
    client, app, _, people = world
    head = bearer(app, people["province_head"])
    card = await client.get("/v1/scorecards/districts/16.71", headers=head)
    shown = {row["indicator"]: row["numerator"] for row in card.json()["indicators"]}
    assert shown["ktp_el"] == 1  # what verify named: the count every scorecard shows


# A row changed behind the API's back (SQL with the report's id as $1), and the problem
# verify must name for it, where each once gave a 500 or ok:
TAMPERED = {
    # numeric holds NaN and 1e400, a double does not (nor jsonb NaN); the JSON decoder
    # refused 1e400 (a 500).
    "stated_nan": (
        "UPDATE submission_values SET stated_pct = 'NaN' "
        "WHERE submission_id = $1 AND indicator_code = 'ktp_el'",
        "values_mismatch",
    ),
    "stated_1e400": (
        "UPDATE submission_values SET stated_pct = 1e400 + 0.5 "
        "WHERE submission_id = $1 AND indicator_code = 'ktp_el'",
        "values_mismatch",
    ),
    # asyncpg reads timestamptz 'infinity' as a naive datetime.max: comparing it with the
    # key's times raised TypeError (a 500, and the CLI stopped).
    "received_at_infinity": (
        "UPDATE submissions SET received_at = '-infinity' WHERE id = $1",
        "signature_invalid",
    ),
    # A report "returned" with SQL, its values too (no review: no who, when or why),
    # stops counting everywhere, and verify said ok: only a review may set the status.
    "status_without_review": (
        "WITH s AS (UPDATE submissions SET status = 'returned' WHERE id = $1) "
        "UPDATE submission_values SET status = 'returned' WHERE submission_id = $1",
        "status_mismatch",
    ),
}


@pytest.mark.parametrize("case", sorted(TAMPERED))
async def test_ledger_verify_names_a_tampered_row(world: Fixtures, case: str) -> None:
    tamper, problem = TAMPERED[case]
    report = await verify_after(world, tamper)
    assert report["first_broken"]["problem"] == problem, report


async def test_ledger_verify_misses_a_value_row_returned_behind_the_api(
    world: Fixtures,
) -> None:
    """The value copies scorecards read say "returned" (so the report stops counting)
    while the submission itself is "received" and has no review: rows that db/submissions
    promises never disagree, and verify called the ledger ok."""
    report = await verify_after(
        world, "UPDATE submission_values SET status = 'returned' WHERE submission_id = $1"
    )
    assert report["first_broken"]["problem"] == "values_mismatch", report
    conn = world[2]
    assert await conn.fetchval("SELECT count(*) FROM latest_values") == 0  # no longer counts


async def test_ledger_verify_reads_reviews_and_corrections_as_the_scorecards_do(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """The kept latest values are checked against the stored ones: a report accepted,
    one returned and one corrected all leave a chain that verifies."""
    signer = await register_key(conn, people["district_head"])
    first = await submit(client, app, signer, values={"ktp_el": (100, 1000)})
    second = await submit(client, app, signer, values={"ktp_el": (200, 1000)})
    reviewer = bearer(app, people["province_head"])
    for made, decision in ((first, "accept"), (second, "return")):
        reviewed = await client.post(
            f"/v1/submissions/{made['id']}/review",
            json={"decision": decision, "reason": "checked"},
            headers=reviewer,
        )
        assert reviewed.status_code == 201, reviewed.text
    await submit(
        client,
        app,
        signer,
        values={"ktp_el": (150, 1000)},
        supersedes={"id": first["id"], "reason": "recount"},
    )
    assert await conn.fetchval("SELECT count(*) FROM latest_values") >= 1
    report = await client.get("/v1/districts/16.71/ledger/verify", headers=reviewer)
    assert report.json()["ok"] is True, report.json()


async def test_the_kept_values_check_reads_a_district_through_its_indexes(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """Every index of submission_values that starts with the district is partial; one
    condition for every basis could use none of them, so each verify read the whole
    table, and ``ledger verify --all`` did so once per district (found by review)."""
    signer = await register_key(conn, people["district_head"])
    await submit(client, app, signer)
    await conn.execute("SET enable_seqscan = off")  # any index that can serve is taken
    plan = await conn.fetchval("EXPLAIN (FORMAT JSON) " + ledger_db._KEPT_MISMATCH, "16.71")
    nodes: list[tuple[str, str]] = []

    def walk(node: dict[str, Any]) -> None:
        nodes.append((node["Node Type"], node.get("Relation Name", "")))
        for child in node.get("Plans", []):
            walk(child)

    walk((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"])
    assert ("Seq Scan", "submission_values") not in nodes, nodes
    assert any(rel == "submission_values" for _, rel in nodes), nodes


async def test_ledger_verify_names_a_payload_number_too_large_for_a_float(
    world: Fixtures,
) -> None:
    """The same number in the stored payload: a 500 here and on GET /v1/submissions/{id}."""
    report = await verify_after(
        world,
        "UPDATE submissions SET payload = jsonb_set(payload, '{note}', to_jsonb(1e400 + 0.5)) "
        "WHERE id = $1",
    )
    assert report["first_broken"]["problem"] == "payload_mismatch", report
    client, app, conn, people = world
    made = await conn.fetchval("SELECT id FROM submissions")
    shown = await client.get(f"/v1/submissions/{made}", headers=bearer(app, people["admin"]))
    assert shown.status_code == 200, shown.text


async def test_the_cli_names_a_number_too_large_and_goes_on(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    outsiders: dict[str, Person],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`kinerja ledger verify --all` stopped at such a district with a traceback: no
    report line, no exit 1, and the districts after it never checked."""
    made = await submit(client, app, await register_key(conn, people["district_head"]))
    await submit(client, app, await register_key(conn, outsiders["district_head"]))
    await conn.execute(
        "UPDATE submission_values SET stated_pct = 1e400 + 0.5 "
        "WHERE submission_id = $1 AND indicator_code = 'ktp_el'",
        UUID(made["id"]),
    )
    code, ok, err = await verify_all_with_cli(database_url, monkeypatch, capsys)
    assert code == 1, err
    assert ok == {"16.71": False, outsiders["district_head"].area_code: True}


@pytest.mark.parametrize("case", ["stated_nan", "stated_1e400"])
async def test_reading_a_tampered_stated_figure_is_not_a_500(world: Fixtures, case: str) -> None:
    """Verify names such a row (above); the routes that show the report must still answer
    it, with the figure it can show: none (JSON has no infinity or NaN)."""
    client, app, conn, people = world
    signer = await register_key(conn, people["district_head"])
    made = await submit(client, app, signer)
    await conn.execute(TAMPERED[case][0], UUID(made["id"]))
    head = bearer(app, people["province_head"])
    listed = await client.get("/v1/submissions?district=16.71", headers=head)
    assert listed.status_code == 200, listed.text[:300]
    one = await client.get(f"/v1/submissions/{made['id']}", headers=head)
    assert one.status_code == 200, one.text[:300]
    for body in (one.json(), *listed.json()["items"]):
        stated = {v["indicator"]: v.get("stated_pct") for v in body["values"]}
        if body["id"] == made["id"]:
            assert stated["ktp_el"] is None, stated
    card = await client.get("/v1/scorecards/districts/16.71", headers=head)
    assert card.status_code == 200, card.text[:300]
