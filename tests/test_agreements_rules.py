"""Drafting and editing agreements: parties, target rules, visibility, lists, amendments."""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api import agreements as service
from api.auth.principal import Principal
from api.errors import Conflict
from api.schemas.agreements import AgreementCreate
from db.pool import connect
from tests.agreement_helpers import activate, draft, register_signer, sign, targets
from tests.people import Person, bearer, coordinate, make_division, make_user
from tests.waiting import lock_waiters

PROBLEM = "application/problem+json"

Client = AsyncTestClient[Litestar]


def body(**overrides: Any) -> dict[str, Any]:
    """A province-district draft for Kota Palembang, 2021."""
    return {
        "year": 2021,
        "level": "province_district",
        "second_party": {"area_code": "16.71", "official": "Kadis Dukcapil Kota Palembang"},
        "targets": [
            {"indicator": "ktp_el", "annual": 100, "quarterly": [98.5, 99, 99.5, 100]},
            {"indicator": "kia", "annual": 30},
            {"indicator": "akta_lahir", "annual": 95},
        ],
        **overrides,
    }


async def post(client: Client, app: Litestar, person: Person, payload: Any) -> Any:
    return await client.post("/v1/agreements", json=payload, headers=bearer(app, person))


async def palembang(client: Client, app: Litestar, people: dict[str, Person]) -> dict[str, Any]:
    response = await post(client, app, people["province_head"], body())
    assert response.status_code == 201, response.text
    return response.json()


def problem_slug(response: Any) -> str:
    assert response.headers["content-type"].startswith(PROBLEM), response.text
    return str(response.json()["type"].rsplit("/", 1)[-1])


async def table_counts(conn: asyncpg.Connection) -> tuple[int, int, int]:
    return (
        int(await conn.fetchval("SELECT count(*) FROM agreements")),
        int(await conn.fetchval("SELECT count(*) FROM agreement_targets")),
        int(await conn.fetchval("SELECT count(*) FROM agreement_signatures")),
    )


# -- drafting ----------------------------------------------------------------------------


async def test_province_head_drafts_a_province_district_agreement(
    client: Client, app: Litestar, people: dict[str, Person]
) -> None:
    response = await post(client, app, people["province_head"], body())
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["status"] == "draft" and made["version"] == 1
    assert made["lineage_id"] == made["id"]
    assert made["year"] == 2021 and made["level"] == "province_district"
    assert made["first_party"]["area_code"] == "16"
    assert made["first_party"]["official"] == "Province Head"  # the caller's full name
    assert made["second_party"] == {
        "area_code": "16.71",
        "division_id": None,
        "official": "Kadis Dukcapil Kota Palembang",
        "title": None,
        "acting": None,
    }
    by_code = {t["indicator"]: t for t in made["targets"]}
    assert by_code["ktp_el"] == {
        "indicator": "ktp_el",
        "annual": 100.0,
        "quarterly": [98.5, 99.0, 99.5, 100.0],
        "weight": None,
    }
    assert by_code["kia"]["quarterly"] is None and by_code["kia"]["annual"] == 30
    assert made["signatures"] == [] and made["amendment"] is None
    assert made["activated_at"] is None and made["ended_at"] is None

    for role in ("province_head", "district_head", "ministry_monitor", "province_monitor"):
        document = await client.get(
            f"/v1/agreements/{made['id']}/document", headers=bearer(app, people[role])
        )
        assert document.status_code == 200, (role, document.text)
        assert document.headers["content-type"].startswith("application/json")
        assert hashlib.sha256(document.content).hexdigest() == made["document_sha256"]
        assert document.headers["X-Document-SHA256"] == made["document_sha256"]
    # The canonical bytes: sorted keys, no whitespace, fixed decimals, targets by indicator.
    parsed = json.loads(document.content)
    assert document.content == json.dumps(parsed, sort_keys=True, separators=(",", ":")).encode()
    assert parsed["schema"] == 1 and parsed["type"] == "kinerja.perjanjian_kinerja"
    assert parsed["agreement_id"] == made["id"] and parsed["version"] == 1
    assert [t["indicator"] for t in parsed["targets"]] == ["akta_lahir", "kia", "ktp_el"]
    assert parsed["targets"][2]["quarterly"] == ["98.50", "99.00", "99.50", "100.00"]
    assert parsed["targets"][1] == {
        "annual": "30.00",
        "indicator": "kia",
        "quarterly": None,
        "weight": None,
    }
    assert parsed["second_party"]["area_code"] == "16.71"
    assert parsed["amendment"] is None

    one = await client.get(f"/v1/agreements/{made['id']}", headers=bearer(app, people["admin"]))
    assert one.status_code == 200 and one.json() == made


async def test_first_party_official_and_titles_are_kept(
    client: Client, app: Litestar, people: dict[str, Person]
) -> None:
    payload = body(
        first_party={"official": "Dr. H. Kadis Provinsi", "title": "Kepala Dinas"},
        second_party={
            "area_code": "16.71",
            "official": "PLH Kadis",
            "title": "Kepala Dinas",
            "acting": "plh",
        },
    )
    made = (await post(client, app, people["province_head"], payload)).json()
    assert made["first_party"]["official"] == "Dr. H. Kadis Provinsi"
    assert made["first_party"]["title"] == "Kepala Dinas"
    assert made["second_party"]["acting"] == "plh"
    document = await client.get(
        f"/v1/agreements/{made['id']}/document", headers=bearer(app, people["province_head"])
    )
    parsed = json.loads(document.content)
    assert parsed["first_party"]["official"] == "Dr. H. Kadis Provinsi"
    assert parsed["second_party"]["acting"] == "plh"
    assert hashlib.sha256(document.content).hexdigest() == made["document_sha256"]


async def test_one_agreement_per_office_and_year(
    client: Client, app: Litestar, people: dict[str, Person], conn: asyncpg.Connection
) -> None:
    first = await palembang(client, app, people)
    again = await post(client, app, people["province_head"], body())
    assert again.status_code == 409, again.text
    assert again.json()["agreement_id"] == first["id"]
    assert await conn.fetchval("SELECT count(*) FROM agreements") == 1
    # Another year, or another district, is a separate agreement.
    assert (await post(client, app, people["province_head"], body(year=2022))).status_code == 201
    other = body(second_party={"area_code": "16.72", "official": "Kadis Lahat"})
    assert (await post(client, app, people["province_head"], other)).status_code == 201


async def test_racing_drafts_for_one_office_make_one_agreement(
    people: dict[str, Person], conn: asyncpg.Connection, database_url: str
) -> None:
    """Two requests (a double tap on a slow link) drafting for the same office-year at
    once: the second waits for the first and then sees its draft."""
    p = people["province_head"]
    caller = Principal(id=p.id, username=p.username, role="province_head", area_code="16")
    data = msgspec.convert(body(), AgreementCreate)
    first, second = await connect(database_url), await connect(database_url)
    try:
        tx_first, tx_second = first.transaction(), second.transaction()
        await tx_first.start()
        await tx_second.start()
        await service.create(first, caller, data)
        racing = asyncio.ensure_future(service.create(second, caller, data))
        await lock_waiters(conn, 1)
        assert not racing.done()  # waiting on the first transaction
        await tx_first.commit()
        with pytest.raises(Conflict):
            await racing
        await tx_second.rollback()
    finally:
        await first.close()
        await second.close()
    assert await conn.fetchval("SELECT count(*) FROM agreements") == 1


