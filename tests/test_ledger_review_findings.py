"""Found by a review of ledger verification (``GET /v1/districts/{code}/ledger/verify``
and ``kinerja ledger verify``): tampering it failed to name, or crashed on. Each test
failed on the code it was written against and states what an auditor expects.

The issue: "A row changed directly with SQL is named by verify"; verify "recomputes the
chain and re-verifies every signature ... it answers ok, or the first broken entry and
what broke". The README: verify "compares the stored payload and values with the
signed ones", and ``kinerja ledger verify --all`` gives "one JSON line per district,
exit 1 if any is broken".
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.people import Person, bearer
from tests.submitting import Signer, register_key, submit, verify_all_with_cli

#: A report whose counts include a 0 and a 1, as real ones do (no KIA issued yet in a
#: new office; one recording through the mobile channel).
SMALL_COUNTS: dict[str, Any] = {
    "ktp_el": {"numerator": 0, "denominator": 10, "channels": {"office": 1}},
    "akta_lahir": (1, 2),
}


async def verify(
    client: AsyncTestClient[Litestar], app: Litestar, who: Person, district: str = "16.71"
) -> Any:
    return await client.get(f"/v1/districts/{district}/ledger/verify", headers=bearer(app, who))


async def first_broken(client: AsyncTestClient[Litestar], app: Litestar, who: Person) -> Any:
    """Kota Palembang's verify answer (200), its first broken entry."""
    response = await verify(client, app, who)
    assert response.status_code == 200, response.text[:300]
    return response.json()["first_broken"]


async def stored_then_tampered(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    signer: Signer,
    tamper: str,
) -> UUID:
    """A report with small counts stored through the API, then ``tamper`` (SQL with its
    id as $1) run behind the API's back; the report's id."""
    made = await submit(client, app, signer, values=SMALL_COUNTS)
    assert (await verify(client, app, signer.person)).json()["ok"] is True
    report_id = UUID(made["id"])
    await conn.execute(tamper, report_id)
    return report_id


# -- a stored number turned into a boolean -----------------------------------------------

#: The stored payload (jsonb) edited so that a signed count reads as a JSON boolean. The
#: JSON differs from the signed bytes (``GET /v1/submissions/{id}`` shows ``false``
#: where the district signed ``0``), but Python's ``0 == False`` and ``1 == True`` made
#: api/ledger._check_payload's ``signed != entry.payload`` call them equal: verify said
#: ok.
PAYLOAD_BOOLEANS = {
    "numerator 0 made false": (
        "UPDATE submissions SET payload = "
        "jsonb_set(payload, '{values,ktp_el,numerator}', 'false') WHERE id = $1"
    ),
    "channel count 1 made true": (
        "UPDATE submissions SET payload = "
        "jsonb_set(payload, '{values,ktp_el,channels,office}', 'true') WHERE id = $1"
    ),
}


