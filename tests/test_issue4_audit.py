"""Audit of issue 4 (agreements: catalogue, regions, drafts, signatures, amendments,
cascade): the sub-points no other test pins down, and what a user hits at their edges."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import asyncpg
import msgspec
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.agreement_helpers import (
    activate,
    district_agreement,
    draft,
    national_agreement,
    palembang_draft,
    register_signer,
    sign,
    targets,
)
from tests.people import Person, bearer

Client = AsyncTestClient[Litestar]
PROBLEM = "application/problem+json"
YEAR = 2021


def slug(response: Any) -> str:
    assert response.headers["content-type"].startswith(PROBLEM), response.text
    return str(response.json()["type"].rsplit("/", 1)[-1])


async def signature_rows(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM agreement_signatures"))


# -- 4. the signature statement's iat window (README: 5 minutes ahead, 7 days old) -------


async def test_statement_iat_window_edges_and_problem_types(
    client: Client, app: Litestar, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """Inside the window a statement is taken (a party who reviewed the document for
    days, a device clock a little fast); outside it the README's problem types, and
    nothing is stored."""
    agreement = await palembang_draft(client, app, people)
    head = await register_signer(conn, people["district_head"])
    province = await register_signer(conn, people["province_head"])
    url = f"/v1/agreements/{agreement['id']}/signatures"
    now = int(time.time())
    ahead = await client.post(
        url,
        json={"jws": head.statement(agreement, "second", iat=now + 360)},
        headers=bearer(app, people["district_head"]),
    )
    assert ahead.status_code == 422 and slug(ahead) == "statement-iat-in-future", ahead.text
    old = await client.post(
        url,
        json={"jws": head.statement(agreement, "second", iat=now - 7 * 86400 - 60)},
        headers=bearer(app, people["district_head"]),
    )
    assert old.status_code == 422 and slug(old) == "statement-iat-too-old", old.text
    assert await signature_rows(conn) == 0
    # Just inside both edges: a clock four minutes fast, a statement six days old.
    fast = await client.post(
        url,
        json={"jws": head.statement(agreement, "second", iat=now + 240)},
        headers=bearer(app, people["district_head"]),
    )
    assert fast.status_code == 201, fast.text
    aged = await client.post(
        url,
        json={"jws": province.statement(agreement, "first", iat=now - 6 * 86400)},
        headers=bearer(app, people["province_head"]),
    )
    assert aged.status_code == 201, aged.text
    assert aged.json()["status"] == "active"


# -- 4/5. a superseded version is never signed again; statements do not travel ----------


async def test_a_superseded_version_is_not_signed_and_statements_do_not_travel(
    client: Client, app: Litestar, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    v1 = await palembang_draft(client, app, people)
    head = await register_signer(conn, people["district_head"])
    province = await register_signer(conn, people["province_head"])
    v1 = await activate(client, app, v1, second=head, first=province)
    amended = await client.post(
        f"/v1/agreements/{v1['id']}/amendments",
        json={
            "reason": "perubahan_prioritas",
            "note": "Target KIA dinaikkan",
            "targets": targets(ktp_el=100, kia=35, akta_lahir=95),
        },
        headers=bearer(app, people["province_head"]),
    )
    assert amended.status_code == 201, amended.text
    v2 = amended.json()
    # v1's stored signatures, replayed on v2: another agreement, another document.
    for stored in v1["signatures"]:
        who = people["district_head"] if stored["party"] == "second" else people["province_head"]
        replay = await client.post(
            f"/v1/agreements/{v2['id']}/signatures",
            json={"jws": stored["jws"]},
            headers=bearer(app, who),
        )
        assert replay.status_code == 422 and slug(replay) == "document-mismatch", replay.text
    assert await signature_rows(conn) == 2
    await activate(client, app, v2, second=head, first=province)
    before = await signature_rows(conn)
    # Fresh, well-formed statements over the superseded version: 409, nothing stored.
    for signer, party in ((head, "second"), (province, "first")):
        late = await sign(client, app, signer, v1, party)
        assert late.status_code == 409, (party, late.text)
        assert late.headers["content-type"].startswith(PROBLEM)
    assert await signature_rows(conn) == before
    statuses = await conn.fetch(
        "SELECT version, status FROM agreements WHERE lineage_id = $1 ORDER BY version",
        v1["lineage_id"],
    )
    assert [(r["version"], r["status"]) for r in statuses] == [(1, "superseded"), (2, "active")]


# -- 4. the canonical document is reproducible from its documented definition -----------


async def test_the_canonical_document_can_be_rebuilt_from_the_agreement_and_its_definition(
    client: Client, app: Litestar, people: dict[str, Person]
) -> None:
    """A party (or an auditor) checks what they sign without trusting the server's bytes:
    the definition (README, api/agreement_document.py) applied to the agreement as read
    gives the same SHA-256, here with a non-ASCII official, an acting first party,
    milestones and weights."""
    made = await draft(
        client,
        app,
        people["province_head"],
        year=YEAR,
        level="province_district",
        second={
            "area_code": "16.71",
            "official": "Hj. Śiti Nurbaya, S.Sos",
            "title": "Kepala Dinas",
            "acting": "plh",
        },
        target_list=[
            {"indicator": "ktp_el", "annual": 100, "quarterly": [97.5, 98, 99, 100], "weight": 2},
            {"indicator": "kia", "annual": 30.125, "weight": 1},
            {"indicator": "akta_lahir", "annual": 95, "weight": 1},
        ],
    )

    def fixed(value: float | None, places: int) -> str | None:
        return None if value is None else f"{value:.{places}f}"

    def party(p: dict[str, Any]) -> dict[str, Any]:
        keys = ("area_code", "division_id", "official", "title", "acting")
        return {k: p[k] for k in keys}

    document = {
        "schema": 1,
        "type": "kinerja.perjanjian_kinerja",
        "agreement_id": made["id"],
        "lineage_id": made["lineage_id"],
        "version": made["version"],
        "year": made["year"],
        "level": made["level"],
        "first_party": party(made["first_party"]),
        "second_party": party(made["second_party"]),
        "targets": [
            {
                "indicator": t["indicator"],
                "annual": fixed(t["annual"], 2),
                "quarterly": None
                if t["quarterly"] is None
                else [fixed(q, 2) for q in t["quarterly"]],
                "weight": fixed(t["weight"], 6),
            }
            for t in sorted(made["targets"], key=lambda t: t["indicator"])
        ],
        "amendment": None,
    }
    rebuilt = msgspec.json.encode(document, order="sorted")
    served = await client.get(
        f"/v1/agreements/{made['id']}/document", headers=bearer(app, people["district_head"])
    )
    assert served.content == rebuilt
    assert hashlib.sha256(rebuilt).hexdigest() == made["document_sha256"]


# -- 6. the cascade for an indicator where lower is better ------------------------------


async def test_cascade_gap_direction_follows_a_lower_is_better_indicator(
    client: Client, app: Litestar, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """For a lower-is-better indicator "below the province" means short of it: a district
    allowing more late reports than the province promised is the gap, one allowing fewer
    is not; the weighted mean is judged the same way."""
    added = await client.post(
        "/v1/indicators",
        json={
            "code": "telat_lapor",
            "name_id": "Laporan terlambat",
            "name_en": "Late reports",
            "polarity": "lower",
            "numerator_definition": "late reports",
            "denominator_definition": "reports",
        },
        headers=bearer(app, people["admin"]),
    )
    assert added.status_code == 201, added.text
    province = await national_agreement(
        client, app, conn, people, year=YEAR, target_list=targets(ktp_el=100, telat_lapor=5)
    )
    # Kota Palembang, the most populous, allows 10 (worse); Lahat 3 (better).
    await district_agreement(
        client, app, conn, province, "16.71", targets(ktp_el=100, telat_lapor=10)
    )
    await district_agreement(
        client, app, conn, province, "16.72", targets(ktp_el=100, telat_lapor=3)
    )
    response = await client.get(
        "/v1/agreements/cascade",
        params={"year": YEAR, "area": "16"},
        headers=bearer(app, people["province_head"]),
    )
    assert response.status_code == 200, response.text
    late = {
        (f["code"], f["area_code"])
        for f in response.json()["findings"]
        if f["indicator"] == "telat_lapor" and f["code"] != "indicator_uncovered_by_divisions"
    }
    assert late == {
        ("district_target_below_province", "16.71"),
        ("weighted_mean_below_province", "16"),
    }, late
    mean = next(
        f
        for f in response.json()["findings"]
        if f["code"] == "weighted_mean_below_province" and f["indicator"] == "telat_lapor"
    )
    assert mean["target"] > 5 and mean["reference"] == 5


# -- 3. the agreement list pages through every agreement once ---------------------------


async def test_paging_the_agreement_list_after_closing_and_redrafting_shows_each_once(
    client: Client, app: Litestar, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """The province closes each district's 2021 agreement (made in error) and drafts a
    new one: both are version 1 of the same year, level and office, and the list's
    order has nothing else to tell them apart, so pages of it repeat some agreements and
    never show others (README: "every list" comes in pages; issue 4: "paginated")."""
    province = await register_signer(conn, people["province_head"])
    head = bearer(app, people["province_head"])
    codes = [
        r["code"]
        for r in await conn.fetch(
            "SELECT code FROM areas WHERE parent_code = '16' AND kind = 'district' ORDER BY code"
        )
    ]
    expected: set[str] = set()
    for code in codes:
        active, _ = await district_agreement(client, app, conn, province, code, targets(kia=30))
        closed = await client.post(
            f"/v1/agreements/{active['id']}/close", json={"reason": "Dibuat keliru"}, headers=head
        )
        assert closed.status_code == 200, closed.text
        again = await draft(
            client,
            app,
            people["province_head"],
            year=YEAR,
            level="province_district",
            second={"area_code": code, "official": f"Kadis {code}"},
            target_list=targets(kia=31),
        )
        expected |= {active["id"], again["id"]}
    broken = {}
    for limit in range(1, 20):
        seen: list[str] = []
        for offset in range(0, len(expected), limit):
            page = await client.get(
                "/v1/agreements", params={"limit": limit, "offset": offset}, headers=head
            )
            assert page.status_code == 200, page.text
            assert page.json()["total"] == len(expected)
            seen.extend(item["id"] for item in page.json()["items"])
        if len(set(seen)) != len(seen) or set(seen) != expected:
            broken[limit] = len(expected - set(seen))
    assert broken == {}, f"page size: agreements never shown {broken}"


# -- Must show: OpenAPI documents each endpoint with examples ----------------------------

#: The endpoints issue 4 names (and the catalogue's, "an admin can add indicators").
ISSUE_4_BODIES = [
    ("/v1/indicators", "post"),
    ("/v1/provinces/{code}/regions/{year}", "put"),
    ("/v1/agreements", "post"),
    ("/v1/agreements/{agreement_id}/signatures", "post"),
    ("/v1/agreements/{agreement_id}/amendments", "post"),
]
ISSUE_4_READS = [
    ("/v1/indicators", "get"),
    ("/v1/provinces/{code}/regions/{year}", "get"),
    ("/v1/agreements", "get"),
    ("/v1/agreements/{agreement_id}", "get"),
    ("/v1/agreements/{agreement_id}/versions", "get"),
    ("/v1/agreements/cascade", "get"),
]


def _has_example(doc: dict[str, Any], node: Any, seen: set[str] | None = None) -> bool:
    """Whether ``node`` (or a component it refers to) carries an example."""
    seen = set() if seen is None else seen
    if isinstance(node, dict):
        if node.get("example") is not None or node.get("examples"):
            return True
        ref = node.get("$ref")
        if isinstance(ref, str) and ref not in seen:
            seen.add(ref)
            if _has_example(doc, doc["components"]["schemas"][ref.rsplit("/", 1)[-1]], seen):
                return True
        return any(_has_example(doc, v, seen) for v in node.values())
    if isinstance(node, list):
        return any(_has_example(doc, v, seen) for v in node)
    return False


def _body_example(doc: dict[str, Any], path: str, method: str) -> bool:
    operation = doc["paths"][path][method]
    content = operation.get("requestBody", {}).get("content", {})
    for media in content.values():
        if media.get("example") is not None or media.get("examples"):
            return True
        schema = media.get("schema", {})
        ref = schema.get("$ref") or next(
            (s.get("$ref") for s in schema.get("allOf", []) if "$ref" in s), None
        )
        if schema.get("examples"):
            return True
        if ref is not None:
            component = doc["components"]["schemas"][ref.rsplit("/", 1)[-1]]
            if component.get("examples"):
                return True
    return False


async def test_openapi_shows_an_example_body_for_every_issue_4_write(client: Client) -> None:
    doc = (await client.get("/schema/openapi.json")).json()
    missing = [f"{m.upper()} {p}" for p, m in ISSUE_4_BODIES if not _body_example(doc, p, m)]
    assert missing == [], f"no request example in /schema/openapi.json for {missing}"


async def test_openapi_shows_an_example_for_every_issue_4_read(client: Client) -> None:
    doc = (await client.get("/schema/openapi.json")).json()
    missing = [
        f"{m.upper()} {p}"
        for p, m in ISSUE_4_READS
        if not _has_example(
            doc,
            {
                "parameters": doc["paths"][p][m].get("parameters", []),
                "ok": doc["paths"][p][m]["responses"].get("200", {}),
            },
        )
    ]
    assert missing == [], f"no example (parameters or 200 answer) for {missing}"