async def test_ministry_monitor_drafts_national_province(
    client: Client, app: Litestar, people: dict[str, Person]
) -> None:
    payload = body(
        level="national_province",
        second_party={"area_code": "16", "official": "Kadis Dukcapil Sumsel"},
    )
    response = await post(client, app, people["ministry_monitor"], payload)
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["first_party"]["area_code"] == "ID"
    assert made["second_party"]["area_code"] == "16"
    # The province head (second party) sees it; a Jakarta one does not.
    seen = await client.get(
        f"/v1/agreements/{made['id']}", headers=bearer(app, people["province_head"])
    )
    assert seen.status_code == 200
    # The province head is not its first party: no edits.
    edit = await client.patch(
        f"/v1/agreements/{made['id']}",
        json={"targets": targets(ktp_el=99)},
        headers=bearer(app, people["province_head"]),
    )
    assert edit.status_code == 403, edit.text


async def test_district_head_drafts_district_division(
    client: Client, app: Litestar, people: dict[str, Person], conn: asyncpg.Connection
) -> None:
    division = await make_division(conn, "16.71", "pias")
    payload = body(
        level="district_division",
        second_party={"division_id": str(division), "official": "Kabid PIAK"},
        targets=targets(ktp_el=100, kia=35),
    )
    response = await post(client, app, people["district_head"], payload)
    assert response.status_code == 201, response.text
    made = response.json()
    assert made["first_party"]["area_code"] == "16.71"
    assert made["second_party"]["area_code"] == "16.71"
    assert made["second_party"]["division_id"] == str(division)
    document = await client.get(
        f"/v1/agreements/{made['id']}/document", headers=bearer(app, people["district_head"])
    )
    assert json.loads(document.content)["second_party"]["division_id"] == str(division)
    assert hashlib.sha256(document.content).hexdigest() == made["document_sha256"]
    # Naming the district explicitly is allowed; the same division again is a conflict.
    payload["second_party"]["area_code"] = "16.71"
    again = await post(client, app, people["district_head"], payload)
    assert again.status_code == 409, again.text
    # A division of another district is not found; a wrong area is refused.
    lahat = await make_division(conn, "16.72", "pias")
    elsewhere = body(
        level="district_division",
        second_party={"division_id": str(lahat), "official": "Kabid"},
    )
    assert (await post(client, app, people["district_head"], elsewhere)).status_code == 404
    unknown = body(
        level="district_division",
        second_party={"division_id": str(uuid.uuid4()), "official": "Kabid"},
    )
    assert (await post(client, app, people["district_head"], unknown)).status_code == 404
    other_dafduk = await make_division(conn, "16.71", "capil")
    wrong_area = body(
        level="district_division",
        second_party={"division_id": str(other_dafduk), "area_code": "16.72", "official": "K"},
    )
    assert (await post(client, app, people["district_head"], wrong_area)).status_code == 422
    missing = body(level="district_division", second_party={"official": "Kabid"})
    assert (await post(client, app, people["district_head"], missing)).status_code == 422


@pytest.mark.parametrize(
    ("role", "level"),
    [
        ("province_head", "national_province"),
        ("province_head", "district_division"),
        ("ministry_monitor", "province_district"),
        ("ministry_monitor", "district_division"),
        ("district_head", "province_district"),
        ("district_head", "national_province"),
        # Roles without the write permission at all.
        ("admin", "province_district"),
        ("province_monitor", "province_district"),
        ("region_coordinator", "province_district"),
        ("division_head", "district_division"),
        ("integration", "province_district"),
    ],
)
async def test_wrong_level_for_the_role_is_403(
    client: Client,
    app: Litestar,
    people: dict[str, Person],
    conn: asyncpg.Connection,
    role: str,
    level: str,
) -> None:
    second: dict[str, Any] = {
        "national_province": {"area_code": "16", "official": "K"},
        "province_district": {"area_code": "16.71", "official": "K"},
        "district_division": {
            "division_id": str(people["division_head"].division_id),
            "official": "K",
        },
    }[level]
    response = await post(client, app, people[role], body(level=level, second_party=second))
    assert response.status_code == 403, response.text
    assert await conn.fetchval("SELECT count(*) FROM agreements") == 0


async def test_second_party_outside_scope_or_of_the_wrong_kind(
    client: Client, app: Litestar, people: dict[str, Person], conn: asyncpg.Connection
) -> None:
    head = people["province_head"]
    jakarta = body(second_party={"area_code": "31.71", "official": "K"})
    assert (await post(client, app, head, jakarta)).status_code == 404
    # A province where a district is wanted, a district where a province is, unknown codes.
    province = await post(
        client, app, head, body(second_party={"area_code": "16", "official": "K"})
    )
    assert province.status_code == 422, province.text
    own_area = await post(
        client, app, head, body(second_party={"area_code": "ID", "official": "K"})
    )
    assert own_area.status_code == 422
    district = await post(
        client,
        app,
        people["ministry_monitor"],
        body(level="national_province", second_party={"area_code": "16.71", "official": "K"}),
    )
    assert district.status_code == 422, district.text
    unknown = await post(
        client, app, head, body(second_party={"area_code": "16.99", "official": "K"})
    )
    assert unknown.status_code == 422, unknown.text
    # A division id on a province-district agreement, or no area at all.
    with_division = body(
        second_party={
            "area_code": "16.71",
            "division_id": str(people["division_head"].division_id),
            "official": "K",
        }
    )
    assert (await post(client, app, head, with_division)).status_code == 422
    assert (await post(client, app, head, body(second_party={"official": "K"}))).status_code == 422
    assert await conn.fetchval("SELECT count(*) FROM agreements") == 0


# -- target rules ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "target_list"),
    [
        (
            "decreasing milestones",
            [{"indicator": "ktp_el", "annual": 100, "quarterly": [98, 99.5, 99, 100]}],
        ),
        (
            "TW IV below annual",
            [{"indicator": "ktp_el", "annual": 100, "quarterly": [97, 98, 99, 99]}],
        ),
        ("TW IV above annual", [{"indicator": "kia", "annual": 30, "quarterly": [10, 20, 25, 31]}]),
        (
            "mixed weights",
            [
                {"indicator": "ktp_el", "annual": 100, "weight": 2},
                {"indicator": "kia", "annual": 30},
            ],
        ),
        ("unknown indicator", [{"indicator": "paspor", "annual": 50}]),
        (
            "duplicate indicator",
            [{"indicator": "kia", "annual": 30}, {"indicator": "kia", "annual": 31}],
        ),
        ("coverage above 100", [{"indicator": "ktp_el", "annual": 100.5}]),
        ("coverage far above 100", [{"indicator": "akta_lahir", "annual": 1000}]),
    ],
)
async def test_target_rules_are_422(
    client: Client,
    app: Litestar,
    people: dict[str, Person],
    conn: asyncpg.Connection,
    label: str,
    target_list: list[dict[str, Any]],
) -> None:
    response = await post(client, app, people["province_head"], body(targets=target_list))
    assert response.status_code == 422, (label, response.text)
    assert problem_slug(response) == "invalid-targets", label
    assert await table_counts(conn) == (0, 0, 0)


