"""Review (accept / return), what stops counting, and corrections that supersede."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx
import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.errors import PROBLEM_BASE
from tests.people import Person, bearer, make_division
from tests.submitting import Signer, ensure_coordinated, post_jws, register_key, review, submit


@pytest.fixture
async def head(conn: asyncpg.Connection, people: dict[str, Person]) -> Signer:
    return await register_key(conn, people["district_head"])


async def counting(conn: asyncpg.Connection, submission_id: str) -> list[bool]:
    rows = await conn.fetch(
        "SELECT counting FROM submission_values WHERE submission_id = $1::uuid", submission_id
    )
    return [r["counting"] for r in rows]


async def test_accept_then_return_and_the_submitter_reads_why(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    head: Signer,
    people: dict[str, Person],
) -> None:
    made = await submit(client, app, head)
    version = await conn.fetchval("SELECT version FROM data_versions WHERE area_code = '16.71'")
    accepted = await review(client, app, people["province_head"], made["id"], "accept", None)
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["submission_status"] == "accepted"
    assert await conn.fetchval("SELECT version FROM data_versions WHERE area_code = '16.71'") == (
        version + 1
    )
    assert await conn.fetchval(
        "SELECT bool_and(status = 'accepted') FROM submission_values WHERE submission_id = $1",
        accepted.json()["submission_id"],
    )
    # Accepting twice is not a decision; returning an accepted one is (found later).
    again = await review(client, app, people["province_monitor"], made["id"], "accept")
    assert again.status_code == 409
    assert again.json()["type"] == PROBLEM_BASE + "review-not-allowed"
    returned = await review(
        client, app, people["province_monitor"], made["id"], "return", "Denominator salah"
    )
    assert returned.status_code == 201, returned.text
    assert await counting(conn, made["id"]) == [False, False]
    # Returned is final: the district corrects it with a superseding submission.
    final = await review(client, app, people["province_head"], made["id"], "accept")
    assert final.status_code == 409

    seen = await client.get(f"/v1/submissions/{made['id']}", headers=bearer(app, head.person))
    assert seen.status_code == 200
    body = seen.json()
    assert body["status"] == "returned" and body["counting"] is False
    assert [(r["decision"], r["reason"], r["reviewer_role"]) for r in body["reviews"]] == [
        ("accept", None, "province_head"),
        ("return", "Denominator salah", "province_monitor"),
    ]
    assert body["reviews"][1]["reviewer_id"] == str(people["province_monitor"].id)
    # Who, by name too: the district head may not look users up (GET /v1/users/{id} 403).
    names = await conn.fetch(
        "SELECT full_name FROM users WHERE id = ANY($1::uuid[]) ORDER BY role",
        [people["province_head"].id, people["province_monitor"].id],
    )
    assert [r["reviewer_name"] for r in body["reviews"]] == [n["full_name"] for n in names]
    assert returned.json()["reviewer_name"] == names[1]["full_name"]
    assert body["reviews"][0]["created_at"] <= body["reviews"][1]["created_at"]


async def test_return_needs_a_reason(
    client: AsyncTestClient[Litestar], app: Litestar, head: Signer, people: dict[str, Person]
) -> None:
    made = await submit(client, app, head)
    for reason in (None, "   "):
        response = await review(client, app, people["province_head"], made["id"], "return", reason)
        assert response.status_code == 422, response.text
    bad = await client.post(
        f"/v1/submissions/{made['id']}/review",
        json={"decision": "approve"},
        headers=bearer(app, people["province_head"]),
    )
    assert bad.status_code == 400


async def test_who_may_review(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    head: Signer,
    people: dict[str, Person],
    outsiders: dict[str, Person],
) -> None:
    made = await submit(client, app, head)
    # A region coordinator reviews only the districts of their region.
    coordinator = people["region_coordinator"]
    assert (await review(client, app, coordinator, made["id"], "accept")).status_code == 404
    await ensure_coordinated(conn, coordinator, "16", "16.71")
    assert (await review(client, app, coordinator, made["id"], "accept")).status_code == 201
    # Other provinces' reviewers do not see it; non-reviewers may not review.
    for role in ("province_head", "province_monitor"):
        assert (await review(client, app, outsiders[role], made["id"], "return")).status_code == (
            404
        )
    for role in ("district_head", "division_head", "admin", "ministry_monitor", "integration"):
        assert (await review(client, app, people[role], made["id"], "return")).status_code == 403
    missing = "00000000-0000-0000-0000-000000000001"
    assert (await review(client, app, people["province_head"], missing, "accept")).status_code == (
        404
    )
    assert await conn.fetchval("SELECT count(*) FROM submission_reviews") == 1


async def test_a_correction_supersedes_and_the_old_one_stops_counting(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    head: Signer,
    people: dict[str, Person],
) -> None:
    old = await submit(client, app, head, values={"ktp_el": (1_000, 2_000)})
    accepted = await review(client, app, people["province_head"], old["id"], "accept")
    assert accepted.status_code == 201
    new = await submit(
        client,
        app,
        head,
        values={"ktp_el": (1_100, 2_000)},
        supersedes={"id": old["id"], "reason": "Salah ketik pembilang"},
    )
    assert new["supersedes"] == {"id": old["id"], "reason": "Salah ketik pembilang"}
    assert new["flags"] == [] and new["counting"] is True
    seen = (
        await client.get(f"/v1/submissions/{old['id']}", headers=bearer(app, head.person))
    ).json()
    assert seen["superseded_by"] == new["id"]
    assert seen["flags"] == ["superseded"] and seen["counting"] is False
    assert seen["status"] == "accepted"  # the review stands; the row just stops counting
    assert await counting(conn, old["id"]) == [False]
    assert await counting(conn, new["id"]) == [True]
    # A superseded one is not reviewed any more, nor superseded twice.
    stale = await review(client, app, people["province_head"], old["id"], "return", "x")
    assert stale.status_code == 409
    twice = await post_jws(
        client,
        app,
        head.person,
        head.sign(supersedes={"id": old["id"], "reason": "Lagi"}),
    )
    assert twice.status_code == 409
    assert twice.json()["type"] == PROBLEM_BASE + "already-superseded"
    # The correction itself can be corrected.
    third = await submit(client, app, head, supersedes={"id": new["id"], "reason": "Revisi"})
    assert third["supersedes"]["id"] == new["id"]


async def test_a_returned_submission_is_corrected_by_superseding_it(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    head: Signer,
    people: dict[str, Person],
) -> None:
    old = await submit(client, app, head)
    back = await review(client, app, people["province_monitor"], old["id"], "return", "Cek lagi")
    assert back.status_code == 201
    new = await submit(client, app, head, supersedes={"id": old["id"], "reason": "Diperbaiki"})
    assert new["counting"] is True


async def test_what_may_be_superseded(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    head: Signer,
    people: dict[str, Person],
) -> None:
    district_level = await submit(client, app, head)
    division = await register_key(conn, people["division_head"])
    # Not a submission of this division (the district's own report).
    refused = await post_jws(
        client,
        app,
        division.person,
        division.sign(supersedes={"id": district_level["id"], "reason": "x"}),
    )
    assert refused.status_code == 422
    assert refused.json()["type"] == PROBLEM_BASE + "invalid-supersedes"
    # Another division's report, and one that does not exist.
    other = await make_division(conn, "16.71", "capil")
    theirs = await submit(client, app, head, division=str(other))
    for target in (theirs["id"], "00000000-0000-0000-0000-000000000002"):
        response = await post_jws(
            client, app, head.person, head.sign(supersedes={"id": target, "reason": "x"})
        )
        assert response.status_code == 422, response.text
    assert await conn.fetchval("SELECT count(*) FROM submissions") == 2


async def test_reviews_and_new_reports_of_one_district_never_deadlock(
    settings: Any, conn: asyncpg.Connection, head: Signer, people: dict[str, Person]
) -> None:
    """A review locks the district's latest values, then its data version; an append must
    take them in the same order (the version row is written in the append statement)."""
    import asyncio

    from tests.submitting import served

    reviewer = people["province_head"]
    async with served(settings) as (app, http):
        jose = {**bearer(app, head.person), "Content-Type": "application/jose"}
        first = [
            (await http.post("/v1/submissions", content=head.sign(), headers=jose)).json()["id"]
            for _ in range(12)
        ]
        corrected = first.pop()

        async def accept(submission_id: str) -> httpx.Response:
            return await http.post(
                f"/v1/submissions/{submission_id}/review",
                json={"decision": "accept"},
                headers=bearer(app, reviewer),
            )

        async def report() -> httpx.Response:
            return await http.post("/v1/submissions", content=head.sign(), headers=jose)

        async def correct() -> httpx.Response:
            body = head.sign(supersedes={"id": corrected, "reason": "recount"})
            return await http.post("/v1/submissions", content=body, headers=jose)

        responses = await asyncio.gather(
            *(accept(s) for s in first),
            *(report() for _ in range(11)),
            correct(),
            accept(corrected),
        )
    statuses = sorted(r.status_code for r in responses)
    assert all(s < 500 for s in statuses), [r.text for r in responses if r.status_code >= 500]
    assert statuses.count(201) >= 12  # every new report and the correction were stored
