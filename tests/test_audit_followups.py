"""What the audits of issues 2-7 observed beside their findings, made right.

The client refuses at the keyboard what the server always refuses (a report queued for
days only to be refused); a CSV cell that a spreadsheet would run as a formula is
defused; the served OpenAPI document says what scorecards and rankings answer (it
showed an empty schema and no ETag); and a request while the database is down is told
to come back (503), not that the server failed (500).
"""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

import asyncpg
import msgspec
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.representation import to_csv
from api.settings import Settings, settings_from_env
from client.signing import build_payload
from db.embedded import EmbeddedPostgres
from tests.agreement_helpers import national_agreement, targets
from tests.people import Person, bearer
from tests.pg import scratch_dir
from tests.submitting import register_key, submit
from tests.test_openapi_review_findings import violations
from tests.waiting import status_back

AS_OF = date(2026, 6, 30)
BIGINT_MAX = 2**63 - 1


@pytest.mark.parametrize(
    ("values", "note", "says"),
    [
        ({"ktp_el": (1, 0)}, None, "denominator must be positive"),
        ({"ktp_el": (BIGINT_MAX + 1, BIGINT_MAX + 1)}, None, "at most"),
        (
            {"ktp_el": {"numerator": 1, "denominator": 2, "channels": {"office": BIGINT_MAX + 1}}},
            None,
            "channels.office must be at most",
        ),
        ({"ktp_el": (1, 2)}, "x" * 4001, "note must be at most 4,000"),
        ({"ktp_el": (1, 2)}, "a\x00b", "without NUL"),
    ],
)
def test_the_client_refuses_what_the_server_always_refuses(
    values: dict[str, Any], note: str | None, says: str
) -> None:
    with pytest.raises(ValueError, match=says):
        build_payload("16.71", AS_OF, values, note=note)


def test_the_client_takes_the_largest_count_and_note_the_server_takes() -> None:
    payload = build_payload("16.71", AS_OF, {"ktp_el": (BIGINT_MAX, BIGINT_MAX)}, note="x" * 4000)
    assert payload["values"]["ktp_el"]["numerator"] == BIGINT_MAX
    assert payload["note"] == "x" * 4000


def test_csv_text_a_spreadsheet_would_run_is_defused_and_numbers_are_not() -> None:
    table = to_csv(
        [
            {"code": "16.71", "name": '=HYPERLINK("http://x","y")', "score": -5.5},
            {"code": "16.72", "name": "@SUM(A1)", "score": 12},
            {"code": "16.73", "name": "+1 Wilayah", "score": None},
            {"code": "16.74", "name": "-Wilayah", "score": 0},
            {"code": "16.75", "name": "Wilayah = I", "score": 1.5},
        ]
    ).decode()
    rows = list(csv.reader(io.StringIO(table)))
    assert rows[0] == ["code", "name", "score"]
    assert [row[1] for row in rows[1:]] == [
        '\'=HYPERLINK("http://x","y")',
        "'@SUM(A1)",
        "'+1 Wilayah",
        "'-Wilayah",
        "Wilayah = I",
    ]
    assert [row[2] for row in rows[1:]] == ["-5.5", "12", "", "0", "1.5"]


async def test_the_document_describes_every_scorecard_and_ranking_as_served(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """Each report route's 200 names its document's schema (not ``{}``) and its ETag,
    and what the route serves is valid against that schema."""
    await national_agreement(
        client, app, conn, people, year=AS_OF.year, target_list=targets(ktp_el=100)
    )
    signer = await register_key(conn, people["district_head"])
    await submit(client, app, signer, values={"ktp_el": (900, 1000)}, as_of=AS_OF)
    doc = (await client.get("/schema/openapi.json")).json()
    head = bearer(app, people["ministry_monitor"])
    period = {"year": AS_OF.year, "as_of": AS_OF.isoformat()}
    for path, url, extra in (
        ("/v1/scorecards/districts/{code}", "/v1/scorecards/districts/16.71", {}),
        ("/v1/scorecards/provinces/{code}", "/v1/scorecards/provinces/16", {}),
        ("/v1/rankings/districts", "/v1/rankings/districts", {"province": "16"}),
        ("/v1/rankings/regions", "/v1/rankings/regions", {"province": "16"}),
        ("/v1/rankings/provinces", "/v1/rankings/provinces", {}),
    ):
        responses = doc["paths"][path]["get"]["responses"]
        ok = responses["200"]
        schema = ok["content"]["application/json"]["schema"]
        assert schema.get("$ref", "").startswith("#/components/schemas/Report"), (path, schema)
        assert "ETag" in ok["headers"] and "ETag" in responses["304"]["headers"], path
        answer = await client.get(url, params={**period, **extra}, headers=head)
        assert answer.status_code == 200, answer.text
        assert violations(doc, schema, answer.json()) == [], path


async def test_a_request_while_the_database_is_down_is_a_503_to_try_again() -> None:
    with scratch_dir("kinerja-down-") as workdir:
        cluster = EmbeddedPostgres(workdir / "data")
        dsn = cluster.start()
        try:
            settings = settings_from_env({}, database_url=dsn, environment="test", pool_min_size=1)
            async with AsyncTestClient(app=create_app(settings, configure_logs=False)) as client:
                assert (await client.get("/v1/areas/16.71")).status_code == 200
                cluster.halt()
                down = await client.get("/v1/areas/16.71")
                assert down.status_code == 503, down.text
                assert down.headers["content-type"].startswith("application/problem+json")
                assert down.json()["type"].endswith("/unavailable")
                assert down.headers["retry-after"] == "5"
                # The public keys are still served, from the keys held, once they are due
                # to be read again.
                client.app.state.key_ring._loaded_at -= 3600
                keys = await client.get("/.well-known/jwks.json")
                assert keys.status_code == 200 and keys.json()["keys"], keys.text
                cluster.boot()
                assert await status_back(client, "/v1/areas/16.71") == 200
        finally:
            cluster.stop(mode="immediate")


@pytest.mark.parametrize("parent", ["", "16.7", "1", "id", "16 "])
async def test_an_area_parent_no_area_code_can_match_is_refused(
    client: AsyncTestClient[Litestar], parent: str
) -> None:
    """An empty page answered "no areas" where the filter itself was wrong."""
    answer = await client.get("/v1/areas", params={"parent": parent})
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")


async def test_an_area_parent_of_any_area_code_is_taken(client: AsyncTestClient[Litestar]) -> None:
    totals = {}
    for parent in ("ID", "16", "16.71"):
        answer = await client.get("/v1/areas", params={"parent": parent})
        assert answer.status_code == 200, answer.text
        totals[parent] = answer.json()["total"]
    assert totals == {"ID": 38, "16": 17, "16.71": 0}


async def test_an_etag_depends_on_the_offices_utc_offset(
    settings: Settings,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """The offset decides which agreements are in force on a date: replicas (or a
    restart) with another one must not answer 304 to the other's ETag."""
    tags = []
    for offset in (7, 9):
        app = create_app(
            msgspec.structs.replace(settings, utc_offset_hours=offset), configure_logs=False
        )
        async with AsyncTestClient(app=app) as client:
            answer = await client.get(
                "/v1/rankings/provinces",
                params={"year": AS_OF.year, "as_of": AS_OF.isoformat()},
                headers=bearer(app, people["ministry_monitor"]),
            )
            assert answer.status_code == 200, answer.text
            tags.append(answer.headers["etag"])
    assert tags[0] != tags[1]
