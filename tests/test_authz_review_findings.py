"""Authorization review of the submission routes (issue 5): scope, moves, leaks."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable

import asyncpg
import httpx
from litestar import Litestar
from litestar.testing import AsyncTestClient

from api.settings import Settings
from tests.people import (
    DISTRICT,
    OTHER_DISTRICT,
    OTHER_PROVINCE,
    PROVINCE,
    Person,
    bearer,
    make_people,
)
from tests.submitting import (
    post_jws,
    problem_slug,
    register_key,
    review,
    served,
    submit,
)

#: Long enough for an answer that waits on nothing, even on a loaded machine.
PROMPT_S = 8.0


async def answer_while_locked(
    conn: asyncpg.Connection, submission_id: str, request: Awaitable[httpx.Response]
) -> httpx.Response | None:
    """Send ``request`` while the test holds the submission's row lock: its answer if it
    came within PROMPT_S without the lock, else None (it waited on the lock)."""
    tx = conn.transaction()
    await tx.start()
    await conn.execute("SELECT 1 FROM submissions WHERE id = $1::uuid FOR UPDATE", submission_id)
    task = asyncio.ensure_future(request)
    try:
        return await asyncio.wait_for(asyncio.shield(task), PROMPT_S)
    except TimeoutError:
        return None
    finally:
        await tx.rollback()
        await task


async def test_review_outside_scope_answers_without_waiting_on_the_report(
    settings: Settings, conn: asyncpg.Connection
) -> None:
    """DESIGN: "An object outside the scope answers 404 (do not reveal that it exists)".

    A reviewer of another province asking about a report that exists, while that report
    is being reviewed or corrected in its own province (its row locked), waits for that
    work to end before hearing 404, where an id that does not exist answers at once: the
    wait tells that the report exists (and the outsider's own FOR UPDATE then holds up
    the province's next review). The scope must be checked before the row is locked.
    """
    people = await make_people(conn, province=PROVINCE, district=DISTRICT, suffix="")
    outsiders = await make_people(
        conn, province=OTHER_PROVINCE, district=OTHER_DISTRICT, suffix="_jkt"
    )
    signer = await register_key(conn, people["district_head"])
    async with served(settings) as (app, http):
        made = await post_jws(http, app, signer.person, signer.sign())
        assert made.status_code == 201, made.text
        submission_id = made.json()["id"]
        outsider = outsiders["province_head"]
        unknown = await review(http, app, outsider, str(uuid.uuid4()), "accept")
        assert unknown.status_code == 404
        answered = await answer_while_locked(
            conn, submission_id, review(http, app, outsider, submission_id, "accept")
        )
    assert answered is not None, "a reviewer outside the scope waited on the report's lock"
    assert answered.status_code == 404
    assert answered.json() == unknown.json()


async def test_correction_naming_another_districts_report_does_not_wait_on_it(
    settings: Settings, conn: asyncpg.Connection
) -> None:
    """DESIGN: "An object outside the scope answers 404 (do not reveal that it exists)";
    README: a correction's ``supersedes`` must be a report of the same district, else 422
    ``invalid-supersedes``.

    A Palembang head whose correction names a Jakarta report gets that 422 only once the
    Jakarta report's row lock is free (``_superseded_target`` locks it FOR UPDATE before
    comparing districts): the wait tells the id exists in another district, and a
    district head can hold up another district's reviews and corrections.
    """
    people = await make_people(conn, province=PROVINCE, district=DISTRICT, suffix="")
    outsiders = await make_people(
        conn, province=OTHER_PROVINCE, district=OTHER_DISTRICT, suffix="_jkt"
    )
    head = await register_key(conn, people["district_head"])
    jakarta = await register_key(conn, outsiders["district_head"])
    async with served(settings) as (app, http):
        made = await post_jws(http, app, jakarta.person, jakarta.sign())
        assert made.status_code == 201, made.text
        target = made.json()["id"]
        supersedes = {"id": target, "reason": "salah ketik"}
        answered = await answer_while_locked(
            conn,
            target,
            post_jws(http, app, head.person, head.sign(supersedes=supersedes)),
        )
        random = await post_jws(
            http,
            app,
            head.person,
            head.sign(supersedes={"id": str(uuid.uuid4()), "reason": "salah ketik"}),
        )
    assert answered is not None, "a correction waited on another district's report"
    assert answered.status_code == random.status_code == 422
    assert problem_slug(answered) == problem_slug(random) == "invalid-supersedes"


async def test_head_moved_to_another_district_loses_the_old_districts_reports(
    client: AsyncTestClient[Litestar],
    app: Litestar,
    conn: asyncpg.Connection,
    people: dict[str, Person],
) -> None:
    """Passes (kept: no other test moves a submitter with a token issued before the
    move). README: "objects outside the caller's scope answer 404"; role and scope come
    from the database, not the token, so a move applies to tokens issued before it."""
    head = await register_key(conn, people["district_head"])
    made = await submit(client, app, head)
    before_move = bearer(app, people["district_head"])
    moved = await client.patch(
        f"/v1/users/{people['district_head'].id}",
        json={"area_code": OTHER_DISTRICT},
        headers=bearer(app, people["admin"]),
    )
    assert moved.status_code == 200, moved.text
    one = await client.get(f"/v1/submissions/{made['id']}", headers=before_move)
    assert one.status_code == 404
    listed = await client.get("/v1/submissions", headers=before_move)
    assert listed.status_code == 200
    assert listed.json()["items"] == []
    verify = await client.get(f"/v1/districts/{DISTRICT}/ledger/verify", headers=before_move)
    assert verify.status_code == 404
    again = await post_jws(client, app, head.person, head.sign(district=DISTRICT))
    assert again.status_code == 404