async def test_weights_are_normalised(
    client: Client, app: Litestar, people: dict[str, Person]
) -> None:
    target_list = [
        {"indicator": "ktp_el", "annual": 100, "weight": 1},
        {"indicator": "kia", "annual": 30, "weight": 1},
        {"indicator": "akta_lahir", "annual": 95, "weight": 2},
    ]
    response = await post(client, app, people["province_head"], body(targets=target_list))
    assert response.status_code == 201, response.text
    made = response.json()
    weights = {t["indicator"]: t["weight"] for t in made["targets"]}
    assert weights == {"ktp_el": 0.25, "kia": 0.25, "akta_lahir": 0.5}
    document = await client.get(
        f"/v1/agreements/{made['id']}/document", headers=bearer(app, people["province_head"])
    )
    parsed = json.loads(document.content)
    assert {t["indicator"]: t["weight"] for t in parsed["targets"]} == {
        "ktp_el": "0.250000",
        "kia": "0.250000",
        "akta_lahir": "0.500000",
    }
    assert hashlib.sha256(document.content).hexdigest() == made["document_sha256"]


async def test_thirds_and_equal_milestones(
    client: Client, app: Litestar, people: dict[str, Person]
) -> None:
    target_list = [
        {"indicator": "ktp_el", "annual": 100, "weight": 5, "quarterly": [100, 100, 100, 100]},
        {"indicator": "kia", "annual": 30, "weight": 5},
        {"indicator": "akta_lahir", "annual": 95.555, "weight": 5},
    ]
    response = await post(client, app, people["province_head"], body(targets=target_list))
    assert response.status_code == 201, response.text
    made = response.json()
    assert {t["weight"] for t in made["targets"]} == {0.333333}
    akta = next(t for t in made["targets"] if t["indicator"] == "akta_lahir")
    assert akta["annual"] == 95.56
    document = await client.get(
        f"/v1/agreements/{made['id']}/document", headers=bearer(app, people["province_head"])
    )
    assert hashlib.sha256(document.content).hexdigest() == made["document_sha256"]


async def test_a_weight_that_rounds_to_nothing_is_refused(
    client: Client, app: Litestar, people: dict[str, Person], conn: asyncpg.Connection
) -> None:
    # Normalised to six places, 0.0001 against 1000 is 0: not a 409 from the database.
    target_list = [
        {"indicator": "ktp_el", "annual": 100, "weight": 1000},
        {"indicator": "kia", "annual": 30, "weight": 0.0001},
    ]
    response = await post(client, app, people["province_head"], body(targets=target_list))
    assert response.status_code == 422, response.text
    assert problem_slug(response) == "invalid-targets"
    assert await table_counts(conn) == (0, 0, 0)


async def add_late_reports(
    client: Client, app: Litestar, people: dict[str, Person]
) -> dict[str, Any]:
    """A lower-is-better indicator (``telat_lapor``), added by the admin."""
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
    return dict(added.json())


async def test_lower_is_better_milestones_must_not_increase(
    client: Client, app: Litestar, people: dict[str, Person]
) -> None:
    await add_late_reports(client, app, people)
    rising = [{"indicator": "telat_lapor", "annual": 5, "quarterly": [2, 3, 4, 5]}]
    refused = await post(client, app, people["province_head"], body(targets=rising))
    assert refused.status_code == 422, refused.text
    falling = [{"indicator": "telat_lapor", "annual": 5, "quarterly": [20, 15, 10, 5]}]
    accepted = await post(client, app, people["province_head"], body(targets=falling))
    assert accepted.status_code == 201, accepted.text


@pytest.mark.parametrize(
    ("label", "payload"),
    [
        ("unknown top-level field", body(status="active")),
        ("unknown id", body(id=str(uuid.uuid4()))),
        ("unknown target field", body(targets=[{"indicator": "kia", "annual": 30, "q1": 5}])),
        ("unknown party field", body(second_party={"area_code": "16.71", "official": "K", "x": 1})),
        ("negative annual", body(targets=[{"indicator": "kia", "annual": -1}])),
        (
            "negative milestone",
            body(targets=[{"indicator": "kia", "annual": 30, "quarterly": [-1, 10, 20, 30]}]),
        ),
        (
            "three milestones",
            body(targets=[{"indicator": "kia", "annual": 30, "quarterly": [10, 20, 30]}]),
        ),
        (
            "null milestone",
            body(targets=[{"indicator": "kia", "annual": 30, "quarterly": [None, 10, 20, 30]}]),
        ),
        ("zero weight", body(targets=[{"indicator": "kia", "annual": 30, "weight": 0}])),
        ("negative weight", body(targets=[{"indicator": "kia", "annual": 30, "weight": -1}])),
        ("huge annual", body(targets=[{"indicator": "kia", "annual": 1e308}])),
        ("huge integer annual", body(targets=[{"indicator": "kia", "annual": 10**40}])),
        ("huge weight", body(targets=[{"indicator": "kia", "annual": 30, "weight": 1e300}])),
        ("bad indicator code", body(targets=[{"indicator": "KIA!", "annual": 30}])),
        ("no targets", body(targets=[])),
        (
            "too many targets",
            body(targets=[{"indicator": f"i{n:02d}", "annual": 1} for n in range(51)]),
        ),
        ("year 1999", body(year=1999)),
        ("year huge", body(year=10**30)),
        ("level unknown", body(level="province_region")),
        (
            "acting unknown",
            body(second_party={"area_code": "16.71", "official": "K", "acting": "pj"}),
        ),
        ("no official", body(second_party={"area_code": "16.71"})),
        ("empty official", body(second_party={"area_code": "16.71", "official": ""})),
        ("NUL in official", body(second_party={"area_code": "16.71", "official": "K\u0000"})),
        ("NUL in first title", body(first_party={"title": "\u0000"})),
        ("area pattern", body(second_party={"area_code": "1671", "official": "K"})),
        ("division not a uuid", body(second_party={"division_id": "x", "official": "K"})),
        ("targets not a list", body(targets={"kia": 30})),
        ("no year", {k: v for k, v in body().items() if k != "year"}),
        ("a list", [body()]),
        ("a string", "agreement"),
        ("null", None),
    ],
)
async def test_malformed_drafts_are_400(
    client: Client,
    app: Litestar,
    people: dict[str, Person],
    conn: asyncpg.Connection,
    label: str,
    payload: Any,
) -> None:
    response = await client.post(
        "/v1/agreements",
        content=json.dumps(payload).encode(),
        headers={**bearer(app, people["province_head"]), "Content-Type": "application/json"},
    )
    assert response.status_code == 400, (label, response.text)
    assert response.headers["content-type"].startswith(PROBLEM)
    assert await table_counts(conn) == (0, 0, 0)


@pytest.mark.parametrize(
    "raw", [b"{not json", b"", b"\xff\xfe", b"[1,2", b'{"year": 2021,}', b"0" * 100_000]
)
async def test_non_json_bodies_are_4xx(
    client: Client, app: Litestar, people: dict[str, Person], raw: bytes
) -> None:
    agreement = await palembang(client, app, people)
    headers = {**bearer(app, people["province_head"]), "Content-Type": "application/json"}
    for method, path in (
        ("POST", "/v1/agreements"),
        ("PATCH", f"/v1/agreements/{agreement['id']}"),
        ("POST", f"/v1/agreements/{agreement['id']}/amendments"),
        ("POST", f"/v1/agreements/{agreement['id']}/signatures"),
    ):
        response = await client.request(method, path, content=raw, headers=headers)
        assert 400 <= response.status_code < 500, (method, path, response.text)
        assert response.headers["content-type"].startswith(PROBLEM)


