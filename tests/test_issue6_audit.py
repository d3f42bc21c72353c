"""Audit of issue 6 (scorecards and rankings) against its acceptance criteria: numbers
worked out by hand here, the documents' method and JSON Schemas, ETag/304 and caching,
CSV, bad queries and every role's view, on what a real caller sends.

Province 16 (South Sumatra) and, where a second province is needed, 31 (Jakarta). All
dates lie in ``YEAR``, before today, so reports are accepted.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import date, datetime
from typing import Any

import asyncpg
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.demo import seed
from api.routes import scorecards as service
from api.settings import Settings
from tests.agreement_helpers import (
    activate,
    draft,
    national_agreement,
    register_signer,
    targets,
)
from tests.people import Person, bearer, coordinate, make_division, make_user
from tests.submitting import register_key, submit

YEAR = 2026
JUNE, JULY = date(YEAR, 6, 30), date(YEAR, 7, 31)
PROBLEM = "application/problem+json"


def at(day: date) -> dict[str, Any]:
    return {"year": day.year, "as_of": day.isoformat()}


def near(value: float | None, expected: float) -> bool:
    return value is not None and abs(value - expected) < 1e-6


async def head_of(conn: asyncpg.Connection, code: str) -> Any:
    """A registered signer for a new head of district ``code``."""
    person = await make_user(conn, "district_head", username=f"kadis_{code}", area_code=code)
    return await register_key(conn, person)


# -- ranking order: no_data after all the others ---------------------------------------------


async def test_districts_without_data_come_after_every_other_row(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """Issue 6 item 3: "Districts without data appear with status no_data, after all the
    others"; README: "rows without data come last as no_data". Here no agreement sets any
    target: Palembang reports (data, no target: ``no_target``) and the other 16 districts
    of the province have no data. Palembang must come before the 16 ``no_data`` rows."""
    signer = await register_key(conn, people["district_head"])
    await submit(client, app, signer, values={"ktp_el": (900, 1000)}, as_of=JUNE)
    response = await client.get(
        "/v1/rankings/districts",
        params={**at(JUNE), "province": "16"},
        headers=bearer(app, people["province_monitor"]),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    statuses = [(r["code"], r["status"]) for r in body["rows"]]
    assert ("16.71", "no_target") in statuses
    assert body["counts"] == {"rows": 17, "ranked": 0, "no_data": 16, "no_target": 1}
    first_no_data = next(i for i, (_, s) in enumerate(statuses) if s == "no_data")
    after = statuses[first_no_data:]
    assert all(s == "no_data" for _, s in after), after[-3:]


# -- every document states its method, weights included ------------------------------------


def _values_named(document: Any, name: str) -> list[Any]:
    """Every value of a member called ``name`` anywhere in ``document``."""
    found: list[Any] = []
    if isinstance(document, dict):
        for key, value in document.items():
            if key == name:
                found.append(value)
            found += _values_named(value, name)
    elif isinstance(document, list):
        for item in document:
            found += _values_named(item, name)
    return found


@pytest.mark.parametrize("kind", ["districts", "regions"])
async def test_a_composite_ranking_states_the_weights_it_used(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    kind: str,
) -> None:
    """Issue 6 item 3: "Every response states its method: rank method, caps, weights,
    basis, as_of, generated_at". The province weighs KTP-el 3 : KIA 1 (0.75 : 0.25) and
    Palembang, its region's only member, is ranked on that composite (100 and 50: 87.5).
    The ranking document must say which weights made the score it ranks by."""
    await national_agreement(
        client,
        app,
        conn,
        people,
        year=YEAR,
        target_list=[
            {"indicator": "ktp_el", "annual": 100, "weight": 3},
            {"indicator": "kia", "annual": 30, "weight": 1},
        ],
    )
    signer = await register_key(conn, people["district_head"])
    await submit(
        client, app, signer, values={"ktp_el": (1_000, 1_000), "kia": (15, 100)}, as_of=JUNE
    )
    pj = await make_user(conn, "region_coordinator", username="pj_w1", area_code="16")
    await coordinate(conn, pj, "16", ["16.71"], YEAR)
    response = await client.get(
        f"/v1/rankings/{kind}",
        params={**at(JUNE), "province": "16"},
        headers=bearer(app, people["province_head"]),
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["rows"][0]["score"] == pytest.approx(87.5)
    method = body["method"]
    for member in ("rank_method", "caps", "basis", "as_of", "generated_at"):
        assert member in method, member
    stated = [w for w in _values_named(body, "weights") if isinstance(w, dict) and w]
    assert any(
        w.get("ktp_el") in (3, pytest.approx(0.75)) and w.get("kia") in (1, pytest.approx(0.25))
        for w in stated
    ), f"no weights stated in the {kind} ranking: method = {sorted(method)}"


# -- 304 and the cache: nothing is recomputed -----------------------------------------------

ROUTES = [
    ("/v1/scorecards/districts/16.71", {}),
    ("/v1/scorecards/provinces/16", {}),
    ("/v1/rankings/districts", {"province": "16"}),
    ("/v1/rankings/regions", {"province": "16"}),
    ("/v1/rankings/provinces", {}),
]


@pytest.mark.parametrize(("url", "extra"), ROUTES)
async def test_a_304_and_a_warm_200_compute_nothing(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    monkeypatch: pytest.MonkeyPatch,
    url: str,
    extra: dict[str, Any],
) -> None:
    """Issue 6 item 5: "If-None-Match answers 304 without recomputing". A spy on the one
    entry every report's rendering goes through (``context_for``, as the routes call it) counts the
    renderings: the first GET renders once; a 304 and a repeated GET render nothing; a
    report in the scope renders again, and the old ETag is then no longer 304."""
    await national_agreement(client, app, conn, people, year=YEAR, target_list=targets(ktp_el=100))
    signer = await register_key(conn, people["district_head"])
    await submit(client, app, signer, values={"ktp_el": (900, 1000)}, as_of=JUNE)
    renders: list[Any] = []
    real = service.context_for

    async def spy(*args: Any, **kwargs: Any) -> Any:
        renders.append(args[2])
        return await real(*args, **kwargs)

    monkeypatch.setattr(service, "context_for", spy)
    head = bearer(app, people["ministry_monitor"])
    params = {**at(JULY), **extra}
    first = await client.get(url, params=params, headers=head)
    assert first.status_code == 200, first.text
    assert len(renders) == 1
    etag = first.headers["etag"]
    polled = await client.get(url, params=params, headers={**head, "If-None-Match": etag})
    assert polled.status_code == 304 and polled.content == b""
    assert polled.headers["etag"] == etag
    weak = await client.get(
        url, params=params, headers={**head, "If-None-Match": f'"nope", W/{etag}'}
    )
    assert weak.status_code == 304
    again = await client.get(url, params=params, headers=head)
    assert again.status_code == 200 and again.content == first.content
    assert len(renders) == 1, renders
    await submit(client, app, signer, values={"ktp_el": (950, 1000)}, as_of=JULY)
    moved = await client.get(url, params=params, headers={**head, "If-None-Match": etag})
    assert moved.status_code == 200 and moved.headers["etag"] != etag
    assert len(renders) == 2


# -- the JSON Schemas describe the documents served ----------------------------------------


def _schema_errors(schema: Any, root: dict[str, Any], value: Any, path: str) -> list[str]:
    """A small JSON Schema check (the keywords msgspec writes): $ref, anyOf, enum, type,
    format (date, date-time, uuid), properties, required, additionalProperties, items."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return _schema_errors(root["$defs"][name], root, value, path)
    if "anyOf" in schema:
        options = [_schema_errors(s, root, value, path) for s in schema["anyOf"]]
        return [] if any(not o for o in options) else [f"{path}: no anyOf matches {value!r}"]
    errors: list[str] = []
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{path}: {value!r} not in {schema['enum']}")
    kind = schema.get("type")
    checks = {
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "null": lambda v: v is None,
    }
    kinds = kind if isinstance(kind, list) else [kind] if kind else []
    if kinds and not any(checks[k](value) for k in kinds):
        return [f"{path}: {value!r} is not {kind}"]
    fmt = schema.get("format")
    if isinstance(value, str) and fmt:
        parse = {
            "date": date.fromisoformat,
            "date-time": lambda s: datetime.fromisoformat(s.replace("Z", "+00:00")),
            "uuid": uuid.UUID,
        }.get(fmt)
        if parse is not None:
            try:
                parse(value)
            except ValueError:
                errors.append(f"{path}: {value!r} is not a {fmt}")
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        errors += [
            f"{path}: {name} missing" for name in schema.get("required", []) if name not in value
        ]
        extra = schema.get("additionalProperties")
        for name, inner in value.items():
            if name in properties:
                errors += _schema_errors(properties[name], root, inner, f"{path}.{name}")
            elif extra is False:
                errors.append(f"{path}: {name} not allowed")
            elif isinstance(extra, dict):
                errors += _schema_errors(extra, root, inner, f"{path}.{name}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            errors += _schema_errors(schema["items"], root, item, f"{path}[{i}]")
    return errors


async def test_every_document_served_is_valid_against_its_published_schema(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """Issue 6 item 5: "A JSON Schema of the scorecard document at a stable, versioned
    URL". Each document, with data, a division, a region, projections and the nation's
    aggregate, validates against the schema its URL serves; the schema names its own URL
    and is cacheable."""
    await national_agreement(client, app, conn, people, year=YEAR, target_list=targets(ktp_el=100))
    signer = await register_key(conn, people["district_head"])
    await make_division(conn, "16.71")
    await submit(client, app, signer, values={"ktp_el": (900, 1000)}, as_of=JUNE)
    await submit(client, app, signer, values={"ktp_el": (950, 1000), "kia": (5, 10)}, as_of=JULY)
    pj = await make_user(conn, "region_coordinator", username="pj_w1", area_code="16")
    await coordinate(conn, pj, "16", ["16.71", "16.72"], YEAR)
    head = bearer(app, people["ministry_monitor"])
    documents = [
        ("district-scorecard.v1.json", "/v1/scorecards/districts/16.71", {}),
        ("province-scorecard.v1.json", "/v1/scorecards/provinces/16", {}),
        ("ranking.v1.json", "/v1/rankings/districts", {"province": "16"}),
        ("ranking.v1.json", "/v1/rankings/districts", {"indicator": "ktp_el"}),
        ("ranking.v1.json", "/v1/rankings/regions", {"province": "16"}),
        ("ranking.v1.json", "/v1/rankings/provinces", {}),
    ]
    for name, url, extra in documents:
        schema_response = await client.get(f"/v1/schemas/{name}")
        assert schema_response.status_code == 200
        assert schema_response.headers["content-type"].startswith("application/schema+json")
        schema = schema_response.json()
        assert schema["$id"].endswith(f"/v1/schemas/{name}")
        response = await client.get(url, params={**at(JULY), **extra}, headers=head)
        assert response.status_code == 200, response.text
        document = response.json()
        assert _schema_errors(schema, schema, document, "$") == [], (name, url)
    card = (
        await client.get("/v1/scorecards/districts/16.71", params=at(JULY), headers=head)
    ).json()
    ktp = next(r for r in card["indicators"] if r["indicator"] == "ktp_el")
    assert card["divisions"] and ktp["projection"] is not None and ktp["trend"] is not None


# -- CSV -------------------------------------------------------------------------------------


async def test_an_empty_ranking_csv_still_names_its_columns(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person]
) -> None:
    """Issue 6 item 5: CSV "with the same rows and columns named as in JSON". A province
    that has drawn no regions yet ranks none: an integration's CSV reader still needs
    the header (the JSON's row members), not an empty body."""
    response = await client.get(
        "/v1/rankings/regions",
        params={**at(JULY), "province": "16", "format": "csv"},
        headers=bearer(app, people["province_monitor"]),
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    header = response.text.splitlines()[0].split(",") if response.text.strip() else []
    for column in ("code", "name", "status", "rank", "previous_rank", "change", "score"):
        assert column in header, (column, response.text)


async def test_csv_rows_equal_the_json_rows_value_for_value(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """Every cell of the ranking CSV equals the JSON member of the same dotted name, in
    the same row order, for the district, region and province rankings."""
    await national_agreement(
        client, app, conn, people, year=YEAR, target_list=targets(ktp_el=100, kia=30)
    )
    signer = await register_key(conn, people["district_head"])
    await submit(client, app, signer, values={"ktp_el": (900, 1000), "kia": (45, 100)}, as_of=JUNE)
    pj = await make_user(conn, "region_coordinator", username="pj_w1", area_code="16")
    await coordinate(conn, pj, "16", ["16.71", "16.72"], YEAR)
    head = bearer(app, people["ministry_monitor"])

    def flat(prefix: str, value: Any, out: dict[str, str]) -> None:
        if isinstance(value, dict):
            for key, inner in value.items():
                flat(f"{prefix}.{key}" if prefix else key, inner, out)
        elif value is None:
            out[prefix] = ""
        elif isinstance(value, bool):
            out[prefix] = "true" if value else "false"
        else:
            out[prefix] = str(value)

    for url, extra in (
        ("/v1/rankings/districts", {"province": "16"}),
        ("/v1/rankings/regions", {"province": "16"}),
        ("/v1/rankings/provinces", {}),
    ):
        params = {**at(JUNE), **extra}
        document = (await client.get(url, params=params, headers=head)).json()
        table = await client.get(url, params={**params, "format": "csv"}, headers=head)
        records = list(csv.DictReader(io.StringIO(table.text)))
        if url.endswith("provinces"):
            assert records[0]["kind"] == "nation"
            records = records[1:]
        assert len(records) == len(document["rows"]), url
        for record, row in zip(records, document["rows"], strict=True):
            expected: dict[str, str] = {}
            flat("", row, expected)
            for name, cell in expected.items():
                assert name in record, (url, name)
                got = record[name]
                if cell != got:  # numbers may be written in another float form
                    assert float(got) == pytest.approx(float(cell)), (url, name, got, cell)


# -- rank change of regions and provinces, worked by hand ------------------------------------


async def test_region_and_province_ranks_carry_their_change_against_last_month(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    outsiders: dict[str, Person],
) -> None:
    """Issue 6 item 1/3: rank change against the previous period, for regions and
    provinces as for districts. KTP-el targets 100 in 16 and in 31.

    30 June: W1 = {16.71: 900/1000} 90 %, W2 = {16.72: 800/1000} 80 %; province 16 =
    1700/2000 = 85 %, province 31 = {31.71: 880/1000} 88 %. 31 July: 16.72 reports
    990/1000, so W2 = 99 % (rank 1, was 2: change +1), W1 = 90 % (rank 2, change -1);
    province 16 = 1890/2000 = 94.5 % (rank 1, was 2), 31 = 88 % (rank 2, was 1)."""
    await national_agreement(client, app, conn, people, year=YEAR, target_list=targets(ktp_el=100))
    ministry = await register_signer(conn, people["ministry_monitor"])
    jakarta = await register_signer(conn, outsiders["province_head"])
    national_31 = await draft(
        client,
        app,
        people["ministry_monitor"],
        year=YEAR,
        level="national_province",
        second={"area_code": "31", "official": "Kadis DKI"},
        target_list=targets(ktp_el=100),
    )
    await activate(client, app, national_31, second=jakarta, first=ministry)
    palembang = await register_key(conn, people["district_head"])
    neighbour = await head_of(conn, "16.72")
    jakarta_head = await register_key(conn, outsiders["district_head"])
    await submit(client, app, palembang, values={"ktp_el": (900, 1000)}, as_of=JUNE)
    await submit(client, app, neighbour, values={"ktp_el": (800, 1000)}, as_of=JUNE)
    await submit(client, app, jakarta_head, values={"ktp_el": (880, 1000)}, as_of=JUNE)
    await submit(client, app, neighbour, values={"ktp_el": (990, 1000)}, as_of=JULY)
    w1 = await make_user(conn, "region_coordinator", username="pj_w1", area_code="16")
    w2 = await make_user(conn, "region_coordinator", username="pj_w2", area_code="16")
    await coordinate(conn, w1, "16", ["16.71"], YEAR)
    await coordinate(conn, w2, "16", ["16.72"], YEAR)
    head = bearer(app, people["ministry_monitor"])

    regions = await client.get(
        "/v1/rankings/regions",
        params={**at(JULY), "province": "16", "indicator": "ktp_el"},
        headers=head,
    )
    rows = [(r["name"], r["rank"], r["previous_rank"], r["change"]) for r in regions.json()["rows"]]
    assert rows == [("Wilayah pj_w2", 1, 2, 1), ("Wilayah pj_w1", 2, 1, -1)]
    assert near(regions.json()["rows"][0]["indicators"]["ktp_el"]["coverage"], 99.0)

    provinces = await client.get(
        "/v1/rankings/provinces", params={**at(JULY), "indicator": "ktp_el"}, headers=head
    )
    body = provinces.json()
    ranked = [(r["code"], r["rank"], r["previous_rank"], r["change"]) for r in body["rows"][:2]]
    assert ranked == [("16", 1, 2, 1), ("31", 2, 1, -1)]
    assert near(body["rows"][0]["score"], 94.5) and near(body["rows"][1]["score"], 88.0)
    assert body["counts"]["ranked"] == 2 and body["counts"]["rows"] == 38
    assert all(r["status"] == "no_data" and r["score"] is None for r in body["rows"][2:])
    # The nation: (1890 + 880) / 3000, every district without data left out and counted.
    nation = next(i for i in body["aggregate"]["indicators"] if i["indicator"] == "ktp_el")
    assert (nation["numerator"], nation["denominator"]) == (2770, 3000)
    assert (nation["with_data"], nation["no_data"]) == (3, nation["members"] - 3)

    # Nationwide districts: 16.72 (99), 16.71 (90), 31.71 (88), then 511 without data;
    # on 30 June they stood 16.71 (90), 31.71 (88), 16.72 (80).
    everyone = await client.get(
        "/v1/rankings/districts", params={**at(JULY), "indicator": "ktp_el"}, headers=head
    )
    body = everyone.json()
    assert body["province"] is None and body["counts"]["rows"] == 514
    top = [(r["code"], r["rank"], r["previous_rank"]) for r in body["rows"][:3]]
    assert top == [("16.72", 1, 3), ("16.71", 2, 1), ("31.71", 3, 2)]
    assert all(r["status"] == "no_data" and r["rank"] is None for r in body["rows"][3:])


# -- a lower-is-better indicator ranked alone ------------------------------------------------


async def test_a_lower_is_better_indicator_ranks_the_lowest_share_first(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """Backlog (pending / received, lower is better), target 10 %: 16.71 at 5 % achieves
    (2 - 0.5) x 100 = 150, 16.73 at 10 % 100, 16.72 at 20 % 0 and 16.74 at 15 % 50.
    Ranked alone on backlog: 16.71, 16.73, 16.74, 16.72; a region of 16.71 (5/100) and
    16.72 (20/100) is 25/200 = 12.5 %: (2 - 1.25) x 100 = 75."""
    added = await client.post(
        "/v1/indicators",
        json={
            "code": "backlog",
            "name_id": "Tunggakan",
            "name_en": "Backlog",
            "polarity": "lower",
            "numerator_definition": "pending",
            "denominator_definition": "received",
        },
        headers=bearer(app, people["admin"]),
    )
    assert added.status_code == 201, added.text
    await national_agreement(client, app, conn, people, year=YEAR, target_list=targets(backlog=10))
    shares = {"16.71": 5, "16.72": 20, "16.73": 10, "16.74": 15}
    for code, pending in shares.items():
        signer = (
            await register_key(conn, people["district_head"])
            if code == "16.71"
            else await head_of(conn, code)
        )
        await submit(client, app, signer, values={"backlog": (pending, 100)}, as_of=JUNE)
    pj = await make_user(conn, "region_coordinator", username="pj_w1", area_code="16")
    await coordinate(conn, pj, "16", ["16.71", "16.72"], YEAR)
    head = bearer(app, people["province_head"])
    ranking = await client.get(
        "/v1/rankings/districts",
        params={**at(JUNE), "province": "16", "indicator": "backlog"},
        headers=head,
    )
    rows = ranking.json()["rows"]
    assert [(r["code"], r["rank"]) for r in rows[:4]] == [
        ("16.71", 1),
        ("16.73", 2),
        ("16.74", 3),
        ("16.72", 4),
    ]
    assert [r["score"] for r in rows[:4]] == [
        pytest.approx(150),
        pytest.approx(100),
        pytest.approx(50),
        pytest.approx(0),
    ]
    regions = await client.get(
        "/v1/rankings/regions",
        params={**at(JUNE), "province": "16", "indicator": "backlog"},
        headers=head,
    )
    region = regions.json()["rows"][0]
    assert near(region["indicators"]["backlog"]["coverage"], 12.5)
    assert near(region["score"], 75.0)


# -- the demo: live rankings at once ---------------------------------------------------------


async def test_the_demo_seeded_in_january_shows_live_rankings(
    conn: asyncpg.Connection,
    settings: Settings,
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
) -> None:
    """Issue 6 item 6: the demo "can seed a realistic year so a newcomer sees live
    rankings at once"; README: `make demo` seeds the current year. A newcomer running it
    on 20 January (no month has ended yet) must still see ranked districts today."""
    today = date(YEAR, 1, 20)
    assert await seed(conn, settings, today, "demo-password-1") is True
    ranking = await client.get(
        "/v1/rankings/districts",
        params={"as_of": today.isoformat()},
        headers=bearer(app, people["province_monitor"]),
    )
    assert ranking.status_code == 200, ranking.text
    assert ranking.json()["counts"]["ranked"] > 0, ranking.json()["counts"]


# -- ETags follow the scope's data version ---------------------------------------------------


async def test_etags_move_with_agreements_and_regions_inside_the_scope_only(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
    outsiders: dict[str, Person],
) -> None:
    """Issue 6 item 5: the ETag comes from "a data version of the scope that changes
    with any submission, review or agreement change inside it". A division's agreement
    moves its district's card; the province's agreement with the ministry moves the cards
    and rankings that fall back on its targets; a region drawn moves the region ranking;
    a report in another province leaves this province's ranking at 304."""
    monitor = bearer(app, people["province_monitor"])
    ministry_h = bearer(app, people["ministry_monitor"])
    card_url, card_q = "/v1/scorecards/districts/16.71", at(JULY)
    rank_url, rank_q = "/v1/rankings/districts", {**at(JULY), "province": "16"}
    regions_url = "/v1/rankings/regions"

    async def etag(url: str, params: dict[str, Any], headers: dict[str, str]) -> str:
        response = await client.get(url, params=params, headers=headers)
        assert response.status_code == 200, response.text
        return str(response.headers["etag"])

    async def status(url: str, params: dict[str, Any], headers: dict[str, str], tag: str) -> int:
        response = await client.get(url, params=params, headers={**headers, "If-None-Match": tag})
        return response.status_code

    signer = await register_key(conn, people["district_head"])
    await submit(client, app, signer, values={"ktp_el": (900, 1000)}, as_of=JUNE)
    card, ranked = await etag(card_url, card_q, monitor), await etag(rank_url, rank_q, monitor)
    nation = await etag("/v1/rankings/provinces", at(JULY), ministry_h)
    regions = await etag(regions_url, rank_q, monitor)

    # A report in Jakarta: nothing of South Sumatra changed.
    jakarta = await register_key(conn, outsiders["district_head"])
    await submit(client, app, jakarta, values={"ktp_el": (1, 2)}, as_of=JUNE)
    assert await status(rank_url, rank_q, monitor, ranked) == 304
    assert await status(card_url, card_q, monitor, card) == 304
    assert await status("/v1/rankings/provinces", at(JULY), ministry_h, nation) == 200
    nation = await etag("/v1/rankings/provinces", at(JULY), ministry_h)

    # The province's agreement with the ministry: Palembang now has a target from it.
    await national_agreement(client, app, conn, people, year=YEAR, target_list=targets(ktp_el=100))
    assert await status(card_url, card_q, monitor, card) == 200
    assert await status(rank_url, rank_q, monitor, ranked) == 200
    assert await status("/v1/rankings/provinces", at(JULY), ministry_h, nation) == 200
    fresh = (await client.get(card_url, params=card_q, headers=monitor)).json()
    ktp = next(r for r in fresh["indicators"] if r["indicator"] == "ktp_el")
    assert (ktp["target"], ktp["target_source"]) == (100.0, "province")
    card = await etag(card_url, card_q, monitor)

    # A division's agreement (district head with the division head) moves the card.
    division_id = people["division_head"].division_id
    district_head = await register_signer(conn, people["district_head"])
    division_head = await register_signer(conn, people["division_head"])
    agreement = await draft(
        client,
        app,
        people["district_head"],
        year=YEAR,
        level="district_division",
        second={"division_id": str(division_id), "official": "Kabid Dafduk"},
        target_list=targets(ktp_el=90),
    )
    assert await status(card_url, card_q, monitor, card) == 200
    card = await etag(card_url, card_q, monitor)
    await activate(client, app, agreement, second=division_head, first=district_head)
    assert await status(card_url, card_q, monitor, card) == 200
    fresh = (await client.get(card_url, params=card_q, headers=monitor)).json()
    division = next(d for d in fresh["divisions"] if d["division_id"] == str(division_id))
    ktp = next(r for r in division["indicators"] if r["indicator"] == "ktp_el")
    assert (ktp["target"], ktp["target_source"]) == (90.0, "division")

    # Regions drawn through the API move the region ranking.
    regions = await etag(regions_url, rank_q, monitor)
    pj = await make_user(conn, "region_coordinator", username="pj_w1", area_code="16")
    drawn = await client.put(
        f"/v1/provinces/16/regions/{YEAR}",
        json={
            "regions": [{"name": "Wilayah I", "districts": ["16.71"], "coordinator_id": str(pj.id)}]
        },
        headers=bearer(app, people["province_head"]),
    )
    assert drawn.status_code == 200, drawn.text
    assert await status(regions_url, rank_q, monitor, regions) == 200
    rows = (await client.get(regions_url, params=rank_q, headers=monitor)).json()["rows"]
    assert [r["name"] for r in rows] == ["Wilayah I"]


async def test_one_views_etag_is_never_answered_304_for_another_view(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """The district head's card (the district's figures and every division) and the
    division head's (their division alone) differ: an ETag one got must not make the
    other's poll a 304, nor may a cached body of one be served to the other."""
    other = await make_division(conn, "16.71", "pias")
    signer = await register_key(conn, people["district_head"])
    await submit(client, app, signer, values={"ktp_el": (900, 1000)}, as_of=JUNE)
    district_head = bearer(app, people["district_head"])
    division_head = bearer(app, people["division_head"])
    url = "/v1/scorecards/districts/16.71"
    full = await client.get(url, params=at(JULY), headers=district_head)
    assert full.status_code == 200, full.text
    codes = {d["code"] for d in full.json()["divisions"]}
    assert codes == {"dafduk", "pias"} and other is not None
    assert any(r["numerator"] == 900 for r in full.json()["indicators"])
    polled = await client.get(
        url, params=at(JULY), headers={**division_head, "If-None-Match": full.headers["etag"]}
    )
    assert polled.status_code == 200
    own = polled.json()
    assert [d["code"] for d in own["divisions"]] == ["dafduk"]
    assert own["indicators"] == [] and own["composite"]["score"] is None
    assert polled.headers["etag"] != full.headers["etag"]
    again = await client.get(url, params=at(JULY), headers=district_head)
    assert again.content == full.content


# -- role views ------------------------------------------------------------------------------


async def test_integrations_read_exactly_their_granted_areas(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """Issue 6 item 4: "Integration: its granted scope. Outside scope: 404." One service
    account is granted Kota Palembang alone, another South Sumatra and East Kalimantan
    (64): each reads what lies inside its grants, and 404 elsewhere."""
    one = await make_user(conn, "integration", username="svc_palembang", area_code="16.71")
    two = await make_user(
        conn, "integration", username="svc_two", area_code="16", extra_areas=["64"]
    )
    pj = await make_user(conn, "region_coordinator", username="pj_64", area_code="16")
    await coordinate(conn, pj, "16", ["16.71"], YEAR)

    async def status(person: Person, url: str, **params: Any) -> int:
        response = await client.get(url, params={**at(JULY), **params}, headers=bearer(app, person))
        if response.status_code >= 400:
            assert response.headers["content-type"].startswith(PROBLEM)
        return response.status_code

    cases = [
        (one, "/v1/scorecards/districts/16.71", {}, 200),
        (one, "/v1/scorecards/districts/16.72", {}, 404),
        (one, "/v1/scorecards/provinces/16", {}, 404),
        (one, "/v1/rankings/districts", {"province": "16"}, 404),
        (one, "/v1/rankings/districts", {}, 404),
        (one, "/v1/rankings/regions", {"province": "16"}, 404),
        (one, "/v1/rankings/provinces", {}, 404),
        (two, "/v1/scorecards/districts/64.71", {}, 200),
        (two, "/v1/scorecards/districts/16.01", {}, 200),
        (two, "/v1/scorecards/districts/31.71", {}, 404),
        (two, "/v1/scorecards/provinces/64", {}, 200),
        (two, "/v1/scorecards/provinces/16", {}, 200),
        (two, "/v1/scorecards/provinces/31", {}, 404),
        (two, "/v1/rankings/districts", {"province": "64"}, 200),
        (two, "/v1/rankings/districts", {"province": "31"}, 404),
        (two, "/v1/rankings/districts", {}, 404),
        (two, "/v1/rankings/regions", {"province": "16"}, 200),
        (two, "/v1/rankings/regions", {"province": "31"}, 404),
        (two, "/v1/rankings/provinces", {}, 404),
    ]
    got = [(p.username, url, q, await status(p, url, **q)) for p, url, q, _ in cases]
    assert got == [(p.username, url, q, code) for p, url, q, code in cases]
    rows = (
        await client.get(
            "/v1/rankings/districts",
            params={**at(JULY), "province": "64"},
            headers=bearer(app, two),
        )
    ).json()["rows"]
    assert rows and all(r["code"].startswith("64.") for r in rows)


async def test_a_region_coordinator_reads_their_regions_districts_and_regions_only(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """Issue 6 item 4: "Region coordinator: own region's districts and the region". Their
    region holds 16.71 and 16.72; 16.73 is another coordinator's."""
    pj = await make_user(conn, "region_coordinator", username="pj_w1", area_code="16")
    other = await make_user(conn, "region_coordinator", username="pj_w2", area_code="16")
    await coordinate(conn, pj, "16", ["16.71", "16.72"], YEAR)
    await coordinate(conn, other, "16", ["16.73"], YEAR)
    signer = await register_key(conn, people["district_head"])
    await submit(client, app, signer, values={"ktp_el": (900, 1000)}, as_of=JUNE)
    me = bearer(app, pj)

    async def get(url: str, **params: Any) -> Any:
        return await client.get(url, params={**at(JULY), **params}, headers=me)

    assert (await get("/v1/scorecards/districts/16.71")).status_code == 200
    assert (await get("/v1/scorecards/districts/16.72")).status_code == 200
    assert (await get("/v1/scorecards/districts/16.73")).status_code == 404
    assert (await get("/v1/scorecards/districts/31.71")).status_code == 404
    assert (await get("/v1/scorecards/provinces/16")).status_code == 403
    assert (await get("/v1/rankings/districts", province="31")).status_code == 404
    assert (await get("/v1/rankings/regions", province="31")).status_code == 404
    assert (await get("/v1/rankings/provinces")).status_code == 404
    districts = (await get("/v1/rankings/districts")).json()
    assert {r["code"] for r in districts["rows"]} == {"16.71", "16.72"}
    assert districts["counts"] == {"rows": 2, "ranked": 0, "no_data": 1, "no_target": 1}
    csv_rows = list(
        csv.DictReader(io.StringIO((await get("/v1/rankings/districts", format="csv")).text))
    )
    assert [r["code"] for r in csv_rows] == [r["code"] for r in districts["rows"]]
    regions = (await get("/v1/rankings/regions")).json()
    assert [r["name"] for r in regions["rows"]] == ["Wilayah pj_w1"]
    brief = regions["rows"][0]["indicators"]["ktp_el"]
    assert (brief["members"], brief["with_data"], brief["no_data"]) == (2, 1, 1)


# -- bad queries: a 4xx problem, never a 5xx ------------------------------------------------

BAD_QUERIES: list[tuple[dict[str, Any], int]] = [
    ({"year": "abc"}, 400),
    ({"year": "1999"}, 400),
    ({"year": "2101"}, 400),
    ({"year": "2026.5"}, 400),
    ({"year": ""}, 400),
    ({"as_of": "2026-02-30"}, 400),
    ({"as_of": "1999-12-31"}, 400),
    ({"as_of": "2101-01-01"}, 400),
    ({"as_of": "31-07-2026"}, 400),
    ({"as_of": "2026-07-31T00:00:00"}, 400),
    ({"as_of": "99999-01-01"}, 400),
    ({"year": "2025", "as_of": "2026-07-31"}, 400),
    ({"basis": "LATEST"}, 400),
    ({"basis": ""}, 400),
    ({"format": "CSV"}, 400),
    ({"format": "xlsx"}, 400),
]


@pytest.mark.parametrize(("url", "extra"), ROUTES)
async def test_bad_queries_are_a_problem_and_change_nothing(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    people: dict[str, Person],
    url: str,
    extra: dict[str, Any],
) -> None:
    """Issue 6 item 3 query parameters, on every report route: malformed or out-of-range
    values are 400 problem+json, never a 5xx nor a document for some other period."""
    head = bearer(app, people["ministry_monitor"])
    failures = []
    for bad, expected in BAD_QUERIES:
        response = await client.get(url, params={**extra, **bad}, headers=head)
        ok = response.status_code == expected and response.headers["content-type"].startswith(
            PROBLEM
        )
        if not ok:
            failures.append((bad, response.status_code, response.text[:160]))
    if "rankings" in url:
        for bad in ({"indicator": "nope"}, {"indicator": ""}, {"indicator": "x" * 40}):
            response = await client.get(url, params={**extra, **bad}, headers=head)
            if response.status_code != 400:
                failures.append((bad, response.status_code, response.text[:160]))
    assert not failures, failures


# -- projection thresholds, periods ---------------------------------------------------------


async def test_the_projection_status_follows_the_configured_thresholds(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """Issue 6 item 1: a status "from their ratio with configurable thresholds". KTP-el
    target 100: 900 of 1,000 on 30 June, 950 on 31 July. Achieved: 50 in 31 days; needed:
    50 in the 153 days to 31 December; ratio 153 / 31 = 4.935...; the target is reached in
    31 more days, on 31 August. On track with the defaults (1.0 / 0.8), at risk with
    on-track 5 / at-risk 4, off track with 10 / 6."""
    from tests.submitting import served

    async with served(settings) as (app, http):
        await national_agreement(
            http, app, conn, people, year=YEAR, target_list=targets(ktp_el=100)
        )
        signer = await register_key(conn, people["district_head"])
        await submit(http, app, signer, values={"ktp_el": (900, 1000)}, as_of=JUNE)  # type: ignore[arg-type]
        await submit(http, app, signer, values={"ktp_el": (950, 1000)}, as_of=JULY)  # type: ignore[arg-type]
    import msgspec

    found = {}
    for on_track, at_risk in ((1.0, 0.8), (5.0, 4.0), (10.0, 6.0)):
        tuned = msgspec.structs.replace(
            settings, projection_on_track_ratio=on_track, projection_at_risk_ratio=at_risk
        )
        async with served(tuned) as (app, http):
            card = await http.get(
                "/v1/scorecards/districts/16.71",
                params=at(JULY),
                headers=bearer(app, people["province_monitor"]),
            )
            assert card.status_code == 200, card.text
            ktp = next(r for r in card.json()["indicators"] if r["indicator"] == "ktp_el")
            projection = ktp["projection"]
            assert near(projection["achieved_rate"], 50 / 31)
            assert near(projection["needed_rate"], 50 / 153)
            assert near(projection["ratio"], 153 / 31)
            assert projection["days_left"] == 153
            assert projection["projected_date"] == "2026-08-31"
            found[(on_track, at_risk)] = projection["status"]
    assert found == {(1.0, 0.8): "on_track", (5.0, 4.0): "at_risk", (10.0, 6.0): "off_track"}


async def test_default_periods_and_no_rank_change_in_january(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """README: ``as_of`` defaults to today (WIB), a past ``year`` alone to its 31 December;
    ``change`` compares with the end of the previous month, none in January (the end of
    December is last year's period). Palembang reported on 31 December of the year before
    and 31 January: its January row has no previous rank and its card no previous
    coverage from last year."""
    from api.settings import local_today

    head = bearer(app, people["province_monitor"])
    url = "/v1/scorecards/districts/16.71"
    plain = (await client.get(url, headers=head)).json()["method"]
    today = local_today(app.state.settings)
    assert (plain["as_of"], plain["year"]) == (today.isoformat(), today.year)
    past = (await client.get(url, params={"year": YEAR - 1}, headers=head)).json()["method"]
    assert (past["as_of"], past["previous_as_of"]) == (f"{YEAR - 1}-12-31", f"{YEAR - 1}-11-30")

    await national_agreement(client, app, conn, people, year=YEAR, target_list=targets(ktp_el=100))
    signer = await register_key(conn, people["district_head"])
    await submit(client, app, signer, values={"ktp_el": (800, 1000)}, as_of=date(YEAR - 1, 12, 31))
    await submit(client, app, signer, values={"ktp_el": (850, 1000)}, as_of=date(YEAR, 1, 31))
    january = at(date(YEAR, 1, 31))
    ranked = await client.get(
        "/v1/rankings/districts", params={**january, "province": "16"}, headers=head
    )
    row = next(r for r in ranked.json()["rows"] if r["code"] == "16.71")
    assert (row["rank"], row["previous_rank"], row["change"]) == (1, None, None)
    card = (await client.get(url, params=january, headers=head)).json()
    ktp = next(r for r in card["indicators"] if r["indicator"] == "ktp_el")
    assert ktp["trend"]["previous_as_of"] == f"{YEAR - 1}-12-31"
    assert ktp["trend"]["previous_coverage"] is None and ktp["trend"]["change_points"] is None
    assert ktp["coverage"] == 85.0


async def test_a_poll_across_a_change_of_projection_thresholds_gets_the_new_status(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """An ETag names one representation: the band tables are part of it (a restart with
    other tables is a new ETag, README), but the projection thresholds, which decide
    ``projection.status`` in the same body, are not. The card above is ``on_track`` with
    the defaults and ``off_track`` with on-track 10 / at-risk 6: a poller holding the
    first ETag must not be told (304) that its ``on_track`` body is still current."""
    import msgspec

    from tests.submitting import served

    async with served(settings) as (app, http):
        await national_agreement(
            http, app, conn, people, year=YEAR, target_list=targets(ktp_el=100)
        )
        signer = await register_key(conn, people["district_head"])
        await submit(http, app, signer, values={"ktp_el": (900, 1000)}, as_of=JUNE)  # type: ignore[arg-type]
        await submit(http, app, signer, values={"ktp_el": (950, 1000)}, as_of=JULY)  # type: ignore[arg-type]
        first = await http.get(
            "/v1/scorecards/districts/16.71",
            params=at(JULY),
            headers=bearer(app, people["province_monitor"]),
        )
        ktp = next(r for r in first.json()["indicators"] if r["indicator"] == "ktp_el")
        assert ktp["projection"]["status"] == "on_track"
    tuned = msgspec.structs.replace(
        settings, projection_on_track_ratio=10.0, projection_at_risk_ratio=6.0
    )
    async with served(tuned) as (app, http):
        polled = await http.get(
            "/v1/scorecards/districts/16.71",
            params=at(JULY),
            headers={
                **bearer(app, people["province_monitor"]),
                "If-None-Match": first.headers["etag"],
            },
        )
        assert polled.status_code == 200, "304: the poller keeps on_track"
        ktp = next(r for r in polled.json()["indicators"] if r["indicator"] == "ktp_el")
        assert ktp["projection"]["status"] == "off_track"


# -- data access that does not grow with history --------------------------------------------


@pytest.mark.parametrize("basis", ["latest", "accepted"])
@pytest.mark.parametrize("division", [False, True])
async def test_the_latest_value_as_of_a_date_is_one_ordered_index_probe(
    conn: asyncpg.Connection, basis: str, division: bool
) -> None:
    """Issue 6 item 2: the latest counting value per district and indicator as of a date
    "is found without scanning history (an index that serves it ...)". With sequential
    and bitmap scans ruled out, the probe of every basis and level is an index scan in
    (as_of, seq) order under its LIMIT 1: no sort of the district's history."""
    from db import scorecards as data

    sql = data._LATEST[(basis, division)]  # type: ignore[index]
    args: list[Any] = [["16.71", "16.72"], ["ktp_el", "kia"], JULY, date(YEAR, 1, 1)]
    if division:
        args.append(uuid.uuid4())
    async with conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        await conn.execute("SET LOCAL enable_bitmapscan = off")
        rows = await conn.fetch("EXPLAIN " + sql, *args)
    plan = "\n".join(r[0] for r in rows)
    assert "Limit" in plan, plan
    assert "Index Scan" in plan or "Index Only Scan" in plan, plan
    assert "Sort" not in plan and "Seq Scan on submission_values" not in plan, plan


@pytest.mark.parametrize(
    "code", ["16.71%00", "1" * 3000, "16.71%3Bx", "%D9%A1%D9%A6.%D9%A7%D9%A1", "ID", "16.7"]
)
async def test_a_path_code_that_names_no_area_is_a_404_problem(
    client: AsyncTestClient[Litestar], app: Litestar, people: dict[str, Person], code: str
) -> None:
    """Bad codes in the path of both scorecards: 404 problem+json, never a 5xx."""
    head = bearer(app, people["ministry_monitor"])
    for kind in ("districts", "provinces"):
        response = await client.get(f"/v1/scorecards/{kind}/{code}", headers=head)
        assert response.status_code == 404, (kind, code, response.status_code, response.text[:200])
        assert response.headers["content-type"].startswith(PROBLEM)