@pytest.mark.parametrize("tamper", PAYLOAD_BOOLEANS.values(), ids=list(PAYLOAD_BOOLEANS))
async def test_verify_names_a_stored_payload_count_turned_into_a_boolean(
    tamper: str,
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """README: verify "compares the stored payload and values with the signed ones"; a
    stored payload whose count is ``false`` is not the signed one (``0``), and the API
    shows it to every reader. Expected payload_mismatch at seq 1; got ok."""
    signer = await register_key(conn, people["district_head"])
    report_id = await stored_then_tampered(client, app, conn, signer, tamper)
    shown = await client.get(f"/v1/submissions/{report_id}", headers=bearer(app, people["admin"]))
    assert shown.status_code == 200, shown.text[:300]
    counts = shown.json()["payload"]["values"]["ktp_el"]
    assert counts["numerator"] is False or counts["channels"]["office"] is True, counts
    assert await first_broken(client, app, people["admin"]) == {
        "seq": 1,
        "id": str(report_id),
        "problem": "payload_mismatch",
        "detail": "the stored payload differs from the signed one",
    }


#: The same in the value rows: ``submission_values.channels`` is jsonb, compared in
#: api/ledger._check_values with ``!=`` on Python objects, so ``true`` passed for ``1``
#: and ``false`` for ``0``.
VALUE_BOOLEANS = {
    "office 1 made true": (
        "UPDATE submission_values SET channels = jsonb_set(channels, '{office}', 'true') "
        "WHERE submission_id = $1 AND indicator_code = 'ktp_el'"
    ),
    "kecamatan 0 made false": (
        "UPDATE submission_values SET channels = jsonb_set(channels, '{kecamatan}', 'false') "
        "WHERE submission_id = $1 AND indicator_code = 'ktp_el'"
    ),
}


@pytest.mark.parametrize("tamper", VALUE_BOOLEANS.values(), ids=list(VALUE_BOOLEANS))
async def test_verify_names_stored_channel_counts_turned_into_booleans(
    tamper: str,
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """README: verify "compares the stored payload and values with the signed ones".
    The channel breakdown (issue, item 1: "the period's new records by channel") is
    stored as ``true`` / ``false`` instead of the signed counts; expected
    values_mismatch at seq 1, got ok. (Reading that report is then a 500 on
    ``GET /v1/submissions/{id}``: the breakdown no longer converts to counts.)"""
    signer = await register_key(conn, people["district_head"])
    report_id = await stored_then_tampered(client, app, conn, signer, tamper)
    assert await first_broken(client, app, people["admin"]) == {
        "seq": 1,
        "id": str(report_id),
        "problem": "values_mismatch",
        "detail": "the stored ktp_el.channels differs",
    }


# -- stored JSON nested too deeply to read -------------------------------------------------

#: JSON nested 5,000 deep (PostgreSQL's jsonb takes it) written into a stored column:
#: the msgspec decoder of db/pool.py raises RecursionError while asyncpg reads the row,
#: inside ledger_db.chain's cursor, outside verify_district's ``try``: a 500.
DEEP = "(repeat('[', 5000) || repeat(']', 5000))::jsonb"
DEEP_TAMPERS = {
    "payload note": (
        f"UPDATE submissions SET payload = jsonb_set(payload, '{{note}}', {DEEP}) WHERE id = $1",
        "payload_mismatch",
    ),
    "value channels": (
        f"UPDATE submission_values SET channels = {DEEP} "
        "WHERE submission_id = $1 AND indicator_code = 'ktp_el'",
        "values_mismatch",
    ),
}


@pytest.mark.parametrize("case", sorted(DEEP_TAMPERS))
async def test_verify_names_deeply_nested_stored_json_instead_of_a_500(
    case: str,
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """The issue: verify "answers ok, or the first broken entry and what broke"; a row
    changed with SQL "is named by verify". It answered 500 instead (tests/
    test_reading_review_findings.py covers deep nesting in the signed bytes, not in the
    stored columns)."""
    tamper, problem = DEEP_TAMPERS[case]
    signer = await register_key(conn, people["district_head"])
    report_id = await stored_then_tampered(client, app, conn, signer, tamper)
    broken = await first_broken(client, app, people["admin"])
    assert (broken["seq"], broken["id"], broken["problem"]) == (1, str(report_id), problem)


async def test_the_cli_names_deeply_nested_stored_json_and_goes_on(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    outsiders: dict[str, Person],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """README: `kinerja ledger verify --all` prints "one JSON line per district, exit 1
    if any is broken". With Kota Palembang's payload nested too deeply it stopped there
    with a RecursionError traceback: no line for it, Jakarta never checked."""
    signer = await register_key(conn, people["district_head"])
    await stored_then_tampered(client, app, conn, signer, DEEP_TAMPERS["payload note"][0])
    await submit(client, app, await register_key(conn, outsiders["district_head"]))
    code, ok, err = await verify_all_with_cli(database_url, monkeypatch, capsys)
    assert code == 1, err[-500:]
    assert ok == {"16.71": False, outsiders["district_head"].area_code: True}


# -- kept latest values of a district with no ledger -------------------------------------


async def test_the_cli_checks_the_kept_values_of_a_district_without_a_ledger(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Kota Palembang's kept latest values copied with SQL onto Ogan Komering Ilir
    (16.02), which never reported: its scorecard now shows Palembang's figures. README:
    verify checks "that the latest values scorecards and rankings read are the ones the
    stored values give", and the route does name 16.02 (values_mismatch). But
    `kinerja ledger verify --all` ("re-check every district's submission ledger") picks
    its districts from ledger_heads and submissions only (db/ledger.districts_with_ledgers),
    so it never looked at 16.02: exit 0, "0 broken". latest_values has no foreign key to
    submissions, so such rows can name any district."""
    signer = await register_key(conn, people["district_head"])
    made = await submit(client, app, signer)
    await conn.execute(
        "INSERT INTO latest_values SELECT basis, '16.02', division_key, indicator_code, "
        "submission_id, as_of, seq, numerator, denominator, flags, status "
        "FROM latest_values WHERE submission_id = $1",
        UUID(made["id"]),
    )
    admin = bearer(app, people["admin"])
    card = await client.get("/v1/scorecards/districts/16.02", headers=admin)
    assert card.status_code == 200, card.text[:300]
    assert made["id"] in card.text  # the fabricated figures are what 16.02 shows
    route = (await verify(client, app, people["admin"], "16.02")).json()
    assert route["first_broken"]["problem"] == "values_mismatch", route  # the route names it
    code, ok, err = await verify_all_with_cli(database_url, monkeypatch, capsys)
    assert ok == {"16.71": True, "16.02": False}, err[-500:]
    assert code == 1, err[-500:]