# -- editing drafts ----------------------------------------------------------------------


async def test_first_party_patches_a_draft(
    client: Client, app: Litestar, people: dict[str, Person], conn: asyncpg.Connection
) -> None:
    made = await palembang(client, app, people)
    head = bearer(app, people["province_head"])
    url = f"/v1/agreements/{made['id']}"
    response = await client.patch(
        url,
        json={
            "targets": [
                {"indicator": "ktp_el", "annual": 99, "weight": 3},
                {"indicator": "kia", "annual": 25, "weight": 1},
            ]
        },
        headers=head,
    )
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["id"] == made["id"] and patched["version"] == 1 and patched["status"] == "draft"
    assert {t["indicator"]: (t["annual"], t["weight"]) for t in patched["targets"]} == {
        "ktp_el": (99.0, 0.75),
        "kia": (25.0, 0.25),
    }
    assert patched["document_sha256"] != made["document_sha256"]
    assert patched["second_party"] == made["second_party"]
    document = await client.get(f"{url}/document", headers=head)
    assert hashlib.sha256(document.content).hexdigest() == patched["document_sha256"]
    assert document.headers["X-Document-SHA256"] == patched["document_sha256"]
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM agreement_targets WHERE agreement_id = $1", uuid.UUID(made["id"])
        )
        == 2
    )

    # Only the second party's official changes; the targets stay.
    renamed = await client.patch(
        url,
        json={"second_party": {"official": "PLT Kadis", "acting": "plt"}},
        headers=head,
    )
    assert renamed.status_code == 200, renamed.text
    after = renamed.json()
    assert after["second_party"]["official"] == "PLT Kadis"
    assert after["second_party"]["acting"] == "plt"
    assert after["targets"] == patched["targets"]
    assert after["document_sha256"] not in (made["document_sha256"], patched["document_sha256"])
    document = await client.get(f"{url}/document", headers=head)
    assert hashlib.sha256(document.content).hexdigest() == after["document_sha256"]

    # An empty patch changes nothing.
    same = await client.patch(url, json={}, headers=head)
    assert same.status_code == 200
    assert same.json()["document_sha256"] == after["document_sha256"]


