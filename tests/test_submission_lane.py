"""The submission lane answers exactly as the route does, and passes on what it cannot.

Each case is sent to two apps on one database, one with the lane (the default) and one
without; status, headers and problem bodies must be the same, and the lane must have
taken the requests it is meant to take.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from litestar import Litestar

from api.settings import Settings
from api.submission_lane import LaneCounts
from tests.people import Person, bearer
from tests.submitting import (
    JOSE,
    Signer,
    asgi_post_submission,
    register_key,
    served,
    stored_counts,
)

#: Headers that differ between any two responses (ids, clock) or only name a new row.
_VARYING = {"x-request-id", "date", "location", "content-length"}


def counts_of(app: Litestar) -> LaneCounts:
    counts = app.state.submission_lane
    assert isinstance(counts, LaneCounts)
    return counts


Pair = dict[bool, tuple[Litestar, httpx.AsyncClient]]


@asynccontextmanager
async def both(settings: Settings) -> AsyncIterator[Pair]:
    """The app with the lane (True) and without; entered in the test itself, as
    ``served`` must be."""
    async with AsyncExitStack() as stack:
        yield {
            lane: await stack.enter_async_context(
                served(msgspec.structs.replace(settings, submission_lane=lane))
            )
            for lane in (True, False)
        }


def shape(response: httpx.Response) -> dict[str, Any]:
    """What must match between the two paths: status, stable headers, and the body
    (all of a problem; the field names of a stored submission, whose values are new)."""
    headers = {k: v for k, v in response.headers.items() if k not in _VARYING}
    body = response.json()
    if response.status_code == 201:
        body = sorted(body)
    names = list(response.headers.keys())  # in the order sent
    return {"status": response.status_code, "headers": headers, "names": names, "body": body}


Send = Callable[[Litestar, httpx.AsyncClient, Signer], Awaitable[httpx.Response]]


def post(
    *,
    jws: Callable[[Signer], bytes] = lambda s: s.sign().encode(),
    headers: Callable[[Litestar, Signer], dict[str, str]] | None = None,
) -> Send:
    async def send(app: Litestar, http: httpx.AsyncClient, signer: Signer) -> httpx.Response:
        sent = headers(app, signer) if headers else {**bearer(app, signer.person)}
        sent.setdefault("Content-Type", JOSE)
        return await http.post("/v1/submissions", content=jws(signer), headers=sent)

    return send


async def chunked(body: bytes) -> AsyncIterator[bytes]:
    """A body without a Content-Length (Transfer-Encoding: chunked)."""
    yield body


def tampered(signer: Signer) -> bytes:
    head, payload, sig = signer.sign().split(".")
    return f"{head}.{payload[:-4]}AAAA.{sig}".encode()


CASES: dict[str, tuple[Send, bool]] = {
    # name: (request, taken by the lane)
    "stored": (post(), True),
    "trailing slash": (
        lambda app, http, s: http.post(
            "/v1/submissions/",
            content=s.sign().encode(),
            headers={**bearer(app, s.person), "Content-Type": JOSE},
        ),
        True,
    ),
    "tampered signature": (post(jws=tampered), True),
    "wrong media type": (
        post(headers=lambda app, s: {**bearer(app, s.person), "Content-Type": "text/plain"}),
        True,
    ),
    "not a JWS": (post(jws=lambda s: b"hello"), True),
    "outside scope": (post(jws=lambda s: s.sign(district="31.71").encode()), True),
    "bad idempotency key": (
        post(headers=lambda app, s: {**bearer(app, s.person), "Idempotency-Key": "a b"}),
        True,
    ),
    "idempotency key too long": (
        post(headers=lambda app, s: {**bearer(app, s.person), "Idempotency-Key": "k" * 256}),
        True,
    ),
    "no token": (post(headers=lambda app, s: {}), False),
    "bad token": (post(headers=lambda app, s: {"Authorization": "Bearer x.y.z"}), False),
    "oversize body": (post(jws=lambda s: b"a" * (64 * 1024 + 1)), False),
    "chunked body": (
        lambda app, http, s: http.post(
            "/v1/submissions",
            content=chunked(s.sign().encode()),
            headers={**bearer(app, s.person), "Content-Type": JOSE},
        ),
        False,
    ),
}


@pytest.mark.parametrize("case", list(CASES))
async def test_the_lane_answers_as_the_route_does(
    case: str, settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    send, taken = CASES[case]
    signer = await register_key(conn, people["district_head"])
    shapes = {}
    async with both(settings) as pair:
        for lane, (app, http) in pair.items():
            before = await stored_counts(conn)
            response = await send(app, http, signer)
            shapes[lane] = shape(response)
            if response.status_code != 201:  # refused: nothing stored, either way
                assert await stored_counts(conn) == before
        lane_app, plain_app = pair[True][0], pair[False][0]
        assert (counts_of(lane_app).taken, counts_of(lane_app).passed) == (taken, not taken)
        assert plain_app.state.get("submission_lane") is None  # no lane, no counts
    assert shapes[True] == shapes[False]


async def test_retries_replays_and_conflicts_match(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    """A retry replays the first answer, another body under the key is 422, and a
    replayed jti is 409, the same through both paths."""
    signer = await register_key(conn, people["district_head"])
    seen: dict[bool, list[dict[str, Any]]] = {}
    async with both(settings) as pair:
        for lane, (app, http) in pair.items():
            headers = {**bearer(app, signer.person), "Content-Type": JOSE}
            headers["Idempotency-Key"] = f"key-{lane}"
            jws = signer.sign().encode()
            first = await http.post("/v1/submissions", content=jws, headers=headers)
            retry = await http.post("/v1/submissions", content=jws, headers=headers)
            assert retry.content == first.content
            assert retry.headers["location"] == first.headers["location"]
            other = signer.sign().encode()
            reused = await http.post("/v1/submissions", content=other, headers=headers)
            del headers["Idempotency-Key"]
            replayed = await http.post("/v1/submissions", content=jws, headers=headers)
            seen[lane] = [shape(r) for r in (first, retry, reused, replayed)]
            assert [r["status"] for r in seen[lane]] == [201, 201, 422, 409]
        assert counts_of(pair[True][0]).taken == 4
    assert seen[True] == seen[False]


async def test_a_role_that_may_not_submit_is_refused_the_same(
    settings: Settings, conn: asyncpg.Connection, people: dict[str, Person]
) -> None:
    signer = await register_key(conn, people["district_head"])
    shapes = []
    async with both(settings) as pair:
        for app, http in pair.values():
            response = await http.post(
                "/v1/submissions",
                content=signer.sign().encode(),
                headers={**bearer(app, people["province_monitor"]), "Content-Type": JOSE},
            )
            assert response.status_code == 403
            shapes.append(shape(response))
        assert (counts_of(pair[True][0]).taken, counts_of(pair[True][0]).passed) == (0, 1)
    assert shapes[0] == shapes[1]


async def test_other_routes_never_enter_the_lane(
    settings: Settings, people: dict[str, Person]
) -> None:
    async with both(settings) as pair:
        app, http = pair[True]
        token = bearer(app, people["province_monitor"])
        assert (await http.get("/v1/submissions", headers=token)).status_code == 200
        assert (await http.get("/health/live")).status_code == 200
        review = await http.post("/v1/submissions/x/review", json={}, headers=token)
        assert review.status_code in (400, 404)
        assert (counts_of(app).taken, counts_of(app).passed) == (0, 0)


async def test_a_content_length_too_long_for_int_goes_to_litestar(
    settings: Settings, people: dict[str, Person]
) -> None:
    """``int`` refuses over 4,300 digits: the lane once raised there, outside Litestar's
    error handling (a plain-text 500, before any token was checked)."""
    async with both(settings) as pair:
        app, _http = pair[True]
        token = bearer(app, people["district_head"])["Authorization"].encode()
        status, headers, _body = await asgi_post_submission(
            app,
            [
                (b"authorization", token),
                (b"content-type", JOSE.encode()),
                (b"content-length", b"0" * 5000 + b"3"),
            ],
            b"abc",
        )
        assert status == 400
        assert headers[b"content-type"] == b"application/problem+json"
        assert (counts_of(app).taken, counts_of(app).passed) == (0, 1)