async def test_patch_refusals(
    client: Client,
    app: Litestar,
    people: dict[str, Person],
    outsiders: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    made = await palembang(client, app, people)
    url = f"/v1/agreements/{made['id']}"
    change = {"targets": targets(ktp_el=90)}
    # Someone else in scope: the second party, or a role that cannot write.
    for role, status in (
        ("district_head", 403),
        ("province_monitor", 403),
        ("ministry_monitor", 403),
        ("admin", 403),
        ("division_head", 403),
    ):
        response = await client.patch(url, json=change, headers=bearer(app, people[role]))
        assert response.status_code == status, (role, response.text)
    jakarta = await client.patch(url, json=change, headers=bearer(app, outsiders["province_head"]))
    assert jakarta.status_code == 404
    other_district = await make_user(
        conn, "district_head", username="kadis_lahat", area_code="16.72"
    )
    lahat = await client.patch(url, json=change, headers=bearer(app, other_district))
    assert lahat.status_code == 404
    head = bearer(app, people["province_head"])
    # Invalid changes: the office cannot move; bad targets are 422; unknown fields 400.
    moved = await client.patch(
        url, json={"second_party": {"area_code": "16.72", "official": "K"}}, headers=head
    )
    assert moved.status_code == 422, moved.text
    bad = await client.patch(url, json={"targets": targets(ktp_el=101)}, headers=head)
    assert bad.status_code == 422
    status = await client.patch(url, json={"status": "active"}, headers=head)
    assert status.status_code == 400
    year = await client.patch(url, json={"year": 2022}, headers=head)
    assert year.status_code == 400
    unchanged = await client.get(url, headers=head)
    assert unchanged.json() == made
    assert (
        await client.patch(f"/v1/agreements/{uuid.uuid4()}", json=change, headers=head)
    ).status_code == 404


async def test_patch_after_a_signature_or_activation_is_409(
    client: Client, app: Litestar, people: dict[str, Person], conn: asyncpg.Connection
) -> None:
    made = await palembang(client, app, people)
    url = f"/v1/agreements/{made['id']}"
    head = bearer(app, people["province_head"])
    district = await register_signer(conn, people["district_head"])
    province = await register_signer(conn, people["province_head"])
    signed = await sign(client, app, district, made, "second")
    assert signed.status_code == 201, signed.text
    response = await client.patch(url, json={"targets": targets(ktp_el=90)}, headers=head)
    assert response.status_code == 409, response.text
    assert problem_slug(response) == "agreement-not-open"
    parties = await client.patch(url, json={"first_party": {"official": "Baru"}}, headers=head)
    assert parties.status_code == 409
    assert (await client.get(url, headers=head)).json()["document_sha256"] == made[
        "document_sha256"
    ]
    first = await sign(client, app, province, made, "first")
    assert first.status_code == 201 and first.json()["status"] == "active"
    active = await client.patch(url, json={"targets": targets(ktp_el=90)}, headers=head)
    assert active.status_code == 409, active.text


# -- listing and visibility --------------------------------------------------------------


async def listing(client: Client, app: Litestar, person: Person, **params: Any) -> dict[str, Any]:
    response = await client.get("/v1/agreements", params=params, headers=bearer(app, person))
    assert response.status_code == 200, response.text
    return dict(response.json())


def ids(page: dict[str, Any]) -> set[str]:
    return {item["id"] for item in page["items"]}


async def world(
    client: Client,
    app: Litestar,
    people: dict[str, Person],
    outsiders: dict[str, Person],
    conn: asyncpg.Connection,
) -> dict[str, dict[str, Any]]:
    """Agreements at every level, in and out of South Sumatra."""
    head = people["province_head"]
    made = {
        "pd_1671": await draft(
            client,
            app,
            head,
            year=2021,
            level="province_district",
            second={"area_code": "16.71", "official": "K"},
            target_list=targets(ktp_el=100),
        ),
        "pd_1672": await draft(
            client,
            app,
            head,
            year=2021,
            level="province_district",
            second={"area_code": "16.72", "official": "K"},
            target_list=targets(ktp_el=100),
        ),
        "pd_1601": await draft(
            client,
            app,
            head,
            year=2021,
            level="province_district",
            second={"area_code": "16.01", "official": "K"},
            target_list=targets(kia=30),
        ),
        "pd_1671_2022": await draft(
            client,
            app,
            head,
            year=2022,
            level="province_district",
            second={"area_code": "16.71", "official": "K"},
            target_list=targets(ktp_el=100),
        ),
        "np_16": await draft(
            client,
            app,
            people["ministry_monitor"],
            year=2021,
            level="national_province",
            second={"area_code": "16", "official": "K"},
            target_list=targets(ktp_el=100),
        ),
        "dd_dafduk": await draft(
            client,
            app,
            people["district_head"],
            year=2021,
            level="district_division",
            second={"division_id": str(people["division_head"].division_id), "official": "K"},
            target_list=targets(ktp_el=100),
        ),
        "pd_3171": await draft(
            client,
            app,
            outsiders["province_head"],
            year=2021,
            level="province_district",
            second={"area_code": "31.71", "official": "K"},
            target_list=targets(ktp_el=100),
        ),
    }
    # Activate one, so status filters have something to tell apart.
    await activate(
        client,
        app,
        made["pd_1672"],
        second=await register_signer(
            conn, await make_user(conn, "district_head", username="kadis_lahat", area_code="16.72")
        ),
        first=await register_signer(conn, head),
    )
    return made


async def test_list_filters_and_pagination(
    client: Client,
    app: Litestar,
    people: dict[str, Person],
    outsiders: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    made = await world(client, app, people, outsiders, conn)
    head = people["province_head"]
    everything = await listing(client, app, head)
    in_province = {k for k in made if k != "pd_3171"}
    assert ids(everything) == {made[k]["id"] for k in in_province}
    assert everything["total"] == len(in_province)
    by_id = {item["id"]: item for item in everything["items"]}
    assert by_id[made["pd_1672"]["id"]]["status"] == "active"

    def only(*keys: str) -> set[str]:
        return {made[k]["id"] for k in keys}

    assert ids(await listing(client, app, head, year=2022)) == only("pd_1671_2022")
    assert ids(await listing(client, app, head, level="province_district")) == only(
        "pd_1671", "pd_1672", "pd_1601", "pd_1671_2022"
    )
    assert ids(await listing(client, app, head, level="national_province")) == only("np_16")
    assert ids(await listing(client, app, head, status="active")) == only("pd_1672")
    assert (await listing(client, app, head, status="superseded"))["total"] == 0
    assert ids(await listing(client, app, head, area="16.71")) == only(
        "pd_1671", "pd_1671_2022", "dd_dafduk"
    )
    assert ids(await listing(client, app, head, party="16")) == only(
        "pd_1671", "pd_1672", "pd_1601", "pd_1671_2022", "np_16"
    )
    assert ids(await listing(client, app, head, party="ID")) == only("np_16")
    assert ids(
        await listing(client, app, head, year=2021, level="province_district", area="16.71")
    ) == only("pd_1671")
    # A filter naming an area outside the scope finds nothing (not the other province's).
    assert (await listing(client, app, head, area="31.71"))["total"] == 0

    # Pages: stable order, no overlaps, total on each page.
    seen: list[str] = []
    for offset in range(0, 6, 2):
        page = await listing(client, app, head, limit=2, offset=offset)
        assert page["total"] == 6 and page["limit"] == 2 and page["offset"] == offset
        assert len(page["items"]) == 2
        seen.extend(item["id"] for item in page["items"])
    assert len(seen) == len(set(seen)) == 6
    assert seen == [item["id"] for item in everything["items"]]
    beyond = await listing(client, app, head, limit=2, offset=6)
    assert beyond["items"] == [] and beyond["total"] == 6
    # Year first (newest), then level.
    assert everything["items"][0]["year"] == 2022

    h = bearer(app, head)
    for params in (
        {"limit": 0},
        {"limit": 100_000},
        {"offset": -1},
        {"offset": 10**30},
        {"year": 1999},
        {"year": "x"},
        {"level": "bogus"},
        {"status": "archived"},
        {"area": "123456789"},
        {"area": "16\u0000"},
        {"party": "\u0000"},
    ):
        response = await client.get("/v1/agreements", params=params, headers=h)
        assert response.status_code == 400, (params, response.text)
    for params in (
        {"year": 2021, "area": "16\u0000"},
        {"year": 1999, "area": "16"},
        {"year": 10**20, "area": "16"},
        {"area": "16"},
    ):
        response = await client.get("/v1/agreements/cascade", params=params, headers=h)
        assert response.status_code == 400, (params, response.text)
    cascade = await client.get(
        "/v1/agreements/cascade", params={"year": 2021, "area": "16"}, headers=h
    )
    assert cascade.status_code == 200, cascade.text
    district = cascade.json()["root"]["children"]
    palembang = next(c for c in district if c["code"] == "16.71")
    # Drafts do not count in the cascade; the active Lahat agreement does.
    assert palembang["agreement"] is None
    lahat = next(c for c in district if c["code"] == "16.72")
    assert lahat["agreement"]["id"] == made["pd_1672"]["id"]
    assert lahat["targets"] == {"ktp_el": 100.0}


async def test_who_sees_what(
    client: Client,
    app: Litestar,
    people: dict[str, Person],
    outsiders: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    made = await world(client, app, people, outsiders, conn)

    def only(*keys: str) -> set[str]:
        return {made[k]["id"] for k in keys}

    assert ids(await listing(client, app, people["ministry_monitor"])) == only(*made)
    assert ids(await listing(client, app, people["admin"])) == only(*made)
    assert ids(await listing(client, app, people["province_monitor"])) == only(
        *(k for k in made if k != "pd_3171")
    )
    assert ids(await listing(client, app, people["district_head"])) == only(
        "pd_1671", "pd_1671_2022", "dd_dafduk"
    )
    assert ids(await listing(client, app, people["division_head"])) == only("dd_dafduk")
    # A coordinator sees nothing until a region makes 16.71 theirs.
    assert (await listing(client, app, people["region_coordinator"]))["total"] == 0
    await coordinate(conn, people["region_coordinator"], "16", ["16.71"], 2021)
    assert ids(await listing(client, app, people["region_coordinator"])) == only(
        "pd_1671", "pd_1671_2022", "dd_dafduk"
    )
    for role in ("province_head", "province_monitor", "district_head", "ministry_monitor"):
        page = await listing(client, app, outsiders[role])
        if role == "ministry_monitor":
            continue
        assert ids(page) == only("pd_3171"), role
    assert (await listing(client, app, outsiders["division_head"]))["total"] == 0
    integration = await client.get("/v1/agreements", headers=bearer(app, people["integration"]))
    assert integration.status_code == 403

    # One by one: every visible id answers 200 on all read routes, every other one 404.
    lahat_head = await make_user(conn, "district_head", username="kadis_lahat2", area_code="16.72")
    second_division = await make_division(conn, "16.71", "pias")
    other_division_head = await make_user(
        conn, "division_head", username="kabid_pias", area_code="16.71", division_id=second_division
    )
    checks: list[tuple[Person, set[str]]] = [
        (people["district_head"], only("pd_1671", "pd_1671_2022", "dd_dafduk")),
        (lahat_head, only("pd_1672")),
        (people["division_head"], only("dd_dafduk")),
        (other_division_head, set()),
        (outsiders["province_head"], only("pd_3171")),
        (outsiders["province_monitor"], only("pd_3171")),
        (outsiders["district_head"], only("pd_3171")),
        (outsiders["region_coordinator"], set()),
        (people["province_head"], only(*(k for k in made if k != "pd_3171"))),
    ]
    for person, visible in checks:
        headers = bearer(app, person)
        for key, agreement in made.items():
            expected = 200 if agreement["id"] in visible else 404
            for suffix in ("", "/document", "/versions"):
                response = await client.get(
                    f"/v1/agreements/{agreement['id']}{suffix}", headers=headers
                )
                assert response.status_code == expected, (person.username, key, suffix)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/agreements/not-a-uuid",
        "/v1/agreements/12345",
        "/v1/agreements/00000000-0000-0000-0000-00000000000g",
        "/v1/agreements/not-a-uuid/document",
        "/v1/agreements/not-a-uuid/versions",
    ],
)
async def test_non_uuid_ids_are_404(
    client: Client, app: Litestar, people: dict[str, Person], path: str
) -> None:
    response = await client.get(path, headers=bearer(app, people["admin"]))
    assert response.status_code == 404, response.text
    for method in ("PATCH", "POST"):
        for suffix in ("", "/amendments", "/signatures"):
            if method == "PATCH" and suffix:
                continue
            if method == "POST" and not suffix:
                continue
            target = path.removesuffix("/document").removesuffix("/versions") + suffix
            answer = await client.request(
                method, target, json={}, headers=bearer(app, people["province_head"])
            )
            assert answer.status_code in (404, 405), (method, target, answer.text)


async def test_unknown_uuid_is_404_everywhere(
    client: Client, app: Litestar, people: dict[str, Person], conn: asyncpg.Connection
) -> None:
    missing = str(uuid.uuid4())
    head = bearer(app, people["province_head"])
    signer = await register_signer(conn, people["province_head"])
    for method, suffix, payload in (
        ("GET", "", None),
        ("GET", "/document", None),
        ("GET", "/versions", None),
        ("PATCH", "", {"targets": targets(kia=30)}),
        ("POST", "/amendments", {"reason": "mutasi_pejabat", "note": "x"}),
        (
            "POST",
            "/signatures",
            {"jws": signer.statement({"id": missing, "document_sha256": "0" * 64}, "first")},
        ),
    ):
        response = await client.request(
            method, f"/v1/agreements/{missing}{suffix}", json=payload, headers=head
        )
        assert response.status_code == 404, (method, suffix, response.text)


# -- amendments --------------------------------------------------------------------------


async def active_palembang(
    client: Client, app: Litestar, people: dict[str, Person], conn: asyncpg.Connection
) -> tuple[dict[str, Any], Any, Any]:
    made = await palembang(client, app, people)
    district = await register_signer(conn, people["district_head"])
    province = await register_signer(conn, people["province_head"])
    active = await activate(client, app, made, second=district, first=province)
    return active, district, province


AMEND = {
    "reason": "mutasi_pejabat",
    "note": "Kadis dimutasi; PLT ditunjuk",
    "second_party": {"official": "PLT Kadis Dukcapil Kota Palembang", "acting": "plt"},
}


async def test_amendment_lifecycle(
    client: Client, app: Litestar, people: dict[str, Person], conn: asyncpg.Connection
) -> None:
    v1, district, province = await active_palembang(client, app, people, conn)
    head = bearer(app, people["province_head"])
    response = await client.post(f"/v1/agreements/{v1['id']}/amendments", json=AMEND, headers=head)
    assert response.status_code == 201, response.text
    v2 = response.json()
    assert v2["status"] == "draft" and v2["version"] == 2
    assert v2["lineage_id"] == v1["lineage_id"] == v1["id"]
    assert v2["id"] != v1["id"]
    assert v2["amendment"] == {"of": v1["id"], "reason": "mutasi_pejabat", "note": AMEND["note"]}
    assert v2["second_party"]["official"] == "PLT Kadis Dukcapil Kota Palembang"
    assert v2["second_party"]["acting"] == "plt"
    assert v2["second_party"]["area_code"] == "16.71"
    assert v2["targets"] == v1["targets"]
    assert v2["signatures"] == []
    assert v2["document_sha256"] != v1["document_sha256"]
    document = await client.get(f"/v1/agreements/{v2['id']}/document", headers=head)
    assert hashlib.sha256(document.content).hexdigest() == v2["document_sha256"]
    parsed = json.loads(document.content)
    assert parsed["version"] == 2 and parsed["lineage_id"] == v1["id"]
    assert parsed["amendment"] == {
        "of": v1["id"],
        "reason": "mutasi_pejabat",
        "note": AMEND["note"],
    }
    # v1 stays active until v2 is signed by both.
    current = (await client.get(f"/v1/agreements/{v1['id']}", headers=head)).json()
    assert current["status"] == "active" and current["ended_at"] is None

    # One open amendment at a time; a draft is not amended.
    second = await client.post(f"/v1/agreements/{v1['id']}/amendments", json=AMEND, headers=head)
    assert second.status_code == 409, second.text
    assert second.json()["agreement_id"] == v2["id"]
    of_draft = await client.post(f"/v1/agreements/{v2['id']}/amendments", json=AMEND, headers=head)
    assert of_draft.status_code == 409, of_draft.text
    # The open amendment draft can still be edited by the first party.
    edited = await client.patch(
        f"/v1/agreements/{v2['id']}",
        json={"targets": v1_targets_with(v1, ktp_el=99.5)},
        headers=head,
    )
    assert edited.status_code == 200, edited.text
    v2 = edited.json()

    assert (await sign(client, app, district, v2, "second")).status_code == 201
    half = (await client.get(f"/v1/agreements/{v1['id']}", headers=head)).json()
    assert half["status"] == "active"
    done = await sign(client, app, province, v2, "first")
    assert done.status_code == 201, done.text
    assert done.json()["status"] == "active"
    old = (await client.get(f"/v1/agreements/{v1['id']}", headers=head)).json()
    assert old["status"] == "superseded" and old["ended_at"]
    assert old["document_sha256"] == v1["document_sha256"]
    assert len(old["signatures"]) == 2

    for anchor in (v1["id"], v2["id"]):
        versions = await client.get(f"/v1/agreements/{anchor}/versions", headers=head)
        assert versions.status_code == 200
        page = versions.json()
        assert page["total"] == 2
        listed = page["items"]
        assert [(v["version"], v["status"]) for v in listed] == [(1, "superseded"), (2, "active")]
        assert [v["id"] for v in listed] == [v1["id"], v2["id"]]
    second = await client.get(
        f"/v1/agreements/{v1['id']}/versions", params={"limit": 1, "offset": 1}, headers=head
    )
    assert [v["id"] for v in second.json()["items"]] == [v2["id"]]
    assert second.json()["total"] == 2
    beyond = await client.get(
        f"/v1/agreements/{v1['id']}/versions", params={"offset": 5}, headers=head
    )
    assert (beyond.json()["items"], beyond.json()["total"]) == ([], 2)
    bad = await client.get(f"/v1/agreements/{v1['id']}/versions?limit=0", headers=head)
    assert bad.status_code == 400
    # The second party sees the history too.
    assert (
        await client.get(
            f"/v1/agreements/{v1['id']}/versions", headers=bearer(app, people["district_head"])
        )
    ).status_code == 200

    # The superseded version is not amended again; the active one is, as version 3.
    stale = await client.post(f"/v1/agreements/{v1['id']}/amendments", json=AMEND, headers=head)
    assert stale.status_code == 409
    strategy = {
        "reason": "perubahan_strategi",
        "note": "Jemput bola ke sekolah",
        "targets": [{"indicator": "kia", "annual": 40}],
    }
    third = await client.post(f"/v1/agreements/{v2['id']}/amendments", json=strategy, headers=head)
    assert third.status_code == 201, third.text
    assert third.json()["version"] == 3
    assert third.json()["amendment"]["of"] == v2["id"]
    assert third.json()["targets"] == [
        {"indicator": "kia", "annual": 40.0, "quarterly": None, "weight": None}
    ]
    # The PLT stays on the new version unless changed.
    assert third.json()["second_party"]["acting"] == "plt"
    # Still one agreement for the office and year: a fresh draft is refused.
    assert (await post(client, app, people["province_head"], body())).status_code == 409


def v1_targets_with(agreement: dict[str, Any], **annual: float) -> list[dict[str, Any]]:
    out = []
    for t in agreement["targets"]:
        item = {"indicator": t["indicator"], "annual": t["annual"]}
        if t["quarterly"] is not None:
            item["quarterly"] = t["quarterly"]
        if t["indicator"] in annual:
            item["annual"] = annual[t["indicator"]]
            item.pop("quarterly", None)
        out.append(item)
    return out


async def test_amendment_refusals(
    client: Client,
    app: Litestar,
    people: dict[str, Person],
    outsiders: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    v1, _, _ = await active_palembang(client, app, people, conn)
    url = f"/v1/agreements/{v1['id']}/amendments"
    head = bearer(app, people["province_head"])
    before = await table_counts(conn)
    for reason in ("bosan", "", None, 1, "MUTASI_PEJABAT"):
        response = await client.post(url, json={**AMEND, "reason": reason}, headers=head)
        assert response.status_code == 400, (reason, response.text)
    for payload in (
        {"reason": "mutasi_pejabat"},
        {**AMEND, "note": ""},
        {**AMEND, "status": "draft"},
        {**AMEND, "version": 7},
        {**AMEND, "targets": []},
        {**AMEND, "targets": [{"indicator": "kia", "annual": -5}]},
    ):
        response = await client.post(url, json=payload, headers=head)
        assert response.status_code == 400, (payload, response.text)
    for payload in (
        {**AMEND, "targets": [{"indicator": "kia", "annual": 101}]},
        {**AMEND, "second_party": {"area_code": "16.72", "official": "K"}},
    ):
        response = await client.post(url, json=payload, headers=head)
        assert response.status_code == 422, (payload, response.text)
    for role in ("district_head", "ministry_monitor", "province_monitor", "admin", "division_head"):
        response = await client.post(url, json=AMEND, headers=bearer(app, people[role]))
        assert response.status_code == 403, (role, response.text)
    jakarta = await client.post(url, json=AMEND, headers=bearer(app, outsiders["province_head"]))
    assert jakarta.status_code == 404
    assert await table_counts(conn) == before
    # A draft (never active) is not amended.
    fresh = await post(client, app, people["province_head"], body(year=2022))
    draft_amend = await client.post(
        f"/v1/agreements/{fresh.json()['id']}/amendments", json=AMEND, headers=head
    )
    assert draft_amend.status_code == 409, draft_amend.text


async def test_amendment_by_ministry_of_national_province(
    client: Client, app: Litestar, people: dict[str, Person], conn: asyncpg.Connection
) -> None:
    national = await draft(
        client,
        app,
        people["ministry_monitor"],
        year=2021,
        level="national_province",
        second={"area_code": "16", "official": "Kadis Sumsel"},
        target_list=targets(ktp_el=100, kia=30),
    )
    province = await register_signer(conn, people["province_head"])
    ministry = await register_signer(conn, people["ministry_monitor"])
    await activate(client, app, national, second=province, first=ministry)
    response = await client.post(
        f"/v1/agreements/{national['id']}/amendments",
        json={
            "reason": "perubahan_prioritas",
            "note": "Target KIA dinaikkan",
            "targets": targets(ktp_el=100, kia=35),
        },
        headers=bearer(app, people["ministry_monitor"]),
    )
    assert response.status_code == 201, response.text
    refused = await client.post(
        f"/v1/agreements/{national['id']}/amendments",
        json=AMEND,
        headers=bearer(app, people["province_head"]),
    )
    assert refused.status_code == 403, refused.text


# -- no garbage makes a 5xx --------------------------------------------------------------


GARBAGE: list[Any] = [
    None,
    0,
    -1,
    10**40,
    1e308,
    "x" * 10_000,
    [],
    [None],
    {},
    {"targets": None},
    {"targets": [None]},
    {"targets": [{"indicator": "kia", "annual": 1e-320}]},
    {"targets": [{"indicator": "kia", "annual": 99.999999999}]},
    {"targets": [{"indicator": "kia", "annual": 30, "weight": 1e-320}]},
    {"targets": [{"indicator": "kia", "annual": 30, "quarterly": [1e-9, 1e-8, 1e-7, 30]}]},
    {"second_party": {"official": "x" * 201}},
    {"second_party": None},
    {"first_party": {"official": None}},
    {"first_party": {"official": "\u0000"}},
    {"first_party": {"official": "Kadis\u0000"}, "second_party": {"official": "a\u0000b"}},
    {"reason": "mutasi_pejabat", "note": "PLT\u0000"},
    {"targets": [{"indicator": "ki\u0000a", "annual": 30}]},
    {"jws": "a.b.c"},
    {"jws": "...."},
    {"jws": None},
    {"jws": "e30.e30.e30"},
    {"jws": "x" * 9000},
]


@pytest.mark.parametrize("payload", GARBAGE, ids=lambda p: repr(p)[:40])
async def test_garbage_never_makes_a_server_error(
    client: Client,
    app: Litestar,
    people: dict[str, Person],
    conn: asyncpg.Connection,
    payload: Any,
) -> None:
    agreement = await palembang(client, app, people)
    await register_signer(conn, people["district_head"])
    for person in (people["province_head"], people["district_head"]):
        headers = bearer(app, person)
        for method, path in (
            ("POST", "/v1/agreements"),
            ("PATCH", f"/v1/agreements/{agreement['id']}"),
            ("POST", f"/v1/agreements/{agreement['id']}/amendments"),
            ("POST", f"/v1/agreements/{agreement['id']}/signatures"),
        ):
            if isinstance(payload, dict) and method == "POST" and path == "/v1/agreements":
                sent: Any = {**body(year=2023), **payload}
            else:
                sent = payload
            response = await client.request(method, path, json=sent, headers=headers)
            assert response.status_code < 500, (person.username, method, path, response.text)
            if response.status_code >= 400:
                assert response.headers["content-type"].startswith(PROBLEM)


# -- discarding a draft ------------------------------------------------------------------


async def test_first_party_discards_an_unsigned_draft(
    client: Client, app: Litestar, people: dict[str, Person], conn: asyncpg.Connection
) -> None:
    """A draft made in error held its office's year for ever: one agreement per office and
    year, and the office cannot be edited. Its first party now drops it."""
    made = await palembang(client, app, people)
    head = bearer(app, people["province_head"])
    url = f"/v1/agreements/{made['id']}"
    assert (await post(client, app, people["province_head"], body())).status_code == 409
    gone = await client.delete(url, headers=head)
    assert gone.status_code == 204, gone.text
    assert await table_counts(conn) == (0, 0, 0)
    assert (await client.get(url, headers=head)).status_code == 404
    assert (await client.delete(url, headers=head)).status_code == 404
    assert (await post(client, app, people["province_head"], body())).status_code == 201


async def test_discard_refusals_change_nothing(
    client: Client,
    app: Litestar,
    people: dict[str, Person],
    outsiders: dict[str, Person],
    conn: asyncpg.Connection,
) -> None:
    made = await palembang(client, app, people)
    url = f"/v1/agreements/{made['id']}"
    before = await table_counts(conn)
    for role in ("district_head", "ministry_monitor", "province_monitor", "admin", "division_head"):
        response = await client.delete(url, headers=bearer(app, people[role]))
        assert response.status_code == 403, (role, response.text)
    jakarta = await client.delete(url, headers=bearer(app, outsiders["province_head"]))
    assert jakarta.status_code == 404
    assert (await client.delete(url)).status_code == 401
    assert await table_counts(conn) == before
    # Once the second party has signed, and once active, it is kept.
    head = bearer(app, people["province_head"])
    district = await register_signer(conn, people["district_head"])
    province = await register_signer(conn, people["province_head"])
    assert (await sign(client, app, district, made, "second")).status_code == 201
    half = await client.delete(url, headers=head)
    assert half.status_code == 409 and problem_slug(half) == "agreement-not-open"
    assert (await sign(client, app, province, made, "first")).status_code == 201
    active = await client.delete(url, headers=head)
    assert active.status_code == 409 and problem_slug(active) == "agreement-not-open"
    assert (await client.get(url, headers=head)).json()["status"] == "active"


async def test_a_discarded_amendment_frees_its_lineage(
    client: Client, app: Litestar, people: dict[str, Person], conn: asyncpg.Connection
) -> None:
    """An amendment drafted with the wrong reason (which no edit changes) blocked every
    other amendment of the agreement until someone signed it."""
    v1, _, _ = await active_palembang(client, app, people, conn)
    head = bearer(app, people["province_head"])
    amendments = f"/v1/agreements/{v1['id']}/amendments"
    wrong = await client.post(
        amendments, json={**AMEND, "reason": "perubahan_strategi"}, headers=head
    )
    assert wrong.status_code in (200, 201), wrong.text
    assert (await client.post(amendments, json=AMEND, headers=head)).status_code == 409
    gone = await client.delete(f"/v1/agreements/{wrong.json()['id']}", headers=head)
    assert gone.status_code == 204, gone.text
    right = await client.post(amendments, json=AMEND, headers=head)
    assert right.status_code in (200, 201), right.text
    assert right.json()["amendment"]["reason"] == "mutasi_pejabat"
    still = await client.get(f"/v1/agreements/{v1['id']}", headers=head)
    assert still.json()["status"] == "active"


# -- found by review: titles kept by edits and amendments; milestones bounded ----------


def _titled_body(**overrides: Any) -> dict[str, Any]:
    return {
        "year": 2021,
        "level": "province_district",
        "first_party": {"official": "Dr. H. Kadis Provinsi", "title": "Kepala Dinas Provinsi"},
        "second_party": {
            "area_code": "16.71",
            "official": "Kadis Dukcapil Kota Palembang",
            "title": "Kepala Dinas Dukcapil Kota Palembang",
        },
        "targets": [{"indicator": "kia", "annual": 30}],
        **overrides,
    }


async def test_mutasi_amendment_keeps_the_office_titles(
    client: Client, app: Litestar, people: dict[str, Person], conn: asyncpg.Connection
) -> None:
    """A mutasi amendment names the new official (as README's example does); the
    offices' titles are not part of the change, yet the new version loses them."""
    head = bearer(app, people["province_head"])
    made = await client.post("/v1/agreements", json=_titled_body(), headers=head)
    assert made.status_code == 201, made.text
    v1 = made.json()
    district = await register_signer(conn, people["district_head"])
    province = await register_signer(conn, people["province_head"])
    await activate(client, app, v1, second=district, first=province)
    amended = await client.post(
        f"/v1/agreements/{v1['id']}/amendments",
        json={
            "reason": "mutasi_pejabat",
            "note": "Kadis dimutasi; PLT ditunjuk",
            "first_party": {"official": "Kadis Provinsi Baru"},
            "second_party": {"official": "PLT Kadis Dukcapil", "acting": "plt"},
        },
        headers=head,
    )
    assert amended.status_code == 201, amended.text
    v2 = amended.json()
    assert v2["second_party"]["official"] == "PLT Kadis Dukcapil"
    assert v2["second_party"]["title"] == "Kepala Dinas Dukcapil Kota Palembang"
    assert v2["first_party"]["title"] == "Kepala Dinas Provinsi"


async def test_patching_an_official_keeps_the_titles(
    client: Client, app: Litestar, people: dict[str, Person]
) -> None:
    """PATCH of a draft that only renames an official wipes the untouched title."""
    head = bearer(app, people["province_head"])
    made = (await client.post("/v1/agreements", json=_titled_body(), headers=head)).json()
    patched = await client.patch(
        f"/v1/agreements/{made['id']}",
        json={"first_party": {"official": "Kadis Provinsi Baru"}},
        headers=head,
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["first_party"]["title"] == "Kepala Dinas Provinsi"
    cleared = await client.patch(
        f"/v1/agreements/{made['id']}", json={"first_party": {"title": None}}, headers=head
    )
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["first_party"] == {
        **patched.json()["first_party"],
        "title": None,
    }


async def test_percent_milestone_above_100_is_refused(
    client: Client, app: Litestar, people: dict[str, Person], conn: asyncpg.Connection
) -> None:
    """An annual percent target above 100 is 422 ("a coverage target cannot exceed
    100%"), but a quarterly milestone of 150% passes for a lower-is-better indicator."""
    added = await add_late_reports(client, app, people)
    assert added["unit"] == "percent"
    head = bearer(app, people["province_head"])
    annual = await client.post(
        "/v1/agreements",
        json=_titled_body(targets=[{"indicator": "telat_lapor", "annual": 150}]),
        headers=head,
    )
    assert annual.status_code == 422, annual.text
    milestone = await client.post(
        "/v1/agreements",
        json=_titled_body(
            targets=[{"indicator": "telat_lapor", "annual": 5, "quarterly": [150, 20, 10, 5]}]
        ),
        headers=head,
    )
    assert milestone.status_code == 422, milestone.text
    assert await conn.fetchval("SELECT count(*) FROM agreements") == 0


@pytest.mark.parametrize(("field", "value"), [("unit", "   "), ("age_band", "\u200b")])
async def test_an_indicator_unit_or_age_band_that_shows_nothing_is_refused(
    client: Client,
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    field: str,
    value: str,
) -> None:
    """A blank unit names no unit in the catalogue or on a scorecard (it was 201)."""
    before = await conn.fetchval("SELECT count(*) FROM indicators")
    response = await client.post(
        "/v1/indicators",
        json={
            "code": "blank_unit",
            "name_id": "Satuan kosong",
            "name_en": "Blank unit",
            "polarity": "higher",
            "numerator_definition": "a",
            "denominator_definition": "b",
            field: value,
        },
        headers=bearer(app, people["admin"]),
    )
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await conn.fetchval("SELECT count(*) FROM indicators") == before
